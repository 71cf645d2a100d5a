//! The ban engine's two times, measured on the real kernel in a namespace of their own:
//! ban latency (the line crossing `maxretry` written -> the element in the kernel's
//! set, as `nft monitor` reports it) and the load of 100,000 saved bans at start.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testbed::{Netns, Process};

use crate::cmd;

/// Where the ban daemon serves /healthz in the namespace.
const METRICS: &str = "127.0.0.1:9101";

/// A namespace with gwx's ruleset and a directory for the ban daemon's files.
pub struct Gateway {
    pub ns: Netns,
    dir: tempfile::TempDir,
    gwx: PathBuf,
    inventory: PathBuf,
    jails: PathBuf,
}

impl Gateway {
    /// `gwx apply` in a fresh namespace; a jail `wordpress` on `<dir>/access.log` with
    /// `maxretry`, the filter `filter`.
    pub fn new(gwx: &Path, filter: &Path, maxretry: u32) -> Result<Gateway> {
        let ns = Netns::new("bans")?;
        let dir = tempfile::Builder::new()
            .prefix("bench-gwx-bans-")
            .tempdir()?;
        let inventory = dir.path().join("grid.toml");
        std::fs::write(
            &inventory,
            "[grid]\nname = \"bench\"\n\n[[gateway]]\nid = \"gw1\"\npublic = [\"203.0.113.1\"]\nprivate = [\"192.0.2.1\"]\n\n\
             [[service]]\nname = \"web\"\nprotocol = \"tcp\"\nport = 443\nbackend = \"192.0.2.2:443\"\nmode = \"proxy\"\n",
        )?;
        let jails = dir.path().join("bans.toml");
        std::fs::write(
            &jails,
            format!(
                "[bans]\nstate_dir = \"{d}/state\"\n\n[runtime]\nmetrics_listen = \"{METRICS}\"\n\n\
                 [[jail]]\nname = \"wordpress\"\nfilter = \"{f}\"\nlog = {{ file = \"{d}/access.log\" }}\nmaxretry = {maxretry}\nbantime = \"1h\"\n",
                d = dir.path().display(),
                f = filter.display(),
            ),
        )?;
        std::fs::write(dir.path().join("access.log"), "")?;
        cmd::checked(
            ns.command(&gwx.to_string_lossy()).args([
                "--config",
                &inventory.to_string_lossy(),
                "--gateway",
                "gw1",
                "apply",
            ]),
            Duration::from_secs(30),
        )
        .context("gwx apply")?;
        Ok(Gateway {
            ns,
            dir,
            gwx: gwx.to_owned(),
            inventory,
            jails,
        })
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/bans.json")
    }

    /// Starts `gwx bans run`; returns it and the time until it reported ready.
    pub fn start_daemon(&self, label: &str) -> Result<(Process, Duration)> {
        let mut c = self.ns.command(&self.gwx.to_string_lossy());
        c.args([
            "--config",
            &self.inventory.to_string_lossy(),
            "bans",
            "--jails",
            &self.jails.to_string_lossy(),
            "run",
        ]);
        let started = Instant::now();
        let mut p = Process::spawn(label, c, &self.dir.path().join(format!("{label}.log")))?;
        let ns = &self.ns;
        p.wait_ready(Duration::from_secs(300), || {
            testbed::clients::healthz(ns, METRICS)
        })
        .with_context(|| format!("{label} did not become ready"))?;
        Ok((p, started.elapsed()))
    }

    /// Bans in the kernel's sets.
    pub fn count_bans(&self) -> Result<usize> {
        let mut n = 0;
        for set in ["bans4", "bans6"] {
            let out = self
                .ns
                .exec("nft", &["-j", "list", "set", "inet", "gwx", set])?;
            // Every ban carries its jail as a comment, so each is an `elem` object.
            n += out.matches("\"val\"").count();
        }
        Ok(n)
    }

    fn flush_sets(&self) -> Result<()> {
        for set in ["bans4", "bans6"] {
            self.ns.exec("nft", &["flush", "set", "inet", "gwx", set])?;
        }
        Ok(())
    }
}

/// Latency figures, in milliseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    pub samples: Vec<f64>,
}

impl Latency {
    pub fn quantile(&self, q: f64) -> f64 {
        crate::table::quantile(&self.samples, q)
    }
}

/// `trials` times: write `maxretry` failure lines for a new address (the last one
/// separately, timed) and wait for `nft monitor` to show its element.
pub fn latency(gw: &Gateway, maxretry: u32, trials: usize) -> Result<Latency> {
    let (_daemon, _) = gw.start_daemon("gwx-bans-latency")?;
    let mut monitor = gw
        .ns
        .command("nft")
        .args(["monitor", "elements"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("nft monitor")?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let stdout = monitor.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    // nft monitor subscribes asynchronously: give it a moment before the first trial.
    std::thread::sleep(Duration::from_millis(300));
    let log = gw.dir.path().join("access.log");
    let mut samples = Vec::new();
    for t in 0..trials {
        let ip = format!("198.18.{}.{}", 100 + t / 250, t % 250 + 1);
        let line = format!(
            "{ip} - - [{}] \"POST /wp-login.php HTTP/1.1\" 200 4523 \"-\" \"bench\"\n",
            chrono_now()
        );
        append(&log, &line.repeat(maxretry as usize - 1))?;
        // Let the earlier failures be counted first: only the crossing line is timed.
        std::thread::sleep(Duration::from_millis(50));
        let written = Instant::now();
        append(&log, &line)?;
        let needle = format!("{ip} ");
        let deadline = written + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((at, text)) if text.contains(&needle) => {
                    samples.push(at.duration_since(written).as_secs_f64() * 1000.0);
                    break;
                }
                Ok(_) => continue,
                Err(_) => bail!("{ip} was not banned within 10 s of its line"),
            }
        }
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    Ok(Latency { samples })
}

/// A state file of `n` bans, ending in an hour; then a daemon start on empty sets.
/// Returns the time to ready and the bans the kernel holds afterwards.
pub fn load(gw: &Gateway, n: usize) -> Result<(Duration, usize)> {
    gw.flush_sets()?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let bans: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            // 10.0.0.0/8 and 2001:db8::/32 hosts: half and half.
            let net = if i % 2 == 0 {
                format!("10.{}.{}.{}/32", (i >> 16) & 255, (i >> 8) & 255, i & 255)
            } else {
                format!("2001:db8:{:x}:{:x}::/64", (i >> 16) & 0xffff, i & 0xffff)
            };
            serde_json::json!({"net": net, "jail": "wordpress", "until": now_ms + 3_600_000})
        })
        .collect();
    let state = serde_json::json!({"version": 1, "saved_at": now_ms, "bans": bans});
    let path = gw.state_file();
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    std::fs::write(&path, serde_json::to_vec(&state)?)?;
    let (_daemon, ready) = gw.start_daemon("gwx-bans-load")?;
    let count = gw.count_bans()?;
    Ok((ready, count))
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Now as nginx writes it: `21/Nov/2026:10:00:00 +0000`.
fn chrono_now() -> String {
    chrono::Utc::now()
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string()
}
