//! dbm: live MySQL/MariaDB migration with about a second of downtime, as a resumable,
//! journaled plan: seed db1 from db0 with a hot physical backup, replicate, cut over,
//! repoint db2, verify.

pub mod config;
pub mod cutover;
pub mod db;
pub mod host;
pub mod journal;
pub mod plan;
pub mod preflight;
pub mod replicate;
pub mod seed;
pub mod shell;
pub mod steps;
pub mod verify;
