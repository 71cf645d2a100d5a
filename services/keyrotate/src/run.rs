//! `keyrotate run`: the steps in order, each skipped when the journal (or the output
//! directory) shows it done, then publication and notice, each target and recipient
//! retried on the next run until it succeeds.
//!
//! Everything that can fail on bad input (the config, the old keys' files and
//! passphrases, the new key's passphrase) is checked before the first write. The new
//! secret key file is the commit point of generation: once it exists, reruns adopt it,
//! so a kill at any moment never leads to a second new key.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, bail};
use sequoia_openpgp::Cert;
use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::types::RevocationStatus;
use tracing::{info, warn};

use crate::config::Config;
use crate::journal::{Journal, Step};
use crate::keys::{self, OldKey, POLICY};
use crate::output::Output;
use crate::{notice, publish, rotate, secrets};

/// What a run left undone: targets and recipients that failed this time.
#[derive(Debug, Default)]
pub struct Report {
    pub failed_targets: Vec<String>,
    pub failed_recipients: Vec<String>,
}

impl Report {
    pub fn complete(&self) -> bool {
        self.failed_targets.is_empty() && self.failed_recipients.is_empty()
    }
}

/// Holds an exclusive lock on the output directory while a run works in it: two runs
/// at once would both generate a key.
struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

fn lock(dir: &Path) -> anyhow::Result<Lock> {
    let path = dir.join(".lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map(Lock)
        .map_err(|(_, e)| {
            anyhow::anyhow!(
                "{} is locked ({e}): another keyrotate run works in {}",
                path.display(),
                dir.display()
            )
        })
}

/// The rotation's inputs, all read and checked.
pub struct Inputs {
    pub config: Config,
    pub old: Vec<OldKey>,
    pub new_passphrase: Option<Password>,
}

impl Inputs {
    /// Reads the old keys and the passphrases: every input error surfaces here, before
    /// anything is written.
    pub fn read(config: Config) -> anyhow::Result<Inputs> {
        let old = keys::load_old(&config.old_keys)?;
        for (i, a) in old.iter().enumerate() {
            if old[..i]
                .iter()
                .any(|b| b.cert.fingerprint() == a.cert.fingerprint())
            {
                bail!("{} is listed twice", a.label);
            }
        }
        let new_passphrase = secrets::read(&config.new_key.passphrase(), "passphrase")
            .context("new_key: reading its passphrase")?;
        if let Some(notice) = &config.notice {
            secrets::read(&notice.smtp.password(), "password").context("notice.smtp")?;
        }
        Ok(Inputs {
            config,
            old,
            new_passphrase,
        })
    }
}

/// The user IDs of `cert`, as text.
pub fn user_ids(cert: &Cert) -> Vec<String> {
    cert.userids()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .collect()
}

pub fn run(mut inputs: Inputs) -> anyhow::Result<Report> {
    let config = inputs.config.clone();
    let out = Output {
        dir: &config.output_dir,
    };
    out.create()?;
    let _lock = lock(out.dir)?;
    let mut journal = Journal::load(out.dir)?;

    let tsk = generate(&inputs, &out, &mut journal)?;
    let tsk = certify(tsk, &mut inputs.old, &out, &mut journal)?;
    let fingerprint = tsk.fingerprint().to_hex();
    let revoked = revoke(&mut inputs.old, &fingerprint, &out, &mut journal)?;
    let public = tsk.clone().strip_secret_key_material();
    if !journal.is_done(Step::Export) {
        journal.start(Step::Export);
        out.write_public(&public)?;
        journal.finish(Step::Export, "new-public.asc and new-public.pgp written");
        journal.save(out.dir)?;
    }

    let mut report = Report::default();
    for target in publish::Target::all(&config.publish) {
        let id = target.id();
        if Journal::is_delivered(&journal.publish, &id) {
            info!(target = %id, "already published");
            continue;
        }
        let result = target.publish(&public, &revoked, config.publish.timeout());
        match &result {
            Ok(summary) => info!(target = %id, %summary, "published"),
            Err(e) => {
                warn!(target = %id, error = %format!("{e:#}"), "publication failed: retried on the next run");
                report.failed_targets.push(id.clone());
            }
        }
        Journal::record(&mut journal.publish, &id, &result);
        journal.save(out.dir)?;
    }

    if let Some(n) = &config.notice {
        let own: Vec<String> = config
            .new_key
            .user_ids
            .iter()
            .filter_map(|u| crate::config::address_of(u).map(str::to_owned))
            .collect();
        let pending: Vec<String> = notice::recipients(n, &own)?
            .into_iter()
            .filter(|r| !Journal::is_delivered(&journal.notice, r))
            .collect();
        if !pending.is_empty() {
            let mut signers = vec![
                keys::signing_keypair(&tsk, inputs.new_passphrase.as_ref())
                    .context("unlocking the new key's signing key")?,
            ];
            if n.sign_with_old {
                signers.extend(inputs.old.iter().map(|o| o.signer.clone()));
            }
            let old_certs: Vec<Cert> = inputs.old.iter().map(|o| o.cert.clone()).collect();
            let mailer = notice::Mailer::new(&n.smtp)?;
            for to in pending {
                let result = notice::compose(
                    n,
                    &to,
                    &public,
                    &old_certs,
                    &mut signers,
                    chrono::Utc::now(),
                )
                .and_then(|message| mailer.send(&n.from, &to, &message))
                .map(|()| format!("accepted by {}", n.smtp.host));
                match &result {
                    Ok(_) => info!(recipient = %to, "notice sent"),
                    Err(e) => {
                        warn!(recipient = %to, error = %format!("{e:#}"), "notice not sent: retried on the next run");
                        report.failed_recipients.push(to.clone());
                    }
                }
                Journal::record(&mut journal.notice, &to, &result);
                journal.save(out.dir)?;
            }
        }
    }
    Ok(report)
}

/// The new key: adopted from the output directory if a run got that far, else
/// generated with its revocation certificate, which is written first so the secret
/// key file, written last, is the one commit point.
fn generate(inputs: &Inputs, out: &Output<'_>, journal: &mut Journal) -> anyhow::Result<Cert> {
    let want = &inputs.config.new_key.user_ids;
    if let Some(tsk) = out.read_secret()? {
        let have = user_ids(&tsk);
        if &have != want {
            bail!(
                "{} holds the new key {} with the user IDs {have:?}, but the config lists {want:?}: \
                 it belongs to another rotation; use another output_dir",
                out.dir.display(),
                tsk.fingerprint()
            );
        }
        if let Some(recorded) = &journal.new_fingerprint
            && *recorded != tsk.fingerprint().to_hex()
        {
            bail!(
                "the journal names the new key {recorded}, but {} holds {}",
                out.dir.display(),
                tsk.fingerprint()
            );
        }
        if !journal.is_done(Step::Generate) {
            info!(fingerprint = %tsk.fingerprint(), "adopting the new key a previous run generated");
            journal.new_fingerprint = Some(tsk.fingerprint().to_hex());
            journal.finish(
                Step::Generate,
                format!("new key {} (adopted)", tsk.fingerprint()),
            );
            journal.save(out.dir)?;
        }
        return Ok(tsk);
    }
    if journal.new_fingerprint.is_some() {
        bail!(
            "the journal names a new key but {} is gone: restore it from a backup, or start over in another output_dir",
            out.path(crate::output::NEW_SECRET).display()
        );
    }
    journal.start(Step::Generate);
    journal.save(out.dir)?;
    let (tsk, revocation) =
        rotate::generate(&inputs.config.new_key, inputs.new_passphrase.clone())?;
    out.write_revocation(&tsk.fingerprint(), &revocation)?;
    out.write_secret(&tsk)?;
    info!(fingerprint = %tsk.fingerprint(), user_ids = ?want, "generated the new key");
    journal.new_fingerprint = Some(tsk.fingerprint().to_hex());
    journal.finish(Step::Generate, format!("new key {}", tsk.fingerprint()));
    journal.save(out.dir)?;
    Ok(tsk)
}

/// Certifications by every old key of every user ID, skipping those already there (a
/// rerun after a kill between writing the key and the journal).
fn certify(
    tsk: Cert,
    old: &mut [OldKey],
    out: &Output<'_>,
    journal: &mut Journal,
) -> anyhow::Result<Cert> {
    if journal.is_done(Step::Certify) {
        return Ok(tsk);
    }
    journal.start(Step::Certify);
    let missing: Vec<bool> = old.iter().map(|o| !certified_by(&tsk, &o.cert)).collect();
    let count = missing.iter().filter(|m| **m).count();
    let todo = old
        .iter_mut()
        .zip(&missing)
        .filter(|(_, m)| **m)
        .map(|(o, _)| o);
    let tsk = rotate::certify(tsk, todo)?;
    out.write_secret(&tsk)?;
    journal.finish(
        Step::Certify,
        format!("user IDs certified by {count} old key(s)"),
    );
    journal.save(out.dir)?;
    Ok(tsk)
}

/// Whether every user ID of `new` carries a certification issued by `old`.
fn certified_by(new: &Cert, old: &Cert) -> bool {
    let issuer = sequoia_openpgp::KeyHandle::from(old.fingerprint());
    new.userids().all(|u| {
        u.certifications()
            .any(|s| s.get_issuers().iter().any(|h| h.aliases(&issuer)))
    })
}

/// Each old key revoked as superseded, written out; kept from a previous run when
/// already there.
fn revoke(
    old: &mut [OldKey],
    new_fingerprint: &str,
    out: &Output<'_>,
    journal: &mut Journal,
) -> anyhow::Result<Vec<Cert>> {
    let done = journal.is_done(Step::Revoke);
    if !done {
        journal.start(Step::Revoke);
    }
    let mut revoked = Vec::new();
    for o in old.iter_mut() {
        let fpr = o.cert.fingerprint();
        let existing = out.read_revoked(&fpr)?.filter(|c| {
            matches!(
                c.revocation_status(&POLICY, None),
                RevocationStatus::Revoked(_)
            )
        });
        let cert = match existing {
            Some(c) => c,
            None => {
                let c = rotate::revoke(o, new_fingerprint)?;
                out.write_revoked(&c)?;
                info!(old = %fpr, "revoked as superseded");
                c
            }
        };
        revoked.push(cert);
    }
    if !done {
        journal.finish(
            Step::Revoke,
            format!("{} old key(s) revoked as superseded", revoked.len()),
        );
        journal.save(out.dir)?;
    }
    Ok(revoked)
}
