use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, Query};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;
use crate::dns::select::{Candidate, Fallback, Health, Policy};

/// The glue of `ns1.example.net`.
const NS1_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 53));
const NS1_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, 1));

fn ns1_glue() -> Vec<(&'static str, Vec<IpAddr>)> {
    vec![("ns1.example.net", vec![NS1_V4, NS1_V6])]
}

const NO_GLUE: &[(&str, Vec<IpAddr>)] = &[];

fn zone(hosts: &[&str]) -> Zone {
    Zone::new(
        "Example.NET",
        &["ns1.example.net", "ns2.example.org."],
        &ns1_glue(),
        hosts,
        30,
        7,
    )
    .unwrap()
}

fn v4(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))
}

fn v6(i: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
}

fn pool(n: usize) -> Pool {
    let mut c: Vec<Candidate> = (1..=6).map(|i| Candidate::new(v4(i), Health::Up)).collect();
    c.push(Candidate::new(v4(7), Health::Down));
    c.extend((1..=20).map(|i| Candidate::new(v6(i), Health::Up)));
    let policy = Policy {
        answer_count: n,
        fallback: Fallback::All,
        allow_unchecked_at_start: false,
    };
    Pool::new(&c, &policy).unwrap()
}

struct Q {
    header: Header,
    queries: Vec<LowerQuery>,
    edns: Option<Edns>,
    transport: Transport,
}

impl Q {
    fn new(name: &str, qtype: RecordType) -> Q {
        let mut header = Header::new();
        header.set_id(4711);
        header.set_recursion_desired(true);
        Q {
            header,
            queries: vec![LowerQuery::from(Query::query(
                Name::from_ascii(name).unwrap(),
                qtype,
            ))],
            edns: Some(Edns::new()),
            transport: Transport::Udp,
        }
    }

    fn ask(&self, zone: &Zone, pool: &Pool) -> Response {
        let request = Request {
            header: &self.header,
            queries: &self.queries,
            edns: self.edns.as_ref(),
            transport: self.transport,
        };
        answer(&request, zone, pool, &mut SmallRng::seed_from_u64(1))
    }

    /// The response as hickory encodes it, and the bound `encoded_size` gave.
    fn wire(&self, r: &Response) -> (Vec<u8>, usize) {
        let request = Request {
            header: &self.header,
            queries: &self.queries,
            edns: self.edns.as_ref(),
            transport: self.transport,
        };
        let mut m = Message::new();
        m.set_header(r.header);
        m.add_queries(self.queries.iter().map(|q| q.original().clone()));
        m.add_answers(r.answers.iter().cloned());
        m.add_name_servers(r.authority.iter().cloned());
        m.add_additionals(r.additional.iter().cloned());
        if let Some(e) = &r.edns {
            m.set_edns(e.clone());
        }
        (m.to_vec().unwrap(), encoded_size(&request, r))
    }
}

fn addrs(r: &Response) -> Vec<IpAddr> {
    r.answers
        .iter()
        .map(|rec| match rec.data() {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            other => panic!("not an address: {other:?}"),
        })
        .collect()
}

#[test]
fn a_and_aaaa_hold_n_distinct_up_addresses() {
    let (z, p) = (zone(&["web"]), pool(4));
    for (qtype, family) in [(RecordType::A, Family::V4), (RecordType::AAAA, Family::V6)] {
        let r = Q::new("web.example.net.", qtype).ask(&z, &p);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.header.authoritative());
        assert_eq!(r.header.message_type(), MessageType::Response);
        assert_eq!(r.header.id(), 4711);
        assert!(r.header.recursion_desired() && !r.header.recursion_available());
        let a = addrs(&r);
        assert_eq!(a.len(), 4);
        assert!(a.iter().all(|x| Family::of(*x) == family && *x != v4(7)));
        let mut d = a.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 4, "{a:?}");
        assert!(r.answers.iter().all(|rec| rec.ttl() == 30));
        assert!(r.authority.is_empty());
        assert_eq!(r.drawn.unwrap().family, family);
        assert_eq!(r.edns.as_ref().unwrap().max_payload(), 512);
    }
}

#[test]
fn names_match_case_insensitively_and_keep_the_question_case() {
    let r = Q::new("wEb.ExAmPlE.nEt.", RecordType::A).ask(&zone(&["Web"]), &pool(2));
    assert_eq!(addrs(&r).len(), 2);
    assert_eq!(r.answers[0].name().to_string(), "wEb.ExAmPlE.nEt.");
}

#[test]
fn apex_soa_and_ns() {
    let (z, p) = (zone(&["web"]), pool(4));
    let r = Q::new("example.net.", RecordType::SOA).ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.header.authoritative());
    let [soa] = &r.answers[..] else {
        panic!("{r:?}")
    };
    let RData::SOA(s) = soa.data() else {
        panic!("{soa:?}")
    };
    assert_eq!(s.mname().to_string(), "ns1.example.net.");
    assert_eq!(s.rname().to_string(), "hostmaster.Example.NET.");
    assert_eq!((s.serial(), s.minimum(), soa.ttl()), (7, 30, 30));

    let r = Q::new("EXAMPLE.net.", RecordType::NS).ask(&z, &p);
    let ns: Vec<String> = r
        .answers
        .iter()
        .map(|rec| match rec.data() {
            RData::NS(n) => n.0.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ns, ["ns1.example.net.", "ns2.example.org."]);
    assert!(r.authority.is_empty());

    // A at the apex: NODATA.
    let r = Q::new("example.net.", RecordType::A).ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_eq!(r.authority[0].record_type(), RecordType::SOA);
}

#[test]
fn negative_answers_carry_the_soa_with_a_short_ttl() {
    let z = Zone::new(
        "example.net",
        &["ns1.example.net"],
        &ns1_glue(),
        &["web", "www.shop"],
        300,
        1,
    )
    .unwrap();
    let p = pool(4);
    let soa_of = |r: &Response| {
        let [soa] = &r.authority[..] else {
            panic!("{r:?}")
        };
        let RData::SOA(s) = soa.data() else {
            panic!("{soa:?}")
        };
        (soa.ttl(), s.minimum())
    };
    for name in [
        "nope.example.net.",
        "x.web.example.net.",
        "a.b.example.net.",
    ] {
        let r = Q::new(name, RecordType::A).ask(&z, &p);
        assert_eq!(r.response_code(), ResponseCode::NXDomain, "{name}");
        assert!(r.header.authoritative() && r.answers.is_empty());
        assert_eq!(soa_of(&r), (60, 60));
    }
    // Other types of existing names, and empty non-terminals: NODATA.
    for (name, qtype) in [
        ("web.example.net.", RecordType::MX),
        ("web.example.net.", RecordType::TXT),
        ("shop.example.net.", RecordType::A),
    ] {
        let r = Q::new(name, qtype).ask(&z, &p);
        assert_eq!(r.response_code(), ResponseCode::NoError, "{name} {qtype}");
        assert!(r.header.authoritative() && r.answers.is_empty());
        assert_eq!(soa_of(&r), (60, 60));
    }
    let r = Q::new("www.shop.example.net.", RecordType::AAAA).ask(&z, &p);
    assert_eq!(addrs(&r).len(), 4);
}

#[test]
fn a_family_without_addresses_is_nodata() {
    let policy = Policy {
        answer_count: 2,
        fallback: Fallback::All,
        allow_unchecked_at_start: false,
    };
    let p = Pool::new(&[Candidate::new(v4(1), Health::Up)], &policy).unwrap();
    let r = Q::new("web.example.net.", RecordType::AAAA).ask(&zone(&["web"]), &p);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_eq!(r.authority.len(), 1);
    assert_eq!(r.drawn.unwrap().source, Source::NoAddress);
}

#[test]
fn outside_the_zone_and_other_classes_are_refused() {
    let (z, p) = (zone(&["web"]), pool(4));
    for name in [
        "example.org.",
        "web.example.org.",
        "net.",
        ".",
        "xexample.net.",
    ] {
        let r = Q::new(name, RecordType::A).ask(&z, &p);
        assert_eq!(r.response_code(), ResponseCode::Refused, "{name}");
        assert!(!r.header.authoritative() && r.answers.is_empty() && r.authority.is_empty());
    }
    let mut q = Q::new("web.example.net.", RecordType::A);
    let mut query = q.queries[0].original().clone();
    query.set_query_class(DNSClass::CH);
    q.queries = vec![query.into()];
    assert_eq!(q.ask(&z, &p).response_code(), ResponseCode::Refused);
    let r = Q::new("example.net.", RecordType::AXFR).ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::Refused);
}

#[test]
fn malformed_queries() {
    let (z, p) = (zone(&["web"]), pool(4));
    let mut q = Q::new("web.example.net.", RecordType::A);
    q.queries.clear();
    assert_eq!(q.ask(&z, &p).response_code(), ResponseCode::FormErr);
    let mut q = Q::new("web.example.net.", RecordType::A);
    q.queries.push(q.queries[0].clone());
    let r = q.ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::FormErr);
    assert!(r.answers.is_empty());
    let mut q = Q::new("web.example.net.", RecordType::A);
    q.header.set_op_code(OpCode::Update);
    assert_eq!(q.ask(&z, &p).response_code(), ResponseCode::NotImp);
    let mut q = Q::new("web.example.net.", RecordType::A);
    q.header.set_op_code(OpCode::Status);
    assert_eq!(q.ask(&z, &p).response_code(), ResponseCode::NotImp);
    let mut q = Q::new("web.example.net.", RecordType::A);
    q.edns.as_mut().unwrap().set_version(1);
    let r = q.ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::BADVERS);
    assert!(r.answers.is_empty() && r.edns.is_some());
}

#[test]
fn edns_size_is_the_clients_within_512_to_1232() {
    let (z, p) = (zone(&["web"]), pool(4));
    for (offered, used) in [
        (4096, 1232),
        (1232, 1232),
        (1400, 1232),
        (800, 800),
        (100, 512),
    ] {
        let mut q = Q::new("web.example.net.", RecordType::A);
        q.edns.as_mut().unwrap().set_max_payload(offered);
        let r = q.ask(&z, &p);
        assert_eq!(r.edns.unwrap().max_payload(), used, "{offered}");
    }
    let mut q = Q::new("web.example.net.", RecordType::A);
    q.edns = None;
    assert!(q.ask(&z, &p).edns.is_none());
}

/// The largest answer there can be: 16 AAAA records for the longest name a zone can
/// hold, and OPT. It fits 1232 bytes as hickory encodes it, without TC.
#[test]
fn the_largest_answer_fits_1232_bytes() {
    let label = "a".repeat(63);
    let zone_name = format!("{label}.{label}.{}.example", "b".repeat(61));
    let host = "c".repeat(253 - zone_name.len() - 1);
    let z = Zone::new(
        &zone_name,
        &["ns1.example.net"],
        NO_GLUE,
        &[host.as_str()],
        30,
        1,
    )
    .unwrap();
    let qname = format!("{host}.{zone_name}.");
    let q = Q::new(&qname, RecordType::AAAA);
    let mut e = Edns::new();
    e.set_max_payload(1232);
    let q = Q { edns: Some(e), ..q };
    let r = q.ask(&z, &pool(16));
    assert_eq!(addrs(&r).len(), 16);
    assert!(!r.header.truncated());
    let (wire, bound) = q.wire(&r);
    assert!(wire.len() <= bound, "{} > {bound}", wire.len());
    assert!(bound <= 1232, "{bound}");
    // hickory's own encoder with the 1232-byte limit does not truncate either.
    let parsed = Message::from_vec(&wire).unwrap();
    assert_eq!(parsed.answers().len(), 16);
    assert!(!parsed.truncated());
}

/// Without EDNS the limit is 512: a long name gets fewer addresses, never a TC
/// while one fits.
#[test]
fn without_edns_the_answer_is_cut_to_512_bytes() {
    let host = "h".repeat(60);
    let z = zone(&[host.as_str()]);
    let mut q = Q::new(&format!("{host}.example.net."), RecordType::AAAA);
    q.edns = None;
    let r = q.ask(&z, &pool(16));
    let n = addrs(&r).len();
    assert!((1..16).contains(&n), "{n}");
    assert!(!r.header.truncated());
    let (wire, bound) = q.wire(&r);
    assert!(
        wire.len() <= bound && bound <= 512,
        "{} {bound}",
        wire.len()
    );
    // Over TCP all 16.
    q.transport = Transport::Tcp;
    assert_eq!(addrs(&q.ask(&z, &pool(16))).len(), 16);
    // A short name: all 16 fit in 512 bytes.
    let mut q = Q::new("web.example.net.", RecordType::AAAA);
    q.edns = None;
    assert_eq!(addrs(&q.ask(&zone(&["web"]), &pool(16))).len(), 16);
}

#[test]
fn zone_errors() {
    let new = |ns: &[&str], glue: &[(&str, Vec<IpAddr>)], hosts: &[&str]| {
        Zone::new("example.net", ns, glue, hosts, 30, 1)
    };
    assert!(matches!(
        new(&[], NO_GLUE, &["web"]),
        Err(ZoneError::NoNameServer)
    ));
    assert!(matches!(
        new(&["ns1.example.net"], &ns1_glue(), &["web", "WEB"]),
        Err(ZoneError::DuplicateHost(h)) if h == "WEB"
    ));
    assert!(Zone::new("exa..mple", &["ns1.example.net"], NO_GLUE, &["web"], 30, 1).is_err());
    // Glue: every in-zone name server has some, no other name has any.
    assert!(matches!(
        new(&["ns2.example.org", "ns1.example.net"], NO_GLUE, &["web"]),
        Err(ZoneError::MissingGlue(n)) if n == "ns1.example.net."
    ));
    assert!(matches!(
        new(&["example.net"], NO_GLUE, &["web"]),
        Err(ZoneError::MissingGlue(n)) if n == "example.net."
    ));
    assert!(matches!(
        new(&["ns1.example.net"], &[("ns1.example.net", vec![])], &["web"]),
        Err(ZoneError::MissingGlue(n)) if n == "ns1.example.net"
    ));
    assert!(matches!(
        new(&["ns1.example.net"], &[("ns9.example.net", vec![NS1_V4])], &["web"]),
        Err(ZoneError::GlueNotNameServer(n)) if n == "ns9.example.net"
    ));
    assert!(matches!(
        new(&["ns.example.org"], &[("ns.example.org", vec![NS1_V4])], &["web"]),
        Err(ZoneError::GlueOutsideZone(n)) if n == "ns.example.org"
    ));
    assert!(matches!(
        new(
            &["ns1.example.net"],
            &[
                ("ns1.example.net", vec![NS1_V4]),
                ("NS1.example.net.", vec![NS1_V6])
            ],
            &["web"]
        ),
        Err(ZoneError::DuplicateGlue(n)) if n == "NS1.example.net."
    ));
    assert!(matches!(
        new(&["web.example.net"], &[("web.example.net", vec![NS1_V4])], &["WEB"]),
        Err(ZoneError::NameServerIsHost(n)) if n == "web.example.net."
    ));
    // Out-of-zone name servers need none; names differing in case and the trailing
    // dot are one name.
    assert!(new(&["ns1.example.org"], NO_GLUE, &["web"]).is_ok());
    assert!(new(&["NS1.Example.net."], &ns1_glue(), &["web"]).is_ok());
}

fn records(rs: &[Record]) -> Vec<(String, u32, IpAddr)> {
    rs.iter()
        .map(|rec| {
            let addr = match rec.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                other => panic!("not an address: {other:?}"),
            };
            (rec.name().to_string(), rec.ttl(), addr)
        })
        .collect()
}

/// `example.net` served by ns1 (both families), ns2 (IPv6 only), ns3 one level down
/// and an outside one.
fn glued_zone() -> Zone {
    Zone::new(
        "example.net",
        &[
            "ns1.example.net",
            "NS2.example.net.",
            "ns.example.org",
            "ns3.dns.example.net",
        ],
        &[
            ("ns1.example.net", vec![NS1_V4, NS1_V6]),
            ("ns2.example.net", vec![v6(0x54)]),
            ("ns3.dns.example.net", vec![v4(55), v4(56)]),
        ],
        &["web"],
        30,
        7,
    )
    .unwrap()
}

#[test]
fn in_zone_name_servers_answer_their_glue() {
    let (z, p) = (glued_zone(), pool(4));
    let r = Q::new("NS1.example.net.", RecordType::A).ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.header.authoritative());
    assert_eq!(
        records(&r.answers),
        [("NS1.example.net.".to_owned(), GLUE_TTL, NS1_V4)]
    );
    assert!(r.authority.is_empty() && r.additional.is_empty());
    assert!(r.drawn.is_none(), "glue is not drawn from the pool");

    let r = Q::new("ns1.example.net.", RecordType::AAAA).ask(&z, &p);
    assert_eq!(
        records(&r.answers),
        [("ns1.example.net.".to_owned(), GLUE_TTL, NS1_V6)]
    );
    let r = Q::new("ns3.dns.example.net.", RecordType::A).ask(&z, &p);
    assert_eq!(
        records(&r.answers),
        [
            ("ns3.dns.example.net.".to_owned(), GLUE_TTL, v4(55)),
            ("ns3.dns.example.net.".to_owned(), GLUE_TTL, v4(56)),
        ]
    );
    // ANY: the A set.
    let r = Q::new("ns1.example.net.", RecordType::ANY).ask(&z, &p);
    assert_eq!(
        records(&r.answers),
        [("ns1.example.net.".to_owned(), GLUE_TTL, NS1_V4)]
    );
    // ANY of an IPv6-only name server: the AAAA set.
    let r = Q::new("ns2.example.net.", RecordType::ANY).ask(&z, &p);
    assert_eq!(
        records(&r.answers),
        [("ns2.example.net.".to_owned(), GLUE_TTL, v6(0x54))]
    );
}

#[test]
fn name_servers_without_the_family_or_type_get_nodata() {
    let (z, p) = (glued_zone(), pool(4));
    for (name, qtype) in [
        ("ns2.example.net.", RecordType::A),
        ("ns3.dns.example.net.", RecordType::AAAA),
        ("ns1.example.net.", RecordType::MX),
        ("ns1.example.net.", RecordType::NS),
        // The empty non-terminal above ns3.
        ("dns.example.net.", RecordType::A),
    ] {
        let r = Q::new(name, qtype).ask(&z, &p);
        assert_eq!(r.response_code(), ResponseCode::NoError, "{name} {qtype}");
        assert!(r.header.authoritative() && r.answers.is_empty());
        let [soa] = &r.authority[..] else {
            panic!("{r:?}")
        };
        assert_eq!((soa.record_type(), soa.ttl()), (RecordType::SOA, 30));
    }
    // Below a name server: nothing.
    let r = Q::new("x.ns1.example.net.", RecordType::A).ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    // The outside name server is not ours.
    let r = Q::new("ns.example.org.", RecordType::A).ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::Refused);
}

#[test]
fn ns_answers_carry_the_in_zone_glue_as_additional() {
    let (z, p) = (glued_zone(), pool(4));
    let q = Q::new("example.NET.", RecordType::NS);
    let r = q.ask(&z, &p);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.header.authoritative() && !r.header.truncated());
    assert_eq!(r.answers.len(), 4);
    assert!(r.authority.is_empty());
    // In NS order, A before AAAA; nothing for the outside name server.
    assert_eq!(
        records(&r.additional),
        [
            ("ns1.example.net.".to_owned(), GLUE_TTL, NS1_V4),
            ("ns1.example.net.".to_owned(), GLUE_TTL, NS1_V6),
            ("NS2.example.net.".to_owned(), GLUE_TTL, v6(0x54)),
            ("ns3.dns.example.net.".to_owned(), GLUE_TTL, v4(55)),
            ("ns3.dns.example.net.".to_owned(), GLUE_TTL, v4(56)),
        ]
    );
    let (wire, bound) = q.wire(&r);
    assert!(wire.len() <= bound, "{} > {bound}", wire.len());
    assert_eq!(Message::from_vec(&wire).unwrap().additionals().len(), 5);

    // Other apex answers carry none.
    for qtype in [RecordType::SOA, RecordType::ANY, RecordType::A] {
        let r = Q::new("example.net.", qtype).ask(&z, &p);
        assert!(r.additional.is_empty(), "{qtype}");
    }
    let r = Q::new("example.net.", RecordType::SOA).ask(&z, &p);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].record_type(), RecordType::SOA);
    // A host's answer neither.
    let r = Q::new("web.example.net.", RecordType::A).ask(&z, &p);
    assert_eq!(addrs(&r).len(), 4);
    assert!(r.additional.is_empty());
}

#[test]
fn the_apex_can_be_its_own_name_server() {
    let z = Zone::new(
        "example.net",
        &["example.net"],
        &[("example.net.", vec![NS1_V4])],
        &["web"],
        30,
        7,
    )
    .unwrap();
    let p = pool(4);
    let r = Q::new("example.net.", RecordType::A).ask(&z, &p);
    assert_eq!(
        records(&r.answers),
        [("example.net.".to_owned(), GLUE_TTL, NS1_V4)]
    );
    let r = Q::new("example.net.", RecordType::AAAA).ask(&z, &p);
    assert!(r.answers.is_empty() && r.authority.len() == 1);
    let r = Q::new("example.net.", RecordType::NS).ask(&z, &p);
    assert_eq!(
        records(&r.additional),
        [("example.net.".to_owned(), GLUE_TTL, NS1_V4)]
    );
}

/// Glue that does not fit goes before any answer does, a whole RRset at a time and
/// without TC.
#[test]
fn glue_is_dropped_first_and_by_whole_rrsets() {
    let many: Vec<IpAddr> = std::iter::once(NS1_V4)
        .chain((1..=16).map(|i| v6(0x100 + i)))
        .collect();
    let z = Zone::new(
        "example.net",
        &["ns1.example.net", "ns2.example.net"],
        &[("ns1.example.net", many), ("ns2.example.net", vec![v4(2)])],
        &["web"],
        30,
        7,
    )
    .unwrap();
    let p = pool(4);
    // With EDNS and 1232 bytes all 18 fit.
    let mut q = Q::new("example.net.", RecordType::NS);
    q.edns.as_mut().unwrap().set_max_payload(1232);
    let r = q.ask(&z, &p);
    assert_eq!(r.additional.len(), 18);
    let (wire, bound) = q.wire(&r);
    assert!(
        wire.len() <= bound && bound <= 1232,
        "{} {bound}",
        wire.len()
    );
    // Without, 512 bytes: ns2's A goes, then ns1's 16 AAAA; ns1's A stays.
    let mut q = Q::new("example.net.", RecordType::NS);
    q.edns = None;
    let r = q.ask(&z, &p);
    assert!(!r.header.truncated());
    assert_eq!(r.answers.len(), 2);
    assert_eq!(
        records(&r.additional),
        [("ns1.example.net.".to_owned(), GLUE_TTL, NS1_V4)]
    );
    let (wire, bound) = q.wire(&r);
    assert!(
        wire.len() <= bound && bound <= 512,
        "{} {bound}",
        wire.len()
    );
    assert_eq!(Message::from_vec(&wire).unwrap().answers().len(), 2);
}
