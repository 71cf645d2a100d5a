//! One connection's I/O around a [`Session`]: the read buffer, the batched replies,
//! the timeouts, the STARTTLS upgrade.
//!
//! Replies are queued and written only when the next read would have to wait, so a
//! pipelined batch is answered in one write, in order (RFC 2920). After STARTTLS's
//! 220, whatever the client sent behind the command is thrown away unread (RFC 3207
//! 5; CVE-2011-0411, "STARTTLS command injection"): the encrypted session starts with
//! an empty buffer and a fresh session state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::data::DataReceiver;
use super::line::{Line, LineSplitter};
use super::replies;
use super::session::{Session, Then};
use super::tls::{self, TlsConfig};
use crate::config::Smtp;
use crate::envelope::{Backend, Reply};
use crate::metrics::Metrics;

/// How much is read at a time.
const READ_CHUNK: usize = 16 * 1024;
/// How long a last reply (421, 221) may take to write before the connection is
/// dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What every session of a server shares.
pub struct Shared {
    pub config: Arc<Smtp>,
    pub backend: Arc<dyn Backend>,
    pub metrics: Metrics,
    pub tls: Option<Arc<TlsConfig>>,
}

/// How a conversation ended.
enum End {
    /// The session is over, with this outcome (for the metric and the log).
    Closed(&'static str),
    /// STARTTLS was accepted and its 220 sent.
    StartTls,
}

/// Serves one client until the session ends, then counts and logs its outcome.
pub async fn serve(
    tcp: TcpStream,
    client: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    // Replies are batched by hand; Nagle would only delay the batches.
    let _ = tcp.set_nodelay(true);
    let mut session = Session::new(
        shared.config.clone(),
        shared.metrics.clone(),
        client,
        shared.tls.is_some(),
    );
    let mut conn = Conn::new(tcp, &shared);
    conn.queue(&replies::greeting(&shared.config.hostname));
    let mut end = conversation(&mut conn, &mut session, &shutdown).await;
    if let End::StartTls = end {
        end = match start_tls(conn, &mut session, client, &shared).await {
            Ok(mut conn) => conversation(&mut conn, &mut session, &shutdown).await,
            Err(end) => end,
        };
    }
    let outcome = match end {
        End::Closed(outcome) => outcome,
        // The session offers STARTTLS only once.
        End::StartTls => "error",
    };
    shared.metrics.session_ended(outcome);
    tracing::info!(
        %client,
        outcome,
        messages = session.accepted(),
        tls = session.tls().map_or("none", |t| t.version.as_str()),
        "session ended"
    );
}

/// Commands and replies until the session ends or switches to TLS.
async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<'_, S>,
    session: &mut Session,
    shutdown: &CancellationToken,
) -> End {
    let shared = conn.shared;
    let backend = &*shared.backend;
    loop {
        let line = match conn.next_line(shutdown).await {
            Ok(line) => line,
            Err(end) => return end,
        };
        let step = session.handle(line, backend).await;
        conn.queue(&step.reply);
        match step.then {
            Then::Continue => {}
            Then::Data(mut receiver) => {
                let deadline = Instant::now() + shared.config.data_timeout();
                if let Err(end) = conn.read_data(&mut receiver, deadline).await {
                    return end;
                }
                let reply = session.data_end(receiver, backend).await;
                conn.queue(&reply);
            }
            Then::StartTls => {
                let deadline = Instant::now() + shared.config.command_timeout();
                return match conn.flush(deadline).await {
                    Ok(()) => End::StartTls,
                    Err(end) => end,
                };
            }
            Then::Close(outcome) => {
                conn.finish().await;
                return End::Closed(outcome);
            }
        }
    }
}

/// The handshake on the plain connection, whose unread input is thrown away.
async fn start_tls<'a>(
    conn: Conn<'a, TcpStream>,
    session: &mut Session,
    client: SocketAddr,
    shared: &'a Shared,
) -> Result<Conn<'a, TlsStream>, End> {
    if !conn.rbuf.is_empty() {
        shared.metrics.rejected("starttls_injection");
        tracing::warn!(
            %client,
            bytes = conn.rbuf.len(),
            "discarded input pipelined after STARTTLS"
        );
    }
    let Some(tls) = &shared.tls else {
        return Err(End::Closed("error"));
    };
    let handshake = tls.acceptor().accept(conn.io);
    match tokio::time::timeout(shared.config.command_timeout(), handshake).await {
        Ok(Ok(stream)) => {
            let info = tls::info(stream.get_ref().1);
            tracing::debug!(%client, version = %info.version, cipher = %info.cipher, "TLS started");
            session.tls_started(info);
            Ok(Conn::new(stream, shared))
        }
        Ok(Err(e)) => {
            tracing::info!(%client, error = %e, "TLS handshake failed");
            Err(End::Closed("tls_failed"))
        }
        Err(_) => {
            tracing::info!(%client, "TLS handshake timed out");
            Err(End::Closed("tls_failed"))
        }
    }
}

type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The stream with its buffers.
struct Conn<'a, S> {
    io: S,
    shared: &'a Shared,
    /// Read but not yet used.
    rbuf: Vec<u8>,
    /// Replies not yet written.
    wbuf: Vec<u8>,
    lines: LineSplitter,
}

/// Why a read was given up.
enum Stopped {
    Timeout,
    Shutdown,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conn<'a, S> {
    fn new(io: S, shared: &'a Shared) -> Conn<'a, S> {
        Conn {
            io,
            shared,
            rbuf: Vec::with_capacity(READ_CHUNK),
            wbuf: Vec::new(),
            lines: LineSplitter::new(shared.config.max_line_bytes),
        }
    }

    fn queue(&mut self, reply: &Reply) {
        self.wbuf.extend_from_slice(reply.to_wire().as_bytes());
    }

    /// The next command line, waiting at most the command timeout for it (and for the
    /// replies before it to be written).
    async fn next_line(&mut self, shutdown: &CancellationToken) -> Result<Line, End> {
        let deadline = Instant::now() + self.shared.config.command_timeout();
        loop {
            if let Some(line) = self.lines.next(&mut self.rbuf) {
                return Ok(line);
            }
            self.fill(deadline, Some(shutdown)).await?;
        }
    }

    /// Feeds the message to `receiver` until its end; the rest stays for the commands.
    async fn read_data(
        &mut self,
        receiver: &mut DataReceiver,
        deadline: Instant,
    ) -> Result<(), End> {
        loop {
            let taken = receiver.feed(&self.rbuf);
            self.rbuf.drain(..taken);
            if receiver.is_done() {
                return Ok(());
            }
            // No shutdown here: a message in flight is read to its end.
            self.fill(deadline, None).await?;
        }
    }

    /// Writes the queued replies, then reads more input.
    async fn fill(
        &mut self,
        deadline: Instant,
        shutdown: Option<&CancellationToken>,
    ) -> Result<(), End> {
        self.flush(deadline).await?;
        self.rbuf.reserve(READ_CHUNK);
        let read = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.rbuf));
        let result = match shutdown {
            Some(shutdown) => tokio::select! {
                _ = shutdown.cancelled() => Err(Stopped::Shutdown),
                r = read => r.map_err(|_| Stopped::Timeout),
            },
            None => read.await.map_err(|_| Stopped::Timeout),
        };
        let shared = self.shared;
        let host = &shared.config.hostname;
        match result {
            Ok(Ok(0)) => Err(End::Closed("closed")),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "read failed");
                Err(End::Closed("error"))
            }
            Err(Stopped::Timeout) => Err(self.close_with(replies::timeout(host), "timeout").await),
            Err(Stopped::Shutdown) => Err(self
                .close_with(replies::shutting_down(host), "shutdown")
                .await),
        }
    }

    async fn close_with(&mut self, reply: Reply, outcome: &'static str) -> End {
        self.queue(&reply);
        self.finish().await;
        End::Closed(outcome)
    }

    /// The last replies, then the end of the stream: with TLS a close_notify, without
    /// which clients report a truncated session.
    async fn finish(&mut self) {
        let deadline = Instant::now() + CLOSE_GRACE;
        if self.flush(deadline).await.is_ok() {
            let _ = tokio::time::timeout_at(deadline, self.io.shutdown()).await;
        }
    }

    async fn flush(&mut self, deadline: Instant) -> Result<(), End> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let write = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(())) => {
                self.wbuf.clear();
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed");
                Err(End::Closed("error"))
            }
            // A client that does not read its replies is as gone as a silent one.
            Err(_) => Err(End::Closed("timeout")),
        }
    }
}
