//! The nftables side of gwx: the gateway's hardened ruleset, the backend's
//! allow-only-gateways ruleset, their atomic application and their counters.
//!
//! Layout:
//!
//! * [`ruleset`]: [`Ruleset`], a ruleset as plain data (sets, chains, rules) built from
//!   the `nftables` crate's schema types and rendered deterministically to the JSON that
//!   `nft -j` reads.
//! * [`gateway`]: the gateway's ruleset for one gateway of the inventory.
//! * [`backend`]: the backend host's ruleset.
//! * [`apply`](mod@apply): one `nft -j -f -` transaction that replaces rules and keeps state.
//! * [`counters`]: rule counters read back from the kernel, as Prometheus metrics.
//! * [`command`]: [`Nft`], how `nft` is run (directly, or inside a network namespace).
//!
//! # Design
//!
//! **One table, `inet gwx`.** Everything gwx installs lives in one table of the `inet`
//! family, so IPv4 and IPv6 share chains, and gwx never reads or writes another table:
//! Docker, libvirt or an operator's own firewall keep theirs. nftables evaluates every
//! base chain registered on a hook, so gwx's drops hold whatever other tables accept,
//! and a `flush ruleset` is never needed. (Rejected: one table per family, which doubles
//! every rule and every apply; `flush ruleset`, which destroys other tables.)
//!
//! **Cheap drops first.** Packets pass the table's prerouting chains in priority order:
//!
//! | chain | hook, priority | what |
//! |---|---|---|
//! | `prefilter` | prerouting, -450 | bans, fragments, bogus TCP flags, TCP SYN rate per source, `notrack` for synproxy |
//! | `stateful` | prerouting, -150 (mangle) | `ct state invalid`, new TCP without SYN, connections per source, UDP rate per source |
//! | `dnat` | nat prerouting, -100 | L3 services: public address and port to the backend |
//! | `input` | filter input, 0, policy drop | what the gateway itself serves |
//! | `forward` | filter forward, 0, policy drop | L3 services only |
//! | `snat` | nat postrouting, 100 | L3 services: source becomes the gateway's private address |
//!
//! Everything that can be decided from one packet alone (a banned source, a fragment, an
//! impossible flag combination, one source's SYN rate) is decided in `prefilter`, before
//! connection tracking (-200): a flood of such packets then costs no conntrack lookup and
//! no conntrack entry. `prefilter` sits at -450 rather than at the usual `raw` (-300)
//! because IP defragmentation runs at -400 as soon as conntrack is used in the namespace:
//! at -300 a fragment has already been reassembled and `ip frag-off` / `exthdr frag`
//! never match (the `fragments_are_dropped_and_counted` test proves the -450 choice on
//! the real kernel). A banned source's fragments are then dropped before they occupy
//! reassembly queues, too.
//!
//! **Fast paths for established traffic.** Nearly every packet of an established flow is
//! a segment whose flags (of FIN, SYN, RST, ACK) are exactly ACK; none of the flag or
//! SYN-rate rules can match it, so after the ban and fragment checks `prefilter`
//! accepts it (`accept:plain-ack`), and `stateful`, whose rules all concern invalid or
//! new packets, lets established ones go first (`accept:established`). An accept only
//! ends that chain. This took L3 forwarding from 0.84-0.87 to 0.92-1.04 of plain routing
//! in `bench/gwx-forward` (throughput, one and four streams).
//!
//! Per-source limits for both modes are applied in `stateful`, before DNAT: there the
//! destination is still the public address and service port for L3 and proxy services
//! alike, so one rule shape serves both, and an over-limit connection never reaches the
//! NAT or routing code. (Rejected: matching `ct original` addresses in `forward` and
//! `input` separately, twice the rules for the same effect, applied later.)
//!
//! **Counters with names.** Every rule that decides something carries a `counter` and a
//! `comment` that is a stable identifier, unique within its chain: `drop:<reason>` for
//! drops (optionally followed by a space and what it applies to, e.g. `drop:rate web ip`),
//! `accept:...`, `dnat:...`, `snat:...`. [`counters`] reads them back and derives drops
//! by reason from the `drop:` prefix.
//!
//! **Atomic apply that keeps state.** See [`apply`](mod@apply): one transaction flushes and refills
//! the chains but leaves sets whose definition did not change alone, so bans and
//! per-source meters survive a reload, and a ruleset the kernel refuses changes nothing.
//!
//! **SYN proxy with DNAT.** The usual recipe puts `synproxy` in `forward`; with DNAT that
//! cannot work: the SYN is `notrack`ed, so it is never DNATed, is addressed to the
//! gateway itself and arrives in `input`. So the `synproxy` rule sits in `input`, and the
//! SYN that the kernel sends to the server once the client's handshake is complete is
//! locally generated, so a `dnat_local` chain (nat output) DNATs it like `dnat` does for
//! forwarded packets. The connection-per-source limit cannot apply to such services (the
//! connection's conntrack entry is born in the output path); their SYN rate limit does.
//! `net.netfilter.nf_conntrack_tcp_loose = 0` is needed (see [`crate::sysctl`]), and the
//! `stateful` chain lets the handshake's untracked and invalid packets through to
//! `input` for those ports.

pub mod apply;
pub mod backend;
pub mod command;
pub mod counters;
mod expr;
pub mod gateway;
pub mod listing;
pub mod ruleset;

pub use apply::{Options, Plan, apply};
pub use command::Nft;
pub use counters::{NftMetrics, RuleCounter};
pub use ruleset::{Rule, Ruleset, Stmt};

/// What went wrong building, applying or reading a ruleset; always says for whom (which
/// gateway or the backend) and, for `nft` failures, the command and nft's own message.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("unknown gateway `{id}`: the inventory has {known}")]
    UnknownGateway { id: String, known: String },
    #[error("{owner}: {problem}")]
    Inventory { owner: String, problem: String },
    #[error("{owner}: cannot run `{command}`")]
    Spawn {
        owner: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{owner}: {action} with `{command}` failed ({status}): {stderr}")]
    Failed {
        owner: String,
        action: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{owner}: `{command}` printed JSON gwx cannot read: {problem}")]
    Listing {
        owner: String,
        command: String,
        problem: String,
    },
}

impl NftError {
    /// nft's stderr, when `nft` ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            NftError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// The gateway called `id`, or an error naming it and the gateways that exist.
pub(crate) fn find_gateway<'a>(
    inventory: &'a crate::inventory::Inventory,
    id: &str,
) -> Result<&'a crate::inventory::Gateway, NftError> {
    inventory
        .gateway(id)
        .ok_or_else(|| NftError::UnknownGateway {
            id: id.to_owned(),
            known: known_ids(inventory),
        })
}

/// "`gw1`, `gw2`" for messages.
pub(crate) fn known_ids(inventory: &crate::inventory::Inventory) -> String {
    let ids: Vec<String> = inventory
        .gateways
        .iter()
        .map(|g| format!("`{}`", g.id))
        .collect();
    if ids.is_empty() {
        "no gateways".to_owned()
    } else {
        ids.join(", ")
    }
}

#[cfg(test)]
mod tests;
