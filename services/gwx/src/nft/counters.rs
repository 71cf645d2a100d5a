//! Rule counters read back from the kernel and exported as Prometheus metrics.
//!
//! Each counted rule is identified by its chain and comment ([`RuleCounter`]). Drops by
//! reason come from the `drop:` comments: `drop:rate web ip` is reason `rate`, and all
//! rules of one reason are summed.
//!
//! nft counters are absolute totals kept by the kernel, and they restart from zero when
//! the ruleset is re-applied (the rules are new). They are exported with a custom
//! [`Collector`] as Prometheus *counters* holding the kernel's value at scrape time:
//! the type says what they are (events since a start), and Prometheus' `rate()` and
//! `increase()` treat the drop to zero after a re-apply as the counter reset it is.
//! Rejected: a `Family<_, Gauge>` set to the totals (the wrong type: `rate()` on a
//! gauge is meaningless, dashboards would need `deriv`); a `Family<_, Counter>` fed by
//! differences between reads (needs its own reset detection and loses what happened
//! between the last read and a re-apply).
//!
//! The metrics (with the registry's prefix, e.g. `gwx_`):
//!
//! * `nft_rule_packets_total{chain, rule}` and `nft_rule_bytes_total{chain, rule}`;
//! * `nft_drops_total{reason}`: packets dropped, by reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use super::NftError;
use super::command::Nft;
use super::listing::{self, TableListing};

/// One counted rule's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCounter {
    pub chain: String,
    /// The rule's comment, its stable identifier (`drop:xmas`, `accept:service web ip`).
    pub comment: String,
    pub packets: u64,
    pub bytes: u64,
}

impl RuleCounter {
    /// The drop reason, for a `drop:` rule.
    pub fn drop_reason(&self) -> Option<&str> {
        drop_reason(&self.comment)
    }
}

/// `drop:rate web ip` -> `rate`; `None` for rules that do not drop.
pub fn drop_reason(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix("drop:")?;
    let reason = rest.split(' ').next().unwrap_or(rest);
    (!reason.is_empty()).then_some(reason)
}

/// The counters of table `table` (family `inet`): every rule with a comment and a
/// counter, in the kernel's order. A missing table is an error: there is nothing to
/// report and the caller should know.
pub fn read(nft: &Nft, table: &str) -> Result<Vec<RuleCounter>, NftError> {
    let owner = format!("table {table}");
    match listing::read(nft, &owner, table)? {
        Some(listing) => Ok(from_listing(&listing)),
        None => Err(NftError::Inventory {
            owner,
            problem: "the table does not exist (ruleset not applied?)".to_owned(),
        }),
    }
}

/// The counted, commented rules of a listing.
pub fn from_listing(listing: &TableListing) -> Vec<RuleCounter> {
    listing
        .rules
        .iter()
        .filter_map(|r| {
            let (packets, bytes) = r.counter?;
            Some(RuleCounter {
                chain: r.chain.clone(),
                comment: r.comment.clone()?,
                packets,
                bytes,
            })
        })
        .collect()
}

/// Packets dropped by reason (sum over the `drop:` rules of each reason).
pub fn drops_by_reason(counters: &[RuleCounter]) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for c in counters {
        if let Some(reason) = c.drop_reason() {
            *by.entry(reason.to_owned()).or_insert(0) += c.packets;
        }
    }
    by
}

/// The counter metrics; cheap to clone (clones share the snapshot). Register once, then
/// [`update`](NftMetrics::update) after each [`read`].
#[derive(Debug, Clone, Default)]
pub struct NftMetrics {
    snapshot: Arc<Mutex<Vec<RuleCounter>>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    chain: String,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

impl NftMetrics {
    /// Registers the collector in `registry`.
    pub fn register(registry: &mut Registry) -> NftMetrics {
        let metrics = NftMetrics::default();
        registry.register_collector(Box::new(metrics.clone()));
        metrics
    }

    /// Replaces the values exported at the next scrape. Rules listed twice under the
    /// same chain and comment (not in gwx's own rulesets) are summed.
    pub fn update(&self, counters: &[RuleCounter]) {
        let mut merged: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for c in counters {
            let e = merged.entry((&c.chain, &c.comment)).or_default();
            e.0 += c.packets;
            e.1 += c.bytes;
        }
        let snapshot = merged
            .into_iter()
            .map(|((chain, comment), (packets, bytes))| RuleCounter {
                chain: chain.to_owned(),
                comment: comment.to_owned(),
                packets,
                bytes,
            })
            .collect();
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    fn current(&self) -> Vec<RuleCounter> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Collector for NftMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rules = self.current();
        for (name, help, value) in [
            (
                "nft_rule_packets",
                "Packets matched by each counted nftables rule (restarts at each ruleset apply)",
                (|c: &RuleCounter| c.packets) as fn(&RuleCounter) -> u64,
            ),
            (
                "nft_rule_bytes",
                "Bytes matched by each counted nftables rule (restarts at each ruleset apply)",
                |c: &RuleCounter| c.bytes,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &rules {
                let labels = RuleLabels {
                    chain: c.chain.clone(),
                    rule: c.comment.clone(),
                };
                ConstCounter::new(value(c)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "nft_drops",
            "Packets dropped by the nftables ruleset, by reason (restarts at each ruleset apply)",
            None,
            MetricType::Counter,
        )?;
        for (reason, packets) in drops_by_reason(&rules) {
            ConstCounter::new(packets).encode(metric.encode_family(&ReasonLabels { reason })?)?;
        }
        Ok(())
    }
}
