//! `gwx bans regex LOG FILTER`: fail2ban-regex for gwx. FILTER is a filter file, a
//! filter name in /etc/fail2ban/filter.d (`sshd`, `sshd[mode=aggressive]`), or a
//! single failregex. Prints each matched line with its host and a summary; with
//! `--json`, one JSON object per matched line on stdout (the summary goes to stderr).
//!
//! The log is read in large blocks and each line judged in place: this is the
//! benchmark path of bench/gwx-bans, so nothing is allocated per line unless it
//! matches.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use gwx::bans::filter::{Filter, Host, Outcome};

/// Where filter names are looked up when FILTER is neither a file nor a regex.
const FILTER_DIR: &str = "/etc/fail2ban/filter.d";

#[derive(Debug, clap::Args)]
pub struct RegexArgs {
    /// The log file to read ("-" for standard input).
    pub log: PathBuf,
    /// A filter file, a filter name (optionally with options: `sshd[mode=aggressive]`),
    /// or a failregex such as '^<HOST> .* "POST /wp-login.php'.
    pub filter: String,
    /// A filter option, as in a jail's `filter = name[key=value]` (repeatable).
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// One JSON object per matched line on stdout: line, host, time, failregex, user.
    #[arg(long)]
    pub json: bool,
    /// Print only the summary.
    #[arg(long, short, conflicts_with = "json")]
    pub quiet: bool,
    /// Also list the lines that matched an ignoreregex or were ambiguous.
    #[arg(long)]
    pub print_skipped: bool,
    /// Take the host the regex found even when the line could name another address
    /// (as fail2ban does); by default such a line is ambiguous and counts for nobody.
    #[arg(long)]
    pub no_injection_guard: bool,
}

pub fn run(args: &RegexArgs) -> anyhow::Result<ExitCode> {
    let (filter, described) = load_filter(&args.filter, &args.options)?;
    let input: Box<dyn BufRead> = if args.log == Path::new("-") {
        Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let f = File::open(&args.log)
            .with_context(|| format!("opening the log {}", args.log.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let summary = scan(&filter, input, &mut out, args)?;
    out.flush()?;
    let mut report = String::new();
    report.push_str(&format!("filter   {described}\n"));
    report.push_str(&format!("log      {}\n", args.log.display()));
    report.push_str(&summary.render(filter.failregex_count()));
    if args.json {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// FILTER as a file, a name in [`FILTER_DIR`], or a regex; and how to describe it.
fn load_filter(spec: &str, options: &[String]) -> anyhow::Result<(Filter, String)> {
    let mut opts = Vec::new();
    for o in options {
        let (k, v) = o.split_once('=').ok_or_else(|| {
            super::super::UsageError(format!("--option {o:?}: expected KEY=VALUE"))
        })?;
        opts.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let (name, inline) = split_options(spec);
    opts.extend(inline);
    let path = Path::new(name);
    let candidates = [
        path.to_path_buf(),
        Path::new(FILTER_DIR).join(format!("{name}.conf")),
    ];
    let is_name = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if is_name {
        if let Some(file) = candidates.iter().find(|p| p.is_file()) {
            let f = Filter::load(file, &opts)?;
            return Ok((f, format!("file {}", file.display())));
        }
    }
    anyhow::ensure!(
        opts.is_empty(),
        super::super::UsageError(format!(
            "{spec:?} is not a filter file, so it takes no options"
        ))
    );
    let f = Filter::from_regex(spec)?;
    Ok((f, format!("regex {spec}")))
}

/// `name[k=v, k2=v2]` into the name and its options; anything else unchanged.
fn split_options(spec: &str) -> (&str, Vec<(String, String)>) {
    let Some(open) = spec.find('[') else {
        return (spec, Vec::new());
    };
    let (name, rest) = spec.split_at(open);
    let Some(body) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return (spec, Vec::new());
    };
    let mut opts = Vec::new();
    for part in body.split(',') {
        match part.split_once('=') {
            Some((k, v)) => opts.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned())),
            // Not an option list after all (a regex with a character class).
            None => return (spec, Vec::new()),
        }
    }
    (name, opts)
}

#[derive(Debug, Default)]
struct Summary {
    lines: u64,
    matched: u64,
    ignored: u64,
    ambiguous: u64,
    names: u64,
    per_regex: Vec<u64>,
    hosts: HashMap<String, u64>,
    seconds: f64,
}

fn scan(
    filter: &Filter,
    mut input: Box<dyn BufRead>,
    out: &mut impl Write,
    args: &RegexArgs,
) -> anyhow::Result<Summary> {
    let mut matcher = filter.matcher();
    matcher.set_injection_guard(!args.no_injection_guard);
    let mut s = Summary {
        per_regex: vec![0; filter.failregex_count()],
        ..Summary::default()
    };
    let started = Instant::now();
    let now = Utc::now();
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if input
            .read_until(b'\n', &mut buf)
            .context("reading the log")?
            == 0
        {
            break;
        }
        s.lines += 1;
        let mut bytes = &buf[..];
        while let [rest @ .., b'\n' | b'\r'] = bytes {
            bytes = rest;
        }
        let lossy;
        let line = match std::str::from_utf8(bytes) {
            Ok(l) => l,
            Err(_) => {
                lossy = String::from_utf8_lossy(bytes);
                &lossy
            }
        };
        match matcher.match_line(line, now) {
            Outcome::NoMatch | Outcome::NoFailure => {}
            Outcome::Ignored => {
                s.ignored += 1;
                if args.print_skipped && !args.quiet {
                    writeln!(out, "ignored  line {}: {line}", s.lines)?;
                }
            }
            Outcome::Ambiguous { hosts } => {
                s.ambiguous += 1;
                if args.print_skipped && !args.quiet {
                    writeln!(
                        out,
                        "ambiguous line {} (hosts {}): {line}",
                        s.lines,
                        hosts.join(", ")
                    )?;
                }
            }
            Outcome::Failure(f) => {
                s.matched += 1;
                if let Some(n) = s.per_regex.get_mut(f.failregex) {
                    *n += 1;
                }
                let host = match &f.host {
                    Host::Ip(ip) => ip.to_string(),
                    Host::Name(n) => {
                        s.names += 1;
                        n.clone()
                    }
                };
                if args.json {
                    let v = serde_json::json!({
                        "line": s.lines,
                        "host": host,
                        "time": f.time.to_rfc3339(),
                        "failregex": f.failregex,
                        "user": f.user,
                    });
                    writeln!(out, "{v}")?;
                } else if !args.quiet {
                    writeln!(out, "line {}: {host}  {line}", s.lines)?;
                }
                *s.hosts.entry(host).or_default() += 1;
            }
        }
    }
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}

impl Summary {
    fn render(&self, regexes: usize) -> String {
        let missed = self.lines - self.matched - self.ignored - self.ambiguous;
        let mut out = format!(
            "lines    {} lines, {} matched, {} ignored, {} ambiguous (not counted), {} missed\n",
            self.lines, self.matched, self.ignored, self.ambiguous, missed
        );
        if regexes > 1 {
            for (i, n) in self.per_regex.iter().enumerate().filter(|(_, n)| **n > 0) {
                out.push_str(&format!("         failregex {}: {n} matched\n", i + 1));
            }
        }
        let mut hosts: Vec<(&String, &u64)> = self.hosts.iter().collect();
        hosts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        out.push_str(&format!("hosts    {} distinct", hosts.len()));
        if self.names > 0 {
            out.push_str(&format!(
                " ({} matches named a host by DNS name: not banned)",
                self.names
            ));
        }
        out.push('\n');
        for (h, n) in hosts.iter().take(10) {
            out.push_str(&format!("         {n:>8}  {h}\n"));
        }
        let rate = if self.seconds > 0.0 {
            self.lines as f64 / self.seconds
        } else {
            0.0
        };
        out.push_str(&format!(
            "time     {:.3} s, {rate:.0} lines/s\n",
            self.seconds
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_names_take_inline_options() {
        let (n, o) = split_options("sshd[mode=aggressive]");
        assert_eq!(
            (n, o),
            ("sshd", vec![("mode".to_owned(), "aggressive".to_owned())])
        );
        let re = r"^<HOST> [a-z]+ x";
        assert_eq!(split_options(re), (re, vec![]));
    }
}
