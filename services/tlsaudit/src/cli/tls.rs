//! `tlsaudit tls HOST:PORT`: one TLS audit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tlsaudit::report::Audit;

#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// The server: `host:port`, `[v6 address]:port`.
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// Speak this protocol and upgrade with STARTTLS first.
    #[arg(long, value_enum)]
    pub starttls: Option<Starttls>,
    /// Name sent in SNI and checked against the certificate [default: the host].
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    #[command(flatten)]
    pub report: super::ReportArgs,
    /// Each connection (connect, STARTTLS, handshake) must finish within this.
    #[arg(long, default_value = "5s", value_parser = super::parse_duration)]
    pub timeout: Duration,
    /// Extra trust anchors (PEM), e.g. an internal CA; the system roots are always used.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

/// Protocols upgraded with STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Starttls {
    Smtp,
}

impl Starttls {
    pub fn name(self) -> &'static str {
        match self {
            Starttls::Smtp => "smtp",
        }
    }
}

pub fn run(a: &TlsArgs) -> anyhow::Result<ExitCode> {
    let target = host_port(&a.target).map_err(super::UsageError)?;
    let options = tlsaudit::tls::Options {
        target,
        sni: a.sni.clone(),
        starttls: a.starttls.map(|s| s.name().to_owned()),
        timeout: a.timeout,
        ca_file: a.ca_file.clone(),
    };
    let audit = tlsaudit::tls::audit(&options)?;
    super::report(&[Audit::Tls(audit)], &a.report)
}

/// `host:port` or `[v6]:port` checked, as the TLS audit takes it.
pub fn host_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    let bad = |why: &str| format!("{s:?}: {why}");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (addr, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad("expected [IPv6 address]:port"))?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("not an IPv6 address in the brackets"))?;
        (addr, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        if host.contains(':') {
            return Err(bad("write an IPv6 address as [address]:port"));
        }
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if host.is_empty() || !host.chars().all(name_char) {
            return Err(bad("expected host:port, the host a name or an address"));
        }
        (host, port)
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(if s.starts_with('[') {
            format!("[{host}]:{p}")
        } else {
            format!("{host}:{p}")
        }),
        _ => Err(bad("the port must be a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(host_port("example.org:443").unwrap(), "example.org:443");
        assert_eq!(host_port(" 127.0.0.1:25 ").unwrap(), "127.0.0.1:25");
        assert_eq!(host_port("[::1]:8443").unwrap(), "[::1]:8443");
        for bad in [
            "example.org",
            "example.org:",
            "example.org:0",
            "example.org:65536",
            ":443",
            "::1:443",
            "[::1]443",
            "[nope]:443",
            "exa mple.org:443",
            "https://example.org:443",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }
}
