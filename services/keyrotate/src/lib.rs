//! keyrotate: OpenPGP key rotation that the rest of the world can follow.
//!
//! * [`config`]: the rotation description (TOML) and its validation.
//! * [`secrets`]: passphrases from files or the environment, never logged.
//! * [`keys`]: the old keys, read and unlocked before anything is written.
//! * [`rotate`]: the new key, the certifications and the revocations (no I/O).

pub mod config;
pub mod keys;
pub mod rotate;
pub mod secrets;
