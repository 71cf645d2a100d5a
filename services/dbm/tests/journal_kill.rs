//! A dbm killed with SIGKILL inside a step leaves a journal with that step started and
//! not finished; a rerun asks the step whether its effect is in place, does not repeat
//! it, and completes the plan.
//!
//! The test re-executes its own binary as the child (selected by an environment
//! variable), which runs the journal until it is killed inside `seed`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbm::journal::{Action, PlanId, Runner, State, Step, StepContext, StepId};

const CHILD: &str = "DBM_JOURNAL_KILL_CHILD";
const TEST: &str = "killed_mid_step_then_rerun_completes";

/// Appends `line` to `<dir>/log`: what ran, across processes.
fn log(dir: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// A step that logs its runs; `seed` creates `<dir>/effect` and then hangs (in the
/// child) until killed.
struct Fake {
    id: StepId,
    dir: PathBuf,
    hang: bool,
}

#[async_trait::async_trait]
impl Step for Fake {
    fn id(&self) -> StepId {
        self.id
    }

    async fn already_done(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<bool> {
        log(&self.dir, &format!("check {}", self.id));
        Ok(self.id == StepId::Seed && self.dir.join("effect").exists())
    }

    async fn run(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        log(&self.dir, &format!("run {}", self.id));
        if self.id == StepId::Seed {
            std::fs::write(self.dir.join("effect"), b"seeded").unwrap();
            if self.hang {
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
        }
        Ok(format!("{} ok", self.id))
    }
}

fn steps(dir: &Path, hang: bool) -> Vec<Box<dyn Step>> {
    [StepId::Preflight, StepId::Seed, StepId::Prepare]
        .into_iter()
        .map(|id| {
            Box::new(Fake {
                id,
                dir: dir.to_owned(),
                hang,
            }) as Box<dyn Step>
        })
        .collect()
}

fn plan() -> PlanId {
    PlanId::of("plan.toml", b"kill test")
}

fn child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let journal = dir.join("journal.json");
    let result = rt.block_on(Runner::new(&journal, plan()).run(&steps(dir, true)));
    panic!("the child should have been killed inside seed, but the run ended: {result:?}");
}

#[test]
fn killed_mid_step_then_rerun_completes() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.json");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("effect").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited before reaching seed: {status}");
        }
        assert!(Instant::now() < deadline, "the child never reached seed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());

    let before = Runner::status(&journal).unwrap();
    assert_eq!(
        before.steps,
        [
            (StepId::Preflight, State::Done),
            (StepId::Seed, State::Interrupted),
            (StepId::Prepare, State::Pending),
        ],
        "{before}"
    );
    assert!(before.locked_by.is_none(), "the kill released the lock");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt
        .block_on(Runner::new(&journal, plan()).run(&steps(dir.path(), false)))
        .unwrap();
    assert_eq!(
        report.steps,
        [
            (StepId::Preflight, Action::AlreadyDone),
            (StepId::Seed, Action::FoundInPlace),
            (StepId::Prepare, Action::Ran("prepare ok".into())),
        ]
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["run preflight", "run seed", "check seed", "run prepare"]
    );
    let after = Runner::status(&journal).unwrap();
    assert!(after.to_string().contains("all steps done"), "{after}");
}
