//! The SMTP front (RFC 5321 with PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES and
//! STARTTLS): receives mail and asks the [`Backend`](crate::envelope::Backend) about
//! every recipient and message. It knows SMTP, not what a recipient or a verdict is.
//!
//! * [`Server`]: bind, accept within the connection limits, drain on shutdown.
//! * `connection`: one connection's I/O: buffers, batched replies, timeouts, STARTTLS.
//! * `session`: the state machine (LIFECYCLE.md), no I/O.
//! * `command`, `address`: command lines and paths, parsed; `line`: lines off the
//!   read buffer; `data`: the DATA receiver (end, dot-unstuffing, smuggling defence).
//! * `received`: avsx's Received header and transaction ids; `replies`: every reply
//!   code the front chooses, in one table; `tls`: the rustls configuration;
//!   `limits`: connection counts.
//!
//! Addresses are logged; message content never is.

mod address;
mod command;
mod connection;
mod data;
mod limits;
mod line;
mod received;
mod replies;
mod server;
mod session;
mod tls;

pub use server::{Server, TlsReloader};
