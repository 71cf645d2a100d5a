//! The certificate chain of a TLS 1.3-only server, whose Certificate message is
//! encrypted: a real rustls handshake whose verifier accepts anything and writes down
//! what it was shown (chain and stapled OCSP response).
//!
//! This only reads. Nothing is sent after the handshake and the result is never trusted
//! here; `tls::cert` judges the chain with its own verification.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::conn::{ConnError, DeadlineStream, Target};

/// What the server showed during the handshake.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// Leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    pub ocsp: bool,
}

#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<Seen>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
            chain,
            ocsp: !ocsp_response.is_empty(),
        });
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// Handshakes with the server (STARTTLS first when the target needs it) until the
/// verifier has seen the chain.
pub fn fetch(target: &Target) -> Result<Seen, ConnError> {
    // ring named explicitly: the process default provider may be unset, or ambiguous
    // when another crate in the build enables aws-lc-rs.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = config(provider, recorder.clone())?;
    let name = match (&target.sni, target.ip) {
        (Some(sni), _) => ServerName::try_from(sni.clone())
            .map_err(|e| ConnError::Io(std::io::Error::other(format!("SNI {sni:?}: {e}"))))?,
        (None, Some(ip)) => ServerName::IpAddress(ip.into()),
        (None, None) => ServerName::try_from("localhost").expect("valid name"),
    };
    let mut conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| ConnError::Io(std::io::Error::other(e)))?;
    let (mut stream, deadline) = target.connect()?;
    let mut io = DeadlineStream {
        stream: &mut stream,
        deadline,
    };
    let mut outcome = Ok(());
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut io) {
            outcome = Err(deadline.io_error(e));
            break;
        }
        if recorder
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            break;
        }
    }
    let seen = recorder
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    match (seen, outcome) {
        (Some(seen), _) => Ok(seen),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(ConnError::Io(std::io::Error::other(
            "handshake finished without a certificate",
        ))),
    }
}

fn config(
    provider: Arc<CryptoProvider>,
    recorder: Arc<Recorder>,
) -> Result<ClientConfig, ConnError> {
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConnError::Io(std::io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(recorder)
        .with_no_client_auth())
}
