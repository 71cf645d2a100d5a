//! fail2ban filters (`filter.d/*.conf`), loaded unchanged and matched fast.
//!
//! Operators keep the filters they know: [`Filter::load`] reads a filter file the way
//! fail2ban does (its `.local`, `[INCLUDES]`, `[Init]`, `%(name)s` interpolation, `<tag>`
//! substitution, jail options such as sshd's `mode=aggressive`), translates its Python
//! regexes for Rust's `regex` crate (fancy-regex only where a pattern needs
//! backtracking), and [`Matcher::match_line`] judges one log line at a time.
//!
//! Layout, in the order a filter is built:
//!
//! * `ini.rs`: one file as Python's `configparser` reads it.
//! * `config.rs`: includes, `.local` files, merging, `KNOWN/` sections, interpolation.
//! * `definition.rs`: `[Definition]`/`[Init]`/jail options and tag substitution, giving
//!   the final option strings.
//! * `tags.rs`: fail2ban's regex tags (`<HOST>`, `<F-USER>`...).
//! * `pyregex.rs`, `translate.rs`: Python regex syntax parsed and written for Rust.
//! * `engine.rs`: a pattern compiled for the fastest engine that runs it exactly.
//! * `date.rs`, `strptime.rs`, `detector.rs`: date patterns, fields, and finding the
//!   date in a line.
//! * `compiled.rs`, `matcher.rs`, `mlcache.rs`: the compiled filter, the per-line
//!   logic with the log-injection guard, and the multi-line id cache.
//!
//! # Differences from fail2ban, on purpose
//!
//! * A date without a zone is UTC (fail2ban uses the host's local time).
//! * A missing included file is an error naming the includer (fail2ban skips it
//!   silently), except `.local` files, which are optional by convention.
//! * The first matching failregex decides, as in fail2ban's daemon (its test tool
//!   checks all of them).
//! * Log-injection guard: a line that could name two addresses is
//!   [`Outcome::Ambiguous`], not a failure (see `matcher.rs`). fail2ban's own sample
//!   logs hold four such lines (sshd's `Bad protocol version identification 'x' from
//!   192.0.2.1' from <real>` and two alike), where its regexes happen to pick the right
//!   address; we withhold them. [`Matcher::set_injection_guard`] turns the guard off.
//! * Refused, with an error naming file, option, line and feature: `<SKIPLINES>`
//!   (mongodb-auth, slapd), `<CIDR>`/`<SUBNET>` (subnet failures), `<F-TUPLE_...>`
//!   ids, Python's `(?L)` flag and `\N{...}` escapes, lookbehinds of variable width.
//!
//! # Speed
//!
//! A line costs a date search and, for most lines, one substring search per failregex
//! (a literal every match must contain); the `regex` crate's DFA runs only where that
//! literal is present, and capture groups are extracted only from matching lines, over
//! the shortest part of the pattern that holds them (`engine.rs`). fancy-regex runs
//! only for patterns with lookarounds or conditionals, and only on lines their relaxed
//! form already matched. Matchers reuse their buffers: a non-matching line allocates
//! nothing.
//!
//! Rejected designs: fancy-regex for every pattern (a backtracking engine on every
//! line, 10 to 100 times slower); one capture search over an alternation of all date
//! templates (the capture engines are slow over large patterns; a DFA search for the
//! earliest start plus an anchored check per template is several times faster);
//! running fail2ban's Python (GPL, and 100 times slower).

mod compiled;
mod config;
mod date;
mod definition;
mod detector;
mod engine;
mod error;
mod ini;
mod matcher;
mod mlcache;
mod pyregex;
mod strptime;
mod tags;
mod translate;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use compiled::{Inner, Name, Rx};
use definition::Definition;
use engine::Compiled;
use error::PatternError;
use translate::Context;

pub use error::FilterError;
pub use matcher::Matcher;

/// A compiled filter. Cheap to clone and shareable between threads; each log reader
/// gets its own [`Matcher`].
#[derive(Debug, Clone)]
pub struct Filter {
    inner: Arc<Inner>,
}

/// What one line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No failregex matched.
    NoMatch,
    /// A failregex and an ignoreregex matched.
    Ignored,
    /// A failregex matched but the line is not a failure: an `<F-NOFAIL>` line (it only
    /// feeds the multi-line cache), a success that clears a connection, or a failure
    /// whose host is not known yet.
    NoFailure,
    Failure(Failure),
    /// Log-injection guard: the line could name two different hosts (for instance a
    /// user name `from 10.0.0.1`); nobody should be banned for it.
    Ambiguous {
        hosts: Vec<String>,
    },
}

/// A failure found in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub host: Host,
    /// The line's date (UTC unless the line names a zone), else `now`.
    pub time: DateTime<Utc>,
    /// Index of the failregex that matched.
    pub failregex: usize,
    /// `<F-USER>` (or `<F-ALT_USER>`) if captured.
    pub user: Option<String>,
}

/// The source a failure is blamed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    Ip(IpAddr),
    /// Not an IP address: `<HOST>` matched a DNS name (or an address written in a form
    /// we do not accept, such as `192.030.0.6`). Names are never resolved; callers skip
    /// them.
    Name(String),
}

impl Host {
    /// An address if `text` is one (brackets allowed), else a name.
    pub fn parse(text: &str) -> Host {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        match bare.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Host::Ip(IpAddr::V4(v4)),
                None => Host::Ip(IpAddr::V6(v6)),
            },
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(text.to_string()),
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl Filter {
    /// Loads a `filter.d` file: `X.conf`, then `X.local` if present, with their
    /// includes. `options` are the jail's overrides (`filter = sshd[mode=aggressive]`
    /// gives `[("mode", "aggressive")]`); they override `[Init]` and `[Definition]`.
    pub fn load(path: &Path, options: &[(String, String)]) -> Result<Filter, FilterError> {
        let config = config::Config::load(path)?;
        let def = definition::resolve(&config, path, options)?;
        Filter::compile(&def)
    }

    /// A filter made of a single failregex (as `fail2ban-regex LOG REGEX` takes it),
    /// tags expanded, with the default date detection.
    pub fn from_regex(failregex: &str) -> Result<Filter, FilterError> {
        let origin = error::Origin {
            path: PathBuf::from("<command line>"),
            line: 0,
        };
        let def = Definition {
            path: origin.path.clone(),
            options: [(
                "failregex",
                definition::Opt {
                    text: failregex.to_string(),
                    origin,
                },
            )]
            .into(),
        };
        Filter::compile(&def)
    }

    fn compile(def: &Definition) -> Result<Filter, FilterError> {
        let text = |name: &str| def.get(name).map(|o| o.text.trim().to_string());
        let option_error = |option: &str, message: String| FilterError::Option {
            path: def.origin_path(option).to_path_buf(),
            option: option.to_string(),
            message,
        };
        let use_dns = match text("usedns").map(|v| v.to_lowercase()).as_deref() {
            None | Some("" | "yes" | "warn" | "raw") => true,
            Some("no") => false,
            Some(other) => {
                return Err(option_error(
                    "usedns",
                    format!("`{other}` is not one of yes, warn, no, raw"),
                ));
            }
        };
        let maxlines = match text("maxlines").filter(|v| !v.is_empty()) {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(option_error(
                        "maxlines",
                        format!("`{v}` is not a whole number above zero"),
                    ));
                }
            },
        };
        let multi = maxlines > 1;
        let ctx = Context {
            multi_line_buffer: multi,
            date_bounds: false,
            named_only: true,
        };
        let compile_one = |option: &str, line: usize, regex: &str, multiline: bool| {
            let at = |e: PatternError| e.at(def.origin_path(option), option, line);
            let expanded = tags::expand(regex, use_dns).map_err(at)?;
            Compiled::new(&expanded, multiline, ctx).map_err(at)
        };
        let lines = |name: &str| -> Vec<String> {
            def.get(name)
                .map(|o| {
                    o.text
                        .split('\n')
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };

        let prefregex = match text("prefregex").filter(|v| !v.is_empty()) {
            Some(p) => Some(Rx::new(compile_one("prefregex", 1, &p, false)?)),
            None => None,
        };
        let mut failregex = Vec::new();
        for (i, regex) in lines("failregex").iter().enumerate() {
            let rx = Rx::new(compile_one("failregex", i + 1, regex, multi)?);
            let has_id = [Name::Fid, Name::Ip4, Name::Ip6, Name::Dns, Name::Mlfid]
                .iter()
                .any(|n| rx.has(*n) || prefregex.as_ref().is_some_and(|p| p.has(*n)));
            if !has_id {
                return Err(PatternError::Invalid(
                    "regex has no <HOST> (nor another failure id such as <F-ID>)".into(),
                )
                .at(def.origin_path("failregex"), "failregex", i + 1));
            }
            failregex.push(rx);
        }
        if failregex.is_empty() {
            return Err(option_error(
                "failregex",
                "missing or empty: the filter would never match".into(),
            ));
        }
        let mut ignoreregex = Vec::new();
        for (i, regex) in lines("ignoreregex").iter().enumerate() {
            ignoreregex.push(compile_one("ignoreregex", i + 1, regex, false)?);
        }
        let datepattern = text("datepattern").filter(|v| !v.is_empty());
        let detector = detector::Detector::shared(datepattern.as_deref())
            .map_err(|(line, e)| e.at(def.origin_path("datepattern"), "datepattern", line))?;
        let journalmatch = text("journalmatch").filter(|v| !v.is_empty());
        Ok(Filter {
            inner: Arc::new(Inner {
                path: def.path.clone(),
                prefregex,
                failregex,
                ignoreregex,
                detector,
                maxlines,
                journalmatch,
            }),
        })
    }

    /// The filter's `journalmatch` (systemd journal field matches, one set per line,
    /// sets joined by ` + ` within a line), if any.
    pub fn journalmatch(&self) -> Option<&str> {
        self.inner.journalmatch.as_deref()
    }

    pub fn failregex_count(&self) -> usize {
        self.inner.failregex.len()
    }

    /// A failregex as compiled (after tag expansion), for diagnostics.
    pub fn failregex(&self, index: usize) -> Option<&str> {
        self.inner.failregex.get(index).map(|r| r.re.source())
    }

    pub fn ignoreregex_count(&self) -> usize {
        self.inner.ignoreregex.len()
    }

    /// fail2ban's `maxlines`: how many lines a failregex may span.
    pub fn maxlines(&self) -> usize {
        self.inner.maxlines
    }

    /// The file the filter was loaded from (`<command line>` for [`Filter::from_regex`]).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Number of date templates tried on each line.
    pub fn date_template_count(&self) -> usize {
        self.inner.detector.len()
    }

    /// How many regexes need the backtracking engine on lines that pass the fast
    /// prefilter (for diagnostics: these are the slower ones).
    pub fn backtracking_regex_count(&self) -> usize {
        self.inner
            .failregex
            .iter()
            .filter(|r| r.re.is_backtracking())
            .count()
            + self
                .inner
                .prefregex
                .iter()
                .filter(|r| r.re.is_backtracking())
                .count()
    }

    /// A fresh matcher (per-reader state).
    pub fn matcher(&self) -> Matcher {
        Matcher::new(Arc::clone(&self.inner))
    }
}

#[cfg(test)]
mod tests;
