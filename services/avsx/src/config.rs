//! `/etc/avsx/avsx.toml`: where avsx listens and with which limits, whom it accepts mail
//! for, how mail is judged, where clean mail goes, and where verdicts are kept.
//!
//! The annotated example, every section and its defaults, is
//! [`config/avsx/avsx.toml`](../../../config/avsx/avsx.toml) (a test loads it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use appliance::config::{Problems, Validate, is_hostname};
use appliance::runtime_config::RuntimeConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub smtp: Smtp,
    pub recipients: Recipients,
    pub scan: Scan,
    pub relay: Relay,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

fn default_max_message() -> u64 {
    25 << 20
}
fn default_max_recipients() -> usize {
    100
}
fn default_max_line() -> usize {
    1000
}
fn default_command_timeout() -> u64 {
    300
}
fn default_data_timeout() -> u64 {
    600
}
fn default_max_connections() -> usize {
    1000
}
fn default_per_ip() -> usize {
    20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub listen: Vec<SocketAddr>,
    /// The name in the greeting, the EHLO reply and the Received header.
    pub hostname: String,
    #[serde(default = "default_max_message")]
    pub max_message_bytes: u64,
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// The longest command or text line, CRLF included.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    #[serde(default = "default_data_timeout")]
    pub data_timeout_secs: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_per_ip")]
    pub max_connections_per_ip: usize,
    pub tls: Option<Tls>,
}

impl Smtp {
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    /// The domains avsx accepts mail for; anything else is relaying, refused.
    pub domains: Vec<String>,
    /// The static recipient map (`relay_recipients`), rebuilt by `avsx recipients sync`.
    pub map: PathBuf,
    pub ldap: Option<Ldap>,
}

fn default_filter() -> String {
    "(|(mail=%s)(proxyAddresses=smtp:%s))".to_owned()
}
fn default_ldap_timeout() -> u64 {
    3000
}
fn default_cache() -> u64 {
    300
}
fn default_negative_cache() -> u64 {
    60
}
fn default_shrink() -> u8 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ldap {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Simple bind; anonymous without.
    pub bind_dn: Option<String>,
    pub password_file: Option<PathBuf>,
    pub base: String,
    /// `%s` is replaced by the address, escaped per RFC 4515.
    #[serde(default = "default_filter")]
    pub filter: String,
    #[serde(default = "default_ldap_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_cache")]
    pub cache_secs: u64,
    #[serde(default = "default_negative_cache")]
    pub negative_cache_secs: u64,
    #[serde(default = "default_shrink")]
    pub max_shrink_percent: u8,
}

impl Ldap {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// What to do when a scanner cannot give a verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// 451: the sender retries later; nothing is accepted unscanned.
    #[default]
    Tempfail,
    /// Accept unscanned, with a header saying so. Only when configured explicitly.
    AcceptUnscanned,
}

/// What to do with mail larger than a scanner takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    /// 552: refused for good.
    Reject,
    /// 451: refused for now.
    #[default]
    Tempfail,
    /// Accepted without that scanner's verdict, with a header saying so.
    AcceptUnscanned,
}

fn default_tag() -> f64 {
    4.5
}
fn default_kill() -> f64 {
    16.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scan {
    #[serde(default = "default_tag")]
    pub tag_level: f64,
    #[serde(default = "default_kill")]
    pub kill_level: f64,
    pub subject_tag: Option<String>,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default)]
    pub oversize: Oversize,
    /// Optional: without it, no spam scoring (and no X-Spam headers).
    pub spamd: Option<Scanner>,
    /// Optional: without it, no virus scanning.
    pub clamd: Option<Scanner>,
}

fn default_scan_timeout() -> u64 {
    30_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scanner {
    /// `host:port`, or an absolute path for a Unix socket.
    pub address: String,
    #[serde(default = "default_scan_timeout")]
    pub timeout_ms: u64,
    /// Mail larger than this goes by `scan.oversize` (spamd: 500 KB, clamd's
    /// StreamMaxLength: 25 MB by default).
    pub max_bytes: u64,
}

impl Scanner {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

fn default_relay_timeout() -> u64 {
    120
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// The internal mail server, `host:port`.
    pub address: String,
    #[serde(default = "default_relay_timeout")]
    pub timeout_secs: u64,
}

impl Relay {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

fn default_stats_path() -> PathBuf {
    PathBuf::from("/var/lib/avsx/verdicts.jsonl")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    #[serde(default = "default_stats_path")]
    pub path: PathBuf,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            path: default_stats_path(),
        }
    }
}

/// A domain name: labels of letters, digits and hyphens, at least one dot.
pub fn is_domain(s: &str) -> bool {
    s.strip_suffix('.').unwrap_or(s).contains('.') && is_hostname(s)
}

/// `host:port` with an IP address or a host name.
pub fn is_host_port(s: &str) -> bool {
    s.parse::<SocketAddr>().is_ok()
        || s.rsplit_once(':')
            .is_some_and(|(h, port)| is_hostname(h) && port.parse::<u16>().is_ok_and(|p| p > 0))
}

fn check_scanner(p: &mut Problems, key: &str, s: &Scanner) {
    let ok = s.address.starts_with('/') || is_host_port(&s.address);
    p.check(
        ok,
        format!("{key}.address"),
        format!(
            "expected host:port or an absolute Unix socket path, got {:?}",
            s.address
        ),
    );
    p.check(
        (100..=600_000).contains(&s.timeout_ms),
        format!("{key}.timeout_ms"),
        format!("expected 100 to 600000, got {}", s.timeout_ms),
    );
    p.check(
        s.max_bytes >= 1024,
        format!("{key}.max_bytes"),
        format!("expected at least 1024, got {}", s.max_bytes),
    );
}

impl Validate for Config {
    fn validate(&self, p: &mut Problems) {
        let s = &self.smtp;
        p.check(
            !s.listen.is_empty(),
            "smtp.listen",
            "expected at least one address",
        );
        p.check(
            is_domain(&s.hostname),
            "smtp.hostname",
            format!(
                "expected the host's fully qualified name, got {:?}",
                s.hostname
            ),
        );
        p.check(
            (1024..=(1u64 << 31)).contains(&s.max_message_bytes),
            "smtp.max_message_bytes",
            format!("expected 1024 to 2 GiB, got {}", s.max_message_bytes),
        );
        p.check(
            (1..=10_000).contains(&s.max_recipients),
            "smtp.max_recipients",
            format!(
                "expected 1 to 10000 (RFC 5321 asks for at least 100), got {}",
                s.max_recipients
            ),
        );
        p.check(
            (1000..=65_536).contains(&s.max_line_bytes),
            "smtp.max_line_bytes",
            format!(
                "expected 1000 (RFC 5321's minimum) to 65536, got {}",
                s.max_line_bytes
            ),
        );
        for (key, v) in [
            ("smtp.command_timeout_secs", s.command_timeout_secs),
            ("smtp.data_timeout_secs", s.data_timeout_secs),
        ] {
            p.check(
                (1..=3600).contains(&v),
                key,
                format!("expected 1 to 3600, got {v}"),
            );
        }
        p.check(
            s.max_connections >= 1,
            "smtp.max_connections",
            "expected at least 1",
        );
        p.check(
            (1..=s.max_connections.max(1)).contains(&s.max_connections_per_ip),
            "smtp.max_connections_per_ip",
            format!(
                "expected 1 to max_connections ({}), got {}",
                s.max_connections, s.max_connections_per_ip
            ),
        );

        let r = &self.recipients;
        p.check(
            !r.domains.is_empty(),
            "recipients.domains",
            "expected at least one domain",
        );
        for (i, d) in r.domains.iter().enumerate() {
            p.check(
                is_domain(d),
                format!("recipients.domains[{i}]"),
                format!("expected a domain name, got {d:?}"),
            );
        }
        p.check(
            r.map.is_absolute(),
            "recipients.map",
            format!("expected an absolute path, got {:?}", r.map.display()),
        );
        if let Some(l) = &r.ldap {
            p.check(
                l.url.starts_with("ldap://") || l.url.starts_with("ldaps://"),
                "recipients.ldap.url",
                format!(
                    "expected ldap://host:port or ldaps://host:port, got {:?}",
                    l.url
                ),
            );
            p.check(
                l.filter.contains("%s") && l.filter.starts_with('(') && l.filter.ends_with(')'),
                "recipients.ldap.filter",
                format!(
                    "expected a parenthesised LDAP filter with %s for the address, got {:?}",
                    l.filter
                ),
            );
            p.check(
                !l.base.trim().is_empty(),
                "recipients.ldap.base",
                "expected a base DN",
            );
            p.check(
                l.bind_dn.is_some() == l.password_file.is_some(),
                "recipients.ldap",
                "bind_dn and password_file go together",
            );
            p.check(
                (100..=60_000).contains(&l.timeout_ms),
                "recipients.ldap.timeout_ms",
                format!("expected 100 to 60000, got {}", l.timeout_ms),
            );
            p.check(
                l.max_shrink_percent <= 100,
                "recipients.ldap.max_shrink_percent",
                format!("expected 0 to 100, got {}", l.max_shrink_percent),
            );
        }

        let sc = &self.scan;
        p.check(
            sc.tag_level.is_finite() && sc.kill_level.is_finite() && sc.tag_level < sc.kill_level,
            "scan.kill_level",
            format!(
                "expected tag_level ({}) below kill_level ({})",
                sc.tag_level, sc.kill_level
            ),
        );
        if let Some(t) = &sc.subject_tag {
            p.check(
                !t.is_empty() && !t.contains(['\r', '\n']),
                "scan.subject_tag",
                "expected a short one-line tag",
            );
        }
        if let Some(s) = &sc.spamd {
            check_scanner(p, "scan.spamd", s);
        }
        if let Some(s) = &sc.clamd {
            check_scanner(p, "scan.clamd", s);
        }

        p.check(
            is_host_port(&self.relay.address),
            "relay.address",
            format!("expected host:port, got {:?}", self.relay.address),
        );
        p.check(
            (1..=3600).contains(&self.relay.timeout_secs),
            "relay.timeout_secs",
            format!("expected 1 to 3600, got {}", self.relay.timeout_secs),
        );
        p.check(
            self.stats.path.is_absolute(),
            "stats.path",
            format!(
                "expected an absolute path, got {:?}",
                self.stats.path.display()
            ),
        );
        self.runtime.validate_at("runtime", p);
    }
}

#[cfg(test)]
mod tests;
