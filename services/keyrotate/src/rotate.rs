//! The rotation itself, pure OpenPGP with no I/O: the new key, the old keys'
//! certifications of its user IDs, and the old keys' revocations as superseded.

use anyhow::Context;
use sequoia_openpgp::Cert;
use sequoia_openpgp::Profile;
use sequoia_openpgp::cert::{CertBuilder, CertRevocationBuilder, CipherSuite};
use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::types::{ReasonForRevocation, SignatureType};

use crate::config::{Algorithm, NewKey, Subkey};
use crate::keys::OldKey;

/// A new v4 key (GnuPG 2.2 does not read v6) with the configured user IDs, subkeys and
/// validity; returns it with its emergency revocation certificate.
pub fn generate(spec: &NewKey, passphrase: Option<Password>) -> anyhow::Result<(Cert, Signature)> {
    let suite = match spec.algorithm {
        Algorithm::Cv25519 => CipherSuite::Cv25519,
        Algorithm::Rsa4096 => CipherSuite::RSA4k,
    };
    let mut builder = CertBuilder::new()
        .set_profile(Profile::RFC4880)
        .context("choosing v4 keys")?
        .set_cipher_suite(suite)
        .set_validity_period(spec.validity())
        .set_password(passphrase);
    for uid in &spec.user_ids {
        builder = builder.add_userid(uid.as_str());
    }
    for subkey in &spec.subkeys {
        builder = match subkey {
            Subkey::Sign => builder.add_signing_subkey(),
            // Both encryption purposes, as GnuPG marks its encryption subkeys.
            Subkey::Encrypt => builder.add_subkey(
                sequoia_openpgp::types::KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
                None,
                None,
            ),
            Subkey::Auth => builder.add_authentication_subkey(),
        };
    }
    builder.generate().context("generating the new key")
}

/// `new` with each of its user IDs certified by each of `olds`.
pub fn certify<'a>(
    new: Cert,
    olds: impl IntoIterator<Item = &'a mut OldKey>,
) -> anyhow::Result<Cert> {
    let mut sigs = Vec::new();
    for old in olds {
        for uid in new.userids() {
            let sig = uid
                .userid()
                .certify(
                    &mut old.primary,
                    &new,
                    SignatureType::GenericCertification,
                    None,
                    None,
                )
                .with_context(|| {
                    format!(
                        "{}: certifying {}",
                        old.label,
                        String::from_utf8_lossy(uid.userid().value())
                    )
                })?;
            sigs.push(sig);
        }
    }
    Ok(new
        .insert_packets(sigs)
        .context("adding the certifications")?
        .0)
}

/// The public old key with a revocation "key superseded", naming the new key.
pub fn revoke(old: &mut OldKey, new_fingerprint: &str) -> anyhow::Result<Cert> {
    let message = format!("superseded by {new_fingerprint}");
    let sig = CertRevocationBuilder::new()
        .set_reason_for_revocation(ReasonForRevocation::KeySuperseded, message.as_bytes())
        .context("setting the reason")?
        .build(&mut old.primary, &old.cert, None)
        .with_context(|| format!("{}: signing its revocation", old.label))?;
    let public = old.cert.clone().strip_secret_key_material();
    Ok(public
        .insert_packets(sig)
        .context("adding the revocation")?
        .0)
}
