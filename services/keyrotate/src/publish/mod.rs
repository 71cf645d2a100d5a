//! Publication of a rotation: the new key and the revoked old keys, to every place
//! correspondents look keys up.
//!
//! * `hkp`: classic keyservers (`POST /pks/add`), one upload per key.
//! * `vks`: verifying keyservers (the keys.openpgp.org API): upload, then ask for the
//!   verification mails that publish the new key's addresses.
//! * `wkd`: the Web Key Directory, written as files under a web root.
//! * `http`: the POST, timeouts and error messages shared by HKP and VKS.
//!
//! Only public keys leave this module: every cert passes through `public` first, which
//! strips secret key material and checks it is gone, whatever the caller handed in.

mod hkp;
mod http;
mod vks;
mod wkd;

use std::time::Duration;

use anyhow::Context;
use sequoia_openpgp::Cert;
use sequoia_openpgp::serialize::SerializeInto;

pub use wkd::wkd_hash;

/// One place to publish to.
#[derive(Debug, Clone)]
pub enum Target {
    /// An HKP keyserver's base URL, e.g. `http://keys.example.net:11371`.
    Hkp(String),
    /// A verifying keyserver's base URL, e.g. `https://keys.openpgp.org`.
    Vks(String),
    /// A Web Key Directory under a local web root.
    Wkd(crate::config::Wkd),
}

impl Target {
    /// Every configured target, in config order: hkp, vks, then wkd.
    pub fn all(config: &crate::config::Publish) -> Vec<Target> {
        let hkp = config.hkp.iter().cloned().map(Target::Hkp);
        let vks = config.vks.iter().cloned().map(Target::Vks);
        let wkd = config.wkd.iter().cloned().map(Target::Wkd);
        hkp.chain(vks).chain(wkd).collect()
    }

    /// A stable key for the journal, e.g. "hkp http://keys.example:11371",
    /// "vks https://keys.openpgp.org", "wkd /var/www/x (example.org)".
    pub fn id(&self) -> String {
        match self {
            Target::Hkp(url) => format!("hkp {url}"),
            Target::Vks(url) => format!("vks {url}"),
            Target::Wkd(w) => format!("wkd {} ({})", w.dir.display(), w.domain),
        }
    }

    /// Publishes `new` (the new public key, with certifications) and `revoked` (the old
    /// public keys carrying their revocations) to this target; returns a one-line human
    /// summary of what was done. Never sends secret key material.
    ///
    /// Publishing again is harmless: keyservers merge what they already have, and WKD
    /// files are replaced. The journal relies on this to retry a failed target.
    pub fn publish(
        &self,
        new: &Cert,
        revoked: &[Cert],
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let new = public(new);
        let revoked: Vec<Cert> = revoked.iter().map(public).collect();
        match self {
            Target::Hkp(base) => hkp::publish(base, &new, &revoked, timeout),
            Target::Vks(base) => vks::publish(base, &new, &revoked, timeout),
            // WKD serves the current key of an address; the old keys' revocations reach
            // correspondents through the keyservers and the notice mail.
            Target::Wkd(wkd) => wkd::publish(wkd, &new),
        }
        .with_context(|| format!("publishing to {}", self.id()))
    }
}

/// `cert` without any secret key material. The assertion guards the invariant of this
/// module: a bug here would publish a secret key to the world, irrevocably.
fn public(cert: &Cert) -> Cert {
    let cert = cert.clone().strip_secret_key_material();
    assert!(!cert.is_tsk(), "secret key material left after stripping");
    cert
}

/// The ASCII-armored public key, as keyservers take it. `export` rather than
/// `serialize`: it leaves out signatures marked non-exportable (local certifications).
fn armored(cert: &Cert) -> anyhow::Result<String> {
    let bytes = cert
        .armored()
        .export_to_vec()
        .with_context(|| format!("encoding key {}", cert.fingerprint()))?;
    String::from_utf8(bytes)
        .with_context(|| format!("armor of key {} is not UTF-8", cert.fingerprint()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Publish, Wkd, WkdLayout};
    use sequoia_openpgp::cert::CertBuilder;
    use sequoia_openpgp::parse::Parse;

    #[test]
    fn all_lists_targets_in_config_order() {
        let config = Publish {
            hkp: vec!["http://a:11371".into(), "http://b".into()],
            vks: vec!["https://keys.openpgp.org".into()],
            wkd: Some(Wkd {
                dir: "/var/www/x".into(),
                domain: "example.org".into(),
                layout: WkdLayout::Both,
            }),
            timeout_secs: 30,
        };
        let ids: Vec<String> = Target::all(&config).iter().map(Target::id).collect();
        assert_eq!(
            ids,
            [
                "hkp http://a:11371",
                "hkp http://b",
                "vks https://keys.openpgp.org",
                "wkd /var/www/x (example.org)"
            ]
        );
        assert!(Target::all(&Publish::default()).is_empty());
    }

    #[test]
    fn public_strips_secrets_and_armored_holds_none() {
        let (tsk, _) = CertBuilder::general_purpose(Some("alice@example.org"))
            .generate()
            .unwrap();
        assert!(tsk.is_tsk());
        let cert = public(&tsk);
        assert!(!cert.is_tsk());
        assert_eq!(cert.fingerprint(), tsk.fingerprint());
        let text = armored(&cert).unwrap();
        assert!(
            text.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
            "{text}"
        );
        assert!(!Cert::from_bytes(text.as_bytes()).unwrap().is_tsk());
    }
}
