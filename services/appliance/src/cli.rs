//! Command-line options and exit codes every service binary shares, so `gwx --help` and
//! `avsx --help` read alike and scripts can rely on the same codes.

use std::path::PathBuf;

use crate::logging::LogFormat;

/// Exit code for a bad config file or bad arguments (sysexits EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;
/// Exit code for a failure while running.
pub const EXIT_FAILURE: i32 = 1;

/// Options shared by every service; `#[command(flatten)]` them into a service's CLI.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Config file (TOML).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log level or filter (`info`, `debug`, `gwx=debug,info`); RUST_LOG overrides it.
    #[arg(long, default_value = "info", value_name = "FILTER", global = true)]
    pub log_level: String,
}
