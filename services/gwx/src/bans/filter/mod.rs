//! fail2ban filters (work in progress).
