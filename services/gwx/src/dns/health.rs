//! Health checks (in progress).
