//! The migration's steps, in order, as `dbm run` and `dbm abort` drive them, and the
//! last one, `verify`.

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::config::{Config, Role};
use crate::cutover::{self, Snapshot};
use crate::db::Db;
use crate::journal::{PlanId, Step, StepContext, StepId, Undo};
use crate::preflight::{Preflight, Upgrade};
use crate::replicate::{self, CatchUp, ReplicateDb1, connect};
use crate::seed::{Prepare, Seed};
use crate::verify;

/// The steps of `config`'s migration; `hook` only when one is configured.
pub fn all(config: &Config) -> Vec<Box<dyn Step>> {
    let snapshot: Snapshot = Arc::default();
    let mut steps: Vec<Box<dyn Step>> = vec![
        Box::new(Preflight::new(config)),
        Box::new(Seed::new(config)),
        Box::new(Prepare::new(config)),
        Box::new(Upgrade::new(config)),
        Box::new(ReplicateDb1::new(config)),
        Box::new(CatchUp::new(config)),
        Box::new(cutover::Freeze::new(config)),
        Box::new(cutover::Promote::new(config, snapshot.clone())),
        Box::new(cutover::Unfreeze::new(config)),
    ];
    if config.cutover.hook.is_some() {
        steps.push(Box::new(cutover::Hook::new(config)));
    }
    steps.push(Box::new(cutover::RepointDb2::new(config)));
    steps.push(Box::new(Verify::new(config, snapshot)));
    steps
}

/// The plan's identity for its journal: the parsed plan, so that comments and layout do
/// not make another plan (`Config`'s `Debug` holds no secret, only where they are).
pub fn plan_id(source: &str, config: &Config) -> PlanId {
    PlanId::of(source, format!("{config:?}").as_bytes())
}

/// Step `verify`: db0 (frozen) against db1 as it was at the promote, and db1 against
/// db2, held at the same position; then db2 follows db1 on.
pub struct Verify {
    config: Config,
    snapshot: Snapshot,
}

impl Verify {
    pub fn new(config: &Config, snapshot: Snapshot) -> Verify {
        Verify {
            config: config.clone(),
            snapshot,
        }
    }
}

/// What the comparisons found, kept in the journal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Verdict {
    summary: String,
    mismatches: Vec<String>,
}

impl Verify {
    /// db0 with db1's snapshot and the snapshot with db2; without the snapshot (a new
    /// dbm process), db0 with db2.
    async fn compare_all(&self) -> anyhow::Result<Verdict> {
        let options = verify::Options {
            chunk_rows: self.config.verify.chunk_rows,
            ..verify::Options::default()
        };
        let mut db0 = connect(&self.config, Role::Db0).await?;
        let mut db2 = connect(&self.config, Role::Db2).await?;
        let snapshot = self.snapshot.lock().await.take();
        let mut results = Vec::new();
        let note = match snapshot {
            Some(mut db1) => {
                results.push(compare(&mut db0, &mut db1, &options).await?);
                results.push(compare(&mut db1, &mut db2, &options).await?);
                let _ = db1.run("closing the snapshot", "ROLLBACK").await;
                db1.close().await;
                "db0 = db1 = db2"
            }
            None => {
                // The snapshot lived in the dbm process that promoted db1; db1 has taken
                // writes since. db2, held at the promote's position, stands in for it.
                tracing::warn!(
                    "db1's snapshot from the promote is gone (dbm was restarted): comparing \
                     db0 with db2, which holds db1's state at the promote"
                );
                results.push(compare(&mut db0, &mut db2, &options).await?);
                "db0 = db2 (db1's snapshot was lost with an earlier dbm process)"
            }
        };
        db0.close().await;
        db2.close().await;
        Ok(Verdict {
            summary: format!("{note}: {}", results[0]),
            mismatches: results
                .iter()
                .flat_map(|r| r.mismatches.iter().map(ToString::to_string))
                .collect(),
        })
    }
}

async fn compare(
    reference: &mut Db,
    other: &mut Db,
    options: &verify::Options,
) -> anyhow::Result<verify::Comparison> {
    let what = format!("comparing {} with {}", reference.endpoint, other.endpoint);
    let result = verify::compare(reference, other, options)
        .await
        .context(what)?;
    tracing::info!(
        "{} against {}: {result}",
        reference.endpoint,
        other.endpoint
    );
    Ok(result)
}

#[async_trait::async_trait]
impl Step for Verify {
    fn id(&self) -> StepId {
        StepId::Verify
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        // Recorded before db2 is let go: after that db2 moves on and a comparison
        // repeated by a resumed run would find db1's new writes on it.
        let result = match ctx.get::<Verdict>("verdict")? {
            Some(verdict) => verdict,
            None => {
                let verdict = self.compare_all().await?;
                ctx.set("verdict", &verdict)?;
                ctx.checkpoint()?;
                verdict
            }
        };
        let mut db2 = connect(&self.config, Role::Db2).await?;
        // db2 follows db1 on, whatever the comparison found.
        db2.run("letting db2 follow db1 on", "START SLAVE").await?;
        replicate::wait_running(&mut db2, Role::Db1, false).await?;
        db2.close().await;
        if !result.mismatches.is_empty() {
            bail!(
                "{} mismatch(es): {}",
                result.mismatches.len(),
                result.mismatches.join("; ")
            );
        }
        let freeze: Option<i64> = [StepId::Hook, StepId::Unfreeze]
            .into_iter()
            .find_map(|s| ctx.journal().get_opt(s, "freeze_ms").ok().flatten());
        Ok(format!(
            "{}{}",
            result.summary,
            freeze
                .map(|f| format!("; the write freeze was {f} ms"))
                .unwrap_or_default()
        ))
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        Ok(Undo::Nothing("it only compared".to_owned()))
    }
}
