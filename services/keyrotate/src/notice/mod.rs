//! The notice mail: "my key has changed", sent to every correspondent, signed so that
//! they can check it with the key they already trust.
//!
//! * [`recipients`]: who gets it (the configured list, plus the Postfix log's).
//! * [`compose`]: the RFC 3156 PGP/MIME message, signed by the new key and the old ones.
//! * [`Mailer`]: hands it to the configured SMTP server, one recipient per mail.
//!
//! The message (RFC 3156, section 5):
//!
//! ```text
//! multipart/signed; micalg=pgp-sha512; protocol="application/pgp-signature"
//! ├── multipart/mixed                      <- signed, byte for byte, in CRLF form
//! │   ├── text/plain; charset=utf-8        (quoted-printable unless 7-bit safe)
//! │   └── application/pgp-keys             0x<FPR>.asc, the new public key
//! └── application/pgp-signature            one armored block, a signature per signer
//! ```
//!
//! One mail per recipient rather than one with every address in `To`: correspondents
//! need not learn of each other, and one refused address does not stop the rest.
//!
//! Every signature uses SHA-512, whatever the key: `micalg` names a single hash for the
//! whole multipart/signed, so all signers must agree on it.

mod maillog;
mod mime;
mod smtp;

use std::time::SystemTime;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sequoia_openpgp::armor;
use sequoia_openpgp::cert::Cert;
use sequoia_openpgp::crypto::KeyPair;
use sequoia_openpgp::packet::Packet;
use sequoia_openpgp::packet::signature::SignatureBuilder;
use sequoia_openpgp::serialize::Serialize;
use sequoia_openpgp::types::{HashAlgorithm, SignatureType};

use crate::config::{Notice, is_address};

pub use smtp::{Mailer, SendError};

/// The hash every signer uses, and its `micalg` name (RFC 3156, section 5).
const HASH: HashAlgorithm = HashAlgorithm::SHA512;
const MICALG: &str = "pgp-sha512";

/// The configured recipients plus, with `recipients_from_log`, every address Postfix
/// delivered to; lowercased, deduplicated, sorted; the new key's own addresses (`own`)
/// left out.
pub fn recipients(notice: &Notice, own: &[String]) -> anyhow::Result<Vec<String>> {
    let mut all: Vec<String> = notice.recipients.iter().map(|r| r.to_lowercase()).collect();
    if let Some(log) = &notice.recipients_from_log {
        all.extend(maillog::delivered(log).context("collecting recipients from the mail log")?);
    }
    let own: Vec<String> = own.iter().map(|a| a.to_lowercase()).collect();
    all.retain(|a| !own.contains(a));
    all.sort();
    all.dedup();
    Ok(all)
}

/// The RFC 3156 PGP/MIME notice for `to`: signed by every key in `signers` (the new key's
/// signing key first, then the old keys' when `sign_with_old`), with the new public key
/// attached. `date` is the `Date` header and the signatures' creation time; it must not
/// predate any signer's key, or verifiers reject the signature.
pub fn compose(
    notice: &Notice,
    to: &str,
    new: &Cert,
    old: &[Cert],
    signers: &mut [KeyPair],
    date: DateTime<Utc>,
) -> anyhow::Result<Vec<u8>> {
    // Addresses go into headers verbatim: only plain ones, so nothing can inject a line.
    if !is_address(to) {
        bail!("cannot address the notice to {to:?}: not a plain local@domain address");
    }
    let Some((_, domain)) = notice
        .from
        .rsplit_once('@')
        .filter(|_| is_address(&notice.from))
    else {
        bail!(
            "the notice sender {:?} is not a plain local@domain address",
            notice.from
        );
    };
    if notice.subject.contains(['\r', '\n']) {
        bail!("the notice subject must be one line");
    }
    let Some(first) = signers.first() else {
        bail!("the notice needs at least the new key to sign it");
    };
    if new
        .keys()
        .key_handle(first.public().fingerprint())
        .next()
        .is_none()
    {
        bail!(
            "the first signer {} is not a key of the new certificate {}",
            first.public().fingerprint(),
            new.fingerprint()
        );
    }

    let fpr = new.fingerprint().to_hex();
    let mixed = format!("=_keyrotate_mixed_{}", mime::random_hex(16)?);
    let outer = format!("=_keyrotate_signed_{}", mime::random_hex(16)?);

    let text = match &notice.body {
        Some(body) => mime::crlf_lines(body),
        None => mime::crlf_lines(&default_body(new, old, signers.len() > 1)),
    };
    let (encoding, text) = if mime::is_7bit_safe(&text) {
        ("7bit", text)
    } else {
        ("quoted-printable", mime::quoted_printable(&text))
    };

    // The first part, exactly as signed: its headers through the closing delimiter of
    // the inner multipart, without the CRLF that belongs to the outer delimiter.
    let mut signed = String::new();
    signed.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{mixed}\"\r\n\r\n"
    ));
    signed.push_str(&format!("--{mixed}\r\n"));
    signed.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    signed.push_str(&format!("Content-Transfer-Encoding: {encoding}\r\n"));
    signed.push_str("Content-Disposition: inline\r\n\r\n");
    signed.push_str(&text);
    signed.push_str(&format!("--{mixed}\r\n"));
    let name = format!("0x{fpr}.asc");
    signed.push_str(&format!(
        "Content-Type: application/pgp-keys; name=\"{name}\"\r\n"
    ));
    signed.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{name}\"\r\n"
    ));
    signed.push_str("Content-Description: OpenPGP public key\r\n");
    signed.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
    signed.push_str(&public_key_block(new)?);
    signed.push_str(&format!("--{mixed}--"));

    let signature = sign(signed.as_bytes(), signers, date)?;

    let mut mail = String::with_capacity(signed.len() + signature.len() + 1024);
    mail.push_str(&format!("From: {}\r\n", notice.from));
    mail.push_str(&format!("To: {to}\r\n"));
    mail.push_str(&mime::unstructured("Subject", &notice.subject));
    mail.push_str(&format!("Date: {}\r\n", date.to_rfc2822()));
    mail.push_str(&format!(
        "Message-ID: <{}.{}.keyrotate@{domain}>\r\n",
        date.timestamp(),
        mime::random_hex(12)?
    ));
    mail.push_str("MIME-Version: 1.0\r\n");
    mail.push_str(&format!(
        "Content-Type: multipart/signed; micalg={MICALG};\r\n\tprotocol=\"application/pgp-signature\";\r\n\tboundary=\"{outer}\"\r\n\r\n"
    ));
    mail.push_str("This is an OpenPGP/MIME signed message (RFC 4880 and 3156).\r\n");
    mail.push_str(&format!("--{outer}\r\n"));
    mail.push_str(&signed);
    mail.push_str(&format!("\r\n--{outer}\r\n"));
    mail.push_str("Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n");
    mail.push_str("Content-Description: OpenPGP digital signature\r\n");
    mail.push_str("Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n");
    mail.push_str(&signature);
    mail.push_str(&format!("--{outer}--\r\n"));
    Ok(mail.into_bytes())
}

/// The public key, armored with CRLF line endings: exported (no secrets, no
/// non-exportable signatures), with only the fingerprint as a comment, since user IDs in
/// armor comments could be non-ASCII and this part is declared 7bit.
fn public_key_block(new: &Cert) -> anyhow::Result<String> {
    let fpr = new.fingerprint().to_spaced_hex();
    let mut w = armor::Writer::with_headers(Vec::new(), armor::Kind::PublicKey, [("Comment", fpr)])
        .context("armoring the new public key")?;
    new.export(&mut w)
        .with_context(|| format!("exporting the new public key {}", new.fingerprint()))?;
    let bytes = w.finalize().context("armoring the new public key")?;
    let text = String::from_utf8(bytes).context("armor is ASCII")?;
    Ok(mime::crlf_lines(&text))
}

/// One armored block (CRLF lines) with a detached binary signature over `data` by each
/// signer, all with [`HASH`].
fn sign(data: &[u8], signers: &mut [KeyPair], date: DateTime<Utc>) -> anyhow::Result<String> {
    let when = SystemTime::from(date);
    let mut w = armor::Writer::new(Vec::new(), armor::Kind::Signature)
        .context("armoring the notice signature")?;
    for signer in signers.iter_mut() {
        let key = signer.public().fingerprint();
        let created = signer.public().creation_time();
        if when < created {
            bail!(
                "the notice date {date} predates the signing key {key} (created {})",
                DateTime::<Utc>::from(created)
            );
        }
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .set_hash_algo(HASH)
            .set_signature_creation_time(when)
            .and_then(|b| b.sign_message(signer, data))
            .with_context(|| format!("signing the notice with {key}"))?;
        Packet::from(sig)
            .serialize(&mut w)
            .with_context(|| format!("writing the notice signature by {key}"))?;
    }
    let bytes = w.finalize().context("armoring the notice signature")?;
    let text = String::from_utf8(bytes).context("armor is ASCII")?;
    Ok(mime::crlf_lines(&text))
}

/// The text when the config gives none: what changed, both fingerprints, and why the
/// correspondent can trust the new key.
fn default_body(new: &Cert, old: &[Cert], signed_by_old: bool) -> String {
    let (keys, them) = if old.len() == 1 {
        ("key", "it")
    } else {
        ("keys", "them")
    };
    let mut s = String::from("Hello,\n\nmy OpenPGP key has changed.\n\n");
    s.push_str(&format!("My old {keys}:\n\n"));
    for cert in old {
        s.push_str(&format!("  {}\n", cert.fingerprint().to_spaced_hex()));
    }
    s.push_str(&format!(
        "\n{} revoked as superseded; please stop using {them}.\n\n",
        if old.len() == 1 { "It is" } else { "They are" }
    ));
    s.push_str("My new key:\n\n");
    s.push_str(&format!("  {}\n\n", new.fingerprint().to_spaced_hex()));
    let uids: Vec<String> = new
        .userids()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .collect();
    if !uids.is_empty() {
        s.push_str("for\n\n");
        for uid in &uids {
            s.push_str(&format!("  {uid}\n"));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "The new key is attached to this mail. Each of its user IDs is\ncertified by my old {keys}, so if you trusted the old {keys}, you\ncan check the new one with {them}.\n"
    ));
    if signed_by_old {
        s.push_str(&format!(
            "This mail is signed by the new key and by the old {keys}, so you\ncan check it with the key you already have.\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Security, Smtp};
    use sequoia_openpgp::cert::CertBuilder;

    fn notice() -> Notice {
        Notice {
            from: "alice@example.org".into(),
            recipients: vec![
                "Bob@Example.net".into(),
                "bob@example.net".into(),
                "Alice@example.org".into(),
                "a@x.org".into(),
            ],
            recipients_from_log: None,
            subject: "My OpenPGP key has changed".into(),
            body: None,
            sign_with_old: true,
            smtp: Smtp {
                host: "localhost".into(),
                port: 25,
                security: Security::None,
                username: None,
                password_file: None,
                password_env: None,
                timeout_secs: 5,
            },
        }
    }

    fn cert(uid: &str) -> Cert {
        CertBuilder::general_purpose([uid]).generate().unwrap().0
    }

    #[test]
    fn recipients_are_lowercased_deduplicated_sorted_without_own() {
        let own = ["ALICE@example.org".to_owned()];
        assert_eq!(
            recipients(&notice(), &own).unwrap(),
            ["a@x.org", "bob@example.net"]
        );
    }

    #[test]
    fn compose_refuses_what_would_break_headers_or_signatures() {
        let new = cert("Alice <alice@example.org>");
        let old = cert("Alice <alice@example.org>");
        let mut new_signer = crate::keys::signing_keypair(&new, None).unwrap();
        let old_signer = crate::keys::signing_keypair(&old, None).unwrap();
        let now = Utc::now();
        let n = notice();
        let e = compose(
            &n,
            "bob@example.net\r\nBcc: eve@example.net",
            &new,
            &[],
            &mut [],
            now,
        );
        assert!(e.unwrap_err().to_string().contains("not a plain"));
        let e = compose(&n, "bob@example.net", &new, &[], &mut [], now).unwrap_err();
        assert!(e.to_string().contains("at least the new key"), "{e}");
        let e = compose(&n, "bob@example.net", &new, &[], &mut [old_signer], now).unwrap_err();
        assert!(
            e.to_string().contains("not a key of the new certificate"),
            "{e}"
        );
        let long_ago = DateTime::<Utc>::from_timestamp(1_000_000_000, 0).unwrap();
        let e = compose(
            &n,
            "bob@example.net",
            &new,
            &[],
            std::slice::from_mut(&mut new_signer),
            long_ago,
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("predates the signing key"));
    }

    #[test]
    fn default_body_names_both_fingerprints() {
        let new = cert("Alice <alice@example.org>");
        let old = [cert("a@example.org"), cert("b@example.org")];
        let body = default_body(&new, &old, true);
        for c in old.iter().chain([&new]) {
            assert!(body.contains(&c.fingerprint().to_spaced_hex()), "{body}");
        }
        assert!(body.contains("revoked as superseded") && body.contains("attached"));
        assert!(
            body.contains("certified by my old keys") && body.contains("signed by the new key")
        );
        assert!(mime::is_7bit_safe(&mime::crlf_lines(&body)), "{body}");
    }
}
