//! `dbm-migrate`: one live migration of a MariaDB master with dbm under a steady write
//! load, against a plain `mariabackup --stream | mbstream -x` copy of the same data; the
//! seed rates and their ratio, the write freeze, the longest write gap a client saw, the
//! cutover time and the writes lost (none allowed). Needs root and MariaDB with
//! mariabackup. See `bench/README.md`.
//!
//! Exit status: 0 when the migration produced valid numbers (slow is fine) or dbm could
//! not run yet (skipped), 1 when something was broken (dbm failed, an acknowledged write
//! lost), 2 when the run itself could not be set up.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::dbm::{self, Options, report, service};
use clap::Parser;

/// Migrates a MariaDB master with dbm under load and compares its seed with mariabackup's.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Data to generate on db0, in GB (10^9 bytes of InnoDB tablespace files).
    #[arg(long, default_value_t = 2.0, value_parser = gb)]
    gb: f64,
    /// A short run: 0.2 GB.
    #[arg(long, conflicts_with = "gb")]
    quick: bool,
    /// The dbm binary [default: target/release/dbm in this workspace].
    #[arg(long)]
    dbm: Option<PathBuf>,
    /// Accepted so `scripts/bench` can pass its arguments to every benchmark; unused
    /// (a migration runs once, as long as it takes).
    #[arg(long, hide = true)]
    seconds: Option<u32>,
    /// Accepted like --seconds; unused (one migration, no rounds).
    #[arg(long, hide = true)]
    rounds: Option<u32>,
}

fn gb(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.01..=1000.0).contains(&v) => Ok(v),
        Ok(_) => Err("between 0.01 and 1000".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        dbm: args.dbm.unwrap_or_else(service::default_binary),
        gb: if args.quick { 0.2 } else { args.gb },
    };
    let mut out = std::io::stdout();
    let outcome = match dbm::run(&opts, &mut out) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("dbm-migrate: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = report::print(&mut out, &outcome) {
        eprintln!("dbm-migrate: print the report: {e}");
        return ExitCode::from(2);
    }
    if outcome.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
