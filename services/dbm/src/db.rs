//! Connections to the three servers and what dbm needs to know about each.
//!
//! A password is read from its file (the first line) or variable only when connecting,
//! held as a [`Secret`] whose `Debug` shows nothing, and handed to the driver; it is
//! never logged or put into an error message.

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, OptsBuilder};

use crate::config::{Role, SecretSource, Server};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// MySQL's "access denied for user" (ER_ACCESS_DENIED_ERROR), also MariaDB's.
const ER_ACCESS_DENIED: u16 = 1045;

/// A password. `Debug` and `Display` hide it; [`Secret::expose`] hands it to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// Reads the secret: the first line of the file, or the variable. `None` when the
/// source names neither. `key` is the section for messages (`db1`, `replication`).
pub fn read_secret(source: &SecretSource, key: &str) -> Result<Option<Secret>, DbError> {
    let failed = |why: String| DbError::Secret {
        key: key.to_owned(),
        why,
    };
    if let Some(path) = &source.file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| failed(format!("reading {}: {e}", path.display())))?;
        let line = text.lines().next().unwrap_or("");
        if line.is_empty() {
            return Err(failed(format!("{} is empty", path.display())));
        }
        return Ok(Some(Secret(line.to_owned())));
    }
    if let Some(name) = &source.env {
        let value = std::env::var(name).map_err(|e| failed(format!("${name}: {e}")))?;
        if value.is_empty() {
            return Err(failed(format!("${name} is empty")));
        }
        return Ok(Some(Secret(value)));
    }
    Ok(None)
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{key}: cannot read the password: {why}")]
    Secret { key: String, why: String },
    /// Wrong user or password: `hint` says which config key to check.
    #[error("{endpoint}: access denied for user '{user}' — check {hint}")]
    AccessDenied {
        endpoint: String,
        user: String,
        hint: String,
    },
    #[error("{endpoint}: cannot connect: {source}")]
    Connect {
        endpoint: String,
        source: mysql_async::Error,
    },
    #[error("{endpoint}: no answer within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout { endpoint: String },
    #[error("{endpoint}: {what}: {source}")]
    Query {
        endpoint: String,
        what: &'static str,
        source: mysql_async::Error,
    },
    #[error("{endpoint}: {what}")]
    Unexpected { endpoint: String, what: String },
}

/// A connection to one of the three servers.
pub struct Db {
    /// `db1 (127.0.0.1:3307)`, for messages.
    pub endpoint: String,
    conn: Conn,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `db1 (127.0.0.1:3307)`.
pub fn endpoint(role: Role, server: &Server) -> String {
    format!("{role} ({})", server.address())
}

/// Connects to `role`'s server as its configured user.
pub async fn connect(role: Role, server: &Server) -> Result<Db, DbError> {
    let source = server.password();
    let password = read_secret(&source, role.as_str())?;
    connect_as(
        endpoint(role, server),
        server,
        &server.user,
        password.as_ref(),
        &source.hint(role.as_str()),
    )
    .await
}

/// Connects to `server` as `user` with `password`; `hint` names the config key to
/// check when the server refuses the login.
pub async fn connect_as(
    endpoint: String,
    server: &Server,
    user: &str,
    password: Option<&Secret>,
    hint: &str,
) -> Result<Db, DbError> {
    let mut opts = OptsBuilder::default()
        .user(Some(user))
        .pass(password.map(Secret::expose))
        // mysql_async would otherwise reconnect to a loopback server through its
        // socket, where the user is someone else (`'dbm'@'localhost'`).
        .prefer_socket(false);
    opts = match (&server.host, &server.socket) {
        (Some(host), _) => opts.ip_or_hostname(host.as_str()).tcp_port(server.port),
        (None, socket) => opts.socket(socket.as_ref().map(|s| s.display().to_string())),
    };
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Err(_) => return Err(DbError::Timeout { endpoint }),
        Ok(Err(mysql_async::Error::Server(e))) if e.code == ER_ACCESS_DENIED => {
            return Err(DbError::AccessDenied {
                endpoint,
                user: user.to_owned(),
                hint: hint.to_owned(),
            });
        }
        Ok(Err(source)) => return Err(DbError::Connect { endpoint, source }),
        Ok(Ok(conn)) => conn,
    };
    Ok(Db { endpoint, conn })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Flavour {
    MariaDb,
    MySql,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::MariaDb => "MariaDB",
            Flavour::MySql => "MySQL",
        })
    }
}

/// `major.minor.patch` of a server version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// From `@@version`: `10.11.6-MariaDB-0+deb12u1`, `8.0.36`, `5.5.5-10.6.12-MariaDB`
    /// (the `5.5.5-` prefix old MariaDB clients were sent).
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.strip_prefix("5.5.5-").unwrap_or(text);
        let numeric = text.split(['-', '+', ' ']).next()?;
        let mut parts = numeric.split('.').map(|p| p.parse::<u32>().ok());
        Some(Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next().flatten().unwrap_or(0),
        })
    }

    /// The release series (`10.11`, `8.0`): an upgrade across series needs
    /// `mariadb-upgrade`/`mysql_upgrade`.
    pub fn series(&self) -> (u32, u32) {
        (self.major, self.minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the server says about GTIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gtid {
    /// MariaDB always has GTIDs; `gtid_domain_id` names this server's domain.
    MariaDb { domain_id: u32 },
    /// MySQL's `gtid_mode`: `OFF`, `OFF_PERMISSIVE`, `ON_PERMISSIVE`, `ON`; `None` on
    /// servers before 5.6.
    MySql { mode: Option<String> },
}

impl Gtid {
    /// Whether replication with GTIDs works from or to this server.
    pub fn usable(&self) -> bool {
        match self {
            Gtid::MariaDb { .. } => true,
            Gtid::MySql { mode } => mode.as_deref() == Some("ON"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `@@version` as the server says it.
    pub version_string: String,
    pub version: Version,
    pub flavour: Flavour,
    pub server_id: u32,
    pub log_bin: bool,
    pub binlog_format: String,
    pub log_slave_updates: bool,
    pub gtid: Gtid,
    pub datadir: String,
    pub read_only: bool,
}

/// The system variables [`ServerInfo`] is made of; those a server lacks are absent
/// from the answer (`gtid_mode` on MariaDB, `gtid_domain_id` on MySQL).
const VARIABLES: &[&str] = &[
    "version",
    "version_comment",
    "server_id",
    "log_bin",
    "binlog_format",
    "log_slave_updates",
    "log_replica_updates",
    "gtid_mode",
    "gtid_domain_id",
    "datadir",
    "read_only",
];

fn on(value: Option<&String>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1")
}

impl ServerInfo {
    /// From `SHOW GLOBAL VARIABLES` rows (names in lower case).
    pub fn from_variables(
        vars: &std::collections::HashMap<String, String>,
    ) -> Result<ServerInfo, String> {
        let get = |name: &str| vars.get(name);
        let version_string = get("version").ok_or("the server did not say its version")?;
        let version = Version::parse(version_string)
            .ok_or_else(|| format!("cannot read the version {version_string:?}"))?;
        let mariadb = version_string.contains("MariaDB")
            || get("version_comment").is_some_and(|c| c.contains("MariaDB"))
            || get("gtid_domain_id").is_some();
        let server_id = get("server_id")
            .ok_or("the server did not say its server_id")?
            .parse()
            .map_err(|e| format!("server_id: {e}"))?;
        let gtid = if mariadb {
            Gtid::MariaDb {
                domain_id: get("gtid_domain_id")
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0),
            }
        } else {
            Gtid::MySql {
                mode: get("gtid_mode").cloned(),
            }
        };
        Ok(ServerInfo {
            version_string: version_string.clone(),
            version,
            flavour: if mariadb {
                Flavour::MariaDb
            } else {
                Flavour::MySql
            },
            server_id,
            log_bin: on(get("log_bin")),
            binlog_format: get("binlog_format").cloned().unwrap_or_default(),
            log_slave_updates: on(get("log_slave_updates")) || on(get("log_replica_updates")),
            gtid,
            datadir: get("datadir").cloned().unwrap_or_default(),
            read_only: on(get("read_only")),
        })
    }
}

/// A position in a server's own binary log: `SHOW MASTER STATUS`, plus MariaDB's
/// `gtid_binlog_pos` (MySQL: `Executed_Gtid_Set`) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
    pub gtid: Option<String>,
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if let Some(g) = self.gtid.as_deref().filter(|g| !g.is_empty()) {
            write!(f, " (GTID {g})")?;
        }
        Ok(())
    }
}

/// What `SHOW SLAVE STATUS` says, the parts dbm uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub master_host: String,
    pub master_port: u16,
    pub io_running: String,
    pub sql_running: bool,
    /// The last IO or SQL error, if any.
    pub last_error: Option<String>,
    pub seconds_behind: Option<u64>,
    /// MariaDB `Using_Gtid` (`No`, `Slave_Pos`, `Current_Pos`); MySQL `Auto_Position`.
    pub using_gtid: bool,
}

impl ReplicaStatus {
    pub fn running(&self) -> bool {
        self.io_running == "Yes" && self.sql_running
    }

    /// Whether this replica's source is `host:port`.
    pub fn follows(&self, host: &str, port: u16) -> bool {
        self.master_port == port && self.master_host.eq_ignore_ascii_case(host)
    }
}

/// A replication user's account on one server: `'repl'@'host'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub host: String,
    pub repl_slave: bool,
}

impl Db {
    /// The server's version, flavour, ids and replication settings, in one query.
    pub async fn info(&mut self) -> Result<ServerInfo, DbError> {
        let list = VARIABLES
            .iter()
            .map(|v| format!("'{v}'"))
            .collect::<Vec<_>>()
            .join(",");
        let rows: Vec<(String, String)> = self
            .conn
            .query(format!(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({list})"
            ))
            .await
            .map_err(|source| DbError::Query {
                endpoint: self.endpoint.clone(),
                what: "reading the system variables",
                source,
            })?;
        let vars = rows
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        ServerInfo::from_variables(&vars).map_err(|what| DbError::Unexpected {
            endpoint: self.endpoint.clone(),
            what,
        })
    }

    /// Bytes of data and indexes in all tables, by `information_schema`: what the seed
    /// copies, give or take the InnoDB logs and free space inside the files.
    pub async fn data_size(&mut self) -> Result<u64, DbError> {
        let size: Option<Option<u64>> = self
            .conn
            .query_first(
                "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
                 FROM information_schema.tables WHERE table_type = 'BASE TABLE'",
            )
            .await
            .map_err(|source| DbError::Query {
                endpoint: self.endpoint.clone(),
                what: "summing the table sizes",
                source,
            })?;
        Ok(size.flatten().unwrap_or(0))
    }

    /// The accounts named `user`, with whether each has REPLICATION SLAVE.
    pub async fn accounts(&mut self, user: &str) -> Result<Vec<Account>, DbError> {
        let rows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT Host, Repl_slave_priv FROM mysql.user WHERE User = ?",
                (user,),
            )
            .await
            .map_err(|source| DbError::Query {
                endpoint: self.endpoint.clone(),
                what: "reading mysql.user",
                source,
            })?;
        Ok(rows
            .into_iter()
            .map(|(host, privilege)| Account {
                host,
                repl_slave: privilege.eq_ignore_ascii_case("Y"),
            })
            .collect())
    }

    fn query_error(
        &self,
        what: &'static str,
    ) -> impl FnOnce(mysql_async::Error) -> DbError + use<> {
        let endpoint = self.endpoint.clone();
        move |source| DbError::Query {
            endpoint,
            what,
            source,
        }
    }

    /// Runs `sql` (no rows expected); `what` names it in an error ("making db0 read-only").
    pub async fn run(&mut self, what: &'static str, sql: &str) -> Result<(), DbError> {
        let err = self.query_error(what);
        self.conn.query_drop(sql).await.map_err(err)
    }

    /// Runs a prepared statement with `params` (no rows expected).
    pub async fn exec(
        &mut self,
        what: &'static str,
        sql: &str,
        params: impl Into<mysql_async::Params> + Send,
    ) -> Result<(), DbError> {
        let err = self.query_error(what);
        self.conn.exec_drop(sql, params).await.map_err(err)
    }

    /// All rows of `sql`.
    pub async fn rows<T: FromRow + Send + 'static>(
        &mut self,
        what: &'static str,
        sql: &str,
    ) -> Result<Vec<T>, DbError> {
        let err = self.query_error(what);
        self.conn.query(sql).await.map_err(err)
    }

    /// All rows of a prepared statement with `params`.
    pub async fn exec_rows<T: FromRow + Send + 'static>(
        &mut self,
        what: &'static str,
        sql: &str,
        params: impl Into<mysql_async::Params> + Send,
    ) -> Result<Vec<T>, DbError> {
        let err = self.query_error(what);
        self.conn.exec(sql, params).await.map_err(err)
    }

    /// The first row of `sql`, if any.
    pub async fn first<T: FromRow + Send + 'static>(
        &mut self,
        what: &'static str,
        sql: &str,
    ) -> Result<Option<T>, DbError> {
        let err = self.query_error(what);
        self.conn.query_first(sql).await.map_err(err)
    }

    /// The first row of a prepared statement with `params`, if any.
    pub async fn exec_first<T: FromRow + Send + 'static>(
        &mut self,
        what: &'static str,
        sql: &str,
        params: impl Into<mysql_async::Params> + Send,
    ) -> Result<Option<T>, DbError> {
        let err = self.query_error(what);
        self.conn.exec_first(sql, params).await.map_err(err)
    }

    /// This connection's id (`CONNECTION_ID()`), e.g. to spare it when killing others.
    pub fn id(&self) -> u32 {
        self.conn.id()
    }

    /// This server's current binary log position.
    pub async fn master_status(&mut self) -> Result<BinlogPos, DbError> {
        let row: Option<mysql_async::Row> = self
            .first("reading the binary log position", "SHOW MASTER STATUS")
            .await?;
        let Some(row) = row else {
            return Err(DbError::Unexpected {
                endpoint: self.endpoint.clone(),
                what: "SHOW MASTER STATUS is empty: the binary log is off".to_owned(),
            });
        };
        let file: Option<String> = row.get("File");
        let pos: Option<u64> = row.get("Position");
        let mut gtid: Option<String> = row.get_opt("Executed_Gtid_Set").and_then(Result::ok);
        if gtid.is_none() {
            let g: Option<Option<String>> = self
                .first("reading gtid_binlog_pos", "SELECT @@GLOBAL.gtid_binlog_pos")
                .await
                .ok()
                .flatten();
            gtid = g.flatten();
        }
        match (file, pos) {
            (Some(file), Some(pos)) => Ok(BinlogPos {
                file,
                pos,
                gtid: gtid.filter(|g| !g.is_empty()),
            }),
            _ => Err(DbError::Unexpected {
                endpoint: self.endpoint.clone(),
                what: "SHOW MASTER STATUS has no File or Position".to_owned(),
            }),
        }
    }

    /// `SHOW SLAVE STATUS`; `None` when this server is no replica.
    pub async fn replica_status(&mut self) -> Result<Option<ReplicaStatus>, DbError> {
        let row: Option<mysql_async::Row> = self
            .first("reading the replication status", "SHOW SLAVE STATUS")
            .await?;
        Ok(row.map(|row| {
            let text = |name: &str| -> String {
                row.get_opt::<Option<String>, _>(name)
                    .and_then(Result::ok)
                    .flatten()
                    .unwrap_or_default()
            };
            let last_error = [text("Last_IO_Error"), text("Last_SQL_Error")]
                .into_iter()
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>();
            let using = text("Using_Gtid");
            ReplicaStatus {
                master_host: text("Master_Host"),
                master_port: text("Master_Port").parse().unwrap_or(0),
                io_running: text("Slave_IO_Running"),
                sql_running: text("Slave_SQL_Running") == "Yes",
                last_error: (!last_error.is_empty()).then(|| last_error.join("; ")),
                seconds_behind: text("Seconds_Behind_Master").parse().ok(),
                using_gtid: (!using.is_empty() && using != "No") || text("Auto_Position") == "1",
            }
        }))
    }

    /// `@@GLOBAL.read_only`.
    pub async fn read_only(&mut self) -> Result<bool, DbError> {
        let v: Option<i64> = self
            .first("reading read_only", "SELECT @@GLOBAL.read_only")
            .await?;
        Ok(v == Some(1))
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn versions_parse_and_order() {
        let v = Version::parse("10.11.6-MariaDB-0+deb12u1").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (10, 11, 6));
        assert_eq!(
            Version::parse("5.5.5-10.6.12-MariaDB"),
            Version::parse("10.6.12")
        );
        assert_eq!(Version::parse("8.0.36").unwrap().series(), (8, 0));
        assert!(Version::parse("10.6.12").unwrap() < v);
        assert!(Version::parse("banana").is_none());
    }

    #[test]
    fn server_info_from_mariadb_and_mysql_variables() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let m = ServerInfo::from_variables(&vars(&[
            ("version", "10.11.6-MariaDB-0+deb12u1"),
            ("server_id", "2"),
            ("log_bin", "ON"),
            ("binlog_format", "MIXED"),
            ("log_slave_updates", "OFF"),
            ("gtid_domain_id", "0"),
            ("datadir", "/var/lib/mysql/"),
            ("read_only", "OFF"),
        ]))
        .unwrap();
        assert_eq!(m.flavour, Flavour::MariaDb);
        assert_eq!(m.server_id, 2);
        assert!(m.log_bin && !m.log_slave_updates && !m.read_only);
        assert!(m.gtid.usable());
        let y = ServerInfo::from_variables(&vars(&[
            ("version", "8.0.36"),
            ("version_comment", "MySQL Community Server - GPL"),
            ("server_id", "1"),
            ("log_bin", "ON"),
            ("log_replica_updates", "ON"),
            ("gtid_mode", "OFF"),
        ]))
        .unwrap();
        assert_eq!(y.flavour, Flavour::MySql);
        assert!(y.log_slave_updates);
        assert!(!y.gtid.usable());
        assert!(ServerInfo::from_variables(&vars(&[("server_id", "1")])).is_err());
    }

    #[test]
    fn secrets_are_read_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p");
        std::fs::write(&f, "s3cret\nignored\n").unwrap();
        let s = read_secret(
            &SecretSource {
                file: Some(f),
                env: None,
            },
            "db0",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        let e = read_secret(
            &SecretSource {
                file: Some(dir.path().join("nope")),
                env: None,
            },
            "db1",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("db1: cannot read the password") && e.contains("nope"),
            "{e}"
        );
        let e = read_secret(
            &SecretSource {
                file: None,
                env: Some("DBM_TEST_SURELY_UNSET".into()),
            },
            "replication",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("$DBM_TEST_SURELY_UNSET"), "{e}");
        assert!(
            read_secret(&SecretSource::default(), "x")
                .unwrap()
                .is_none()
        );
    }
}
