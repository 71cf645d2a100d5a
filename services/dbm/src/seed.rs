//! The seed: db1's datadir filled with a hot physical copy of db0, then prepared.
//!
//! * [`Seed`] stops db1 (`db1.stop_command`), moves its datadir aside to
//!   `<datadir>.dbm-old-<timestamp>` (recorded before the rename, so `undo` and a retry
//!   find it), and streams `mariabackup --backup --stream=xbstream` (connected to db0)
//!   into `mbstream -x -C <db1 datadir>`, logging bytes and rate every few seconds.
//! * [`Prepare`] applies the redo log (`mariabackup --prepare`), reads the binlog
//!   coordinates from the backup's own metadata ([`Coordinates`], the fact
//!   `coordinates` of step `prepare`), gives the files to the old datadir's owner and
//!   starts db1 (`db1.start_command`).
//!
//! Each side runs on its server's [`Host`]: here, or over ssh when the plan gives the
//! server an `ssh` destination; the stream then flows db0's host -> dbm -> db1's host,
//! counted on the way. db0's password reaches the backup tool only through `MYSQL_PWD`
//! in its environment (over ssh: read from stdin into it), never on a command line
//! (visible in `ps`) or in a log.
//!
//! Rejected: writing the stream to a file on db1 and unpacking it afterwards (needs the
//! space twice and doubles the time); letting the shell build the pipe (`sh -c "a | b"`
//! loses the first command's exit code and the byte count for progress).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::config::{Address, Config, SeedMethod, Server};
use crate::db;
use crate::host::{Host, Prepared};
use crate::journal::{Step, StepContext, StepId, Undo};
use crate::shell::{collect_tail, die_with_dbm, run_checked};

/// How often the stream's progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Where db1 can start replicating from db0: the backup's position in db0's binary log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinates {
    pub file: String,
    pub pos: u64,
    /// db0's GTID position at the backup (MariaDB `gtid_binlog_pos`), when it has one.
    pub gtid: Option<String>,
}

/// Who owned db1's datadir before the seed: the seeded files get the same owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Step `seed`: db1 stopped, its datadir moved aside and filled from db0.
pub struct Seed {
    config: Config,
    db0: Host,
    db1: Host,
}

impl Seed {
    pub fn new(config: &Config) -> Seed {
        Seed {
            config: config.clone(),
            db0: Host::of(config, &config.db0, "db0"),
            db1: Host::of(config, &config.db1, "db1"),
        }
    }
}

/// Step `prepare`: the copy made consistent, coordinates read, db1 started.
pub struct Prepare {
    config: Config,
    db1: Host,
}

impl Prepare {
    pub fn new(config: &Config) -> Prepare {
        Prepare {
            config: config.clone(),
            db1: Host::of(config, &config.db1, "db1"),
        }
    }
}

fn method(config: &Config) -> SeedMethod {
    config.seed.method.unwrap_or(SeedMethod::Mariabackup)
}

#[async_trait::async_trait]
impl Step for Seed {
    fn id(&self) -> StepId {
        StepId::Seed
    }

    async fn already_done(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        Ok(matches!(
            backup_type(&self.db1, &self.config.db1.datadir)
                .await?
                .as_deref(),
            Some("full-backuped" | "full-prepared")
        ))
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let db1 = &self.config.db1;
        let host = &self.db1;
        let datadir = &db1.datadir;
        host.run_command("db1.stop_command", db1.stop_command.as_deref())
            .await?;

        // Record where the old datadir goes before moving it, so that a crash between
        // the two leaves a fact that `undo` and the next attempt understand.
        let old: Option<PathBuf> = match ctx.get::<Option<PathBuf>>("old_datadir")? {
            Some(old) => old,
            None => {
                let (old, (uid, gid)) = if host.exists(datadir).await? {
                    (Some(aside_name(datadir)), host.owner(datadir).await?)
                } else {
                    let parent = datadir.parent().unwrap_or(Path::new("/"));
                    (None, host.owner(parent).await?)
                };
                let owner = Owner { uid, gid };
                ctx.set("old_datadir", &old)?;
                ctx.set("owner", owner)?;
                ctx.checkpoint()?;
                old
            }
        };
        if let Some(old) = &old {
            if host.exists(old).await? {
                // An earlier attempt moved it: what is in the datadir is a partial seed.
                host.remove_dir(datadir).await?;
            } else {
                host.rename(datadir, old).await?;
                tracing::info!(old = %old.display(), "moved db1's datadir aside");
            }
        } else {
            host.remove_dir(datadir).await?;
        }
        host.create_dir(datadir).await?;

        let started = Instant::now();
        let bytes = stream_backup(&self.config, &self.db0, host).await?;
        match backup_type(host, datadir).await?.as_deref() {
            Some("full-backuped") => {}
            other => bail!(
                "the stream ended without a full backup in {} (backup_type {other:?})",
                datadir.display()
            ),
        }
        let secs = started.elapsed().as_secs_f64();
        let aside = match &old {
            Some(old) => format!("db1's old datadir is {}", old.display()),
            None => "db1 had no datadir before".to_owned(),
        };
        Ok(format!(
            "seeded {} from db0 in {secs:.1} s ({}/s); {aside}",
            human(bytes),
            human((bytes as f64 / secs.max(0.001)) as u64)
        ))
    }

    async fn undo(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        let db1 = &self.config.db1;
        let host = &self.db1;
        let datadir = &db1.datadir;
        let Some(old) = ctx.get::<Option<PathBuf>>("old_datadir")? else {
            return Ok(Undo::Nothing("db1's datadir was not moved".to_owned()));
        };
        let old_exists = match &old {
            Some(old) => host.exists(old).await?,
            None => false,
        };
        match old {
            Some(_) if old_exists => {
                let old = old.as_deref().unwrap_or(datadir);
                host.run_command("db1.stop_command", db1.stop_command.as_deref())
                    .await?;
                host.remove_dir(datadir).await?;
                host.rename(old, datadir).await?;
                host.run_command("db1.start_command", db1.start_command.as_deref())
                    .await?;
                Ok(Undo::Undone(format!(
                    "db1's old datadir is back in {} and db1 started",
                    datadir.display()
                )))
            }
            Some(old) if host.exists(datadir).await? => Ok(Undo::Nothing(format!(
                "{} was never moved to {} (or is back already)",
                datadir.display(),
                old.display()
            ))),
            Some(old) => bail!(
                "neither db1's datadir {} nor its old copy {} exists",
                datadir.display(),
                old.display()
            ),
            None => {
                host.run_command("db1.stop_command", db1.stop_command.as_deref())
                    .await?;
                host.remove_dir(datadir).await?;
                Ok(Undo::Undone(format!(
                    "removed the seeded {} (db1 had no datadir before)",
                    datadir.display()
                )))
            }
        }
    }
}

#[async_trait::async_trait]
impl Step for Prepare {
    fn id(&self) -> StepId {
        StepId::Prepare
    }

    async fn already_done(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        Ok(backup_type(&self.db1, &self.config.db1.datadir)
            .await?
            .as_deref()
            == Some("full-prepared")
            && ctx.get::<Coordinates>("coordinates")?.is_some())
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let db1 = &self.config.db1;
        let host = &self.db1;
        let datadir = &db1.datadir;
        let started = Instant::now();
        // A retry after a crash between the prepare and the start finds it prepared.
        if backup_type(host, datadir).await?.as_deref() != Some("full-prepared") {
            // Under a lock beside the datadir: a prepare left running on a remote host
            // by a killed dbm (ssh does not end it) finishes before a new one starts.
            let mut lock = datadir.as_os_str().to_owned();
            lock.push(".dbm-prepare.lock");
            let cmd = host.program(
                "flock",
                &[
                    "-w".to_owned(),
                    "3600".to_owned(),
                    Path::new(&lock).display().to_string(),
                    method(&self.config).program().to_owned(),
                    "--prepare".to_owned(),
                    format!("--target-dir={}", datadir.display()),
                ],
            );
            run_checked(cmd, "the backup's prepare").await?;
        }
        let coordinates = read_coordinates(host, datadir).await?;
        let owner: Owner = ctx
            .journal()
            .get(StepId::Seed, "owner")
            .context("the owner of db1's old datadir")?;
        host.chown_tree(datadir, owner.uid, owner.gid).await?;
        host.run_command("db1.start_command", db1.start_command.as_deref())
            .await?;
        let summary = format!(
            "prepared in {:.1} s, db1 started; db0's binlog position at the backup: {}:{}{}",
            started.elapsed().as_secs_f64(),
            coordinates.file,
            coordinates.pos,
            coordinates
                .gtid
                .as_deref()
                .map(|g| format!(", GTID {g}"))
                .unwrap_or_default()
        );
        // Last: with the outcome, "coordinates recorded" means db1 was started.
        ctx.set("coordinates", coordinates)?;
        Ok(summary)
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        Ok(Undo::Nothing(
            "undoing the seed stops db1 and restores its old datadir".to_owned(),
        ))
    }
}

/// `<datadir>.dbm-old-<UTC timestamp>`.
fn aside_name(datadir: &Path) -> PathBuf {
    let mut name = datadir.as_os_str().to_owned();
    name.push(format!(
        ".dbm-old-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    PathBuf::from(name)
}

/// `backup_type` from the backup's checkpoints file (`full-backuped`, `full-prepared`);
/// `None` when there is no such file.
pub async fn backup_type(host: &Host, datadir: &Path) -> anyhow::Result<Option<String>> {
    let names = ["xtrabackup_checkpoints", "mariadb_backup_checkpoints"];
    Ok(metadata(host, datadir, &names)
        .await?
        .and_then(|text| parse_backup_type(&text)))
}

/// The first of the backup's metadata files `names` in `datadir` that exists.
async fn metadata(host: &Host, datadir: &Path, names: &[&str]) -> anyhow::Result<Option<String>> {
    for name in names {
        if let Some(text) = host.read(&datadir.join(name)).await? {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

fn parse_backup_type(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "backup_type").then(|| value.trim().to_owned())
    })
}

/// The coordinates in the backup's binlog info file.
pub async fn read_coordinates(host: &Host, datadir: &Path) -> anyhow::Result<Coordinates> {
    let names = ["xtrabackup_binlog_info", "mariadb_backup_binlog_info"];
    let Some(text) = metadata(host, datadir, &names).await? else {
        bail!(
            "the backup in {} on {} has no {} or {}: was db0's binary log on?",
            datadir.display(),
            host.name(),
            names[0],
            names[1]
        );
    };
    parse_coordinates(&text)
        .with_context(|| format!("the binlog info in {}: {text:?}", datadir.display()))
}

/// `<file>\t<position>[\t<gtid>]`, one line.
pub fn parse_coordinates(text: &str) -> anyhow::Result<Coordinates> {
    let line = text.lines().find(|l| !l.trim().is_empty());
    let Some(line) = line else {
        bail!("empty binlog info: db0's binary log was off during the backup");
    };
    let mut fields = line.split('\t').map(str::trim);
    let file = fields.next().filter(|f| !f.is_empty());
    let pos = fields.next().and_then(|p| p.parse::<u64>().ok());
    let (Some(file), Some(pos)) = (file, pos) else {
        bail!("expected `<binlog file> <position> [<gtid>]`");
    };
    let gtid = fields.next().filter(|g| !g.is_empty()).map(str::to_owned);
    Ok(Coordinates {
        file: file.to_owned(),
        pos,
        gtid,
    })
}

/// `backup --stream | unpack -x -C <db1 datadir>`, the bytes counted on the way;
/// returns how many went through.
async fn stream_backup(config: &Config, host0: &Host, host1: &Host) -> anyhow::Result<u64> {
    let method = method(config);
    let db0 = &config.db0;
    let password = db::read_secret(&db0.password(), "db0")?;
    let Prepared {
        command: mut backup,
        stdin: backup_stdin,
    } = host0.program_with_secret(
        method.program(),
        &backup_args(db0, config.seed.log_copy_interval_ms),
        password.as_ref().map(|p| ("MYSQL_PWD", p)),
    );
    die_with_dbm(&mut backup);
    let mut backup = backup
        .stdin(if backup_stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} on {}", method.program(), host0.name()))?;
    if let Some(bytes) = backup_stdin {
        let mut stdin = backup.stdin.take().expect("piped");
        stdin
            .write_all(&bytes)
            .await
            .with_context(|| format!("handing the password to the backup on {}", host0.name()))?;
    }
    let mut unpack = host1.program(
        method.unpacker(),
        &[
            "-x".to_owned(),
            "-C".to_owned(),
            config.db1.datadir.display().to_string(),
        ],
    );
    die_with_dbm(&mut unpack);
    let mut unpack = unpack
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} on {}", method.unpacker(), host1.name()))?;
    let backup_err = tokio::spawn(collect_tail(backup.stderr.take().expect("piped")));
    let unpack_err = tokio::spawn(collect_tail(unpack.stderr.take().expect("piped")));
    // In blocking mode, for a thread of its own (see crate::pipe).
    let from = backup.stdout.take().expect("piped").into_owned_fd();
    let to = unpack.stdin.take().expect("piped").into_owned_fd();

    let started = Instant::now();
    let copied = match (from, to) {
        (Ok(from), Ok(to)) => tokio::task::spawn_blocking(move || {
            let mut last_log = started;
            crate::pipe::splice_all(File::from(from), File::from(to), |bytes| {
                if last_log.elapsed() >= PROGRESS_EVERY {
                    last_log = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(
                        "seed: {} from db0 in {secs:.0} s, {}/s",
                        human(bytes),
                        human((bytes as f64 / secs) as u64)
                    );
                }
            })
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if copied.is_err() {
        // The unpacker is gone or the stream broke: the backup cannot finish.
        let _ = backup.start_kill();
    }
    let backup_status = backup.wait().await.context("waiting for the backup")?;
    let unpack_status = unpack.wait().await.context("waiting for the unpacker")?;
    let backup_err = backup_err.await.unwrap_or_default();
    let unpack_err = unpack_err.await.unwrap_or_default();
    if !unpack_status.success() {
        bail!(
            "{} -x -C {} failed ({unpack_status}): {unpack_err}",
            method.unpacker(),
            config.db1.datadir.display()
        );
    }
    if !backup_status.success() {
        bail!(
            "{} --backup from db0 failed ({backup_status}): {backup_err}",
            method.program()
        );
    }
    let bytes = copied.context("copying the backup stream")?;
    tracing::info!(
        "seed: {} from db0 in {:.1} s",
        human(bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(bytes)
}

/// The backup's arguments: everything but the password (in `MYSQL_PWD`). It runs on
/// db0's host, so it reaches db0 the way dbm does (a socket, or host and port).
fn backup_args(db0: &Server, log_copy_interval_ms: u64) -> Vec<String> {
    let mut args = vec![
        "--backup".to_owned(),
        "--stream=xbstream".to_owned(),
        format!("--log-copy-interval={log_copy_interval_ms}"),
        format!("--datadir={}", db0.datadir.display()),
        format!("--user={}", db0.user),
    ];
    match db0.address() {
        Address::Socket(path) => args.push(format!("--socket={}", path.display())),
        Address::Tcp { host, port } => {
            args.push(format!("--host={host}"));
            args.push(format!("--port={port}"));
        }
    }
    args
}

/// Bytes as `12.3 MB` (powers of 1000).
fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_parse_with_and_without_gtid() {
        assert_eq!(
            parse_coordinates("bin.000003\t1234\t0-1-42\n").unwrap(),
            Coordinates {
                file: "bin.000003".to_owned(),
                pos: 1234,
                gtid: Some("0-1-42".to_owned()),
            }
        );
        assert_eq!(
            parse_coordinates("mysql-bin.000001\t4\n").unwrap(),
            Coordinates {
                file: "mysql-bin.000001".to_owned(),
                pos: 4,
                gtid: None,
            }
        );
        assert!(parse_coordinates("").is_err());
        assert!(parse_coordinates("bin.000001\tx\n").is_err());
    }

    #[test]
    fn backup_type_is_read_from_checkpoints() {
        let text = "backup_type = full-prepared\nfrom_lsn = 0\nto_lsn = 46512\n";
        assert_eq!(parse_backup_type(text).as_deref(), Some("full-prepared"));
        assert_eq!(parse_backup_type("from_lsn = 0\n"), None);
    }

    #[test]
    fn sizes_and_tails_read_well() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(2_100_000_000), "2.1 GB");
        assert!(
            aside_name(Path::new("/var/lib/mysql"))
                .to_string_lossy()
                .starts_with("/var/lib/mysql.dbm-old-")
        );
    }
}
