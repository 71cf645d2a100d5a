//! Real servers from Debian packages, started on a private port and data dir, waited for
//! until they answer, and stopped when their handle drops.
