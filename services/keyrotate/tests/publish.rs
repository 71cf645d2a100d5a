//! Publication against real peers on loopback: a fake HKP keyserver and a fake VKS
//! (keys.openpgp.org API) that record what they receive, and a Web Key Directory written
//! to a temporary directory and checked with GnuPG's own tools.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::http::{Reply, Server, json, text};
use keyrotate::config::{Wkd, WkdLayout};
use keyrotate::publish::{Target, wkd_hash};
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::RevocationStatus;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A new key as the rotation makes it: secret parts included, which must never leave.
fn new_key(user_ids: &[&str]) -> Cert {
    let mut builder = CertBuilder::new()
        .add_signing_subkey()
        .add_transport_encryption_subkey();
    for uid in user_ids {
        builder = builder.add_userid(*uid);
    }
    let (cert, _) = builder.generate().unwrap();
    assert!(cert.is_tsk());
    cert
}

/// An old key carrying its revocation, secret parts included.
fn revoked_key(user_id: &str) -> Cert {
    let (cert, revocation) = CertBuilder::general_purpose(Some(user_id))
        .generate()
        .unwrap();
    let cert = cert.insert_packets(revocation).unwrap().0;
    assert!(is_revoked(&cert));
    cert
}

fn user_ids(cert: &Cert) -> BTreeSet<String> {
    cert.userids()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .collect()
}

fn is_revoked(cert: &Cert) -> bool {
    matches!(
        cert.revocation_status(&StandardPolicy::new(), None),
        RevocationStatus::Revoked(_)
    )
}

/// The public key in an armored upload, checked to hold no secret key material.
fn public_from_armor(armored: &str) -> Cert {
    assert!(
        armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{armored}"
    );
    assert!(!armored.contains("PRIVATE KEY"), "{armored}");
    let cert = Cert::from_bytes(armored.as_bytes()).expect("upload parses as a key");
    assert!(
        !cert.is_tsk(),
        "secret key material sent for {}",
        cert.fingerprint()
    );
    cert
}

/// The value of the only field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> String {
    let body = std::str::from_utf8(body).expect("a form body is ASCII");
    let (n, value) = body.split_once('=').expect("a name=value field");
    assert_eq!(n, name, "{body}");
    assert!(!value.contains('&'), "one field only: {body}");
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn err_text(result: anyhow::Result<String>) -> String {
    format!("{:#}", result.expect_err("publishing should fail"))
}

// ---------------------------------------------------------------------------------------
// HKP

#[test]
fn hkp_uploads_each_key_public_only_new_first() {
    let server = Server::start(|_| text(200, "<html><body>1 key added</body></html>"));
    let new = new_key(&["Alice <alice@example.org>", "alice@example.com"]);
    let old = revoked_key("Alice Old <alice@example.org>");
    // A base with a path prefix and a trailing slash.
    let target = Target::Hkp(format!("{}/keys/", server.url()));

    let summary = target
        .publish(&new, std::slice::from_ref(&old), TIMEOUT)
        .unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one request per key: {requests:?}");
    let mut sent = Vec::new();
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/keys/pks/add")
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        sent.push(public_from_armor(&form_field(&r.body, "keytext")));
    }
    assert_eq!(sent[0].fingerprint(), new.fingerprint());
    assert_eq!(sent[1].fingerprint(), old.fingerprint());
    assert_eq!(
        user_ids(&sent[0]),
        BTreeSet::from(["Alice <alice@example.org>", "alice@example.com"].map(String::from))
    );
    assert_eq!(sent[0].keys().subkeys().count(), 2);
    assert!(!is_revoked(&sent[0]));
    assert!(is_revoked(&sent[1]), "the revocation was not sent");
    for fpr in [new.fingerprint(), old.fingerprint()] {
        assert!(summary.contains(&fpr.to_string()), "{summary}");
    }
    assert!(summary.contains(&server.url()), "{summary}");
}

#[test]
fn hkp_error_names_url_status_and_body() {
    let server = Server::start(|_| {
        text(
            500,
            "<html><head><title>Error</title></head>\n<body><h1>Database locked</h1></body></html>",
        )
    });
    let new = new_key(&["alice@example.org"]);
    let old = revoked_key("alice@example.org");
    let target = Target::Hkp(server.url());

    let err = err_text(target.publish(&new, &[old], TIMEOUT));

    assert!(err.contains(&format!("{}/pks/add", server.url())), "{err}");
    assert!(err.contains("500"), "{err}");
    assert!(err.contains("Database locked"), "{err}");
    assert!(err.contains(&new.fingerprint().to_string()), "{err}");
    // It stops at the first failure.
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn hkp_connection_refused_is_clear() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let target = Target::Hkp(url.clone());

    let err = err_text(target.publish(&new_key(&["alice@example.org"]), &[], TIMEOUT));

    assert!(err.contains(&format!("{url}/pks/add")), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains(&format!("hkp {url}")), "{err}");
}

#[test]
fn hkp_server_that_never_answers_times_out() {
    let server = Server::silent();
    let target = Target::Hkp(server.url());

    let err = err_text(target.publish(
        &new_key(&["alice@example.org"]),
        &[],
        Duration::from_secs(1),
    ));

    assert!(err.contains(&format!("{}/pks/add", server.url())), "{err}");
    assert!(err.contains("no answer within 1s"), "{err}");
    assert_eq!(server.requests().len(), 1, "the request did arrive");
}

// ---------------------------------------------------------------------------------------
// VKS

/// A keys.openpgp.org stand-in: the new key's addresses have the given statuses, old
/// keys' addresses are "revoked"; tokens name the key.
fn vks_server(new: &Cert, statuses: serde_json::Value) -> Server {
    let new_fpr = new.fingerprint().to_hex();
    Server::start(move |r| match r.path.as_str() {
        "/vks/v1/upload" => {
            let key = public_from_armor(r.json()["keytext"].as_str().unwrap());
            let fpr = key.fingerprint().to_hex();
            let status = if fpr == new_fpr {
                statuses.clone()
            } else {
                serde_json::json!({ "old@example.org": "revoked" })
            };
            json(
                serde_json::json!({ "key_fpr": fpr, "token": format!("token-{fpr}"), "status": status }),
            )
        }
        "/vks/v1/request-verify" => {
            let token = r.json()["token"].as_str().unwrap().to_owned();
            let pending: serde_json::Map<_, _> = r.json()["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a.as_str().unwrap().to_owned(), "pending".into()))
                .collect();
            json(serde_json::json!({ "key_fpr": new_fpr, "token": token, "status": pending }))
        }
        _ => text(404, "no such endpoint"),
    })
}

#[test]
fn vks_uploads_and_requests_verification_of_unpublished_addresses_only() {
    let new = new_key(&[
        "Alice <alice@example.org>",
        "alice@example.com",
        "alice@example.net",
    ]);
    let old = revoked_key("old@example.org");
    let server = vks_server(
        &new,
        serde_json::json!({
            "alice@example.org": "unpublished",
            "alice@example.com": "published",
            "alice@example.net": "pending",
        }),
    );
    let target = Target::Vks(format!("{}/", server.url()));

    let summary = target
        .publish(&new, std::slice::from_ref(&old), TIMEOUT)
        .unwrap();

    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/vks/v1/upload", "/vks/v1/request-verify", "/vks/v1/upload"]
    );
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let first = public_from_armor(requests[0].json()["keytext"].as_str().unwrap());
    assert_eq!(first.fingerprint(), new.fingerprint());
    let verify = requests[1].json();
    assert_eq!(
        verify["token"],
        format!("token-{}", new.fingerprint().to_hex())
    );
    assert_eq!(
        verify["addresses"],
        serde_json::json!(["alice@example.org"])
    );
    let last = public_from_armor(requests[2].json()["keytext"].as_str().unwrap());
    assert_eq!(last.fingerprint(), old.fingerprint());
    assert!(is_revoked(&last));

    assert!(
        summary.contains("verification mail requested for alice@example.org"),
        "{summary}"
    );
    assert!(
        !summary.contains("requested for alice@example.com"),
        "{summary}"
    );
}

#[test]
fn vks_without_unpublished_addresses_asks_for_no_verification() {
    let new = new_key(&["alice@example.org"]);
    let server = vks_server(
        &new,
        serde_json::json!({ "alice@example.org": "published" }),
    );
    let target = Target::Vks(server.url());

    let summary = target.publish(&new, &[], TIMEOUT).unwrap();

    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/vks/v1/upload"]);
    assert!(!summary.contains("requested"), "{summary}");
    assert!(
        summary.contains("already published: alice@example.org"),
        "{summary}"
    );
}

#[test]
fn vks_garbage_reply_is_a_clear_error() {
    let server = Server::start(|_| text(200, "<html>Maintenance, back soon</html>"));
    let target = Target::Vks(server.url());

    let err = err_text(target.publish(&new_key(&["alice@example.org"]), &[], TIMEOUT));

    assert!(
        err.contains(&format!("{}/vks/v1/upload", server.url())),
        "{err}"
    );
    assert!(err.contains("JSON"), "{err}");
    assert!(err.contains("Maintenance, back soon"), "{err}");
}

#[test]
fn vks_error_reply_is_quoted() {
    let server = Server::start(|_| Reply {
        status: 400,
        content_type: "application/json",
        body: r#"{"error":"Upload rejected: too many user IDs"}"#.to_owned(),
    });
    let target = Target::Vks(server.url());

    let err = err_text(target.publish(&new_key(&["alice@example.org"]), &[], TIMEOUT));

    assert!(err.contains("400"), "{err}");
    assert!(err.contains("Upload rejected"), "{err}");
}

// ---------------------------------------------------------------------------------------
// WKD

/// `gpg-wks-client` lives in GnuPG's libexec directory, outside PATH on Debian.
fn wks_client() -> PathBuf {
    if let Ok(p) = testbed::require::tool("gpg-wks-client", "gpg-wks-client") {
        return p;
    }
    let gpgconf = testbed::require::tool("gpgconf", "gpgconf").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(gpgconf)
        .args(["--list-dirs", "libexecdir"])
        .output()
        .unwrap();
    let p = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("gpg-wks-client");
    assert!(
        p.is_file(),
        "{} is missing: install the Debian package gpg-wks-client",
        p.display()
    );
    p
}

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn wkd_files_are_where_gnupg_looks_and_import() {
    let wks = wks_client();
    let gpg = testbed::require::tool("gpg", "gpg").unwrap_or_else(|e| panic!("{e}"));
    let root = tempfile::tempdir().unwrap();
    let new = new_key(&[
        "Alice <alice@example.org>",
        "alice@example.com",
        "Bob Ops <Bob.Ops@Example.ORG>",
    ]);
    let target = Target::Wkd(Wkd {
        dir: root.path().to_owned(),
        domain: "Example.org".into(),
        layout: WkdLayout::Both,
    });

    let summary = target
        .publish(&new, &[revoked_key("old@example.org")], TIMEOUT)
        .unwrap();
    assert!(summary.contains("alice@example.org"), "{summary}");

    let top = root.path().join(".well-known/openpgpkey");
    let advanced = top.join("example.org/hu");
    let direct = top.join("hu");
    let mut hashes = BTreeSet::new();
    for address in ["alice@example.org", "Bob.Ops@Example.ORG"] {
        // "<hash> <address>", the address lowercased by GnuPG.
        let line = run(&wks, &["--print-wkd-hash", address]);
        let (hash, echoed) = line
            .strip_suffix('\n')
            .and_then(|l| l.split_once(' '))
            .unwrap_or_else(|| panic!("unexpected output {line:?}"));
        assert_eq!(echoed, address.to_lowercase(), "{line:?}");
        let local = address.split('@').next().unwrap();
        assert_eq!(wkd_hash(local), hash, "{address}");
        hashes.insert(hash.to_owned());

        let url = run(&wks, &["--print-wkd-url", address]);
        let path = url
            .trim_end()
            .strip_prefix("https://openpgpkey.example.org/")
            .and_then(|p| p.split_once('?'))
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("unexpected URL {url:?}"));
        assert_eq!(
            path,
            format!(".well-known/openpgpkey/example.org/hu/{hash}")
        );
        assert!(root.path().join(path).is_file(), "{path} missing");
    }
    // Exactly the domain's addresses: alice@example.com has no file.
    assert_eq!(names_in(&advanced), hashes);
    assert_eq!(names_in(&direct), hashes);
    for policy in [top.join("example.org/policy"), top.join("policy")] {
        assert_eq!(std::fs::read(&policy).unwrap(), b"", "{}", policy.display());
    }

    let file = advanced.join(wkd_hash("alice"));
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        std::fs::read(direct.join(wkd_hash("alice"))).unwrap(),
        bytes
    );
    // Binary, not armored: an OpenPGP packet header has the high bit set.
    assert!(bytes[0] & 0x80 != 0, "not a binary key");
    let key = Cert::from_bytes(&bytes).unwrap();
    assert_eq!(key.fingerprint(), new.fingerprint());
    assert!(!key.is_tsk());
    assert_eq!(
        user_ids(&key),
        BTreeSet::from([
            "Alice <alice@example.org>".to_owned(),
            "Bob Ops <Bob.Ops@Example.ORG>".to_owned()
        ])
    );
    assert_eq!(key.keys().subkeys().count(), 2);

    // GnuPG takes the file as it would from a WKD lookup.
    let home = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let home_arg = home.path().to_str().unwrap();
    run(
        &gpg,
        &[
            "--batch",
            "--homedir",
            home_arg,
            "--import",
            file.to_str().unwrap(),
        ],
    );
    let listing = run(
        &gpg,
        &[
            "--batch",
            "--homedir",
            home_arg,
            "--with-colons",
            "--list-keys",
        ],
    );
    assert!(listing.contains(&new.fingerprint().to_hex()), "{listing}");
    assert!(listing.contains("alice@example.org"), "{listing}");
    assert!(!listing.contains("alice@example.com"), "{listing}");
}

#[test]
fn wkd_advanced_only_keeps_an_existing_policy() {
    let root = tempfile::tempdir().unwrap();
    let policy = root
        .path()
        .join(".well-known/openpgpkey/example.org/policy");
    std::fs::create_dir_all(policy.parent().unwrap()).unwrap();
    std::fs::write(&policy, "protocol-version: 14\n").unwrap();
    let target = Target::Wkd(Wkd {
        dir: root.path().to_owned(),
        domain: "example.org".into(),
        layout: WkdLayout::Advanced,
    });

    target
        .publish(&new_key(&["alice@example.org"]), &[], TIMEOUT)
        .unwrap();

    assert_eq!(
        std::fs::read_to_string(&policy).unwrap(),
        "protocol-version: 14\n"
    );
    let top = root.path().join(".well-known/openpgpkey");
    assert!(top.join("example.org/hu").join(wkd_hash("alice")).is_file());
    assert_eq!(names_in(&top), BTreeSet::from(["example.org".to_owned()]));
}

#[test]
fn wkd_without_an_address_in_the_domain_fails() {
    let root = tempfile::tempdir().unwrap();
    let target = Target::Wkd(Wkd {
        dir: root.path().to_owned(),
        domain: "example.net".into(),
        layout: WkdLayout::Both,
    });

    let err = err_text(target.publish(&new_key(&["alice@example.org"]), &[], TIMEOUT));

    assert!(err.contains("example.net"), "{err}");
    assert!(!root.path().join(".well-known").exists());
}
