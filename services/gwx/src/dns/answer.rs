//! The authoritative answer to one query, without I/O: the parsed request, the [`Zone`],
//! a [`Pool`] and an rng in, a [`Response`] (header, answer, authority and additional
//! records, OPT) out. [`super::server`] wraps it in sockets and metrics.
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
//! | apex SOA / NS / ANY | the SOA, the NS set (in-zone name servers' glue as additional data), or both |
//! | in-zone name server (the apex too) A / AAAA | its glue addresses of the family |
//! | in-zone name server ANY | its A glue, or its AAAA glue when it has no A |
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
//! A name server inside the zone (`ns1.example.net` in `example.net`) has the addresses
//! configured as its glue; it is never also a service's hostname. Its name answers like
//! a host's, with the glue instead of a draw (a name with glue of the other family only
//! gets NODATA), and an NS answer carries the glue as additional data.
//!
//! # Size
//!
//! Over UDP an answer fits in `min(client's EDNS size, 1232)` bytes, or 512 without
//! EDNS (never less than 512). Answers hold at most 16 addresses (a name server's glue
//! too: the inventory allows 16 per family), which always fit 1232 bytes (a test shows
//! it); for a client without EDNS the draw is cut to the addresses that fit (the answer
//! is a random subset anyway; a glue answer is cut alike), and only when not even one fits
//! does the response set TC, so that the client asks again over TCP. Additional records
//! (glue) go first, a whole RRset at a time and without TC (RFC 2181 section 9): they
//! are optional in an NS answer, which is not a referral.

use std::collections::{HashMap, HashSet};
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
/// The TTL of the name servers' addresses. Not the zone's TTL: that one is short so that
/// caches let go of a gateway that went down, while glue is fixed configuration that
/// only a restart changes. An hour is a usual TTL for name server addresses and bounds
/// how long an old address outlives a change (the parent's copy aside, which has its own).
pub const GLUE_TTL: u32 = 3600;

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
    #[error("dns zone: name server {0:?} is inside the zone but has no glue addresses")]
    MissingGlue(String),
    #[error("dns zone: glue for {0:?}, which is not one of the name servers")]
    GlueNotNameServer(String),
    #[error("dns zone: glue for {0:?}, which is outside the zone")]
    GlueOutsideZone(String),
    #[error("dns zone: glue for {0:?} is given twice")]
    DuplicateGlue(String),
    #[error("dns zone: name server {0:?} is also a hostname")]
    NameServerIsHost(String),
}

/// The zone as answers need it: the apex, its SOA and NS records, the TTL, the names
/// that hold gateway addresses and the in-zone name servers' glue. Built once per
/// configuration.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: LowerName,
    hosts: HashSet<LowerName>,
    glue: Glue,
    ttl: u32,
    /// The SOA with the record TTL of answers at the apex.
    soa: Record,
    /// The SOA with the negative TTL, for the authority section of NXDOMAIN and NODATA.
    negative_soa: Record,
    ns: Vec<Record>,
}

impl Zone {
    /// `zone` like `example.net` (trailing dot optional); `nameservers` absolute names,
    /// the first is the SOA's primary; `glue` the addresses of each name server inside
    /// the zone, and of no other name; `hostnames` relative to the zone (`web` answers
    /// `web.example.net`); `serial` e.g. the start time in seconds.
    pub fn new<N: AsRef<str>, G: AsRef<str>, H: AsRef<str>>(
        zone: &str,
        nameservers: &[N],
        glue: &[(G, Vec<IpAddr>)],
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
        let glue = Glue::new(&origin, &ns_names, glue, &hosts)?;
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
            glue,
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
        let glue: Vec<(&str, Vec<IpAddr>)> = dns
            .glue
            .iter()
            .map(|(name, addrs)| (name.as_str(), addrs.clone()))
            .collect();
        Zone::new(
            &dns.zone,
            &dns.nameservers,
            &glue,
            hostnames,
            dns.ttl_secs,
            serial,
        )
    }

    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// A name that exists in the zone without records of its own (`shop.example.net`
    /// when a host is `www.shop.example.net`, `dns.example.net` when a name server is
    /// `ns1.dns.example.net`).
    fn is_empty_non_terminal(&self, name: &LowerName) -> bool {
        self.hosts
            .iter()
            .chain(self.glue.by_name.keys())
            .any(|h| name.zone_of(h))
    }
}

/// The addresses of the name servers inside the zone.
#[derive(Clone, Debug)]
struct Glue {
    /// By name, each address once.
    by_name: HashMap<LowerName, Vec<IpAddr>>,
    /// As the additional section of an NS answer: per in-zone name server, in NS order,
    /// its A then its AAAA records.
    additional: Vec<Record>,
}

impl Glue {
    /// Checked as [`Zone::new`] says.
    fn new<G: AsRef<str>>(
        origin: &Name,
        ns_names: &[Name],
        glue: &[(G, Vec<IpAddr>)],
        hosts: &HashSet<LowerName>,
    ) -> Result<Glue, ZoneError> {
        let zone = LowerName::new(origin);
        let mut by_name = HashMap::new();
        for (name, addrs) in glue {
            let name = name.as_ref();
            let lower = LowerName::new(&absolute(name, "glue name")?);
            if !ns_names.iter().any(|n| LowerName::new(n) == lower) {
                return Err(ZoneError::GlueNotNameServer(name.to_owned()));
            }
            if !zone.zone_of(&lower) {
                return Err(ZoneError::GlueOutsideZone(name.to_owned()));
            }
            let mut seen = HashSet::new();
            let mut addrs = addrs.clone();
            addrs.retain(|a| seen.insert(*a));
            if addrs.is_empty() {
                return Err(ZoneError::MissingGlue(name.to_owned()));
            }
            if by_name.insert(lower, addrs).is_some() {
                return Err(ZoneError::DuplicateGlue(name.to_owned()));
            }
        }
        let mut additional = Vec::new();
        let mut done = HashSet::new();
        for ns in ns_names {
            let lower = LowerName::new(ns);
            if !zone.zone_of(&lower) || !done.insert(lower.clone()) {
                continue;
            }
            if hosts.contains(&lower) {
                return Err(ZoneError::NameServerIsHost(ns.to_string()));
            }
            let addrs = by_name
                .get(&lower)
                .ok_or_else(|| ZoneError::MissingGlue(ns.to_string()))?;
            for family in [Family::V4, Family::V6] {
                additional.extend(
                    addrs
                        .iter()
                        .filter(|a| Family::of(**a) == family)
                        .map(|a| address_record(ns, GLUE_TTL, *a)),
                );
            }
        }
        Ok(Glue {
            by_name,
            additional,
        })
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
    /// Glue of an NS answer; the OPT record is [`Self::edns`], not here.
    pub additional: Vec<Record>,
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
        additional: Vec::new(),
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
            RecordType::NS => {
                out.answers.extend(zone.ns.iter().cloned());
                out.additional.extend(zone.glue.additional.iter().cloned());
            }
            RecordType::ANY => {
                out.answers.push(zone.soa.clone());
                out.answers.extend(zone.ns.iter().cloned());
            }
            // The apex itself may be a name server.
            RecordType::A | RecordType::AAAA => {
                let glue = zone.glue.by_name.get(name).map_or(&[][..], Vec::as_slice);
                out.answers.extend(glue_answer(owner, glue, qtype));
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
    } else if let Some(glue) = zone.glue.by_name.get(name) {
        // Never also a host (Zone::new).
        out.answers.extend(glue_answer(owner, glue, qtype));
    } else if !zone.is_empty_non_terminal(name) {
        out.authority.push(zone.negative_soa.clone());
        return ResponseCode::NXDomain;
    }
    if out.answers.is_empty() {
        out.authority.push(zone.negative_soa.clone());
    }
    ResponseCode::NoError
}

/// The glue records of a name server answering `qtype`: the family asked for; for ANY
/// the A set, or the AAAA set when there is no A (RFC 8482: one RRset is enough); none
/// for other types.
fn glue_answer(owner: &Name, glue: &[IpAddr], qtype: RecordType) -> Vec<Record> {
    let any_v4 = glue.iter().any(IpAddr::is_ipv4);
    let wanted = |a: &IpAddr| match qtype {
        RecordType::A => a.is_ipv4(),
        RecordType::AAAA => a.is_ipv6(),
        RecordType::ANY => a.is_ipv4() == any_v4,
        _ => false,
    };
    glue.iter()
        .filter(|a| wanted(a))
        .map(|a| address_record(owner, GLUE_TTL, *a))
        .collect()
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
    // Additional data first, a whole RRset at a time: a resolver would take a part of
    // one for all of it.
    while let Some(last) = response.additional.last() {
        if encoded_size(request, response) <= limit {
            break;
        }
        let (name, rtype) = (last.name().clone(), last.record_type());
        while response
            .additional
            .last()
            .is_some_and(|r| r.record_type() == rtype && r.name().eq_case(&name))
        {
            response.additional.pop();
        }
    }
    while !response.answers.is_empty() && encoded_size(request, response) > limit {
        response.answers.pop();
    }
    if encoded_size(request, response) > limit {
        response.answers.clear();
        response.authority.clear();
        response.additional.clear();
        response.header.set_truncated(true);
    }
}

/// An upper bound of the encoded size: the question as sent, the first answer's owner
/// name in full and the other answers' as a compression pointer (they share it), the
/// authority records without compression, the additional records' owner names in full
/// but where the record before has the same one (a pointer), and the OPT record.
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
    let additional: usize = response
        .additional
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let repeated = i > 0 && response.additional[i - 1].name().eq_case(r.name());
            let owner = if repeated { 2 } else { name_size(r.name()) };
            owner + 10 + rdata_size(r.data())
        })
        .sum();
    let opt = if response.edns.is_some() { 11 } else { 0 };
    12 + question + answers + authority + additional + opt
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
mod tests;
