//! Free TCP/UDP ports on loopback for servers the tests start.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

use crate::error::{IoContext, Result};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that is free for both TCP and UDP on 127.0.0.1 right now and was not handed
/// out before in this process. Another process can still take it before the server
/// binds; the readiness check then fails with the server's own bind error in its log.
pub fn free_port() -> Result<u16> {
    let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context(|| "bind an ephemeral port on 127.0.0.1".into())?
            .port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && seen.insert(port) {
            return Ok(port);
        }
    }
}
