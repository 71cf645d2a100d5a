//! The authoritative answer to one query, without I/O: the parsed request, the [`Zone`],
//! a [`Pool`] and an rng in, a [`Response`] (header, answer and authority records, OPT)
//! out. [`super::server`] wraps it in sockets and metrics.
//!
//! # What is answered
//!
//! | query | response |
//! |---|---|
//! | opcode not QUERY | NOTIMP |
//! | no question, or more than one | FORMERR |
//! | EDNS version above 0 | BADVERS |
//! | class not IN, or a name outside the zone | REFUSED, not authoritative |
//! | AXFR / IXFR | REFUSED: the zone is not transferred |
//! | apex SOA / NS / ANY | the SOA, the NS set, or both |
//! | `<hostname>.<zone>` A / AAAA | `N` addresses of the family drawn from the pool |
//! | `<hostname>.<zone>` ANY | the A set (RFC 8482: one RRset is enough) |
//! | an existing name, another type (or no address of the family) | NODATA: NOERROR, empty answer, SOA in authority |
//! | any other name in the zone | NXDOMAIN, SOA in authority |
//!
//! Every answer for the zone is authoritative (AA). Names match case-insensitively; the
//! question goes back as it came (0x20 case randomisation survives) and the owner names
//! of the answer records are spelt like it. Negative answers carry the SOA with the TTL
//! `min(ttl, 60)`, which is also the SOA's MINIMUM (RFC 2308).
//!
//! # Size
//!
//! Over UDP an answer fits in `min(client's EDNS size, 1232)` bytes, or 512 without
//! EDNS (never less than 512). Answers hold at most 16 addresses, which always fit 1232
//! bytes (a test shows it); for a client without EDNS the draw is cut to the addresses
//! that fit (the answer is a random subset anyway), and only when not even one fits
//! does the response set TC, so that the client asks again over TCP.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::LowerQuery;
use hickory_proto::op::{Edns, Header, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use rand::Rng;

use super::select::{Family, Pool, Source};

/// The largest UDP response sent, whatever the client offers: avoids IP fragmentation
/// (the DNS flag day 2020 value).
pub const MAX_UDP_SIZE: u16 = 1232;
/// The UDP size every client handles, with or without EDNS.
pub const MIN_UDP_SIZE: u16 = 512;
/// The longest negative-caching TTL, whatever the record TTL.
pub const MAX_NEGATIVE_TTL: u32 = 60;

const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 1_209_600;

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("dns zone: {what} {name:?} is not a valid domain name: {error}")]
    BadName {
        what: &'static str,
        name: String,
        error: hickory_proto::ProtoError,
    },
    #[error("dns zone: expected at least one name server")]
    NoNameServer,
    #[error("dns zone: hostname {0:?} is listed twice")]
    DuplicateHost(String),
}

/// The zone as answers need it: the apex, its SOA and NS records, the TTL, and the
/// names that hold gateway addresses. Built once per configuration.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: LowerName,
    hosts: HashSet<LowerName>,
    ttl: u32,
    /// The SOA with the record TTL of answers at the apex.
    soa: Record,
    /// The SOA with the negative TTL, for the authority section of NXDOMAIN and NODATA.
    negative_soa: Record,
    ns: Vec<Record>,
}

impl Zone {
    /// `zone` like `example.net` (trailing dot optional); `nameservers` absolute names,
    /// the first is the SOA's primary; `hostnames` relative to the zone (`web` answers
    /// `web.example.net`); `serial` e.g. the start time in seconds.
    pub fn new<N: AsRef<str>, H: AsRef<str>>(
        zone: &str,
        nameservers: &[N],
        hostnames: &[H],
        ttl: u32,
        serial: u32,
    ) -> Result<Zone, ZoneError> {
        let origin = absolute(zone, "zone")?;
        let ns_names = nameservers
            .iter()
            .map(|n| absolute(n.as_ref(), "name server"))
            .collect::<Result<Vec<Name>, ZoneError>>()?;
        let mname = ns_names.first().ok_or(ZoneError::NoNameServer)?.clone();
        let mut hosts = HashSet::new();
        for h in hostnames {
            let h = h.as_ref();
            let relative = Name::from_ascii(h).map_err(|error| ZoneError::BadName {
                what: "hostname",
                name: h.to_owned(),
                error,
            })?;
            let name = relative
                .append_domain(&origin)
                .map_err(|error| ZoneError::BadName {
                    what: "hostname",
                    name: h.to_owned(),
                    error,
                })?;
            if !hosts.insert(LowerName::new(&name)) {
                return Err(ZoneError::DuplicateHost(h.to_owned()));
            }
        }
        let rname = Name::from_ascii("hostmaster")
            .and_then(|h| h.append_domain(&origin))
            .map_err(|error| ZoneError::BadName {
                what: "hostmaster address of zone",
                name: zone.to_owned(),
                error,
            })?;
        let negative_ttl = ttl.min(MAX_NEGATIVE_TTL);
        let soa_data = RData::SOA(SOA::new(
            mname,
            rname,
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            negative_ttl,
        ));
        let soa = Record::from_rdata(origin.clone(), ttl, soa_data.clone());
        let negative_soa = Record::from_rdata(origin.clone(), negative_ttl, soa_data);
        let ns = ns_names
            .into_iter()
            .map(|n| Record::from_rdata(origin.clone(), ttl, RData::NS(NS(n))))
            .collect();
        Ok(Zone {
            origin: LowerName::new(&origin),
            hosts,
            ttl,
            soa,
            negative_soa,
            ns,
        })
    }

    /// The zone from the inventory's `[dns]` section and the services' hostnames.
    pub fn from_inventory<H: AsRef<str>>(
        dns: &crate::inventory::Dns,
        hostnames: &[H],
        serial: u32,
    ) -> Result<Zone, ZoneError> {
        Zone::new(&dns.zone, &dns.nameservers, hostnames, dns.ttl_secs, serial)
    }

    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// A name that exists in the zone without records of its own (`shop.example.net`
    /// when a host is `www.shop.example.net`).
    fn is_empty_non_terminal(&self, name: &LowerName) -> bool {
        self.hosts.iter().any(|h| name.zone_of(h))
    }
}

fn absolute(name: &str, what: &'static str) -> Result<Name, ZoneError> {
    let mut n = Name::from_ascii(name).map_err(|error| ZoneError::BadName {
        what,
        name: name.to_owned(),
        error,
    })?;
    n.set_fqdn(true);
    Ok(n)
}

/// How the query came: UDP responses are size-limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The parts of a parsed query the answer depends on.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub header: &'a Header,
    pub queries: &'a [LowerQuery],
    pub edns: Option<&'a Edns>,
    pub transport: Transport,
}

/// One draw from the pool, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drawn {
    pub family: Family,
    pub source: Source,
}

/// The response to send: the header's counts are filled in when it is encoded, the
/// question is the request's.
#[derive(Clone, Debug)]
pub struct Response {
    pub header: Header,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub edns: Option<Edns>,
    pub drawn: Option<Drawn>,
}

impl Response {
    pub fn response_code(&self) -> ResponseCode {
        self.header.response_code()
    }
}

/// The response to `request` (module docs).
pub fn answer<R: Rng + ?Sized>(
    request: &Request<'_>,
    zone: &Zone,
    pool: &Pool,
    rng: &mut R,
) -> Response {
    let mut header = Header::response_from_request(request.header);
    let edns = request.edns.map(|e| {
        let mut out = Edns::new();
        out.set_max_payload(e.max_payload().clamp(MIN_UDP_SIZE, MAX_UDP_SIZE));
        out.set_version(0);
        out
    });
    let mut response = Response {
        header,
        answers: Vec::new(),
        authority: Vec::new(),
        edns,
        drawn: None,
    };
    let rcode = decide(request, zone, pool, rng, &mut response);
    header = response.header;
    header.set_response_code(rcode);
    response.header = header;
    fit(request, &mut response);
    response
}

/// Fills in the records and returns the response code.
fn decide<R: Rng + ?Sized>(
    request: &Request<'_>,
    zone: &Zone,
    pool: &Pool,
    rng: &mut R,
    out: &mut Response,
) -> ResponseCode {
    if request.header.op_code() != OpCode::Query {
        return ResponseCode::NotImp;
    }
    let [query] = request.queries else {
        return ResponseCode::FormErr;
    };
    if request.edns.is_some_and(|e| e.version() > 0) {
        return ResponseCode::BADVERS;
    }
    let name = query.name();
    if query.query_class() != DNSClass::IN || !zone.origin.zone_of(name) {
        return ResponseCode::Refused;
    }
    let qtype = query.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return ResponseCode::Refused;
    }
    out.header.set_authoritative(true);
    // Owner names spelt like the question.
    let owner = query.original().name();
    if *name == zone.origin {
        match qtype {
            RecordType::SOA => out.answers.push(zone.soa.clone()),
            RecordType::NS => out.answers.extend(zone.ns.iter().cloned()),
            RecordType::ANY => {
                out.answers.push(zone.soa.clone());
                out.answers.extend(zone.ns.iter().cloned());
            }
            _ => {}
        }
    } else if zone.hosts.contains(name) {
        let family = match qtype {
            RecordType::A | RecordType::ANY => Some(Family::V4),
            RecordType::AAAA => Some(Family::V6),
            _ => None,
        };
        if let Some(family) = family {
            let selection = pool.select(family, rng);
            out.drawn = Some(Drawn {
                family,
                source: selection.source,
            });
            out.answers.extend(
                selection
                    .addrs
                    .into_iter()
                    .map(|addr| address_record(owner, zone.ttl, addr)),
            );
        }
    } else if !zone.is_empty_non_terminal(name) {
        out.authority.push(zone.negative_soa.clone());
        return ResponseCode::NXDomain;
    }
    if out.answers.is_empty() {
        out.authority.push(zone.negative_soa.clone());
    }
    ResponseCode::NoError
}

fn address_record(owner: &Name, ttl: u32, addr: IpAddr) -> Record {
    let rdata = match addr {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    };
    Record::from_rdata(owner.clone(), ttl, rdata)
}

/// The most bytes the response to `request` may take.
pub fn size_limit(request: &Request<'_>) -> usize {
    match request.transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(request.edns.map_or(MIN_UDP_SIZE, |e| {
            e.max_payload().clamp(MIN_UDP_SIZE, MAX_UDP_SIZE)
        })),
    }
}

/// Cuts the answer to the size limit (module docs: Size).
fn fit(request: &Request<'_>, response: &mut Response) {
    let limit = size_limit(request);
    while !response.answers.is_empty() && encoded_size(request, response) > limit {
        response.answers.pop();
    }
    if encoded_size(request, response) > limit {
        response.answers.clear();
        response.authority.clear();
        response.header.set_truncated(true);
    }
}

/// An upper bound of the encoded size: the question as sent, the first answer's owner
/// name in full and the other answers' as a compression pointer (they share it), the
/// authority records without compression, and the OPT record.
pub fn encoded_size(request: &Request<'_>, response: &Response) -> usize {
    let question: usize = request
        .queries
        .iter()
        .map(|q| name_size(q.original().name()) + 4)
        .sum();
    let answers: usize = response
        .answers
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let owner = if i == 0 { name_size(r.name()) } else { 2 };
            owner + 10 + rdata_size(r.data())
        })
        .sum();
    let authority: usize = response
        .authority
        .iter()
        .map(|r| name_size(r.name()) + 10 + rdata_size(r.data()))
        .sum();
    let opt = if response.edns.is_some() { 11 } else { 0 };
    12 + question + answers + authority + opt
}

fn name_size(name: &Name) -> usize {
    name.iter().map(|label| label.len() + 1).sum::<usize>() + 1
}

fn rdata_size(data: &RData) -> usize {
    match data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::NS(ns) => name_size(&ns.0),
        RData::SOA(soa) => name_size(soa.mname()) + name_size(soa.rname()) + 20,
        // Not produced here; large enough to be safe.
        _ => usize::from(u16::MAX),
    }
}

/// The `qtype` metric label: the types worth telling apart, the rest as "other" so that
/// queries cannot grow the label set.
pub fn qtype_label(qtype: RecordType) -> &'static str {
    match qtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::SOA => "SOA",
        RecordType::NS => "NS",
        RecordType::ANY => "ANY",
        RecordType::CNAME => "CNAME",
        RecordType::MX => "MX",
        RecordType::TXT => "TXT",
        RecordType::PTR => "PTR",
        RecordType::SRV => "SRV",
        RecordType::CAA => "CAA",
        RecordType::HTTPS => "HTTPS",
        RecordType::SVCB => "SVCB",
        RecordType::DS => "DS",
        RecordType::DNSKEY => "DNSKEY",
        RecordType::AXFR => "AXFR",
        RecordType::IXFR => "IXFR",
        _ => "other",
    }
}

/// The `rcode` metric label.
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::op::{Message, MessageType, Query};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::dns::select::{Candidate, Fallback, Health, Policy};

    fn zone(hosts: &[&str]) -> Zone {
        Zone::new(
            "Example.NET",
            &["ns1.example.net", "ns2.example.org."],
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
        let z = Zone::new(&zone_name, &["ns1.example.net"], &[host.as_str()], 30, 1).unwrap();
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
        assert!(matches!(
            Zone::new("example.net", &[] as &[&str], &["web"], 30, 1),
            Err(ZoneError::NoNameServer)
        ));
        assert!(matches!(
            Zone::new("example.net", &["ns1.example.net"], &["web", "WEB"], 30, 1),
            Err(ZoneError::DuplicateHost(_))
        ));
        assert!(Zone::new("exa..mple", &["ns1.example.net"], &["web"], 30, 1).is_err());
    }
}
