//! One check of one address: a TCP connect and, if asked, an HTTP request whose status
//! line must say 2xx or 3xx, all within one timeout.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::HttpCheck;

/// The most of a response read while looking for the end of the status line.
const STATUS_LINE_MAX: usize = 512;

/// A passed check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Connected,
    Http(u16),
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pass::Connected => f.write_str("connected"),
            Pass::Http(code) => write!(f, "HTTP {code}"),
        }
    }
}

/// Why a check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens on the port (RST).
    Refused,
    /// No verdict within the timeout (connect or response).
    Timeout,
    /// Another socket error (unreachable, reset, ...).
    Error(io::ErrorKind),
    /// The server answered with a status other than 2xx or 3xx.
    Status(u16),
    /// The server closed or sent something that is no HTTP status line.
    BadResponse,
}

impl Failure {
    /// The `result` label of the checks counter.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Timeout => "timeout",
            Failure::Error(_) => "error",
            Failure::Status(_) => "http_status",
            Failure::BadResponse => "bad_response",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused => f.write_str("connect refused"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Error(kind) => write!(f, "socket error: {kind}"),
            Failure::Status(code) => write!(f, "HTTP {code}"),
            Failure::BadResponse => f.write_str("no HTTP status line"),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::TimedOut => Failure::Timeout,
            kind => Failure::Error(kind),
        }
    }
}

/// Checks `addr` once, the whole exchange bounded by `timeout`.
pub async fn check(
    addr: SocketAddr,
    http: Option<&HttpCheck>,
    timeout: Duration,
) -> Result<Pass, Failure> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(addr).await?;
        let Some(http) = http else {
            return Ok(Pass::Connected);
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            http.path, http.host
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = [0u8; STATUS_LINE_MAX];
        let mut len = 0;
        while !buf[..len].contains(&b'\n') && len < buf.len() {
            match stream.read(&mut buf[len..]).await? {
                0 => break,
                n => len += n,
            }
        }
        match status_code(&buf[..len]) {
            Some(code @ 200..=399) => Ok(Pass::Http(code)),
            Some(code) => Err(Failure::Status(code)),
            None => Err(Failure::BadResponse),
        }
    })
    .await
    .unwrap_or(Err(Failure::Timeout))
}

/// The status code of a response starting `HTTP/1.x NNN`, if complete up to its line end.
pub fn status_code(response: &[u8]) -> Option<u16> {
    let end = response.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&response[..end]).ok()?;
    let mut words = line.trim_end_matches('\r').split(' ');
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        for (response, expected) in [
            (&b"HTTP/1.1 200 OK\r\n"[..], Some(200)),
            (b"HTTP/1.0 302 Found\r\nLocation: /\r\n", Some(302)),
            (b"HTTP/1.1 503 Service Unavailable\r\n", Some(503)),
            (b"HTTP/1.1 204\r\n", Some(204)),
            (b"HTTP/1.1 200 OK", None), // line not complete
            (b"", None),
            (b"SSH-2.0-OpenSSH_9.6\r\n", None),
            (b"HTTP/1.1 20 OK\r\n", None),
            (b"HTTP/1.1 2000 OK\r\n", None),
            (b"HTTP/1.1 +20 OK\r\n", None),
            (b"HTTP/1.1 999 Odd\r\n", None),
            (b"\xff\xfe 200\r\n", None),
        ] {
            assert_eq!(
                status_code(response),
                expected,
                "{}",
                String::from_utf8_lossy(response)
            );
        }
    }

    #[tokio::test]
    async fn refused_and_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timeout = Duration::from_secs(5);
        assert_eq!(check(addr, None, timeout).await, Ok(Pass::Connected));
        drop(listener);
        assert_eq!(check(addr, None, timeout).await, Err(Failure::Refused));
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // Accepts (the kernel does, from the backlog) but never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = HttpCheck {
            path: "/health".into(),
            host: "gw.example".into(),
        };
        let addr = listener.local_addr().unwrap();
        let result = check(addr, Some(&http), Duration::from_millis(100)).await;
        assert_eq!(result, Err(Failure::Timeout));
    }
}
