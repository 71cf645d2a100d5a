//! The seed and prepare steps against a real MariaDB db0 from the test bed and a db1
//! datadir in a temporary directory, driven through `journal::Runner`: the copy holds
//! db0's rows, the recorded coordinates are db0's binlog position and GTID at the
//! backup, a rerun finds both steps done, and `abort` puts db1's old datadir back.
//!
//! db1's stop and start commands only leave marker files: the test bed's servers are
//! not stopped by command. The test starts a mariadbd on the seeded datadir itself.

use std::path::Path;

use dbm::config::Config;
use dbm::journal::{Action, Journal, PlanId, Runner, Step, StepId};
use dbm::seed::{Coordinates, Prepare, Seed};
use testbed::servers::{Host, MariaDb, MariaDbOptions, Server};

const DBM_PASSWORD: &str = "dbm-secret-5e1";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn plan(dir: &Path, db0: &MariaDb) -> Config {
    let pass = dir.join("db0.pass");
    std::fs::write(&pass, format!("{DBM_PASSWORD}\n")).unwrap();
    let d = dir.display();
    let text = format!(
        "state_file = \"{d}/migration.json\"\n\
         [db0]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"dbm\"\n\
         password_file = \"{pass}\"\ndatadir = \"{db0_data}\"\n\
         [db1]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"dbm\"\n\
         password_file = \"{pass}\"\ndatadir = \"{d}/db1\"\n\
         stop_command = \"touch {d}/stopped\"\nstart_command = \"touch {d}/started\"\n\
         [db2]\nhost = \"127.0.0.1\"\nport = 2\nuser = \"dbm\"\n\
         password_file = \"{pass}\"\ndatadir = \"{d}/db2\"\n\
         [replication]\nuser = \"repl\"\npassword_file = \"{pass}\"\n",
        port = db0.addr().port(),
        pass = pass.display(),
        db0_data = db0.datadir().display(),
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    appliance::config::load(&path).unwrap()
}

fn steps(config: &Config) -> Vec<Box<dyn Step>> {
    vec![Box::new(Seed::new(config)), Box::new(Prepare::new(config))]
}

#[test]
fn seed_and_prepare_copy_db0_with_its_coordinates_and_abort_restores_db1() {
    let db0 = MariaDb::start_with(Host::Loopback, MariaDbOptions::default()).unwrap();
    db0.query(&format!(
        "CREATE USER 'dbm'@'127.0.0.1' IDENTIFIED BY '{DBM_PASSWORD}';
         GRANT ALL PRIVILEGES ON *.* TO 'dbm'@'127.0.0.1';
         CREATE DATABASE app;
         CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
         INSERT INTO app.t SELECT seq, CONCAT('row ', seq) FROM mysql.seq_1_to_500;"
    ))
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = plan(dir.path(), &db0);
    // db1's datadir as it was before: the seed moves it aside, abort brings it back.
    let db1_data = dir.path().join("db1");
    std::fs::create_dir(&db1_data).unwrap();
    std::fs::write(db1_data.join("old-marker"), "db1 before").unwrap();

    let runner = Runner::new(&config.state_file, PlanId::of("seed test", b"seed test"));
    // The seed alone first, so db0's position right after the backup can be taken
    // (nothing else writes to db0) and then moved on before the prepare.
    let seed_only: Vec<Box<dyn Step>> = vec![Box::new(Seed::new(&config))];
    let report = block_on(runner.run(&seed_only)).unwrap();
    print!("{report}");
    let master = db0
        .query("SHOW MASTER STATUS; SELECT @@gtid_binlog_pos;")
        .unwrap();
    let lines: Vec<&str> = master.lines().collect();
    let status: Vec<&str> = lines[0].split('\t').collect();
    let expected = Coordinates {
        file: status[0].to_owned(),
        pos: status[1].parse().unwrap(),
        gtid: Some(lines[1].trim().to_owned()),
    };
    db0.query("INSERT INTO app.t VALUES (1001, 'after the backup');")
        .unwrap();
    let report = block_on(runner.run(&steps(&config))).unwrap();
    print!("{report}");
    assert_eq!(report.steps[0], (StepId::Seed, Action::AlreadyDone));
    assert!(dir.path().join("stopped").exists(), "db1.stop_command ran");
    assert!(dir.path().join("started").exists(), "db1.start_command ran");

    let journal = Journal::load(&config.state_file).unwrap().unwrap();
    let coordinates: Coordinates = journal.get(StepId::Prepare, "coordinates").unwrap();
    assert_eq!(coordinates, expected);
    let old: Option<std::path::PathBuf> = journal.get(StepId::Seed, "old_datadir").unwrap();
    let old = old.expect("db1's datadir was moved aside");
    assert!(old.join("old-marker").exists());
    assert!(!db1_data.join("old-marker").exists());

    // Done steps are not run again.
    let again = block_on(runner.run(&steps(&config))).unwrap();
    assert!(again.steps.iter().all(|(_, a)| *a == Action::AlreadyDone));

    // db1 on the prepared copy has db0's rows as of the backup, not the later one.
    {
        let db1 = MariaDb::start_on_datadir(
            Host::Loopback,
            &db1_data,
            MariaDbOptions {
                server_id: 2,
                ..MariaDbOptions::default()
            },
        )
        .unwrap();
        let rows = db1
            .query("SELECT COUNT(*), MAX(id) FROM app.t; SELECT v FROM app.t WHERE id = 123;")
            .unwrap();
        assert_eq!(rows, "500\t500\nrow 123\n");
    }

    // Abort: Prepare has nothing of its own to undo; Seed restores the old datadir.
    std::fs::remove_file(dir.path().join("started")).unwrap();
    let undone = block_on(runner.abort(&steps(&config))).unwrap();
    print!("{undone}");
    assert_eq!(
        std::fs::read_to_string(db1_data.join("old-marker")).unwrap(),
        "db1 before"
    );
    assert!(!old.exists());
    assert!(
        dir.path().join("started").exists(),
        "db1 started after undo"
    );
}

/// A wrong password for db0: the seed fails with the backup tool's own words, without
/// the password, and the journal records the failure.
#[test]
fn a_failed_backup_names_the_tool_and_hides_the_password() {
    let db0 = MariaDb::start_with(Host::Loopback, MariaDbOptions::default()).unwrap();
    db0.query("CREATE USER 'dbm'@'127.0.0.1' IDENTIFIED BY 'another-password';")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = plan(dir.path(), &db0);
    let runner = Runner::new(&config.state_file, PlanId::of("seed test", b"seed test"));
    let err = block_on(runner.run(&steps(&config)))
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(err.contains("step seed failed"), "{err}");
    assert!(
        err.contains("mariabackup --backup from db0 failed"),
        "{err}"
    );
    assert!(err.contains("Access denied"), "{err}");
    assert!(!err.contains(DBM_PASSWORD), "{err}");
    let journal = std::fs::read_to_string(&config.state_file).unwrap();
    assert!(!journal.contains(DBM_PASSWORD));
}
