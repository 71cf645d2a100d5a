//! The migration test bed: three real MariaDB servers on loopback (db0 the master with
//! data, db2 its replica, db1 the empty new master that `dbm` stops and starts through
//! the test bed's control commands), a plan for them, and `dbm` run as a process.

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use testbed::servers::{Host, MariaDb, MariaDbOptions, Server};
use testbed::sql_writer::{SqlWriter, WriterOptions, WriterReport, set_target};

pub const PASSWORD: &str = "dbm-e2e-7f3";
pub const APP_TABLE: &str = "app.writes";

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub db0: MariaDb,
    pub db1: MariaDb,
    pub db2: MariaDb,
    pub plan: PathBuf,
    pub target: PathBuf,
}

/// How a test wants its bed.
pub struct BedOptions<'a> {
    /// Rows of application data on db0 before the migration.
    pub rows: u32,
    /// `replication.mode`; `None`: dbm chooses.
    pub mode: Option<&'a str>,
    /// Appended to the hook's command.
    pub hook_extra: &'a str,
    pub max_catchup_secs: u32,
    /// db0's and db1's commands go over ssh to this server (which is this machine).
    pub ssh: Option<&'a testbed::servers::Sshd>,
}

impl Default for BedOptions<'_> {
    fn default() -> Self {
        BedOptions {
            rows: 2_000,
            mode: None,
            hook_extra: "",
            max_catchup_secs: 30,
            ssh: None,
        }
    }
}

/// The three servers, db2 replicating from db0, application data on db0, and a plan.
pub fn bed(o: &BedOptions<'_>) -> Bed {
    let (rows, mode, hook_extra, max_catchup_secs) =
        (o.rows, o.mode, o.hook_extra, o.max_catchup_secs);
    let options = |server_id: u32, extra: &[&str]| MariaDbOptions {
        server_id,
        log_bin: true,
        extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
    };
    let db0 = MariaDb::start_with(Host::Loopback, options(1, &[])).expect("db0");
    let db1 =
        MariaDb::start_with(Host::Loopback, options(2, &["--log-slave-updates"])).expect("db1");
    let db2 = MariaDb::start_with(Host::Loopback, options(3, &[])).expect("db2");
    for db in [&db0, &db1, &db2] {
        db.create_migration_users(PASSWORD)
            .expect("creating the users");
    }
    db2.replicate_from(&db0, "repl", PASSWORD)
        .expect("db2 replicating from db0");
    db0.query(&format!(
        "CREATE DATABASE app;
         CREATE TABLE {APP_TABLE} (id BIGINT UNSIGNED PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB;
         CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT, note TEXT) ENGINE=InnoDB;
         INSERT INTO app.items SELECT seq, CONCAT('item ', seq), seq % 97, IF(seq % 5 = 0, NULL, REPEAT('x', seq % 50)) FROM mysql.seq_1_to_{rows};
         CREATE TABLE app.pairs (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b)) ENGINE=InnoDB;
         INSERT INTO app.pairs SELECT seq DIV 3, CONCAT('k', seq % 3), seq FROM mysql.seq_1_to_300;"
    ))
    .expect("application data on db0");

    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    let control = db1.control_commands().expect("db1's control commands");
    let target = dir.path().join("target");
    set_target(&target, "127.0.0.1", db0.addr().port()).unwrap();
    let d = dir.path().display();
    let (ssh_options, ssh) = match o.ssh {
        Some(sshd) => (
            format!("ssh_options = {:?}\n", sshd.client_options()),
            format!("ssh = \"{}\"\n", sshd.destination()),
        ),
        None => (String::new(), String::new()),
    };
    let server = |name: &str, db: &MariaDb| {
        format!(
            "[{name}]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dbm\"\npassword_file = \"{}\"\n\
             datadir = \"{}\"\n{}",
            db.addr().port(),
            pass.display(),
            db.datadir().display(),
            if name == "db2" { "" } else { ssh.as_str() }
        )
    };
    let mode = mode
        .map(|m| format!("mode = \"{m}\"\n"))
        .unwrap_or_default();
    // The hook switches the writer, as a DNS or proxy switch would switch clients.
    let text = format!(
        "state_file = \"{d}/journal.json\"\n\
         {ssh_options}\
         {db0}\
         {db1}stop_command = \"{stop}\"\nstart_command = \"{start}\"\n\
         {db2}\
         [replication]\nuser = \"repl\"\npassword_file = \"{pass}\"\n{mode}\
         [cutover]\n\
         hook = \"printf '127.0.0.1:%s\\\\n' $DBM_DB1_PORT > {d}/target.new && mv {d}/target.new {d}/target{hook_extra}\"\n\
         grace_secs = 1\nmax_catchup_secs = {max_catchup_secs}\n\
         [verify]\nchunk_rows = 500\n",
        db0 = server("db0", &db0),
        db1 = server("db1", &db1),
        db2 = server("db2", &db2),
        stop = control.stop,
        start = control.start,
        pass = pass.display(),
    );
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, text).unwrap();
    Bed {
        dir,
        db0,
        db1,
        db2,
        plan,
        target,
    }
}

impl Bed {
    /// `dbm --config <plan> <args>`, not yet started.
    pub fn dbm(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbm"));
        cmd.arg("--config").arg(&self.plan).args(args);
        cmd
    }

    pub fn run_dbm(&self, args: &[&str]) -> Output {
        let out = self.dbm(args).output().expect("starting dbm");
        eprintln!(
            "dbm {args:?}: {}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        );
        out
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal.json")
    }

    pub fn writer(&self) -> SqlWriter {
        SqlWriter::start(WriterOptions {
            user: "app".to_owned(),
            password: PASSWORD.to_owned(),
            table: APP_TABLE.to_owned(),
            target_file: self.target.clone(),
            pause: Duration::from_millis(1),
        })
    }

    /// Checks that every acknowledged insert is on db1 and, once db2 has caught up with
    /// db1, on db2; and that the tables are the same on both.
    pub fn check_nothing_lost(&self, report: &WriterReport) {
        assert!(!report.acked.is_empty(), "the writer got no insert through");
        self.db2
            .wait_replica_caught_up(&self.db1, Duration::from_secs(120))
            .expect("db2 catching up with db1");
        for (name, db) in [("db1", &self.db1), ("db2", &self.db2)] {
            let ids = ids(db);
            let missing: Vec<u64> = report
                .acked
                .iter()
                .copied()
                .filter(|id| ids.binary_search(id).is_err())
                .collect();
            assert!(
                missing.is_empty(),
                "{} acknowledged insert(s) missing on {name}, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        let checksum = |db: &MariaDb| {
            db.query("CHECKSUM TABLE app.writes, app.items, app.pairs")
                .expect("CHECKSUM TABLE")
        };
        assert_eq!(
            checksum(&self.db1),
            checksum(&self.db2),
            "db1 and db2 differ"
        );
    }
}

/// The ids in the writer's table, sorted.
pub fn ids(db: &MariaDb) -> Vec<u64> {
    let mut ids: Vec<u64> = db
        .query(&format!("SELECT id FROM {APP_TABLE}"))
        .expect("reading the ids")
        .lines()
        .map(|l| l.trim().parse().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    out.push('\n');
    out
}

/// The `write freeze: N ms` line of `dbm run`'s output.
pub fn reported_freeze(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        l.strip_prefix("write freeze: ")?
            .strip_suffix(" ms")?
            .parse()
            .ok()
    })
}

/// Reads the journal as JSON (the test looks at it as an operator's script would).
pub fn journal(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// When the freeze began, from the journal (`freeze`'s fact `frozen_at`).
pub fn frozen_at(journal_path: &Path) -> Option<std::time::SystemTime> {
    let ms = journal(journal_path)?
        .pointer("/steps/freeze/data/frozen_at")?
        .as_u64()?;
    Some(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

/// What the writer saw, for the test's output: the stall around the cutover and the
/// others (the backup's locks).
pub fn describe(report: &WriterReport, frozen_at: Option<std::time::SystemTime>) -> String {
    let cutover = frozen_at.and_then(|t| report.stall_at(t));
    format!(
        "{} inserts acknowledged ({:.0}/s), {} failed; client-side window at the cutover: {}; \
         all stalls over {} ms: {:?}; targets {:?}; errors {:?}",
        report.acked.len(),
        report.rate(),
        report.failures,
        cutover.map_or("no stall".to_owned(), |s| format!(
            "{} ms",
            s.length.as_millis()
        )),
        testbed::sql_writer::STALL.as_millis(),
        report
            .stalls
            .iter()
            .map(|s| s.length.as_millis())
            .collect::<Vec<_>>(),
        report.targets,
        report.errors
    )
}
