//! Log sources (work in progress).
