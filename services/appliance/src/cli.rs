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

    /// Worker threads of a daemon [default: TOKIO_WORKER_THREADS, else one per CPU].
    /// 1 runs the daemon as one event loop on one thread, without the cross-thread
    /// handoffs of a work-stealing scheduler: what HAProxy's `nbthread 1` is.
    #[arg(long, value_name = "N", global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

impl CommonArgs {
    /// `--config`, or the service's default path.
    pub fn config_or(&self, default: &str) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(default))
    }

    /// The async runtime of a daemon, with [`CommonArgs::threads`] workers.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let threads = self.threads.map(usize::from).or_else(|| {
            std::env::var("TOKIO_WORKER_THREADS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
        });
        match threads {
            Some(1) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Some(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
            None => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build(),
        }
    }
}

/// The body of every service's `main`, after argument parsing: logging as the common
/// options say, then `run`. An error is printed as `name: what: why: ...` and exits 64
/// when its chain holds a config error or something `is_usage` calls one, else 1.
pub fn main(
    name: &str,
    common: &CommonArgs,
    run: impl FnOnce() -> anyhow::Result<std::process::ExitCode>,
    is_usage: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> std::process::ExitCode {
    if let Err(e) = crate::logging::init(common.log_format, &common.log_level) {
        eprintln!("{name}: {e}");
        return std::process::ExitCode::from(EXIT_CONFIG as u8);
    }
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            let usage = e
                .chain()
                .any(|c| c.is::<crate::config::ConfigError>() || is_usage(c));
            std::process::ExitCode::from((if usage { EXIT_CONFIG } else { EXIT_FAILURE }) as u8)
        }
    }
}
