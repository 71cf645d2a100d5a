//! Anti-bruteforce bans, fail2ban-compatible: filters in fail2ban's `filter.d` format
//! read log lines, jails (TOML) count failures per source and ban into the gateway's
//! nftables ban sets with timeouts.
//!
//! * [`filter`]: fail2ban filter files, their regex tags and date patterns, and the
//!   per-line matcher.
//! * [`follow`]: log sources: a file followed across rotation and truncation, or
//!   `journalctl -o json` output.

pub mod counter;
pub mod daemon;
pub mod filter;
pub mod follow;
pub mod guard;
pub mod jails;
pub mod judge;
pub mod metrics;
pub mod nftset;
pub mod report;
pub mod state;
