//! Benchmarks of the perimeter appliances. Each runs one of our services and the real
//! peers it is compared with in the same run, on the same machine and in the same
//! network namespaces, and prints the ratios. Timings are reported, never asserted: a
//! benchmark fails only when something is broken (a peer that does not start, no
//! throughput at all, every connection failed).
//!
//! Parts meant to be reused by every benchmark:
//!
//! * [`cmd`]: programs run to completion under a deadline, version strings, listening
//!   sockets inside a namespace.
//! * [`daemon`]: a server process with a private directory, started in a namespace and
//!   waited for until it listens; killed and cleaned up on drop.
//! * [`forwarders`]: the L4 forwarders our gateway is compared with (HAProxy in `mode
//!   tcp`, nginx `stream`), configured for a list of `listen -> backend` pairs.
//! * [`measure`]: bulk throughput with iperf3 and a connections-per-second client.
//! * [`table`]: plain-text tables and ratios for the report.
//!
//! The benchmarks: [`gwx_forward`] (binary `gwx-forward`), [`gwx_bans`] (binary
//! `gwx-bans`), [`gwx_dns`] (binary `gwx-dns`), [`avsx`] (binary `avsx-relay`), [`tlsaudit`]
//! (binary `tlsaudit-vs-testssl`), [`dbm`] (binary `dbm-migrate`), [`images`] (binary
//! `images`).

pub mod avsx;
pub mod cmd;
pub mod daemon;
pub mod dbm;
pub mod forwarders;
pub mod gwx_bans;
pub mod gwx_dns;
pub mod gwx_forward;
pub mod images;
pub mod measure;
pub mod table;
pub mod tlsaudit;
