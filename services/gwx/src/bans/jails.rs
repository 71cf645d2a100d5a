//! The jails file (`/etc/gwx/bans.toml`): where bans are kept, which addresses are
//! never banned, and one `[[jail]]` per log to watch, in fail2ban's terms (`maxretry`,
//! `findtime`, `bantime`, `ignoreip`) so an operator's fail2ban jail translates line by
//! line.
//!
//! ```toml
//! [bans]
//! state_dir = "/var/lib/gwx/bans"
//! filter_dir = "/etc/fail2ban/filter.d"
//! ignoreip = ["192.0.2.0/24"]
//!
//! [[jail]]
//! name = "wordpress"
//! filter = "wordpress"                  # filter_dir/wordpress.conf, or a path
//! log = { file = "/var/log/nginx/access.log" }
//! maxretry = 5
//! findtime = "10m"
//! bantime = "20m"
//! bantime_increment = { factor = 2.0, max = "1w" }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use appliance::config::{self, ConfigError, Problems, Validate};
use appliance::runtime_config::RuntimeConfig;
use ipnet::IpNet;
use serde::Deserialize;

/// The whole jails file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BansConfig {
    #[serde(default)]
    pub bans: Settings,
    #[serde(rename = "jail", default)]
    pub jails: Vec<Jail>,
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

/// `[bans]`: what all jails share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the ban state (`bans.json`: bans, ban history, log positions) is kept.
    pub state_dir: PathBuf,
    /// Where a jail's `filter = "name"` is looked up (`name.conf`, `name.local`).
    pub filter_dir: PathBuf,
    /// Never banned, for every jail (addresses or networks). The grid's own addresses,
    /// the backends and loopback are never banned whatever this says.
    pub ignoreip: Vec<IpNet>,
    /// Bans decided within this window go to nftables in one transaction; a lone ban
    /// is applied at once.
    pub batch_max: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            state_dir: PathBuf::from("/var/lib/gwx/bans"),
            filter_dir: PathBuf::from("/etc/fail2ban/filter.d"),
            ignoreip: Vec::new(),
            batch_max: 5000,
        }
    }
}

/// One `[[jail]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jail {
    pub name: String,
    /// A filter name in `filter_dir`, or a path to a filter file.
    pub filter: String,
    /// Filter options, as fail2ban's `filter = sshd[mode=aggressive]`.
    #[serde(default)]
    pub filter_options: BTreeMap<String, String>,
    pub log: LogSource,
    #[serde(default = "default_maxretry")]
    pub maxretry: u32,
    #[serde(default = "default_findtime")]
    pub findtime: Span,
    #[serde(default = "default_bantime")]
    pub bantime: Span,
    /// Repeat offenders are banned longer: the nth ban of a network lasts
    /// `bantime * factor^(n-1)`, at most `max`.
    pub bantime_increment: Option<Increment>,
    /// Never banned by this jail, in addition to `[bans] ignoreip`.
    #[serde(default)]
    pub ignoreip: Vec<IpNet>,
    /// Count a line for nobody when it could name two different addresses (log
    /// injection). Off only for a filter whose regexes pin the address down and whose
    /// lines would otherwise be withheld (fail2ban's own injection samples).
    #[serde(default = "default_true")]
    pub injection_guard: bool,
}

fn default_true() -> bool {
    true
}

fn default_maxretry() -> u32 {
    5
}
fn default_findtime() -> Span {
    Span(Duration::from_secs(600))
}
fn default_bantime() -> Span {
    Span(Duration::from_secs(600))
}

/// Where a jail's lines come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum LogSource {
    /// A log file, followed across rotation and truncation.
    File(PathBuf),
    /// The systemd journal through `journalctl -f -o json`, with these matches (e.g.
    /// `["_SYSTEMD_UNIT=sshd.service"]`); empty means the filter's `journalmatch`.
    Journal(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Increment {
    #[serde(default = "default_factor")]
    pub factor: f64,
    pub max: Span,
}

fn default_factor() -> f64 {
    2.0
}

/// A duration written as seconds (`600`) or as fail2ban and humans write it (`"10m"`,
/// `"1h 30m"`, `"1d"`, `"1w"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Span(Duration::from_secs(s))),
            Raw::Text(t) => humantime::parse_duration(t.trim()).map(Span).map_err(|e| {
                serde::de::Error::custom(format!(
                    "expected seconds or a duration like \"10m\", \"1h\", \"1d\": {t:?}: {e}"
                ))
            }),
        }
    }
}

impl Span {
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
}

/// Longest ban: the kernel keeps element timeouts in milliseconds; a year is plenty and
/// keeps every computed ban within what `nft` accepts.
pub const MAX_BANTIME: Duration = Duration::from_secs(365 * 86_400);

impl BansConfig {
    pub fn load(path: &Path) -> Result<BansConfig, ConfigError> {
        config::load(path)
    }

    /// The filter file of `jail`: a path as given, or `filter_dir/NAME.conf`.
    pub fn filter_path(&self, jail: &Jail) -> PathBuf {
        if jail.filter.contains('/') || jail.filter.ends_with(".conf") {
            PathBuf::from(&jail.filter)
        } else {
            self.bans.filter_dir.join(format!("{}.conf", jail.filter))
        }
    }

    /// The state file of the ban engine.
    pub fn state_file(&self) -> PathBuf {
        self.bans.state_dir.join("bans.json")
    }
}

impl Jail {
    /// How long the `n`th ban (1-based) of one network lasts in this jail.
    pub fn ban_duration(&self, n: u32) -> Duration {
        let base = self.bantime.0;
        let Some(inc) = &self.bantime_increment else {
            return base;
        };
        let exp = i32::try_from(n.saturating_sub(1))
            .unwrap_or(i32::MAX)
            .min(64);
        let secs = base.as_secs_f64() * inc.factor.powi(exp);
        let capped = secs.min(inc.max.0.as_secs_f64()).max(base.as_secs_f64());
        Duration::from_secs_f64(capped).min(MAX_BANTIME)
    }
}

impl Validate for BansConfig {
    fn validate(&self, p: &mut Problems) {
        self.runtime.validate_at("runtime", p);
        p.check(
            (1..=100_000).contains(&self.bans.batch_max),
            "bans.batch_max",
            format!("expected 1 to 100000, got {}", self.bans.batch_max),
        );
        let mut names = HashSet::new();
        for (i, j) in self.jails.iter().enumerate() {
            let key = format!("jail[{i}]");
            p.check_name(format!("{key}.name"), &j.name);
            p.check_unique(&mut names, format!("{key}.name"), "jail name", &j.name);
            p.check(
                !j.filter.trim().is_empty(),
                format!("{key}.filter"),
                "expected a filter name or path",
            );
            p.check(
                (1..=1000).contains(&j.maxretry),
                format!("{key}.maxretry"),
                format!("expected 1 to 1000 failures, got {}", j.maxretry),
            );
            p.check(
                j.findtime.secs() >= 1 && j.findtime.0 <= Duration::from_secs(7 * 86_400),
                format!("{key}.findtime"),
                format!("expected 1 second to 1 week, got {}s", j.findtime.secs()),
            );
            p.check(
                j.bantime.secs() >= 1 && j.bantime.0 <= MAX_BANTIME,
                format!("{key}.bantime"),
                format!("expected 1 second to 365 days, got {}s", j.bantime.secs()),
            );
            if let Some(inc) = &j.bantime_increment {
                p.check(
                    inc.factor.is_finite() && (1.0..=100.0).contains(&inc.factor),
                    format!("{key}.bantime_increment.factor"),
                    format!("expected a factor from 1 to 100, got {}", inc.factor),
                );
                p.check(
                    inc.max.0 >= j.bantime.0 && inc.max.0 <= MAX_BANTIME,
                    format!("{key}.bantime_increment.max"),
                    format!(
                        "expected at least bantime ({}s) and at most 365 days, got {}s",
                        j.bantime.secs(),
                        inc.max.secs()
                    ),
                );
            }
            if let LogSource::File(path) = &j.log {
                p.check(
                    path.is_absolute(),
                    format!("{key}.log.file"),
                    format!("expected an absolute path, got {}", path.display()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BansConfig, ConfigError> {
        config::parse(text, Path::new("bans.toml"))
    }

    const JAIL: &str = r#"
[[jail]]
name = "wp"
filter = "wordpress"
log = { file = "/var/log/nginx/access.log" }
maxretry = 3
findtime = "10m"
bantime = 1200
bantime_increment = { factor = 2, max = "1h" }
"#;

    #[test]
    fn the_shipped_jails_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/gwx/bans.toml");
        let c = BansConfig::load(&path).unwrap();
        let names: Vec<&str> = c.jails.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["sshd", "wordpress"]);
        assert_eq!(c.jails[0].ban_duration(10).as_secs(), 7 * 86_400);
    }

    #[test]
    fn durations_in_seconds_or_words() {
        let c = parse(JAIL).unwrap();
        let j = &c.jails[0];
        assert_eq!(j.findtime.secs(), 600);
        assert_eq!(j.bantime.secs(), 1200);
        assert_eq!(
            c.filter_path(j),
            Path::new("/etc/fail2ban/filter.d/wordpress.conf")
        );
    }

    #[test]
    fn the_injection_guard_is_on_unless_turned_off() {
        assert!(parse(JAIL).unwrap().jails[0].injection_guard);
        let off = format!("{JAIL}injection_guard = false\n");
        assert!(!parse(&off).unwrap().jails[0].injection_guard);
    }

    #[test]
    fn repeat_bans_grow_up_to_the_cap() {
        let c = parse(JAIL).unwrap();
        let j = &c.jails[0];
        let secs: Vec<u64> = (1..=4).map(|n| j.ban_duration(n).as_secs()).collect();
        assert_eq!(secs, [1200, 2400, 3600, 3600]);
    }

    #[test]
    fn problems_name_the_key() {
        let text = JAIL
            .replace("maxretry = 3", "maxretry = 0")
            .replace("\"10m\"", "\"ten\"");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("jail[0].findtime"), "{e}");
        let text = JAIL.replace("maxretry = 3", "maxretry = 0");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("jail[0].maxretry") && e.contains("got 0"), "{e}");
        let text = JAIL.replace("max = \"1h\"", "max = 60");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("jail[0].bantime_increment.max"), "{e}");
    }
}
