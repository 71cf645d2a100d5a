//! gwx, the DDoS gateway. Several gateways receive a service's traffic and forward it to
//! a hidden backend that accepts traffic only from them; each gateway takes its share of
//! an attack and drops known-bad traffic itself.
//!
//! * [`inventory`]: the grid described in one TOML file.
//! * [`forward`]: L4 proxy mode (TCP with splice and PROXY headers, UDP sessions).
//! * [`metrics`]: forwarding metrics per service.
//! * [`nft`]: the gateway's hardened nftables ruleset, the backend's allow-only-gateways
//!   ruleset, their atomic apply and their counters as metrics.
//! * [`sysctl`]: the gateway's kernel settings as a `sysctl.d` file.

pub mod bans;
pub mod dns;
pub mod forward;
pub mod inventory;
pub mod metrics;
pub mod nft;
pub mod sysctl;

#[cfg(test)]
pub(crate) mod test_support;
