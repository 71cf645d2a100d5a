//! systemd notifications (`Type=notify-reload` units): READY, RELOADING, STOPPING and the
//! watchdog keep-alive. Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Tells the service manager the service is up, with a status line for `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager a reload started. systemd requires the monotonic timestamp
/// with RELOADING=1 so it can tell this reload from an earlier one.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC for RELOADING=1"),
    }
}

/// Tells the service manager the service is draining and will exit.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        // Losing a notification is not fatal to the service, but systemd will act on the
        // missing state (time out the start, kill on watchdog), so it must be visible.
        tracing::warn!(error = %e, "cannot send notification to systemd");
    }
}

/// Sends WATCHDOG=1 at half the interval systemd asked for (`WatchdogSec=`), until
/// `stop` is cancelled. Returns `None` when no watchdog is configured.
pub fn spawn_watchdog(stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let period = (interval / 2).max(Duration::from_millis(10));
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
            }
        }
    }))
}
