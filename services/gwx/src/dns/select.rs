//! Address selection (in progress).
