//! The test bed of the perimeter appliances: what service tests need to run against real
//! peers on one machine.
//!
//! * [`netns`]: network namespaces as hosts, veth links between them, commands and
//!   sockets inside them, nftables rulesets applied in them; all removed on drop.
//! * [`topology`]: ready-made layouts, e.g. client -> gateway -> backend.
//! * [`backends`] and [`clients`]: TCP/UDP servers that report what they saw (PROXY
//!   headers included) and clients to drive them from inside a namespace.
//! * [`process`]: child processes killed on drop (also on panic) with readiness checks.
//! * [`servers`]: real servers from Debian packages (MariaDB, slapd, spamd, clamd,
//!   smtp-sink, Postfix, nginx, openssl s_server, sshd) on a private port and data dir.
//! * [`sql_writer`]: a client inserting without pause that keeps the books of a
//!   migration test (acknowledged ids, stalls).
//! * [`vm`]: QEMU virtual machines booted from a kernel and an initramfs, driven through a
//!   shell on a serial port, on user networking or private L2 segments; killed on drop.
//! * [`golden`]: golden-file assertions (`BLESS=1` rewrites them).
//! * [`require`]: "this test needs root / tool X" as a clear failure, never a silent pass.
//!
//! Addresses come from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32) so a test host can never be mistaken for a real one.

pub mod backends;
pub mod clients;
pub mod error;
pub mod golden;
pub mod netns;
pub mod ports;
pub mod process;
pub mod require;
pub mod servers;
pub mod sql_writer;
pub mod topology;
pub mod vm;

pub use error::{Error, Result};
pub use netns::{End, Netns, link};
pub use process::Process;
