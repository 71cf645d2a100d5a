//! What both auditors are compared on: per protocol version, whether the server accepts
//! it, and the set of cipher suites it accepts with it, by IANA code point (testssl.sh
//! names suites the OpenSSL way, tlsaudit the IANA way; the code points are the same).
//! Everything else either tool reports (ratings, certificate, vulnerabilities, server
//! order) is not compared.

use std::collections::{BTreeMap, BTreeSet};

/// A protocol version both tools test. SSLv2 is left out: tlsaudit does not model it,
/// and OpenSSL 3, which serves every target here, cannot speak it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Ssl3,
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl Proto {
    pub const ALL: [Proto; 5] = [
        Proto::Ssl3,
        Proto::Tls10,
        Proto::Tls11,
        Proto::Tls12,
        Proto::Tls13,
    ];

    /// The name tlsaudit's JSON uses, and the report prints.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ssl3 => "SSLv3",
            Proto::Tls10 => "TLSv1.0",
            Proto::Tls11 => "TLSv1.1",
            Proto::Tls12 => "TLSv1.2",
            Proto::Tls13 => "TLSv1.3",
        }
    }

    pub fn from_name(name: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One tool's answer for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Whether each protocol is accepted; absent when the tool did not say.
    pub accepted: BTreeMap<Proto, bool>,
    /// What the tool said about a protocol when it was neither "accepted" nor "not".
    pub unclear: BTreeMap<Proto, String>,
    /// Accepted suites per protocol, by code point.
    pub suites: BTreeMap<Proto, BTreeSet<u16>>,
    /// A name for every suite seen (IANA where the tool gives it).
    pub names: BTreeMap<u16, String>,
}

impl Findings {
    pub fn suites_of(&self, p: Proto) -> BTreeSet<u16> {
        self.suites.get(&p).cloned().unwrap_or_default()
    }

    /// `TLSv1.2 (2 suites), TLSv1.3 (3 suites)`: the accepted protocols, for the report.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = Proto::ALL
            .into_iter()
            .filter(|p| self.accepted.get(p) == Some(&true))
            .map(|p| {
                let n = self.suites_of(p).len();
                format!("{} ({n} suite{})", p.name(), if n == 1 { "" } else { "s" })
            })
            .collect();
        if parts.is_empty() {
            "no protocol accepted".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn yes_no(v: Option<&bool>) -> &'static str {
    match v {
        Some(true) => "accepted",
        Some(false) => "not accepted",
        None => "not reported",
    }
}

/// Every point where `b` says something else than `a`, one line each, e.g.
/// `TLSv1.1: testssl.sh accepted, tlsaudit not accepted` or
/// `TLSv1.2 suites only testssl.sh found (2): 0x00a6 TLS_DH_anon_..., ...`.
/// A protocol neither reports is no disagreement, nor is one reported as not accepted
/// by one tool and not at all by the other.
pub fn disagreements(a_name: &str, a: &Findings, b_name: &str, b: &Findings) -> Vec<String> {
    let mut names = a.names.clone();
    for (id, name) in &b.names {
        names.entry(*id).or_insert_with(|| name.clone());
    }
    let listed = |set: &BTreeSet<u16>| -> String {
        set.iter()
            .map(|id| match names.get(id) {
                Some(n) => format!("0x{id:04x} {n}"),
                None => format!("0x{id:04x}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    for p in Proto::ALL {
        let (x, y) = (a.accepted.get(&p), b.accepted.get(&p));
        let differ = match (x, y) {
            (Some(x), Some(y)) => x != y,
            (Some(v), None) | (None, Some(v)) => *v,
            (None, None) => false,
        };
        let said = |tool: &Findings, v| match tool.unclear.get(&p) {
            Some(text) => format!("{text:?}"),
            None => yes_no(v).to_owned(),
        };
        if differ || a.unclear.contains_key(&p) || b.unclear.contains_key(&p) {
            lines.push(format!(
                "{}: {a_name} {}, {b_name} {}",
                p.name(),
                said(a, x),
                said(b, y)
            ));
        }
        let (sa, sb) = (a.suites_of(p), b.suites_of(p));
        let only_a: BTreeSet<u16> = sa.difference(&sb).copied().collect();
        let only_b: BTreeSet<u16> = sb.difference(&sa).copied().collect();
        for (who, only) in [(a_name, only_a), (b_name, only_b)] {
            if !only.is_empty() {
                lines.push(format!(
                    "{} suites only {who} found ({}): {}",
                    p.name(),
                    only.len(),
                    listed(&only)
                ));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(accepted: &[(Proto, bool)], suites: &[(Proto, &[u16])]) -> Findings {
        let mut f = Findings::default();
        f.accepted.extend(accepted.iter().copied());
        for (p, ids) in suites {
            f.suites.insert(*p, ids.iter().copied().collect());
        }
        f.names
            .insert(0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into());
        f
    }

    #[test]
    fn equal_findings_agree() {
        let a = findings(
            &[(Proto::Tls12, true), (Proto::Tls11, false)],
            &[(Proto::Tls12, &[0xc02f, 0xc030])],
        );
        assert!(disagreements("a", &a, "b", &a.clone()).is_empty());
        assert_eq!(a.summary(), "TLSv1.2 (2 suites)");
    }

    #[test]
    fn not_reported_counts_only_against_accepted() {
        let a = findings(&[(Proto::Ssl3, false), (Proto::Tls12, true)], &[]);
        let b = findings(&[(Proto::Tls12, true)], &[]);
        assert!(disagreements("a", &a, "b", &b).is_empty());
        let c = findings(&[], &[]);
        assert_eq!(
            disagreements("a", &a, "b", &c),
            ["TLSv1.2: a accepted, b not reported"]
        );
    }

    #[test]
    fn lists_protocols_and_suites_on_each_side() {
        let a = findings(
            &[(Proto::Tls11, true), (Proto::Tls12, true)],
            &[(Proto::Tls12, &[0xc02f, 0x00a6])],
        );
        let b = findings(
            &[(Proto::Tls11, false), (Proto::Tls12, true)],
            &[(Proto::Tls12, &[0xc02f, 0x1301])],
        );
        assert_eq!(
            disagreements("testssl.sh", &a, "tlsaudit", &b),
            [
                "TLSv1.1: testssl.sh accepted, tlsaudit not accepted",
                "TLSv1.2 suites only testssl.sh found (1): 0x00a6",
                "TLSv1.2 suites only tlsaudit found (1): 0x1301",
            ]
        );
    }

    #[test]
    fn unclear_answers_are_shown() {
        let mut a = findings(&[], &[]);
        a.unclear
            .insert(Proto::Tls13, "offered with draft 23".into());
        let b = findings(&[(Proto::Tls13, true)], &[]);
        assert_eq!(
            disagreements("a", &a, "b", &b),
            ["TLSv1.3: a \"offered with draft 23\", b accepted"]
        );
    }
}
