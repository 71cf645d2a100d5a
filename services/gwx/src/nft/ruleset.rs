//! A ruleset as plain data: one table, its named sets, its chains and its rules, in the
//! `nftables` crate's schema types, rendered to the JSON `nft -j -f` reads.
//!
//! The crate's types are used for everything they can express. Two statements nft
//! 1.0.6 reads are missing from the crate (0.6), so [`Stmt`] adds them ([`ExtStmt`]):
//! a set statement with stateful statements inside (`update @s { ip saddr limit rate
//! over 10/second }`, `add @s { ip saddr ct count over 8 }`) and `notrack`, which the
//! crate renders as a bare string nft refuses. (Rejected: the crate's `meter` statement,
//! which declares its own set and so clashes with the named, state-keeping sets that
//! [`super::apply`](mod@super::apply) preserves, and which nft deprecates.)
//!
//! Rendering is deterministic: the same ruleset gives the same bytes. Everything is kept
//! in `Vec`s in build order; the crate keeps some flag lists in `HashSet`s, whose
//! iteration order changes from run to run, so rendered `flags` arrays are sorted.

use std::borrow::Cow;

use nftables::expr::Expression;
use nftables::schema;
use nftables::stmt::{SetOp, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::Serialize;
use serde_json::{Value, json};

/// Every gwx table is an `inet` table: one ruleset for IPv4 and IPv6.
pub const FAMILY: NfFamily = NfFamily::INet;

/// One table's desired contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Ruleset {
    /// Whose ruleset this is, for messages: `gateway gw1`, `backend`.
    pub owner: String,
    /// The table's name (family [`FAMILY`]).
    pub table: String,
    pub sets: Vec<schema::Set<'static>>,
    pub chains: Vec<schema::Chain<'static>>,
    /// Rules in order; each names its chain.
    pub rules: Vec<Rule>,
}

/// One rule: its chain, its statements, its comment (the stable identifier counters are
/// reported under).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub chain: String,
    pub comment: Option<String>,
    pub expr: Vec<Stmt>,
}

/// A statement: one of the crate's, or one the crate cannot express.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Stmt {
    Nft(Statement<'static>),
    Ext(ExtStmt),
}

/// Statements nft reads that the `nftables` crate 0.6 lacks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtStmt {
    /// `add|update @set { elem stmt... }`: a dynamic set keyed by `elem` whose element
    /// carries stateful statements (a per-source `limit`, a per-source `ct count`).
    Set {
        op: SetOp,
        elem: Expression<'static>,
        /// `@name`.
        set: String,
        stmt: Vec<Statement<'static>>,
    },
    /// `notrack`, rendered as `{"notrack": null}`.
    Notrack(Option<()>),
}

impl Ruleset {
    /// An empty ruleset for table `table` (family `inet`).
    pub fn new(owner: impl Into<String>, table: impl Into<String>) -> Ruleset {
        Ruleset {
            owner: owner.into(),
            table: table.into(),
            sets: Vec::new(),
            chains: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// The named set, if declared.
    pub fn set(&self, name: &str) -> Option<&schema::Set<'static>> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// The chain, if declared.
    pub fn chain(&self, name: &str) -> Option<&schema::Chain<'static>> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The rule with this comment in this chain.
    pub fn rule(&self, chain: &str, comment: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.chain == chain && r.comment.as_deref() == Some(comment))
    }

    /// Declares a named set of addresses (`ipv4_addr` / `ipv6_addr` per `set_type`).
    pub(crate) fn add_set(&mut self, set: schema::Set<'static>) {
        debug_assert!(self.set(&set.name).is_none(), "set {} twice", set.name);
        self.sets.push(set);
    }

    /// Declares a base chain: `type kind hook hook priority prio; policy policy;`.
    pub(crate) fn add_base_chain(
        &mut self,
        name: &str,
        kind: NfChainType,
        hook: NfHook,
        prio: i32,
        policy: NfChainPolicy,
    ) {
        debug_assert!(self.chain(name).is_none(), "chain {name} twice");
        self.chains.push(schema::Chain {
            family: FAMILY,
            table: Cow::Owned(self.table.clone()),
            name: Cow::Owned(name.to_owned()),
            newname: None,
            handle: None,
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            dev: None,
            policy: Some(policy),
        });
    }

    /// Appends a rule to `chain`.
    pub(crate) fn add_rule(&mut self, chain: &str, comment: impl Into<String>, expr: Vec<Stmt>) {
        let comment = comment.into();
        debug_assert!(
            self.rule(chain, &comment).is_none(),
            "comment {comment:?} twice in chain {chain}"
        );
        self.rules.push(Rule {
            chain: chain.to_owned(),
            comment: Some(comment),
            expr,
        });
    }

    /// The whole ruleset as an `nft -j -f` document that creates it in a kernel where
    /// the table does not exist yet: `add` table, sets, chains, rules. This is what
    /// `gwx ruleset` should print; [`super::apply`](mod@super::apply) computes the batch
    /// for a live kernel.
    ///
    /// There is deliberately no text rendering: nft's own listing is the only faithful
    /// one, and gwx re-implementing nft's syntax could differ from what is installed.
    /// To read a ruleset as nft text, load this JSON into a scratch namespace and list
    /// it (`ip netns add x; ip netns exec x nft -j -f FILE; ip netns exec x nft list
    /// ruleset`), which is how `test_data/*.nft` are made.
    pub fn to_json(&self) -> String {
        let mut commands = vec![json!({"add": self.table_object()})];
        commands.extend(self.sets.iter().map(|s| json!({"add": set_object(s)})));
        commands.extend(self.chains.iter().map(|c| json!({"add": chain_object(c)})));
        commands.extend(
            self.rules
                .iter()
                .map(|r| json!({"add": self.rule_object(r)})),
        );
        document(commands)
    }

    pub(crate) fn table_object(&self) -> Value {
        json!({"table": {"family": FAMILY, "name": self.table}})
    }

    pub(crate) fn rule_object(&self, rule: &Rule) -> Value {
        let mut obj = json!({
            "family": FAMILY,
            "table": self.table,
            "chain": rule.chain,
            "expr": rule.expr,
        });
        if let Some(c) = &rule.comment {
            obj["comment"] = json!(c);
        }
        json!({ "rule": obj })
    }

    /// Short references used by the apply plan.
    pub(crate) fn set_ref(&self, name: &str) -> Value {
        json!({"set": {"family": FAMILY, "table": self.table, "name": name}})
    }

    pub(crate) fn chain_ref(&self, name: &str) -> Value {
        json!({"chain": {"family": FAMILY, "table": self.table, "name": name}})
    }
}

pub(crate) fn set_object(set: &schema::Set<'static>) -> Value {
    json!({ "set": set })
}

pub(crate) fn chain_object(chain: &schema::Chain<'static>) -> Value {
    json!({ "chain": chain })
}

/// `{"nftables": [...]}`, canonical and pretty, with a final newline.
pub(crate) fn document(commands: Vec<Value>) -> String {
    let mut doc = json!({ "nftables": commands });
    canonicalize(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).expect("JSON values always serialize");
    text.push('\n');
    text
}

/// Sorts every `flags` array (the crate keeps flags in `HashSet`s).
fn canonicalize(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "flags"
                    && let Value::Array(items) = value
                {
                    items.sort_by_key(|i| i.to_string());
                }
                canonicalize(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize),
        _ => {}
    }
}
