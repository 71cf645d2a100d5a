//! Metrics of the ban engine, per jail: lines read, failures matched, lines skipped and
//! why, bans placed, bans active now. Each jail resolves its label sets once into
//! [`JailCounters`], so the per-line path only touches atomics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JailLabels {
    jail: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    jail: String,
    reason: &'static str,
}

/// Why a matched line led to no count.
pub const SKIP_REASONS: [&str; 6] = [
    // an ignoreregex matched
    "ignoreregex",
    // the host was a DNS name (not resolved)
    "hostname",
    // the line could name two hosts (log injection)
    "ambiguous",
    // the host is allowlisted or protected
    "ignoreip",
    "protected",
    // older than findtime, or its ban would have ended
    "too_old",
];

#[derive(Clone, Debug, Default)]
pub struct BanMetrics {
    lines: Family<JailLabels, Counter>,
    matches: Family<JailLabels, Counter>,
    skipped: Family<SkipLabels, Counter>,
    bans: Family<JailLabels, Counter>,
    active: Family<JailLabels, Gauge>,
    active_total: Gauge,
    nft_errors: Counter,
}

impl BanMetrics {
    pub fn register(registry: &mut Registry) -> BanMetrics {
        let m = BanMetrics::default();
        let r = registry.sub_registry_with_prefix("bans");
        r.register("lines", "Log lines read, per jail", m.lines.clone());
        r.register(
            "matches",
            "Lines that matched a failregex, per jail",
            m.matches.clone(),
        );
        r.register(
            "skipped",
            "Matched lines that counted for nothing, per jail and reason",
            m.skipped.clone(),
        );
        r.register("placed", "Bans placed, per jail", m.bans.clone());
        r.register(
            "active",
            "Bans in the ban sets now, per jail (as of the last snapshot)",
            m.active.clone(),
        );
        r.register(
            "active_total",
            "Bans in the ban sets now (as of the last snapshot)",
            m.active_total.clone(),
        );
        r.register(
            "nft_errors",
            "Ban batches nft refused (retried with the next batch)",
            m.nft_errors.clone(),
        );
        m
    }

    /// The counters of one jail, every label set created so they show from the start.
    pub fn jail(&self, jail: &str) -> JailCounters {
        let l = JailLabels {
            jail: jail.to_owned(),
        };
        let skipped = SKIP_REASONS.map(|reason| {
            self.skipped
                .get_or_create(&SkipLabels {
                    jail: jail.to_owned(),
                    reason,
                })
                .clone()
        });
        drop(self.active.get_or_create(&l));
        JailCounters {
            lines: self.lines.get_or_create(&l).clone(),
            matches: self.matches.get_or_create(&l).clone(),
            bans: self.bans.get_or_create(&l).clone(),
            skipped,
        }
    }

    /// Sets the active-ban gauges from a listing of the sets: `(jail, count)`.
    pub fn set_active<'a>(
        &self,
        per_jail: impl IntoIterator<Item = (&'a str, usize)>,
        total: usize,
    ) {
        self.active.clear();
        for (jail, n) in per_jail {
            self.active
                .get_or_create(&JailLabels {
                    jail: jail.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.active_total
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    pub fn nft_error(&self) {
        self.nft_errors.inc();
    }
}

#[derive(Clone, Debug)]
pub struct JailCounters {
    pub lines: Counter,
    pub matches: Counter,
    pub bans: Counter,
    skipped: [Counter; SKIP_REASONS.len()],
}

impl JailCounters {
    /// Counts a skipped match; `reason` is one of [`SKIP_REASONS`].
    pub fn skip(&self, reason: &'static str) {
        let i = SKIP_REASONS
            .iter()
            .position(|r| *r == reason)
            .expect("a reason from SKIP_REASONS");
        self.skipped[i].inc();
    }
}
