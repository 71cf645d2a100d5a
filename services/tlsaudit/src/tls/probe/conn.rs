//! Connections to the target: resolve once, connect with a deadline, STARTTLS if asked,
//! send one ClientHello and read the answer. Every step of a connection shares one
//! deadline (`Options::timeout`), so a server that trickles bytes cannot stretch it.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::hello::ClientHello;
use super::reply::{Progress, Reader, Reply, ReplyError, Until};
use super::starttls::{self, StarttlsError};
use crate::tls::Options;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connect to {addr}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    // The cause follows in the error chain; repeating it here would print it twice.
    #[error("STARTTLS")]
    Starttls(#[from] StarttlsError),
    #[error(transparent)]
    Reply(#[from] ReplyError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How the server answered a ClientHello.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Reply(Reply),
    /// Closed or reset the connection without a word: the usual refusal of servers that
    /// do not send alerts.
    Closed,
}

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    /// As the user wrote it, for messages.
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// SNI name (None when the host is an IP address and no override was given).
    pub sni: Option<String>,
    /// The address, when the host is one (for rustls's ServerName).
    pub ip: Option<IpAddr>,
    pub smtp: bool,
    pub timeout: Duration,
}

impl Target {
    pub fn new(options: &Options) -> anyhow::Result<Target> {
        let name = options.target.clone();
        let smtp = match options.starttls.as_deref() {
            None => false,
            Some(p) if p.eq_ignore_ascii_case("smtp") => true,
            Some(p) => return Err(StarttlsError::Unsupported(p.to_owned()).into()),
        };
        let (host, _port) =
            split_host_port(&name).with_context(|| format!("target {name:?} is not host:port"))?;
        let ip = host.parse::<IpAddr>().ok();
        let addrs: Vec<SocketAddr> = name
            .to_socket_addrs()
            .with_context(|| format!("resolve {name}"))?
            .collect();
        if addrs.is_empty() {
            bail!("resolve {name}: no addresses");
        }
        let sni = match &options.sni {
            Some(s) => Some(s.clone()),
            None if ip.is_none() => Some(host.to_owned()),
            None => None,
        };
        Ok(Target {
            name,
            addrs,
            sni,
            ip,
            smtp,
            timeout: options.timeout,
        })
    }

    /// A connection ready for a ClientHello (STARTTLS done), and its deadline.
    pub fn connect(&self) -> Result<(TcpStream, Deadline), ConnError> {
        let deadline = Deadline::after(self.timeout);
        let mut last = None;
        let mut stream = None;
        for &addr in &self.addrs {
            let remaining = deadline.remaining()?;
            match TcpStream::connect_timeout(&addr, remaining) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    last = Some(ConnError::Timeout(self.timeout))
                }
                Err(source) => last = Some(ConnError::Connect { addr, source }),
            }
        }
        let Some(mut stream) = stream else {
            return Err(last.unwrap_or(ConnError::Timeout(self.timeout)));
        };
        // Hellos are single small writes; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        if self.smtp {
            deadline.arm(&stream)?;
            starttls::smtp(&mut DeadlineStream {
                stream: &mut stream,
                deadline,
            })
            .map_err(|e| deadline.io_error(e))??;
        }
        Ok((stream, deadline))
    }

    /// Sends `hello` on a new connection and reads the answer.
    pub fn ask(&self, hello: &ClientHello, until: Until) -> Result<Answer, ConnError> {
        let (mut stream, deadline) = self.connect()?;
        deadline.arm(&stream)?;
        stream
            .write_all(&hello.to_bytes())
            .map_err(|e| deadline.io_error(e))?;
        let mut reader = Reader::new(until);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            deadline.arm(&stream)?;
            let n = match stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // A reset after (part of) a reply still leaves what was read.
                    return match (reader.finish(), deadline.io_error(e)) {
                        (Some(reply), _) => Ok(Answer::Reply(reply)),
                        (None, ConnError::Io(e)) if is_reset(&e) => Ok(Answer::Closed),
                        (None, e) => Err(e),
                    };
                }
            };
            if n == 0 {
                return Ok(reader.finish().map_or(Answer::Closed, Answer::Reply));
            }
            if let Progress::Done(reply) = reader.feed(&buf[..n])? {
                return Ok(Answer::Reply(reply));
            }
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// `host:port`, `[v6]:port` or `v6-literal:port` split into host and port.
fn split_host_port(target: &str) -> Option<(&str, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// The moment a connection must be done by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    pub fn remaining(&self) -> Result<Duration, ConnError> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(ConnError::Timeout(self.total))
        } else {
            Ok(left)
        }
    }

    /// Sets the socket's timeouts to what is left, before each blocking call.
    pub fn arm(&self, stream: &TcpStream) -> Result<(), ConnError> {
        let left = self.remaining()?;
        stream.set_read_timeout(Some(left))?;
        stream.set_write_timeout(Some(left))?;
        Ok(())
    }

    /// Socket timeouts show up as WouldBlock (Unix) or TimedOut (Windows).
    pub fn io_error(&self, e: std::io::Error) -> ConnError {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => ConnError::Timeout(self.total),
            _ => ConnError::Io(e),
        }
    }
}

/// A stream that re-arms the deadline before every read and write (for the STARTTLS
/// dialogue and rustls, which do their own reads).
pub struct DeadlineStream<'a> {
    pub stream: &'a mut TcpStream,
    pub deadline: Deadline,
}

impl DeadlineStream<'_> {
    fn arm(&self) -> std::io::Result<()> {
        let left = self
            .deadline
            .remaining()
            .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.set_write_timeout(Some(left))
    }
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("mx.example:25"), Some(("mx.example", 25)));
        assert_eq!(split_host_port("[::1]:443"), Some(("::1", 443)));
        assert_eq!(split_host_port("127.0.0.1:443"), Some(("127.0.0.1", 443)));
        assert_eq!(split_host_port("mx.example"), None);
    }

    #[test]
    fn sni_is_the_host_name_never_an_address() {
        let options = |target: &str, sni: Option<&str>| Options {
            target: target.into(),
            sni: sni.map(Into::into),
            starttls: None,
            timeout: Duration::from_secs(1),
            ca_file: None,
        };
        let t = Target::new(&options("127.0.0.1:443", None)).unwrap();
        assert_eq!((t.sni, t.ip), (None, Some(IpAddr::from([127, 0, 0, 1]))));
        let t = Target::new(&options("localhost:443", None)).unwrap();
        assert_eq!(t.sni.as_deref(), Some("localhost"));
        let t = Target::new(&options("127.0.0.1:443", Some("mx.example"))).unwrap();
        assert_eq!(t.sni.as_deref(), Some("mx.example"));
        let mut o = options("127.0.0.1:25", None);
        o.starttls = Some("imap".into());
        assert!(Target::new(&o).unwrap_err().to_string().contains("imap"));
    }
}
