//! The DNS server on loopback: hickory's client over UDP and TCP, raw packets for what a
//! client library would not send, and `dig` where it is installed.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use gwx::dns::answer::Zone;
use gwx::dns::select::{Candidate, Fallback, Health, Policy, Pool};
use gwx::dns::server::{self, DnsMetrics, Handler, Live, Sockets};
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_client::proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::tcp::TcpClientStream;
use hickory_client::proto::udp::UdpClientStream;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const N: usize = 3;
const BACKUP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
const WAIT: Duration = Duration::from_secs(5);
/// The glue of ns1.example.net.
const NS1_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 53));
const NS1_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, 1));

fn v4(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))
}

fn v6(i: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
}

fn up_v4() -> Vec<IpAddr> {
    (1..=5).map(v4).collect()
}

fn up_v6() -> Vec<IpAddr> {
    (1..=5).map(v6).collect()
}

fn policy() -> Policy {
    Policy {
        answer_count: N,
        fallback: Fallback::Backup(vec![BACKUP]),
        allow_unchecked_at_start: false,
    }
}

/// 5 addresses up and 2 down per family.
fn healthy_pool() -> Pool {
    let mut c: Vec<Candidate> = up_v4()
        .into_iter()
        .chain(up_v6())
        .map(|a| Candidate::new(a, Health::Up))
        .collect();
    for a in [v4(6), v4(7), v6(6), v6(7)] {
        c.push(Candidate::new(a, Health::Down));
    }
    Pool::new(&c, &policy()).unwrap()
}

fn all_down_pool() -> Pool {
    let c: Vec<Candidate> = up_v4()
        .into_iter()
        .chain(up_v6())
        .map(|a| Candidate::new(a, Health::Down))
        .collect();
    Pool::new(&c, &policy()).unwrap()
}

struct Server {
    addr: SocketAddr,
    live: Live,
    registry: Registry,
    stop: CancellationToken,
    task: JoinHandle<Result<(), server::Error>>,
}

impl Server {
    /// UDP and TCP on one free loopback port.
    async fn start() -> Server {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let zone = Zone::new(
            "example.net",
            &["ns1.example.net", "ns2.example.org"],
            &[("ns1.example.net", vec![NS1_V4, NS1_V6])],
            &["web", "mail"],
            30,
            1,
        )
        .unwrap();
        let live = Live::new(zone, healthy_pool());
        let mut registry = Registry::with_prefix("gwx");
        let metrics = DnsMetrics::register(&mut registry);
        let stop = CancellationToken::new();
        let sockets = Sockets {
            udp: vec![udp],
            tcp: vec![tcp],
        };
        let task = tokio::spawn(server::run(
            sockets,
            Handler::new(live.clone(), metrics),
            stop.clone(),
        ));
        Server {
            addr,
            live,
            registry,
            stop,
            task,
        }
    }

    async fn udp_client(&self) -> Client {
        let stream = UdpClientStream::builder(self.addr, TokioRuntimeProvider::default()).build();
        let (client, bg) = Client::connect(stream).await.unwrap();
        tokio::spawn(bg);
        client
    }

    async fn tcp_client(&self) -> Client {
        let (stream, sender) =
            TcpClientStream::new(self.addr, None, Some(WAIT), TokioRuntimeProvider::default());
        let (client, bg) = Client::new(stream, sender, None).await.unwrap();
        tokio::spawn(bg);
        client
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    async fn stop(self) {
        self.stop.cancel();
        timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

/// A query message with EDNS, as `dig` sends it.
fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

async fn raw_udp(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(packet, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
        Ok(n) => {
            buf.truncate(n.unwrap());
            Some(buf)
        }
        Err(_) => None,
    }
}

async fn ask_udp(addr: SocketAddr, m: &Message) -> Message {
    let reply = raw_udp(addr, &m.to_vec().unwrap())
        .await
        .expect("no answer");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.id(), m.id());
    reply
}

async fn ask_tcp(addr: SocketAddr, m: &Message) -> Message {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let bytes = m.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    timeout(WAIT, stream.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers()
        .iter()
        .map(|r| match r.data() {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            other => panic!("not an address: {other:?}"),
        })
        .collect()
}

/// `N` distinct addresses, every one of them in `allowed`.
fn assert_draw(got: &[IpAddr], allowed: &[IpAddr]) {
    assert_eq!(got.len(), N, "{got:?}");
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), N, "{got:?}");
    assert!(got.iter().all(|a| allowed.contains(a)), "{got:?}");
}

fn soa_in_authority(m: &Message) -> bool {
    matches!(m.name_servers(), [r] if r.record_type() == RecordType::SOA && r.ttl() == 30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hickory_client_over_udp_and_tcp() {
    let server = Server::start().await;
    for (proto, mut client) in [
        ("udp", server.udp_client().await),
        ("tcp", server.tcp_client().await),
    ] {
        let name = Name::from_ascii("web.example.net.").unwrap();
        let mut seen = HashSet::new();
        for _ in 0..30 {
            let r = client
                .query(name.clone(), DNSClass::IN, RecordType::A)
                .await
                .unwrap();
            assert_eq!(r.response_code(), ResponseCode::NoError, "{proto}");
            assert!(r.authoritative(), "{proto}");
            let got = addrs(&r);
            assert_draw(&got, &up_v4());
            assert!(r.answers().iter().all(|a| a.ttl() == 30));
            seen.extend(got);
        }
        // The answers rotate: every up address shows up within 30 draws of 3 of 5.
        assert_eq!(seen.len(), 5, "{proto}: {seen:?}");

        let r = client
            .query(name.clone(), DNSClass::IN, RecordType::AAAA)
            .await
            .unwrap();
        assert_draw(&addrs(&r), &up_v6());

        let apex = Name::from_ascii("example.net.").unwrap();
        let r = client
            .query(apex.clone(), DNSClass::IN, RecordType::SOA)
            .await
            .unwrap();
        assert!(r.authoritative());
        let [soa] = r.answers() else { panic!("{r:?}") };
        let RData::SOA(soa) = soa.data() else {
            panic!("{soa:?}")
        };
        assert_eq!(soa.mname().to_string(), "ns1.example.net.");
        assert_eq!(soa.rname().to_string(), "hostmaster.example.net.");

        let r = client
            .query(apex, DNSClass::IN, RecordType::NS)
            .await
            .unwrap();
        let mut ns: Vec<String> = r
            .answers()
            .iter()
            .map(|a| match a.data() {
                RData::NS(n) => n.0.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        ns.sort();
        assert_eq!(ns, ["ns1.example.net.", "ns2.example.org."], "{proto}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_answers_and_refusals() {
    let server = Server::start().await;
    let addr = server.addr;
    for r in [
        ask_udp(addr, &query("nope.example.net.", RecordType::A)).await,
        ask_tcp(addr, &query("nope.example.net.", RecordType::AAAA)).await,
    ] {
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(r.authoritative() && r.answers().is_empty());
        assert!(soa_in_authority(&r), "{r:?}");
    }
    // NODATA: an existing name, a type it has not.
    let r = ask_udp(addr, &query("mail.example.net.", RecordType::MX)).await;
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.authoritative() && r.answers().is_empty() && soa_in_authority(&r));

    let r = ask_udp(addr, &query("www.example.org.", RecordType::A)).await;
    assert_eq!(r.response_code(), ResponseCode::Refused);
    assert!(!r.authoritative() && r.answers().is_empty());

    // 0x20: the question comes back as sent, the name matches whatever its case.
    let r = ask_udp(addr, &query("wEB.eXaMple.NET.", RecordType::A)).await;
    assert_eq!(r.queries()[0].name().to_ascii(), "wEB.eXaMple.NET.");
    assert_draw(&addrs(&r), &up_v4());
    assert_eq!(r.extensions().as_ref().unwrap().max_payload(), 1232);

    // Opcode NOTIFY: not implemented. Two questions: FORMERR.
    let mut m = query("web.example.net.", RecordType::A);
    m.set_op_code(OpCode::Notify);
    assert_eq!(
        ask_udp(addr, &m).await.response_code(),
        ResponseCode::NotImp
    );
    let mut m = query("web.example.net.", RecordType::A);
    m.add_query(Query::query(
        Name::from_ascii("mail.example.net.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(
        ask_udp(addr, &m).await.response_code(),
        ResponseCode::FormErr
    );

    // Garbage: a valid header announcing a question that is not there is FORMERR; a
    // packet too short for a header gets no answer. The server answers on.
    let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0x3f, 0xff, 0xff]);
    let reply = raw_udp(addr, &garbage).await.expect("no FORMERR");
    assert_eq!(&reply[..2], &[0x12, 0x34]);
    assert_eq!(reply[3] & 0x0f, 1, "rcode FORMERR: {reply:?}");
    assert_eq!(raw_udp(addr, &[0xde, 0xad, 0xbe, 0xef]).await, None);
    let r = ask_udp(addr, &query("web.example.net.", RecordType::A)).await;
    assert_draw(&addrs(&r), &up_v4());

    let text = server.metrics();
    for line in [
        r#"gwx_dns_queries_total{qtype="A",rcode="NXDOMAIN"} 1"#,
        r#"gwx_dns_queries_total{qtype="AAAA",rcode="NXDOMAIN"} 1"#,
        r#"gwx_dns_queries_total{qtype="MX",rcode="NOERROR"} 1"#,
        r#"gwx_dns_queries_total{qtype="A",rcode="REFUSED"} 1"#,
        r#"gwx_dns_queries_total{qtype="A",rcode="NOTIMP"} 1"#,
        r#"gwx_dns_queries_total{qtype="none",rcode="FORMERR"} 1"#,
        r#"gwx_dns_queries_total{qtype="A",rcode="NOERROR"} 2"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    let handed_out: u64 = testbed::clients::parse_metrics(&text)
        .iter()
        .filter(|s| s.name == "gwx_dns_answers_total")
        .map(|s| s.value as u64)
        .sum();
    assert_eq!(handed_out, 2 * N as u64);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_swap_shows_in_answers() {
    let server = Server::start().await;
    let addr = server.addr;
    let r = ask_udp(addr, &query("web.example.net.", RecordType::A)).await;
    assert_draw(&addrs(&r), &up_v4());

    server.live.set_pool(all_down_pool());
    let r = ask_udp(addr, &query("web.example.net.", RecordType::A)).await;
    assert_eq!(addrs(&r), [BACKUP]);
    let r = ask_tcp(addr, &query("web.example.net.", RecordType::A)).await;
    assert_eq!(addrs(&r), [BACKUP]);
    // No IPv6 backup: every address of the family, down as they are.
    let r = ask_udp(addr, &query("web.example.net.", RecordType::AAAA)).await;
    assert_draw(&addrs(&r), &up_v6());
    let text = server.metrics();
    assert!(
        text.contains(r#"gwx_dns_fallback_total{family="ipv4"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gwx_dns_fallback_total{family="ipv6"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gwx_dns_answers_total{address="198.51.100.9"} 2"#),
        "{text}"
    );

    server.live.set_pool(healthy_pool());
    let r = ask_udp(addr, &query("web.example.net.", RecordType::A)).await;
    assert_draw(&addrs(&r), &up_v4());
    server.stop().await;
}

/// The in-zone name server's glue: its own answers, and additional data of NS answers
/// over UDP and TCP; not counted as handed-out gateway addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_of_the_in_zone_name_server() {
    let server = Server::start().await;
    let addr = server.addr;
    for r in [
        ask_udp(addr, &query("example.net.", RecordType::NS)).await,
        ask_tcp(addr, &query("example.net.", RecordType::NS)).await,
    ] {
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(r.answers().len(), 2);
        let glue: Vec<(String, u32, IpAddr)> = r
            .additionals()
            .iter()
            .map(|rec| {
                let a = match rec.data() {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    other => panic!("{other:?}"),
                };
                (rec.name().to_ascii(), rec.ttl(), a)
            })
            .collect();
        assert_eq!(
            glue,
            [
                ("ns1.example.net.".to_owned(), 3600, NS1_V4),
                ("ns1.example.net.".to_owned(), 3600, NS1_V6),
            ]
        );
        assert!(r.extensions().is_some(), "OPT stays beside the glue");
    }
    let r = ask_udp(addr, &query("ns1.example.net.", RecordType::A)).await;
    assert!(r.authoritative());
    assert_eq!(addrs(&r), [NS1_V4]);
    let r = ask_tcp(addr, &query("NS1.example.net.", RecordType::AAAA)).await;
    assert_eq!(addrs(&r), [NS1_V6]);
    assert_eq!(r.answers()[0].name().to_ascii(), "NS1.example.net.");
    let r = ask_udp(addr, &query("ns1.example.net.", RecordType::TXT)).await;
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.answers().is_empty() && soa_in_authority(&r));

    let text = server.metrics();
    let handed_out = testbed::clients::parse_metrics(&text)
        .iter()
        .filter(|s| s.name == "gwx_dns_answers_total")
        .count();
    assert_eq!(handed_out, 0, "{text}");
    assert!(
        text.contains(r#"gwx_dns_queries_total{qtype="NS",rcode="NOERROR"} 2"#),
        "{text}"
    );
    server.stop().await;
}

/// `dig` as a second, independent client. Skipped where it is not installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig() {
    if Command::new("dig").arg("-v").output().is_err() {
        eprintln!("SKIPPED dig checks: dig is not installed (Debian package dnsutils)");
        return;
    }
    let server = Server::start().await;
    let port = server.addr.port().to_string();
    let dig = |args: &[&str]| {
        let mut cmd = Command::new("dig");
        cmd.args(["@127.0.0.1", "-p", &port, "+time=2", "+tries=1"])
            .args(args);
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        }
    };
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&[transport, "+short", "web.example.net", "A"]).await;
        let got: Vec<IpAddr> = out.lines().map(|l| l.parse().unwrap()).collect();
        assert_draw(&got, &up_v4());
        let out = dig(&[transport, "+short", "web.example.net", "AAAA"]).await;
        let got: Vec<IpAddr> = out.lines().map(|l| l.parse().unwrap()).collect();
        assert_draw(&got, &up_v6());
    }
    let out = dig(&["example.net", "SOA"]).await;
    assert!(
        out.contains("status: NOERROR") && out.contains(" aa"),
        "{out}"
    );
    assert!(
        out.contains("ns1.example.net. hostmaster.example.net. 1"),
        "{out}"
    );
    let out = dig(&["+short", "example.net", "NS"]).await;
    assert!(
        out.contains("ns1.example.net.") && out.contains("ns2.example.org."),
        "{out}"
    );
    // The glue: in the additional section of the NS answer, and the name's own answer.
    let out = dig(&["example.net", "NS"]).await;
    assert!(
        out.contains("ADDITIONAL SECTION")
            && out.contains("ns1.example.net.\t3600\tIN\tA\t203.0.113.53")
            && out.contains("ns1.example.net.\t3600\tIN\tAAAA\t2001:db8:53::1"),
        "{out}"
    );
    let out = dig(&["+short", "ns1.example.net", "A"]).await;
    assert_eq!(out.trim(), "203.0.113.53");
    let out = dig(&["nope.example.net", "A"]).await;
    assert!(
        out.contains("status: NXDOMAIN") && out.contains("SOA"),
        "{out}"
    );
    let out = dig(&["example.org", "A"]).await;
    assert!(out.contains("status: REFUSED"), "{out}");
    let out = dig(&["+edns=1", "+noednsneg", "web.example.net", "A"]).await;
    assert!(out.contains("status: BADVERS"), "{out}");
    server.stop().await;
}
