//! The Web Key Directory (draft-koch-openpgp-webkey-service), written as static files
//! under a web root for the web server to serve:
//!
//! * advanced layout, served by `openpgpkey.<domain>`:
//!   `.well-known/openpgpkey/<domain>/hu/<hash>` and `.well-known/openpgpkey/<domain>/policy`
//! * direct layout, served by `<domain>` itself:
//!   `.well-known/openpgpkey/hu/<hash>` and `.well-known/openpgpkey/policy`
//!
//! `<hash>` is [`wkd_hash`] of the address's local part. The file is the binary key with
//! only the user IDs of the domain: a WKD answers for one domain and has no business
//! revealing the owner's addresses elsewhere.

use std::path::{Path, PathBuf};

use anyhow::Context;
use appliance::state::{MODE_PUBLIC, write_atomic};
use sequoia_openpgp::Cert;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::types::HashAlgorithm;

use crate::config::{Wkd, WkdLayout, address_of};

/// The WKD name of a local part: SHA-1 of the ASCII-lowercased local part, z-base-32
/// encoded (32 characters). `Joe.Doe` is `iy9q119eutrkn8s1mk4r39qejnbu3n5q`.
pub fn wkd_hash(local_part: &str) -> String {
    // SHA-1 only maps a local part to a fixed-length file name, as the draft mandates;
    // no security rests on it. The key in the file speaks for itself, and every name
    // under a domain's directory is chosen by that domain's operator anyway.
    let mut ctx = HashAlgorithm::SHA1
        .context()
        .expect("Sequoia always builds in SHA-1 (its collision-detecting variant)")
        .for_digest();
    // ASCII only, as GnuPG does: non-ASCII letters are left as they are.
    ctx.update(local_part.to_ascii_lowercase().as_bytes());
    let digest = ctx.into_digest().expect("SHA-1 digests cannot fail");
    zbase32::encode(digest)
}

/// One key file: an address of the domain and its hash.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    address: String,
    hash: String,
}

/// The local part of `user_id`'s address, when the address is in `domain` (any case).
fn local_part_in<'a>(user_id: &'a [u8], domain: &str) -> Option<&'a str> {
    let address = address_of(std::str::from_utf8(user_id).ok()?)?;
    let (local, d) = address.rsplit_once('@')?;
    d.eq_ignore_ascii_case(domain).then_some(local)
}

/// The key files to write, in user ID order; two user IDs with the same address (in
/// any case) share one file.
fn entries(cert: &Cert, domain: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for ua in cert.userids() {
        let value = ua.userid().value();
        let Some(local) = local_part_in(value, domain) else {
            continue;
        };
        let hash = wkd_hash(local);
        if out.iter().all(|e| e.hash != hash) {
            let address = address_of(std::str::from_utf8(value).unwrap_or_default());
            out.push(Entry {
                address: address.unwrap_or_default().to_owned(),
                hash,
            });
        }
    }
    out
}

/// The `openpgpkey` directories of `layout`, each to get `hu/` and `policy`.
fn bases(root: &Path, domain: &str, layout: WkdLayout) -> Vec<PathBuf> {
    let top = root.join(".well-known").join("openpgpkey");
    let advanced = top.join(domain);
    match layout {
        WkdLayout::Advanced => vec![advanced],
        WkdLayout::Direct => vec![top],
        WkdLayout::Both => vec![advanced, top],
    }
}

pub(super) fn publish(wkd: &Wkd, new: &Cert) -> anyhow::Result<String> {
    let domain = wkd.domain.to_ascii_lowercase();
    let entries = entries(new, &domain);
    anyhow::ensure!(
        !entries.is_empty(),
        "no user ID of key {} has an address in {domain}",
        new.fingerprint()
    );
    let key = new
        .clone()
        .retain_userids(|ua| local_part_in(ua.userid().value(), &domain).is_some())
        .export_to_vec()
        .with_context(|| format!("encoding key {} for {domain}", new.fingerprint()))?;

    for base in bases(&wkd.dir, &domain, wkd.layout) {
        let hu = base.join("hu");
        std::fs::create_dir_all(&hu)
            .with_context(|| format!("creating the WKD directory {}", hu.display()))?;
        for e in &entries {
            write_atomic(&hu.join(&e.hash), &key, MODE_PUBLIC)
                .with_context(|| format!("writing the WKD key of {}", e.address))?;
        }
        // The policy file marks the directory as a WKD; its presence is what counts. An
        // existing one is left alone: it may hold the operator's settings.
        let policy = base.join("policy");
        let exists = policy
            .try_exists()
            .with_context(|| format!("checking for the WKD policy {}", policy.display()))?;
        if !exists {
            write_atomic(&policy, b"", MODE_PUBLIC)
                .context("creating the empty WKD policy file")?;
        }
    }

    let layout = match wkd.layout {
        WkdLayout::Advanced => "advanced layout",
        WkdLayout::Direct => "direct layout",
        WkdLayout::Both => "advanced and direct layouts",
    };
    let addresses: Vec<&str> = entries.iter().map(|e| e.address.as_str()).collect();
    Ok(format!(
        "wrote key {} for {} under {} ({layout})",
        new.fingerprint(),
        addresses.join(", "),
        wkd.dir.join(".well-known/openpgpkey").display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequoia_openpgp::cert::CertBuilder;

    #[test]
    fn hash_matches_the_draft_and_folds_ascii_case() {
        // The example of draft-koch-openpgp-webkey-service, section 3.1.
        assert_eq!(wkd_hash("Joe.Doe"), "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
        assert_eq!(wkd_hash("joe.doe"), wkd_hash("JOE.DOE"));
        assert_eq!(wkd_hash("alice").len(), 32);
        assert_ne!(wkd_hash("alice"), wkd_hash("alicf"));
    }

    #[test]
    fn entries_of_the_domain_only_deduplicated() {
        let (cert, _) = CertBuilder::new()
            .add_userid("Alice <alice@Example.ORG>")
            .add_userid("alice@example.com")
            .add_userid("ALICE@example.org")
            .add_userid("Bob <bob@example.org>")
            .add_userid("no address")
            .add_userid("eve@sub.example.org")
            .generate()
            .unwrap();
        let got = entries(&cert, "example.org");
        // Cert sorts its user IDs, so compare sorted.
        let mut hashes: Vec<&str> = got.iter().map(|e| e.hash.as_str()).collect();
        hashes.sort();
        let mut want = [wkd_hash("alice"), wkd_hash("bob")];
        want.sort();
        assert_eq!(hashes, want, "{got:?}");
        let mut addresses: Vec<String> =
            got.iter().map(|e| e.address.to_ascii_lowercase()).collect();
        addresses.sort();
        assert_eq!(addresses, ["alice@example.org", "bob@example.org"]);
        assert!(entries(&cert, "example.net").is_empty());
    }

    #[test]
    fn bases_per_layout() {
        let r = Path::new("/w");
        let adv = Path::new("/w/.well-known/openpgpkey/example.org");
        let dir = Path::new("/w/.well-known/openpgpkey");
        assert_eq!(bases(r, "example.org", WkdLayout::Advanced), [adv]);
        assert_eq!(bases(r, "example.org", WkdLayout::Direct), [dir]);
        assert_eq!(bases(r, "example.org", WkdLayout::Both), [adv, dir]);
    }
}
