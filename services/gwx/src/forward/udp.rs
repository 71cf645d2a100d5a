//! UDP forwarding. A session is one client address on one listener (with the listener's
//! own address that is the 4-tuple); it gets its own connected socket toward the backend,
//! so replies find their way back without a lookup. Sessions end after the idle timeout;
//! new ones are refused beyond the service's cap and the source's limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Settings;
use super::source_limit::SourceSlot;
use super::splice::Activity;
use crate::metrics::{ActiveGuard, Refusal};

/// Largest datagram forwarded (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// One client's session: its socket toward the backend and when it last saw a datagram
/// either way (both directions keep a session alive).
#[derive(Clone)]
struct Session {
    upstream: Arc<UdpSocket>,
    activity: Arc<Activity>,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Session>>>;

/// Receives on `socket` until `stop`, forwarding each datagram in its client's session.
pub async fn serve(
    socket: UdpSocket,
    settings: watch::Receiver<Arc<Settings>>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let socket = Arc::new(socket);
    let local = socket.local_addr().ok();
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(?local, error = %e, "udp receive failed");
                    continue;
                }
            },
        };
        let s = settings.borrow().clone();
        let existing = sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&client)
            .cloned();
        let session = match existing {
            Some(session) => session,
            None => match open_session(&socket, client, &s, &sessions, &stop, &tracker).await {
                Some(session) => session,
                None => continue,
            },
        };
        session.activity.touch();
        match session.upstream.send(&buf[..n]).await {
            Ok(sent) => {
                s.counters.to_backend.inc_by(sent as u64);
            }
            Err(e) => {
                tracing::debug!(service = %s.service, %client, error = %e, "send to backend failed")
            }
        }
    }
    tracing::info!(?local, "udp listener closed");
}

/// Opens a session for `client`, or counts why not.
async fn open_session(
    socket: &Arc<UdpSocket>,
    client: SocketAddr,
    s: &Arc<Settings>,
    sessions: &Sessions,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> Option<Session> {
    if sessions.lock().unwrap_or_else(|e| e.into_inner()).len() >= s.limits.udp_sessions {
        s.counters.refuse(Refusal::SessionCap);
        return None;
    }
    let Some(slot) = s.source_limit.acquire(client.ip()) else {
        s.counters.refuse(Refusal::SourceLimit);
        return None;
    };
    let bind: SocketAddr = if s.backend.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .unwrap();
    let upstream = match UdpSocket::bind(bind).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(service = %s.service, error = %e, "cannot open a socket toward the backend");
            return None;
        }
    };
    if let Err(e) = upstream.connect(s.backend).await {
        s.counters.refuse(Refusal::BackendUnreachable);
        tracing::warn!(service = %s.service, backend = %s.backend, error = %e, "backend unreachable");
        return None;
    }
    let session = Session {
        upstream: Arc::new(upstream),
        activity: Activity::new(),
    };
    sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(client, session.clone());
    tracker.spawn(replies(
        socket.clone(),
        session.clone(),
        client,
        s.clone(),
        sessions.clone(),
        stop.clone(),
        slot,
    ));
    Some(session)
}

/// Sends the backend's replies of one session back to its client until the session is
/// idle for the timeout or the listener stops; then forgets the session.
async fn replies(
    socket: Arc<UdpSocket>,
    session: Session,
    client: SocketAddr,
    s: Arc<Settings>,
    sessions: Sessions,
    stop: CancellationToken,
    _slot: SourceSlot,
) {
    let _active = ActiveGuard::new(&s.counters);
    let Session { upstream, activity } = session;
    let timeout = s.limits.udp_idle_timeout();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let left = timeout.saturating_sub(activity.idle());
        if left.is_zero() {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(left) => {}
            r = upstream.recv(&mut buf) => match r {
                Ok(n) => {
                    activity.touch();
                    if socket.send_to(&buf[..n], client).await.is_ok() {
                        s.counters.to_client.inc_by(n as u64);
                    }
                }
                // ICMP port unreachable from the backend surfaces here; keep the session
                // until it idles out, the client may retry.
                Err(e) => tracing::debug!(service = %s.service, %client, error = %e, "backend reply failed"),
            },
        }
    }
    sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&client);
}
