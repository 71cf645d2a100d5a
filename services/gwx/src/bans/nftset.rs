//! The gateway's ban sets (`bans4`, `bans6` in table `inet gwx`) as the ban engine and
//! `gwx bans` see them: bans added in batches, each with its own timeout and the jail
//! as the element's comment, so the kernel's listing alone says who is banned, by
//! which jail, for how much longer. Unbans happen by the kernel's own timeouts.
//!
//! A batch is one `nft -j -f -` transaction built with the `nftables` crate: 100,000
//! bans load in about a second. Re-banning a network that may still be in the set
//! (to give it a new timeout) is `add` (a no-op if present), `delete`, `add` in one
//! transaction: a plain `add` would keep the old timeout, and a `delete` alone fails
//! the whole batch when the element has just expired.

use std::borrow::Cow;
use std::time::Duration;

use ipnet::IpNet;
use nftables::expr::{Elem, Expression, NamedExpression};
use nftables::schema::{Element, NfCmd, NfListObject, NfObject, Nftables};
use serde_json::Value;

use crate::inventory::Hardening;
use crate::nft::NftError;
use crate::nft::command::Nft;
use crate::nft::gateway::{BANS4, BANS6, TABLE};
use crate::nft::ruleset::FAMILY;

/// One element of a ban set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub net: IpNet,
    /// Time left until the kernel removes it.
    pub expires: Duration,
    /// The jail that banned it (`manual` for `gwx bans add`), from the element comment.
    pub jail: String,
}

/// A ban to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub net: IpNet,
    pub timeout: Duration,
    pub jail: String,
    /// The network may already be in the set and must get this timeout.
    pub replace: bool,
}

/// The two ban sets of one gateway, reached through `nft`.
#[derive(Debug, Clone)]
pub struct BanSets {
    nft: Nft,
    /// The ban prefixes (from the inventory's hardening): an element is the first
    /// address of a network of this length.
    v4_prefix: u8,
    v6_prefix: u8,
}

const OWNER: &str = "ban sets";

impl BanSets {
    pub fn new(nft: Nft, hardening: &Hardening) -> BanSets {
        BanSets {
            nft,
            v4_prefix: hardening.ban_ipv4_prefix,
            v6_prefix: hardening.ban_ipv6_prefix,
        }
    }

    /// Adds `bans` in one transaction. An error leaves the sets as they were.
    pub fn add(&self, bans: &[Placement]) -> Result<(), NftError> {
        if bans.is_empty() {
            return Ok(());
        }
        self.transaction(&format!("adding {} ban(s)", bans.len()), &add_batch(bans))
    }

    /// Removes `nets` in one transaction; fails (changing nothing) if one is not
    /// banned.
    pub fn delete(&self, nets: &[IpNet]) -> Result<(), NftError> {
        if nets.is_empty() {
            return Ok(());
        }
        let objects: Vec<NfObject> = split_by_set(nets.iter().map(|n| (n, plain(n))))
            .into_iter()
            .map(|(set, elem)| NfObject::CmdObject(NfCmd::Delete(element(set, elem))))
            .collect();
        self.transaction(
            &format!("removing {} ban(s)", nets.len()),
            &to_json(objects),
        )
    }

    /// Runs one `nft -j -f -` transaction.
    fn transaction(&self, action: &str, json: &str) -> Result<(), NftError> {
        self.nft
            .run(OWNER, action, &["-j", "-f", "-"], Some(json))
            .map(drop)
    }

    /// Every ban in both sets.
    pub fn list(&self) -> Result<Vec<Listed>, NftError> {
        let mut all = Vec::new();
        for set in [BANS4, BANS6] {
            let args = ["-j", "list", "set", FAMILY_NAME, TABLE, set];
            let out = self
                .nft
                .run(OWNER, &format!("listing {set}"), &args, None)?;
            let prefixes = (self.v4_prefix, self.v6_prefix);
            all.extend(
                parse_listing(&out, prefixes).map_err(|problem| NftError::Listing {
                    owner: OWNER.to_owned(),
                    command: format!("nft {}", args.join(" ")),
                    problem,
                })?,
            );
        }
        Ok(all)
    }
}

/// The JSON family name of [`FAMILY`], for command-line arguments.
const FAMILY_NAME: &str = "inet";

/// A set element is the ban network's first address: the ban rule masks the source to
/// the ban prefix before the lookup.
fn plain(net: &IpNet) -> Expression<'static> {
    Expression::String(Cow::Owned(net.network().to_string()))
}

fn with_timeout(p: &Placement) -> Expression<'static> {
    Expression::Named(NamedExpression::Elem(Elem {
        val: Box::new(plain(&p.net)),
        // At least a second: a zero timeout would mean the set's default.
        timeout: Some(u32::try_from(p.timeout.as_secs().max(1)).unwrap_or(u32::MAX)),
        expires: None,
        comment: Some(Cow::Owned(p.jail.clone())),
        counter: None,
    }))
}

fn element(set: &'static str, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: FAMILY,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(set),
        elem: Cow::Owned(elem),
    })
}

/// Groups elements by the set they belong in, v4 first.
fn split_by_set<'a>(
    items: impl Iterator<Item = (&'a IpNet, Expression<'static>)>,
) -> Vec<(&'static str, Vec<Expression<'static>>)> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (net, e) in items {
        match net {
            IpNet::V4(_) => v4.push(e),
            IpNet::V6(_) => v6.push(e),
        }
    }
    [(BANS4, v4), (BANS6, v6)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn add_batch(bans: &[Placement]) -> String {
    let mut objects = Vec::new();
    let replaced: Vec<&Placement> = bans.iter().filter(|p| p.replace).collect();
    if !replaced.is_empty() {
        // Present for sure (add is a no-op if it is), then gone, then added below.
        for (set, elem) in split_by_set(replaced.iter().map(|p| (&p.net, plain(&p.net)))) {
            objects.push(NfObject::CmdObject(NfCmd::Add(element(set, elem))));
        }
        for (set, elem) in split_by_set(replaced.iter().map(|p| (&p.net, plain(&p.net)))) {
            objects.push(NfObject::CmdObject(NfCmd::Delete(element(set, elem))));
        }
    }
    for (set, elem) in split_by_set(bans.iter().map(|p| (&p.net, with_timeout(p)))) {
        objects.push(NfObject::CmdObject(NfCmd::Add(element(set, elem))));
    }
    to_json(objects)
}

fn to_json(objects: Vec<NfObject<'static>>) -> String {
    serde_json::to_string(&Nftables {
        objects: Cow::Owned(objects),
    })
    .expect("nft commands always serialize")
}

/// Reads the elements out of `nft -j list set` output. Hand-parsed rather than through
/// the crate's schema types: those would also have to accept everything else nft may
/// print about a set, and only `val`, `expires` and `comment` matter here.
fn parse_listing(json: &str, (v4, v6): (u8, u8)) -> Result<Vec<Listed>, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let objects = doc["nftables"].as_array().ok_or("no `nftables` array")?;
    let mut out = Vec::new();
    for obj in objects {
        let Some(set) = obj.get("set") else { continue };
        let default_timeout = set["timeout"].as_u64();
        let Some(elems) = set.get("elem").and_then(Value::as_array) else {
            continue;
        };
        for e in elems {
            let (val, expires, comment) = match e.get("elem") {
                Some(inner) => (
                    &inner["val"],
                    inner["expires"]
                        .as_u64()
                        .or_else(|| inner["timeout"].as_u64())
                        .or(default_timeout),
                    inner["comment"].as_str(),
                ),
                None => (e, default_timeout, None),
            };
            let text = val
                .as_str()
                .ok_or_else(|| format!("element value {val} is not an address"))?;
            let ip: std::net::IpAddr = text
                .parse()
                .map_err(|_| format!("element value {text:?} is not an address"))?;
            let len = if ip.is_ipv4() { v4 } else { v6 };
            out.push(Listed {
                net: IpNet::new(ip, len).unwrap_or_else(|_| IpNet::from(ip)),
                expires: Duration::from_secs(expires.unwrap_or(0)),
                jail: comment.unwrap_or("").to_owned(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacing_batch_adds_deletes_and_adds_again() {
        let json = add_batch(&[
            Placement {
                net: "198.18.0.1/32".parse().unwrap(),
                timeout: Duration::from_secs(60),
                jail: "wp".into(),
                replace: true,
            },
            Placement {
                net: "2001:db8:7::/64".parse().unwrap(),
                timeout: Duration::from_secs(90),
                jail: "ssh".into(),
                replace: false,
            },
        ]);
        let v: Value = serde_json::from_str(&json).unwrap();
        let verbs: Vec<String> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let (verb, body) = o.as_object().unwrap().iter().next().unwrap();
                format!("{verb} {}", body["element"]["name"].as_str().unwrap())
            })
            .collect();
        assert_eq!(
            verbs,
            ["add bans4", "delete bans4", "add bans4", "add bans6"]
        );
        assert!(
            json.contains(r#""val":"2001:db8:7::","timeout":90"#),
            "{json}"
        );
        assert!(json.contains(r#""comment":"ssh""#), "{json}");
    }

    #[test]
    fn listings_give_address_time_left_and_jail() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"set": {"family": "inet", "name": "bans4",
            "table": "gwx", "type": "ipv4_addr", "flags": ["timeout"], "timeout": 1200,
            "elem": [{"elem": {"val": "198.18.0.1", "expires": 1187, "comment": "wp"}},
                     {"elem": {"val": "198.18.0.2", "timeout": 60, "expires": 59}}]}}]}"#;
        let l = parse_listing(json, (32, 64)).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].expires.as_secs(), l[0].jail.as_str()), (1187, "wp"));
        assert_eq!(
            (l[1].net.to_string().as_str(), l[1].jail.as_str()),
            ("198.18.0.2/32", "")
        );
    }
}
