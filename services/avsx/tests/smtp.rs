//! The SMTP front over loopback, driven with raw TCP (exact replies), a rustls client,
//! swaks and `openssl s_client`, against a fake backend that records what it is
//! handed. Each feature has its file under `smtp/`; every test stops by itself.

#[path = "smtp/harness.rs"]
mod harness;
#[path = "smtp/limits.rs"]
mod limits;
#[path = "smtp/protocol.rs"]
mod protocol;
#[path = "smtp/smuggling.rs"]
mod smuggling;
#[path = "smtp/tls.rs"]
mod tls;
