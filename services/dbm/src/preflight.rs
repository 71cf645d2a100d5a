//! Step `preflight`: every precondition of `dbm plan`, checked again before anything
//! changes, and what the later steps need from it (replication mode, flavour, whether
//! db1 needs the upgrade); step `upgrade`: the upgrade command on db1 when it runs
//! another release series than db0.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Role;
use crate::host::Host;
use crate::journal::{Step, StepContext, StepId, Undo};
use crate::plan;
use crate::replicate::Setup;

/// How long the upgrade command may take.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(3600);

config_step!(Preflight);

#[async_trait::async_trait]
impl Step for Preflight {
    fn id(&self) -> StepId {
        StepId::Preflight
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let report = plan::check(&self.config).await;
        if !report.ok() {
            let failed: Vec<String> = report
                .failures()
                .map(|c| format!("{}: {}", c.what, c.message))
                .collect();
            bail!(
                "{} precondition(s) failed ({})",
                failed.len(),
                failed.join("; ")
            );
        }
        let mode = report.mode.context("no replication mode could be chosen")?;
        let mut db0 = crate::replicate::connect(&self.config, Role::Db0).await?;
        let flavour = db0.info().await?.flavour;
        db0.close().await;
        let setup = Setup {
            mode,
            flavour,
            needs_upgrade: report.needs_upgrade.unwrap_or(false),
        };
        ctx.set("setup", setup)?;
        Ok(format!(
            "{} checks passed; {flavour}, replication by {}{}",
            report.checks.len(),
            mode.as_str(),
            if setup.needs_upgrade {
                ", db1 needs the upgrade"
            } else {
                ""
            }
        ))
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        Ok(Undo::Nothing("it only read".to_owned()))
    }
}

config_step!(Upgrade);

#[async_trait::async_trait]
impl Step for Upgrade {
    fn id(&self) -> StepId {
        StepId::Upgrade
    }

    async fn run(&self, ctx: &mut StepContext<'_>) -> anyhow::Result<String> {
        let setup = Setup::of(ctx.journal())?;
        if !setup.needs_upgrade {
            return Ok("not needed: db0 and db1 run the same release series".to_owned());
        }
        let Some(command) = &self.config.seed.upgrade_command else {
            bail!("db1 runs another release series than db0: set seed.upgrade_command");
        };
        let host = Host::of(&self.config, &self.config.db1, "db1");
        tracing::info!(command = %command, host = host.name(), "upgrading db1");
        tokio::time::timeout(UPGRADE_TIMEOUT, host.run("seed.upgrade_command", command))
            .await
            .with_context(|| {
                format!(
                    "seed.upgrade_command did not finish within {}s",
                    UPGRADE_TIMEOUT.as_secs()
                )
            })??;
        Ok(format!("`{command}` done"))
    }

    async fn undo(&self, _ctx: &mut StepContext<'_>) -> anyhow::Result<Undo> {
        Ok(Undo::Nothing(
            "the upgrade changed only db1's system tables; undoing the seed replaces them"
                .to_owned(),
        ))
    }
}
