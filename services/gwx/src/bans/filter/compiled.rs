//! A filter's regexes compiled, with the fail2ban group names resolved to numbers once,
//! and the group lookups the matcher needs (fail2ban's `groupdict` semantics without
//! building a dictionary per line).

use std::path::PathBuf;
use std::sync::Arc;

use super::detector::Detector;
use super::engine::{Compiled, Slots};

/// A compiled failregex or prefregex with its special groups.
#[derive(Debug)]
pub(crate) struct Rx {
    pub re: Compiled,
    /// Python group numbers of the names the matcher reads, by [`Name`].
    groups: [Option<usize>; Name::COUNT],
    /// `alt_<name>...` groups standing in for a name, sorted by group name.
    alts: [Vec<usize>; Name::COUNT],
}

/// Group names the matcher reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    Ip4,
    Ip6,
    Dns,
    Fid,
    User,
    Mlfid,
    Nofail,
    Mlfforget,
    Mlfgained,
    Content,
}

impl Name {
    pub const COUNT: usize = 10;
    const ALL: [Name; Name::COUNT] = [
        Name::Ip4,
        Name::Ip6,
        Name::Dns,
        Name::Fid,
        Name::User,
        Name::Mlfid,
        Name::Nofail,
        Name::Mlfforget,
        Name::Mlfgained,
        Name::Content,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::Ip4 => "ip4",
            Name::Ip6 => "ip6",
            Name::Dns => "dns",
            Name::Fid => "fid",
            Name::User => "user",
            Name::Mlfid => "mlfid",
            Name::Nofail => "nofail",
            Name::Mlfforget => "mlfforget",
            Name::Mlfgained => "mlfgained",
            Name::Content => "content",
        }
    }
}

/// A group's value as fail2ban's merged dictionary would hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The regex has no such group: a value from elsewhere (the prefregex) stands.
    Absent,
    /// The regex has the group; `None` if it did not take part. Span in the haystack.
    Value(Option<(usize, usize)>),
}

impl Rx {
    pub fn new(re: Compiled) -> Rx {
        let parsed = re.parsed();
        let mut groups = [None; Name::COUNT];
        let mut alts: [Vec<usize>; Name::COUNT] = Default::default();
        for (i, n) in Name::ALL.iter().enumerate() {
            groups[i] = parsed.group_index(n.as_str());
        }
        let mut named: Vec<(&str, usize)> = parsed
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_deref().map(|g| (g, i + 1)))
            .collect();
        named.sort();
        for (group, index) in named {
            let Some(target) = alt_target(group) else {
                continue;
            };
            if let Some(i) = Name::ALL.iter().position(|n| n.as_str() == target) {
                alts[i].push(index);
            }
        }
        Rx { re, groups, alts }
    }

    pub fn has(&self, name: Name) -> bool {
        self.groups[name as usize].is_some() || !self.alts[name as usize].is_empty()
    }

    /// The value of `name` after a match recorded in `slots`.
    pub fn lookup(&self, name: Name, slots: &Slots) -> Lookup {
        let own = self.groups[name as usize].map(|g| slots.get(g));
        let truthy = |s: Option<(usize, usize)>| s.is_some_and(|(a, b)| b > a);
        if !own.is_some_and(truthy) {
            for &g in &self.alts[name as usize] {
                if truthy(slots.get(g)) {
                    return Lookup::Value(slots.get(g));
                }
            }
        }
        match own {
            Some(v) => Lookup::Value(v),
            None => Lookup::Absent,
        }
    }
}

/// `alt_user`, `alt_user_2` -> `user`; `alt_id` -> `fid`.
fn alt_target(group: &str) -> Option<&str> {
    let rest = group.strip_prefix("alt_")?;
    let base = match rest.rsplit_once('_') {
        Some((b, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => rest,
    };
    Some(match base {
        "id" => "fid",
        "port" => "fport",
        b => b,
    })
}

/// Everything a [`super::Filter`] is made of, shared by its matchers.
#[derive(Debug)]
pub(crate) struct Inner {
    pub path: PathBuf,
    pub prefregex: Option<Rx>,
    pub failregex: Vec<Rx>,
    pub ignoreregex: Vec<Compiled>,
    pub detector: Arc<Detector>,
    pub maxlines: usize,
    pub journalmatch: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_names() {
        assert_eq!(alt_target("alt_user"), Some("user"));
        assert_eq!(alt_target("alt_user_12"), Some("user"));
        assert_eq!(alt_target("alt_id"), Some("fid"));
        assert_eq!(alt_target("user"), None);
    }
}
