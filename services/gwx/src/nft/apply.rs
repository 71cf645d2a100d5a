//! Atomic apply: the desired [`Ruleset`] replaces the table's chains and rules in one
//! `nft -j -f -` transaction, while sets whose definition did not change keep their
//! elements (bans, per-source rate buckets, connection counts).
//!
//! The batch, computed from the current table (`nft -j list table inet NAME`):
//!
//! 1. `add table` (a no-op if it exists);
//! 2. `flush chain` for every chain the table has now;
//! 3. `delete chain` for chains no longer wanted or whose type, hook, priority or policy
//!    changed (the kernel cannot move a base chain to another hook or priority);
//! 4. `delete set` for sets no longer wanted or whose definition changed (possible now:
//!    the rules that referenced them were flushed in step 2);
//! 5. `add set` for new and changed sets; unchanged sets are not mentioned at all (an
//!    `add` would be refused for a set nft marked `dynamic`, a flag its JSON parser does
//!    not accept, and would gain nothing);
//! 6. `add chain` for new and changed chains;
//! 7. `add rule` for every rule, in order.
//!
//! nft sends the whole batch as one netlink transaction: the kernel applies all of it or
//! none of it, and packets see either the old ruleset or the new one, never an empty
//! chain in between. A batch the kernel refuses (or nft cannot parse) leaves the table
//! exactly as it was. If the table changes between the listing and the apply (another
//! apply ran), the batch fails the same clean way and can simply be retried; the ban
//! engine only adds set elements, which never conflicts.
//!
//! Rejected designs: `flush table` + add (two steps, and `flush table` also empties
//! every set, so all bans are lost); `delete table` + add in one batch, re-adding the
//! ban elements read just before (atomic, but bans added between the read and the apply
//! are lost and every element's expiry restarts); diffing rule by rule and replacing
//! them by handle (atomic too, but much more code for the same result, and counters
//! would survive only for some rules).
//!
//! Rule counters restart from zero at every apply (the rules are new); see
//! [`super::counters`] for how that is exported.

use serde_json::{Value, json};

use super::NftError;
use super::command::Nft;
use super::listing::{self, ChainDef, SetDef, TableListing};
use super::ruleset::{Ruleset, chain_object, document, set_object};

/// How to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Only check: `nft --check`; the kernel validates the batch, nothing changes.
    pub dry_run: bool,
}

/// What an apply does (or did): the names of the objects in each fate, and the batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub kept_sets: Vec<String>,
    pub created_sets: Vec<String>,
    pub replaced_sets: Vec<String>,
    pub deleted_sets: Vec<String>,
    pub kept_chains: Vec<String>,
    pub created_chains: Vec<String>,
    pub replaced_chains: Vec<String>,
    pub deleted_chains: Vec<String>,
    pub rules: usize,
    batch: String,
}

impl Plan {
    /// The batch that turns `current` (`None`: no table yet) into `desired`.
    pub fn new(current: Option<&TableListing>, desired: &Ruleset) -> Plan {
        let empty = TableListing::default();
        let current = current.unwrap_or(&empty);
        let mut plan = Plan {
            rules: desired.rules.len(),
            ..Plan::default()
        };

        let desired_sets: Vec<(String, SetDef, Value)> = desired
            .sets
            .iter()
            .map(|s| {
                let obj = set_object(s);
                (s.name.to_string(), SetDef::from_json(&obj["set"]), obj)
            })
            .collect();
        let desired_chains: Vec<(String, ChainDef, Value)> = desired
            .chains
            .iter()
            .map(|c| {
                let obj = chain_object(c);
                (c.name.to_string(), ChainDef::from_json(&obj["chain"]), obj)
            })
            .collect();

        let mut flush = Vec::new();
        let mut delete = Vec::new();
        let mut add = Vec::new();

        for (name, def) in &current.chains {
            flush.push(json!({"flush": desired.chain_ref(name)}));
            match desired_chains.iter().find(|(n, ..)| n == name) {
                None => {
                    plan.deleted_chains.push(name.clone());
                    delete.push(json!({"delete": desired.chain_ref(name)}));
                }
                Some((_, want, _)) if want != def => {
                    plan.replaced_chains.push(name.clone());
                    delete.push(json!({"delete": desired.chain_ref(name)}));
                }
                Some(_) => plan.kept_chains.push(name.clone()),
            }
        }
        for (name, def) in &current.sets {
            match desired_sets.iter().find(|(n, ..)| n == name) {
                None => {
                    plan.deleted_sets.push(name.clone());
                    delete.push(json!({"delete": desired.set_ref(name)}));
                }
                Some((_, want, _)) if want != def => {
                    plan.replaced_sets.push(name.clone());
                    delete.push(json!({"delete": desired.set_ref(name)}));
                }
                Some(_) => plan.kept_sets.push(name.clone()),
            }
        }
        for (name, _, obj) in &desired_sets {
            if !plan.kept_sets.contains(name) {
                if !plan.replaced_sets.contains(name) {
                    plan.created_sets.push(name.clone());
                }
                add.push(json!({"add": obj}));
            }
        }
        for (name, _, obj) in &desired_chains {
            if !plan.kept_chains.contains(name) {
                if !plan.replaced_chains.contains(name) {
                    plan.created_chains.push(name.clone());
                }
                add.push(json!({"add": obj}));
            }
        }

        let mut commands = vec![json!({"add": desired.table_object()})];
        commands.extend(flush);
        commands.extend(delete);
        commands.extend(add);
        commands.extend(
            desired
                .rules
                .iter()
                .map(|r| json!({"add": desired.rule_object(r)})),
        );
        plan.batch = document(commands);
        plan
    }

    /// The `nft -j -f` document of this plan.
    pub fn batch_json(&self) -> &str {
        &self.batch
    }
}

/// Applies `ruleset` with `nft` in one transaction (see the module docs), or only
/// checks it with `Options { dry_run: true }`. Returns what was (or would be) done.
pub fn apply(nft: &Nft, ruleset: &Ruleset, options: Options) -> Result<Plan, NftError> {
    let current = listing::read(nft, &ruleset.owner, &ruleset.table)?;
    let plan = Plan::new(current.as_ref(), ruleset);
    let (action, args): (&str, &[&str]) = if options.dry_run {
        ("checking the ruleset", &["--check", "-j", "-f", "-"])
    } else {
        ("applying the ruleset", &["-j", "-f", "-"])
    };
    nft.run(&ruleset.owner, action, args, Some(plan.batch_json()))?;
    Ok(plan)
}
