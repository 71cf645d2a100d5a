//! The DNS server: hickory-server's `ServerFuture` on UDP sockets and TCP listeners, with
//! [`Handler`] answering every query through [`super::answer`].
//!
//! The integrator builds a [`Handler`] from a [`Zone`] and a first [`Pool`], keeps its
//! [`Live`] handle, and calls [`Live::set_pool`] whenever the health snapshot changes
//! (and [`Live::set_zone`] on a reload). A query reads both under a read lock that is
//! held only to clone an `Arc`. Each worker thread draws with its own `SmallRng`,
//! seeded from the OS: no shared rng, no lock on the draw.
//!
//! Metrics (with the registry's prefix, e.g. `gwx_`): `dns_queries_total{qtype,rcode}`,
//! `dns_answers_total{address}` (each gateway address handed out; name server glue is
//! not counted), `dns_fallback_total{family}` (answers drawn under a fallback rule,
//! [`super::select::Source::is_fallback`]).
//! Malformed packets that hickory answers itself (FORMERR before the handler) are not
//! counted.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RData;
use hickory_proto::xfer::Protocol;
use hickory_server::ServerFuture;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::registry::Registry;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::answer::{self, Transport, Zone};
use super::select::{Family, Pool};

/// A TCP connection that sends no query for this long is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dns: binding {proto} {addr}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("dns server")]
    Serve(#[from] hickory_proto::ProtoError),
}

/// The zone and pool queries are answered from, swapped as a whole.
#[derive(Clone, Debug)]
pub struct Live {
    zone: Arc<RwLock<Arc<Zone>>>,
    pool: Arc<RwLock<Arc<Pool>>>,
}

impl Live {
    pub fn new(zone: Zone, pool: Pool) -> Live {
        Live {
            zone: Arc::new(RwLock::new(Arc::new(zone))),
            pool: Arc::new(RwLock::new(Arc::new(pool))),
        }
    }

    /// Answers from now on draw from `pool`.
    pub fn set_pool(&self, pool: Pool) {
        *self.pool.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pool);
    }

    pub fn set_zone(&self, zone: Zone) {
        *self.zone.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(zone);
    }

    pub fn pool(&self) -> Arc<Pool> {
        self.pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn zone(&self) -> Arc<Zone> {
        self.zone
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An address as a label value, without a `String` per query.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Address(IpAddr);

impl EncodeLabelValue for Address {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        write!(encoder, "{}", self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    qtype: &'static str,
    rcode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AddressLabels {
    address: Address,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: &'static str,
}

/// The server's metric families, registered once per process.
#[derive(Clone, Debug, Default)]
pub struct DnsMetrics {
    queries: MetricFamily<QueryLabels, Counter>,
    answers: MetricFamily<AddressLabels, Counter>,
    fallback: MetricFamily<FamilyLabels, Counter>,
}

impl DnsMetrics {
    pub fn register(registry: &mut Registry) -> DnsMetrics {
        let m = DnsMetrics::default();
        let r = registry.sub_registry_with_prefix("dns");
        r.register(
            "queries",
            "DNS queries answered, per query type and response code",
            m.queries.clone(),
        );
        r.register(
            "answers",
            "Times each gateway address was handed out in a DNS answer",
            m.answers.clone(),
        );
        r.register(
            "fallback",
            "DNS answers drawn under a fallback rule (no address of the family up)",
            m.fallback.clone(),
        );
        m
    }
}

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// Answers queries from the [`Live`] zone and pool.
#[derive(Clone, Debug)]
pub struct Handler {
    live: Live,
    metrics: DnsMetrics,
}

impl Handler {
    pub fn new(live: Live, metrics: DnsMetrics) -> Handler {
        Handler { live, metrics }
    }

    pub fn live(&self) -> &Live {
        &self.live
    }

    fn count(&self, qtype: &'static str, response: &answer::Response) {
        self.metrics
            .queries
            .get_or_create(&QueryLabels {
                qtype,
                rcode: answer::rcode_label(response.response_code()),
            })
            .inc();
        // Only drawn gateway addresses: a name server's glue is no gateway address.
        let drawn = if response.drawn.is_some() {
            &response.answers[..]
        } else {
            &[]
        };
        for record in drawn {
            let addr = match record.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            self.metrics
                .answers
                .get_or_create(&AddressLabels {
                    address: Address(addr),
                })
                .inc();
        }
        if let Some(drawn) = response.drawn.filter(|d| d.source.is_fallback()) {
            let family = match drawn.family {
                Family::V4 => "ipv4",
                Family::V6 => "ipv6",
            };
            self.metrics
                .fallback
                .get_or_create(&FamilyLabels { family })
                .inc();
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        let queries = request.queries();
        let query = answer::Request {
            header: request.header(),
            queries,
            edns: request.edns(),
            transport,
        };
        let (zone, pool) = (self.live.zone(), self.live.pool());
        let response = RNG.with(|rng| answer::answer(&query, &zone, &pool, &mut *rng.borrow_mut()));
        let qtype = match queries {
            [q] => answer::qtype_label(q.query_type()),
            _ => "none",
        };
        self.count(qtype, &response);

        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = response.edns.clone() {
            builder.edns(edns);
        }
        let message = builder.build(
            response.header,
            response.answers.iter(),
            response.authority.iter(),
            std::iter::empty(),
            response.additional.iter(),
        );
        match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                warn!(error = %e, src = %request.src(), "dns: sending a response failed");
                let mut header = response.header;
                header.set_response_code(ResponseCode::ServFail);
                header.into()
            }
        }
    }
}

/// Receive buffer asked for on each UDP socket.
const UDP_RCVBUF: usize = 4 << 20;

/// The bound sockets, UDP and TCP on each listen address.
#[derive(Debug, Default)]
pub struct Sockets {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
}

impl Sockets {
    /// Binds UDP and TCP on every address of `listen`.
    pub async fn bind(listen: &[SocketAddr]) -> Result<Sockets, Error> {
        let mut sockets = Sockets::default();
        for &addr in listen {
            let udp = UdpSocket::bind(addr).await.map_err(|source| Error::Bind {
                proto: "udp",
                addr,
                source,
            })?;
            // A burst of queries (a resolver farm's retries, a load test's start)
            // overflows the default 208 KiB receive buffer after a few hundred
            // datagrams, each charged at its buffer's full size; NSD asks for more too.
            // The kernel caps the request at net.core.rmem_max.
            if let Err(e) =
                nix::sys::socket::setsockopt(&udp, nix::sys::socket::sockopt::RcvBuf, &UDP_RCVBUF)
            {
                tracing::warn!(%addr, error = %e, "cannot enlarge the UDP receive buffer");
            }
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind {
                    proto: "tcp",
                    addr,
                    source,
                })?;
            sockets.udp.push(udp);
            sockets.tcp.push(tcp);
        }
        Ok(sockets)
    }
}

/// Serves DNS on `sockets` until `shutdown` is cancelled, then lets the queries in
/// flight finish.
pub async fn run(
    sockets: Sockets,
    handler: Handler,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let mut server = ServerFuture::new(handler);
    for udp in sockets.udp {
        server.register_socket(udp);
    }
    for tcp in sockets.tcp {
        server.register_listener(tcp, TCP_IDLE_TIMEOUT);
    }
    let stop = server.shutdown_token().clone();
    let link = tokio::spawn(async move {
        shutdown.cancelled().await;
        stop.cancel();
    });
    let result = server.block_until_done().await;
    link.abort();
    Ok(result?)
}
