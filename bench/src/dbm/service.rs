//! Everything this benchmark assumes about dbm, kept in one place so it is easy to
//! adjust while dbm's command line settles:
//!
//! * the binary is `target/release/dbm` (`cargo build --release -p dbm`);
//! * `dbm --config PLAN plan` checks the plan and changes nothing; `dbm --config PLAN
//!   run` migrates, printing a line per step, `<step> done: <summary>` (the step name
//!   first, padded), then `write freeze: <N> ms` and `migration done`, and exits 0;
//! * the seed's summary reads `seeded 2.1 GB from db0 in 31.0 s (68.1 MB/s); ...`:
//!   the rate is dbm's own, stream bytes over the time from the first byte asked for to
//!   the unpacked backup checked (units in powers of 1000);
//! * the journal at `state_file` is JSON with `steps.<name>.started` and
//!   `.finished` as RFC 3339 times;
//! * the plan is `services/dbm/src/config.rs`'s, as the service's own end-to-end test
//!   writes it: db1 stopped and started with the test bed's control commands, and a
//!   cutover hook that points the writer's target file at db1.
//!
//! While dbm is being written, a missing binary or `run` subcommand skips the
//! migration (see [`unavailable`]); the data and the plain copy are still measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::cmd;

/// The subcommand that migrates.
pub const RUN: &str = "run";

/// `target/release/dbm` in this workspace.
pub fn default_binary() -> PathBuf {
    cmd::workspace_binary("dbm")
}

/// Why `dbm run` cannot run yet, if it cannot: the binary is not built, or it has no
/// `run` subcommand (`dbm run --help` fails).
pub fn unavailable(dbm: &Path) -> Option<String> {
    cmd::unavailable(dbm, "dbm", RUN, None)
}

/// One server in the plan.
#[derive(Debug, Clone)]
pub struct Server {
    pub port: u16,
    pub datadir: PathBuf,
}

/// What the plan needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    pub journal: PathBuf,
    /// The file holding the password of `dbm` and `repl`.
    pub password_file: PathBuf,
    pub db0: Server,
    pub db1: Server,
    pub db2: Server,
    /// db1's control commands.
    pub stop: String,
    pub start: String,
    /// The writer's target file, which the hook points at db1.
    pub target: PathBuf,
}

/// The plan file for `plan`: the cutover settings are dbm's defaults (grace, catch-up
/// limit, heartbeat lag) except the hook; the seed's `log_copy_interval_ms` is
/// [`super::LOG_COPY_INTERVAL_MS`], which the second plain copy uses too.
pub fn plan(plan: &Plan, user: &str, repl_user: &str) -> String {
    let mut toml = format!(
        "# Written by bench/dbm for one run.\nstate_file = \"{}\"\n",
        plan.journal.display()
    );
    for (name, server) in [("db0", &plan.db0), ("db1", &plan.db1), ("db2", &plan.db2)] {
        let _ = write!(
            toml,
            "\n[{name}]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\n\
             password_file = \"{pass}\"\ndatadir = \"{datadir}\"\n",
            port = server.port,
            pass = plan.password_file.display(),
            datadir = server.datadir.display(),
        );
        if name == "db1" {
            let _ = write!(
                toml,
                "stop_command = \"{}\"\nstart_command = \"{}\"\n",
                toml_escape(&plan.stop),
                toml_escape(&plan.start)
            );
        }
    }
    // The hook moves the writer, as a DNS or proxy switch would move clients: an
    // atomic rename of its target file.
    let target = plan.target.display();
    let hook = format!(
        "printf '127.0.0.1:%s\\n' \"$DBM_DB1_PORT\" > {target}.new && mv {target}.new {target}"
    );
    let _ = write!(
        toml,
        "\n[replication]\nuser = \"{repl_user}\"\npassword_file = \"{pass}\"\n\
         \n[seed]\nlog_copy_interval_ms = {interval}\n\
         \n[cutover]\nhook = \"{hook}\"\n",
        pass = plan.password_file.display(),
        interval = super::LOG_COPY_INTERVAL_MS,
        hook = toml_escape(&hook),
    );
    toml
}

/// `s` inside a TOML basic string.
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `dbm --config PLAN plan`: the report, and whether every precondition held.
pub fn check_plan(dbm: &Path, plan: &Path) -> Result<(bool, String)> {
    let mut check = Command::new(dbm);
    check.arg("--config").arg(plan).arg("plan");
    let out = cmd::run(&mut check, Duration::from_secs(120))?;
    let text = format!("{}{}", out.stdout, out.stderr);
    Ok((out.status.success(), text))
}

/// What a `dbm run` did.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// None when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    /// Where its log (stderr) is.
    pub log: PathBuf,
    pub seconds: f64,
}

impl RunOutput {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `dbm --config PLAN run`, its log (stderr) into `log`, each line it prints
/// copied to `out` as it comes (indented); killed with whatever it started in its
/// process group after `timeout`. db1's server, started by `start_command` in a session
/// of its own, is not in that group.
pub fn run(
    dbm: &Path,
    plan: &Path,
    log: &Path,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<RunOutput> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut command = Command::new(dbm);
    command
        .arg("--config")
        .arg(plan)
        .arg(RUN)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    let shown = cmd::shown(&command);
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("start `{shown}`"))?;
    let pid = child.id();
    let stdout = child.stdout.take().context("dbm's stdout")?;
    let (lines, printed) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let deadline = start + timeout;
    let mut killed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match printed.recv_timeout(left) {
            Ok(line) => {
                writeln!(out, "   | {line}")?;
                out.flush()?;
                text.push_str(&line);
                text.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
                killed = true;
                break;
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("wait for `{shown}`"))?;
    let seconds = start.elapsed().as_secs_f64();
    let _ = reader.join();
    Ok(RunOutput {
        status: (!killed).then_some(status),
        stdout: text,
        log: log.to_owned(),
        seconds,
    })
}

/// The summary of `step`'s `<step> done: <summary>` line.
pub fn step_summary<'a>(stdout: &'a str, step: &str) -> Option<&'a str> {
    stdout.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(step)?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        rest.trim_start().strip_prefix("done:").map(str::trim)
    })
}

/// dbm's seed rate in MB/s: the `(68.1 MB/s)` of the seed step's summary.
pub fn seed_rate(stdout: &str) -> Option<f64> {
    let summary = step_summary(stdout, "seed")?;
    let after = &summary[summary.find("seeded ")?..];
    let open = after.find(" (")? + 2;
    let close = open + after[open..].find("/s)")?;
    bytes(&after[open..close]).map(|b| b / 1e6)
}

/// `2.1 GB`, `512 B`, `68.1 MB` in bytes (powers of 1000, as dbm prints them).
fn bytes(text: &str) -> Option<f64> {
    let (value, unit) = text.trim().split_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some(value * scale)
}

/// The `write freeze: N ms` line.
pub fn write_freeze(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        l.trim()
            .strip_prefix("write freeze: ")?
            .strip_suffix(" ms")?
            .parse()
            .ok()
    })
}

/// Whether dbm said `migration done`.
pub fn migration_done(stdout: &str) -> bool {
    stdout.lines().any(|l| l.trim() == "migration done")
}

/// When a step of the journal started and finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
}

impl Span {
    pub fn millis(&self) -> i64 {
        (self.finished - self.started).num_milliseconds()
    }
}

/// The finished steps of the journal at `path`, by name.
pub fn journal_steps(path: &Path) -> Result<BTreeMap<String, Span>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse_journal(&text).with_context(|| format!("read the journal {}", path.display()))
}

fn parse_journal(text: &str) -> Result<BTreeMap<String, Span>> {
    let json: serde_json::Value = serde_json::from_str(text)?;
    let steps = json
        .get("steps")
        .and_then(serde_json::Value::as_object)
        .context("no `steps` object")?;
    let time = |record: &serde_json::Value, key: &str| {
        let s = record.get(key)?.as_str()?;
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    Ok(steps
        .iter()
        .filter_map(|(name, record)| {
            let span = Span {
                started: time(record, "started")?,
                finished: time(record, "finished")?,
            };
            Some((name.clone(), span))
        })
        .collect())
}

/// The cutover's steps, in order: from the freeze of db0 until the clients are on db1.
pub const CUTOVER: [&str; 4] = ["freeze", "promote", "unfreeze", "hook"];

/// The start of `freeze` and the end of `hook` (or of `unfreeze`, for a plan without
/// a hook).
pub fn cutover_window(steps: &BTreeMap<String, Span>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let end = steps.get("hook").or_else(|| steps.get("unfreeze"))?;
    Some((steps.get("freeze")?.started, end.finished))
}

/// The cutover from the journal: (the start of `freeze` to the end of `hook`, the sum
/// of the four steps' durations), in ms; none unless all four are there.
pub fn cutover(steps: &BTreeMap<String, Span>) -> Option<(i64, i64)> {
    let spans: Vec<&Span> = CUTOVER
        .iter()
        .map(|s| steps.get(*s))
        .collect::<Option<_>>()?;
    let whole = (spans[3].finished - spans[0].started).num_milliseconds();
    Some((whole, spans.iter().map(|s| s.millis()).sum()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDOUT: &str = "\
preflight      done: db0 MariaDB 10.11.19, 3 servers reachable
seed           done: seeded 2.1 GB from db0 in 31.0 s (68.1 MB/s); db1's old datadir is /tmp/x.dbm-old-1
prepare        done: prepared
freeze         done: db0 read-only; final position 0-1-123
hook           done: clients switched to db1; write freeze 412 ms
write freeze: 412 ms
migration done
";

    #[test]
    fn reads_the_seed_rate_the_freeze_and_the_end() {
        assert_eq!(seed_rate(STDOUT), Some(68.1));
        assert_eq!(write_freeze(STDOUT), Some(412));
        assert!(migration_done(STDOUT));
        assert_eq!(step_summary(STDOUT, "prepare"), Some("prepared"));
        assert_eq!(step_summary(STDOUT, "pre"), None);
        assert!(!migration_done("migration done? no\n"));
        let slow = STDOUT.replace("(68.1 MB/s)", "(950.0 kB/s)");
        assert_eq!(seed_rate(&slow), Some(0.95));
        assert_eq!(seed_rate("seed failed\n"), None);
    }

    #[test]
    fn the_cutover_spans_freeze_to_hook() {
        let journal = r#"{"format": 1, "steps": {
            "seed": {"started": "2026-11-21T10:00:00.000Z", "finished": "2026-11-21T10:00:31.000Z", "attempts": 1},
            "freeze": {"started": "2026-11-21T10:01:00.000Z", "finished": "2026-11-21T10:01:00.300Z", "attempts": 1},
            "promote": {"started": "2026-11-21T10:01:00.310Z", "finished": "2026-11-21T10:01:00.400Z", "attempts": 1},
            "unfreeze": {"started": "2026-11-21T10:01:00.400Z", "finished": "2026-11-21T10:01:00.420Z", "attempts": 1},
            "hook": {"started": "2026-11-21T10:01:00.430Z", "finished": "2026-11-21T10:01:00.500Z", "attempts": 1},
            "verify": {"started": "2026-11-21T10:01:01.000Z", "finished": null, "attempts": 1}
        }}"#;
        let steps = parse_journal(journal).unwrap();
        assert_eq!(steps["seed"].millis(), 31_000);
        assert!(
            !steps.contains_key("verify"),
            "unfinished steps are left out"
        );
        assert_eq!(cutover(&steps), Some((500, 480)));
        let mut partial = steps.clone();
        partial.remove("hook");
        assert_eq!(cutover(&partial), None);
    }

    #[test]
    fn the_plan_names_every_server_and_the_hook() {
        let server = |port, dir: &str| Server {
            port,
            datadir: dir.into(),
        };
        let text = plan(
            &Plan {
                journal: "/tmp/b/journal.json".into(),
                password_file: "/tmp/b/pass".into(),
                db0: server(3306, "/tmp/db0"),
                db1: server(3307, "/tmp/db1"),
                db2: server(3308, "/tmp/db2"),
                stop: "/bin/sh /tmp/db1/stop.sh".into(),
                start: "/bin/sh '/tmp/db 1/start.sh'".into(),
                target: "/tmp/b/target".into(),
            },
            "dbm",
            "repl",
        );
        let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(doc["db1"]["port"].as_integer(), Some(3307));
        assert_eq!(doc["db2"]["datadir"].as_str(), Some("/tmp/db2"));
        assert_eq!(
            doc["db1"]["start_command"].as_str(),
            Some("/bin/sh '/tmp/db 1/start.sh'")
        );
        assert!(doc["db0"].get("start_command").is_none());
        assert_eq!(doc["replication"]["user"].as_str(), Some("repl"));
        let hook = doc["cutover"]["hook"].as_str().unwrap();
        assert!(
            hook.contains("\"$DBM_DB1_PORT\" > /tmp/b/target.new"),
            "{hook}"
        );
    }
}
