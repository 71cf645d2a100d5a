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
//!
//! ## Stopped and started by someone else
//!
//! The migration tool stops and starts its target server itself, with shell commands
//! from its plan, and replaces the data dir in between. [`MariaDb::control_commands`]
//! writes such commands as scripts into the private directory (`stop.sh`, `start.sh`
//! and the `mariadbd.sh` that `start.sh` launches): scripts, because the tool takes
//! command lines, runs them with `sh -c` and wants them to return only when the work is
//! done, and because a person debugging a test can run the same files by hand. A server
//! so restarted is no child of the test bed, so the handle's drop also stops it (see
//! [`MariaDb`]'s `Drop`), and `mariadbd.sh` kills it when the test process is gone, the
//! way [`Process`](crate::process::Process) uses the parent-death signal.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{CLIENT_TIMEOUT, Host, Running, Server, Setup, checked, impl_server};
use crate::error::{Error, IoContext, Result};
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
///
/// Dropping it stops every `mariadbd` serving its socket, not only the test bed's own
/// child: after [`MariaDb::control_commands`]' stop and start, the server running is one
/// that `start.sh` launched in a session of its own, which the child's process-group
/// kill does not reach. It is found by its command line (see [`MariaDb::mariadbd_pids`]),
/// not by the pid file, which is missing while a server starts and stale after a
/// SIGKILL; and it gets SIGTERM, then SIGKILL after a grace, as the child does, before
/// the private directory is removed.
#[derive(Debug)]
pub struct MariaDb {
    // Field order: `run` (the first launch's process, then the private directory)
    // drops after `Drop::drop` has stopped any later launch.
    run: Running,
    datadir: PathBuf,
    socket: PathBuf,
    server_id: u32,
    client: PathBuf,
    /// The first launch's command line (program, or `ip netns exec NAME` and program,
    /// then arguments): what `mariadbd.sh` runs again.
    command: Vec<String>,
}
impl_server!(MariaDb);

/// Shell command lines that stop and start a [`MariaDb`], from
/// [`MariaDb::control_commands`]; each returns only when its work is done and exits
/// non-zero with a message (and the server log's tail) when it cannot.
#[derive(Clone, Debug)]
pub struct Control {
    /// Shuts the server down cleanly (SIGTERM) and waits until no `mariadbd` runs on
    /// its socket, so the data dir is no longer in use. Succeeds on a stopped server.
    pub stop: String,
    /// Launches `mariadbd` as the first launch did (same data dir path, socket, port,
    /// server id, extra arguments), detached, and waits until root can query it over
    /// the socket. Succeeds on a running server.
    pub start: String,
}

/// The server binary, also the name the control scripts and the drop look for.
const MARIADBD: &str = "mariadbd";

/// The accounts of [`MariaDb::create_migration_users`].
pub const DBM_USER: &str = "dbm";
pub const REPL_USER: &str = "repl";
pub const APP_USER: &str = "app";
/// How long `stop.sh` and `start.sh` wait before they give up.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the drop waits for a server to exit after SIGTERM, then after SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(5);
/// How long [`MariaDb::replicate_from`] waits for both replication threads to run.
const REPLICATION_START: Duration = Duration::from_secs(60);

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
        let mariadbd = require::tool(MARIADBD, "mariadb-server")?;
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
        let mariadbd = require::tool(MARIADBD, "mariadb-server")?;
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

        let mut command = match setup.host.netns_name() {
            Some(ns) => vec![
                require::tool("ip", "iproute2")?.display().to_string(),
                "netns".to_owned(),
                "exec".to_owned(),
                ns,
            ],
            None => Vec::new(),
        };
        command.push(mariadbd.display().to_string());
        command.extend(args.iter().cloned());

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
            command,
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

    /// The pids of the `mariadbd` processes serving this server's socket: the test
    /// bed's own child ([`Server::pid`]) or, after [`MariaDb::control_commands`]' stop
    /// and start, the one `start.sh` launched; empty while the server is stopped. The
    /// socket is in the private directory, so no other server has it on its command line.
    pub fn mariadbd_pids(&self) -> Vec<u32> {
        server_pids(&self.socket)
    }

    /// Writes the control scripts into the private directory and returns the command
    /// lines that run them, for a tool that stops and starts its server itself (the
    /// migration tool's `stop_command` and `start_command`).
    ///
    /// * `stop.sh` sends SIGTERM (mariadbd's clean shutdown, which unlike
    ///   `mariadb-admin shutdown` also reaches a server still starting) to every
    ///   `mariadbd` on this server's socket and waits until none is left.
    /// * `start.sh` launches `mariadbd.sh` detached (own session, stdin from /dev/null,
    ///   output appended to [`Server::log_path`], so a caller that reads the command's
    ///   output to its end is not held by the server) and waits until `SELECT 1` over
    ///   the socket as root works. After a seed the `mysql` schema is a copy of another
    ///   server's, where root is `root@localhost` by `unix_socket` too.
    /// * `mariadbd.sh` runs the first launch's command line and kills the server when
    ///   the test process is gone: it is no child of the test bed, so neither the
    ///   parent-death signal nor a panicking test's drop would reach it otherwise.
    ///
    /// Both wait at most two minutes, then exit non-zero with the log's tail. After a
    /// restart, [`Server::pid`] and [`Server::process`] still name the first launch's
    /// (exited) process; [`MariaDb::mariadbd_pids`] names the running one.
    pub fn control_commands(&self) -> Result<Control> {
        let limit = CONTROL_TIMEOUT.as_secs();
        let common = format!(
            "set -u\n\
             SOCKET={socket}\n\
             LOG={log}\n\
             LIMIT={limit}\n\
             {functions}",
            socket = sh_quote(self.socket.as_os_str()),
            log = sh_quote(self.log_path().as_os_str()),
            functions = SCRIPT_FUNCTIONS.replace("@MARIADBD@", MARIADBD),
        );
        let header = |what: &str| {
            format!(
                "#!/bin/sh\n\
                 # {what} the test bed's MariaDB on {addr} (data dir {datadir}).\n\
                 # Written by testbed::servers::MariaDb::control_commands.\n",
                addr = self.addr(),
                datadir = self.datadir.display(),
            )
        };
        let supervisor = self.dir().join("mariadbd.sh");
        let command: Vec<String> = self.command.iter().map(|a| sh_quote(a.as_ref())).collect();
        self.write_script(
            &supervisor,
            &format!(
                "{}{SUPERVISOR}",
                header("Runs (for start.sh)"),
                SUPERVISOR = SUPERVISOR
                    .replace("@OWNER@", &std::process::id().to_string())
                    .replace("@COMMAND@", &command.join(" ")),
            ),
        )?;
        let stop = self.dir().join("stop.sh");
        self.write_script(&stop, &format!("{}{common}{STOP}", header("Stops")))?;
        let start = self.dir().join("start.sh");
        self.write_script(
            &start,
            &format!(
                "{}{common}{START}",
                header("Starts"),
                START = START
                    .replace("@CLIENT@", &sh_quote(self.client.as_os_str()))
                    .replace("@SUPERVISOR@", &sh_quote(supervisor.as_os_str())),
            ),
        )?;
        // `sh FILE` rather than FILE: it runs even where /tmp is mounted noexec.
        Ok(Control {
            stop: format!("/bin/sh {}", sh_quote(stop.as_os_str())),
            start: format!("/bin/sh {}", sh_quote(start.as_os_str())),
        })
    }

    fn write_script(&self, path: &Path, text: &str) -> Result<()> {
        std::fs::write(path, text)
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
            .context(|| format!("mariadb: write control script {}", path.display()))
    }

    /// Makes this server a replica of `source`: creates `user` with REPLICATION SLAVE
    /// on `source` if missing (with the binary log off, so the user is no event a
    /// replica would replay), points this server at it with GTID (`slave_pos`: an empty
    /// replica starts from the source's first binary log) and waits until both
    /// replication threads run. The user's host is the source's address when that is
    /// loopback (`127.0.0.1` or `::1`, where the replica then connects from), else `%`.
    ///
    /// Fails fast with the replica's `Last_IO_Error` / `Last_SQL_Error` when a thread
    /// stops (equal server ids, a wrong password), or after a minute.
    pub fn replicate_from(&self, source: &MariaDb, user: &str, password: &str) -> Result<()> {
        let addr = source.addr();
        let host = if addr.ip().is_loopback() {
            addr.ip().to_string()
        } else {
            "%".to_owned()
        };
        let account = format!("{}@{}", sql_string(user), sql_string(&host));
        source.query(&format!(
            "SET SESSION sql_log_bin = 0;
             CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {password};
             GRANT REPLICATION SLAVE ON *.* TO {account};",
            password = sql_string(password),
        ))?;
        // A refused connection is retried every second, not every minute: a source
        // that is still starting should not make the wait below run out.
        self.query(&format!(
            "CHANGE MASTER TO MASTER_HOST = {host}, MASTER_PORT = {port},
                 MASTER_USER = {user}, MASTER_PASSWORD = {password},
                 MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1;
             START SLAVE;",
            host = sql_string(&addr.ip().to_string()),
            port = addr.port(),
            user = sql_string(user),
            password = sql_string(password),
        ))?;
        let deadline = Instant::now() + REPLICATION_START;
        loop {
            let status = self.slave_status()?;
            let field = |name: &str| status.get(name).map(String::as_str).unwrap_or("");
            let (io, sql) = (field("Slave_IO_Running"), field("Slave_SQL_Running"));
            if io == "Yes" && sql == "Yes" {
                return Ok(());
            }
            let stopped = io == "No" || sql == "No";
            if stopped || Instant::now() >= deadline {
                let why = if stopped {
                    "a replication thread stopped".to_owned()
                } else {
                    format!("threads not running within {REPLICATION_START:?}")
                };
                return Err(self.replication_error(source, why, &status));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates the accounts of a dbm migration on this server, all on `127.0.0.1` with
    /// `password`, with the binary log off (every server of a migration gets them, so
    /// a replica must not replay the source's): [`DBM_USER`] (everything, as dbm needs
    /// for read_only, KILL, replication and the backup), [`REPL_USER`] (replication
    /// only) and [`APP_USER`] (reads and writes on the `app` schema, as an application).
    pub fn create_migration_users(&self, password: &str) -> Result<()> {
        let password = sql_string(password);
        self.query(&format!(
            "SET SESSION sql_log_bin = 0;
             CREATE USER '{DBM_USER}'@'127.0.0.1' IDENTIFIED BY {password};
             GRANT ALL PRIVILEGES ON *.* TO '{DBM_USER}'@'127.0.0.1' WITH GRANT OPTION;
             CREATE USER '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY {password};
             GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'127.0.0.1';
             CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY {password};
             GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO '{APP_USER}'@'127.0.0.1';"
        ))?;
        Ok(())
    }

    /// Waits up to `timeout` until this replica has applied everything `source` has
    /// binary-logged so far (`@@gtid_binlog_pos` on the source, `MASTER_GTID_WAIT` here);
    /// fails fast when the SQL thread stops, with its error.
    pub fn wait_replica_caught_up(&self, source: &MariaDb, timeout: Duration) -> Result<()> {
        let pos = source.query("SELECT @@gtid_binlog_pos")?;
        let pos = pos.trim();
        let deadline = Instant::now() + timeout;
        loop {
            // In slices of a second, to see a stopped SQL thread between them.
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            let sql = format!(
                "SELECT MASTER_GTID_WAIT({}, {})",
                sql_string(pos),
                slice.as_secs_f64()
            );
            if self.query(&sql)?.trim() == "0" {
                return Ok(());
            }
            let status = self.slave_status()?;
            let sql_thread = status.get("Slave_SQL_Running").map(String::as_str);
            if sql_thread != Some("Yes") || Instant::now() >= deadline {
                let why = if sql_thread == Some("Yes") {
                    format!("not at the source's GTID position {pos} within {timeout:?}")
                } else {
                    format!("the SQL thread is not running, short of GTID position {pos}")
                };
                return Err(self.replication_error(source, why, &status));
            }
        }
    }

    /// `SHOW SLAVE STATUS` as column name -> value; empty when this is no replica.
    fn slave_status(&self) -> Result<HashMap<String, String>> {
        let out = checked(
            self.client().arg("--column-names"),
            b"SHOW SLAVE STATUS",
            CLIENT_TIMEOUT,
        )?;
        let mut lines = out.lines();
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Ok(HashMap::new());
        };
        Ok(names
            .split('\t')
            .zip(values.split('\t'))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect())
    }

    fn replication_error(
        &self,
        source: &MariaDb,
        why: String,
        status: &HashMap<String, String>,
    ) -> Error {
        let field = |name: &str| status.get(name).map(String::as_str).unwrap_or("?");
        Error::NotReady {
            server: format!(
                "mariadb on {} replicating from {}",
                self.addr(),
                source.addr()
            ),
            reason: format!(
                "{why}: Slave_IO_Running={}, Slave_SQL_Running={}, Last_IO_Error={:?}, \
                 Last_SQL_Error={:?}, Gtid_IO_Pos={}",
                field("Slave_IO_Running"),
                field("Slave_SQL_Running"),
                field("Last_IO_Error"),
                field("Last_SQL_Error"),
                field("Gtid_IO_Pos"),
            ),
            log: self.log_path().display().to_string(),
            tail: self.log_tail(20),
        }
    }
}

impl Drop for MariaDb {
    /// Stops whatever `mariadbd` serves the socket (see [`MariaDb`]); `run` then stops
    /// the first launch's process group, if it still runs, and removes the directory.
    fn drop(&mut self) {
        let pids = server_pids(&self.socket);
        if pids.is_empty() {
            return;
        }
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            for &pid in &server_pids(&self.socket) {
                let _ = kill(Pid::from_raw(pid as i32), signal);
            }
            let deadline = Instant::now() + DROP_GRACE;
            while !server_pids(&self.socket).is_empty() {
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Pids of the running `mariadbd` processes with `--socket=SOCKET` on their command
/// line. A zombie's command line is empty, so a server that exited is not listed even
/// before its parent reaps it; that is also what `stop.sh` waits for.
fn server_pids(socket: &Path) -> Vec<u32> {
    let mut want = b"--socket=".to_vec();
    want.extend_from_slice(socket.as_os_str().as_bytes());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut args = cmdline.split(|&b| b == 0);
            let program = Path::new(OsStr::from_bytes(args.next()?));
            (program.file_name()? == MARIADBD && args.any(|a| a == want)).then_some(pid)
        })
        .collect()
}

/// Shell functions `stop.sh` and `start.sh` share; `@MARIADBD@` is the binary's name.
const SCRIPT_FUNCTIONS: &str = r#"
# This server's running mariadbd processes: named mariadbd, with our socket on the
# command line. A zombie has an empty command line, so a server that exited counts as
# gone even before its parent reaps it.
server_pids() {
    for d in /proc/[0-9]*; do
        read -r comm 2>/dev/null <"$d/comm" || continue
        [ "$comm" = @MARIADBD@ ] || continue
        grep -qzxF -e "--socket=$SOCKET" "$d/cmdline" 2>/dev/null && echo "${d#/proc/}"
    done
}

# Whether process $1 exists and is not a zombie.
alive() {
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

fail() {
    echo "$0: $*; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
}

deadline=$(($(date +%s) + LIMIT))
timed_out() {
    [ "$(date +%s)" -ge "$deadline" ]
}
"#;

const STOP: &str = r#"
pids=$(server_pids)
[ -n "$pids" ] || exit 0
# mariadbd's clean shutdown, as `mariadb-admin shutdown`, which needs a server that
# already accepts connections.
kill -TERM $pids 2>/dev/null
while [ -n "$(server_pids)" ]; do
    timed_out && fail "mariadbd (pid $(echo $pids)) still runs $LIMIT s after SIGTERM"
    sleep 0.2
done
"#;

/// `@CLIENT@` is the `mariadb` client, `@SUPERVISOR@` the path of `mariadbd.sh`.
const START: &str = r#"
CLIENT=@CLIENT@

# Whether root can query the server over its socket.
ready() {
    timeout 10 "$CLIENT" --no-defaults --socket="$SOCKET" --user=root         --connect-timeout=2 -e 'SELECT 1' >/dev/null 2>&1
}

launched=0
if [ -z "$(server_pids)" ]; then
    # Own session, no terminal, nothing of the caller's open: the caller may read
    # this script's output to its end, which a server holding it would never give.
    cd /
    setsid /bin/sh @SUPERVISOR@ </dev/null >>"$LOG" 2>&1 &
    launched=$!
fi
until ready; do
    if [ -z "$(server_pids)" ] && ! alive "$launched"; then
        fail "mariadbd exited"
    fi
    timed_out && fail "mariadbd not answering over $SOCKET within $LIMIT s"
    sleep 0.2
done
"#;

/// `@COMMAND@` is the first launch's command line, `@OWNER@` the test process's pid.
const SUPERVISOR: &str = r#"set -u
OWNER=@OWNER@

@COMMAND@ &
server=$!
# Until the server exits (a zombie: it is our child), or the test process is gone, as
# the parent-death signal of the test bed's own child would have it.
while read -r stat 2>/dev/null <"/proc/$server/stat"; do
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] || break
    if ! kill -0 "$OWNER" 2>/dev/null; then
        echo "mariadbd.sh: test process $OWNER is gone; killing mariadbd (pid $server)"
        kill -KILL "$server"
        break
    fi
    sleep 1
done
wait "$server"
"#;

/// `s` as one shell word: as it is when that is safe, else in single quotes.
fn sh_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"/-_.,:=@%+".contains(&b);
    if !s.is_empty() && s.bytes().all(safe) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `s` as an SQL string literal (default `sql_mode`: backslash escapes).
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
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
