//! The rotation description, `/etc/keyrotate/rotation.toml` by default:
//!
//! ```toml
//! output_dir = "/var/lib/keyrotate/alice-2026"   # outputs and the journal
//!
//! [[old_key]]                              # one per key being replaced
//! file = "/root/alice-2019.sec.asc"        # a secret key file, armored or binary
//! passphrase_file = "/root/.alice-2019"    # its first line; or passphrase_env = "OLD_PASS"
//!
//! [[old_key]]
//! gnupg_home = "/root/.gnupg"              # or exported from a GnuPG home
//! fingerprint = "0123...CDEF"
//! passphrase_env = "OLD2_PASS"
//!
//! [new_key]
//! user_ids = ["Alice Example <alice@example.org>", "alice@example.com"]
//! algorithm = "cv25519"                    # or "rsa4096"
//! expiry = "2y"                            # or "never"
//! subkeys = ["sign", "encrypt", "auth"]    # default: sign and encrypt
//! passphrase_file = "/root/.alice-2026"    # protects the new secret key (optional)
//!
//! [publish]
//! hkp = ["http://keys.example.net:11371"]  # POST /pks/add
//! vks = ["https://keys.openpgp.org"]       # /vks/v1/upload, then request-verify
//! timeout_secs = 30
//! [publish.wkd]
//! dir = "/var/www/example.org"             # the web root: .well-known/openpgpkey/...
//! domain = "example.org"
//! layout = "both"                          # "advanced", "direct" or "both"
//!
//! [notice]
//! from = "alice@example.org"
//! recipients = ["bob@example.net"]
//! recipients_from_log = "/var/log/mail.log"  # plus everyone Postfix delivered to
//! subject = "My OpenPGP key has changed"
//! sign_with_old = true                     # a second signature by each old key
//! [notice.smtp]
//! host = "mail.example.org"
//! port = 587
//! security = "starttls"                    # "none", "starttls" or "tls"
//! username = "alice"
//! password_file = "/root/.smtp-pass"
//! ```
//!
//! Every user ID must hold an e-mail address: keyservers verify by address, WKD is
//! looked up by address, and correspondents know the key by it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use appliance::config::{Problems, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the outputs and the journal go.
    pub output_dir: PathBuf,
    #[serde(rename = "old_key", default)]
    pub old_keys: Vec<OldKey>,
    pub new_key: NewKey,
    #[serde(default)]
    pub publish: Publish,
    pub notice: Option<Notice>,
}

/// Where a secret comes from: a file (its first line) or an environment variable.
/// Neither: no secret (an unprotected key). Not `#[serde(flatten)]`ed into the
/// sections, because serde cannot flatten into a struct that denies unknown fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSource {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OldKey {
    /// A secret key file (armored or binary).
    pub file: Option<PathBuf>,
    /// A GnuPG home to export the key from, with `fingerprint`.
    pub gnupg_home: Option<PathBuf>,
    pub fingerprint: Option<String>,
    pub passphrase_file: Option<PathBuf>,
    pub passphrase_env: Option<String>,
}

/// Where an old key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldKeySource<'a> {
    File(&'a Path),
    GnupgHome {
        home: &'a Path,
        fingerprint: &'a str,
    },
}

impl OldKey {
    pub fn passphrase(&self) -> SecretSource {
        SecretSource {
            file: self.passphrase_file.clone(),
            env: self.passphrase_env.clone(),
        }
    }

    /// The source; validation made sure there is exactly one.
    pub fn source(&self) -> OldKeySource<'_> {
        match (&self.file, &self.gnupg_home, &self.fingerprint) {
            (Some(f), _, _) => OldKeySource::File(f),
            (None, Some(home), Some(fingerprint)) => OldKeySource::GnupgHome { home, fingerprint },
            _ => unreachable!("validated: an old key has a file or a GnuPG home and fingerprint"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    #[default]
    Cv25519,
    Rsa4096,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subkey {
    Sign,
    Encrypt,
    Auth,
}

fn default_subkeys() -> Vec<Subkey> {
    vec![Subkey::Sign, Subkey::Encrypt]
}

fn default_expiry() -> String {
    "2y".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub user_ids: Vec<String>,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// How long the key is valid ("2y", "18months"), or "never".
    #[serde(default = "default_expiry")]
    pub expiry: String,
    #[serde(default = "default_subkeys")]
    pub subkeys: Vec<Subkey>,
    /// Protects the new secret key; without, it is written unprotected (mode 0600).
    pub passphrase_file: Option<PathBuf>,
    pub passphrase_env: Option<String>,
}

impl NewKey {
    pub fn passphrase(&self) -> SecretSource {
        SecretSource {
            file: self.passphrase_file.clone(),
            env: self.passphrase_env.clone(),
        }
    }

    /// The validity period; `None` for "never". Validation made sure it parses.
    pub fn validity(&self) -> Option<Duration> {
        parse_expiry(&self.expiry).expect("validated")
    }
}

fn parse_expiry(s: &str) -> Result<Option<Duration>, String> {
    if s == "never" {
        return Ok(None);
    }
    match humantime::parse_duration(s) {
        Ok(d) if d >= Duration::from_secs(86_400) => Ok(Some(d)),
        Ok(d) => Err(format!(
            "expected at least a day, got {}",
            humantime::format_duration(d)
        )),
        Err(e) => Err(format!(
            "expected a duration like \"2y\" or \"never\", got {s:?}: {e}"
        )),
    }
}

fn default_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// HKP keyservers, e.g. `http://keys.example.net:11371`.
    #[serde(default)]
    pub hkp: Vec<String>,
    /// Verifying keyservers (the keys.openpgp.org API), e.g. `https://keys.openpgp.org`.
    #[serde(default)]
    pub vks: Vec<String>,
    pub wkd: Option<Wkd>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl Default for Publish {
    fn default() -> Self {
        Publish {
            hkp: Vec::new(),
            vks: Vec::new(),
            wkd: None,
            timeout_secs: default_timeout(),
        }
    }
}

impl Publish {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WkdLayout {
    Advanced,
    Direct,
    #[default]
    Both,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wkd {
    /// The web root the `.well-known/openpgpkey` tree is written under.
    pub dir: PathBuf,
    pub domain: String,
    #[serde(default)]
    pub layout: WkdLayout,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain SMTP (a local relay).
    None,
    /// STARTTLS required.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

fn default_smtp_port() -> u16 {
    587
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub security: Security,
    pub username: Option<String>,
    /// The password (with `username`), from a file or the environment.
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl Smtp {
    pub fn password(&self) -> SecretSource {
        SecretSource {
            file: self.password_file.clone(),
            env: self.password_env.clone(),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

fn default_subject() -> String {
    "My OpenPGP key has changed".to_owned()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The sender: an address among the new key's user IDs.
    pub from: String,
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A Postfix log: every address mail was delivered to (`status=sent`) is added.
    pub recipients_from_log: Option<PathBuf>,
    #[serde(default = "default_subject")]
    pub subject: String,
    /// The text of the mail; by default one naming the old and new fingerprints.
    pub body: Option<String>,
    /// Sign with each old key too, so correspondents can verify the notice with the key
    /// they already trust.
    #[serde(default = "yes")]
    pub sign_with_old: bool,
    pub smtp: Smtp,
}

/// The address in a user ID: `Name <addr>`, `<addr>` or a bare `addr`.
pub fn address_of(user_id: &str) -> Option<&str> {
    let s = user_id.trim();
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => &s[open + 1..s.len() - 1],
        (None, false) => s,
        _ => return None,
    };
    is_address(addr).then_some(addr)
}

/// A plain `local@domain` address: no spaces, brackets or control characters, a dot in
/// the domain. Deliberately narrower than RFC 5322: quoted local parts and comments
/// have no place in a key's user ID.
pub fn is_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
    };
    ok(local)
        && ok(domain)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !local.contains('@')
}

/// `what` is the keys' prefix: `passphrase` or `password`.
fn check_secret(p: &mut Problems, key: &str, what: &str, s: &SecretSource) {
    p.check(
        s.file.is_none() || s.env.is_none(),
        key.to_owned(),
        format!("give {what}_file or {what}_env, not both"),
    );
    if let Some(name) = &s.env {
        p.check(
            !name.is_empty() && !name.contains('='),
            format!("{key}.{what}_env"),
            format!("expected an environment variable name, got {name:?}"),
        );
    }
}

fn check_url(p: &mut Problems, key: String, url: &str) {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let host = url.split_once("://").map_or("", |(_, rest)| rest);
    p.check(
        scheme_ok && !host.is_empty() && !url.contains(char::is_whitespace),
        key,
        format!("expected an http:// or https:// URL, got {url:?}"),
    );
}

impl Validate for Config {
    fn validate(&self, p: &mut Problems) {
        p.check(
            self.output_dir.is_absolute(),
            "output_dir",
            format!(
                "expected an absolute path, got {:?}",
                self.output_dir.display()
            ),
        );
        p.check(
            !self.old_keys.is_empty(),
            "old_key",
            "expected at least one [[old_key]]: a rotation replaces a key",
        );
        for (i, k) in self.old_keys.iter().enumerate() {
            let key = format!("old_key[{i}]");
            match (&k.file, &k.gnupg_home, &k.fingerprint) {
                (Some(_), None, None) => {}
                (None, Some(_), Some(fpr)) => {
                    let hex = fpr.replace(' ', "");
                    p.check(
                        (hex.len() == 40 || hex.len() == 64)
                            && hex.chars().all(|c| c.is_ascii_hexdigit()),
                        format!("{key}.fingerprint"),
                        format!("expected a full fingerprint (40 or 64 hex digits), got {fpr:?}"),
                    );
                }
                (None, Some(_), None) => p.push(
                    format!("{key}.fingerprint"),
                    "a key from gnupg_home needs the fingerprint of the key to export",
                ),
                _ => p.push(
                    key.clone(),
                    "expected either `file` or `gnupg_home` with `fingerprint`",
                ),
            }
            check_secret(p, &key, "passphrase", &k.passphrase());
        }

        let n = &self.new_key;
        p.check(
            !n.user_ids.is_empty(),
            "new_key.user_ids",
            "expected at least one user ID",
        );
        let mut seen = std::collections::HashSet::new();
        for (i, uid) in n.user_ids.iter().enumerate() {
            p.check_unique(&mut seen, format!("new_key.user_ids[{i}]"), "user ID", uid);
            p.check(
                address_of(uid).is_some(),
                format!("new_key.user_ids[{i}]"),
                format!(
                    "{uid:?} holds no e-mail address: expected \"Name <local@domain>\" or \"local@domain\""
                ),
            );
        }
        if let Err(e) = parse_expiry(&n.expiry) {
            p.push("new_key.expiry", e);
        }
        p.check(
            !n.subkeys.is_empty(),
            "new_key.subkeys",
            "expected at least one of \"sign\", \"encrypt\", \"auth\"",
        );
        let mut sorted = n.subkeys.clone();
        sorted.sort();
        sorted.dedup();
        p.check(
            sorted.len() == n.subkeys.len(),
            "new_key.subkeys",
            "a subkey kind is listed twice",
        );
        check_secret(p, "new_key", "passphrase", &n.passphrase());

        let pb = &self.publish;
        for (i, url) in pb.hkp.iter().enumerate() {
            check_url(p, format!("publish.hkp[{i}]"), url);
        }
        for (i, url) in pb.vks.iter().enumerate() {
            check_url(p, format!("publish.vks[{i}]"), url);
        }
        p.check(
            (1..=600).contains(&pb.timeout_secs),
            "publish.timeout_secs",
            format!("expected 1 to 600, got {}", pb.timeout_secs),
        );
        if let Some(w) = &pb.wkd {
            p.check(
                w.dir.is_absolute(),
                "publish.wkd.dir",
                format!("expected an absolute path, got {:?}", w.dir.display()),
            );
            let domain = w.domain.to_ascii_lowercase();
            p.check(
                is_address(&format!("x@{domain}")),
                "publish.wkd.domain",
                format!("expected a domain name, got {:?}", w.domain),
            );
            p.check(
                n.user_ids.iter().filter_map(|u| address_of(u)).any(|a| {
                    a.rsplit_once('@')
                        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&domain))
                }),
                "publish.wkd.domain",
                format!("no user ID of the new key has an address in {domain}"),
            );
        }

        if let Some(notice) = &self.notice {
            let own = n.user_ids.iter().filter_map(|u| address_of(u));
            p.check(
                own.clone().any(|a| a.eq_ignore_ascii_case(&notice.from)),
                "notice.from",
                format!(
                    "expected one of the new key's addresses ({}), got {:?}",
                    own.collect::<Vec<_>>().join(", "),
                    notice.from
                ),
            );
            for (i, r) in notice.recipients.iter().enumerate() {
                p.check(
                    is_address(r),
                    format!("notice.recipients[{i}]"),
                    format!("expected an address local@domain, got {r:?}"),
                );
            }
            p.check(
                !notice.recipients.is_empty() || notice.recipients_from_log.is_some(),
                "notice",
                "expected recipients or recipients_from_log",
            );
            p.check(
                !notice.subject.contains(['\r', '\n']),
                "notice.subject",
                "expected one line",
            );
            let s = &notice.smtp;
            p.check(
                !s.host.is_empty() && !s.host.contains(char::is_whitespace),
                "notice.smtp.host",
                format!("expected a host name or address, got {:?}", s.host),
            );
            p.check(s.port != 0, "notice.smtp.port", "expected a port above 0");
            let has_password = s.password() != SecretSource::default();
            p.check(
                s.username.is_some() == has_password,
                "notice.smtp",
                "username and password_file/password_env go together",
            );
            check_secret(p, "notice.smtp", "password", &s.password());
            p.check(
                (1..=600).contains(&s.timeout_secs),
                "notice.smtp.timeout_secs",
                format!("expected 1 to 600, got {}", s.timeout_secs),
            );
        }
    }
}

#[cfg(test)]
mod tests;
