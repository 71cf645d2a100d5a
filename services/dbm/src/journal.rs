//! The migration as a journaled state machine.
//!
//! The journal is one JSON file (`write_json`, atomic and durable): the plan it belongs
//! to, the step list, and per step when it started and finished, how it ended, how many
//! attempts it took, the facts it found for later steps (`data`), and its undo. It is
//! saved before a step runs (so a crash leaves "started, not finished") and after (its
//! outcome). A kill at any point leaves the journal as it was before or after a save.
//!
//! Lifecycle of a step (`Runner::run`):
//!
//! ```text
//! pending --start (saved)--> started --run Ok (saved)--> done
//!                               |  \--run Err (saved)--> failed --next run--> started
//!                               \--crash / kill -9 --> started (interrupted)
//! interrupted or failed, next run: `already_done`? yes --> done (found in place)
//!                                                  no  --> started again (attempts + 1)
//! ```
//!
//! `Runner::abort` walks the started steps backwards calling `undo`; the journal is
//! marked aborted before the first undo (saved), each undo's result is saved, so an
//! interrupted abort continues where it stopped when run again. An aborted journal
//! refuses `run` until it is removed. A step whose effect cannot be reverted
//! (`Undo::Impossible`) stops the abort: reverting the steps before it would contradict
//! it (e.g. unfreezing db0 after db1 has taken writes).
//!
//! Two processes never work on one journal at once: `run` and `abort` hold an exclusive
//! `flock` on `<journal>.lock` (which holds the holder's pid, for the message). The lock
//! is on a separate file because every save replaces the journal's inode.
//!
//! Rejected: one file per step (a crash between files leaves an inconsistent set;
//! one atomic file cannot be half-written); an append-only log (needs replay and
//! compaction, and a torn last line is a case of its own; the whole journal is a few KB).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use appliance::state::{self, MODE_PRIVATE, StateError};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// The journal format this code reads and writes.
pub const FORMAT: u32 = 1;

/// The steps of a migration, in order (names stable: they are in the state file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepId {
    Preflight,
    Seed,
    Prepare,
    Upgrade,
    ReplicateDb1,
    CatchUp,
    Freeze,
    Promote,
    Unfreeze,
    Hook,
    RepointDb2,
    Verify,
}

impl StepId {
    pub const ALL: [StepId; 12] = [
        StepId::Preflight,
        StepId::Seed,
        StepId::Prepare,
        StepId::Upgrade,
        StepId::ReplicateDb1,
        StepId::CatchUp,
        StepId::Freeze,
        StepId::Promote,
        StepId::Unfreeze,
        StepId::Hook,
        StepId::RepointDb2,
        StepId::Verify,
    ];

    /// The name in the state file and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            StepId::Preflight => "preflight",
            StepId::Seed => "seed",
            StepId::Prepare => "prepare",
            StepId::Upgrade => "upgrade",
            StepId::ReplicateDb1 => "replicate_db1",
            StepId::CatchUp => "catch_up",
            StepId::Freeze => "freeze",
            StepId::Promote => "promote",
            StepId::RepointDb2 => "repoint_db2",
            StepId::Unfreeze => "unfreeze",
            StepId::Hook => "hook",
            StepId::Verify => "verify",
        }
    }
}

impl std::str::FromStr for StepId {
    type Err = String;

    fn from_str(s: &str) -> Result<StepId, String> {
        StepId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = StepId::ALL.iter().map(|id| id.as_str()).collect();
                format!("no step {s:?}; the steps are {}", names.join(", "))
            })
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a step's last attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// What it did, in a line, e.g. "seeded 2.1 GB in 31 s".
    Done(String),
    /// The error with its whole chain (`{:#}`).
    Failed(String),
}

/// The result of undoing one step (`Step::undo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    /// Reverted; what was done, e.g. "db0 writable again".
    Undone(String),
    /// Nothing to revert (the step changed nothing, or its effect is already gone); why.
    Nothing(String),
    /// Cannot be reverted; why. Abort stops here and leaves the earlier steps in effect.
    Impossible(String),
}

/// What `abort` did to a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// `Ok`: reverted or nothing to revert (the step is settled); `Err`: the undo
    /// failed (with its chain) or is impossible, and a new abort tries again.
    pub result: Result<Undo, String>,
}

/// One step's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Start of the last attempt.
    #[serde(with = "rfc3339")]
    pub started: DateTime<Utc>,
    /// End of the last attempt; `None` while running, or after a crash in it.
    #[serde(with = "rfc3339_opt", default)]
    pub finished: Option<DateTime<Utc>>,
    /// How the last attempt ended; `None` while running or after a crash.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Attempts started, the current one included.
    pub attempts: u32,
    /// The step's own facts, an object (e.g. the binlog coordinates the seed found, db1's
    /// position at promote); later steps read them with `Journal::get`. Kept across
    /// attempts, so a step may record a fact before acting on it (`StepContext::set`,
    /// `checkpoint`) and find it after a crash.
    #[serde(default = "empty_object")]
    pub data: serde_json::Value,
    /// Set by `abort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<UndoRecord>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Record {
    pub fn is_done(&self) -> bool {
        matches!(self.outcome, Some(Outcome::Done(_)))
    }

    /// Started but not finished: running now, or killed while running.
    pub fn is_interrupted(&self) -> bool {
        self.finished.is_none()
    }

    /// Reverted by an abort, or nothing to revert.
    pub fn is_settled_by_abort(&self) -> bool {
        self.undo.as_ref().is_some_and(|u| u.result.is_ok())
    }
}

/// The plan a journal belongs to: where it came from, and a hash of its canonical
/// content. The hash guards against running one plan's journal with another plan; it
/// is not a defence against tampering (the journal is a private file anyway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanId {
    /// The plan file, as given (for messages).
    pub source: String,
    /// `fnv1a64:<16 hex digits>` from `PlanId::of`, or any stable hash the caller has.
    pub hash: String,
}

impl PlanId {
    /// `content` should be the plan's canonical form (e.g. the parsed plan serialized
    /// again), so that comments and formatting do not count as another plan.
    pub fn of(source: impl Into<String>, content: &[u8]) -> PlanId {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in content {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        PlanId {
            source: source.into(),
            hash: format!("fnv1a64:{h:016x}"),
        }
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.source, self.hash)
    }
}

/// The state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub format: u32,
    pub plan: PlanId,
    #[serde(with = "rfc3339")]
    pub created: DateTime<Utc>,
    /// The plan's steps, in order, as of the last run (a plan may leave some out, e.g.
    /// `upgrade` when the versions match).
    pub order: Vec<StepId>,
    #[serde(default)]
    pub steps: BTreeMap<StepId, Record>,
    /// When `abort` began; `run` refuses an aborted journal.
    #[serde(with = "rfc3339_opt", default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<DateTime<Utc>>,
}

/// Errors of the journal and the runner. Step errors arrive as their `{:#}` text.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "journal {} has format {found}, this dbm reads format {FORMAT}; finish or abort it with the dbm that wrote it, or remove it to start over",
        path.display()
    )]
    Format { path: PathBuf, found: u32 },
    #[error("cannot use the lock file {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another dbm is working on journal {} (lock {} held{}); wait for it, or stop it",
        journal.display(), lock.display(), holder.as_deref().map(|p| format!(" by pid {p}")).unwrap_or_default()
    )]
    Busy {
        journal: PathBuf,
        lock: PathBuf,
        holder: Option<String>,
    },
    #[error(
        "journal {} belongs to another plan: it was started with {journal_plan}, this is {plan}; run it with that plan, or remove the journal to start over",
        journal.display()
    )]
    OtherPlan {
        journal: PathBuf,
        journal_plan: PlanId,
        plan: PlanId,
    },
    #[error(
        "the migration in {} was aborted at {}; dbm will not continue it (`dbm status` shows what was rolled back); remove {} to start the migration over",
        journal.display(), at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), journal.display()
    )]
    Aborted { journal: PathBuf, at: DateTime<Utc> },
    #[error("no migration to abort: there is no journal {}", journal.display())]
    NoJournal { journal: PathBuf },
    #[error("the step list is not in order or has a duplicate: {0}")]
    StepOrder(String),
    #[error("{0} is not a step of this plan (`dbm plan` lists them)")]
    NotInPlan(StepId),
    #[error("step {step} failed: {error}; fix the cause and run again to continue at {step}")]
    StepFailed { step: StepId, error: String },
    #[error("undoing step {step} failed: {error}; run abort again to retry")]
    UndoFailed { step: StepId, error: String },
    #[error(
        "step {step} cannot be undone: {why}; abort stopped there, and it and the steps before it are still in effect"
    )]
    Irreversible { step: StepId, why: String },
    #[error("step {step} has no recorded `{key}` (has it run?)")]
    MissingData { step: StepId, key: String },
    #[error("step {step}'s recorded `{key}` is not what was expected: {source}")]
    BadData {
        step: StepId,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

fn now() -> DateTime<Utc> {
    // Whole milliseconds: what the file holds, so a loaded journal equals the saved one.
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl Journal {
    /// A fresh journal for `plan` with steps `order`.
    pub fn new(plan: PlanId, order: Vec<StepId>) -> Journal {
        Journal {
            format: FORMAT,
            plan,
            created: now(),
            order,
            steps: BTreeMap::new(),
            aborted: None,
        }
    }

    /// The journal at `path`; `Ok(None)` if there is none yet. A corrupt file is an error
    /// naming it (and line and column).
    pub fn load(path: &Path) -> Result<Option<Journal>, JournalError> {
        // Check the format before the shape, so a newer format gets the right message.
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let Some(raw) = state::read_json::<serde_json::Value>(path)? else {
            return Ok(None);
        };
        if let Ok(Head { format }) = Head::deserialize(&raw)
            && format != FORMAT
        {
            return Err(JournalError::Format {
                path: path.to_owned(),
                found: format,
            });
        }
        let journal = serde_json::from_value(raw).map_err(|source| StateError::Decode {
            path: path.to_owned(),
            source,
        })?;
        Ok(Some(journal))
    }

    /// Writes the journal atomically and durably (owner-only: it may name hosts).
    pub fn save(&self, path: &Path) -> Result<(), JournalError> {
        Ok(state::write_json(path, self, MODE_PRIVATE)?)
    }

    pub fn record(&self, step: StepId) -> Option<&Record> {
        self.steps.get(&step)
    }

    pub fn is_done(&self, step: StepId) -> bool {
        self.record(step).is_some_and(Record::is_done)
    }

    /// The first step of `order` not done: where `run` continues. `None`: all done.
    pub fn current(&self) -> Option<StepId> {
        self.order.iter().copied().find(|s| !self.is_done(*s))
    }

    /// A fact a step recorded (`StepContext::set`), e.g.
    /// `journal.get::<Coordinates>(StepId::Seed, "coordinates")`.
    pub fn get<T: DeserializeOwned>(&self, step: StepId, key: &str) -> Result<T, JournalError> {
        let value = self
            .record(step)
            .and_then(|r| r.data.get(key))
            .ok_or_else(|| JournalError::MissingData {
                step,
                key: key.to_owned(),
            })?;
        T::deserialize(value).map_err(|source| JournalError::BadData {
            step,
            key: key.to_owned(),
            source,
        })
    }

    /// Like `get`, `None` when absent.
    pub fn get_opt<T: DeserializeOwned>(
        &self,
        step: StepId,
        key: &str,
    ) -> Result<Option<T>, JournalError> {
        match self.get(step, key) {
            Ok(v) => Ok(Some(v)),
            Err(JournalError::MissingData { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn start(&mut self, step: StepId) {
        let started = now();
        let record = self.steps.entry(step).or_insert_with(|| Record {
            started,
            finished: None,
            outcome: None,
            attempts: 0,
            data: empty_object(),
            undo: None,
        });
        record.started = started;
        record.finished = None;
        record.outcome = None;
        record.attempts += 1;
    }

    fn finish(&mut self, step: StepId, outcome: Outcome) {
        if let Some(record) = self.steps.get_mut(&step) {
            record.finished = Some(now());
            record.outcome = Some(outcome);
        }
    }
}

/// What a step gets while it runs (or checks, or undoes): the journal, with earlier
/// steps' facts, and its own record's `data` to write.
pub struct StepContext<'a> {
    journal: &'a mut Journal,
    path: &'a Path,
    step: StepId,
}

impl StepContext<'_> {
    /// The step this context is for.
    pub fn step(&self) -> StepId {
        self.step
    }

    /// The whole journal: earlier steps' facts (`Journal::get`).
    pub fn journal(&self) -> &Journal {
        self.journal
    }

    /// This step's own facts so far (from an earlier, interrupted attempt too).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, JournalError> {
        self.journal.get_opt(self.step, key)
    }

    /// Records a fact for later steps (and for a retry of this one). In memory until the
    /// step ends or `checkpoint` is called.
    pub fn set<T: Serialize>(&mut self, key: &str, value: T) -> Result<(), JournalError> {
        let value = serde_json::to_value(value).map_err(|source| JournalError::BadData {
            step: self.step,
            key: key.to_owned(),
            source,
        })?;
        let record = self
            .journal
            .steps
            .get_mut(&self.step)
            .expect("a context exists only for a started step");
        if !record.data.is_object() {
            record.data = empty_object();
        }
        record.data[key] = value;
        Ok(())
    }

    /// Saves the journal now, e.g. after recording what a long step is about to do, so
    /// that `already_done` finds it after a crash.
    pub fn checkpoint(&self) -> Result<(), JournalError> {
        self.journal.save(self.path)
    }
}

/// One step of the plan.
#[async_trait::async_trait]
pub trait Step: Send + Sync {
    fn id(&self) -> StepId;

    /// Whether its effect is already in place; asked before running a step again whose
    /// last attempt was interrupted (a crash mid-step) or failed. E.g. replication is
    /// already configured at the recorded coordinates. May record facts it finds with
    /// `ctx.set`. Default: false (run again: the step must then be idempotent).
    async fn already_done(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        let _ = ctx;
        Ok(false)
    }

    /// Does the step; returns what it did, in a line. May record facts for later steps
    /// with `ctx.set` (saved with the outcome, whether Ok or Err).
    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String>;

    /// Reverts the step for `dbm abort`. Default: `Impossible` (abort stops here), so a
    /// step must opt in to being skipped or reverted.
    async fn undo(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        let _ = ctx;
        Ok(Undo::Impossible("this step has no undo".to_owned()))
    }
}

/// What happened to one step in a `run` or `abort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Done in an earlier run; skipped.
    AlreadyDone,
    /// Interrupted or failed earlier, and `already_done` found its effect in place.
    FoundInPlace,
    /// Ran now; what it did.
    Ran(String),
    /// Abort: undone now, or earlier.
    Undo(Undo),
    /// Abort: settled by an earlier abort.
    AlreadyUndone,
}

/// What a `run` or `abort` did, step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub steps: Vec<(StepId, Action)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (step, action) in &self.steps {
            let what = match action {
                Action::AlreadyDone => "done earlier".to_owned(),
                Action::FoundInPlace => "found done after an interrupted attempt".to_owned(),
                Action::Ran(s) => format!("done: {s}"),
                Action::Undo(Undo::Undone(s)) => format!("undone: {s}"),
                Action::Undo(Undo::Nothing(s)) => format!("nothing to undo: {s}"),
                Action::Undo(Undo::Impossible(s)) => format!("cannot be undone: {s}"),
                Action::AlreadyUndone => "undone earlier".to_owned(),
            };
            writeln!(f, "{:<14} {what}", step.as_str())?;
        }
        Ok(())
    }
}

/// A step's state as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    /// Started, not finished, and a dbm holds the lock.
    Running,
    /// Started, not finished, and nobody holds the lock: killed mid-step.
    Interrupted,
    Done,
    Failed,
    /// Settled by an abort (reverted, or nothing to revert).
    Undone,
    /// An abort tried and the step is still in effect (undo failed or impossible).
    UndoFailed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Interrupted => "interrupted",
            State::Done => "done",
            State::Failed => "failed",
            State::Undone => "undone",
            State::UndoFailed => "not undone",
        }
    }
}

/// Where the migration stands (`Runner::status`); `Display` gives one line per step.
#[derive(Debug, Clone)]
pub struct Status {
    pub journal_path: PathBuf,
    /// `None`: no journal, the migration has not started.
    pub journal: Option<Journal>,
    /// Whether a dbm holds the lock now, and its pid if known.
    pub locked_by: Option<Option<String>>,
    pub steps: Vec<(StepId, State)>,
}

impl Status {
    /// The step `run` would continue at (`None`: all done, or no journal).
    pub fn current(&self) -> Option<StepId> {
        self.journal.as_ref().and_then(Journal::current)
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn fmt_duration(d: chrono::TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 600_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(journal) = &self.journal else {
            return writeln!(
                f,
                "no journal at {}: the migration has not started",
                self.journal_path.display()
            );
        };
        writeln!(
            f,
            "journal {} (plan {}, started {})",
            self.journal_path.display(),
            journal.plan,
            fmt_time(journal.created)
        )?;
        if let Some(at) = journal.aborted {
            writeln!(f, "ABORTED at {}", fmt_time(at))?;
        }
        if let Some(holder) = &self.locked_by {
            match holder {
                Some(pid) => writeln!(f, "a dbm (pid {pid}) is working on it now")?,
                None => writeln!(f, "a dbm is working on it now")?,
            }
        }
        let current = journal.current();
        for (step, state) in &self.steps {
            let mark = if Some(*step) == current && journal.aborted.is_none() {
                '>'
            } else {
                ' '
            };
            write!(f, "{mark} {:<14} {:<11}", step.as_str(), state.as_str())?;
            if let Some(r) = journal.record(*step) {
                write!(f, " {}", fmt_time(r.started))?;
                if let Some(end) = r.finished {
                    write!(f, " {:>7}", fmt_duration(end - r.started))?;
                }
                if r.attempts > 1 {
                    write!(f, " (attempt {})", r.attempts)?;
                }
                match &r.outcome {
                    Some(Outcome::Done(s)) => write!(f, "  {s}")?,
                    Some(Outcome::Failed(e)) => write!(f, "  error: {e}")?,
                    None => {}
                }
                if let Some(u) = &r.undo {
                    match &u.result {
                        Ok(Undo::Undone(s)) => write!(f, "; undone: {s}")?,
                        Ok(Undo::Nothing(s)) => write!(f, "; nothing to undo: {s}")?,
                        Ok(Undo::Impossible(s)) | Err(s) => write!(f, "; not undone: {s}")?,
                    }
                }
            }
            writeln!(f)?;
        }
        if journal.aborted.is_none() && current.is_none() {
            writeln!(f, "all steps done")?;
        }
        Ok(())
    }
}

/// The lock file beside a journal.
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// An exclusive lock on `<journal>.lock`, held while it lives (the kernel drops it when
/// the process dies, kill -9 included).
#[derive(Debug)]
pub struct Lock {
    _file: nix::fcntl::Flock<File>,
}

impl Lock {
    /// Takes the lock or fails at once with `Busy`.
    pub fn acquire(journal: &Path) -> Result<Lock, JournalError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = lock_path(journal);
        let io = |source| JournalError::Lock {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(MODE_PRIVATE)
            .open(&path)
            .map_err(io)?;
        let mut file =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(JournalError::Busy {
                        journal: journal.to_owned(),
                        lock: path,
                        holder: read_holder(&mut file),
                    });
                }
                Err((_, errno)) => return Err(io(errno.into())),
            };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Lock { _file: file })
    }
}

fn read_holder(file: &mut File) -> Option<String> {
    let mut s = String::new();
    file.read_to_string(&mut s).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Whether someone holds the lock of `journal` now (and their pid), without taking it
/// for more than an instant.
fn lock_holder(journal: &Path) -> Option<Option<String>> {
    let file = File::open(lock_path(journal)).ok()?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_) => None,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => Some(read_holder(&mut file)),
        Err(_) => None,
    }
}

/// Drives the steps of a plan over a journal file.
#[derive(Debug, Clone)]
pub struct Runner {
    path: PathBuf,
    plan: PlanId,
}

impl Runner {
    /// A runner for the journal at `path` (e.g. `<state_dir>/journal.json`), belonging
    /// to `plan`.
    pub fn new(path: impl Into<PathBuf>, plan: PlanId) -> Runner {
        Runner {
            path: path.into(),
            plan,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal, if any, checked to belong to this plan.
    fn load_own(&self) -> Result<Option<Journal>, JournalError> {
        let Some(journal) = Journal::load(&self.path)? else {
            return Ok(None);
        };
        if journal.plan.hash != self.plan.hash {
            return Err(JournalError::OtherPlan {
                journal: self.path.clone(),
                journal_plan: journal.plan,
                plan: self.plan.clone(),
            });
        }
        Ok(Some(journal))
    }

    /// Runs the steps in order from the first not done: records the start (saved)
    /// before running a step, its outcome and facts (saved) after. A step whose last
    /// attempt was interrupted (a crash) or failed is asked `already_done` first. Stops
    /// at the first failure (saved with the error chain) with `StepFailed`. Refuses an
    /// aborted journal, another plan's journal, and a journal another dbm holds.
    pub async fn run(&self, steps: &[Box<dyn Step>]) -> Result<Report, JournalError> {
        self.run_until(steps, None).await
    }

    /// Like `run`, stopping once `last` is done (`None`: at the end). The journal keeps
    /// the whole step list, so `status` shows what is still to come.
    pub async fn run_until(
        &self,
        steps: &[Box<dyn Step>],
        last: Option<StepId>,
    ) -> Result<Report, JournalError> {
        let order = check_order(steps)?;
        if let Some(last) = last
            && !order.contains(&last)
        {
            return Err(JournalError::NotInPlan(last));
        }
        let _lock = Lock::acquire(&self.path)?;
        let mut journal = match self.load_own()? {
            Some(j) => j,
            None => Journal::new(self.plan.clone(), order.clone()),
        };
        if let Some(at) = journal.aborted {
            return Err(JournalError::Aborted {
                journal: self.path.clone(),
                at,
            });
        }
        if journal.order != order {
            journal.order = order;
        }
        journal.save(&self.path)?;
        let mut report = Report::default();
        for step in steps {
            let id = step.id();
            let previous = journal.record(id).cloned();
            if previous.as_ref().is_some_and(Record::is_done) {
                report.steps.push((id, Action::AlreadyDone));
                if Some(id) == last {
                    break;
                }
                continue;
            }
            journal.start(id);
            journal.save(&self.path)?;
            let mut ctx = StepContext {
                journal: &mut journal,
                path: &self.path,
                step: id,
            };
            let result = if previous.is_some() {
                match step.already_done(&mut ctx).await {
                    Ok(true) => {
                        tracing::info!(step = %id, "found done after an interrupted attempt");
                        Ok(None)
                    }
                    Ok(false) => step.run(&mut ctx).await.map(Some),
                    Err(e) => Err(e.context(format!("checking whether {id} already happened"))),
                }
            } else {
                step.run(&mut ctx).await.map(Some)
            };
            match result {
                Ok(summary) => {
                    let text = summary
                        .clone()
                        .unwrap_or_else(|| "found done after an interrupted attempt".to_owned());
                    journal.finish(id, Outcome::Done(text));
                    journal.save(&self.path)?;
                    report.steps.push((
                        id,
                        match summary {
                            Some(s) => Action::Ran(s),
                            None => Action::FoundInPlace,
                        },
                    ));
                    if Some(id) == last {
                        break;
                    }
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    journal.finish(id, Outcome::Failed(error.clone()));
                    journal.save(&self.path)?;
                    return Err(JournalError::StepFailed { step: id, error });
                }
            }
        }
        Ok(report)
    }

    /// Where the migration stands. Needs no lock and no plan (reads the atomic file).
    pub fn status(path: &Path) -> Result<Status, JournalError> {
        let journal = Journal::load(path)?;
        let locked_by = lock_holder(path);
        let steps = match &journal {
            None => Vec::new(),
            Some(j) => j
                .order
                .iter()
                .map(|&id| {
                    let state = match j.record(id) {
                        None => State::Pending,
                        Some(r) if r.undo.is_some() => {
                            if r.is_settled_by_abort() {
                                State::Undone
                            } else {
                                State::UndoFailed
                            }
                        }
                        Some(r) if r.is_done() => State::Done,
                        Some(r) if r.is_interrupted() => {
                            if locked_by.is_some() {
                                State::Running
                            } else {
                                State::Interrupted
                            }
                        }
                        Some(_) => State::Failed,
                    };
                    (id, state)
                })
                .collect(),
        };
        Ok(Status {
            journal_path: path.to_owned(),
            journal,
            locked_by,
            steps,
        })
    }

    /// Undoes the started steps (done, failed or interrupted) in reverse order; marks
    /// the journal aborted first (saved), so `run` refuses it from then on until it is
    /// removed. Each undo's result is saved; a step settled by an earlier abort is
    /// skipped, so an interrupted or failed abort continues when run again. Stops at an
    /// undo that fails (`UndoFailed`) or is impossible (`Irreversible`). If the very
    /// first step met cannot be undone and nothing has been undone yet, the journal is
    /// left not aborted: nothing changed, and `run` can still go on.
    pub async fn abort(&self, steps: &[Box<dyn Step>]) -> Result<Report, JournalError> {
        check_order(steps)?;
        let _lock = Lock::acquire(&self.path)?;
        let Some(mut journal) = self.load_own()? else {
            return Err(JournalError::NoJournal {
                journal: self.path.clone(),
            });
        };
        let was_aborted = journal.aborted.is_some();
        if !was_aborted {
            journal.aborted = Some(now());
            journal.save(&self.path)?;
        }
        let mut report = Report::default();
        let mut changed = was_aborted;
        for step in steps.iter().rev() {
            let id = step.id();
            let Some(record) = journal.record(id) else {
                continue;
            };
            if record.is_settled_by_abort() {
                report.steps.push((id, Action::AlreadyUndone));
                continue;
            }
            let mut ctx = StepContext {
                journal: &mut journal,
                path: &self.path,
                step: id,
            };
            let result = step.undo(&mut ctx).await;
            let (record_result, error) = match result {
                Ok(Undo::Impossible(why)) => {
                    if !changed {
                        // Nothing was reverted: leave the migration as it was.
                        journal.aborted = None;
                        for r in journal.steps.values_mut() {
                            r.undo = None;
                        }
                        journal.save(&self.path)?;
                        return Err(JournalError::Irreversible { step: id, why });
                    }
                    (
                        Err(why.clone()),
                        Some(JournalError::Irreversible { step: id, why }),
                    )
                }
                Ok(Undo::Nothing(why)) => (Ok(Undo::Nothing(why)), None),
                Ok(undo) => {
                    changed = true;
                    (Ok(undo), None)
                }
                Err(e) => {
                    // It may have reverted part of the step.
                    changed = true;
                    let error = format!("{e:#}");
                    (
                        Err(error.clone()),
                        Some(JournalError::UndoFailed { step: id, error }),
                    )
                }
            };
            if let Ok(undo) = &record_result {
                report.steps.push((id, Action::Undo(undo.clone())));
            }
            if let Some(r) = journal.steps.get_mut(&id) {
                r.undo = Some(UndoRecord {
                    at: now(),
                    result: record_result,
                });
            }
            journal.save(&self.path)?;
            if let Some(e) = error {
                return Err(e);
            }
        }
        Ok(report)
    }
}

/// The step ids, checked to be in `StepId` order without duplicates.
fn check_order(steps: &[Box<dyn Step>]) -> Result<Vec<StepId>, JournalError> {
    let order: Vec<StepId> = steps.iter().map(|s| s.id()).collect();
    if order.windows(2).any(|w| w[0] >= w[1]) {
        let names: Vec<&str> = order.iter().map(|s| s.as_str()).collect();
        return Err(JournalError::StepOrder(names.join(", ")));
    }
    Ok(order)
}

/// `DateTime<Utc>` as RFC 3339 text (the workspace's chrono has no serde feature).
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}
