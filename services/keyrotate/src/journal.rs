//! The journal of a rotation, `<output_dir>/journal.json`: which steps are done, the
//! new key's fingerprint, and the outcome of every publication target and notice
//! recipient. Written atomically after every change, so a kill at any point leaves the
//! journal as it was before or after that change; a rerun continues from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use appliance::state::{self, MODE_PRIVATE};
use serde::{Deserialize, Serialize};

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The new key and its emergency revocation certificate exist in the output dir.
    Generate,
    /// Every user ID of the new key carries a certification by every old key.
    Certify,
    /// Every old key has its revocation (superseded) written out.
    Revoke,
    /// The new public key is written out, armored and binary.
    Export,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Generate, Step::Certify, Step::Revoke, Step::Export];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Generate => "generate",
            Step::Certify => "certify",
            Step::Revoke => "revoke",
            Step::Export => "export",
        }
    }
}

/// When a step started and finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub started: String,
    pub finished: Option<String>,
    /// What the step did, in a line.
    pub result: Option<String>,
}

/// The outcome of one publication target or notice recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub done: bool,
    pub attempts: u32,
    /// The summary of the success, or the last error.
    pub last: String,
    pub at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub new_fingerprint: Option<String>,
    #[serde(default)]
    pub steps: BTreeMap<Step, StepRecord>,
    /// By target id (`publish::Target::id`).
    #[serde(default)]
    pub publish: BTreeMap<String, Outcome>,
    /// By recipient address.
    #[serde(default)]
    pub notice: BTreeMap<String, Outcome>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn path(output_dir: &Path) -> PathBuf {
    output_dir.join("journal.json")
}

impl Journal {
    /// The journal in `output_dir`, or an empty one if there is none yet.
    pub fn load(output_dir: &Path) -> anyhow::Result<Journal> {
        let p = path(output_dir);
        Ok(state::read_json(&p)
            .with_context(|| format!("reading the journal {}", p.display()))?
            .unwrap_or_default())
    }

    pub fn save(&self, output_dir: &Path) -> anyhow::Result<()> {
        let p = path(output_dir);
        state::write_json(&p, self, MODE_PRIVATE)
            .with_context(|| format!("writing the journal {}", p.display()))
    }

    pub fn is_done(&self, step: Step) -> bool {
        self.steps.get(&step).is_some_and(|r| r.finished.is_some())
    }

    pub fn start(&mut self, step: Step) {
        self.steps.insert(
            step,
            StepRecord {
                started: now(),
                finished: None,
                result: None,
            },
        );
    }

    pub fn finish(&mut self, step: Step, result: impl Into<String>) {
        let record = self.steps.entry(step).or_insert_with(|| StepRecord {
            started: now(),
            finished: None,
            result: None,
        });
        record.finished = Some(now());
        record.result = Some(result.into());
    }

    /// Records an attempt at `key` in `map` (publish or notice).
    pub fn record(map: &mut BTreeMap<String, Outcome>, key: &str, result: &anyhow::Result<String>) {
        let attempts = map.get(key).map_or(0, |o| o.attempts) + 1;
        let (done, last) = match result {
            Ok(summary) => (true, summary.clone()),
            Err(e) => (false, format!("{e:#}")),
        };
        map.insert(
            key.to_owned(),
            Outcome {
                done,
                attempts,
                last,
                at: now(),
            },
        );
    }

    pub fn is_delivered(map: &BTreeMap<String, Outcome>, key: &str) -> bool {
        map.get(key).is_some_and(|o| o.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap(), Journal::default());
        let mut j = Journal::default();
        j.start(Step::Generate);
        assert!(!j.is_done(Step::Generate));
        j.finish(Step::Generate, "new key ABC");
        assert!(j.is_done(Step::Generate));
        Journal::record(&mut j.publish, "hkp x", &Err(anyhow::anyhow!("refused")));
        Journal::record(&mut j.publish, "hkp x", &Ok("sent".into()));
        let o = &j.publish["hkp x"];
        assert!(o.done && o.attempts == 2 && o.last == "sent", "{o:?}");
        j.save(dir.path()).unwrap();
        assert_eq!(Journal::load(dir.path()).unwrap(), j);
        std::fs::write(path(dir.path()), "{not json").unwrap();
        let e = format!("{:#}", Journal::load(dir.path()).unwrap_err());
        assert!(e.contains("journal.json") && e.contains("corrupt"), "{e}");
    }
}
