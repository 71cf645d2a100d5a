//! The LDAP directory (Active Directory, OpenLDAP): whether an address exists, and, for
//! `avsx recipients sync`, every address it holds.
//!
//! One connection is shared by all lookups: ldap3 multiplexes concurrent operations on
//! it, so the mutex is held only to fetch or (re)open it, and concurrent lookups after an
//! outage wait for one reconnect instead of each opening their own. The connection is
//! opened on the first lookup, not at start-up, so avsx starts (and serves addresses
//! from the map) while the directory is down. A connection that failed is dropped; a
//! lookup that failed on a reused connection (the server may have closed it while idle)
//! retries once on a fresh one, so an idle timeout does not cost a client a 451.
//!
//! The bind password is read from its file at every (re)connect, so a rotated password
//! needs no restart, and is never kept, logged or put into an error.

use std::path::PathBuf;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions,
    SearchResult,
};
use tokio::sync::Mutex;
use tracing::debug;

use crate::config;

/// Entries per page of the sync search: below Active Directory's MaxPageSize (1000) and
/// OpenLDAP's default size limit (500) for ordinary users.
const PAGE_SIZE: i32 = 500;

/// LDAP result codes a lookup accepts: success, and sizeLimitExceeded, which a search
/// limited to one entry returns when more than one matched (one was found).
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;

/// ldap3's errors are kept as text, not chained as a source: an LDAP result error is its
/// own source in ldap3, so `{:#}` would print it three times (and it is large).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read the LDAP password file {}: {source}", path.display())]
    Password {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the LDAP password file {} is empty (an empty password would bind anonymously)",
        path.display()
    )]
    EmptyPassword { path: PathBuf },
    #[error("cannot connect to {url}: {error}")]
    Connect { url: String, error: String },
    #[error("cannot bind to {url} as {dn}: {error}")]
    Bind {
        url: String,
        dn: String,
        error: String,
    },
    #[error("search under {base} on {url} failed: {error}")]
    Search {
        url: String,
        base: String,
        error: String,
    },
    #[error("{url} did not answer within {} ms", after.as_millis())]
    Timeout { url: String, after: Duration },
}

#[derive(Debug)]
struct Conn {
    ldap: Ldap,
    /// Tells connections apart, so a lookup drops only the one it failed on.
    id: u64,
}

#[derive(Debug, Default)]
struct Slot {
    conn: Option<Conn>,
    opened: u64,
}

#[derive(Debug)]
pub struct Directory {
    url: String,
    bind_dn: Option<String>,
    password_file: Option<PathBuf>,
    base: String,
    filter: String,
    timeout: Duration,
    slot: Mutex<Slot>,
}

impl Directory {
    /// Checks the password file; connects nothing yet.
    pub fn new(cfg: &config::Ldap) -> Result<Directory, DirectoryError> {
        let dir = Directory {
            url: cfg.url.clone(),
            bind_dn: cfg.bind_dn.clone(),
            password_file: cfg.password_file.clone(),
            base: cfg.base.clone(),
            filter: cfg.filter.clone(),
            timeout: cfg.timeout(),
            slot: Mutex::new(Slot::default()),
        };
        dir.password()?;
        Ok(dir)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Whether an entry matches the filter for `address` (already normalised). The whole
    /// lookup (waiting for the connection, connecting, binding, searching) is bounded by
    /// the configured timeout.
    pub async fn exists(&self, address: &str) -> Result<bool, DirectoryError> {
        let filter = super::escape::fill(&self.filter, address);
        let mut used = None;
        let result =
            tokio::time::timeout(self.timeout, self.exists_within(&filter, &mut used)).await;
        match result {
            Ok(r) => r,
            Err(_) => {
                // A server that stops answering mid-connection would hang every later
                // lookup on the same connection too.
                if let Some(id) = used {
                    self.discard(id).await;
                }
                Err(DirectoryError::Timeout {
                    url: self.url.clone(),
                    after: self.timeout,
                })
            }
        }
    }

    async fn exists_within(
        &self,
        filter: &str,
        used: &mut Option<u64>,
    ) -> Result<bool, DirectoryError> {
        let mut retried = false;
        loop {
            let (mut ldap, id, fresh) = self.connection().await?;
            *used = Some(id);
            match self.search_one(&mut ldap, filter).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    self.discard(id).await;
                    if fresh || retried {
                        return Err(e);
                    }
                    debug!(
                        url = %self.url,
                        error = %e,
                        "LDAP lookup failed on a reused connection; reconnecting"
                    );
                    retried = true;
                }
            }
        }
    }

    async fn search_one(&self, ldap: &mut Ldap, filter: &str) -> Result<bool, DirectoryError> {
        let err = |error: LdapError| DirectoryError::Search {
            url: self.url.clone(),
            base: self.base.clone(),
            error: error.to_string(),
        };
        // Asking for the attribute "1.1" returns no attributes (RFC 4511 4.5.1.8): only
        // whether an entry exists matters. The time limit lets the server give up too.
        let secs = i32::try_from(self.timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        let SearchResult(entries, result) = ldap
            .with_search_options(SearchOptions::new().sizelimit(1).timelimit(secs))
            .search(&self.base, Scope::Subtree, filter, vec!["1.1"])
            .await
            .map_err(err)?;
        match result.rc {
            RC_SUCCESS | RC_SIZE_LIMIT_EXCEEDED => Ok(!entries.is_empty()),
            _ => Err(err(LdapError::from(result))),
        }
    }

    /// The shared connection, opened if there is none (or it closed); and whether it was
    /// opened just now.
    async fn connection(&self) -> Result<(Ldap, u64, bool), DirectoryError> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.conn.as_mut() {
            if !c.ldap.is_closed() {
                return Ok((c.ldap.clone(), c.id, false));
            }
        }
        slot.conn = None;
        let ldap = self.open().await?;
        slot.opened += 1;
        let id = slot.opened;
        slot.conn = Some(Conn {
            ldap: ldap.clone(),
            id,
        });
        Ok((ldap, id, true))
    }

    /// Drops connection `id` if it is still the shared one.
    async fn discard(&self, id: u64) {
        let mut slot = self.slot.lock().await;
        if slot.conn.as_ref().is_some_and(|c| c.id == id) {
            slot.conn = None;
        }
    }

    /// A new connection, bound if so configured.
    async fn open(&self) -> Result<Ldap, DirectoryError> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|error| DirectoryError::Connect {
                url: self.url.clone(),
                error: error.to_string(),
            })?;
        let url = self.url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                debug!(url = %url, error = %e, "LDAP connection ended");
            }
        });
        if let (Some(dn), Some(password)) = (&self.bind_dn, self.password()?) {
            ldap.simple_bind(dn, &password)
                .await
                .and_then(|r| r.success())
                .map_err(|error| DirectoryError::Bind {
                    url: self.url.clone(),
                    dn: dn.clone(),
                    error: error.to_string(),
                })?;
        }
        debug!(url = %self.url, "LDAP connection opened");
        Ok(ldap)
    }

    /// The first line of the password file, if one is configured.
    fn password(&self) -> Result<Option<String>, DirectoryError> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Password {
            path: path.clone(),
            source,
        })?;
        match text.lines().next() {
            Some(line) if !line.is_empty() => Ok(Some(line.to_owned())),
            _ => Err(DirectoryError::EmptyPassword { path: path.clone() }),
        }
    }

    /// The values of `attrs` of every entry under the base that matches `filter`, as
    /// (attribute name without options, value) pairs, fetched in pages on a connection of
    /// its own. Each reply must come within the timeout; the whole may take longer.
    pub async fn values(
        &self,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<(String, String)>, DirectoryError> {
        let search_err = |error: LdapError| DirectoryError::Search {
            url: self.url.clone(),
            base: self.base.clone(),
            error: error.to_string(),
        };
        let mut ldap = tokio::time::timeout(self.timeout, self.open())
            .await
            .map_err(|_| DirectoryError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            })??;
        // EntriesOnly drops the referrals Active Directory returns for its application
        // partitions; PagedResults fetches past the server's size limit.
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE_SIZE)),
        ];
        let mut stream = ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, &self.base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(search_err)?;
        let mut out = Vec::new();
        while let Some(entry) = stream.next().await.map_err(search_err)? {
            let entry = SearchEntry::construct(entry);
            for (name, values) in entry.attrs {
                // Active Directory names a partial multi-valued attribute
                // `proxyAddresses;range=0-1499`.
                let name = name.split(';').next().unwrap_or_default().to_owned();
                out.extend(values.into_iter().map(|v| (name.clone(), v)));
            }
        }
        stream.finish().await.success().map_err(search_err)?;
        let _ = ldap.unbind().await;
        Ok(out)
    }
}
