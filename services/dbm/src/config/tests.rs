use std::path::Path;

use super::*;

const GOOD: &str = r#"
state_file = "/var/lib/dbm/migration.json"

[db0]
host = "10.0.0.10"
user = "dbm"
password_file = "/etc/dbm/db0.pass"
datadir = "/var/lib/mysql"
ssh = "root@db0.example"

[db1]
host = "10.0.0.11"
port = 3307
user = "dbm"
password_env = "DB1_PASS"
datadir = "/var/lib/mysql"
ssh = "root@db1.example"
start_command = "systemctl start mariadb"
stop_command = "systemctl stop mariadb"

[db2]
socket = "/run/mysqld/mysqld.sock"
user = "root"
datadir = "/srv/mysql"

[replication]
user = "repl"
password_file = "/etc/dbm/repl.pass"
mode = "file_pos"

[seed]
method = "mariabackup"
upgrade_command = "mariadb-upgrade"

[cutover]
hook = "/usr/local/bin/switch-dns db1"
grace_secs = 3
"#;

fn parse(text: &str) -> Result<Config, appliance::config::ConfigError> {
    appliance::config::parse(text, Path::new("plan.toml"))
}

/// The problems of `text`, rendered.
fn problems(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn a_full_plan_parses_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(
        c.db0.address(),
        Address::Tcp {
            host: "10.0.0.10",
            port: 3306
        }
    );
    assert_eq!(c.db1.address().to_string(), "10.0.0.11:3307");
    assert_eq!(
        c.db2.address(),
        Address::Socket(Path::new("/run/mysqld/mysqld.sock"))
    );
    assert!(!c.db0.is_local() && c.db2.is_local());
    assert_eq!(c.db1.password().hint("db1"), "db1.password_env ($DB1_PASS)");
    assert_eq!(
        c.db0.password().hint("db0"),
        "db0.password_file (/etc/dbm/db0.pass)"
    );
    assert_eq!(c.replication.mode, Some(ReplicationMode::FilePos));
    assert_eq!(c.seed.method, Some(SeedMethod::Mariabackup));
    assert_eq!(c.cutover.grace(), Duration::from_secs(3));
    assert_eq!(c.cutover.max_catchup(), Duration::from_secs(10));
}

#[test]
fn optional_sections_default() {
    let text = GOOD
        .split("[seed]")
        .next()
        .unwrap()
        .replace("mode = \"file_pos\"\n", "");
    let c = parse(&text).unwrap();
    assert_eq!(c.replication.mode, None);
    assert_eq!(c.seed.method, None);
    assert!(c.seed.upgrade_command.is_none());
    assert_eq!(c.seed.log_copy_interval_ms, 10);
    assert!(c.cutover.hook.is_none());
    assert_eq!(c.cutover.grace_secs, 2);
    assert_eq!(c.cutover.max_catchup_secs, 10);
}

#[test]
fn db1_needs_its_start_and_stop_commands() {
    let text = GOOD
        .replace("start_command = \"systemctl start mariadb\"\n", "")
        .replace("stop_command = \"systemctl stop mariadb\"\n", "");
    let e = problems(&text);
    assert!(e.contains("db1.start_command"), "{e}");
    assert!(e.contains("db1.stop_command"), "{e}");
}

#[test]
fn only_db1_is_started_and_stopped() {
    let text = GOOD.replace(
        "datadir = \"/srv/mysql\"",
        "datadir = \"/srv/mysql\"\nstart_command = \"true\"",
    );
    let e = problems(&text);
    assert!(
        e.contains("db2.start_command") && e.contains("only db1"),
        "{e}"
    );
}

#[test]
fn host_xor_socket() {
    let both = GOOD.replace(
        "host = \"10.0.0.10\"",
        "host = \"10.0.0.10\"\nsocket = \"/run/mysqld/mysqld.sock\"",
    );
    let e = problems(&both);
    assert!(
        e.contains("db0") && e.contains("host or socket, not both"),
        "{e}"
    );
    let neither = GOOD.replace("host = \"10.0.0.11\"\n", "");
    let e = problems(&neither);
    assert!(e.contains("db1") && e.contains("expected host"), "{e}");
}

#[test]
fn password_file_xor_env() {
    let both = GOOD.replace(
        "password_env = \"DB1_PASS\"",
        "password_env = \"DB1_PASS\"\npassword_file = \"/etc/dbm/db1.pass\"",
    );
    let e = problems(&both);
    assert!(
        e.contains("db1") && e.contains("password_file or password_env, not both"),
        "{e}"
    );
    // Over TCP a password is required; by socket it may be left out (unix_socket).
    let none = GOOD.replace("password_file = \"/etc/dbm/db0.pass\"\n", "");
    let e = problems(&none);
    assert!(
        e.contains("db0") && e.contains("expected password_file or password_env"),
        "{e}"
    );
    let repl = GOOD.replace("password_file = \"/etc/dbm/repl.pass\"\n", "");
    assert!(problems(&repl).contains("replication"));
    let relative = GOOD.replace("/etc/dbm/db0.pass", "db0.pass");
    assert!(problems(&relative).contains("db0.password_file"));
    let bad_env = GOOD.replace("\"DB1_PASS\"", "\"A=B\"");
    assert!(problems(&bad_env).contains("db1.password_env"));
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = GOOD
        .replace("/var/lib/dbm/migration.json", "migration.json")
        .replace("user = \"repl\"", "user = \"re'pl\"")
        .replace("port = 3307", "port = 0")
        .replace("datadir = \"/srv/mysql\"", "datadir = \"mysql\"")
        .replace("ssh = \"root@db0.example\"", "ssh = \"-oProxyCommand=x\"")
        .replace("grace_secs = 3", "grace_secs = 3\nmax_catchup_secs = 0")
        .replace("[seed]", "[seed]\nlog_copy_interval_ms = 0");
    let e = problems(&text);
    for key in [
        "state_file",
        "replication.user",
        "db1.port",
        "db2.datadir",
        "db0.ssh",
        "cutover.max_catchup_secs",
        "seed.log_copy_interval_ms",
    ] {
        assert!(e.contains(key), "{key} missing in {e}");
    }
}

#[test]
fn unknown_keys_and_values_are_refused() {
    assert!(problems(&GOOD.replace("grace_secs", "grace")).contains("grace"));
    assert!(problems(&GOOD.replace("\"file_pos\"", "\"gtids\"")).contains("gtids"));
    assert!(problems(&GOOD.replace("\"mariabackup\"", "\"mysqldump\"")).contains("mysqldump"));
}

#[test]
fn the_same_server_twice_is_refused() {
    let text = GOOD
        .replace("host = \"10.0.0.11\"", "host = \"10.0.0.10\"")
        .replace("port = 3307", "port = 3306")
        .replace("root@db1.example", "root@db0.example");
    let e = problems(&text);
    assert!(e.contains("db1 has the same address as db0"), "{e}");
    assert!(
        e.contains("db1 has the same datadir as db0 on the same machine"),
        "{e}"
    );
}

#[test]
fn a_password_never_appears_in_debug_output() {
    // The config holds where a password is, not the password.
    let c = parse(GOOD).unwrap();
    let debug = format!("{c:?}");
    assert!(debug.contains("/etc/dbm/db0.pass") && debug.contains("DB1_PASS"));
}
