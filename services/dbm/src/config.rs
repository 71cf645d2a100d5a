//! The migration plan, `/etc/dbm/plan.toml` by default:
//!
//! ```toml
//! state_file = "/var/lib/dbm/migration.json"   # the step journal
//! ssh_options = ["-i", "/etc/dbm/id_ed25519"]   # for every ssh to a server with `ssh`
//!
//! [db0]                                  # the current master
//! host = "10.0.0.10"                     # or socket = "/run/mysqld/mysqld.sock"
//! port = 3306
//! user = "dbm"
//! password_file = "/etc/dbm/db0.pass"    # its first line; or password_env = "DB0_PASS"
//! datadir = "/var/lib/mysql"             # where the server keeps its data
//! ssh = "root@db0.example"               # where commands for this host run; absent: here
//! source_host = "10.0.1.10"              # where replicas connect; default: host
//!
//! [db1]                                  # the new master: the same keys, plus
//! start_command = "systemctl start mariadb"   # dbm stops db1, fills its datadir, starts it
//! stop_command = "systemctl stop mariadb"
//!
//! [db2]                                  # the replica that will follow db1
//!
//! [replication]
//! user = "repl"
//! password_file = "/etc/dbm/repl.pass"
//! mode = "gtid"                          # or "file_pos"; default gtid where both sides can
//!
//! [seed]
//! method = "mariabackup"                 # or "xtrabackup"; default by db0's flavour
//! upgrade_command = "mariadb-upgrade"    # run on db1 when the versions differ
//! log_copy_interval_ms = 10              # the backup's redo-log polling: bounds its commit stall
//!
//! [cutover]
//! hook = "/usr/local/bin/switch-dns db1" # run once db1 is writable
//! grace_secs = 2                         # writers' connections on db0 killed after this
//! max_catchup_secs = 10                  # abort and unfreeze db0 when db1 needs longer
//! hook_timeout_secs = 60                 # the hook is stopped after this
//! max_lag_ms = 1000                      # freeze once a heartbeat reaches db1 and db2 this fast
//!
//! [verify]
//! chunk_rows = 10000                     # rows per checksummed chunk
//! ```
//!
//! Passwords are read only when connecting ([`crate::db`]); the config holds where they
//! come from, never their value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use appliance::config::{Problems, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The step journal, written atomically after each step.
    pub state_file: PathBuf,
    /// The current master.
    pub db0: Server,
    /// The new master, seeded from db0.
    pub db1: Server,
    /// The replica that follows db1 after the cutover.
    pub db2: Server,
    pub replication: Replication,
    #[serde(default)]
    pub seed: Seed,
    #[serde(default)]
    pub cutover: Cutover,
    #[serde(default)]
    pub verify: Verify,
    /// Options for every `ssh` dbm runs (a server with `ssh` set), before the
    /// destination: e.g. `["-i", "/etc/dbm/id_ed25519", "-o", "BatchMode=yes"]`.
    #[serde(default)]
    pub ssh_options: Vec<String>,
}

/// The three servers of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Db0,
    Db1,
    Db2,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Db0, Role::Db1, Role::Db2];

    /// The section name, used in messages: `db0`, `db1`, `db2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Db0 => "db0",
            Role::Db1 => "db1",
            Role::Db2 => "db2",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Config {
    pub fn server(&self, role: Role) -> &Server {
        match role {
            Role::Db0 => &self.db0,
            Role::Db1 => &self.db1,
            Role::Db2 => &self.db2,
        }
    }
}

/// Where a secret comes from: a file (its first line) or an environment variable.
/// Not `#[serde(flatten)]`ed into the sections, because serde cannot flatten into a
/// struct that denies unknown fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSource {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

impl SecretSource {
    /// Where to look when the secret is wrong, for messages: `db1.password_file
    /// (/etc/dbm/db1.pass)`; `key` is the section (`db1`).
    pub fn hint(&self, key: &str) -> String {
        match (&self.file, &self.env) {
            (Some(f), _) => format!("{key}.password_file ({})", f.display()),
            (None, Some(e)) => format!("{key}.password_env (${e})"),
            (None, None) => format!("{key}.user and its grants (no password is configured)"),
        }
    }
}

fn default_port() -> u16 {
    3306
}

/// How to reach one server, and where its data lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Host name or address for TCP; or `socket`.
    pub host: Option<String>,
    /// A Unix socket, when dbm runs on the server's machine.
    pub socket: Option<PathBuf>,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// The server's data directory: db0's is copied, db1's filled by the seed.
    pub datadir: PathBuf,
    /// `user@host` for ssh: where this server's commands (backup, start, stop) run.
    /// Absent: on this machine.
    pub ssh: Option<String>,
    /// Starts the server (db1 only: dbm stops it, fills its datadir, starts it).
    pub start_command: Option<String>,
    /// Stops the server (db1 only).
    pub stop_command: Option<String>,
    /// The address replicas use to reach this server (db0 for db1, db1 for db2), when
    /// it is not `host` (e.g. dbm connects over a socket, or through another network).
    pub source_host: Option<String>,
}

/// Where dbm connects to a server. Validation made sure there is exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address<'a> {
    Tcp { host: &'a str, port: u16 },
    Socket(&'a std::path::Path),
}

impl fmt::Display for Address<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Socket(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Server {
    pub fn password(&self) -> SecretSource {
        SecretSource {
            file: self.password_file.clone(),
            env: self.password_env.clone(),
        }
    }

    pub fn address(&self) -> Address<'_> {
        match (&self.host, &self.socket) {
            (Some(host), _) => Address::Tcp {
                host,
                port: self.port,
            },
            (None, Some(socket)) => Address::Socket(socket),
            (None, None) => unreachable!("validated: a server has a host or a socket"),
        }
    }

    /// Where a replica of this server connects: `source_host`, else `host`; `None`
    /// when only a socket is configured (validation requires one for db0 and db1).
    pub fn source_host(&self) -> Option<&str> {
        self.source_host.as_deref().or(self.host.as_deref())
    }

    /// Whether this server's commands run on this machine.
    pub fn is_local(&self) -> bool {
        self.ssh.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationMode {
    /// Global transaction ids: MariaDB `slave_pos`, MySQL auto-position.
    Gtid,
    /// Binary log file and position.
    FilePos,
}

impl ReplicationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationMode::Gtid => "gtid",
            ReplicationMode::FilePos => "file_pos",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    /// The user db1 replicates from db0 with, and db2 from db1: it needs REPLICATION
    /// SLAVE on both.
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Absent: GTID when both sides of each link support it, else file and position.
    pub mode: Option<ReplicationMode>,
}

impl Replication {
    pub fn password(&self) -> SecretSource {
        SecretSource {
            file: self.password_file.clone(),
            env: self.password_env.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedMethod {
    /// MariaDB's hot backup.
    Mariabackup,
    /// Percona XtraBackup, for MySQL.
    Xtrabackup,
}

impl SeedMethod {
    /// The backup program.
    pub fn program(self) -> &'static str {
        match self {
            SeedMethod::Mariabackup => "mariabackup",
            SeedMethod::Xtrabackup => "xtrabackup",
        }
    }

    /// The program that unpacks the backup stream on db1.
    pub fn unpacker(self) -> &'static str {
        match self {
            SeedMethod::Mariabackup => "mbstream",
            SeedMethod::Xtrabackup => "xbstream",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Absent: mariabackup for a MariaDB db0, xtrabackup for MySQL.
    pub method: Option<SeedMethod>,
    /// Run on db1 after it starts when its version differs from db0's
    /// (`mariadb-upgrade`, `mysql_upgrade`).
    pub upgrade_command: Option<String>,
    /// The backup tool's `--log-copy-interval`. At its end the backup blocks commits on
    /// db0 until its redo-log thread has copied up to the last LSN, and that thread
    /// looks only this often: the tools' default of 1000 ms stalled a writing client
    /// for about a second, 10 ms for about 20 ms (bench/README.md, dbm-migrate).
    #[serde(default = "default_log_copy_interval")]
    pub log_copy_interval_ms: u64,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            method: None,
            upgrade_command: None,
            log_copy_interval_ms: default_log_copy_interval(),
        }
    }
}

fn default_log_copy_interval() -> u64 {
    10
}

fn default_grace() -> u64 {
    2
}

fn default_max_catchup() -> u64 {
    10
}

fn default_hook_timeout() -> u64 {
    60
}

fn default_max_lag() -> u64 {
    1000
}

fn default_chunk_rows() -> u64 {
    10_000
}

/// `[verify]`: how the tables are compared after the cutover.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// Rows per checksummed chunk: a mismatch is located to this many rows.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: u64,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            chunk_rows: default_chunk_rows(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cutover {
    /// A command run once db1 is writable: switch DNS, repoint a proxy.
    pub hook: Option<String>,
    /// After db0 is made read-only, writers' connections are killed after this.
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
    /// When db1 needs longer than this to apply db0's final position, the cutover
    /// aborts and db0 is made writable again.
    #[serde(default = "default_max_catchup")]
    pub max_catchup_secs: u64,
    /// The hook is stopped (and the step fails) after this long.
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout_secs: u64,
    /// The freeze starts only once a heartbeat written on db0 reaches db1 and db2
    /// within this many milliseconds.
    #[serde(default = "default_max_lag")]
    pub max_lag_ms: u64,
}

impl Default for Cutover {
    fn default() -> Self {
        Cutover {
            hook: None,
            grace_secs: default_grace(),
            max_catchup_secs: default_max_catchup(),
            hook_timeout_secs: default_hook_timeout(),
            max_lag_ms: default_max_lag(),
        }
    }
}

impl Cutover {
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    pub fn max_catchup(&self) -> Duration {
        Duration::from_secs(self.max_catchup_secs)
    }
}

/// `key` is the section: `db1`, `replication`.
fn check_secret(p: &mut Problems, key: &str, s: &SecretSource, required: bool) {
    match (&s.file, &s.env) {
        (Some(_), Some(_)) => p.push(key, "give password_file or password_env, not both"),
        (None, None) if required => p.push(key, "expected password_file or password_env"),
        _ => {}
    }
    if let Some(path) = &s.file {
        p.check(
            path.is_absolute(),
            format!("{key}.password_file"),
            format!("expected an absolute path, got {:?}", path.display()),
        );
    }
    if let Some(name) = &s.env {
        p.check(
            !name.is_empty() && !name.contains('=') && !name.contains('\0'),
            format!("{key}.password_env"),
            format!("expected an environment variable name, got {name:?}"),
        );
    }
}

fn check_command(p: &mut Problems, key: String, command: &str) {
    p.check(
        !command.trim().is_empty() && !command.contains(['\n', '\r', '\0']),
        key,
        format!("expected a one-line command, got {command:?}"),
    );
}

/// A MySQL user name: what fits in `'user'@'host'` without quoting trouble.
fn check_user(p: &mut Problems, key: String, user: &str) {
    p.check(
        (1..=80).contains(&user.chars().count())
            && !user.contains(['\'', '"', '`', '\\', '@', '\0'])
            && !user.contains(char::is_whitespace),
        key,
        format!("expected a user name without quotes, backslashes, `@` or spaces, got {user:?}"),
    );
}

fn check_range(p: &mut Problems, key: &str, value: u64, range: std::ops::RangeInclusive<u64>) {
    p.check(
        range.contains(&value),
        key,
        format!("expected {} to {}, got {value}", range.start(), range.end()),
    );
}

fn check_host(p: &mut Problems, key: String, host: &str) {
    p.check(
        !host.is_empty() && !host.contains(char::is_whitespace) && !host.contains('/'),
        key,
        format!("expected a host name or address, got {host:?}"),
    );
}

fn check_server(p: &mut Problems, role: Role, s: &Server) {
    let key = role.as_str();
    if let Some(host) = &s.source_host {
        check_host(p, format!("{key}.source_host"), host);
    }
    match (&s.host, &s.socket) {
        (Some(_), Some(_)) => p.push(key, "give host or socket, not both"),
        (None, None) => p.push(key, "expected host (TCP) or socket (a Unix socket)"),
        (Some(host), None) => {
            check_host(p, format!("{key}.host"), host);
            p.check(
                s.port != 0,
                format!("{key}.port"),
                "expected a port above 0",
            );
        }
        (None, Some(socket)) => {
            p.check(
                socket.is_absolute(),
                format!("{key}.socket"),
                format!("expected an absolute path, got {:?}", socket.display()),
            );
        }
    }
    check_user(p, format!("{key}.user"), &s.user);
    // Over TCP a password is needed; by socket `unix_socket` authentication may do.
    check_secret(p, key, &s.password(), s.socket.is_none());
    p.check(
        s.datadir.is_absolute(),
        format!("{key}.datadir"),
        format!("expected an absolute path, got {:?}", s.datadir.display()),
    );
    if let Some(ssh) = &s.ssh {
        p.check(
            !ssh.is_empty() && !ssh.starts_with('-') && !ssh.contains(char::is_whitespace),
            format!("{key}.ssh"),
            format!("expected an ssh destination like \"root@db0.example\", got {ssh:?}"),
        );
    }
    for (name, command) in [
        ("start_command", &s.start_command),
        ("stop_command", &s.stop_command),
    ] {
        match (role, command) {
            (Role::Db1, Some(c)) => check_command(p, format!("{key}.{name}"), c),
            (Role::Db1, None) => p.push(
                format!("{key}.{name}"),
                "required: dbm stops db1, fills its datadir with the seed and starts it",
            ),
            (_, Some(_)) => p.push(
                format!("{key}.{name}"),
                "only db1 is stopped and started by dbm; remove it",
            ),
            (_, None) => {}
        }
    }
}

impl Validate for Config {
    fn validate(&self, p: &mut Problems) {
        p.check(
            self.state_file.is_absolute(),
            "state_file",
            format!(
                "expected an absolute path, got {:?}",
                self.state_file.display()
            ),
        );
        for role in Role::ALL {
            check_server(p, role, self.server(role));
        }
        // The same address twice would migrate a server onto itself.
        for (i, a) in Role::ALL.iter().enumerate() {
            for b in &Role::ALL[i + 1..] {
                let (sa, sb) = (self.server(*a), self.server(*b));
                let same_place = sa.ssh == sb.ssh;
                if sa.host.is_some() || sa.socket.is_some() {
                    p.check(
                        !(same_place
                            && sa.host == sb.host
                            && sa.socket == sb.socket
                            && (sa.socket.is_some() || sa.port == sb.port)),
                        b.as_str(),
                        format!("{b} has the same address as {a}: expected three servers"),
                    );
                }
                // The seed fills db1's datadir: it must not be db0's.
                if (*a, *b) == (Role::Db0, Role::Db1) {
                    p.check(
                        !(same_place && sa.datadir == sb.datadir),
                        "db1.datadir",
                        "db1 has the same datadir as db0 on the same machine: the seed \
                         would overwrite db0's data",
                    );
                }
            }
        }
        let r = &self.replication;
        check_user(p, "replication.user".to_owned(), &r.user);
        check_secret(p, "replication", &r.password(), true);
        if let Some(c) = &self.seed.upgrade_command {
            check_command(p, "seed.upgrade_command".to_owned(), c);
        }
        let c = &self.cutover;
        if let Some(hook) = &c.hook {
            check_command(p, "cutover.hook".to_owned(), hook);
        }
        check_range(
            p,
            "seed.log_copy_interval_ms",
            self.seed.log_copy_interval_ms,
            1..=10_000,
        );
        check_range(p, "cutover.grace_secs", c.grace_secs, 0..=600);
        check_range(p, "cutover.max_catchup_secs", c.max_catchup_secs, 1..=3600);
        check_range(
            p,
            "cutover.hook_timeout_secs",
            c.hook_timeout_secs,
            1..=86_400,
        );
        check_range(p, "cutover.max_lag_ms", c.max_lag_ms, 10..=600_000);
        check_range(
            p,
            "verify.chunk_rows",
            self.verify.chunk_rows,
            1..=100_000_000,
        );
        for (i, o) in self.ssh_options.iter().enumerate() {
            p.check(
                !o.is_empty() && !o.contains('\n'),
                format!("ssh_options[{i}]"),
                format!("expected an ssh option, got {o:?}"),
            );
        }
        // Replicas reach db0 (db1's source) and db1 (db2's source) over TCP.
        for role in [Role::Db0, Role::Db1] {
            p.check(
                self.server(role).source_host().is_some(),
                format!("{role}.source_host"),
                format!(
                    "{role} is reached over a socket only: set {role}.source_host, the address \
                     its replicas connect to"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
