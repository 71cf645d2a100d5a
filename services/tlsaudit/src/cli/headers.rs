//! `tlsaudit headers URL`: one header audit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tlsaudit::report::Audit;

#[derive(Debug, clap::Args)]
pub struct HeadersArgs {
    /// The page to audit (http:// or https://); redirects are followed (at most 10).
    pub url: String,
    #[command(flatten)]
    pub report: super::ReportArgs,
    /// Each request (connect, TLS, response) must finish within this.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub timeout: Duration,
    /// Extra trust anchors (PEM), e.g. an internal CA; the system roots are always used.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

pub fn run(a: &HeadersArgs) -> anyhow::Result<ExitCode> {
    let url = url(&a.url).map_err(super::UsageError)?;
    let options = tlsaudit::headers::Options {
        timeout: a.timeout,
        max_redirects: 10,
        ca_file: a.ca_file.clone(),
    };
    let audit = tlsaudit::headers::audit(url, &options)?;
    super::report(&[Audit::Headers(audit)], &a.report)
}

/// `s` when it is an http:// or https:// URL with a host.
pub fn url(s: &str) -> Result<&str, String> {
    let s = s.trim();
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| {
            s.get(..scheme.len())
                .filter(|p| p.eq_ignore_ascii_case(scheme))
                .map(|_| &s[scheme.len()..])
        })
        .ok_or_else(|| format!("{s:?}: expected an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{s:?}: the URL has no host"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(url("https://example.org/"), Ok("https://example.org/"));
        assert_eq!(url("HTTP://example.org"), Ok("HTTP://example.org"));
        assert_eq!(url("http://[::1]:8080/x"), Ok("http://[::1]:8080/x"));
        for bad in [
            "example.org",
            "ftp://example.org",
            "https://",
            "https:///x",
            "http://a b/",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }
}
