//! The shared runtime of the perimeter appliances. Every service (gwx, avsx, tlsaudit,
//! dbm, keyrotate) gets these from here and never re-implements them:
//!
//! * [`config`]: TOML config in two stages (serde with unknown keys rejected, then
//!   validation), every problem reported with file, line, key and what was expected.
//! * [`logging`]: `tracing` to stderr as text or JSON lines.
//! * [`endpoint`] and [`health`]: `/metrics` (OpenMetrics text) and `/healthz`.
//! * [`lifecycle`]: SIGHUP reload, SIGTERM/SIGINT graceful drain, wired to [`notify`]
//!   (systemd READY/RELOADING/STOPPING/WATCHDOG).
//! * [`state`]: atomic, durable state files.
//! * [`cli`] and [`runtime_config`]: the options and config section all services share.

pub mod accept;
pub mod cli;
pub mod config;
pub mod endpoint;
pub mod health;
pub mod lifecycle;
pub mod logging;
pub mod notify;
pub mod runtime_config;
pub mod state;
pub mod throttle;

pub use config::{ConfigError, Problems, Validate};
pub use lifecycle::{Runtime, Stopped};
pub use runtime_config::RuntimeConfig;
