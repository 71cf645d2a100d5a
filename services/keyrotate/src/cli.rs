//! The command line: `keyrotate plan|run|status`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use appliance::cli::CommonArgs;

use keyrotate::config::Config;
use keyrotate::journal::{Journal, Step};
use keyrotate::output;
use keyrotate::run::{self, Inputs};
use keyrotate::{notice, publish};

/// Default rotation description.
const DEFAULT_CONFIG: &str = "/etc/keyrotate/rotation.toml";
/// Exit code of a run that did everything it could but left targets or recipients to
/// retry (sysexits EX_TEMPFAIL).
const EXIT_INCOMPLETE: u8 = 75;

/// OpenPGP key rotation that the rest of the world can follow: a new key certified by
/// the old ones, the old keys revoked as superseded, publication to keyservers and a
/// Web Key Directory, and a signed notice to correspondents. Resumable: a rerun
/// continues where the last one stopped and never makes a second new key.
#[derive(Debug, clap::Parser)]
#[command(name = "keyrotate", version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check every precondition (old keys readable and unlocked, passphrases, targets)
    /// and print each step the run will take; writes nothing.
    Plan,
    /// Rotate: generate, certify, revoke, export, publish and notify, skipping what the
    /// journal shows done. Exits 75 when targets or recipients failed (rerun to retry).
    Run,
    /// Where the rotation stands, from the journal (needs no passphrase).
    Status {
        /// The journal as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(appliance::config::load::<Config>(path)?)
}

pub fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    let path = args.common.config_or(DEFAULT_CONFIG);
    let config = load(&path)?;
    match args.command {
        Command::Plan => plan(config),
        Command::Run => {
            let report = run::run(Inputs::read(config)?)?;
            if report.complete() {
                println!("rotation complete");
                Ok(ExitCode::SUCCESS)
            } else {
                for t in &report.failed_targets {
                    println!("not published: {t}");
                }
                for r in &report.failed_recipients {
                    println!("notice not sent: {r}");
                }
                println!("incomplete: run again to retry (the journal keeps what is done)");
                Ok(ExitCode::from(EXIT_INCOMPLETE))
            }
        }
        Command::Status { json } => status(&config, json),
    }
}

fn mark(done: bool) -> &'static str {
    if done { "done" } else { "todo" }
}

fn plan(config: Config) -> anyhow::Result<ExitCode> {
    let journal = Journal::load(&config.output_dir)?;
    let inputs = Inputs::read(config)?;
    let c = &inputs.config;
    println!("checked:");
    for o in &inputs.old {
        let valid = o.cert.with_policy(&keyrotate::keys::POLICY, None);
        let expiry = match valid
            .as_ref()
            .ok()
            .and_then(|v| v.primary_key().key_expiration_time())
        {
            Some(t) => format!(
                "expires {}",
                chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%d")
            ),
            None => "no expiry".to_owned(),
        };
        println!(
            "  {}: secret key unlocked, {} {} bits, {expiry}, user IDs {:?}",
            o.label,
            o.cert.primary_key().key().pk_algo(),
            o.cert.primary_key().key().mpis().bits().unwrap_or(0),
            run::user_ids(&o.cert)
        );
    }
    println!(
        "  new key passphrase: {}",
        if inputs.new_passphrase.is_some() {
            "read"
        } else {
            "none (the secret key file is unprotected, mode 0600)"
        }
    );
    println!("steps ({}):", c.output_dir.display());
    let new = journal
        .new_fingerprint
        .as_deref()
        .unwrap_or("not generated yet");
    for step in Step::ALL {
        let what = match step {
            Step::Generate => format!(
                "a {:?} key with user IDs {:?}, subkeys {:?}, expiry {}; write {} and {} (0600) ({new})",
                c.new_key.algorithm,
                c.new_key.user_ids,
                c.new_key.subkeys,
                c.new_key.expiry,
                output::NEW_SECRET,
                output::NEW_REVOCATION
            ),
            Step::Certify => format!(
                "certify every user ID with each of {} old key(s)",
                inputs.old.len()
            ),
            Step::Revoke => {
                "revoke each old key: reason \"key superseded\", naming the new key".to_owned()
            }
            Step::Export => format!(
                "write {} and {}",
                output::NEW_PUBLIC_ARMORED,
                output::NEW_PUBLIC_BINARY
            ),
        };
        println!(
            "  [{}] {}: {what}",
            mark(journal.is_done(step)),
            step.as_str()
        );
    }
    for target in publish::Target::all(&c.publish) {
        let id = target.id();
        println!(
            "  [{}] publish: {id}",
            mark(Journal::is_delivered(&journal.publish, &id))
        );
    }
    if let Some(n) = &c.notice {
        let own: Vec<String> = c
            .new_key
            .user_ids
            .iter()
            .filter_map(|u| keyrotate::config::address_of(u).map(str::to_owned))
            .collect();
        let recipients = notice::recipients(n, &own).context("listing the notice's recipients")?;
        let signers = if n.sign_with_old {
            "the new key and each old key"
        } else {
            "the new key"
        };
        println!(
            "  notice from {} via {}:{}, signed by {signers}, to {} recipient(s):",
            n.from,
            n.smtp.host,
            n.smtp.port,
            recipients.len()
        );
        for r in recipients {
            println!(
                "    [{}] {r}",
                mark(Journal::is_delivered(&journal.notice, &r))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let journal = Journal::load(&config.output_dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&journal)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "new key: {}",
        journal
            .new_fingerprint
            .as_deref()
            .unwrap_or("not generated yet")
    );
    for step in Step::ALL {
        match journal.steps.get(&step) {
            Some(r) => println!(
                "{:<9} {}",
                step.as_str(),
                match (&r.finished, &r.result) {
                    (Some(at), Some(result)) => format!("done {at}: {result}"),
                    _ => format!("started {} and not finished", r.started),
                }
            ),
            None => println!("{:<9} todo", step.as_str()),
        }
    }
    for (what, map) in [("publish", &journal.publish), ("notice", &journal.notice)] {
        for (key, o) in map {
            let state = if o.done { "done" } else { "FAILED" };
            println!(
                "{what} {key}: {state} after {} attempt(s) at {}: {}",
                o.attempts, o.at, o.last
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
