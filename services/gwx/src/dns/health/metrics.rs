//! Metrics of the health checker: whether each address is handed out (`dns_address_up`,
//! 1 or 0) and the checks run by result (`dns_checks`). Each address resolves its label
//! sets once into [`AddressCounters`], so a check only touches atomics.

use std::net::IpAddr;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AddressLabels {
    address: String,
    gateway: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    address: String,
    gateway: String,
    result: &'static str,
}

/// The `result` label values of the checks counter: "ok", then [`super::probe::Failure`]'s labels.
pub const RESULTS: [&str; 6] = [
    "ok",
    "refused",
    "timeout",
    "error",
    "http_status",
    "bad_response",
];

/// The metric families of the health checker, registered once per process.
#[derive(Clone, Debug, Default)]
pub struct HealthMetrics {
    up: Family<AddressLabels, Gauge>,
    checks: Family<CheckLabels, Counter>,
}

impl HealthMetrics {
    pub fn register(registry: &mut Registry) -> HealthMetrics {
        let m = HealthMetrics::default();
        let r = registry.sub_registry_with_prefix("dns");
        r.register(
            "address_up",
            "1 if the gateway address is handed out in DNS answers (up and not drained)",
            m.up.clone(),
        );
        r.register(
            "checks",
            "Health checks of gateway addresses, per address and result",
            m.checks.clone(),
        );
        m
    }

    /// The handles of one address.
    pub(super) fn address(&self, address: IpAddr, gateway: &str) -> AddressCounters {
        let labels = AddressLabels {
            address: address.to_string(),
            gateway: gateway.to_owned(),
        };
        let checks = RESULTS.map(|result| {
            self.checks
                .get_or_create(&CheckLabels {
                    address: labels.address.clone(),
                    gateway: labels.gateway.clone(),
                    result,
                })
                .clone()
        });
        AddressCounters {
            up: self.up.get_or_create(&labels).clone(),
            checks,
        }
    }
}

/// Pre-resolved metric handles of one address.
#[derive(Clone, Debug)]
pub(super) struct AddressCounters {
    pub up: Gauge,
    checks: [Counter; RESULTS.len()],
}

impl AddressCounters {
    /// Counts one check with `result`, one of [`RESULTS`].
    pub fn count(&self, result: &str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            self.checks[i].inc();
        }
    }
}
