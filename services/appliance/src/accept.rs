//! Accepting TCP connections the way every listener of ours must: an accept error
//! (EMFILE, ENFILE, ENOBUFS, a connection reset before it was taken) is logged and
//! retried after a short pause instead of ending the listener or spinning on it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long to wait after a failed accept: long enough for file descriptors to be
/// released, short enough that a burst of clients barely notices.
const BACKOFF: Duration = Duration::from_millis(50);

/// The next connection on `listener`; errors are logged and retried.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                let local = listener.local_addr().ok();
                tracing::warn!(?local, error = %e, "accept failed");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}
