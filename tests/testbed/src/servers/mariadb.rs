//! MariaDB (`mariadbd` from `mariadb-server`), for the migration tool's tests.
//!
//! The data dir is made by `mariadb-install-db` and the server started with
//! `--no-defaults`, so nothing from `/etc/mysql` leaks in and every path (data, socket,
//! pid file, tmpdir) is in the private directory. Flags and why:
//!
//! * `--user=root`: the tests run as root and mariadbd refuses root unless told so.
//! * `--log-bin`, `--server-id`: on by default and configurable ([`MariaDbOptions`]),
//!   because replication (seed a replica, chain db0 -> db1 -> db2) needs both.
//! * `--skip-name-resolve`: a connection from a namespace address would otherwise wait
//!   for a reverse DNS lookup that cannot succeed offline. Grant to IPs or `%`.
//! * small InnoDB buffer pool and redo log: several servers run side by side on a small
//!   test machine, and a 96 MB redo log is written out at every install.
//!
//! Readiness is the server's first packet on its TCP port, which mariadbd only sends once
//! it has finished starting, then `SELECT 1` over the socket as root. Over TCP the fresh
//! grant tables let nobody in (root is `root@localhost`, by socket): a test that needs
//! TCP clients (replication, the migration tool) creates its users with [`MariaDb::query`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{CLIENT_TIMEOUT, Host, Running, Setup, checked, impl_server};
use crate::error::Result;
use crate::require;

/// How to start a [`MariaDb`].
#[derive(Clone, Debug)]
pub struct MariaDbOptions {
    /// `--server-id`; must differ between servers that replicate from each other.
    pub server_id: u32,
    /// Binary log on (`--log-bin=bin` in the data dir): a replication source needs it.
    pub log_bin: bool,
    /// More `mariadbd` arguments, e.g. `--log-slave-updates` for a chained replica or
    /// `--read-only`.
    pub extra_args: Vec<String>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            server_id: 1,
            log_bin: true,
            extra_args: Vec::new(),
        }
    }
}

/// A running MariaDB server. `root` connects over the Unix socket without a password
/// (`unix_socket` authentication, as Debian sets it up).
#[derive(Debug)]
pub struct MariaDb {
    run: Running,
    datadir: PathBuf,
    socket: PathBuf,
    server_id: u32,
    client: PathBuf,
}
impl_server!(MariaDb);

/// Options every `mariadbd` run on this data dir gets, install included, so InnoDB does
/// not resize its files between the two.
const INNODB: [&str; 2] = [
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
];

impl MariaDb {
    /// Starts a server with [`MariaDbOptions::default`] (server id 1, binary log on).
    pub fn start(host: Host<'_>) -> Result<MariaDb> {
        Self::start_with(host, MariaDbOptions::default())
    }

    pub fn start_with(host: Host<'_>, options: MariaDbOptions) -> Result<MariaDb> {
        require::root()?;
        let install = require::tool("mariadb-install-db", "mariadb-server")?;
        let mariadbd = require::tool("mariadbd", "mariadb-server")?;
        let client = require::tool("mariadb", "mariadb-client")?;

        let setup = Setup::new("mariadb", host)?;
        let datadir = setup.path("data");
        let tmpdir = setup.mkdir("tmp")?;
        setup.prepare(
            "create the data dir",
            Command::new(install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", datadir.display()))
                .args(["--user=root", "--skip-test-db", "--skip-name-resolve"])
                // Bootstrap's temporary tables too stay in the private directory: in
                // the shared /tmp, concurrent installs were seen failing to remove theirs.
                .arg(format!("--tmpdir={}", tmpdir.display()))
                .args(INNODB),
        )?;

        Self::launch(setup, datadir, tmpdir, &mariadbd, client, options)
    }

    /// Starts a server on an existing data dir (e.g. one filled by a physical backup and
    /// prepared) instead of a fresh one from `mariadb-install-db`. Socket, pid file and
    /// tmpdir are in a private directory as for [`MariaDb::start_with`]; the data dir is
    /// the caller's and stays when the server stops.
    pub fn start_on_datadir(
        host: Host<'_>,
        datadir: &Path,
        options: MariaDbOptions,
    ) -> Result<MariaDb> {
        require::root()?;
        let mariadbd = require::tool("mariadbd", "mariadb-server")?;
        let client = require::tool("mariadb", "mariadb-client")?;
        let setup = Setup::new("mariadb", host)?;
        let tmpdir = setup.mkdir("tmp")?;
        Self::launch(
            setup,
            datadir.to_owned(),
            tmpdir,
            &mariadbd,
            client,
            options,
        )
    }

    /// Starts `mariadbd` on `datadir` and waits until root can query it over the socket.
    fn launch(
        setup: Setup<'_>,
        datadir: PathBuf,
        tmpdir: PathBuf,
        mariadbd: &Path,
        client: PathBuf,
        options: MariaDbOptions,
    ) -> Result<MariaDb> {
        let socket = setup.path("mysqld.sock");
        let addr = setup.addr();
        let mut args = vec![
            "--no-defaults".to_owned(),
            "--user=root".to_owned(),
            format!("--datadir={}", datadir.display()),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", setup.path("mysqld.pid").display()),
            format!("--tmpdir={}", tmpdir.display()),
            format!("--bind-address={}", addr.ip()),
            format!("--port={}", addr.port()),
            format!("--server-id={}", options.server_id),
            "--skip-name-resolve".to_owned(),
        ];
        args.extend(INNODB.map(str::to_owned));
        if options.log_bin {
            args.push("--log-bin=bin".to_owned());
        }
        args.extend(options.extra_args);

        let mut probe = Command::new(&client);
        probe.args(client_args(&socket));
        let run = setup.launch(mariadbd, &args, Duration::from_secs(90), |s| {
            first_packet(&s.talk(b"", packet_complete)?)?;
            // The first packet comes before authentication; a query proves the rest.
            let out = checked(&mut probe, b"SELECT 1", Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            match out.trim() {
                "1" => Ok(()),
                other => Err(format!("SELECT 1 over the socket returned {other:?}")),
            }
        })?;
        Ok(MariaDb {
            run,
            datadir,
            socket,
            server_id: options.server_id,
            client,
        })
    }

    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The Unix socket; it works from any namespace since it is a file.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// `mariadb` connected as root over the socket, in batch mode without column names,
    /// so output is tab-separated rows; add `-e SQL` or feed SQL on stdin.
    pub fn client(&self) -> Command {
        let mut c = Command::new(&self.client);
        c.args(client_args(&self.socket));
        c
    }

    /// Runs `sql` (one or more statements) as root; returns the rows, tab-separated, one
    /// per line.
    pub fn query(&self, sql: &str) -> Result<String> {
        checked(&mut self.client(), sql.as_bytes(), CLIENT_TIMEOUT)
    }
}

/// Whether `bytes` holds a whole MySQL packet (3-byte little-endian length, sequence id).
fn packet_complete(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && bytes.len()
            >= 4 + usize::from(bytes[0])
                + (usize::from(bytes[1]) << 8)
                + (usize::from(bytes[2]) << 16)
}

/// Accepts what a started server sends first: the handshake (protocol 10), or error
/// 1130 ("Host '127.0.0.1' is not allowed to connect"), which is what the fresh grant
/// tables (root@localhost only, names not resolved) answer any TCP client.
fn first_packet(packet: &[u8]) -> Result<(), String> {
    match packet.get(4) {
        Some(10) => Ok(()),
        Some(0xff) if packet.get(5..7) == Some(&1130u16.to_le_bytes()[..]) => Ok(()),
        Some(0xff) => Err(format!(
            "server refused: {}",
            String::from_utf8_lossy(packet.get(7..).unwrap_or_default())
        )),
        _ => Err(format!("not a MySQL handshake: {packet:?}")),
    }
}

/// Root over the socket, batch mode without column names: tab-separated rows.
fn client_args(socket: &Path) -> [String; 5] {
    [
        "--no-defaults".to_owned(),
        format!("--socket={}", socket.display()),
        "--user=root".to_owned(),
        "--batch".to_owned(),
        "--skip-column-names".to_owned(),
    ]
}
