//! The `[runtime]` section every service's config file shares.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Problems, Validate};

/// Settings of the shared runtime: where `/metrics` and `/healthz` listen, how long a
/// drain may take.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Address of the metrics/health endpoint; none means no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds in-flight work may take to finish after SIGTERM.
    pub drain_timeout_secs: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            metrics_listen: None,
            drain_timeout_secs: 30,
        }
    }
}

impl RuntimeConfig {
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    /// Binds the metrics/health endpoint's listener, if one is configured; the error
    /// names the address.
    pub async fn bind_metrics(&self) -> std::io::Result<Option<tokio::net::TcpListener>> {
        let Some(addr) = self.metrics_listen else {
            return Ok(None);
        };
        tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} for metrics: {e}"),
                )
            })
    }

    /// Validates this section, found under `key` in the file.
    pub fn validate_at(&self, key: &str, problems: &mut Problems) {
        problems.check(
            (1..=3600).contains(&self.drain_timeout_secs),
            format!("{key}.drain_timeout_secs"),
            format!(
                "expected seconds between 1 and 3600, got {}",
                self.drain_timeout_secs
            ),
        );
    }
}

impl Validate for RuntimeConfig {
    fn validate(&self, problems: &mut Problems) {
        self.validate_at("runtime", problems);
    }
}
