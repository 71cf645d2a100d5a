//! `keyrotate run` end to end with GnuPG as the judge: old keys made with gpg (one in a
//! GnuPG home, one exported to a file), a rotation, then a fresh GnuPG home imports
//! the outputs and checks the certifications, the revocations and an old signature.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use common::http::{self, Server};
use common::{Gpg, files_in, keyrotate, text};
use testbed::servers::{Host, Server as _, SmtpSink};

const OLD1_PASS: &str = "old one's passphrase";
const OLD2_PASS: &str = "old two's passphrase";
const NEW_PASS: &str = "the new passphrase";
const NEW_UIDS: [&str; 2] = ["Alice Example <alice@example.org>", "alice@example.com"];

/// Two old keys made with gpg: `old1` stays in the GnuPG home, `old2` is exported to a
/// secret key file. A document is signed with old1 before the rotation.
struct Before {
    home: Gpg,
    dir: tempfile::TempDir,
    old1: String,
    old2: String,
    old2_file: PathBuf,
    old_public: PathBuf,
    doc: PathBuf,
    doc_sig: PathBuf,
}

impl Before {
    fn new() -> Before {
        let home = Gpg::new();
        let dir = tempfile::tempdir().unwrap();
        let old1 = home.generate("Alice (2019) <alice@example.org>", OLD1_PASS);
        let old2 = home.generate("Alice at work <alice@example.com>", OLD2_PASS);
        let old2_file = dir.path().join("old2.sec.asc");
        let out = home.ok(
            Some(OLD2_PASS),
            &["--armor", "--export-secret-keys", &format!("{old2}!")],
        );
        std::fs::write(&old2_file, out).unwrap();
        let old_public = dir.path().join("old.pub.asc");
        let out = home.ok(None, &["--armor", "--export", &old1, &old2]);
        std::fs::write(&old_public, out).unwrap();
        std::fs::write(dir.path().join("old2.pass"), format!("{OLD2_PASS}\n")).unwrap();
        std::fs::write(dir.path().join("new.pass"), format!("{NEW_PASS}\n")).unwrap();
        let doc = dir.path().join("contract.txt");
        std::fs::write(&doc, "signed before the rotation\n").unwrap();
        let doc_sig = dir.path().join("contract.txt.sig");
        home.ok(
            Some(OLD1_PASS),
            &[
                "--local-user",
                &old1,
                "--output",
                doc_sig.to_str().unwrap(),
                "--detach-sign",
                doc.to_str().unwrap(),
            ],
        );
        Before {
            home,
            dir,
            old1,
            old2,
            old2_file,
            old_public,
            doc,
            doc_sig,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The rotation description, with `extra` appended.
    fn config(&self, extra: &str) -> PathBuf {
        let text = format!(
            r#"output_dir = "{out}"

[[old_key]]
gnupg_home = "{home}"
fingerprint = "{old1}"
passphrase_env = "KR_TEST_OLD1"

[[old_key]]
file = "{old2_file}"
passphrase_file = "{old2_pass}"

[new_key]
user_ids = ["{uid0}", "{uid1}"]
subkeys = ["sign", "encrypt", "auth"]
expiry = "1y"
passphrase_file = "{new_pass}"

{extra}
"#,
            out = self.path("out").display(),
            home = self.home.home().display(),
            old1 = self.old1,
            old2_file = self.old2_file.display(),
            old2_pass = self.path("old2.pass").display(),
            uid0 = NEW_UIDS[0],
            uid1 = NEW_UIDS[1],
            new_pass = self.path("new.pass").display(),
        );
        let p = self.path("rotation.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn keyrotate(&self, config: &Path, args: &[&str]) -> std::process::Command {
        let mut c = keyrotate(config, args);
        c.env("KR_TEST_OLD1", OLD1_PASS);
        c
    }
}

/// The fingerprint of the key in `file`, as gpg reads it.
fn fingerprint_of(gpg: &Gpg, file: &Path) -> String {
    gpg.ok(
        None,
        &["--with-colons", "--show-keys", file.to_str().unwrap()],
    )
    .lines()
    .find(|l| l.starts_with("fpr:"))
    .and_then(|l| l.split(':').nth(9))
    .unwrap()
    .to_owned()
}

#[test]
fn gnupg_judges_the_rotation() {
    let before = Before::new();
    let config = before.config("");
    let out = before.keyrotate(&config, &["run"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for secret in [OLD1_PASS, OLD2_PASS, NEW_PASS] {
        assert!(
            !text(&out).contains(secret),
            "a passphrase was printed:\n{}",
            text(&out)
        );
    }
    let dir = before.path("out");
    let new_fpr = fingerprint_of(&before.home, &dir.join("new-public.asc"));

    // Secret files are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for name in ["new-secret.asc", "new-revocation.asc"] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    // A correspondent's GnuPG knows the old public keys, then imports what we publish.
    let judge = Gpg::new();
    judge.import(&[&before.old_public]);
    let revoked: Vec<PathBuf> = files_in(&dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("-revoked.asc")
        })
        .collect();
    assert_eq!(revoked.len(), 2, "{:?}", files_in(&dir));
    let new_public = dir.join("new-public.asc");
    let mut imports: Vec<&Path> = vec![&new_public];
    imports.extend(revoked.iter().map(PathBuf::as_path));
    judge.import(&imports);

    // Every user ID of the new key carries a good certification by each old key.
    let records = judge.colons("--check-sigs", &new_fpr);
    let mut uid = None;
    let mut certified: Vec<(String, String)> = Vec::new();
    for r in &records {
        match r[0].as_str() {
            "uid" => uid = Some(r[9].clone()),
            "sig" if r[1] == "!" => certified.push((uid.clone().unwrap_or_default(), r[4].clone())),
            _ => {}
        }
    }
    let uids: Vec<String> = records
        .iter()
        .filter(|r| r[0] == "uid")
        .map(|r| r[9].clone())
        .collect();
    assert_eq!(uids, NEW_UIDS.map(str::to_owned));
    for u in &uids {
        for old in [&before.old1, &before.old2] {
            let keyid = &old[old.len() - 16..];
            assert!(
                certified.iter().any(|(cu, k)| cu == u && k == keyid),
                "{u} lacks a good certification by {old}: {records:?}"
            );
        }
    }
    // The new key is v4 with the three subkeys.
    let subs: Vec<String> = records
        .iter()
        .filter(|r| r[0] == "sub")
        .map(|r| r[11].clone())
        .collect();
    assert_eq!(subs.len(), 3, "{records:?}");
    for cap in ["s", "e", "a"] {
        assert!(
            subs.iter().any(|c| c.contains(cap)),
            "no {cap} subkey: {subs:?}"
        );
    }

    // The old keys are revoked, the reason "key superseded" (01) naming the new key.
    for old in [&before.old1, &before.old2] {
        let records = judge.colons("--check-sigs", old);
        assert_eq!(
            records.iter().find(|r| r[0] == "pub").unwrap()[1],
            "r",
            "{records:?}"
        );
        let rev = records
            .iter()
            .find(|r| r[0] == "rev" && r[1] == "!")
            .unwrap_or_else(|| panic!("no good revocation on {old}: {records:?}"));
        assert_eq!(rev[10], "20x,01", "{rev:?}");
        assert!(
            rev[20].contains(&format!("superseded by {new_fpr}")),
            "{rev:?}"
        );
    }

    // A signature the old key made before the rotation still verifies.
    let verify = judge.run(
        None,
        &[
            "--status-fd",
            "1",
            "--verify",
            before.doc_sig.to_str().unwrap(),
            before.doc.to_str().unwrap(),
        ],
    );
    let status = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{}\n{}",
        status,
        String::from_utf8_lossy(&verify.stderr)
    );
    // REVKEYSIG is GnuPG's "good signature, made by a key now revoked", and VALIDSIG
    // the signature's own check; a bad one would be BADSIG and a non-zero exit.
    let keyid = &before.old1[before.old1.len() - 16..];
    assert!(
        status.contains(&format!("[GNUPG:] REVKEYSIG {keyid}")),
        "{status}"
    );
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {}", before.old1)),
        "{status}"
    );

    // The new secret key opens with the new passphrase and signs.
    let owner = Gpg::new();
    owner.ok(
        None,
        &["--import", dir.join("new-secret.asc").to_str().unwrap()],
    );
    let msg = before.path("hello.txt");
    std::fs::write(&msg, "hello").unwrap();
    // A wrong passphrase first: gpg-agent caches the right one once used.
    let wrong = owner.run(
        Some("not it"),
        &[
            "--local-user",
            &new_fpr,
            "--output",
            "-",
            "--detach-sign",
            msg.to_str().unwrap(),
        ],
    );
    assert!(!wrong.status.success(), "a wrong passphrase signed");
    owner.ok(
        Some(NEW_PASS),
        &[
            "--local-user",
            &new_fpr,
            "--detach-sign",
            msg.to_str().unwrap(),
        ],
    );

    // The emergency revocation certificate revokes the new key.
    owner.import(&[&dir.join("new-revocation.asc")]);
    let records = owner.colons("--list-keys", &new_fpr);
    assert_eq!(
        records.iter().find(|r| r[0] == "pub").unwrap()[1],
        "r",
        "{records:?}"
    );

    // A rerun has nothing left to do and keeps the key.
    let again = before.keyrotate(&config, &["run"]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(fingerprint_of(&before.home, &new_public), new_fpr);
    let status = before.keyrotate(&config, &["status"]).output().unwrap();
    let s = String::from_utf8_lossy(&status.stdout);
    assert!(s.contains(&format!("new key: {new_fpr}")), "{s}");
    for step in ["generate", "certify", "revoke", "export"] {
        assert!(
            s.lines().any(|l| l.starts_with(step) && l.contains("done")),
            "{step}: {s}"
        );
    }
}

/// Runs `keyrotate run` and expects it to fail with `want` in its message, exit `code`,
/// and no output directory.
fn refused(before: &Before, config: &Path, code: i32, want: &[&str]) {
    let out = before.keyrotate(config, &["run"]).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    for w in want {
        assert!(t.contains(w), "missing {w:?}:\n{t}");
    }
    assert!(
        files_in(&before.path("out")).is_empty(),
        "wrote {:?}",
        files_in(&before.path("out"))
    );
}

#[test]
fn bad_inputs_are_refused_before_anything_is_written() {
    let before = Before::new();
    let config = before.config("");

    std::fs::write(before.path("old2.pass"), "wrong\n").unwrap();
    refused(
        &before,
        &config,
        1,
        &["old_key[1]", &before.old2, "passphrase does not unlock"],
    );
    std::fs::write(before.path("old2.pass"), format!("{OLD2_PASS}\n")).unwrap();

    // A key from the GnuPG home with the wrong passphrase: gpg itself refuses the export.
    let out = keyrotate(&config, &["run"])
        .env("KR_TEST_OLD1", "nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("old_key[0]") && text(&out).contains("gpg could not export"),
        "{}",
        text(&out)
    );
    assert!(files_in(&before.path("out")).is_empty());

    let keyfile = before.old2_file.clone();
    let saved = std::fs::read(&keyfile).unwrap();
    std::fs::remove_file(&keyfile).unwrap();
    refused(
        &before,
        &config,
        1,
        &["old_key[1]", "old2.sec.asc", "No such file"],
    );
    std::fs::write(&keyfile, b"not a key at all").unwrap();
    refused(&before, &config, 1, &["old_key[1]", "old2.sec.asc"]);
    let public = before.home.ok(None, &["--armor", "--export", &before.old2]);
    std::fs::write(&keyfile, public).unwrap();
    refused(&before, &config, 1, &["old_key[1]", "only the public key"]);
    std::fs::write(&keyfile, saved).unwrap();

    let no_address = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"alice@example.com\"", "\"Alice at work\"");
    std::fs::write(&config, no_address).unwrap();
    refused(
        &before,
        &config,
        64,
        &["new_key.user_ids[1]", "holds no e-mail address"],
    );
}

const HANG: u8 = 0;
const FAIL: u8 = 1;
const ACCEPT: u8 = 2;

/// The journal as `keyrotate status --json` prints it.
fn journal(before: &Before, config: &Path) -> serde_json::Value {
    let out = before
        .keyrotate(config, &["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_killed_run_and_failed_targets_resume_without_a_second_key() {
    let before = Before::new();
    let mode = Arc::new(AtomicU8::new(HANG));
    let keyserver_mode = mode.clone();
    let hkp = Server::start_maybe(move |_| match keyserver_mode.load(Ordering::SeqCst) {
        HANG => None,
        FAIL => Some(http::text(500, "try again later")),
        _ => Some(http::text(200, "key added")),
    });
    let sink = SmtpSink::start(Host::Loopback).unwrap();
    let www = before.path("www");
    let config = before.config(&format!(
        r#"[publish]
hkp = ["{hkp}"]
timeout_secs = 120

[publish.wkd]
dir = "{www}"
domain = "example.org"

[notice]
from = "alice@example.org"
recipients = ["bob@example.net", "carol@example.com"]
subject = "New key"

[notice.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
"#,
        hkp = hkp.url(),
        www = www.display(),
        port = sink.addr().port(),
    ));
    let hkp_id = format!("hkp {}", hkp.url());
    let out_dir = before.path("out");

    // The plan checks everything, lists every step as to do, and writes nothing.
    let plan = before.keyrotate(&config, &["plan"]).output().unwrap();
    let p = text(&plan);
    assert!(plan.status.success(), "{p}");
    for want in [
        "[todo] generate",
        "[todo] certify",
        "[todo] revoke",
        "[todo] export",
        &format!("[todo] publish: {hkp_id}"),
        "[todo] bob@example.net",
        "[todo] carol@example.com",
        &format!("({}): secret key unlocked", before.old2),
    ] {
        assert!(p.contains(want), "missing {want:?}:\n{p}");
    }
    assert!(
        files_in(&out_dir).is_empty(),
        "plan wrote {:?}",
        files_in(&out_dir)
    );

    // Run 1 hangs at the keyserver and is killed there.
    let mut child = before
        .keyrotate(&config, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while hkp.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "run 1 never reached the keyserver"
        );
        assert!(child.try_wait().unwrap().is_none(), "run 1 ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let new_fpr = fingerprint_of(&before.home, &out_dir.join("new-public.asc"));
    let j = journal(&before, &config);
    assert_eq!(j["new_fingerprint"], new_fpr.as_str());
    assert!(
        j["publish"].get(&hkp_id).is_none(),
        "a killed attempt left no outcome: {j}"
    );

    // Run 2: the keyserver fails; the WKD and both notices go out; exit 75.
    mode.store(FAIL, Ordering::SeqCst);
    let out = before.keyrotate(&config, &["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("not published: {hkp_id}")),
        "{}",
        text(&out)
    );
    let mails = sink.wait_for_messages(2, Duration::from_secs(20)).unwrap();
    let mut to: Vec<String> = mails
        .iter()
        .flat_map(|m| {
            m.lines()
                .filter_map(|l| l.strip_prefix("To: "))
                .map(str::to_owned)
        })
        .collect();
    to.sort();
    assert_eq!(to, ["bob@example.net", "carol@example.com"]);
    for m in &mails {
        assert!(
            m.contains("multipart/signed") && m.contains(&new_fpr),
            "{m}"
        );
    }
    let hash = keyrotate::publish::wkd_hash("alice");
    let wkd_file = www.join(format!(".well-known/openpgpkey/example.org/hu/{hash}"));
    let wkd_written = std::fs::metadata(&wkd_file).unwrap().modified().unwrap();
    let j = journal(&before, &config);
    assert_eq!(j["publish"][&hkp_id]["done"], false, "{j}");
    assert!(
        j["publish"][&hkp_id]["last"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{j}"
    );

    // Run 3: the keyserver takes the keys; nothing else is repeated.
    mode.store(ACCEPT, Ordering::SeqCst);
    let requests_before = hkp.requests().len();
    let out = before.keyrotate(&config, &["run"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let uploads = &hkp.requests()[requests_before..];
    assert_eq!(uploads.len(), 3, "the new key and two revoked old keys");
    assert!(
        uploads
            .iter()
            .all(|r| r.method == "POST" && r.path == "/pks/add")
    );
    assert_eq!(sink.messages().unwrap().len(), 2, "a notice went out twice");
    assert_eq!(
        std::fs::metadata(&wkd_file).unwrap().modified().unwrap(),
        wkd_written
    );
    assert_eq!(
        fingerprint_of(&before.home, &out_dir.join("new-public.asc")),
        new_fpr
    );
    let j = journal(&before, &config);
    assert_eq!(j["publish"][&hkp_id]["done"], true, "{j}");
    assert_eq!(j["publish"][&hkp_id]["attempts"], 2, "{j}");
    let wkd_id = format!("wkd {} (example.org)", www.display());
    assert_eq!(j["publish"][&wkd_id]["attempts"], 1, "{j}");
    for r in ["bob@example.net", "carol@example.com"] {
        assert_eq!(j["notice"][r]["attempts"], 1, "{j}");
    }

    // Run 4 has nothing left to do.
    let requests_before = hkp.requests().len();
    let out = before.keyrotate(&config, &["run"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(hkp.requests().len(), requests_before);
    assert_eq!(sink.messages().unwrap().len(), 2);
    let plan = before.keyrotate(&config, &["plan"]).output().unwrap();
    assert!(!text(&plan).contains("[todo]"), "{}", text(&plan));
}
