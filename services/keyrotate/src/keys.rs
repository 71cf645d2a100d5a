//! The old keys: read from a secret key file or exported from a GnuPG home, and
//! unlocked with their passphrase before anything is written, so a wrong passphrase or
//! an unreadable file stops the run with nothing half-done.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::amalgamation::key::PrimaryKey;
use sequoia_openpgp::crypto::{KeyPair, Password};
use sequoia_openpgp::packet::Key;
use sequoia_openpgp::packet::key::{SecretParts, UnspecifiedRole};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;

use crate::config::{self, OldKeySource};
use crate::secrets;

/// Which signatures and keys count as valid: Sequoia's standard policy (SHA-1 and other
/// broken algorithms rejected where they matter).
pub static POLICY: StandardPolicy = StandardPolicy::new();

/// An old key, unlocked.
pub struct OldKey {
    /// `old_key[0]` and so on: how messages name it.
    pub label: String,
    /// The secret key (transferable secret key).
    pub cert: Cert,
    /// The primary key: certifies the new user IDs and revokes the old key.
    pub primary: KeyPair,
    /// A key valid for signing now (a signing subkey, else the primary): signs the notice.
    pub signer: KeyPair,
}

/// Reads and unlocks every `[[old_key]]`.
pub fn load_old(keys: &[config::OldKey]) -> anyhow::Result<Vec<OldKey>> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let label = format!("old_key[{i}]");
            let passphrase = secrets::read(&k.passphrase(), "passphrase")
                .with_context(|| format!("{label}: reading its passphrase"))?;
            let cert = match k.source() {
                OldKeySource::File(path) => read_secret_file(path),
                OldKeySource::GnupgHome { home, fingerprint } => {
                    export_from_gnupg(home, fingerprint, passphrase.as_ref())
                }
            }
            .with_context(|| format!("{label}: reading the secret key"))?;
            let label = format!("{label} ({})", cert.fingerprint());
            let primary = cert
                .primary_key()
                .key()
                .clone()
                .parts_into_secret()
                .and_then(|k| unlock(k.role_into_unspecified(), passphrase.as_ref()))
                .with_context(|| format!("{label}: unlocking the primary key"))?;
            let signer = signing_keypair(&cert, passphrase.as_ref())
                .with_context(|| format!("{label}: unlocking the signing key"))?;
            Ok(OldKey {
                label,
                cert,
                primary,
                signer,
            })
        })
        .collect()
}

/// Exactly one certificate with the primary key's secret.
fn one_secret_cert(bytes: &[u8], origin: &str) -> anyhow::Result<Cert> {
    let mut certs = sequoia_openpgp::cert::CertParser::from_bytes(bytes)
        .with_context(|| format!("{origin} is not OpenPGP data"))?
        .collect::<Result<Vec<Cert>, _>>()
        .with_context(|| format!("{origin} is not a valid OpenPGP key"))?;
    let cert = match certs.len() {
        1 => certs.remove(0),
        0 => bail!("{origin} holds no key"),
        n => bail!("{origin} holds {n} keys: expected one per [[old_key]]"),
    };
    if !cert.primary_key().key().has_secret() {
        bail!(
            "{origin} holds only the public key of {}: the secret key is needed to certify and revoke",
            cert.fingerprint()
        );
    }
    Ok(cert)
}

fn read_secret_file(path: &Path) -> anyhow::Result<Cert> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    one_secret_cert(&bytes, &path.display().to_string())
}

/// `gpg --export-secret-keys`, which asks for the passphrase (through a loopback
/// pinentry, fed on stdin) and exports the key protected with it.
fn export_from_gnupg(
    home: &Path,
    fingerprint: &str,
    passphrase: Option<&Password>,
) -> anyhow::Result<Cert> {
    let fingerprint = fingerprint.replace(' ', "");
    let mut child = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            "--export-secret-keys",
        ])
        .arg(format!("{fingerprint}!"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running gpg (is GnuPG installed?)")?;
    let mut stdin = child.stdin.take().expect("piped");
    if let Some(p) = passphrase {
        p.map(|p| stdin.write_all(p.as_ref()))
            .context("giving gpg the passphrase")?;
    }
    drop(stdin);
    let out = child.wait_with_output().context("waiting for gpg")?;
    let origin = format!("the GnuPG home {} (key {fingerprint})", home.display());
    if !out.status.success() || out.stdout.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "gpg could not export the secret key from {origin}: {}",
            err.trim()
        );
    }
    one_secret_cert(&out.stdout, &origin)
}

/// The key's secret, decrypted with `passphrase` if it is protected.
pub fn unlock(
    key: Key<SecretParts, UnspecifiedRole>,
    passphrase: Option<&Password>,
) -> anyhow::Result<KeyPair> {
    let key = if key.has_unencrypted_secret() {
        key
    } else {
        let Some(p) = passphrase else {
            bail!("the key is protected by a passphrase and none is configured");
        };
        key.decrypt_secret(p)
            .map_err(|_| anyhow::anyhow!("the passphrase does not unlock the key"))?
    };
    key.into_keypair().context("using the secret key")
}

/// A key of `cert` valid for signing now, with its secret: a signing subkey if there is
/// one, else the primary key.
pub fn signing_keypair(cert: &Cert, passphrase: Option<&Password>) -> anyhow::Result<KeyPair> {
    let valid = cert
        .with_policy(&POLICY, None)
        .with_context(|| format!("{} is not valid now", cert.fingerprint()))?;
    let mut keys: Vec<_> = valid
        .keys()
        .for_signing()
        .alive()
        .revoked(false)
        .secret()
        .collect();
    // Subkeys first: the primary key of a modern key is for certifying only.
    keys.sort_by_key(|k| k.primary());
    let Some(key) = keys.into_iter().next() else {
        bail!(
            "{} has no valid signing key with its secret",
            cert.fingerprint()
        );
    };
    unlock(key.key().clone().role_into_unspecified(), passphrase)
}
