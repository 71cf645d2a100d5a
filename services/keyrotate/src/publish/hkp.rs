//! HKP keyservers (SKS, Hockeypuck): `POST <base>/pks/add` with the form field `keytext`,
//! one key per request so a rejected key is named in the error and the others are not
//! held hostage by it in the server's parser.

use std::time::Duration;

use anyhow::Context;
use sequoia_openpgp::Cert;

use super::http::{Client, Payload, endpoint};

pub(super) fn publish(
    base: &str,
    new: &Cert,
    revoked: &[Cert],
    timeout: Duration,
) -> anyhow::Result<String> {
    let url = endpoint(base, "/pks/add")?;
    let client = Client::new(timeout);
    // The new key first: should a later upload fail, the certifications of the new key
    // are out already, and the retry only repeats harmless merges.
    let keys = std::iter::once(("new", new)).chain(revoked.iter().map(|c| ("revoked", c)));
    let mut sent = Vec::new();
    for (role, cert) in keys {
        let keytext = super::armored(cert)?;
        client
            .post(&url, Payload::Form(&[("keytext", &keytext)]))
            .with_context(|| format!("uploading the {role} key {}", cert.fingerprint()))?;
        sent.push(format!("{role} {}", cert.fingerprint()));
    }
    Ok(format!("uploaded to {url}: {}", sent.join(", ")))
}
