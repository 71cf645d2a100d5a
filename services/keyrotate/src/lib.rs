//! keyrotate: OpenPGP key rotation that the rest of the world can follow.
//!
//! * [`config`]: the rotation description (TOML) and its validation.
//! * [`secrets`]: passphrases from files or the environment, never logged.
//! * [`keys`]: the old keys, read and unlocked before anything is written.
//! * [`rotate`]: the new key, the certifications and the revocations (no I/O).
//! * [`notice`]: the signed PGP/MIME "my key has changed" mail, its recipients, and SMTP.
//! * [`publish`]: uploads to HKP and VKS keyservers, and the Web Key Directory files.
//! * [`run`]: the steps in order, resumable from the journal.
//! * [`output`]: the files written, each atomically; [`journal`]: what is done.

pub mod config;
pub mod journal;
pub mod keys;
pub mod notice;
pub mod output;
pub mod publish;
pub mod rotate;
pub mod run;
pub mod secrets;
