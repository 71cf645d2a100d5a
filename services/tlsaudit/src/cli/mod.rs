//! The command line: `tlsaudit headers|tls|scan|postfix-log|config`, one file each, and
//! what the auditing commands share: where the report goes, in which format, and how
//! its grades map to exit codes.
//!
//! Exit codes: 0 when the audits ran, whatever the grades; 1 when an audit could not
//! be done (`headers`, `tls`) or no target of a `scan` could be; 2 when `--fail-below`
//! is given and a grade is worse, or a scanned target could not be audited (its grade
//! is unknown, so not shown to meet the bar); 64 for a bad command line or targets
//! file.

mod config;
mod headers;
mod postfix_log;
mod scan;
mod tls;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use appliance::cli::CommonArgs;
use clap::{Parser, Subcommand};
use tlsaudit::output::{self, Format};
use tlsaudit::report::Audit;

/// Exit code when `--fail-below` is not met.
const EXIT_BELOW: u8 = 2;

/// Grades security headers (Mozilla Observatory rules) and TLS (SSL Labs rating
/// guide), finds the mail clients that fail the TLS handshake in Postfix logs, and
/// writes the hardened nginx or Postfix TLS configuration. Exit codes: 0 audited
/// (whatever the grades), 1 failed, 2 below --fail-below, 64 bad usage.
#[derive(Debug, Parser)]
#[command(name = "tlsaudit", version, propagate_version = true)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch a URL, follow its redirects and grade the security headers of the
    /// response (Observatory score and grade, securityheaders.com letter).
    Headers(headers::HeadersArgs),
    /// Grade a TLS server: protocols, cipher suites, key exchange, certificate (SSL Labs
    /// rating guide); STARTTLS for SMTP.
    Tls(tls::TlsArgs),
    /// Audit every target of a file (URLs: headers; host:port: TLS), several at a time;
    /// results in the file's order.
    Scan(scan::ScanArgs),
    /// Which mail clients fail the TLS handshake, and why, from Postfix logs (plain or
    /// gzip).
    PostfixLog(postfix_log::PostfixLogArgs),
    /// Print the hardened TLS configuration for nginx or Postfix (Mozilla guidelines).
    Config(config::ConfigArgs),
}

pub fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Headers(a) => headers::run(&a),
        Command::Tls(a) => tls::run(&a),
        Command::Scan(a) => scan::run(&a),
        Command::PostfixLog(a) => postfix_log::run(&a),
        Command::Config(a) => config::run(&a),
    }
}

/// A mistake in the command line or the targets file (exit 64), as a config error is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Where an audit report goes and what it must show.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 2 when a grade is worse than GRADE (A+ A A- B+ B B- C+ C C- D+ D D- E F;
    /// T and M count as F), or a target could not be audited. For CI.
    #[arg(long, value_name = "GRADE", value_parser = parse_grade)]
    pub fail_below: Option<Grade>,
}

/// Renders `audits` as asked, writes them, and says how the run went (see the module
/// doc for the exit codes).
pub fn report(audits: &[Audit], args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let colour = args.output.is_none() && output::colour_for_stdout();
    let rendered = output::render_with(audits, args.format, colour)?;
    write_out(&rendered, args.output.as_deref())?;
    Ok(verdict(audits, args.fail_below))
}

/// Writes `text` to `path`, or to stdout (a closed pipe, as with `| head`, is not an
/// error).
pub fn write_out(text: &str, path: Option<&Path>) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(e).context("writing to stdout")
                }
                _ => Ok(()),
            }
        }
    }
}

fn verdict(audits: &[Audit], fail_below: Option<Grade>) -> ExitCode {
    let failed: Vec<&str> = audits
        .iter()
        .filter(|a| matches!(a, Audit::Error { .. }))
        .map(output::target)
        .collect();
    if !audits.is_empty() && failed.len() == audits.len() {
        eprintln!("tlsaudit: no target could be audited");
        return ExitCode::from(appliance::cli::EXIT_FAILURE as u8);
    }
    let Some(bar) = fail_below else {
        return ExitCode::SUCCESS;
    };
    let below: Vec<String> = audits
        .iter()
        .filter_map(|a| match output::grade(a) {
            Some(g) if Grade::rank_of(g) > bar.0 => Some(format!("{} ({g})", output::target(a))),
            Some(_) => None,
            None => Some(format!("{} (not audited)", output::target(a))),
        })
        .collect();
    if below.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "tlsaudit: below {}: {}",
        GRADES[bar.0 as usize],
        below.join(", ")
    );
    ExitCode::from(EXIT_BELOW)
}

/// Grades best to worst, as `--fail-below` takes them.
const GRADES: [&str; 14] = [
    "A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "E", "F",
];

/// A grade threshold: its rank in [`GRADES`] (0 is A+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grade(u8);

impl Grade {
    /// The rank of a grade an audit gave: the SSL Labs T (untrusted certificate) and M
    /// (name mismatch), and anything unknown, rank as F.
    fn rank_of(grade: &str) -> u8 {
        let g = grade.trim();
        GRADES
            .iter()
            .position(|x| x.eq_ignore_ascii_case(g))
            .unwrap_or(GRADES.len() - 1) as u8
    }
}

fn parse_grade(s: &str) -> Result<Grade, String> {
    GRADES
        .iter()
        .position(|x| x.eq_ignore_ascii_case(s.trim()))
        .map(|i| Grade(i as u8))
        .ok_or_else(|| format!("expected one of {}", GRADES.join(" ")))
}

/// `10s`, `500ms`, `2m`, `1.5s`, or plain seconds; more than zero, at most a day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 10s, 500ms or 2m"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (ms, s, m or h)")),
    };
    let secs = n * scale;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{s:?}: expected more than 0 and at most 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlsaudit::report::{HeaderAudit, Rating, TlsAudit};

    fn headers(grade: &str) -> Audit {
        Audit::Headers(HeaderAudit {
            url: format!("https://{grade}.example/"),
            chain: vec![],
            score: 0,
            grade: grade.into(),
            letter: "F".into(),
            findings: vec![],
        })
    }

    fn tls(grade: &str) -> Audit {
        Audit::Tls(TlsAudit {
            target: "example.org:443".into(),
            starttls: None,
            protocols: vec![],
            groups: vec![],
            certificate: None,
            rating: Rating {
                protocol_score: 0,
                key_exchange_score: 0,
                cipher_score: 0,
                score: 0,
                score_grade: grade.into(),
                grade: grade.into(),
            },
            findings: vec![],
            seconds: 0.0,
        })
    }

    fn error() -> Audit {
        Audit::Error {
            target: "down:443".into(),
            error: "refused".into(),
        }
    }

    fn grade(s: &str) -> Option<Grade> {
        Some(parse_grade(s).unwrap())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "0s", "s", "10x", "-1s", "1.2.3s", "25h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grades_rank_best_to_worst() {
        assert_eq!(parse_grade("a+"), Ok(Grade(0)));
        assert_eq!(parse_grade("B"), Ok(Grade(4)));
        assert!(parse_grade("T").is_err() && parse_grade("G").is_err());
        assert_eq!(Grade::rank_of("T"), Grade::rank_of("F"));
        assert_eq!(Grade::rank_of("M"), Grade::rank_of("F"));
        assert!(Grade::rank_of("A-") > Grade::rank_of("A"));
    }

    #[test]
    fn exit_codes() {
        let ok = ExitCode::SUCCESS;
        let code = |audits: &[Audit], bar: Option<Grade>| verdict(audits, bar);
        assert_eq!(code(&[headers("F"), tls("T")], None), ok);
        assert_eq!(code(&[headers("F"), error()], None), ok);
        assert_eq!(code(&[error(), error()], None), ExitCode::from(1));
        assert_eq!(code(&[error()], grade("F")), ExitCode::from(1));
        assert_eq!(code(&[headers("A"), tls("A+")], grade("A")), ok);
        assert_eq!(
            code(&[headers("A"), tls("A-")], grade("A")),
            ExitCode::from(2)
        );
        assert_eq!(code(&[tls("T")], grade("B")), ExitCode::from(2));
        assert_eq!(code(&[tls("T")], grade("F")), ok);
        assert_eq!(code(&[tls("A"), error()], grade("F")), ExitCode::from(2));
    }
}
