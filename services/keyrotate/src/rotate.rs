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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sequoia_openpgp::policy::StandardPolicy;
    use sequoia_openpgp::types::{PublicKeyAlgorithm, RevocationStatus};

    use super::*;

    fn spec(algorithm: Algorithm, subkeys: Vec<Subkey>) -> NewKey {
        NewKey {
            user_ids: vec![
                "Alice <alice@example.org>".into(),
                "alice@example.com".into(),
            ],
            algorithm,
            expiry: "1y".into(),
            subkeys,
            passphrase_file: None,
            passphrase_env: None,
        }
    }

    fn old_key(uid: &str) -> OldKey {
        let (cert, _) = CertBuilder::general_purpose(Some(uid)).generate().unwrap();
        let keypair = |k: &Cert| {
            k.primary_key()
                .key()
                .clone()
                .parts_into_secret()
                .unwrap()
                .into_keypair()
                .unwrap()
        };
        OldKey {
            label: "old_key[0]".into(),
            primary: keypair(&cert),
            signer: keypair(&cert),
            cert,
        }
    }

    #[test]
    fn rsa_on_request_v4_with_the_asked_subkeys_and_expiry() {
        let (cert, rev) = generate(&spec(Algorithm::Rsa4096, vec![Subkey::Encrypt]), None).unwrap();
        let primary = cert.primary_key().key();
        assert_eq!(primary.version(), 4);
        assert_eq!(primary.pk_algo(), PublicKeyAlgorithm::RSAEncryptSign);
        assert_eq!(primary.mpis().bits(), Some(4096));
        let policy = StandardPolicy::new();
        let valid = cert.with_policy(&policy, None).unwrap();
        let subkeys: Vec<_> = valid.keys().subkeys().collect();
        assert_eq!(subkeys.len(), 1);
        assert!(subkeys[0].for_transport_encryption() && subkeys[0].for_storage_encryption());
        let expires = valid.primary_key().key_validity_period().unwrap();
        assert_eq!(expires, Duration::from_secs(31_557_600));
        assert_eq!(rev.typ(), SignatureType::KeyRevocation);
    }

    #[test]
    fn certifications_and_a_superseded_revocation() {
        let (new, _) = generate(
            &spec(Algorithm::Cv25519, vec![Subkey::Sign, Subkey::Auth]),
            Some("pw".into()),
        )
        .unwrap();
        assert!(new.primary_key().key().has_secret());
        let mut olds = vec![old_key("old1@example.org"), old_key("old2@example.org")];
        let certified = certify(new.clone(), olds.iter_mut()).unwrap();
        for uid in certified.userids() {
            for old in &olds {
                let by_old: Vec<_> = uid
                    .certifications()
                    .filter(|s| {
                        s.issuer_fingerprints()
                            .any(|f| *f == old.cert.fingerprint())
                    })
                    .collect();
                assert_eq!(by_old.len(), 1, "{:?}", uid.userid());
                let sig = by_old[0].clone();
                sig.verify_userid_binding(
                    old.cert.primary_key().key(),
                    certified.primary_key().key(),
                    uid.userid(),
                )
                .unwrap();
            }
        }

        let revoked = revoke(&mut olds[0], &new.fingerprint().to_hex()).unwrap();
        assert!(
            !revoked.is_tsk(),
            "the revoked old key goes out public only"
        );
        let policy = StandardPolicy::new();
        let RevocationStatus::Revoked(sigs) = revoked.revocation_status(&policy, None) else {
            panic!("not revoked");
        };
        let (reason, message) = sigs[0].reason_for_revocation().unwrap();
        assert_eq!(reason, ReasonForRevocation::KeySuperseded);
        assert_eq!(
            message,
            format!("superseded by {}", new.fingerprint().to_hex()).as_bytes()
        );
    }
}
