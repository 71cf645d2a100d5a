//! Verifying keyservers, the keys.openpgp.org API (<https://keys.openpgp.org/about/api>):
//!
//! 1. `POST /vks/v1/upload` `{"keytext"}` answers `{"key_fpr", "token", "status"}`, the
//!    status of each address of the key: `unpublished`, `pending` (a mail is out),
//!    `published` or `revoked`.
//! 2. `POST /vks/v1/request-verify` `{"token", "addresses"}` mails each address a link;
//!    an address is published once its owner follows it.
//!
//! Without verified addresses the server still publishes the key's non-identity parts
//! (keys, revocations) by fingerprint, so the revoked old keys are only uploaded.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use sequoia_openpgp::Cert;
use serde::{Deserialize, Serialize};

use super::http::{Client, Payload, endpoint};

#[derive(Serialize)]
struct Upload<'a> {
    keytext: &'a str,
}

#[derive(Serialize)]
struct RequestVerify<'a> {
    token: &'a str,
    addresses: &'a [&'a str],
}

/// The reply to both requests.
#[derive(Debug, Deserialize)]
struct Reply {
    key_fpr: String,
    token: String,
    #[serde(default)]
    status: BTreeMap<String, Status>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Unpublished,
    Pending,
    Published,
    Revoked,
    /// A status newer than this client: reported, never acted on.
    #[serde(other)]
    Other,
}

pub(super) fn publish(
    base: &str,
    new: &Cert,
    revoked: &[Cert],
    timeout: Duration,
) -> anyhow::Result<String> {
    let upload_url = endpoint(base, "/vks/v1/upload")?;
    let verify_url = endpoint(base, "/vks/v1/request-verify")?;
    let client = Client::new(timeout);

    let reply = upload(&client, &upload_url, new).context("uploading the new key")?;
    let unpublished: Vec<&str> = addresses(&reply, Status::Unpublished);
    if !unpublished.is_empty() {
        let body = serde_json::to_string(&RequestVerify {
            token: &reply.token,
            addresses: &unpublished,
        })?;
        let text = client
            .post(&verify_url, Payload::Json(body))
            .with_context(|| format!("requesting verification of {}", unpublished.join(", ")))?;
        parse(&verify_url, &text)?;
    }
    for cert in revoked {
        upload(&client, &upload_url, cert)
            .with_context(|| format!("uploading the revoked key {}", cert.fingerprint()))?;
    }

    let mut summary = format!("uploaded new key {} to {base}", new.fingerprint());
    let mut say = |what: &str, list: Vec<&str>| {
        if !list.is_empty() {
            summary.push_str(&format!("; {what} {}", list.join(", ")));
        }
    };
    say("verification mail requested for", unpublished);
    say(
        "verification already pending for",
        addresses(&reply, Status::Pending),
    );
    say("already published:", addresses(&reply, Status::Published));
    if !revoked.is_empty() {
        summary.push_str(&format!("; {} revoked old key(s) uploaded", revoked.len()));
    }
    Ok(summary)
}

/// Uploads `cert` and checks the server answered about that very key.
fn upload(client: &Client, url: &str, cert: &Cert) -> anyhow::Result<Reply> {
    let keytext = super::armored(cert)?;
    let body = serde_json::to_string(&Upload { keytext: &keytext })?;
    let reply = parse(url, &client.post(url, Payload::Json(body))?)?;
    let fpr = cert.fingerprint().to_hex();
    anyhow::ensure!(
        reply.key_fpr.eq_ignore_ascii_case(&fpr),
        "{url} answered about key {:?}, but {fpr} was uploaded",
        reply.key_fpr
    );
    Ok(reply)
}

fn parse(url: &str, text: &str) -> anyhow::Result<Reply> {
    serde_json::from_str(text).with_context(|| {
        format!(
            "{url} answered with something other than the expected JSON ({{\"key_fpr\", \"token\", \"status\"}}): {}",
            super::http::excerpt(text.as_bytes())
        )
    })
}

fn addresses(reply: &Reply, wanted: Status) -> Vec<&str> {
    reply
        .status
        .iter()
        .filter(|&(_, s)| *s == wanted)
        .map(|(a, _)| a.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_parses_known_and_unknown_statuses() {
        let r = parse(
            "u",
            r#"{"key_fpr":"AB","token":"t","status":{"a@x.org":"unpublished","b@x.org":"published","c@x.org":"pending","d@x.org":"revoked","e@x.org":"frozen"}}"#,
        )
        .unwrap();
        assert_eq!(r.token, "t");
        assert_eq!(addresses(&r, Status::Unpublished), ["a@x.org"]);
        assert_eq!(addresses(&r, Status::Published), ["b@x.org"]);
        assert_eq!(addresses(&r, Status::Pending), ["c@x.org"]);
        assert_eq!(addresses(&r, Status::Revoked), ["d@x.org"]);
        assert_eq!(addresses(&r, Status::Other), ["e@x.org"]);
        // A key without addresses has no status.
        let r = parse("u", r#"{"key_fpr":"AB","token":"t"}"#).unwrap();
        assert!(r.status.is_empty());
    }

    #[test]
    fn request_body_has_the_api_field_names() {
        let body = serde_json::to_string(&RequestVerify {
            token: "t",
            addresses: &["a@x.org"],
        })
        .unwrap();
        assert_eq!(body, r#"{"token":"t","addresses":["a@x.org"]}"#);
    }

    #[test]
    fn malformed_reply_names_the_url() {
        let err = parse("https://k/vks/v1/upload", "<html>busy</html>").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("https://k/vks/v1/upload"), "{msg}");
        assert!(msg.contains("busy"), "{msg}");
    }
}
