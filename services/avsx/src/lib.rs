//! avsx: the mail perimeter. It accepts mail only for recipients that exist, judges it
//! with spamd and clamd before accepting, and relays clean mail to the internal
//! server; it never accepts what it cannot deliver, so it never sends a bounce.
//!
//! * [`config`]: `/etc/avsx/avsx.toml` and its validation.
//! * [`envelope`]: what the SMTP front and the rest share: envelope, reply, [`envelope::Backend`].
//! * [`metrics`]: the `avsx_*` metrics.

pub mod config;
pub mod envelope;
pub mod metrics;
