//! Reading a server's answer to a ClientHello (sans-io): bytes in, a [`Reply`] out.
//!
//! Records may arrive split across TCP reads and handshake messages split across records
//! (a certificate chain often spans several), so bytes are first cut into records, then
//! the handshake bytes of all records are joined and cut into messages, each parsed by
//! tls-parser. "Need more data" is [`Progress::NeedMore`], not an error.

use tls_parser::{
    ECParametersContent, TlsExtension, TlsMessage, TlsMessageHandshake, parse_dh_params,
    parse_ecdh_params, parse_tls_message_handshake, parse_tls_server_hello_extensions,
};

/// The largest record TLS allows (2^14 plus expansion); anything longer is not TLS.
const MAX_RECORD: usize = 16384 + 2048;
/// The largest handshake message accepted (certificate chains are the big ones).
const MAX_HANDSHAKE: usize = 256 * 1024;

/// The random of a TLS 1.3 HelloRetryRequest, which is a ServerHello with this random
/// (RFC 8446 4.1.3: SHA-256 of "HelloRetryRequest").
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// How far to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The ServerHello is all that is wanted (suite enumeration in TLS 1.3, where the
    /// rest is encrypted anyway).
    ServerHello,
    /// Up to ServerHelloDone in TLS 1.2 and below, for the Certificate,
    /// CertificateStatus and ServerKeyExchange; TLS 1.3 replies still stop after the
    /// ServerHello.
    ServerHelloDone,
}

/// What a ServerHello (and the plaintext messages after it) told.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerHello {
    /// The negotiated version: supported_versions when present, else the legacy field.
    pub version: u16,
    pub cipher: u16,
    /// A TLS 1.3 HelloRetryRequest: the server wants a key share for `group`.
    pub retry: bool,
    /// TLS 1.3: the key_share group (in a HelloRetryRequest, the group asked for).
    pub group: Option<u16>,
    /// Certificate message, leaf first (DER).
    pub chain: Vec<Vec<u8>>,
    /// A CertificateStatus with an OCSP response.
    pub ocsp: bool,
    /// ServerKeyExchange parameters, unparsed (their format depends on the suite).
    pub key_exchange: Option<Vec<u8>>,
    /// ServerHelloDone was reached; false when the server stopped early.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Hello(ServerHello),
    /// The server refused with an alert before any ServerHello.
    Alert {
        level: u8,
        description: u8,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    #[error("not TLS: {0}")]
    NotTls(String),
    #[error("malformed TLS reply: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    NeedMore,
    Done(Reply),
}

/// Reads one server flight; feed it what the socket gives until it is done.
#[derive(Debug)]
pub struct Reader {
    until: Until,
    /// Bytes not yet cut into records (less than one record).
    records: Vec<u8>,
    /// Handshake bytes not yet cut into messages.
    handshake: Vec<u8>,
    hello: Option<ServerHello>,
    seen_record: bool,
}

impl Reader {
    pub fn new(until: Until) -> Reader {
        Reader {
            until,
            records: Vec::new(),
            handshake: Vec::new(),
            hello: None,
            seen_record: false,
        }
    }

    /// Takes the next bytes from the server.
    pub fn feed(&mut self, data: &[u8]) -> Result<Progress, ReplyError> {
        self.records.extend_from_slice(data);
        loop {
            if self.records.len() < 5 {
                // An SSLv2 or plaintext reply may be shorter than a record header.
                if !self.seen_record && !self.records.is_empty() {
                    self.check_start()?;
                }
                return Ok(Progress::NeedMore);
            }
            self.check_start()?;
            let len = u16::from_be_bytes([self.records[3], self.records[4]]) as usize;
            if len > MAX_RECORD {
                return Err(ReplyError::Malformed(format!("record of {len} bytes")));
            }
            if self.records.len() < 5 + len {
                return Ok(Progress::NeedMore);
            }
            let record: Vec<u8> = self.records.drain(..5 + len).collect();
            self.seen_record = true;
            if let Some(reply) = self.record(record[0], &record[5..])? {
                return Ok(Progress::Done(reply));
            }
        }
    }

    /// The connection ended (closed or timed out) before the reply was complete: the
    /// ServerHello if one came, the rest as far as it got.
    pub fn finish(self) -> Option<Reply> {
        self.hello.map(Reply::Hello)
    }

    /// Whether the bytes so far can begin a TLS reply at all.
    fn check_start(&self) -> Result<(), ReplyError> {
        let b = &self.records;
        if self.seen_record {
            // Past the first record a bad header is a broken stream, not another protocol.
            if !(20..=24).contains(&b[0]) || b[1] != 3 {
                return Err(ReplyError::Malformed(format!(
                    "record header {:02x?}",
                    &b[..b.len().min(5)]
                )));
            }
            return Ok(());
        }
        if b[0] & 0x80 != 0 && b.len() >= 3 && b[2] == 4 {
            return Err(ReplyError::NotTls("an SSLv2 ServerHello".into()));
        }
        let tls_type = (20..=24).contains(&b[0]);
        let tls_version = b.len() < 2 || b[1] == 3;
        if !tls_type || !tls_version {
            return Err(ReplyError::NotTls(format!("reply begins {}", preview(b))));
        }
        Ok(())
    }

    fn record(&mut self, kind: u8, fragment: &[u8]) -> Result<Option<Reply>, ReplyError> {
        match kind {
            21 => {
                if fragment.len() < 2 {
                    return Err(ReplyError::Malformed("short alert".into()));
                }
                // An alert after the ServerHello still leaves the hello's answer.
                Ok(Some(match self.hello.take() {
                    Some(hello) => Reply::Hello(hello),
                    None => Reply::Alert {
                        level: fragment[0],
                        description: fragment[1],
                    },
                }))
            }
            22 => {
                self.handshake.extend_from_slice(fragment);
                self.messages()
            }
            23 => match self.hello.take() {
                // Encrypted TLS 1.3 messages follow the ServerHello: nothing more to read.
                Some(hello) => Ok(Some(Reply::Hello(hello))),
                None => Err(ReplyError::Malformed(
                    "application data before a ServerHello".into(),
                )),
            },
            // ChangeCipherSpec (TLS 1.3 compatibility mode) and heartbeats.
            _ => Ok(None),
        }
    }

    /// Cuts complete handshake messages out of the joined handshake bytes.
    fn messages(&mut self) -> Result<Option<Reply>, ReplyError> {
        while self.handshake.len() >= 4 {
            let h = &self.handshake;
            let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
            if len > MAX_HANDSHAKE {
                return Err(ReplyError::Malformed(format!(
                    "handshake message of {len} bytes"
                )));
            }
            if h.len() < 4 + len {
                return Ok(None);
            }
            let message: Vec<u8> = self.handshake.drain(..4 + len).collect();
            if let Some(reply) = self.message(&message)? {
                return Ok(Some(reply));
            }
        }
        Ok(None)
    }

    fn message(&mut self, message: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let kind = message[0];
        // HelloRequest may come at any time and means nothing here.
        if kind == 0 {
            return Ok(None);
        }
        let Some(hello) = self.hello.as_mut() else {
            if kind != 2 {
                return Err(ReplyError::Malformed(format!(
                    "handshake message {kind} before a ServerHello"
                )));
            }
            let hello = server_hello(message)?;
            let done = hello.retry || hello.version >= 0x0304 || self.until == Until::ServerHello;
            if done {
                return Ok(Some(Reply::Hello(hello)));
            }
            self.hello = Some(hello);
            return Ok(None);
        };
        // Only the messages of interest are parsed; a CertificateRequest or anything
        // unexpected is skipped rather than failing a reply that already answered.
        match kind {
            11 | 12 | 22 => {
                let parsed = parse_tls_message_handshake(message).map_err(|e| {
                    ReplyError::Malformed(format!("handshake message {kind}: {e:?}"))
                })?;
                match parsed.1 {
                    TlsMessage::Handshake(TlsMessageHandshake::Certificate(c)) => {
                        hello.chain = c.cert_chain.iter().map(|c| c.data.to_vec()).collect();
                    }
                    TlsMessage::Handshake(TlsMessageHandshake::ServerKeyExchange(k)) => {
                        hello.key_exchange = Some(k.parameters.to_vec());
                    }
                    TlsMessage::Handshake(TlsMessageHandshake::CertificateStatus(s)) => {
                        hello.ocsp = s.status_type == 1 && !s.blob.is_empty();
                    }
                    _ => {}
                }
            }
            14 => {
                let mut hello = self.hello.take().unwrap_or_default();
                hello.complete = true;
                return Ok(Some(Reply::Hello(hello)));
            }
            _ => {}
        }
        Ok(None)
    }
}

fn server_hello(message: &[u8]) -> Result<ServerHello, ReplyError> {
    let malformed = |e| ReplyError::Malformed(format!("ServerHello: {e}"));
    let (_, parsed) =
        parse_tls_message_handshake(message).map_err(|e| malformed(format!("{e:?}")))?;
    let TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)) = parsed else {
        return Err(malformed("unexpected form".into()));
    };
    let mut hello = ServerHello {
        version: sh.version.0,
        cipher: sh.cipher.0,
        retry: sh.random == HRR_RANDOM,
        ..ServerHello::default()
    };
    if let Some(ext) = sh.ext {
        let (_, ext) =
            parse_tls_server_hello_extensions(ext).map_err(|e| malformed(format!("{e:?}")))?;
        for e in ext {
            match e {
                TlsExtension::SupportedVersions(v) if v.len() == 1 => hello.version = v[0].0,
                TlsExtension::KeyShare(k) if k.len() >= 2 => {
                    hello.group = Some(u16::from_be_bytes([k[0], k[1]]));
                }
                _ => {}
            }
        }
    }
    Ok(hello)
}

/// The size in bits of the DH prime in a DHE ServerKeyExchange.
pub fn dh_bits(key_exchange: &[u8]) -> Option<u32> {
    let (_, params) = parse_dh_params(key_exchange).ok()?;
    let p = params.dh_p;
    let start = p.iter().position(|&b| b != 0)?;
    Some((p.len() - start) as u32 * 8 - p[start].leading_zeros())
}

/// The named group of an ECDHE ServerKeyExchange.
pub fn ecdhe_group(key_exchange: &[u8]) -> Option<u16> {
    let (_, params) = parse_ecdh_params(key_exchange).ok()?;
    match params.curve_params.params_content {
        ECParametersContent::NamedGroup(g) => Some(g.0),
        _ => None,
    }
}

/// The first bytes of a non-TLS reply, readable when they are text (an SMTP or HTTP
/// banner is the usual case).
fn preview(b: &[u8]) -> String {
    let b = &b[..b.len().min(32)];
    if b.iter()
        .all(|c| c.is_ascii_graphic() || *c == b' ' || *c == b'\r' || *c == b'\n')
    {
        format!("{:?}", String::from_utf8_lossy(b))
    } else {
        format!("{b:02x?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    fn record(kind: u8, fragment: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        r.extend_from_slice(fragment);
        r
    }

    fn server_hello_body(version: u16, random: [u8; 32], cipher: u16, ext: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&random);
        b.push(0); // session id
        b.extend_from_slice(&cipher.to_be_bytes());
        b.push(0);
        if !ext.is_empty() {
            b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
            b.extend_from_slice(ext);
        }
        b
    }

    fn certificate(certs: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for c in certs {
            list.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            list.extend_from_slice(c);
        }
        let mut b = (list.len() as u32).to_be_bytes()[1..].to_vec();
        b.extend_from_slice(&list);
        b
    }

    /// A TLS 1.2 flight: ServerHello, Certificate, CertificateStatus, DHE
    /// ServerKeyExchange (2048-bit prime), ServerHelloDone.
    fn tls12_flight() -> Vec<u8> {
        let mut hs = handshake(2, &server_hello_body(0x0303, [7; 32], 0x009E, &[]));
        let big = vec![0x30; 3000];
        hs.extend(handshake(11, &certificate(&[&big, b"ca"])));
        let mut status = vec![1];
        status.extend_from_slice(&[0, 0, 3, 1, 2, 3]);
        hs.extend(handshake(22, &status));
        let mut dh = vec![1, 0, 0x80];
        dh.extend(vec![0xFF; 255]);
        dh.extend_from_slice(&[0, 1, 2, 0, 1, 5]);
        hs.extend(handshake(12, &dh));
        hs.extend(handshake(14, &[]));
        // Handshake messages split across records of 1000 bytes.
        hs.chunks(1000).flat_map(|c| record(22, c)).collect()
    }

    fn read_in_pieces(bytes: &[u8], piece: usize, until: Until) -> Result<Reply, ReplyError> {
        let mut reader = Reader::new(until);
        for chunk in bytes.chunks(piece) {
            if let Progress::Done(reply) = reader.feed(chunk)? {
                return Ok(reply);
            }
        }
        reader
            .finish()
            .ok_or(ReplyError::Malformed("incomplete".into()))
    }

    #[test]
    fn fragmented_tls12_flight_is_read_whole() {
        let flight = tls12_flight();
        for piece in [1, 3, 7, 100, 4096] {
            let Reply::Hello(hello) =
                read_in_pieces(&flight, piece, Until::ServerHelloDone).unwrap()
            else {
                panic!("no hello");
            };
            assert_eq!((hello.version, hello.cipher), (0x0303, 0x009E));
            assert_eq!(hello.chain.len(), 2);
            assert_eq!(hello.chain[0].len(), 3000);
            assert!(hello.ocsp && hello.complete && !hello.retry);
            assert_eq!(dh_bits(hello.key_exchange.as_deref().unwrap()), Some(2048));
        }
    }

    #[test]
    fn stops_after_server_hello_when_asked() {
        let flight = tls12_flight();
        let Reply::Hello(hello) = read_in_pieces(&flight, 5, Until::ServerHello).unwrap() else {
            panic!()
        };
        assert!(hello.chain.is_empty() && !hello.complete);
    }

    #[test]
    fn tls13_hello_and_retry_request() {
        // supported_versions 1.3 and a key share for x25519.
        let mut ext = vec![0, 43, 0, 2, 3, 4, 0, 51, 0, 36, 0, 29, 0, 32];
        ext.extend([9; 32]);
        let hello = handshake(2, &server_hello_body(0x0303, [1; 32], 0x1302, &ext));
        let mut bytes = record(22, &hello);
        bytes.extend(record(20, &[1]));
        bytes.extend(record(23, &[0; 40]));
        let Reply::Hello(h) = read_in_pieces(&bytes, 2, Until::ServerHelloDone).unwrap() else {
            panic!()
        };
        assert_eq!(
            (h.version, h.cipher, h.group, h.retry),
            (0x0304, 0x1302, Some(29), false)
        );

        let ext = [0, 43, 0, 2, 3, 4, 0, 51, 0, 2, 0, 24];
        let hrr = handshake(2, &server_hello_body(0x0303, HRR_RANDOM, 0x1301, &ext));
        let Reply::Hello(h) = read_in_pieces(&record(22, &hrr), 9, Until::ServerHelloDone).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (h.version, h.cipher, h.group, h.retry),
            (0x0304, 0x1301, Some(24), true)
        );
    }

    #[test]
    fn alerts_and_non_tls_replies() {
        let alert = record(21, &[2, 40]);
        assert_eq!(
            read_in_pieces(&alert, 1, Until::ServerHello),
            Ok(Reply::Alert {
                level: 2,
                description: 40
            })
        );
        let smtp = b"220 mail.example ESMTP\r\n";
        assert!(matches!(
            read_in_pieces(smtp, 64, Until::ServerHello),
            Err(ReplyError::NotTls(m)) if m.contains("220 mail")
        ));
        let sslv2 = [0x80, 0x2e, 0x04, 0x00, 0x01, 0x00, 0x02];
        assert!(matches!(
            read_in_pieces(&sslv2, 64, Until::ServerHello),
            Err(ReplyError::NotTls(_))
        ));
        // A record too long for TLS, and garbage after a valid first record.
        assert!(read_in_pieces(&[22, 3, 3, 0xFF, 0xFF], 5, Until::ServerHello).is_err());
        let mut bad = record(20, &[1]);
        bad.extend_from_slice(&[0x47, 0x45, 0x54, 0x20, 0x2F]);
        assert!(matches!(
            read_in_pieces(&bad, 64, Until::ServerHello),
            Err(ReplyError::Malformed(_))
        ));
    }

    #[test]
    fn ecdhe_key_exchange_names_its_group() {
        // named_curve (3), secp384r1 (24), point of 1 byte.
        assert_eq!(ecdhe_group(&[3, 0, 24, 1, 4, 0, 0]), Some(24));
        assert_eq!(ecdhe_group(&[1]), None);
    }
}
