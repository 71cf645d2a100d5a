//! testssl.sh, the peer: how it is run and how its flat JSON becomes [`Findings`].
//!
//! `testssl --quiet --color 0 --warnings off --nodns none -p -E --jsonfile FILE
//! --connect-timeout 5 --openssl-timeout 5 IP:PORT` runs exactly the two checks that are
//! compared, and nothing else testssl.sh does by default (server defaults, headers,
//! vulnerabilities, client simulation, rating):
//!
//! * `-p` (`--protocols`): SSLv2 to TLS 1.3, each `offered` or `not offered`;
//! * `-E` (`--cipher-per-proto`): every suite testssl.sh knows (its OpenSSL's and, by
//!   raw sockets, the ones that OpenSSL lacks), tried per protocol. `-e` tries each
//!   suite once, with the best protocol, so it cannot say which suite goes with TLS 1.0;
//!   `-P` would add the server's preference order, which is not compared.
//!
//! `--nodns none` skips the DNS lookups (the target is an address; `--ip one` does
//! not combine with it), and the timeouts keep a stuck handshake from stalling a run.
//! testssl.sh always detects the service (HTTP) first; that cannot be turned off.
//!
//! The flat JSON (`--jsonfile`) is a list of `{id, severity, finding}`: the protocols
//! are `SSLv3`, `TLS1`, `TLS1_1`, `TLS1_2`, `TLS1_3` with findings starting `offered`
//! or `not offered`; the suites are `cipher-<proto>_x<hex code>` with `<proto>` one of
//! `ssl3`, `tls1`, `tls1_1`, `tls1_2`, `tls1_3`, and the IANA name last in the finding.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::findings::{Findings, Proto};
use crate::cmd;

/// Where Debian's `testssl.sh` package installs it.
pub const DEFAULT: &str = "/usr/bin/testssl";

/// The longest one run may take (the legacy target takes about 30 s).
pub const TIMEOUT: Duration = Duration::from_secs(900);

pub fn default_binary() -> PathBuf {
    PathBuf::from(DEFAULT)
}

/// The command that audits `target`, writing its JSON to `json` (which must not exist).
pub fn command(testssl: &Path, target: SocketAddr, json: &Path) -> Command {
    let mut cmd = Command::new(testssl);
    cmd.args([
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--nodns",
        "none",
        "-p",
        "-E",
        "--connect-timeout",
        "5",
        "--openssl-timeout",
        "5",
        "--jsonfile",
    ])
    .arg(json)
    .arg(target.to_string());
    cmd
}

/// `testssl 3.0.8`: testssl.sh prints a banner with its version (and, before it, a
/// warning about its OpenSSL).
pub fn version(testssl: &Path) -> String {
    let out = match cmd::run(
        // `--version` must come alone, so the banner comes in colour.
        Command::new(testssl).arg("--version"),
        Duration::from_secs(30),
    ) {
        Ok(out) => out,
        Err(e) => return format!("unknown ({e:#})"),
    };
    let text = strip_escapes(&format!("{}{}", out.stdout, out.stderr));
    let banner = text
        .lines()
        .find(|l| l.contains("testssl") && l.contains("from"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
    let openssl = text
        .lines()
        .find(|l| l.trim_start().starts_with("Using \""))
        .map(|l| l.trim().trim_start_matches("Using ").to_owned());
    match (banner, openssl) {
        (Some(b), Some(o)) => format!("{b} (with {o})"),
        (Some(b), None) => b,
        _ => "unknown (no banner)".to_owned(),
    }
}

/// `text` without terminal escape sequences (`ESC [ ... letter`).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The key of a protocol in testssl.sh's protocol ids and cipher ids.
fn keys(p: Proto) -> (&'static str, &'static str) {
    match p {
        Proto::Ssl3 => ("SSLv3", "ssl3"),
        Proto::Tls10 => ("TLS1", "tls1"),
        Proto::Tls11 => ("TLS1_1", "tls1_1"),
        Proto::Tls12 => ("TLS1_2", "tls1_2"),
        Proto::Tls13 => ("TLS1_3", "tls1_3"),
    }
}

/// The findings in testssl.sh's flat JSON.
pub fn parse(json: &str) -> Result<Findings> {
    let doc: Value = serde_json::from_str(json).context("testssl.sh's JSON does not parse")?;
    let Some(entries) = doc.as_array() else {
        bail!("testssl.sh's JSON is not a list (was it --jsonfile-pretty?)");
    };
    let mut f = Findings::default();
    let mut protocols_seen = false;
    for e in entries {
        let (Some(id), Some(finding)) = (
            e.get("id").and_then(Value::as_str),
            e.get("finding").and_then(Value::as_str),
        ) else {
            continue;
        };
        if let Some(p) = Proto::ALL.into_iter().find(|&p| keys(p).0 == id) {
            protocols_seen = true;
            let finding = finding.trim();
            if finding.starts_with("not offered") {
                f.accepted.insert(p, false);
            } else if finding.starts_with("offered") {
                f.accepted.insert(p, true);
            } else {
                f.unclear.insert(p, finding.to_owned());
            }
        } else if let Some(rest) = id.strip_prefix("cipher-") {
            let Some((key, hex)) = rest.rsplit_once("_x") else {
                continue;
            };
            let Some(p) = Proto::ALL.into_iter().find(|&p| keys(p).1 == key) else {
                continue; // SSLv2's three-byte codes
            };
            let code = u16::from_str_radix(hex, 16)
                .with_context(|| format!("testssl.sh cipher id {id:?}: bad code"))?;
            f.suites.entry(p).or_default().insert(code);
            if let Some(name) = finding.split_whitespace().last() {
                f.names.insert(code, name.to_owned());
            }
        }
    }
    if !protocols_seen {
        let said: Vec<String> = entries
            .iter()
            .filter(|e| e.get("severity").and_then(Value::as_str) != Some("INFO"))
            .filter_map(|e| {
                Some(format!(
                    "{}: {}",
                    e.get("id")?.as_str()?,
                    e.get("finding")?.as_str()?
                ))
            })
            .collect();
        bail!(
            "testssl.sh reported no protocols (it said: {})",
            said.join("; ")
        );
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shortened from a real run against the legacy target.
    const SAMPLE: &str = r#"[
      {"id":"engine_problem","ip":"/","port":"443","severity":"WARN","finding":"No engine or GOST support via engine with your /usr/bin/openssl"},
      {"id":"service","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"HTTP"},
      {"id":"SSLv2","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"OK","finding":"not offered"},
      {"id":"SSLv3","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"OK","finding":"not offered"},
      {"id":"TLS1","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"LOW","finding":"offered (deprecated)"},
      {"id":"TLS1_1","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"LOW","finding":"offered (deprecated)"},
      {"id":"TLS1_2","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"OK","finding":"offered"},
      {"id":"TLS1_3","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"OK","finding":"offered with final"},
      {"id":"NPN","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"not offered"},
      {"id":"cipher-tls1_xc014","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"TLS 1   xc014   ECDHE-RSA-AES256-SHA              ECDH 521   AES         256      TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
      {"id":"cipher-tls1_1_x39","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"TLS 1.1   x39     DHE-RSA-AES256-SHA                DH 2048    AES         256      TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
      {"id":"cipher-tls1_2_xc02f","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"TLS 1.2   xc02f   ECDHE-RSA-AES128-GCM-SHA256       ECDH 253   AESGCM      128      TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
      {"id":"cipher-tls1_2_xa6","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"TLS 1.2   xa6     ADH-AES128-GCM-SHA256             DH 1024    AESGCM      128      TLS_DH_anon_WITH_AES_128_GCM_SHA256"},
      {"id":"cipher-tls1_3_x1301","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"TLS 1.3   x1301   TLS_AES_128_GCM_SHA256            ECDH 253   AESGCM      128      TLS_AES_128_GCM_SHA256"},
      {"id":"scanTime","ip":"127.0.0.1/127.0.0.1","port":"14432","severity":"INFO","finding":"29"}
    ]"#;

    #[test]
    fn reads_protocols_and_suites_per_protocol() {
        let f = parse(SAMPLE).unwrap();
        assert!(!f.accepted[&Proto::Ssl3]);
        assert!(f.accepted[&Proto::Tls10]);
        assert!(f.accepted[&Proto::Tls13]);
        assert!(f.unclear.is_empty());
        assert_eq!(f.suites_of(Proto::Tls10), [0xc014].into());
        assert_eq!(f.suites_of(Proto::Tls11), [0x0039].into());
        assert_eq!(f.suites_of(Proto::Tls12), [0x00a6, 0xc02f].into());
        assert_eq!(f.suites_of(Proto::Tls13), [0x1301].into());
        assert_eq!(f.names[&0x00a6], "TLS_DH_anon_WITH_AES_128_GCM_SHA256");
    }

    #[test]
    fn escapes_are_stripped_from_the_banner() {
        assert_eq!(
            strip_escapes(
                "    testssl       3.0.8 from \u{1b}[m\u{1b}[1mhttps://testssl.sh/\u{1b}[m"
            ),
            "    testssl       3.0.8 from https://testssl.sh/"
        );
    }

    #[test]
    fn a_run_without_protocols_is_an_error() {
        let err = parse(
            r#"[{"id":"scanProblem","severity":"FATAL","finding":"Can't connect to 127.0.0.1:1"}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Can't connect"), "{err}");
    }

    #[test]
    fn the_command_runs_only_protocols_and_ciphers_per_protocol() {
        let cmd = command(
            Path::new(DEFAULT),
            "127.0.0.1:4433".parse().unwrap(),
            Path::new("/tmp/x.json"),
        );
        let shown = cmd::shown(&cmd);
        assert!(shown.contains(" -p -E "), "{shown}");
        assert!(
            shown.ends_with("--jsonfile /tmp/x.json 127.0.0.1:4433"),
            "{shown}"
        );
    }
}
