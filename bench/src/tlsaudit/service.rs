//! Everything this benchmark assumes about tlsaudit, in one place:
//!
//! * the binary is `target/release/tlsaudit` (`cargo build --release -p tlsaudit`);
//! * `tlsaudit tls IP:PORT --format json --ca-file PEM --timeout 5s` audits one server
//!   and prints `{ "tool", "version", "generated", "audits": [ { "kind": "tls",
//!   "protocols": [ { "protocol": "TLSv1.2", "accepted": true, "ciphers": [ { "id":
//!   49199, "name": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ... } ] } ] ... } ] }`
//!   (`services/tlsaudit/src/report.rs`), or an audit of `"kind": "error"` saying why
//!   it could not audit;
//! * `--ca-file` is the target's private CA, so the certificate checks find a trusted
//!   chain (testssl.sh is not told about it: the certificate is not compared).
//!
//! While tlsaudit is being written, a missing binary or `tls` command skips it (see
//! [`unavailable`]) and testssl.sh is still measured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::findings::{Findings, Proto};
use crate::cmd;

/// The longest one audit may take.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// `target/release/tlsaudit` in this workspace.
pub fn default_binary() -> PathBuf {
    cmd::workspace_binary("tlsaudit")
}

/// Why `tlsaudit tls` cannot run yet, if it cannot: the binary is not built, or
/// `tlsaudit tls --help` fails or does not offer `--format`.
pub fn unavailable(tlsaudit: &Path) -> Option<String> {
    cmd::unavailable(tlsaudit, "tlsaudit", "tls", Some("--format"))
}

/// `tlsaudit tls IP:PORT --format json --ca-file CA --timeout 5s`.
pub fn command(tlsaudit: &Path, target: SocketAddr, ca: &Path) -> Command {
    let mut cmd = Command::new(tlsaudit);
    cmd.arg("tls")
        .arg(target.to_string())
        .args(["--format", "json", "--ca-file"])
        .arg(ca)
        .args(["--timeout", "5s"]);
    cmd
}

/// The findings of the first audit in tlsaudit's JSON.
pub fn parse(json: &str) -> Result<Findings> {
    let doc: Value = serde_json::from_str(json).context("tlsaudit's JSON does not parse")?;
    let audit = doc
        .get("audits")
        .and_then(|a| a.get(0))
        .context("tlsaudit's JSON has no audits[0]")?;
    match audit.get("kind").and_then(Value::as_str) {
        Some("tls") => {}
        Some("error") => bail!(
            "tlsaudit could not audit: {}",
            audit.get("error").and_then(Value::as_str).unwrap_or("?")
        ),
        other => bail!("tlsaudit's audits[0] is of kind {other:?}, not \"tls\""),
    }
    let protocols = audit
        .get("protocols")
        .and_then(Value::as_array)
        .context("tlsaudit's audit has no protocols list")?;
    let mut f = Findings::default();
    for p in protocols {
        let name = p.get("protocol").and_then(Value::as_str).unwrap_or("?");
        let Some(proto) = Proto::from_name(name) else {
            bail!("tlsaudit reports an unknown protocol {name:?}");
        };
        let accepted = p
            .get("accepted")
            .and_then(Value::as_bool)
            .with_context(|| format!("tlsaudit's {name} has no boolean `accepted`"))?;
        f.accepted.insert(proto, accepted);
        let suites = f.suites.entry(proto).or_default();
        for c in p
            .get("ciphers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = c
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| u16::try_from(id).ok())
                .with_context(|| format!("tlsaudit's {name} has a cipher without an id: {c}"))?;
            suites.insert(id);
            if let Some(n) = c.get("name").and_then(Value::as_str) {
                f.names.insert(id, n.to_owned());
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "tool": "tlsaudit", "version": "0.1.0", "generated": "2026-11-21T15:00:00Z",
      "audits": [ { "kind": "tls", "target": "127.0.0.1:4433", "starttls": null,
        "protocols": [
          { "protocol": "SSLv3", "accepted": false, "ciphers": [], "server_order": null },
          { "protocol": "TLSv1.2", "accepted": true, "server_order": true, "ciphers": [
            { "id": 49199, "name": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "bits": 128, "forward_secrecy": true },
            { "id": 49200, "name": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "bits": 256, "forward_secrecy": true } ] },
          { "protocol": "TLSv1.3", "accepted": true, "server_order": null, "ciphers": [
            { "id": 4865, "name": "TLS_AES_128_GCM_SHA256", "bits": 128, "forward_secrecy": true } ] }
        ],
        "groups": ["x25519"], "certificate": null, "rating": {}, "findings": [], "seconds": 0.1 } ]
    }"#;

    #[test]
    fn reads_protocols_and_suites() {
        let f = parse(SAMPLE).unwrap();
        assert!(!f.accepted[&Proto::Ssl3]);
        assert!(f.accepted[&Proto::Tls12]);
        assert!(!f.accepted.contains_key(&Proto::Tls10));
        assert_eq!(f.suites_of(Proto::Tls12), [0xc02f, 0xc030].into());
        assert_eq!(f.suites_of(Proto::Tls13), [0x1301].into());
        assert_eq!(f.names[&0x1301], "TLS_AES_128_GCM_SHA256");
    }

    #[test]
    fn an_error_audit_says_why() {
        let err =
            parse(r#"{"audits":[{"kind":"error","target":"x","error":"connection refused"}]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    #[test]
    fn the_command_asks_for_json_with_the_private_ca() {
        let cmd = command(
            Path::new("tlsaudit"),
            "127.0.0.1:4433".parse().unwrap(),
            Path::new("/tmp/ca.pem"),
        );
        assert_eq!(
            cmd::shown(&cmd),
            "tlsaudit tls 127.0.0.1:4433 --format json --ca-file /tmp/ca.pem --timeout 5s"
        );
    }
}
