//! The reference copy: `mariabackup --backup --stream=xbstream | mbstream -x` of db0
//! into an empty directory, with the arguments dbm's seed gives it (`--datadir`,
//! `--user`, `--host`, `--port`, the password in `MYSQL_PWD`) and, when asked, its
//! `--log-copy-interval`. The stream goes through
//! this process, as it goes through dbm, to be counted: bytes over the time from the
//! start of both programs until both have exited, and the copy is checked to be a full
//! backup before it is removed.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::tail;
use testbed::servers::{MariaDb, Server};

/// What the plain copy did.
#[derive(Debug, Clone, Copy)]
pub struct Copy {
    /// Bytes of the xbstream.
    pub bytes: u64,
    pub seconds: f64,
}

impl Copy {
    pub fn rate_mb(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / 1e6
    }
}

/// How to reach db0 and how to run the tool.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub db0: &'a MariaDb,
    pub user: &'a str,
    pub password: &'a str,
    /// `--log-copy-interval` in ms; none: the tool's default.
    pub log_copy_interval_ms: Option<u64>,
}

/// Streams a backup of the source into `into` (created, must not exist) and removes it
/// again; fails when either program fails or runs longer than `timeout`.
pub fn copy(source: Source<'_>, into: &Path, timeout: Duration) -> Result<Copy> {
    std::fs::create_dir(into).with_context(|| format!("create {}", into.display()))?;
    let result = stream(source, into, timeout);
    let removed = std::fs::remove_dir_all(into);
    let copy = result?;
    removed.with_context(|| format!("remove the copy in {}", into.display()))?;
    Ok(copy)
}

fn stream(source: Source<'_>, into: &Path, timeout: Duration) -> Result<Copy> {
    let Source {
        db0,
        user,
        password,
        log_copy_interval_ms,
    } = source;
    let err_log = into.with_extension("mariabackup.log");
    let err =
        std::fs::File::create(&err_log).with_context(|| format!("create {}", err_log.display()))?;
    let start = Instant::now();
    let mut backup = Command::new("mariabackup")
        .arg("--backup")
        .arg("--stream=xbstream")
        .arg(format!("--datadir={}", db0.datadir().display()))
        .arg(format!("--user={user}"))
        .arg("--host=127.0.0.1")
        .arg(format!("--port={}", db0.addr().port()))
        .args(log_copy_interval_ms.map(|ms| format!("--log-copy-interval={ms}")))
        .env("MYSQL_PWD", password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .context("start mariabackup")?;
    let mut unpack = match Command::new("mbstream")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let _ = backup.kill();
            let _ = backup.wait();
            return Err(e).context("start mbstream");
        }
    };
    let mut from = backup.stdout.take().context("mariabackup's stdout")?;
    let mut to = unpack.stdin.take().context("mbstream's stdin")?;
    let copier = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                return Ok(bytes);
            }
            to.write_all(&buf[..n])?;
            bytes += n as u64;
        }
    });
    let deadline = start + timeout;
    let backup_status = wait_until(&mut backup, deadline);
    if backup_status.is_none() {
        // An unpacker that stopped reading would hold the copier forever.
        let _ = unpack.kill();
    }
    let copied = copier.join();
    let unpack_status = wait_until(&mut unpack, deadline);
    let seconds = start.elapsed().as_secs_f64();
    let complaint = |child: &mut Child| {
        let mut text = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text
    };
    let backup_log = std::fs::read_to_string(&err_log).unwrap_or_default();
    let _ = std::fs::remove_file(&err_log);
    match backup_status {
        Some(s) if s.success() => {}
        status => bail!(
            "mariabackup --backup from db0 failed ({}): {}",
            status.map_or("killed after the deadline".to_owned(), |s| s.to_string()),
            tail(&backup_log, 15)
        ),
    }
    match unpack_status {
        Some(s) if s.success() => {}
        status => bail!(
            "mbstream -x -C {} failed ({}): {}",
            into.display(),
            status.map_or("killed after the deadline".to_owned(), |s| s.to_string()),
            complaint(&mut unpack).trim()
        ),
    }
    let bytes = match copied {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(e).context("copy the backup stream"),
        Err(_) => bail!("the stream copier panicked"),
    };
    match backup_type(into).as_deref() {
        Some("full-backuped") => {}
        other => bail!(
            "the stream ended without a full backup in {} (backup_type {other:?})",
            into.display()
        ),
    }
    Ok(Copy { bytes, seconds })
}

/// Waits for `child` until `deadline`, then kills it; its status, none when killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `backup_type` of the backup's checkpoints file (named after xtrabackup in older
/// versions, after mariabackup in newer ones).
fn backup_type(dir: &Path) -> Option<String> {
    ["xtrabackup_checkpoints", "mariadb_backup_checkpoints"]
        .iter()
        .find_map(|name| std::fs::read_to_string(dir.join(name)).ok())?
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "backup_type").then(|| value.trim().to_owned())
        })
}
