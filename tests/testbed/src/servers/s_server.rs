//! `openssl s_server`, a TLS server whose protocols and ciphers a test picks freely: the
//! auditor's target for "legacy protocol" and "weak cipher" findings.
//!
//! At start a throwaway CA and a server certificate signed by it are made with the
//! `openssl` CLI ([`Certs`]), so clients verify the server for real (`-CAfile`) instead
//! of skipping verification. The server runs with `-www` (answers `GET /` with a status
//! page, which also proves application data flows) on `-accept IP:PORT`; extra
//! arguments such as `-tls1_2` or `-cipher` come from [`SServer::start_with`].
//! Readiness is a full, verified handshake by `openssl s_client`.
//!
//! A test that needs a certificate no client should accept (self-signed, expired: what
//! an auditor must flag) makes one ([`Certs::self_signed`], [`Certs::expired`] or its
//! own) and starts the server with [`SServer::start_with_cert`]; readiness is then a
//! completed handshake, not verified.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{
    CLIENT_TIMEOUT, Host, Running, Server, Setup, checked, command_failed, impl_server, run,
};
use crate::error::{IoContext, Result};
use crate::require;

/// A CA certificate and a server certificate (with key) it signed, as PEM files.
#[derive(Clone, Debug)]
pub struct Certs {
    /// The CA certificate a client trusts.
    pub ca: PathBuf,
    /// The server certificate, for `ip` and `localhost`.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A private `openssl` config (passed as `OPENSSL_CONF`), so the system's `openssl.cnf`
/// adds no extensions of its own; `[ca]` and `[server]` are the two certificates'
/// extensions, the server's names coming from the environment. `[testca]` is what
/// `openssl ca -name testca` (the one way OpenSSL 3.0 backdates) needs, relative to the
/// directory the certificates are made in.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = testbed
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${ENV::TESTBED_SAN}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[testca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = optional
";

/// A new RSA 2048 key, unencrypted; a certificate made with it is valid a week.
const RSA_KEY: [&str; 5] = ["-newkey", "rsa:2048", "-nodes", "-days", "7"];

/// The `openssl` CLI working in a directory with [`OPENSSL_CNF`], for one server address.
struct Pki<'a> {
    openssl: PathBuf,
    dir: &'a Path,
    cnf: PathBuf,
    ip: IpAddr,
}

impl<'a> Pki<'a> {
    fn new(dir: &'a Path, ip: IpAddr) -> Result<Pki<'a>> {
        let openssl = require::tool("openssl", "openssl")?;
        let cnf = dir.join("openssl.cnf");
        std::fs::write(&cnf, OPENSSL_CNF).context(|| format!("write {}", cnf.display()))?;
        Ok(Pki {
            openssl,
            dir,
            cnf,
            ip,
        })
    }

    /// Runs `openssl ARGS...` in the directory, to completion.
    fn run(&self, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new(&self.openssl);
        cmd.args(args)
            .current_dir(self.dir)
            .env("OPENSSL_CONF", &self.cnf)
            .env("TESTBED_SAN", format!("IP:{},DNS:localhost", self.ip));
        checked(&mut cmd, b"", CLIENT_TIMEOUT).map(drop)
    }

    /// Where the server's certificate and key go; `ca` is still to be made.
    fn certs(&self, ca: &str) -> Certs {
        Certs {
            ca: self.dir.join(ca),
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
        }
    }

    /// Makes `ca.pem` and `ca.key`, then `server.key` and a request for it, `server.csr`.
    fn ca_and_request(&self) -> Result<Certs> {
        let ca = [
            "req",
            "-x509",
            "-subj",
            "/CN=testbed CA",
            "-extensions",
            "ca",
        ];
        let ca_files = ["-keyout", "ca.key", "-out", "ca.pem"];
        self.run(&[&ca[..], &RSA_KEY, &ca_files].concat())?;
        let request = ["req", "-new", "-subj", "/CN=testbed server"];
        let files = ["-keyout", "server.key", "-out", "server.csr"];
        self.run(&[&request[..], &RSA_KEY, &files].concat())?;
        Ok(self.certs("ca.pem"))
    }
}

impl Certs {
    /// Makes `ca.pem`, `server.pem` and `server.key` (RSA 2048, valid a week) in `dir`,
    /// the server certificate naming `ip` and `localhost`. RSA rather than ECDSA so that
    /// RSA key-exchange cipher suites, which an audit must detect, can be negotiated.
    pub fn generate(dir: &Path, ip: IpAddr) -> Result<Certs> {
        let pki = Pki::new(dir, ip)?;
        let certs = pki.ca_and_request()?;
        pki.run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "7",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "server",
            "-out",
            "server.pem",
        ])?;
        Ok(certs)
    }

    /// Like [`generate`](Certs::generate), but the server certificate was valid only in
    /// January 2020 (the CA is valid now): a client trusting `ca` still refuses it as
    /// expired. Made with `openssl ca -startdate/-enddate`, as OpenSSL 3.0's `x509`
    /// cannot backdate.
    pub fn expired(dir: &Path, ip: IpAddr) -> Result<Certs> {
        let pki = Pki::new(dir, ip)?;
        let certs = pki.ca_and_request()?;
        std::fs::write(dir.join("index.txt"), "").context(|| "write index.txt".to_owned())?;
        std::fs::write(dir.join("serial"), "02\n").context(|| "write serial".to_owned())?;
        pki.run(&[
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-name",
            "testca",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "server.csr",
            "-out",
            "server.pem",
            "-notext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
            "-extensions",
            "server",
        ])?;
        Ok(certs)
    }

    /// A self-signed server certificate (RSA 2048, valid a week, naming `ip` and
    /// `localhost`) and its key in `dir`, with no CA: `ca` is the certificate itself,
    /// the one thing a client can trust to accept it.
    pub fn self_signed(dir: &Path, ip: IpAddr) -> Result<Certs> {
        let pki = Pki::new(dir, ip)?;
        let certs = pki.certs("server.pem");
        let cert = ["req", "-x509", "-subj", "/CN=testbed server"];
        let files = [
            "-extensions",
            "server",
            "-keyout",
            "server.key",
            "-out",
            "server.pem",
        ];
        pki.run(&[&cert[..], &RSA_KEY, &files].concat())?;
        Ok(certs)
    }
}

/// A running `openssl s_server -www`, with a certificate from a private CA or with the
/// certificate a test gave.
#[derive(Debug)]
pub struct SServer {
    run: Running,
    certs: Certs,
    openssl: PathBuf,
}
impl_server!(SServer);

/// How a start decides that s_server is up.
#[derive(Clone, Copy)]
enum Readiness {
    /// A handshake that verifies against the CA, as [`SServer::s_client`] makes.
    Verified,
    /// Any completed handshake, whatever the certificate.
    Handshake,
}

impl SServer {
    pub fn start(host: Host<'_>) -> Result<SServer> {
        Self::start_with(host, &[])
    }

    /// Starts s_server with more arguments, e.g. `["-tls1_2", "-cipher", "AES128-SHA"]`.
    pub fn start_with(host: Host<'_>, extra_args: &[&str]) -> Result<SServer> {
        let setup = Setup::new("s_server", host)?;
        let certs = Certs::generate(&setup.path(""), setup.addr().ip())?;
        Self::launch(setup, certs, extra_args, Readiness::Verified)
    }

    /// Starts s_server with the certificate (chain) in `cert` and its key in `key`, PEM
    /// files read at start, plus `extra_args`. Such a certificate may be self-signed,
    /// expired or for another name, so readiness is any completed handshake, without
    /// verification. With no CA known, [`ca_cert`](Self::ca_cert) is `cert` itself: a
    /// client trusting it (as [`s_client`](Self::s_client) does) accepts a self-signed
    /// certificate valid now and nothing else.
    pub fn start_with_cert(
        host: Host<'_>,
        cert: &Path,
        key: &Path,
        extra_args: &[&str],
    ) -> Result<SServer> {
        let setup = Setup::new("s_server", host)?;
        let certs = Certs {
            ca: cert.to_path_buf(),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        };
        Self::launch(setup, certs, extra_args, Readiness::Handshake)
    }

    fn launch(
        setup: Setup<'_>,
        certs: Certs,
        extra_args: &[&str],
        readiness: Readiness,
    ) -> Result<SServer> {
        let openssl = require::tool("openssl", "openssl")?;
        let mut args: Vec<OsString> = vec!["s_server".into(), "-www".into()];
        args.extend(["-accept".into(), setup.addr().to_string().into()]);
        args.extend(["-cert".into(), certs.cert.clone().into()]);
        args.extend(["-key".into(), certs.key.clone().into()]);
        args.extend(extra_args.iter().map(OsString::from));

        let run = setup.launch(&openssl, &args, Duration::from_secs(20), |s| {
            let mut probe = s.command(&openssl);
            let ca = match readiness {
                Readiness::Verified => Some(certs.ca.as_path()),
                Readiness::Handshake => None,
            };
            s_client_args(&mut probe, s.addr(), ca);
            let out = run(&mut probe, b"", Duration::from_secs(5)).map_err(|e| e.to_string())?;
            // `-brief` reports a completed handshake on stderr, verified or not.
            if out.status.success() && out.stderr.contains("CONNECTION ESTABLISHED") {
                Ok(())
            } else {
                Err(format!("handshake failed: {}", out.stderr.trim()))
            }
        })?;
        Ok(SServer {
            run,
            certs,
            openssl,
        })
    }

    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// The CA certificate a client must trust to verify the server (for a server started
    /// with [`start_with_cert`](Self::start_with_cert), the certificate itself).
    pub fn ca_cert(&self) -> &Path {
        &self.certs.ca
    }

    pub fn cert(&self) -> &Path {
        &self.certs.cert
    }

    pub fn key(&self) -> &Path {
        &self.certs.key
    }

    /// Runs a verifying `openssl s_client` (CA, IP address checked, `-brief`) plus
    /// `extra_args` against the server, sending `input`; returns what it printed (the
    /// `-brief` summary with protocol and cipher, then the server's answer). Fails if
    /// the handshake or the verification fails. s_client hangs up when `input` ends;
    /// add `-ign_eof` to wait for the server's answer (`-www` closes after it).
    pub fn s_client(&self, extra_args: &[&str], input: &[u8]) -> Result<String> {
        let mut cmd = self.command(&self.openssl);
        s_client_args(&mut cmd, self.addr(), Some(&self.certs.ca));
        cmd.args(extra_args);
        let out = run(&mut cmd, input, CLIENT_TIMEOUT)?;
        if out.status.success() {
            Ok(format!("{}{}", out.stderr, out.stdout))
        } else {
            Err(command_failed(&cmd, &out))
        }
    }
}

/// `openssl s_client -brief` to `addr`; with a CA, verifying the chain against it and the
/// certificate against the IP address, failing unless both pass.
fn s_client_args(cmd: &mut Command, addr: SocketAddr, ca: Option<&Path>) {
    cmd.args(["s_client", "-brief", "-connect"])
        .arg(addr.to_string());
    if let Some(ca) = ca {
        cmd.args(["-verify_return_error", "-verify_ip"])
            .arg(addr.ip().to_string())
            .arg("-CAfile")
            .arg(ca);
    }
}
