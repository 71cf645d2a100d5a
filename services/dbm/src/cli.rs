//! The command line: `dbm plan | run | status | abort`.

use std::path::Path;
use std::process::ExitCode;

use appliance::cli::CommonArgs;

use dbm::config::Config;
use dbm::journal::{Journal, Runner, StepId};
use dbm::steps;

/// Default migration plan.
const DEFAULT_CONFIG: &str = "/etc/dbm/plan.toml";

/// Live MySQL/MariaDB migration with about a second of downtime: seed a new master db1
/// from db0 with a hot physical backup, replicate db0 -> db1 -> db2, cut over, verify.
#[derive(Debug, clap::Parser)]
#[command(name = "dbm", version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Connect to db0, db1 and db2, check every precondition and print the steps the
    /// run will take; changes nothing. Exits 1 when a precondition fails.
    Plan,
    /// Run the migration, or continue it from the first step not done (after a failure,
    /// a crash or kill -9). Each step's start and result go to the journal
    /// (`state_file`). Exits 1 when a step fails; run again once the cause is fixed.
    Run {
        /// Stop once this step is done, e.g. `catch_up`: seed and replicate now, cut
        /// over later with another `dbm run`.
        #[arg(long, value_name = "STEP")]
        until: Option<StepId>,
    },
    /// Show where the migration stands, step by step, from the journal; connects to
    /// nothing.
    Status,
    /// Roll back what can be rolled back, last step first: db0 writable again, db1's
    /// replication stopped, its old datadir back. Stops at a step that cannot be undone
    /// (once db1 is writable). Run again to continue an interrupted abort.
    Abort,
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(appliance::config::load::<Config>(path)?)
}

pub fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    let config = load(&args.common.config_or(DEFAULT_CONFIG))?;
    let source = args.common.config_or(DEFAULT_CONFIG).display().to_string();
    match args.command {
        Command::Plan => plan(&config),
        Command::Run { until } => run(&source, &config, until),
        Command::Status => status(&config),
        Command::Abort => abort(&source, &config),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run(source: &str, config: &Config, until: Option<StepId>) -> anyhow::Result<ExitCode> {
    let runner = Runner::new(&config.state_file, steps::plan_id(source, config));
    let steps = steps::all(config);
    let report = runtime()?.block_on(runner.run_until(&steps, until));
    match report {
        Ok(report) => {
            print!("{report}");
            let journal = Journal::load(&config.state_file)?;
            let freeze = journal.as_ref().and_then(|j| {
                [StepId::Hook, StepId::Unfreeze]
                    .into_iter()
                    .find_map(|s| j.get_opt::<i64>(s, "freeze_ms").ok().flatten())
            });
            if let Some(ms) = freeze {
                println!("write freeze: {ms} ms");
            }
            match journal.as_ref().and_then(Journal::current) {
                None => println!("migration done"),
                Some(next) => println!("stopped before {next}: `dbm run` continues there"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // What happened before the failure is in the journal: show it.
            if let Ok(status) = Runner::status(&config.state_file) {
                eprint!("{status}");
            }
            Err(e.into())
        }
    }
}

fn status(config: &Config) -> anyhow::Result<ExitCode> {
    print!("{}", Runner::status(&config.state_file)?);
    Ok(ExitCode::SUCCESS)
}

fn abort(source: &str, config: &Config) -> anyhow::Result<ExitCode> {
    let runner = Runner::new(&config.state_file, steps::plan_id(source, config));
    let steps = steps::all(config);
    let report = runtime()?.block_on(runner.abort(&steps))?;
    print!("{report}");
    println!(
        "aborted: remove {} to start over",
        config.state_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn plan(config: &Config) -> anyhow::Result<ExitCode> {
    let report = runtime()?.block_on(dbm::plan::check(config));
    print!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
