//! What the SMTP tests share: a fake backend that records what it is given, a server
//! on a loopback port, a raw client reading exact replies (plain or TLS), throwaway
//! certificates, and external clients (swaks, openssl) run with a time limit.

#![allow(dead_code)] // each feature file uses its own part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use avsx::config::{Smtp, Tls};
use avsx::envelope::{Backend, Envelope, Reply};
use avsx::metrics::Metrics;
use avsx::smtp::{Server, TlsReloader};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const HOST: &str = "mx.test";
/// How long a test waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Accepts recipients at example.org, refuses the rest (550 5.1.1), records messages.
#[derive(Default)]
pub struct Fake {
    messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
    rcpts: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Backend for Fake {
    async fn rcpt(&self, _: &Envelope, rcpt: &str) -> Reply {
        self.rcpts.lock().unwrap().push(rcpt.to_owned());
        if rcpt.to_ascii_lowercase().ends_with("@example.org") {
            Reply::new(250, "2.1.5", "recipient OK")
        } else {
            Reply::new(550, "5.1.1", "no such user here")
        }
    }

    async fn data(&self, envelope: &Envelope, message: Vec<u8>) -> Reply {
        self.messages
            .lock()
            .unwrap()
            .push((envelope.clone(), message));
        Reply::new(250, "2.0.0", format!("queued as {}", envelope.id))
    }
}

impl Fake {
    /// The messages handed over so far: envelope and text.
    pub fn messages(&self) -> Vec<(Envelope, String)> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(e, m)| (e.clone(), String::from_utf8_lossy(m).into_owned()))
            .collect()
    }

    /// The only message handed over.
    pub fn message(&self) -> (Envelope, String) {
        let mut all = self.messages();
        assert_eq!(all.len(), 1, "expected exactly one message");
        all.remove(0)
    }
}

/// Small limits and short timeouts, no TLS.
pub fn config() -> Smtp {
    Smtp {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        hostname: HOST.into(),
        max_message_bytes: 10_000,
        max_recipients: 3,
        max_line_bytes: 1000,
        command_timeout_secs: 10,
        data_timeout_secs: 10,
        max_connections: 20,
        max_connections_per_ip: 20,
        tls: None,
    }
}

/// A running server; stopped when dropped.
pub struct Harness {
    pub addr: SocketAddr,
    pub backend: Arc<Fake>,
    pub reloader: TlsReloader,
    registry: Registry,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Harness {
    pub async fn start(config: Smtp) -> Harness {
        let mut registry = Registry::with_prefix("avsx");
        let metrics = Metrics::register(&mut registry);
        let backend = Arc::new(Fake::default());
        let server = Server::bind(&config, backend.clone(), metrics)
            .await
            .expect("bind");
        let addr = server.local_addrs()[0];
        let reloader = server.tls_reloader();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Harness {
            addr,
            backend,
            reloader,
            registry,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn connect(&self) -> Client<TcpStream> {
        Client::connect(self.addr).await
    }

    /// A client whose greeting was read and checked.
    pub async fn greeted(&self) -> Client<TcpStream> {
        let mut c = self.connect().await;
        assert_eq!(c.reply().await, format!("220 {HOST} ESMTP avsx\r\n"));
        c
    }

    /// A greeted client that said EHLO.
    pub async fn ehlo(&self) -> Client<TcpStream> {
        let mut c = self.greeted().await;
        let ehlo = c.cmd("EHLO client.test").await;
        assert!(ehlo.starts_with(&format!("250-{HOST}\r\n")), "{ehlo}");
        c
    }

    /// A metric's value in the text exposition, e.g.
    /// `avsx_rejects_total{reason="smuggling"}`; 0 when not (yet) there.
    pub fn metric(&self, name: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until `name` reaches `value` (sessions end asynchronously).
    pub async fn wait_metric(&self, name: &str, value: f64) {
        let until = tokio::time::Instant::now() + PATIENCE;
        while self.metric(name) != value {
            assert!(
                tokio::time::Instant::now() < until,
                "{name} is {}, expected {value}",
                self.metric(name)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cancels the shutdown token; `run` must return within `PATIENCE`.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("run returns after shutdown")
            .unwrap()
            .unwrap();
    }

    pub fn cancel(&self) {
        self.shutdown.cancel();
    }

    pub fn task(&mut self) -> JoinHandle<anyhow::Result<()>> {
        self.task.take().expect("running")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A raw SMTP client that reads whole replies exactly as sent.
pub struct Client<S> {
    pub io: S,
    buf: Vec<u8>,
}

impl Client<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> Client<TcpStream> {
        let io = tokio::time::timeout(PATIENCE, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Client {
            io,
            buf: Vec::new(),
        }
    }

    /// Connects from another loopback address (127.0.0.x), for the per-IP limit.
    pub async fn connect_from(source: &str, addr: SocketAddr) -> Client<TcpStream> {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let io = socket.connect(addr).await.expect("connect");
        Client {
            io,
            buf: Vec::new(),
        }
    }

    /// Sends STARTTLS, expects its 220 and nothing else in plain text, then does the
    /// handshake trusting `cert` for `mx.test`.
    pub async fn starttls(
        mut self,
        cert: &Path,
    ) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        assert_eq!(
            self.cmd("STARTTLS").await,
            "220 2.0.0 ready to start TLS\r\n"
        );
        self.tls(cert).await
    }

    /// The handshake, after the 220 was read; fails if anything else came in plain.
    pub async fn tls(self, cert: &Path) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        assert!(
            self.buf.is_empty(),
            "plain text after the STARTTLS reply: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(cert)));
        let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
        let io = tokio::time::timeout(PATIENCE, connector.connect(name, self.io))
            .await
            .expect("handshake in time")
            .expect("handshake");
        Client {
            io,
            buf: Vec::new(),
        }
    }
}

/// A rustls client trusting only the test certificate.
pub fn client_config(cert: &Path) -> rustls::ClientConfig {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).unwrap())
        .unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub async fn send(&mut self, data: impl AsRef<[u8]>) {
        self.io.write_all(data.as_ref()).await.expect("send");
        self.io.flush().await.expect("flush");
    }

    /// Sends one command line and returns its reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// The next complete reply (all its lines, CRLFs included); fails after `PATIENCE`.
    pub async fn reply(&mut self) -> String {
        match self.reply_within(PATIENCE).await {
            Some(r) => r,
            None => panic!(
                "no complete reply within {PATIENCE:?}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// The next complete reply, or `None` if none came within `wait` (or the server
    /// closed first).
    pub async fn reply_within(&mut self, wait: Duration) -> Option<String> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = reply_end(&self.buf) {
                let reply: Vec<u8> = self.buf.drain(..end).collect();
                return Some(String::from_utf8(reply).expect("replies are UTF-8"));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(until, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The server closes the connection without sending anything more.
    pub async fn expect_closed(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unread: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(PATIENCE, self.io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!(
                "expected the end, got {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(_) => panic!("connection still open after {PATIENCE:?}"),
        }
    }

    /// MAIL, RCPT (to recipients at example.org), DATA and the message; returns the
    /// reply to the message.
    pub async fn mail(&mut self, from: &str, rcpts: &[&str], body: &str) -> String {
        assert_eq!(
            self.cmd(&format!("MAIL FROM:<{from}>")).await,
            "250 2.1.0 sender OK\r\n"
        );
        for r in rcpts {
            assert_eq!(
                self.cmd(&format!("RCPT TO:<{r}>")).await,
                "250 2.1.5 recipient OK\r\n"
            );
        }
        assert_eq!(
            self.cmd("DATA").await,
            "354 end data with <CR><LF>.<CR><LF>\r\n"
        );
        self.send(format!("{body}.\r\n")).await;
        self.reply().await
    }
}

/// Where the first complete reply in `buf` ends: after the line whose code is followed
/// by a space.
fn reply_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(lf) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + lf + 1];
        start += lf + 1;
        if line.get(3) != Some(&b'-') {
            return Some(start);
        }
    }
    None
}

/// A self-signed certificate (P-256) for `cn`, as the server and the test client use
/// it: SAN `DNS:mx.test`, not a CA (so rustls accepts it as its own trust anchor).
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Cert {
    pub fn generate(dir: &Path, cn: &str) -> Cert {
        let c = Cert {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        c.replace(cn);
        c
    }

    /// Writes a new certificate and key for `cn` over the files.
    pub fn replace(&self, cn: &str) {
        let openssl = testbed::require::tool("openssl", "openssl").unwrap();
        let out = std::process::Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                &format!("subjectAltName=DNS:{HOST}"),
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-keyout",
            ])
            .arg(&self.key)
            .arg("-out")
            .arg(&self.cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn tls(&self) -> Option<Tls> {
        Some(Tls {
            cert: self.cert.clone(),
            key: self.key.clone(),
        })
    }
}

/// Runs an external client with `input` on stdin; killed after `PATIENCE` * 3.
pub async fn run(program: &str, package: &str, args: &[&str], input: &[u8]) -> Output {
    let path = testbed::require::tool(program, package).unwrap();
    let mut child = tokio::process::Command::new(path)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    tokio::time::timeout(PATIENCE * 3, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish"))
        .unwrap()
}

/// The Received header avsx put on top of `message`, unfolded.
pub fn received(message: &str) -> String {
    let end = message.find("\r\n").unwrap();
    let mut header = message[..end].to_owned();
    let mut rest = &message[end + 2..];
    while let Some(folded) = rest.strip_prefix('\t') {
        let end = folded.find("\r\n").unwrap();
        header.push(' ');
        header.push_str(&folded[..end]);
        rest = &folded[end + 2..];
    }
    header
}
