//! Where a server's commands and files are: this machine, or another reached with ssh.
//!
//! Everything dbm does to a server's files (move the datadir aside, create, remove,
//! read the backup's metadata, chown) and every program it runs there (the backup, the
//! unpacker, the prepare, start and stop) goes through a [`Host`], as a shell command
//! on this machine or `ssh <options> <destination> -- <command>` on another. One code
//! path for both, so the local tests exercise what runs remotely too; the commands are
//! POSIX `sh` and coreutils, present on any server with a database.
//!
//! Arguments are quoted for the remote shell (ssh joins its arguments with spaces and
//! hands the line to the login shell). A password never goes on a command line (visible
//! in `ps` on both hosts): [`Host::program_with_secret`] feeds it on stdin to a remote
//! `read` into the environment variable, or sets it in the local environment.
//!
//! Rejected: an ssh library (russh, ssh2): the operator's own `ssh` already has their
//! keys, agent, known hosts, jump hosts and config, which a library would have to be
//! taught; and copying files with sftp instead of streaming through a pipe.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::config::{Config, Server};
use crate::db::Secret;
use crate::shell::{die_with_dbm, stdout_of, tail};

/// A machine dbm runs commands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// `None`: this machine.
    ssh: Option<String>,
    /// Options before the destination, from the plan's `ssh_options`.
    options: Vec<String>,
    /// For messages: `db1's host (root@db1.example)`.
    name: String,
}

/// `s` quoted for a POSIX shell: in single quotes, each `'` as `'\''`.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn quote_path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// A program and its arguments as one shell line.
fn line(program: &str, args: &[String]) -> String {
    std::iter::once(quote(program))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A command prepared to run on a host, with what goes to its stdin first.
pub struct Prepared {
    pub command: Command,
    /// Written to stdin (then closed) right after the spawn: a password for a remote
    /// `read`. `None`: stdin is closed at once.
    pub stdin: Option<Vec<u8>>,
}

impl Host {
    /// `role`'s host in `config` (`role_name` is for messages: `db1`).
    pub fn of(config: &Config, server: &Server, role_name: &str) -> Host {
        let name = match &server.ssh {
            Some(ssh) => format!("{role_name}'s host ({ssh})"),
            None => format!("{role_name}'s host (here)"),
        };
        Host {
            ssh: server.ssh.clone(),
            options: config.ssh_options.clone(),
            name,
        }
    }

    pub fn is_local(&self) -> bool {
        self.ssh.is_none()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shell `script`, here (`sh -c`) or there (ssh's remote shell).
    fn shell_command(&self, script: &str) -> Command {
        match &self.ssh {
            None => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(script);
                cmd
            }
            Some(dest) => {
                let mut cmd = Command::new("ssh");
                cmd.args(&self.options).arg(dest).arg("--").arg(script);
                cmd
            }
        }
    }

    /// `program args` on this host, `secret` in its environment as `var`.
    pub fn program_with_secret(
        &self,
        program: &str,
        args: &[String],
        secret: Option<(&str, &Secret)>,
    ) -> Prepared {
        match (&self.ssh, secret) {
            (None, _) => {
                let mut command = Command::new(program);
                command.args(args);
                if let Some((var, secret)) = secret {
                    command.env(var, secret.expose());
                }
                Prepared {
                    command,
                    stdin: None,
                }
            }
            (Some(_), None) => Prepared {
                command: self.shell_command(&format!("exec {}", line(program, args))),
                stdin: None,
            },
            (Some(_), Some((var, secret))) => Prepared {
                command: self.shell_command(&format!(
                    "IFS= read -r {var} && export {var} && exec {}",
                    line(program, args)
                )),
                stdin: Some(format!("{}\n", secret.expose()).into_bytes()),
            },
        }
    }

    /// `program args` on this host.
    pub fn program(&self, program: &str, args: &[String]) -> Command {
        self.program_with_secret(program, args, None).command
    }

    /// Runs `script` to completion; its stdout, or an error naming `what` and the host
    /// with stderr's tail. Killed with dbm.
    pub async fn run(&self, what: &str, script: &str) -> anyhow::Result<String> {
        let out = self.output(script).await?;
        stdout_of(out, &format!("{what} on {}", self.name))
    }

    async fn output(&self, script: &str) -> anyhow::Result<std::process::Output> {
        let mut cmd = self.shell_command(script);
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        die_with_dbm(&mut cmd);
        cmd.output()
            .await
            .with_context(|| format!("starting a command on {}", self.name))
    }

    /// A command from the plan (`db1.start_command`), run with `sh` on this host; `None`
    /// is an error naming the missing key.
    pub async fn run_command(&self, key: &str, command: Option<&str>) -> anyhow::Result<()> {
        let Some(command) = command else {
            bail!("{key} is not set: dbm cannot stop or start db1 without it");
        };
        tracing::info!(%key, %command, host = %self.name, "running");
        self.run(key, command).await.map(drop)
    }

    /// Where `program` is on this host (`command -v`, plus the sbin directories a
    /// non-login ssh shell may lack); `None` when it is not installed.
    pub async fn find_program(&self, program: &str) -> anyhow::Result<Option<String>> {
        let out = self
            .output(&format!(
                "PATH=\"$PATH:/usr/sbin:/sbin:/usr/local/sbin\" command -v {}",
                quote(program)
            ))
            .await?;
        let found = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && !found.is_empty()).then_some(found))
    }

    /// Bytes free (for an unprivileged user) on the filesystem of `path`, or of its
    /// nearest existing ancestor (`df -Pk`).
    pub async fn free_bytes(&self, path: &Path) -> anyhow::Result<u64> {
        let out = self
            .run(
                &format!("reading the free space of {}", path.display()),
                &format!(
                    "p={}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; df -Pk -- \"$p\"",
                    quote_path(path)
                ),
            )
            .await?;
        // The last line: filesystem, 1024-blocks, used, available, capacity, mount.
        let available = out
            .lines()
            .last()
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|a| a.parse::<u64>().ok());
        match available {
            Some(kb) => Ok(kb * 1024),
            None => bail!("unexpected df output on {}: {out:?}", self.name),
        }
    }

    /// Whether `path` exists there.
    pub async fn exists(&self, path: &Path) -> anyhow::Result<bool> {
        let out = self
            .output(&format!("test -e {}", quote_path(path)))
            .await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => bail!(
                "cannot tell whether {} exists on {}: {}",
                path.display(),
                self.name,
                tail(&String::from_utf8_lossy(&out.stderr))
            ),
        }
    }

    /// The file's contents; `None` when it does not exist.
    pub async fn read(&self, path: &Path) -> anyhow::Result<Option<String>> {
        if !self.exists(path).await? {
            return Ok(None);
        }
        let text = self
            .run(
                &format!("reading {}", path.display()),
                &format!("cat -- {}", quote_path(path)),
            )
            .await?;
        Ok(Some(text))
    }

    /// `mv` within one filesystem (the datadir aside and back).
    pub async fn rename(&self, from: &Path, to: &Path) -> anyhow::Result<()> {
        self.run(
            &format!("moving {} to {}", from.display(), to.display()),
            &format!("mv -T -- {} {}", quote_path(from), quote_path(to)),
        )
        .await
        .map(drop)
    }

    /// `rm -rf`; absent is fine.
    pub async fn remove_dir(&self, dir: &Path) -> anyhow::Result<()> {
        self.run(
            &format!("removing {}", dir.display()),
            &format!("rm -rf -- {}", quote_path(dir)),
        )
        .await
        .map(drop)
    }

    pub async fn create_dir(&self, dir: &Path) -> anyhow::Result<()> {
        self.run(
            &format!("creating {}", dir.display()),
            &format!("mkdir -p -- {}", quote_path(dir)),
        )
        .await
        .map(drop)
    }

    /// The numeric owner and group of `path`.
    pub async fn owner(&self, path: &Path) -> anyhow::Result<(u32, u32)> {
        let out = self
            .run(
                &format!("reading the owner of {}", path.display()),
                &format!("stat -c '%u %g' -- {}", quote_path(path)),
            )
            .await?;
        let mut ids = out.split_whitespace().map(str::parse::<u32>);
        match (ids.next(), ids.next()) {
            (Some(Ok(uid)), Some(Ok(gid))) => Ok((uid, gid)),
            _ => bail!(
                "unexpected owner of {} on {}: {out:?}",
                path.display(),
                self.name
            ),
        }
    }

    /// `chown -R` without following symlinks.
    pub async fn chown_tree(&self, path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
        self.run(
            &format!("giving {} to {uid}:{gid}", path.display()),
            &format!("chown -R -h {uid}:{gid} -- {}", quote_path(path)),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes_spaces_and_dollars() {
        assert_eq!(quote("/var/lib/mysql"), "/var/lib/mysql");
        assert_eq!(quote("--user=dbm"), "--user=dbm");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's $HOME"), "'it'\\''s $HOME'");
        assert_eq!(quote(""), "''");
        assert_eq!(
            line("mbstream", &["-x".to_owned(), "/srv/my data".to_owned()]),
            "mbstream -x '/srv/my data'"
        );
    }

    #[tokio::test]
    async fn local_file_operations() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            ssh: None,
            options: Vec::new(),
            name: "test host".to_owned(),
        };
        let a = dir.path().join("a b'c");
        host.create_dir(&a.join("inner")).await.unwrap();
        assert!(host.exists(&a).await.unwrap());
        std::fs::write(a.join("f"), "text\n").unwrap();
        assert_eq!(
            host.read(&a.join("f")).await.unwrap().as_deref(),
            Some("text\n")
        );
        assert_eq!(host.read(&a.join("none")).await.unwrap(), None);
        let b = dir.path().join("b");
        host.rename(&a, &b).await.unwrap();
        assert!(!host.exists(&a).await.unwrap() && host.exists(&b).await.unwrap());
        let (uid, gid) = host.owner(&b).await.unwrap();
        host.chown_tree(&b, uid, gid).await.unwrap();
        host.remove_dir(&b).await.unwrap();
        host.remove_dir(&b).await.unwrap();
        assert!(!host.exists(&b).await.unwrap());
        assert!(host.free_bytes(&b.join("not/yet")).await.unwrap() > 0);
        assert!(host.find_program("sh").await.unwrap().is_some());
        assert_eq!(
            host.find_program("surely-no-such-tool").await.unwrap(),
            None
        );
        let e = host.rename(&a, &b).await.unwrap_err().to_string();
        assert!(
            e.contains("on test host failed") && e.contains("a b'c"),
            "{e}"
        );
    }
}
