//! Postfix as a perimeter relay: the MTA the mail perimeter replaces, set up the way it
//! is deployed in front of an internal server. It accepts mail only for
//! [`PostfixOptions::domains`], only for the addresses in
//! [`PostfixOptions::recipients`] (everything else in those domains is refused at
//! `RCPT` with `550 5.1.1`, as avsx refuses it), queues it and relays it to
//! [`PostfixOptions::relay_to`], usually an [`SmtpSink`](super::SmtpSink).
//!
//! A private instance: `config_directory` (`main.cf`, `master.cf`, the recipient map),
//! `queue_directory` and `data_directory` all live in the private directory, and the
//! server runs as `master -c DIR -d`, which stays in the foreground (and in the process
//! group [`Process`](crate::Process) kills) instead of detaching like `postfix start`.
//! Before the start, `postfix -c DIR check` creates the queue's subdirectories with the
//! owners Postfix wants (`postfix`, and `postdrop` for the two that local submission
//! uses); the queue directory itself is root's, the data directory `postfix`'s. The
//! daemons drop to the `postfix` user, so the private directory is opened up to `0711`
//! (traversable, not listable) for them to reach the queue and data directories.
//!
//! `main.cf` choices and why:
//!
//! * `inet_interfaces` is the test address, and `master.cf` binds `smtpd` to exactly
//!   `ADDR:PORT`: two instances (or a system Postfix) never collide.
//! * `mydestination` and `local_recipient_maps` empty, `local_transport` an error: no
//!   local delivery, every accepted mail is relayed.
//! * `relay_domains` = the options' domains; `relay_recipient_maps` a `texthash:` file
//!   (`addr OK` per line, read when a daemon opens it, so no `postmap` step);
//!   `smtpd_relay_restrictions = reject_unauth_destination` and
//!   `smtpd_recipient_restrictions = permit_auth_destination, reject`, so other domains
//!   get `554 5.7.1 Relay access denied` whoever the client is (`mynetworks` is empty).
//! * `relayhost` and `relay_transport` both name `[IP]:PORT` of the target (brackets: no
//!   MX lookup); `smtp_dns_support_level = disabled` and `smtpd_peername_lookup = no`
//!   because a namespace has no DNS and a lookup that times out would stall the test.
//! * limits generous for load tests: `default_process_limit = 200`, no per-client
//!   connection or rate limits, `smtpd_error_sleep_time = 0`, `in_flow_delay = 0`, and
//!   the SMTP client's connection cache always on for the relay target.
//! * `maillog_file = /dev/stdout` with `postlogd` in `master.cf` (Postfix 3.4 and
//!   later): every daemon logs into the server's own log, so
//!   [`log_tail`](super::Server::log_tail) shows what Postfix did, and nothing reaches
//!   the system's syslog.
//!
//! Extra `main.cf` lines ([`PostfixOptions::main_cf`]) come last and so win.
//!
//! Readiness is the `220` greeting naming [`PostfixOptions::hostname`].

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{CLIENT_TIMEOUT, Host, Running, Setup, checked, impl_server};
use crate::error::{Error, IoContext, Result};
use crate::require;

/// How the Postfix relay is set up; see [`PostfixOptions::new`] for the defaults.
#[derive(Clone, Debug)]
pub struct PostfixOptions {
    /// `myhostname`: the greeting, the EHLO reply, the `Received` header.
    pub hostname: String,
    /// `relay_domains`: the domains mail is accepted for.
    pub domains: Vec<String>,
    /// `relay_recipient_maps`: the known addresses; other addresses in `domains` are
    /// refused at `RCPT` with `550 5.1.1`.
    pub recipients: Vec<String>,
    /// Where every accepted mail goes (`relayhost`), e.g. an `SmtpSink`'s address.
    pub relay_to: SocketAddr,
    /// More `main.cf` lines (`name = value`), after the generated ones, so they win.
    pub main_cf: Vec<String>,
}

impl PostfixOptions {
    /// Relays mail for `perimeter.test` to `relay_to`, with no known recipients yet;
    /// set the fields to change that, e.g.
    /// `PostfixOptions { recipients: vec!["bob@perimeter.test".into()], ..PostfixOptions::new(sink.addr()) }`.
    pub fn new(relay_to: SocketAddr) -> PostfixOptions {
        PostfixOptions {
            hostname: "postfix.perimeter.test".to_owned(),
            domains: vec!["perimeter.test".to_owned()],
            recipients: Vec::new(),
            relay_to,
            main_cf: Vec::new(),
        }
    }
}

/// A running Postfix relay.
#[derive(Debug)]
pub struct Postfix {
    run: Running,
    config_dir: PathBuf,
    queue_dir: PathBuf,
}
impl_server!(Postfix);

/// The daemons this instance needs: SMTP in, the queue manager and its helpers, SMTP
/// out, tlsmgr for STARTTLS (smtpd answers 454 without it), and postlogd for
/// `maillog_file`. `chroot` is `n` everywhere (Debian's own
/// master.cf chroots most daemons into the system queue directory).
const MASTER_CF: &str = "\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// The queue subdirectories that hold mail on its way (not `defer`, `bounce` and
/// `trace`, which hold per-message logs).
const QUEUES: [&str; 4] = ["incoming", "active", "deferred", "hold"];

impl Postfix {
    pub fn start(host: Host<'_>, options: PostfixOptions) -> Result<Postfix> {
        require::root()?;
        let postfix = require::tool("postfix", "postfix")?;
        let postconf = require::tool("postconf", "postfix")?;
        // Debian: /usr/lib/postfix/sbin; asked, not assumed.
        let daemon_dir = checked(
            Command::new(&postconf).args(["-d", "-h", "daemon_directory"]),
            b"",
            CLIENT_TIMEOUT,
        )?;
        let master = PathBuf::from(daemon_dir.trim()).join("master");
        for value in options.domains.iter().chain(&options.recipients) {
            check_word(value)?;
        }
        check_word(&options.hostname)?;

        let setup = Setup::new("postfix", host)?;
        let addr = setup.addr();
        // The daemons run as `postfix` and must reach the queue and data directories.
        std::fs::set_permissions(setup.path(""), std::fs::Permissions::from_mode(0o711))
            .context(|| "postfix: open up the private directory".to_owned())?;
        let config_dir = setup.mkdir("config")?;
        let queue_dir = setup.mkdir("queue")?;
        let data_dir = setup.path("data");
        let map: String = options
            .recipients
            .iter()
            .map(|r| format!("{r} OK\n"))
            .collect();
        let map = setup.write("config/relay_recipients", map)?;
        let relay = format!("[{}]:{}", options.relay_to.ip(), options.relay_to.port());
        let mut main_cf = format!(
            "\
# Written by the test bed: a private relay on {addr}.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = /dev/stdout
myhostname = {hostname}
myorigin = $myhostname
mydestination =
mynetworks =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled
alias_maps =
alias_database =
biff = no
inet_interfaces = {interface}
inet_protocols = all
relay_domains = {domains}
relay_recipient_maps = texthash:{map}
relayhost = {relay}
relay_transport = relay:{relay}
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = permit_auth_destination, reject
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_error_sleep_time = 0
in_flow_delay = 0
smtp_connection_cache_on_demand = yes
smtp_connection_cache_destinations = {relay}
",
            queue = queue_dir.display(),
            data = data_dir.display(),
            hostname = options.hostname,
            interface = bracketed(addr.ip()),
            domains = options.domains.join(", "),
            map = map.display(),
        );
        for line in &options.main_cf {
            main_cf += line;
            main_cf.push('\n');
        }
        setup.write("config/main.cf", main_cf)?;
        setup.write(
            "config/master.cf",
            format!(
                "{}:{} inet n - n - - smtpd\n{MASTER_CF}",
                bracketed(addr.ip()),
                addr.port()
            ),
        )?;
        // Creates the queue's subdirectories and the data directory with their owners.
        setup.prepare(
            "create the queue",
            Command::new(&postfix)
                .arg("-c")
                .arg(&config_dir)
                .arg("check"),
        )?;

        let args = [
            "-c".into(),
            config_dir.clone().into_os_string(),
            "-d".into(),
        ];
        let hostname = options.hostname.clone();
        let run = setup.launch(&master, &args, Duration::from_secs(30), |s| {
            let greeting = s.talk(b"", |a| a.ends_with(b"\r\n"))?;
            let text = String::from_utf8_lossy(&greeting);
            if text.starts_with(&format!("220 {hostname} ")) {
                Ok(())
            } else {
                Err(format!("greeting {text:?}"))
            }
        })?;
        Ok(Postfix {
            run,
            config_dir,
            queue_dir,
        })
    }

    /// `config_directory`: `main.cf`, `master.cf`, `relay_recipients`.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// `queue_directory`.
    pub fn queue_dir(&self) -> &Path {
        &self.queue_dir
    }

    /// Mails in the queue (incoming, active, deferred or on hold): 0 once everything
    /// accepted has been relayed.
    pub fn queued(&self) -> Result<usize> {
        let mut count = 0;
        for queue in QUEUES {
            count += count_files(&self.queue_dir.join(queue))?;
        }
        Ok(count)
    }
}

/// Files below `dir` (queues hash into subdirectories when configured to).
fn count_files(dir: &Path) -> Result<usize> {
    let what = || format!("postfix: read queue directory {}", dir.display());
    let mut count = 0;
    for entry in std::fs::read_dir(dir).context(what)? {
        let entry = entry.context(what)?;
        let kind = entry.file_type().context(what)?;
        if kind.is_dir() {
            count += count_files(&entry.path())?;
        } else {
            count += 1;
        }
    }
    Ok(count)
}

/// `[::1]` for IPv6 (main.cf and master.cf want brackets), `192.0.2.1` for IPv4.
fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Domains, addresses and host names go into main.cf and a map one per line: no
/// whitespace, commas or control characters, which would split or corrupt them.
fn check_word(value: &str) -> Result<()> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '#');
    if bad {
        return Err(Error::Io {
            what: format!("postfix: option value {value:?}"),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "expected one word without whitespace, commas or '#'",
            ),
        });
    }
    Ok(())
}
