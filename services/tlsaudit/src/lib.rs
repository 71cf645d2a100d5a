//! tlsaudit: grades security headers and TLS, finds the mail clients that break, and
//! writes the fix.
//!
//! * [`report`]: what audits produce and outputs render.
//! * [`tls`]: the TLS audit (probe, certificate, rating).
pub mod report;
pub mod tls;
