//! `avsx recipients sync`: rebuilds the static map from the directory, so avsx keeps
//! accepting mail for known recipients while the directory is down.
//!
//! Desired state, then diff: the addresses the directory holds (for the configured
//! domains) are compared with the map on disk, the difference is reported, and the map
//! is replaced as a whole, atomically. A sync that would shrink the map by more than
//! `recipients.ldap.max_shrink_percent` is refused unless forced: a wrong base DN, a
//! missing permission or a half-migrated directory would otherwise make the perimeter
//! reject mail for real people, for good (550), without anyone noticing at once.
//!
//! Entries are found with the lookup filter, `%s` replaced by `*`: with the default
//! `(|(mail=%s)(proxyAddresses=smtp:%s))` that is every entry with an address, and any
//! further condition an administrator put in the filter (say, no disabled accounts)
//! applies to the map as it does to lookups.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::io::ErrorKind;

use anyhow::{Context, bail};
use tracing::{debug, info, warn};

use super::ldap::Directory;
use super::map::{self, MapError};
use crate::config;

/// What a sync changed (or would change, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Addresses new in the map, sorted.
    pub added: Vec<String>,
    /// Addresses no longer in the map, sorted.
    pub removed: Vec<String>,
    /// Addresses in the new map.
    pub total: usize,
    /// Whether the map file was written (not in a dry run, nor when nothing changed).
    pub written: bool,
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.added {
            writeln!(f, "+ {a}")?;
        }
        for r in &self.removed {
            writeln!(f, "- {r}")?;
        }
        let what = if self.added.is_empty() && self.removed.is_empty() {
            "no change".to_owned()
        } else {
            format!("{} added, {} removed", self.added.len(), self.removed.len())
        };
        let written = if self.written {
            "map written"
        } else {
            "map not written"
        };
        write!(f, "{} addresses: {what}; {written}", self.total)
    }
}

/// Rebuilds the map from the directory; see the module documentation.
pub async fn sync(
    config: &config::Recipients,
    force: bool,
    dry_run: bool,
) -> anyhow::Result<SyncReport> {
    let Some(ldap) = &config.ldap else {
        bail!("recipients.ldap is not configured: the map is synced from the directory");
    };
    let directory = Directory::new(ldap)?;
    let filter = directory.filter().replace("%s", "*");
    let values = directory
        .values(&filter, &["mail", "proxyAddresses"])
        .await
        .with_context(|| format!("cannot read the addresses from the directory ({filter})"))?;
    let domains = super::normalized_domains(&config.domains);
    let wanted = addresses(values, &domains);

    let path = &config.map;
    let (current, exists) = match map::load(path) {
        Ok(set) => (set.into_iter().collect::<BTreeSet<_>>(), true),
        Err(MapError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
            (BTreeSet::new(), false)
        }
        Err(e) if force => {
            warn!(error = %e, "the current map is unusable; replacing it as forced");
            (BTreeSet::new(), true)
        }
        Err(e) => {
            return Err(e).context(
                "cannot compare with the current map; fix or remove it, or sync with --force",
            );
        }
    };

    let added: Vec<String> = wanted.difference(&current).cloned().collect();
    let removed: Vec<String> = current.difference(&wanted).cloned().collect();
    if !force {
        check_shrink(current.len(), wanted.len(), ldap.max_shrink_percent).with_context(|| {
            format!(
                "refusing to replace the recipient map {} ({} addresses would be removed)",
                path.display(),
                removed.len()
            )
        })?;
    }

    let changed = !added.is_empty() || !removed.is_empty();
    let written = !dry_run && (changed || !exists);
    if written {
        let source = format!("{} ({})", directory.url(), directory.base());
        appliance::state::write_atomic(
            path,
            map::render(&wanted, &source).as_bytes(),
            appliance::state::MODE_PUBLIC,
        )
        .with_context(|| format!("cannot write the recipient map {}", path.display()))?;
        info!(
            map = %path.display(),
            total = wanted.len(),
            added = added.len(),
            removed = removed.len(),
            "recipient map written"
        );
    }
    Ok(SyncReport {
        added,
        removed,
        total: wanted.len(),
        written,
    })
}

/// The addresses in the directory's `mail` and `proxyAddresses` values: only SMTP
/// proxy addresses (`SMTP:` the primary, `smtp:` the others; not `X400:`, `SIP:`...),
/// without their prefix, normalised, and only in `domains`.
fn addresses(
    values: impl IntoIterator<Item = (String, String)>,
    domains: &HashSet<String>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (attr, value) in values {
        let address = if attr.eq_ignore_ascii_case("mail") {
            value.as_str()
        } else if attr.eq_ignore_ascii_case("proxyAddresses") {
            match value.split_once(':') {
                Some((kind, rest)) if kind.eq_ignore_ascii_case("smtp") => rest,
                _ => continue,
            }
        } else {
            continue;
        };
        match map::normalize(address.trim()) {
            Ok(a) if domains.contains(map::domain(&a)) => {
                out.insert(a);
            }
            Ok(a) => debug!(address = %a, "not for a configured domain; left out of the map"),
            Err(problem) => debug!(value = %value, %problem, "left out of the map"),
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the map would shrink from {old} to {new} addresses ({percent:.1}%), more than \
     recipients.ldap.max_shrink_percent ({max}%); if the directory is right, run \
     `avsx recipients sync --force`"
)]
struct ShrinkError {
    old: usize,
    new: usize,
    percent: f64,
    max: u8,
}

/// Refuses a shrink by more than `max_percent` of the current size.
fn check_shrink(old: usize, new: usize, max_percent: u8) -> Result<(), ShrinkError> {
    let shrink = old.saturating_sub(new);
    // Integer comparison, so exactly max_percent passes.
    if shrink * 100 > usize::from(max_percent) * old {
        return Err(ShrinkError {
            old,
            new,
            percent: shrink as f64 * 100.0 / old as f64,
            max: max_percent,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(attr: &str, value: &str) -> (String, String) {
        (attr.to_owned(), value.to_owned())
    }

    #[test]
    fn addresses_from_mail_and_smtp_proxy_addresses() {
        let domains: HashSet<String> = ["example.org".to_owned()].into();
        let got = addresses(
            [
                v("mail", "Alice@Example.ORG"),
                v("proxyAddresses", "SMTP:alice@example.org"),
                v("proxyAddresses", "smtp:a.smith@example.org"),
                v("proxyaddresses", "X400:c=US;a= ;p=Example;o=Org;s=Smith;"),
                v("proxyAddresses", "sip:alice@example.org"),
                v("proxyAddresses", "smtp:alice@other.example"),
                v("mail", "@example.org"),
                v("mail", "not an address"),
                v("cn", "bob@example.org"),
            ],
            &domains,
        );
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            ["a.smith@example.org", "alice@example.org"]
        );
    }

    #[test]
    fn shrink_limits() {
        assert!(check_shrink(0, 0, 10).is_ok());
        assert!(check_shrink(0, 5, 0).is_ok());
        assert!(check_shrink(10, 20, 0).is_ok());
        assert!(check_shrink(10, 9, 10).is_ok());
        assert!(check_shrink(100, 90, 10).is_ok());
        assert!(check_shrink(100, 89, 10).is_err());
        assert!(check_shrink(10, 0, 100).is_ok());
        let msg = check_shrink(10, 7, 10).unwrap_err().to_string();
        assert!(msg.contains("from 10 to 7 addresses (30.0%)"), "{msg}");
        assert!(msg.contains("max_shrink_percent (10%)"), "{msg}");
        assert!(msg.contains("--force"), "{msg}");
    }

    #[test]
    fn report_lists_changes_and_a_summary() {
        let r = SyncReport {
            added: vec!["new@example.org".into()],
            removed: vec!["gone@example.org".into()],
            total: 3,
            written: true,
        };
        assert_eq!(
            r.to_string(),
            "+ new@example.org\n- gone@example.org\n3 addresses: 1 added, 1 removed; map written"
        );
        let r = SyncReport {
            added: vec![],
            removed: vec![],
            total: 3,
            written: false,
        };
        assert_eq!(r.to_string(), "3 addresses: no change; map not written");
    }
}
