//! Whole migrations with `dbm run` against three real MariaDB servers while a client
//! inserts without pause: every acknowledged insert is on db1 and db2 afterwards, the
//! tables are the same on both, and the write freeze is reported. The second test kills
//! `dbm` (SIGKILL) in every step it can catch running and runs it again each time.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{BedOptions, bed, describe, frozen_at, journal, reported_freeze};
use testbed::servers::Server;

#[test]
fn a_migration_under_continuous_writes_loses_no_acknowledged_insert() {
    let bed = bed(&BedOptions {
        rows: 20_000,
        ..BedOptions::default()
    });
    let plan = bed.run_dbm(&["plan"]);
    assert!(plan.status.success(), "dbm plan failed");

    let writer = bed.writer();
    std::thread::sleep(Duration::from_secs(1));
    let out = bed.run_dbm(&["run"]);
    assert!(out.status.success(), "dbm run failed");
    // Writes go on, now to db1.
    std::thread::sleep(Duration::from_millis(500));
    let report = writer.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);

    let freeze = reported_freeze(&stdout).expect("dbm run reports the write freeze");
    eprintln!(
        "write freeze reported by dbm: {freeze} ms; {}",
        describe(&report, frozen_at(&bed.journal_path()))
    );
    let db0 = format!("127.0.0.1:{}", bed.db0.addr().port());
    let db1 = format!("127.0.0.1:{}", bed.db1.addr().port());
    assert_eq!(
        report.targets,
        [db0, db1],
        "the writer moved from db0 to db1"
    );
    assert!(
        stdout.contains("verify") && stdout.contains("db0 = db1 = db2"),
        "verify compared all three: {stdout}"
    );
    bed.check_nothing_lost(&report);
    // db0 stays frozen: nobody writes to the old master by mistake.
    assert_eq!(
        bed.db0.query("SELECT @@GLOBAL.read_only").unwrap().trim(),
        "1"
    );
    let status = bed.run_dbm(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("all steps done"));
    // A finished migration run again does nothing and says so.
    let again = bed.run_dbm(&["run"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("done earlier"));
}

/// The step of the journal that has started and not finished, if any.
fn running_step(journal: &serde_json::Value) -> Option<String> {
    let steps = journal.get("steps")?.as_object()?;
    steps
        .iter()
        .find(|(_, r)| r.get("finished").is_some_and(serde_json::Value::is_null))
        .map(|(name, _)| name.clone())
}

#[test]
fn killed_in_every_step_dbm_resumes_and_loses_nothing() {
    // file_pos mode here (the other test uses GTIDs); the hook takes a moment, as a
    // DNS update would, so that it too can be caught running.
    let bed = bed(&BedOptions {
        rows: 5_000,
        mode: Some("file_pos"),
        hook_extra: " && sleep 0.3",
        ..BedOptions::default()
    });
    let writer = bed.writer();
    let mut killed: BTreeSet<String> = BTreeSet::new();
    let started = Instant::now();
    let mut runs = 0;
    let out = loop {
        runs += 1;
        assert!(runs < 40, "dbm did not finish after {runs} runs");
        let mut child = bed
            .dbm(&["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dbm run");
        let mut victim = None;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if let Some(step) = journal(&bed.journal_path()).and_then(|j| running_step(&j))
                && !killed.contains(&step)
            {
                child.kill().expect("SIGKILL to dbm");
                victim = Some(step);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = child.wait_with_output().expect("waiting for dbm");
        match victim {
            Some(step) => {
                assert_eq!(out.status.signal(), Some(9), "dbm was killed");
                eprintln!(
                    "killed dbm in step {step} ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
                killed.insert(step);
            }
            None if out.status.success() => break out,
            None => panic!(
                "dbm run failed by itself after kills in {killed:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    let report = writer.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "killed in {killed:?}; {runs} runs; {}\n{stdout}",
        describe(&report, frozen_at(&bed.journal_path()))
    );
    // Every step that takes longer than a moment was caught; the instant ones
    // (upgrade not needed, unfreeze) may finish between two looks at the journal.
    for step in [
        "preflight",
        "seed",
        "prepare",
        "replicate_db1",
        "catch_up",
        "freeze",
        "promote",
        "hook",
        "repoint_db2",
        "verify",
    ] {
        assert!(
            killed.contains(step),
            "never caught {step} running: {killed:?}"
        );
    }
    bed.check_nothing_lost(&report);
    assert!(stdout.contains("migration done"));
}

fn count(db: &testbed::servers::MariaDb) -> u64 {
    db.query("SELECT COUNT(*) FROM app.writes")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_lagging_db1_unfreezes_db0_and_abort_rolls_everything_back() {
    let bed = bed(&BedOptions {
        max_catchup_secs: 1,
        ..BedOptions::default()
    });
    let writer = bed.writer();
    let out = bed.run_dbm(&["run", "--until", "catch_up"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped before freeze"));

    // db1 stops applying: the freeze cannot complete within max_catchup_secs = 1.
    bed.db1.query("STOP SLAVE SQL_THREAD").unwrap();
    let out = bed.run_dbm(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step freeze failed")
            && stderr.contains("db1 did not apply db0's final position")
            && stderr.contains("db0 is writable again"),
        "{stderr}"
    );
    assert_eq!(
        bed.db0.query("SELECT @@GLOBAL.read_only").unwrap().trim(),
        "0"
    );
    // The writer gets through to db0 again.
    let before = count(&bed.db0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        count(&bed.db0) > before,
        "no writes on db0 after the failed freeze"
    );
    let status = String::from_utf8_lossy(&bed.run_dbm(&["status"]).stdout).into_owned();
    assert!(
        status.contains("> freeze") && status.contains("failed"),
        "{status}"
    );

    // Abort: db1 stops replicating and gets its old datadir back, started.
    let out = bed.run_dbm(&["abort"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "db0 is writable",
        "db1 no longer replicates from db0",
        "db1's old datadir is back",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing: {stdout}");
    }
    assert_eq!(bed.db1.query("SHOW SLAVE STATUS").unwrap().trim(), "");
    assert_eq!(
        bed.db1.query("SHOW DATABASES LIKE 'app'").unwrap().trim(),
        "",
        "db1 still has the seeded data"
    );
    let again = bed.run_dbm(&["run"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("was aborted"));

    let report = writer.stop();
    let on_db0 = common::ids(&bed.db0);
    assert!(
        report
            .acked
            .iter()
            .all(|id| on_db0.binary_search(id).is_ok()),
        "an acknowledged insert is missing on db0"
    );
    assert_eq!(report.targets.len(), 1, "the writer never left db0");
}

#[test]
fn a_migration_with_db0_and_db1_over_ssh() {
    // This machine is both "remote" hosts: every command and file operation on db0's
    // and db1's side goes through a real sshd with its own key.
    let sshd = testbed::servers::Sshd::start(testbed::servers::Host::Loopback).unwrap();
    let bed = bed(&BedOptions {
        ssh: Some(&sshd),
        ..BedOptions::default()
    });
    let plan = bed.run_dbm(&["plan"]);
    let stdout = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{stdout}");
    assert!(
        stdout.contains("mariabackup on db0: /usr/bin/mariabackup")
            && stdout.contains("db1 free disk")
            && stdout.contains("over ssh"),
        "{stdout}"
    );
    let writer = bed.writer();
    let out = bed.run_dbm(&["run"]);
    assert!(out.status.success());
    let report = writer.stop();
    bed.check_nothing_lost(&report);
    // The password never appears on a command line sshd logged.
    let log = std::fs::read_to_string(sshd.log_path()).unwrap_or_default();
    assert!(!log.contains(common::PASSWORD));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host=db1's host (root@127.0.0.1)"),
        "{stderr}"
    );
}
