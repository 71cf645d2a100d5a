//! `openssl s_server`, a TLS server whose protocols and ciphers a test picks freely: the
//! auditor's target for "legacy protocol" and "weak cipher" findings.
//!
//! At start a throwaway CA and a server certificate signed by it are made with the
//! `openssl` CLI ([`Certs`]), so clients verify the server for real (`-CAfile`) instead
//! of skipping verification. The server runs with `-www` (answers `GET /` with a status
//! page, which also proves application data flows) on `-accept IP:PORT`; extra
//! arguments such as `-tls1_2` or `-cipher` come from [`SServer::start_with`].
//! Readiness is a full, verified handshake by `openssl s_client`.

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
/// extensions, the server's names coming from the environment.
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
";

impl Certs {
    /// Makes `ca.pem`, `server.pem` and `server.key` (RSA 2048, valid a week) in `dir`,
    /// the server certificate naming `ip` and `localhost`. RSA rather than ECDSA so that
    /// RSA key-exchange cipher suites, which an audit must detect, can be negotiated.
    pub fn generate(dir: &Path, ip: IpAddr) -> Result<Certs> {
        let openssl = require::tool("openssl", "openssl")?;
        let cnf = dir.join("openssl.cnf");
        std::fs::write(&cnf, OPENSSL_CNF).context(|| format!("write {}", cnf.display()))?;
        let certs = Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        let ca_key = dir.join("ca.key");
        let csr = dir.join("server.csr");
        let openssl = |args: &[&str]| {
            let mut cmd = Command::new(&openssl);
            cmd.args(args)
                .env("OPENSSL_CONF", &cnf)
                .env("TESTBED_SAN", format!("IP:{ip},DNS:localhost"));
            cmd
        };
        let rsa = ["-newkey", "rsa:2048", "-nodes", "-days", "7"];

        let mut ca = openssl(&[
            "req",
            "-x509",
            "-subj",
            "/CN=testbed CA",
            "-extensions",
            "ca",
        ]);
        ca.args(rsa)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&certs.ca);
        let mut request = openssl(&["req", "-new", "-subj", "/CN=testbed server"]);
        request
            .args(rsa)
            .arg("-keyout")
            .arg(&certs.key)
            .arg("-out")
            .arg(&csr);
        let mut sign = openssl(&["x509", "-req", "-set_serial", "2", "-days", "7"]);
        sign.arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&certs.ca)
            .arg("-CAkey")
            .arg(&ca_key);
        sign.arg("-extfile")
            .arg(&cnf)
            .args(["-extensions", "server"]);
        sign.arg("-out").arg(&certs.cert);
        for mut step in [ca, request, sign] {
            checked(&mut step, b"", CLIENT_TIMEOUT)?;
        }
        Ok(certs)
    }
}

/// A running `openssl s_server -www` with a certificate from a private CA.
#[derive(Debug)]
pub struct SServer {
    run: Running,
    certs: Certs,
    openssl: PathBuf,
}
impl_server!(SServer);

impl SServer {
    pub fn start(host: Host<'_>) -> Result<SServer> {
        Self::start_with(host, &[])
    }

    /// Starts s_server with more arguments, e.g. `["-tls1_2", "-cipher", "AES128-SHA"]`.
    pub fn start_with(host: Host<'_>, extra_args: &[&str]) -> Result<SServer> {
        let openssl = require::tool("openssl", "openssl")?;

        let setup = Setup::new("s_server", host)?;
        let certs = Certs::generate(&setup.path(""), setup.addr().ip())?;
        let mut args: Vec<OsString> = vec!["s_server".into(), "-www".into()];
        args.extend(["-accept".into(), setup.addr().to_string().into()]);
        args.extend(["-cert".into(), certs.cert.clone().into()]);
        args.extend(["-key".into(), certs.key.clone().into()]);
        args.extend(extra_args.iter().map(OsString::from));

        let run = setup.launch(&openssl, &args, Duration::from_secs(20), |s| {
            let mut probe = s.command(&openssl);
            s_client_args(&mut probe, s.addr(), &certs);
            let out = run(&mut probe, b"", Duration::from_secs(5)).map_err(|e| e.to_string())?;
            if out.status.success() {
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

    /// The CA certificate a client must trust to verify the server.
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
        s_client_args(&mut cmd, self.addr(), &self.certs);
        cmd.args(extra_args);
        let out = run(&mut cmd, input, CLIENT_TIMEOUT)?;
        if out.status.success() {
            Ok(format!("{}{}", out.stderr, out.stdout))
        } else {
            Err(command_failed(&cmd, &out))
        }
    }
}

fn s_client_args(cmd: &mut Command, addr: SocketAddr, certs: &Certs) {
    cmd.args(["s_client", "-brief", "-verify_return_error", "-connect"])
        .arg(addr.to_string())
        .arg("-verify_ip")
        .arg(addr.ip().to_string())
        .arg("-CAfile")
        .arg(&certs.ca);
}
