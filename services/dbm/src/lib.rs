//! dbm: live MySQL/MariaDB migration with about a second of downtime, as a resumable,
//! journaled plan: seed db1 from db0 with a hot physical backup, replicate, cut over,
//! repoint db2, verify.

/// A step that needs only the plan: `config_step!(/// doc\n Freeze);` declares
/// `pub struct Freeze { config }` and `Freeze::new(&Config)`.
macro_rules! config_step {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            config: crate::config::Config,
        }

        impl $name {
            pub fn new(config: &crate::config::Config) -> $name {
                $name {
                    config: config.clone(),
                }
            }
        }
    };
}

pub mod config;
pub mod cutover;
pub mod db;
pub mod host;
pub mod journal;
pub mod pipe;
pub mod plan;
pub mod preflight;
pub mod replicate;
pub mod seed;
pub mod shell;
pub mod steps;
pub mod verify;
