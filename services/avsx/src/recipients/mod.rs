//! Recipient verification: whether avsx accepts mail for an address.
//!
//! An address is known if it is in the static map (`recipients.map`) or, failing that,
//! found in the LDAP directory (`recipients.ldap`). The map answers first, so the
//! addresses synced into it keep working while the directory is down; the directory
//! catches mailboxes created since the last sync. A directory that is down, slow or
//! erring makes the answer [`Verdict::TempFail`] (451: the sender retries), never
//! [`Verdict::Known`]: accepting mail for an address that may not exist would mean a
//! bounce later, which a perimeter must never send.
//!
//! Addresses are compared lowercased, local part included (see [`map`]'s documentation
//! for why).
//!
//! * [`map`]: the map file's format, its parser and renderer.
//! * [`escape`]: RFC 4515 escaping of the address in the filter (no LDAP injection).
//! * `ldap`: lookups and the full listing for sync, on a shared lazy connection.
//! * `cache`: bounded positive/negative cache of directory answers.
//! * `sync`: `avsx recipients sync`, the map rebuilt from the directory ([`sync()`]).
//!
//! The parsers ([`map`], [`escape`]) are public so fuzz targets can reach them.

mod cache;
pub mod escape;
mod ldap;
pub mod map;
mod sync;

pub use sync::{SyncReport, sync};

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::{debug, info, warn};

use crate::config;
use cache::Cache;
use ldap::{Directory, DirectoryError};

/// The answer for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// In the map or the directory: accept (250).
    Known,
    /// In neither (or not an address): refuse for good (550 5.1.1).
    Unknown,
    /// Not one of `recipients.domains`: relaying, refused (554 5.7.1).
    OtherDomain,
    /// The directory could not say (down, slow, erring): refuse for now (451 4.3.0).
    /// The text is short and names no server, so it can go into a reply; the details
    /// are logged.
    TempFail(String),
}

/// During a directory outage every lookup fails: warn once per this, with a count.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub struct Recipients {
    domains: HashSet<String>,
    map_path: PathBuf,
    /// Replaced as a whole on reload; lookups clone the `Arc` and never wait for a reload.
    map: RwLock<Arc<HashSet<String>>>,
    directory: Option<Directory>,
    cache: Cache,
    /// One warning per interval while the directory fails, with the count held back.
    failures: appliance::throttle::Throttle,
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipients")
            .field("domains", &self.domains)
            .field("map_path", &self.map_path)
            .field("map_len", &self.current_map().len())
            .field("directory", &self.directory.as_ref().map(Directory::url))
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Recipients {
    /// Loads the static map (a missing map file is an error naming it; an empty one is
    /// fine) and prepares LDAP (lazy connection: nothing is connected until the first
    /// lookup, so avsx starts while the directory is down).
    pub async fn new(config: &config::Recipients) -> anyhow::Result<Recipients> {
        let map = map::load(&config.map)?;
        info!(map = %config.map.display(), addresses = map.len(), "recipient map loaded");
        let directory = config
            .ldap
            .as_ref()
            .map(Directory::new)
            .transpose()
            .context("cannot prepare the LDAP recipient lookups")?;
        let (positive, negative) = config
            .ldap
            .as_ref()
            .map_or((0, 0), |l| (l.cache_secs, l.negative_cache_secs));
        Ok(Recipients {
            domains: normalized_domains(&config.domains),
            map_path: config.map.clone(),
            map: RwLock::new(Arc::new(map)),
            directory,
            failures: appliance::throttle::Throttle::new(FAILURE_LOG_INTERVAL),
            cache: Cache::new(
                Duration::from_secs(positive),
                Duration::from_secs(negative),
                cache::DEFAULT_CAPACITY,
            ),
        })
    }

    /// Re-reads the map (SIGHUP) and returns how many addresses it holds; on error the
    /// map in use stays.
    pub fn reload_map(&self) -> anyhow::Result<usize> {
        let map = map::load(&self.map_path).with_context(|| {
            format!(
                "keeping the current recipient map ({} addresses)",
                self.current_map().len()
            )
        })?;
        let n = map.len();
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        info!(map = %self.map_path.display(), addresses = n, "recipient map reloaded");
        Ok(n)
    }

    /// Whether avsx accepts mail for `address` (without angle brackets).
    pub async fn check(&self, address: &str) -> Verdict {
        let address = match map::normalize(address.trim()) {
            Ok(a) => a,
            Err(problem) => {
                debug!(address, %problem, verdict = "unknown", "recipient is no address");
                return Verdict::Unknown;
            }
        };
        if !self.domains.contains(map::domain(&address)) {
            debug!(address, verdict = "other_domain", "recipient lookup");
            return Verdict::OtherDomain;
        }
        if self.current_map().contains(&address) {
            debug!(
                address,
                verdict = "known",
                source = "map",
                "recipient lookup"
            );
            return Verdict::Known;
        }
        let Some(directory) = &self.directory else {
            debug!(
                address,
                verdict = "unknown",
                source = "map",
                "recipient lookup"
            );
            return Verdict::Unknown;
        };
        if let Some(known) = self.cache.get(&address, Instant::now()) {
            debug!(address, known, source = "cache", "recipient lookup");
            return if known {
                Verdict::Known
            } else {
                Verdict::Unknown
            };
        }
        match directory.exists(&address).await {
            Ok(known) => {
                self.cache.put(&address, known, Instant::now());
                debug!(address, known, source = "ldap", "recipient lookup");
                if known {
                    Verdict::Known
                } else {
                    Verdict::Unknown
                }
            }
            Err(e) => {
                if let Some(held_back) = self.failures.allow(Instant::now()) {
                    warn!(
                        url = directory.url(),
                        address,
                        error = %e,
                        held_back,
                        "LDAP recipient lookup failed; answering tempfail"
                    );
                }
                Verdict::TempFail(match e {
                    DirectoryError::Timeout { .. } => "recipient directory timed out".to_owned(),
                    _ => "recipient directory unavailable".to_owned(),
                })
            }
        }
    }

    fn current_map(&self) -> Arc<HashSet<String>> {
        // Only whole-value replacements happen under the lock, so a poisoned lock still
        // holds a complete map.
        Arc::clone(&self.map.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The configured domains as addresses are normalised: lowercase, no root dot.
fn normalized_domains(domains: &[String]) -> HashSet<String> {
    domains
        .iter()
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .collect()
}
