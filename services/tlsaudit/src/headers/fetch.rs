//! The header audit's I/O: GET requests with ureq 3, one at a time.
//!
//! The agent follows no redirects (`max_redirects(0)`: ureq returns the 3xx as is) so
//! that [`Client::follow`] records every response of the chain; 4xx and 5xx are
//! answers, not errors (`http_status_as_error(false)`); every request must finish
//! within the timeout; no proxy from the environment (the audit is of the server, not
//! of a proxy). TLS: rustls (ring) trusting the system roots (rustls-native-certs) plus
//! the optional extra CA file, as root certificates given to ureq's `TlsConfig`.
//! Bodies are not read: only status and headers matter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use anyhow::{Context, bail};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::{Options, resolve};
use crate::report::Response;

const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new(options: &Options) -> anyhow::Result<Client> {
        let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
            .certs
            .into_iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        if let Some(path) = &options.ca_file {
            let pem =
                std::fs::read(path).with_context(|| format!("read CA file {}", path.display()))?;
            let before = roots.len();
            for item in ureq::tls::parse_pem(&pem) {
                if let PemItem::Certificate(cert) =
                    item.with_context(|| format!("parse CA file {}", path.display()))?
                {
                    roots.push(cert);
                }
            }
            if roots.len() == before {
                bail!("CA file {} holds no certificate", path.display());
            }
        }
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build();
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .proxy(None)
            .user_agent(concat!("tlsaudit/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Ok(Client {
            agent: config.into(),
        })
    }

    /// One GET, its status and headers.
    pub fn get(&self, url: &str) -> anyhow::Result<Response> {
        let response = self
            .agent
            .get(url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(Response {
            url: url.to_string(),
            status: response.status().as_u16(),
            headers,
        })
    }

    /// GETs `url` and follows up to `max_redirects` redirects, returning every response.
    pub fn follow(&self, url: &str, max_redirects: usize) -> anyhow::Result<Vec<Response>> {
        let mut chain = vec![self.get(url)?];
        loop {
            let last = chain.last().expect("not empty");
            if !REDIRECTS.contains(&last.status) {
                return Ok(chain);
            }
            let Some(location) = super::header(last, "location") else {
                return Ok(chain);
            };
            let next = resolve(&last.url, location)
                .with_context(|| format!("{} redirects to {location:?}", last.url))?;
            if chain.len() > max_redirects {
                bail!("{url}: more than {max_redirects} redirects");
            }
            chain.push(self.get(&next)?);
        }
    }

    /// GETs a path that cannot exist on the origin of `url` (no redirects followed).
    pub fn error_page(&self, url: &str) -> anyhow::Result<Response> {
        let origin = super::Url::parse(url)
            .with_context(|| format!("not a URL: {url}"))?
            .origin();
        self.get(&format!("{origin}{}", missing_path()))
    }
}

/// `/tlsaudit-404-<random hex>`.
pub fn missing_path() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("/tlsaudit-404-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_differ() {
        let (a, b) = (missing_path(), missing_path());
        assert!(a.starts_with("/tlsaudit-404-") && a.len() == 30, "{a}");
        assert_ne!(a, b);
    }
}
