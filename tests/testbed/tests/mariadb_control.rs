//! A real MariaDB stopped and started by its control commands, the way the migration
//! tool drives its target server: through `sh -c`, with the data dir replaced while
//! it is down; and one MariaDB replicating from another.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use testbed::Netns;
use testbed::servers::{Host, MariaDb, MariaDbOptions, Server};

/// How long a control command may take here: the scripts give up after two minutes.
const COMMAND_LIMIT: Duration = Duration::from_secs(150);

/// Runs `command` with `sh -c` as the migration tool does, reading its output to the
/// end: a server it left holding that output would hang a caller, so that fails here
/// too. Returns whether it succeeded, its output and how long it took.
fn sh(command: &str) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} 2>&1"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(COMMAND_LIMIT).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("`{command}` did not finish, or something it started holds its output")
    });
    let status = child.wait().unwrap();
    (status.success(), text, started.elapsed())
}

fn ok(command: &str) -> Duration {
    let (success, out, took) = sh(command);
    assert!(success, "`{command}` failed after {took:?}:\n{out}");
    took
}

/// Pids of processes (zombies have no command line) with `--datadir=DATADIR` among
/// their arguments.
fn processes_on(datadir: &Path) -> Vec<String> {
    let want = format!("--datadir={}", datadir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            cmdline
                .split(|&b| b == 0)
                .any(|a| a == want.as_bytes())
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn control_commands_stop_and_start_around_a_replaced_datadir() {
    let mut db = MariaDb::start(Host::Loopback).unwrap();
    db.query(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(20)) ENGINE=InnoDB;
         INSERT INTO shop.orders VALUES (1, 'apple');",
    )
    .unwrap();
    let control = db.control_commands().unwrap();
    let first = db.pid();
    assert_eq!(db.mariadbd_pids(), [first]);

    let took = ok(&control.stop);
    eprintln!("stop: {took:?}");
    assert!(db.query("SELECT 1").is_err(), "answers after stop");
    assert!(db.mariadbd_pids().is_empty(), "{:?}", db.mariadbd_pids());
    assert!(!db.process().is_running(), "pid {first} still runs");
    let took = ok(&control.stop);
    eprintln!("stop again: {took:?}");

    // What a seed does: the data dir moved aside and a new one made at its path.
    let datadir = db.datadir().to_owned();
    let aside = datadir.with_extension("aside");
    std::fs::rename(&datadir, &aside).unwrap();
    let copy = Command::new("cp")
        .arg("-a")
        .arg(&aside)
        .arg(&datadir)
        .status()
        .unwrap();
    assert!(copy.success());

    let took = ok(&control.start);
    eprintln!("start: {took:?}");
    assert_eq!(
        db.query("SELECT id, item FROM shop.orders").unwrap(),
        "1\tapple\n"
    );
    // The same server as before: port, server id, binary log.
    assert_eq!(
        db.query("SELECT @@port, @@server_id, @@log_bin, @@datadir")
            .unwrap()
            .trim(),
        format!("{}\t1\t1\t{}/", db.addr().port(), datadir.display())
    );
    let restarted = db.mariadbd_pids();
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    assert_ne!(restarted[0], first);
    let took = ok(&control.start);
    eprintln!("start again: {took:?}");
    assert_eq!(db.mariadbd_pids(), restarted);

    let dir = db.dir().to_owned();
    let started = Instant::now();
    drop(db);
    eprintln!("drop: {:?}", started.elapsed());
    let left = processes_on(&datadir);
    assert!(left.is_empty(), "still on {}: {left:?}", datadir.display());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn start_command_fails_with_the_log_when_the_server_cannot_start() {
    let db = MariaDb::start(Host::Loopback).unwrap();
    let control = db.control_commands().unwrap();
    ok(&control.stop);
    // An empty data dir: no privilege tables, mariadbd gives up at once.
    let datadir = db.datadir().to_owned();
    std::fs::rename(&datadir, datadir.with_extension("aside")).unwrap();
    std::fs::create_dir(&datadir).unwrap();

    let (success, out, took) = sh(&control.start);
    eprintln!("failed start: {took:?}\n{out}");
    assert!(!success, "{out}");
    assert!(out.contains("mariadbd exited"), "{out}");
    assert!(out.contains("last lines of"), "{out}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(db.mariadbd_pids().is_empty(), "{:?}", db.mariadbd_pids());

    // Back on a good data dir, the same command starts it.
    std::fs::remove_dir_all(&datadir).unwrap();
    std::fs::rename(datadir.with_extension("aside"), &datadir).unwrap();
    ok(&control.start);
    assert_eq!(db.query("SELECT 1").unwrap().trim(), "1");
}

#[test]
fn start_command_restarts_a_server_inside_its_namespace() {
    let ns = Netns::new("mdb").unwrap();
    let db = MariaDb::start(Host::Netns(&ns, "127.0.0.1:3306".parse().unwrap())).unwrap();
    let control = db.control_commands().unwrap();
    ok(&control.stop);
    ok(&control.start);
    let pids = db.mariadbd_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(
        ns.pids().contains(&(pids[0] as i32)),
        "restarted mariadbd (pid {}) is not in {}",
        pids[0],
        ns.name()
    );
    assert_eq!(
        db.query("SELECT @@bind_address, @@port").unwrap().trim(),
        "127.0.0.1\t3306"
    );
}

fn server(server_id: u32) -> MariaDb {
    MariaDb::start_with(
        Host::Loopback,
        MariaDbOptions {
            server_id,
            ..MariaDbOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn replica_follows_its_source() {
    let source = server(1);
    let replica = server(2);
    source
        .query(
            "CREATE DATABASE shop;
             CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(20)) ENGINE=InnoDB;
             INSERT INTO shop.orders VALUES (1, 'apple');",
        )
        .unwrap();
    let started = Instant::now();
    replica
        .replicate_from(&source, "repl", "it's a \\secret")
        .unwrap();
    eprintln!("replicate_from: {:?}", started.elapsed());
    source
        .query("INSERT INTO shop.orders VALUES (2, 'pear'), (3, 'plum')")
        .unwrap();
    replica
        .wait_replica_caught_up(&source, Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        replica
            .query("SELECT id, item FROM shop.orders ORDER BY id")
            .unwrap(),
        "1\tapple\n2\tpear\n3\tplum\n"
    );
    // The replication user is no event of the source's binary log.
    let events = source.query("SHOW BINLOG EVENTS").unwrap();
    assert!(!events.contains("repl"), "{events}");

    // A server with the source's server id is refused, and says why, at once.
    let twin = server(1);
    let started = Instant::now();
    let err = twin
        .replicate_from(&source, "repl", "it's a \\secret")
        .unwrap_err()
        .to_string();
    assert!(err.contains("server ids"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
}
