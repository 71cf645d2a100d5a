//! Small constructors for the expressions and statements the rulesets use, so the
//! ruleset builders read like the rules they write.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use nftables::expr::{
    BinaryOperation, CT, Expression, Exthdr, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem,
};
use nftables::schema::{self, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{
    self, CTCount, Counter, Match, NAT, NATFamily, Operator, Reject, RejectType, SetOp, Statement,
    SynProxy,
};
use nftables::types::SynProxyFlag;

use super::ruleset::{ExtStmt, FAMILY, Stmt};
use crate::inventory::Protocol;

/// An address family, for the rules that exist once per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The payload protocol: `ip` or `ip6`; also the suffix of comments.
    pub fn proto(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// Suffix of per-family set names: `bans4`, `bans6`.
    pub fn digit(self) -> &'static str {
        match self {
            Family::V4 => "4",
            Family::V6 => "6",
        }
    }

    pub fn set_type(self) -> SetType {
        match self {
            Family::V4 => SetType::Ipv4Addr,
            Family::V6 => SetType::Ipv6Addr,
        }
    }

    fn nat(self) -> NATFamily {
        match self {
            Family::V4 => NATFamily::IP,
            Family::V6 => NATFamily::IP6,
        }
    }

    /// The addresses of this family in `addrs`, in their order.
    pub fn filter(self, addrs: &[IpAddr]) -> Vec<IpAddr> {
        addrs
            .iter()
            .copied()
            .filter(|a| Family::of(a) == self)
            .collect()
    }
}

pub fn string(s: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(s.into()))
}

pub fn num(n: impl Into<u32>) -> Expression<'static> {
    Expression::Number(n.into())
}

pub fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

pub fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

pub fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

/// `exthdr NAME exists` (left-hand side; compare with `true`).
pub fn exthdr(name: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Exthdr(Exthdr {
        name: Cow::Borrowed(name),
        field: None,
        offset: None,
    }))
}

/// A reference to a named set: `@name`.
pub fn set_ref(name: &str) -> Expression<'static> {
    string(format!("@{name}"))
}

/// Flag names OR-ed together (`fin|syn|rst|ack`); one flag is itself.
pub fn flags(names: &[&'static str]) -> Expression<'static> {
    match names {
        [one] => Expression::String(Cow::Borrowed(one)),
        _ => Expression::List(
            names
                .iter()
                .map(|n| Expression::String(Cow::Borrowed(n)))
                .collect(),
        ),
    }
}

/// `a & b`.
pub fn and(a: Expression<'static>, b: Expression<'static>) -> Expression<'static> {
    Expression::BinaryOperation(Box::new(BinaryOperation::AND(a, b)))
}

/// An anonymous set `{ a, b }`; a single item stays a plain value.
pub fn any_of(mut items: Vec<Expression<'static>>) -> Expression<'static> {
    if items.len() == 1 {
        items.remove(0)
    } else {
        Expression::Named(NamedExpression::Set(
            items.into_iter().map(SetItem::Element).collect(),
        ))
    }
}

pub fn addrs(list: &[IpAddr]) -> Expression<'static> {
    any_of(list.iter().map(|a| string(a.to_string())).collect())
}

pub fn ports(list: &[u16]) -> Expression<'static> {
    any_of(list.iter().map(|p| num(*p)).collect())
}

/// A network: a bare address for a host prefix, else `addr/len`.
pub fn net(n: &ipnet::IpNet) -> Expression<'static> {
    if n.prefix_len() == n.max_prefix_len() {
        string(n.addr().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(string(n.network().to_string())),
            len: u32::from(n.prefix_len()),
        }))
    }
}

fn matches(op: Operator, left: Expression<'static>, right: Expression<'static>) -> Stmt {
    Stmt::Nft(Statement::Match(Match { left, right, op }))
}

/// `left == right` (for a set on the right: membership).
pub fn eq(left: Expression<'static>, right: Expression<'static>) -> Stmt {
    matches(Operator::EQ, left, right)
}

pub fn ne(left: Expression<'static>, right: Expression<'static>) -> Stmt {
    matches(Operator::NEQ, left, right)
}

/// `ct state a,b` / `ct status dnat`: any of the bits.
pub fn ct_is(key: &'static str, values: &[&'static str]) -> Stmt {
    matches(Operator::IN, ct(key), flags(values))
}

/// `ip saddr` / `ip6 daddr`...
pub fn addr(family: Family, field: &'static str) -> Expression<'static> {
    payload(family.proto(), field)
}

/// `tcp dport P` / `udp dport P`.
pub fn dport(protocol: Protocol, list: &[u16]) -> Stmt {
    eq(payload(protocol.as_str(), "dport"), ports(list))
}

/// `tcp flags & (mask) == value`.
pub fn tcp_flags_eq(mask: &[&'static str], value: Expression<'static>) -> Stmt {
    eq(and(payload("tcp", "flags"), flags(mask)), value)
}

/// `tcp flags & (fin|syn|rst|ack) == syn`: the first packet of a TCP handshake.
pub fn tcp_syn() -> Stmt {
    tcp_flags_eq(&["fin", "syn", "rst", "ack"], flags(&["syn"]))
}

pub fn counter() -> Stmt {
    Stmt::Nft(Statement::Counter(Counter::Anonymous(None)))
}

pub fn accept() -> Stmt {
    Stmt::Nft(Statement::Accept(None))
}

pub fn drop() -> Stmt {
    Stmt::Nft(Statement::Drop(None))
}

pub fn notrack() -> Stmt {
    Stmt::Ext(ExtStmt::Notrack(None))
}

pub fn reject_tcp_reset() -> Stmt {
    Stmt::Nft(Statement::Reject(Some(Reject::new(
        Some(RejectType::TCPReset),
        None,
    ))))
}

/// `limit rate [over] N/second burst B packets`.
pub fn limit(rate: u32, burst: u32, over: bool) -> Statement<'static> {
    Statement::Limit(stmt::Limit {
        rate,
        rate_unit: None,
        per: Some(Cow::Borrowed("second")),
        burst: Some(burst),
        burst_unit: None,
        inv: over.then_some(true),
    })
}

/// `ct count over N`.
pub fn ct_count_over(n: u32) -> Statement<'static> {
    Statement::CTCount(CTCount {
        val: num(n),
        inv: Some(true),
    })
}

/// `add|update @set { elem stmt }`.
pub fn set_update(
    op: SetOp,
    set: &str,
    elem: Expression<'static>,
    stmt: Statement<'static>,
) -> Stmt {
    Stmt::Ext(ExtStmt::Set {
        op,
        elem,
        set: format!("@{set}"),
        stmt: vec![stmt],
    })
}

/// `synproxy mss M wscale 7 timestamp sack-perm`: the options must match what the
/// backend would announce; these are Linux's defaults for Ethernet.
pub fn synproxy(mss: u32) -> Stmt {
    Stmt::Nft(Statement::SynProxy(SynProxy {
        mss: Some(mss),
        wscale: Some(7),
        flags: Some(HashSet::from([
            SynProxyFlag::Timestamp,
            SynProxyFlag::SackPerm,
        ])),
    }))
}

/// `dnat ip to ADDR:PORT` / `snat ip6 to ADDR`.
pub fn dnat(to: IpAddr, port: u16) -> Stmt {
    Stmt::Nft(Statement::DNAT(Some(NAT {
        addr: Some(string(to.to_string())),
        family: Some(Family::of(&to).nat()),
        port: Some(num(port)),
        flags: None,
    })))
}

pub fn snat(to: IpAddr) -> Stmt {
    Stmt::Nft(Statement::SNAT(Some(NAT {
        addr: Some(string(to.to_string())),
        family: Some(Family::of(&to).nat()),
        port: None,
        flags: None,
    })))
}

/// A named set of addresses of `family` in `table`.
pub fn address_set(
    table: &str,
    name: &str,
    family: Family,
    timeout_secs: Option<u32>,
    size: Option<u32>,
) -> schema::Set<'static> {
    schema::Set {
        family: FAMILY,
        table: Cow::Owned(table.to_owned()),
        name: Cow::Owned(name.to_owned()),
        handle: None,
        set_type: SetTypeValue::Single(family.set_type()),
        policy: None,
        // `dynamic` (updated from the packet path) is not given: nft 1.0.6's JSON parser
        // does not know the flag and sets it itself when a rule updates the set.
        flags: timeout_secs.map(|_| HashSet::from([SetFlag::Timeout])),
        elem: None,
        timeout: timeout_secs,
        gc_interval: None,
        size,
        comment: None,
    }
}
