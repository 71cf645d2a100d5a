use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

/// What the fakes did, in order, shared by all steps of a test.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A fake step: counts runs, fails while `fail` is set, reports `in_place` from
/// `already_done`, and undoes as told.
struct Fake {
    id: StepId,
    log: Log,
    runs: Arc<AtomicU32>,
    fail: Arc<AtomicBool>,
    in_place: bool,
    undo: Option<Undo>,
}

impl Fake {
    fn new(id: StepId, log: &Log) -> Fake {
        Fake {
            id,
            log: log.clone(),
            runs: Arc::default(),
            fail: Arc::default(),
            in_place: false,
            undo: None,
        }
    }
}

#[async_trait::async_trait]
impl Step for Fake {
    fn id(&self) -> StepId {
        self.id
    }

    async fn already_done(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        self.log.push(format!("check {}", self.id));
        Ok(self.in_place)
    }

    async fn run(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.log.push(format!("run {}", self.id));
        if self.fail.load(Ordering::SeqCst) {
            return Err(anyhow::anyhow!("connection refused").context("connecting to db1"));
        }
        Ok(format!("{} ok", self.id))
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        self.log.push(format!("undo {}", self.id));
        match &self.undo {
            Some(u) => Ok(u.clone()),
            None => Ok(Undo::Impossible(format!("{} has no undo", self.id))),
        }
    }
}

fn plan() -> PlanId {
    PlanId::of("plan.toml", b"db0 = 'a'\n")
}

fn steps(fakes: Vec<Fake>) -> Vec<Box<dyn Step>> {
    fakes
        .into_iter()
        .map(|f| Box::new(f) as Box<dyn Step>)
        .collect()
}

/// Run counters of the fakes, in order.
type Runs = Vec<Arc<AtomicU32>>;

/// Preflight, seed and prepare: their run counters, seed's failure switch, the steps.
fn three(log: &Log) -> (Runs, Arc<AtomicBool>, Vec<Box<dyn Step>>) {
    let fakes: Vec<Fake> = [StepId::Preflight, StepId::Seed, StepId::Prepare]
        .into_iter()
        .map(|id| Fake::new(id, log))
        .collect();
    let runs = fakes.iter().map(|f| f.runs.clone()).collect();
    let fail = fakes[1].fail.clone();
    (runs, fail, steps(fakes))
}

fn count(runs: &[Arc<AtomicU32>]) -> Vec<u32> {
    runs.iter().map(|r| r.load(Ordering::SeqCst)).collect()
}

#[tokio::test]
async fn full_run_then_rerun_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let log = Log::default();
    let (runs, _, steps) = three(&log);
    let runner = Runner::new(&path, plan());

    let report = runner.run(&steps).await.unwrap();
    assert_eq!(
        report.steps,
        vec![
            (StepId::Preflight, Action::Ran("preflight ok".into())),
            (StepId::Seed, Action::Ran("seed ok".into())),
            (StepId::Prepare, Action::Ran("prepare ok".into())),
        ]
    );
    assert_eq!(count(&runs), [1, 1, 1]);
    let journal = Journal::load(&path).unwrap().unwrap();
    assert_eq!(journal.current(), None);
    let seed = journal.record(StepId::Seed).unwrap();
    assert_eq!(seed.outcome, Some(Outcome::Done("seed ok".into())));
    assert_eq!(seed.attempts, 1);
    assert!(seed.finished.unwrap() >= seed.started);

    let report = runner.run(&steps).await.unwrap();
    assert!(report.steps.iter().all(|(_, a)| *a == Action::AlreadyDone));
    assert_eq!(count(&runs), [1, 1, 1]);
    let status = Runner::status(&path).unwrap().to_string();
    assert!(status.contains("all steps done"), "{status}");
    assert!(status.contains("  seed ok"), "{status}");
}

#[tokio::test]
async fn failure_then_rerun_continues_at_the_failed_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let log = Log::default();
    let (runs, fail, steps) = three(&log);
    let runner = Runner::new(&path, plan());

    fail.store(true, Ordering::SeqCst);
    let err = runner.run(&steps).await.unwrap_err();
    assert!(
        matches!(&err, JournalError::StepFailed { step: StepId::Seed, error }
            if error == "connecting to db1: connection refused"),
        "{err}"
    );
    assert!(err.to_string().contains("continue at seed"), "{err}");
    assert_eq!(count(&runs), [1, 1, 0]);
    let journal = Journal::load(&path).unwrap().unwrap();
    let seed = journal.record(StepId::Seed).unwrap();
    assert_eq!(
        seed.outcome,
        Some(Outcome::Failed(
            "connecting to db1: connection refused".into()
        ))
    );
    assert!(seed.finished.is_some());
    assert_eq!(journal.current(), Some(StepId::Seed));

    let status = Runner::status(&path).unwrap();
    assert_eq!(status.steps[1], (StepId::Seed, State::Failed));
    let text = status.to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("> seed") && l.contains("error: connecting")),
        "{text}"
    );

    fail.store(false, Ordering::SeqCst);
    log.take();
    let report = runner.run(&steps).await.unwrap();
    assert_eq!(report.steps[0], (StepId::Preflight, Action::AlreadyDone));
    assert_eq!(
        report.steps[1],
        (StepId::Seed, Action::Ran("seed ok".into()))
    );
    assert_eq!(count(&runs), [1, 2, 1]);
    // A failed step is asked whether it happened after all before it is run again.
    assert_eq!(log.take(), ["check seed", "run seed", "run prepare"]);
    let journal = Journal::load(&path).unwrap().unwrap();
    assert_eq!(journal.record(StepId::Seed).unwrap().attempts, 2);
}

/// The journal as a process killed inside `seed` leaves it: the start saved, no finish.
fn write_crashed_journal(path: &Path, seed_data: serde_json::Value) {
    let text = serde_json::json!({
        "format": 1,
        "plan": plan(),
        "created": "2025-01-01T10:00:00.000Z",
        "order": ["preflight", "seed", "prepare"],
        "steps": {
            "preflight": {
                "started": "2025-01-01T10:00:00.000Z",
                "finished": "2025-01-01T10:00:01.000Z",
                "outcome": {"done": "preflight ok"},
                "attempts": 1,
                "data": {}
            },
            "seed": {
                "started": "2025-01-01T10:00:01.000Z",
                "finished": null,
                "outcome": null,
                "attempts": 1,
                "data": seed_data
            }
        }
    });
    std::fs::write(path, serde_json::to_vec_pretty(&text).unwrap()).unwrap();
}

#[tokio::test]
async fn crash_mid_step_asks_already_done_and_does_not_repeat_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    write_crashed_journal(&path, serde_json::json!({}));

    let status = Runner::status(&path).unwrap();
    assert_eq!(status.steps[1], (StepId::Seed, State::Interrupted));
    assert_eq!(status.current(), Some(StepId::Seed));

    let log = Log::default();
    let mut fakes: Vec<Fake> = [StepId::Preflight, StepId::Seed, StepId::Prepare]
        .into_iter()
        .map(|id| Fake::new(id, &log))
        .collect();
    fakes[1].in_place = true;
    let runs: Vec<_> = fakes.iter().map(|f| f.runs.clone()).collect();
    let report = Runner::new(&path, plan()).run(&steps(fakes)).await.unwrap();
    assert_eq!(report.steps[1], (StepId::Seed, Action::FoundInPlace));
    assert_eq!(log.take(), ["check seed", "run prepare"]);
    assert_eq!(count(&runs), [0, 0, 1]);
    let journal = Journal::load(&path).unwrap().unwrap();
    let seed = journal.record(StepId::Seed).unwrap();
    assert_eq!(seed.attempts, 2);
    assert!(seed.is_done());

    // Not in place: run again.
    write_crashed_journal(&path, serde_json::json!({}));
    let (runs, _, steps) = three(&log);
    Runner::new(&path, plan()).run(&steps).await.unwrap();
    assert_eq!(log.take(), ["check seed", "run seed", "run prepare"]);
    assert_eq!(count(&runs), [0, 1, 1]);
}

/// Seed records coordinates (checkpointed before it "crashes"); its check finds them; a
/// later step in a later process reads them.
struct Seeder {
    crash: bool,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Coordinates {
    file: String,
    pos: u64,
}

#[async_trait::async_trait]
impl Step for Seeder {
    fn id(&self) -> StepId {
        StepId::Seed
    }

    async fn already_done(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        Ok(ctx.get::<Coordinates>("coordinates")?.is_some())
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let c = Coordinates {
            file: "mysql-bin.000042".into(),
            pos: 1234,
        };
        ctx.set("coordinates", &c)?;
        ctx.checkpoint()?;
        if self.crash {
            anyhow::bail!("simulated crash after the checkpoint");
        }
        Ok(format!("seeded at {}:{}", c.file, c.pos))
    }
}

struct Replicator {
    seen: Arc<Mutex<Option<Coordinates>>>,
}

#[async_trait::async_trait]
impl Step for Replicator {
    fn id(&self) -> StepId {
        StepId::ReplicateDb1
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let c: Coordinates = ctx.journal().get(StepId::Seed, "coordinates")?;
        let line = format!("replicating from {}:{}", c.file, c.pos);
        *self.seen.lock().unwrap() = Some(c);
        ctx.set("source", "db0")?;
        Ok(line)
    }
}

#[tokio::test]
async fn data_passes_to_later_steps_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let seen = Arc::new(Mutex::new(None));

    // First process: seed checkpoints its facts, then fails (as if it died after).
    let first: Vec<Box<dyn Step>> = vec![
        Box::new(Seeder { crash: true }),
        Box::new(Replicator { seen: seen.clone() }),
    ];
    Runner::new(&path, plan()).run(&first).await.unwrap_err();
    assert!(seen.lock().unwrap().is_none());

    // Second process: a new runner on the same file.
    let second: Vec<Box<dyn Step>> = vec![
        Box::new(Seeder { crash: true }),
        Box::new(Replicator { seen: seen.clone() }),
    ];
    let report = Runner::new(&path, plan()).run(&second).await.unwrap();
    assert_eq!(report.steps[0], (StepId::Seed, Action::FoundInPlace));
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Coordinates {
            file: "mysql-bin.000042".into(),
            pos: 1234
        })
    );
    let journal = Journal::load(&path).unwrap().unwrap();
    assert_eq!(
        journal
            .get::<String>(StepId::ReplicateDb1, "source")
            .unwrap(),
        "db0"
    );
    let err = journal.get::<u64>(StepId::Seed, "nope").unwrap_err();
    assert_eq!(
        err.to_string(),
        "step seed has no recorded `nope` (has it run?)"
    );
    let err = journal.get::<u64>(StepId::Seed, "coordinates").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("step seed's recorded `coordinates` is not")
    );
}

#[tokio::test]
async fn abort_undoes_in_reverse_and_refuses_further_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let log = Log::default();
    let make = |log: &Log| {
        let mut fakes: Vec<Fake> = [
            StepId::Preflight,
            StepId::Seed,
            StepId::ReplicateDb1,
            StepId::Freeze,
            StepId::Promote,
        ]
        .into_iter()
        .map(|id| Fake::new(id, log))
        .collect();
        fakes[0].undo = Some(Undo::Nothing("checks only".into()));
        fakes[1].undo = Some(Undo::Undone("db1 data dir removed".into()));
        fakes[2].undo = Some(Undo::Undone("replication stopped".into()));
        fakes[3].undo = Some(Undo::Undone("db0 writable".into()));
        fakes[3].fail.store(true, Ordering::SeqCst);
        fakes
    };
    let runner = Runner::new(&path, plan());
    runner.run(&steps(make(&log))).await.unwrap_err();
    log.take();

    let report = runner.abort(&steps(make(&log))).await.unwrap();
    // Promote never started: not undone. Freeze failed but started: undone.
    assert_eq!(
        log.take(),
        [
            "undo freeze",
            "undo replicate_db1",
            "undo seed",
            "undo preflight"
        ]
    );
    assert_eq!(report.steps.len(), 4);
    assert_eq!(
        report.steps[0],
        (
            StepId::Freeze,
            Action::Undo(Undo::Undone("db0 writable".into()))
        )
    );

    let err = runner.run(&steps(make(&log))).await.unwrap_err();
    assert!(matches!(err, JournalError::Aborted { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("was aborted"), "{msg}");
    assert!(msg.contains(&format!("remove {}", path.display())), "{msg}");
    assert!(log.take().is_empty());

    let status = Runner::status(&path).unwrap();
    assert!(status.steps[..4].iter().all(|(_, s)| *s == State::Undone));
    assert_eq!(status.steps[4], (StepId::Promote, State::Pending));
    let text = status.to_string();
    assert!(text.contains("ABORTED at"), "{text}");
    assert!(text.contains("; undone: db0 writable"), "{text}");

    // A second abort has nothing left to do.
    let report = runner.abort(&steps(make(&log))).await.unwrap();
    assert!(
        report
            .steps
            .iter()
            .all(|(_, a)| *a == Action::AlreadyUndone)
    );
    assert!(log.take().is_empty());

    // Removing the journal starts over.
    std::fs::remove_file(&path).unwrap();
    runner.run(&steps(make(&log))).await.unwrap_err();
    assert_eq!(
        log.take(),
        [
            "run preflight",
            "run seed",
            "run replicate_db1",
            "run freeze"
        ]
    );
}

#[tokio::test]
async fn abort_stops_at_an_irreversible_step_and_resumes_after_a_failed_undo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let log = Log::default();
    let runner = Runner::new(&path, plan());
    let ids = [StepId::Seed, StepId::Freeze, StepId::Promote];
    let all = |log: &Log, promote_undo: Option<Undo>| {
        let mut f: Vec<Fake> = ids.iter().map(|&id| Fake::new(id, log)).collect();
        f[0].undo = Some(Undo::Undone("seed gone".into()));
        f[1].undo = Some(Undo::Undone("db0 writable".into()));
        f[2].undo = promote_undo;
        steps(f)
    };
    runner.run(&all(&log, None)).await.unwrap();
    log.take();

    // The last step cannot be undone and nothing was undone yet: not aborted at all.
    let err = runner.abort(&all(&log, None)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            JournalError::Irreversible {
                step: StepId::Promote,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(log.take(), ["undo promote"]);
    let journal = Journal::load(&path).unwrap().unwrap();
    assert!(journal.aborted.is_none());
    assert!(journal.steps.values().all(|r| r.undo.is_none()));

    // Now promote reverts, then freeze's undo is impossible: aborted, stopped there.
    let mut f: Vec<Fake> = ids.iter().map(|&id| Fake::new(id, &log)).collect();
    f[2].undo = Some(Undo::Undone("db1 read-only".into()));
    let err = runner.abort(&steps(f)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            JournalError::Irreversible {
                step: StepId::Freeze,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(log.take(), ["undo promote", "undo freeze"]);
    let status = Runner::status(&path).unwrap();
    assert_eq!(
        status.steps,
        [
            (StepId::Seed, State::Done),
            (StepId::Freeze, State::UndoFailed),
            (StepId::Promote, State::Undone)
        ]
    );

    // Again, with freeze fixed: promote is not undone twice.
    runner
        .abort(&all(&log, Some(Undo::Undone("x".into()))))
        .await
        .unwrap();
    assert_eq!(log.take(), ["undo freeze", "undo seed"]);
}

#[tokio::test]
async fn corrupt_journal_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    std::fs::write(&path, b"{\"format\": 1, \"plan\": {\"sour").unwrap();
    let log = Log::default();
    let (runs, _, steps) = three(&log);
    let err = Runner::new(&path, plan()).run(&steps).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("corrupt"), "{msg}");
    assert_eq!(count(&runs), [0, 0, 0]);
    let msg = Runner::status(&path).unwrap_err().to_string();
    assert!(
        msg.contains("corrupt") && msg.contains("journal.json"),
        "{msg}"
    );

    // Valid JSON of the wrong shape, and a newer format.
    std::fs::write(&path, b"{\"format\": 1, \"plan\": 3}").unwrap();
    let msg = Runner::status(&path).unwrap_err().to_string();
    assert!(
        msg.contains("corrupt") && msg.contains("journal.json"),
        "{msg}"
    );
    std::fs::write(&path, b"{\"format\": 7}").unwrap();
    let msg = Runner::status(&path).unwrap_err().to_string();
    assert!(msg.contains("has format 7"), "{msg}");
}

#[tokio::test]
async fn another_plans_journal_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let log = Log::default();
    let (_, _, steps) = three(&log);
    Runner::new(&path, plan()).run(&steps).await.unwrap();
    let other = PlanId::of("other.toml", b"db0 = 'b'\n");
    let (runs, _, steps) = three(&log);
    let err = Runner::new(&path, other.clone())
        .run(&steps)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&plan().to_string()), "{msg}");
    assert!(msg.contains(&other.to_string()), "{msg}");
    assert!(msg.contains("plan.toml (fnv1a64:"), "{msg}");
    assert_eq!(count(&runs), [0, 0, 0]);
    let err = Runner::new(&path, other).abort(&steps).await.unwrap_err();
    assert!(matches!(err, JournalError::OtherPlan { .. }));
    // The same content under another name is the same plan.
    Runner::new(&path, PlanId::of("/etc/dbm/plan.toml", b"db0 = 'a'\n"))
        .run(&steps)
        .await
        .unwrap();
}

/// Blocks in `run` until released, to hold the lock.
struct Blocker {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Step for Blocker {
    fn id(&self) -> StepId {
        StepId::Seed
    }

    async fn run(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok("released".into())
    }
}

#[tokio::test]
async fn the_lock_refuses_a_second_runner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let first: Vec<Box<dyn Step>> = vec![Box::new(Blocker {
        entered: entered.clone(),
        release: release.clone(),
    })];
    let runner = Runner::new(&path, plan());
    let task = {
        let runner = runner.clone();
        tokio::spawn(async move { runner.run(&first).await })
    };
    entered.notified().await;

    let log = Log::default();
    let (runs, _, steps) = three(&log);
    let err = runner.run(&steps).await.unwrap_err();
    assert!(matches!(err, JournalError::Busy { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("held by pid {}", std::process::id())),
        "{msg}"
    );
    assert!(matches!(
        runner.abort(&steps).await.unwrap_err(),
        JournalError::Busy { .. }
    ));
    assert_eq!(count(&runs), [0, 0, 0]);

    // Status works meanwhile and sees the step running.
    let status = Runner::status(&path).unwrap();
    assert_eq!(status.steps, [(StepId::Seed, State::Running)]);
    assert!(status.to_string().contains("is working on it now"));

    release.notify_one();
    task.await.unwrap().unwrap();
    // Released with the first runner: a later one proceeds.
    let only_seed: Vec<Box<dyn Step>> = vec![Box::new(Fake::new(StepId::Seed, &log))];
    let report = runner.run(&only_seed).await.unwrap();
    assert_eq!(report.steps, [(StepId::Seed, Action::AlreadyDone)]);
}

#[tokio::test]
async fn steps_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let log = Log::default();
    let bad = steps(vec![
        Fake::new(StepId::Seed, &log),
        Fake::new(StepId::Preflight, &log),
    ]);
    let err = Runner::new(&path, plan()).run(&bad).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the step list is not in order or has a duplicate: seed, preflight"
    );
    assert!(!path.exists());
}

#[test]
fn status_without_a_journal_and_step_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let status = Runner::status(&path).unwrap();
    assert!(status.to_string().contains("the migration has not started"));
    for id in StepId::ALL {
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::Value::String(id.as_str().into())
        );
    }
    assert!(StepId::ALL.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn journal_round_trips_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    let mut j = Journal::new(plan(), vec![StepId::Preflight]);
    j.start(StepId::Preflight);
    j.finish(StepId::Preflight, Outcome::Done("ok".into()));
    j.save(&path).unwrap();
    assert_eq!(Journal::load(&path).unwrap().unwrap(), j);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
