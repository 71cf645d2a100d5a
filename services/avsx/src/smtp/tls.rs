//! STARTTLS's server side: the rustls configuration from the PEM files, swapped whole
//! on reload, and what a session's TLS parameters are called in the Received header.
//!
//! Only TLS 1.2 and 1.3, and only AEAD suites with forward secrecy (TLS 1.3's three,
//! TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305). That is what rustls's ring
//! provider offers today; the list is spelled out so that a rustls upgrade cannot widen
//! it unnoticed. Senders that cannot do either still deliver in plain text (STARTTLS
//! is opportunistic on port 25).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::{CryptoProvider, ring};
use rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Tls;
use crate::envelope::TlsInfo;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read certificate chain {}: {source}", path.display())]
    Cert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate chain {}: no certificate in it", path.display())]
    NoCert { path: PathBuf },
    #[error("read private key {}: {source}", path.display())]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate {} with key {}: {source}", cert.display(), key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// The cipher suites offered, strongest first.
fn cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    use ring::cipher_suite::*;
    vec![
        TLS13_AES_256_GCM_SHA384,
        TLS13_AES_128_GCM_SHA256,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// A server configuration from a PEM chain (leaf first) and a PEM key.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Cert {
            path: cert.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_owned(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let provider = CryptoProvider {
        cipher_suites: cipher_suites(),
        ..ring::default_provider()
    };
    let config_error = |source| TlsError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(config_error)?
        .with_no_client_auth()
        // Also checks that the key belongs to the leaf certificate.
        .with_single_cert(chain, private)
        .map_err(config_error)
}

/// The configuration in use, replaced whole by [`TlsConfig::reload`]; a handshake in
/// progress keeps the one it started with.
#[derive(Debug)]
pub struct TlsConfig {
    files: Tls,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsConfig {
    pub fn load(files: &Tls) -> Result<TlsConfig, TlsError> {
        let config = server_config(&files.cert, &files.key)?;
        Ok(TlsConfig {
            files: files.clone(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Re-reads the files; on error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files.cert, &self.files.key)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// `TLSv1.3` and rustls's suite name (`TLS13_AES_256_GCM_SHA384`).
pub fn info(conn: &ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_owned(),
    };
    let cipher = conn.negotiated_cipher_suite().map_or_else(
        || "unknown".to_owned(),
        |s| {
            let suite = s.suite();
            suite
                .as_str()
                .map_or_else(|| format!("{suite:?}"), str::to_owned)
        },
    );
    TlsInfo { version, cipher }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = server_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("cert.pem"), "{e}");

        std::fs::write(&cert, "no PEM here\n").unwrap();
        let e = server_config(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no certificate"),
            "{e}"
        );
    }

    #[test]
    fn only_aead_suites_with_forward_secrecy() {
        for s in cipher_suites() {
            let name = s.suite().as_str().unwrap();
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name}"
            );
            assert!(name.contains("GCM") || name.contains("CHACHA20"), "{name}");
        }
    }
}
