//! `tlsaudit scan FILE`: audits every target of a file, `--jobs` at a time.
//!
//! The file has one target a line: `https://...` or `http://...` (a header audit),
//! `host:port` (TLS), `smtp://host[:port]` or `host:port starttls=smtp` (TLS after
//! STARTTLS), optionally followed by `sni=NAME`. `#` starts a comment (at the start
//! of a line or after a space). Every bad line is reported, by number, before anything
//! runs (exit 64).
//!
//! Workers take targets from a shared queue. Each audit runs in a thread of its own
//! that the worker waits for at most `--deadline`: the audits bound every connection
//! by `--timeout`, but a TLS audit makes many connections, and a server that trickles
//! bytes can hold one for long. A target past its deadline is reported as an error
//! and its thread left behind, detached (it ends with the process).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tlsaudit::report::Audit;

/// A target's deadline, unless `--deadline` says otherwise: this many `--timeout`s.
const DEADLINE_FACTOR: u32 = 6;

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Targets, one a line: https://URL, http://URL, host:port, smtp://host[:port],
    /// host:port starttls=smtp; optional sni=NAME; `#` comments.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Targets audited at the same time.
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Each connection (connect, STARTTLS, handshake, response) must finish within this.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub timeout: Duration,
    /// A target still running after this is reported as an error ("timed out")
    /// [default: 6 × --timeout].
    #[arg(long, value_parser = super::parse_duration)]
    pub deadline: Option<Duration>,
    /// Extra trust anchors (PEM), e.g. an internal CA; the system roots are always used.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub report: super::ReportArgs,
}

/// One line of the targets file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Headers {
        url: String,
    },
    Tls {
        /// `host:port`.
        target: String,
        starttls: Option<String>,
        sni: Option<String>,
    },
}

impl Target {
    /// How reports name the target: the URL, `host:port`, or `smtp://host:port`.
    pub fn name(&self) -> String {
        match self {
            Target::Headers { url } => url.clone(),
            Target::Tls {
                target,
                starttls: Some(s),
                ..
            } => format!("{s}://{target}"),
            Target::Tls { target, .. } => target.clone(),
        }
    }
}

/// What every audit of a scan shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub timeout: Duration,
    pub deadline: Duration,
    pub ca_file: Option<PathBuf>,
}

pub fn run(a: &ScanArgs) -> anyhow::Result<ExitCode> {
    let targets = read_targets(&a.file)?;
    let settings = Settings {
        timeout: a.timeout,
        deadline: a.deadline.unwrap_or(a.timeout * DEADLINE_FACTOR),
        ca_file: a.ca_file.clone(),
    };
    let progress = progress_bar(targets.len());
    let audits = scan(&targets, &settings, usize::from(a.jobs), &progress);
    progress.finish_and_clear();
    super::report(&audits, &a.report)
}

fn progress_bar(n: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(n as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    bar
}

/// Audits `targets` with `jobs` workers; the results in the order of `targets`.
pub fn scan(
    targets: &[Target],
    settings: &Settings,
    jobs: usize,
    progress: &ProgressBar,
) -> Vec<Audit> {
    let queue: Mutex<VecDeque<(usize, &Target)>> = Mutex::new(targets.iter().enumerate().collect());
    let results: Mutex<Vec<Option<Audit>>> = Mutex::new(vec![None; targets.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, targets.len().max(1)) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some((i, target)) = next else { break };
                    let audit = audit_within_deadline(target, settings);
                    progress.set_message(target.name());
                    progress.inc(1);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(audit);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(targets)
        .map(|(a, t)| {
            a.unwrap_or_else(|| Audit::Error {
                target: t.name(),
                error: "not audited".into(),
            })
        })
        .collect()
}

/// Runs the audit of `target` in a thread of its own and waits for it until the
/// deadline; past it, the thread is left to finish on its own (detached).
fn audit_within_deadline(target: &Target, settings: &Settings) -> Audit {
    let (tx, rx) = mpsc::channel();
    let (t, s) = (target.clone(), settings.clone());
    let spawned = std::thread::Builder::new()
        .name("tlsaudit-target".into())
        .spawn(move || {
            let _ = tx.send(audit(&t, &s));
        });
    let error = |error: String| Audit::Error {
        target: target.name(),
        error,
    };
    if let Err(e) = spawned {
        return error(format!("starting the audit: {e}"));
    }
    match rx.recv_timeout(settings.deadline) {
        Ok(audit) => audit,
        Err(mpsc::RecvTimeoutError::Timeout) => error(format!(
            "timed out: no result after {:?}",
            settings.deadline
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => error("the audit crashed".into()),
    }
}

fn audit(target: &Target, settings: &Settings) -> Audit {
    let result = match target {
        Target::Headers { url } => {
            let options = tlsaudit::headers::Options {
                timeout: settings.timeout,
                max_redirects: 10,
                ca_file: settings.ca_file.clone(),
            };
            tlsaudit::headers::audit(url, &options).map(Audit::Headers)
        }
        Target::Tls {
            target,
            starttls,
            sni,
        } => {
            let options = tlsaudit::tls::Options {
                target: target.clone(),
                sni: sni.clone(),
                starttls: starttls.clone(),
                timeout: settings.timeout,
                ca_file: settings.ca_file.clone(),
            };
            tlsaudit::tls::audit(&options).map(Audit::Tls)
        }
    };
    result.unwrap_or_else(|e| Audit::Error {
        target: target.name(),
        error: format!("{e:#}"),
    })
}

/// The targets of `path`; every bad line named at once (a usage error).
pub fn read_targets(path: &Path) -> anyhow::Result<Vec<Target>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_targets(&text).map_err(|problems| {
        let problems: Vec<String> = problems
            .iter()
            .map(|p| format!("{}:{p}", path.display()))
            .collect();
        super::UsageError(problems.join("\n")).into()
    })
}

/// The targets of a file's text, or every problem (`LINE: ...`).
pub fn parse_targets(text: &str) -> Result<Vec<Target>, Vec<String>> {
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(t)) => targets.push(t),
            Ok(None) => {}
            Err(why) => problems.push(format!("{}: {:?}: {why}", i + 1, line.trim())),
        }
    }
    if problems.is_empty() && targets.is_empty() {
        problems.push(" no targets (one a line: https://URL, host:port, smtp://host)".into());
    }
    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(problems)
    }
}

const EXPECTED: &str =
    "expected https://URL, http://URL, host:port, smtp://host[:port] or host:port starttls=smtp";

fn parse_line(line: &str) -> Result<Option<Target>, String> {
    let line = strip_comment(line);
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    let lower = first.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let url = super::headers::url(first)?;
        if let Some(extra) = words.next() {
            return Err(format!("{extra:?}: options are for TLS targets, not URLs"));
        }
        return Ok(Some(Target::Headers { url: url.into() }));
    }
    let (target, mut starttls) = if lower.starts_with("smtp://") {
        let rest = first["smtp://".len()..].trim_end_matches('/');
        let with_port = if rest.starts_with('[') && !rest.contains("]:")
            || !rest.starts_with('[') && !rest.contains(':')
        {
            format!("{rest}:25")
        } else {
            rest.to_owned()
        };
        (super::tls::host_port(&with_port)?, Some("smtp".to_owned()))
    } else if first.contains("://") {
        return Err(format!("unknown scheme; {EXPECTED}"));
    } else {
        (
            super::tls::host_port(first).map_err(|e| format!("{e}; {EXPECTED}"))?,
            None,
        )
    };
    let mut sni = None;
    for word in words {
        match word.split_once('=') {
            Some(("starttls", "smtp")) => starttls = Some("smtp".into()),
            Some(("starttls", other)) => {
                return Err(format!("starttls={other}: only starttls=smtp is known"));
            }
            Some(("sni", name)) if !name.is_empty() => sni = Some(name.to_owned()),
            _ => {
                return Err(format!(
                    "{word:?}: unknown option (starttls=smtp, sni=NAME)"
                ));
            }
        }
    }
    Ok(Some(Target::Tls {
        target,
        starttls,
        sni,
    }))
}

/// `line` up to a `#` that starts it or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(target: &str, starttls: Option<&str>, sni: Option<&str>) -> Target {
        Target::Tls {
            target: target.into(),
            starttls: starttls.map(Into::into),
            sni: sni.map(Into::into),
        }
    }

    #[test]
    fn every_kind_of_line() {
        let text = "\
# perimeter
https://www.example.org/login   # the login page
http://example.org
mail.example.org:465
smtp://mx.example.org
smtp://mx.example.org:587/
mx2.example.org:25 starttls=smtp sni=mx.example.org
[2001:db8::1]:443

   \t
https://example.org/#fragment
";
        let targets = parse_targets(text).unwrap();
        assert_eq!(
            targets,
            [
                Target::Headers {
                    url: "https://www.example.org/login".into()
                },
                Target::Headers {
                    url: "http://example.org".into()
                },
                tls("mail.example.org:465", None, None),
                tls("mx.example.org:25", Some("smtp"), None),
                tls("mx.example.org:587", Some("smtp"), None),
                tls("mx2.example.org:25", Some("smtp"), Some("mx.example.org")),
                tls("[2001:db8::1]:443", None, None),
                Target::Headers {
                    url: "https://example.org/#fragment".into()
                },
            ]
        );
        assert_eq!(targets[3].name(), "smtp://mx.example.org:25");
        assert_eq!(targets[2].name(), "mail.example.org:465");
    }

    #[test]
    fn every_bad_line_is_named() {
        let text = "\
example.org:443
example.org
ftp://example.org
example.org:443 starttls=imap
https://example.org/ sni=x
example.org:443 verbose
https://
";
        let problems = parse_targets(text).unwrap_err();
        let lines: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(lines, ["2", "3", "4", "5", "6", "7"], "{problems:#?}");
        assert!(
            problems[0].starts_with("2: \"example.org\": "),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].contains("expected https://URL"),
            "{}",
            problems[0]
        );
        assert!(
            problems[2].contains("only starttls=smtp"),
            "{}",
            problems[2]
        );
    }

    #[test]
    fn a_file_without_targets_is_an_error() {
        assert!(parse_targets("# nothing\n\n").is_err());
    }

    fn settings(deadline: Duration) -> Settings {
        Settings {
            timeout: Duration::from_secs(1),
            deadline,
            ca_file: None,
        }
    }

    #[test]
    fn results_in_input_order_whatever_the_workers() {
        // Closed ports on loopback: refused at once.
        let ports: Vec<u16> = (0..5)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let targets: Vec<Target> = ports
            .iter()
            .map(|p| tls(&format!("127.0.0.1:{p}"), None, None))
            .collect();
        let audits = scan(
            &targets,
            &settings(Duration::from_secs(30)),
            3,
            &ProgressBar::hidden(),
        );
        let names: Vec<&str> = audits.iter().map(tlsaudit::output::target).collect();
        let expected: Vec<String> = targets.iter().map(Target::name).collect();
        assert_eq!(names, expected);
        assert!(
            audits.iter().all(|a| matches!(a, Audit::Error { .. })),
            "{audits:#?}"
        );
    }

    #[test]
    fn a_silent_server_times_out_by_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming() {
                held.push(s);
            }
        });
        let targets = [tls(&format!("127.0.0.1:{port}"), None, None)];
        let mut settings = settings(Duration::from_millis(300));
        settings.timeout = Duration::from_secs(60);
        let started = std::time::Instant::now();
        let audits = scan(&targets, &settings, 1, &ProgressBar::hidden());
        assert!(started.elapsed() < Duration::from_secs(5));
        match &audits[0] {
            Audit::Error { target, error } => {
                assert_eq!(target, &format!("127.0.0.1:{port}"));
                assert!(error.starts_with("timed out"), "{error}");
            }
            other => panic!("{other:#?}"),
        }
    }
}
