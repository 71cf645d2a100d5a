//! The servers both auditors look at, all on 127.0.0.1 in the benchmark's own network
//! namespace, each with a certificate from a private CA (testbed's [`Certs`], RSA 2048,
//! so RSA key exchange suites can be negotiated):
//!
//! | target   | server | protocols | suites |
//! |----------|--------|-----------|--------|
//! | `modern` | `openssl s_server` | TLS 1.2, 1.3 | ECDHE-RSA AES-GCM (2) + OpenSSL's TLS 1.3 default (3) |
//! | `legacy` | `openssl s_server` | TLS 1.0 to 1.3 | `ALL:@SECLEVEL=0`: every suite OpenSSL 3.0 has, anonymous DH and ECDH, CBC, Camellia, ARIA, CCM |
//! | `tls13`  | `openssl s_server` | TLS 1.3 only | AES-256-GCM, ChaCha20, AES-128-CCM (a non-default set) |
//! | `nginx`  | nginx (testbed), Mozilla *intermediate* | TLS 1.2, 1.3 | the profile's 9 ECDHE/DHE AEAD suites (6 with an RSA certificate), ffdhe2048 |
//!
//! OpenSSL 3.0 takes one protocol flag at most (`-tls1 -tls1_1` is refused: "Cannot
//! supply multiple protocol flags"), so ranges are `-min_protocol`; TLS 1.0 and 1.1 need
//! security level 0, which `@SECLEVEL=0` in the cipher string sets. Debian's OpenSSL
//! 3.0 has no 3DES, RC4 or export suites left (`openssl ciphers DES-CBC3-SHA` finds
//! none), so the legacy target's weakest suites are the anonymous ones and CBC with
//! SHA-1.
//!
//! `s_server` serves one connection at a time; a client that probes in parallel waits
//! for the earlier connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use testbed::servers::{Certs, Host, Nginx, SServer, Server};

use crate::cmd;

/// A server to audit.
pub struct Target {
    /// Short name for the report, e.g. `legacy`.
    pub name: &'static str,
    /// What it is, one line.
    pub what: &'static str,
    /// Where it accepts TLS.
    pub addr: SocketAddr,
    /// The CA that signed its certificate.
    pub ca: PathBuf,
    /// Held until the run ends; dropping it stops the server.
    _server: Running,
}

/// A server's handles, only held (hence the underscores): dropping them stops it.
enum Running {
    SServer {
        _server: Box<SServer>,
    },
    /// nginx, then the directory with its certificate and DH parameters (removed after
    /// nginx has stopped).
    Nginx {
        _server: Box<Nginx>,
        _dir: TempDir,
    },
}

/// A target to start: name, description, and how.
pub struct Spec {
    pub name: &'static str,
    pub what: &'static str,
    kind: Kind,
}

enum Kind {
    SServer(&'static [&'static str]),
    NginxIntermediate,
}

/// The targets, in the order they are audited; nginx only when `nginx`.
pub fn specs(nginx: bool) -> Vec<Spec> {
    let mut all = vec![
        Spec {
            name: "modern",
            what: "s_server TLS 1.2+1.3, ECDHE-RSA AES-GCM",
            kind: Kind::SServer(&[
                "-min_protocol",
                "TLSv1.2",
                "-cipher",
                "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
            ]),
        },
        Spec {
            name: "legacy",
            what: "s_server TLS 1.0-1.3, ALL:@SECLEVEL=0",
            kind: Kind::SServer(&["-min_protocol", "TLSv1", "-cipher", "ALL:@SECLEVEL=0"]),
        },
        Spec {
            name: "tls13",
            what: "s_server TLS 1.3 only, 3 suites incl. CCM",
            kind: Kind::SServer(&[
                "-tls1_3",
                "-ciphersuites",
                "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256",
            ]),
        },
    ];
    if nginx {
        all.push(Spec {
            name: "nginx",
            what: "nginx, Mozilla intermediate profile",
            kind: Kind::NginxIntermediate,
        });
    }
    all
}

impl Spec {
    /// Starts the server and waits until it completes a verified handshake.
    pub fn start(&self) -> Result<Target> {
        let (addr, ca, server) = match self.kind {
            Kind::SServer(args) => {
                let s = SServer::start_with(Host::Loopback, args)
                    .with_context(|| format!("start s_server {}", args.join(" ")))?;
                (
                    s.addr(),
                    s.ca_cert().to_owned(),
                    Running::SServer {
                        _server: Box::new(s),
                    },
                )
            }
            Kind::NginxIntermediate => {
                let (nginx, addr, dir) = start_nginx()?;
                (
                    addr,
                    dir.path().join("ca.pem"),
                    Running::Nginx {
                        _server: Box::new(nginx),
                        _dir: dir,
                    },
                )
            }
        };
        Ok(Target {
            name: self.name,
            what: self.what,
            addr,
            ca,
            _server: server,
        })
    }
}

/// The Mozilla intermediate profile (ssl-config.mozilla.org, guidelines 5.7) for nginx,
/// serving `cert` and `key` on `addr`.
pub fn intermediate(addr: SocketAddr, cert: &Path, key: &Path, dhparam: &Path) -> String {
    format!(
        "\
    listen {addr} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_timeout 1d;
    ssl_session_cache shared:MozSSL:10m;
    ssl_session_tickets off;
    ssl_dhparam {dhparam};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
",
        cert = cert.display(),
        key = key.display(),
        dhparam = dhparam.display(),
    )
}

/// The testbed's nginx with a second, TLS listener on a free loopback port.
fn start_nginx() -> Result<(Nginx, SocketAddr, TempDir)> {
    testbed::require::root().context("nginx needs root")?;
    let dir = crate::daemon::Daemon::dir("tlsaudit-nginx")?;
    let certs = Certs::generate(dir.path(), IpAddr::V4(Ipv4Addr::LOCALHOST))
        .context("make nginx's certificates")?;
    // RFC 7919's ffdhe2048, as the profile asks (generated in no time: it is named).
    let dhparam = dir.path().join("ffdhe2048.pem");
    cmd::checked(
        Command::new("openssl")
            .args([
                "genpkey",
                "-genparam",
                "-algorithm",
                "DH",
                "-pkeyopt",
                "group:ffdhe2048",
                "-out",
            ])
            .arg(&dhparam),
        Duration::from_secs(30),
    )?;
    let port = testbed::ports::free_port()?;
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let nginx = Nginx::start_with(
        Host::Loopback,
        &intermediate(addr, &certs.cert, &certs.key, &dhparam),
    )
    .context("start nginx")?;
    // nginx answered on its plain port; its TLS port must complete a verified handshake.
    let out = cmd::run(
        Command::new("openssl")
            .args(["s_client", "-brief", "-verify_return_error", "-connect"])
            .arg(addr.to_string())
            .args(["-verify_ip", "127.0.0.1", "-CAfile"])
            .arg(&certs.ca),
        Duration::from_secs(10),
    )?;
    if !out.status.success() {
        bail!(
            "nginx's TLS port {addr} failed a verified handshake: {}\n{}",
            out.complaint(),
            nginx.log_tail(10)
        );
    }
    Ok((nginx, addr, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intermediate_profile_is_tls12_and_13_with_aead_suites() {
        let conf = intermediate(
            "127.0.0.1:4443".parse().unwrap(),
            Path::new("/c.pem"),
            Path::new("/k.pem"),
            Path::new("/dh.pem"),
        );
        assert!(conf.contains("listen 127.0.0.1:4443 ssl;"));
        assert!(conf.contains("ssl_protocols TLSv1.2 TLSv1.3;"));
        assert!(conf.contains("ssl_dhparam /dh.pem;"));
        let ciphers = conf
            .lines()
            .find_map(|l| l.trim().strip_prefix("ssl_ciphers "))
            .unwrap();
        assert_eq!(ciphers.split(':').count(), 9);
        assert!(
            ciphers
                .trim_end_matches(';')
                .split(':')
                .all(|c| c.contains("GCM") || c.contains("CHACHA20"))
        );
    }

    #[test]
    fn nginx_is_optional() {
        assert_eq!(specs(false).len(), 3);
        assert_eq!(specs(true).last().map(|s| s.name), Some("nginx"));
    }
}
