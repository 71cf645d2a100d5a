//! `dbm plan` against three real MariaDB servers from the test bed, on loopback with
//! their own data dirs and ports: a good plan passes and lists the steps; each broken
//! precondition (wrong password, binary log off, duplicate server ids, no
//! log_slave_updates, db2 not replicating from db0) fails with a message naming the server and what to fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use dbm::config::Config;
use dbm::plan::{PlanReport, Status};
use testbed::servers::{Host, MariaDb, MariaDbOptions, Server};

const DBM_PASSWORD: &str = "dbm-secret-9f3";
const REPL_PASSWORD: &str = "repl-secret-41c";

fn start(server_id: u32, log_bin: bool, extra: &[&str]) -> MariaDb {
    let db = MariaDb::start_with(
        Host::Loopback,
        MariaDbOptions {
            server_id,
            log_bin,
            extra_args: extra.iter().map(|a| (*a).to_owned()).collect(),
        },
    )
    .unwrap();
    // The fresh grant tables let nobody in over TCP: dbm's and the replica's users,
    // kept out of the binary log so db2 does not replay them from db0.
    db.query(&format!(
        "SET SESSION sql_log_bin = 0;
         CREATE USER 'dbm'@'127.0.0.1' IDENTIFIED BY '{DBM_PASSWORD}';
         GRANT ALL PRIVILEGES ON *.* TO 'dbm'@'127.0.0.1' WITH GRANT OPTION;
         CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}';
         GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
    ))
    .unwrap();
    db
}

/// The three servers and a plan for them in a private directory.
struct Bed {
    dir: tempfile::TempDir,
    db: [MariaDb; 3],
}

impl Bed {
    /// `[db0, db1, db2]`, one after the other: started from other threads, they
    /// would die with them (the test bed's servers have a parent-death signal).
    /// `replica`: db2 replicates from db0, as a plan needs.
    fn start(options: [(u32, bool, &'static [&'static str]); 3], replica: bool) -> Bed {
        let db = options.map(|(id, log_bin, extra)| start(id, log_bin, extra));
        if replica {
            db[2].replicate_from(&db[0], "repl", REPL_PASSWORD).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        for name in ["db0", "db1", "db2"] {
            std::fs::write(
                dir.path().join(format!("{name}.pass")),
                format!("{DBM_PASSWORD}\n"),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("repl.pass"), format!("{REPL_PASSWORD}\n")).unwrap();
        Bed { dir, db }
    }

    fn pass_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pass"))
    }

    fn plan_text(&self) -> String {
        let section = |name: &str, db: &MariaDb| {
            format!(
                "[{name}]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dbm\"\n\
                 password_file = \"{}\"\ndatadir = \"{}\"\n",
                db.addr().port(),
                self.pass_file(name).display(),
                db.datadir().display()
            )
        };
        format!(
            "state_file = \"{}\"\n{}{}start_command = \"true\"\nstop_command = \"true\"\n{}\
             [replication]\nuser = \"repl\"\npassword_file = \"{}\"\n\
             [cutover]\nhook = \"true\"\n",
            self.dir.path().join("migration.json").display(),
            section("db0", &self.db[0]),
            section("db1", &self.db[1]),
            section("db2", &self.db[2]),
            self.pass_file("repl").display()
        )
    }

    fn plan_file(&self) -> PathBuf {
        let path = self.dir.path().join("plan.toml");
        std::fs::write(&path, self.plan_text()).unwrap();
        path
    }

    fn config(&self) -> Config {
        appliance::config::load(&self.plan_file()).unwrap()
    }

    fn check(&self) -> PlanReport {
        let config = self.config();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(dbm::plan::check(&config))
    }
}

/// `dbm plan --config FILE`: exit code and stdout.
fn run_dbm(config: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dbm"))
        .args(["plan", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn failures(report: &PlanReport) -> Vec<String> {
    report.failures().map(|c| c.message.clone()).collect()
}

/// db0 -> db1 -> db2 as they should be: ids 1, 2, 3, binary logs on, db1 logs what it
/// applies. The plan passes; a wrong password for db1 is then named with its file.
#[test]
fn a_good_plan_passes_and_a_wrong_password_is_named() {
    let bed = Bed::start(
        [
            (1, true, &[]),
            (2, true, &["--log-slave-updates"]),
            (3, true, &[]),
        ],
        true,
    );
    let report = bed.check();
    print!("{report}");
    assert!(report.ok(), "{report}");
    let checks: Vec<&str> = report.checks.iter().map(|c| c.what.as_str()).collect();
    for what in [
        "db0 login",
        "db1 login",
        "db2 login",
        "db0 binary log",
        "server ids",
        "db1 log_slave_updates",
        "db1 version",
        "db1 free disk",
        "replication user on db0",
        "replication user on db1",
        "mariabackup on db0",
        "replication mode",
        "db2 replicates from db0",
    ] {
        assert!(checks.contains(&what), "no check {what:?} in\n{report}");
    }
    let steps: Vec<&str> = report.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        steps,
        [
            "preflight",
            "seed",
            "prepare",
            "upgrade",
            "replicate_db1",
            "catch_up",
            "freeze",
            "promote",
            "unfreeze",
            "hook",
            "repoint_db2",
            "verify"
        ],
        "{report}"
    );

    let path = bed.plan_file();
    let (code, stdout, stderr) = run_dbm(&path);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("all preconditions hold"), "{stdout}");
    assert!(
        stdout.contains(" 1. preflight") && stdout.contains("verify"),
        "{stdout}"
    );
    assert!(!stdout.contains(DBM_PASSWORD) && !stdout.contains(REPL_PASSWORD));

    // A wrong password for db1.
    std::fs::write(bed.pass_file("db1"), "not-the-password\n").unwrap();
    let report = bed.check();
    let expected = format!(
        "db1 (127.0.0.1:{}): access denied for user 'dbm' — check db1.password_file ({})",
        bed.db[1].addr().port(),
        bed.pass_file("db1").display()
    );
    assert_eq!(
        failures(&report),
        std::slice::from_ref(&expected),
        "{report}"
    );
    let (code, stdout, stderr) = run_dbm(&path);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(!stdout.contains("not-the-password") && !stderr.contains("not-the-password"));

    // A wrong replication password: named with its key, for each source.
    std::fs::write(bed.pass_file("db1"), format!("{DBM_PASSWORD}\n")).unwrap();
    std::fs::write(bed.pass_file("repl"), "wrong\n").unwrap();
    let report = bed.check();
    let f = failures(&report);
    assert_eq!(f.len(), 2, "{report}");
    assert!(
        f[0].starts_with("db0 (127.0.0.1:")
            && f[0].contains("access denied for user 'repl' — check replication.password_file"),
        "{report}"
    );
}

/// Every broken precondition at once, each named: db0 without a binary log, db0 and db2
/// with the same server id, db1 without log_slave_updates.
#[test]
fn binlog_off_duplicate_ids_and_no_log_slave_updates_are_named() {
    let bed = Bed::start([(1, false, &[]), (2, true, &[]), (1, true, &[])], false);
    let report = bed.check();
    assert!(!report.ok());
    let f = failures(&report);
    let has = |needle: &str| f.iter().any(|m| m.contains(needle));
    assert!(
        has(
            "db0 has log_bin OFF: start it with --log-bin; replication from db0 needs its binary log"
        ),
        "{report}"
    );
    assert!(has("db0 and db2 both have server_id 1"), "{report}");
    assert!(has("db1 has log_slave_updates OFF"), "{report}");
    assert!(
        has("db2 is no replica: make it a replica of db0"),
        "{report}"
    );
    assert_eq!(f.len(), 4, "{report}");
    for check in report.checks.iter().filter(|c| c.what.ends_with("login")) {
        assert_eq!(check.status, Status::Ok, "{report}");
    }

    let (code, stdout, stderr) = run_dbm(&bed.plan_file());
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("4 precondition(s) failed"), "{stdout}");
    assert!(
        stdout.contains("db0 and db2 both have server_id 1"),
        "{stdout}"
    );
}

/// A bad plan file: exit 64 with every problem listed, before connecting anywhere.
#[test]
fn config_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(
        &path,
        "state_file = \"/var/lib/dbm/m.json\"\n\
         [db0]\nhost = \"127.0.0.1\"\nsocket = \"/run/mysqld/mysqld.sock\"\nuser = \"dbm\"\n\
         password_file = \"/etc/dbm/db0.pass\"\npassword_env = \"DB0\"\ndatadir = \"/var/lib/mysql\"\n\
         [db1]\nhost = \"127.0.0.2\"\nuser = \"dbm\"\npassword_env = \"DB1\"\ndatadir = \"/srv/db1\"\n\
         [db2]\nhost = \"127.0.0.3\"\nuser = \"dbm\"\npassword_env = \"DB2\"\ndatadir = \"/srv/db2\"\n\
         [replication]\nuser = \"repl\"\npassword_env = \"REPL\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run_dbm(&path);
    assert_eq!(code, 64, "{stdout}{stderr}");
    for key in [
        "db0",
        "host or socket",
        "not both",
        "db1.start_command",
        "db1.stop_command",
    ] {
        assert!(stderr.contains(key), "{key} missing in {stderr}");
    }
}
