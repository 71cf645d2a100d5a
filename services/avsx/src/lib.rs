//! avsx: the mail perimeter. It accepts mail only for recipients that exist, judges it
//! with spamd and clamd before accepting, and relays clean mail to the internal
//! server; it never accepts what it cannot deliver, so it never sends a bounce.
//!
//! * [`config`]: `/etc/avsx/avsx.toml` and its validation.
//! * [`envelope`]: what the SMTP front and the rest share: envelope, reply, [`envelope::Backend`].
//! * [`metrics`]: the `avsx_*` metrics.
//! * [`perimeter`]: the backend of the SMTP front: recipients, judgement, relay, statistics.
//! * [`smtp`]: the SMTP front: listeners, sessions, STARTTLS, the DATA receiver.
//! * [`scan`]: content judgement before the queue: spamd and clamd at once, then deliver
//!   (with X-Spam fields), refuse (550/552/554) or tempfail (451) per `[scan]`.
//! * [`relay`]: handing accepted mail to the internal server; its reply becomes ours.
//! * [`stats`]: the verdict store and its report (`avsx stats`): score histogram, what-if levels.
//! * [`recipients`]: whether an address is accepted: the static map, then LDAP; `avsx recipients sync`.

pub mod config;
pub mod envelope;
pub mod metrics;
pub mod perimeter;
pub mod recipients;
pub mod relay;
pub mod scan;
pub mod smtp;
pub mod stats;
