//! What the kernel holds now: `nft -j list table inet NAME`, reduced to what
//! [`super::apply`](mod@super::apply) compares (set and chain definitions) and
//! [`super::counters`] reports (each rule's chain, comment and counter).
//!
//! The listing is read as untyped JSON, not with the `nftables` crate's types: a table
//! may hold statements the crate cannot deserialize (gwx's own dynamic-set statements
//! among them), and only a few fields matter here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::NftError;
use super::command::Nft;
use super::ruleset::FAMILY;

/// A set's definition, normalized so that the desired set (rendered by gwx) and the
/// listed one (rendered by nft) compare equal when the kernel would keep the same set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    /// `"ipv4_addr"`, or an array for concatenations.
    pub set_type: Value,
    /// Without `dynamic`: nft 1.0.6 sets it by itself and does not list it in JSON.
    pub flags: BTreeSet<String>,
    pub timeout: Option<u64>,
    pub size: Option<u64>,
    pub policy: Option<String>,
}

/// A chain's definition; a regular chain has only `None`s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainDef {
    pub kind: Option<String>,
    pub hook: Option<String>,
    pub prio: Option<i64>,
    pub policy: Option<String>,
}

/// A rule as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub chain: String,
    pub comment: Option<String>,
    /// `(packets, bytes)` of the rule's anonymous counter, if it has one.
    pub counter: Option<(u64, u64)>,
}

/// One table as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableListing {
    pub sets: BTreeMap<String, SetDef>,
    pub chains: BTreeMap<String, ChainDef>,
    pub rules: Vec<ListedRule>,
}

impl SetDef {
    /// From a `set` object (the value under `"set"`).
    pub fn from_json(obj: &Value) -> SetDef {
        let flags = match obj.get("flags") {
            Some(Value::String(f)) => BTreeSet::from([f.clone()]),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect(),
            _ => BTreeSet::new(),
        };
        SetDef {
            set_type: obj.get("type").cloned().unwrap_or(Value::Null),
            flags: flags.into_iter().filter(|f| f != "dynamic").collect(),
            timeout: obj.get("timeout").and_then(Value::as_u64),
            size: obj.get("size").and_then(Value::as_u64),
            policy: obj
                .get("policy")
                .and_then(Value::as_str)
                .filter(|p| *p != "performance") // the default, listed or not
                .map(str::to_owned),
        }
    }
}

impl ChainDef {
    /// From a `chain` object (the value under `"chain"`).
    pub fn from_json(obj: &Value) -> ChainDef {
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        ChainDef {
            kind: text("type"),
            hook: text("hook"),
            prio: obj.get("prio").and_then(Value::as_i64),
            policy: text("policy"),
        }
    }
}

impl TableListing {
    /// Parses the output of `nft -j list table FAMILY TABLE`; objects of other tables
    /// (there are none in such output) are ignored.
    pub fn parse(json: &str, table: &str) -> Result<TableListing, String> {
        let doc: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let objects = doc
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or("no \"nftables\" array")?;
        let family = serde_json::to_value(FAMILY).expect("family serializes");
        let ours = |o: &Value| o.get("family") == Some(&family) && o["table"] == table;
        let mut listing = TableListing::default();
        for object in objects {
            if let Some(set) = object.get("set").filter(|s| ours(s)) {
                let name = set["name"].as_str().ok_or("a set without a name")?;
                listing.sets.insert(name.to_owned(), SetDef::from_json(set));
            } else if let Some(chain) = object.get("chain").filter(|c| ours(c)) {
                let name = chain["name"].as_str().ok_or("a chain without a name")?;
                listing
                    .chains
                    .insert(name.to_owned(), ChainDef::from_json(chain));
            } else if let Some(rule) = object.get("rule").filter(|r| ours(r)) {
                let chain = rule["chain"].as_str().ok_or("a rule without a chain")?;
                let counter = rule["expr"].as_array().and_then(|expr| {
                    expr.iter().find_map(|stmt| {
                        let c = stmt.get("counter")?;
                        Some((c.get("packets")?.as_u64()?, c.get("bytes")?.as_u64()?))
                    })
                });
                listing.rules.push(ListedRule {
                    chain: chain.to_owned(),
                    comment: rule
                        .get("comment")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    counter,
                });
            }
        }
        Ok(listing)
    }
}

/// Reads table `table` (family `inet`) from the kernel; `None` if it does not exist.
pub fn read(nft: &Nft, owner: &str, table: &str) -> Result<Option<TableListing>, NftError> {
    let args = ["-j", "list", "table", FAMILY_NAME, table];
    match nft.run(owner, "reading the current table", &args, None) {
        Ok(out) => TableListing::parse(&out, table)
            .map(Some)
            .map_err(|problem| NftError::Listing {
                owner: owner.to_owned(),
                command: format!("{} {}", nft.argv().join(" "), args.join(" ")),
                problem,
            }),
        // nft says "Error: No such file or directory" and points at the table name; a
        // wrapper's own failure (`ip netns exec` without the namespace) says it otherwise.
        Err(NftError::Failed { stderr, .. })
            if stderr.starts_with("Error: No such file or directory")
                && stderr.contains(&format!("list table {FAMILY_NAME} {table}")) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// [`FAMILY`] as nft writes it.
pub(crate) const FAMILY_NAME: &str = "inet";
