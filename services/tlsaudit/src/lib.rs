//! tlsaudit: grades security headers and TLS, finds the mail clients that break, and
//! writes the fix.
//!
//! * [`report`]: what audits produce and outputs render.
//! * [`headers`]: the header audit (Mozilla Observatory score, securityheaders-style
//!   letter, error pages).
//! * [`tls`]: the TLS audit (probe, certificate, rating).
//! * [`output`]: audits rendered as text for a terminal, JSON for scripts, or one
//!   self-contained HTML page.
//! * [`postfix_log`]: which mail clients fail the TLS handshake, from Postfix logs.
//! * [`configgen`]: the hardened nginx and Postfix TLS configuration (Mozilla guidelines).
pub mod configgen;
pub mod headers;
pub mod output;
pub mod postfix_log;
pub mod report;
pub mod tls;
