//! The hardened configuration: TLS (and, for nginx, security headers) for nginx and
//! Postfix, after the Mozilla Server Side TLS guidelines, rendered with tera from the
//! templates in `templates/`.
//!
//! The values are those of guidelines version 5.7
//! (<https://wiki.mozilla.org/Security/Server_Side_TLS>,
//! <https://ssl-config.mozilla.org/guidelines/5.7.json>): Modern is TLS 1.3 only;
//! Intermediate is TLS 1.2 and 1.3 with the ECDHE (and ffdhe2048 DHE) AES-GCM and
//! ChaCha20-Poly1305 suites; both use the curves X25519, prime256v1, secp384r1, let the
//! client choose the suite, want two years of HSTS, and no nginx session tickets.
//! The rendering is deterministic: the same server and profile give the same bytes.

use serde::Serialize;

/// Guidelines version the values come from.
pub const GUIDELINE: &str = "5.7";

/// RFC 7919 ffdhe2048 group (PKCS#3 PEM), the DH parameters Mozilla ships as
/// `ffdhe2048.txt`; the nginx intermediate configuration reads it from
/// [`NGINX_DHPARAM`] in the nginx configuration directory.
pub const FFDHE2048_PEM: &str = include_str!("../templates/ffdhe2048.pem");

/// Where the nginx configuration expects [`FFDHE2048_PEM`], relative to the nginx
/// configuration directory (`/etc/nginx` on Debian).
pub const NGINX_DHPARAM: &str = "ffdhe2048.pem";

/// Intermediate TLS 1.2 cipher suites, OpenSSL names, in Mozilla's order.
pub const INTERMEDIATE_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

/// TLS 1.3 cipher suites, both profiles (OpenSSL's default set and order).
pub const TLS13_CIPHERSUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/// HSTS max-age: two years.
pub const HSTS_MAX_AGE: u32 = 63_072_000;

const NGINX_TEMPLATE: &str = include_str!("../templates/nginx.conf.tera");
const POSTFIX_TEMPLATE: &str = include_str!("../templates/postfix-main.cf.tera");

/// Mozilla configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// TLS 1.3 only (Firefox 63, Android 10, Chrome 70, Java 11, OpenSSL 1.1.1).
    Modern,
    /// TLS 1.2 and 1.3, for a general-purpose server.
    Intermediate,
}

/// The server to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Server {
    /// nginx: a snippet for a `server { listen 443 ssl; }` block.
    Nginx,
    /// Postfix: main.cf lines.
    Postfix,
}

/// What the templates are filled with.
#[derive(Debug, Serialize)]
struct Values {
    guideline: &'static str,
    profile: &'static str,
    audience: &'static str,
    nginx_protocols: &'static str,
    postfix_protocols: &'static str,
    /// TLS 1.2 suites; None when TLS 1.2 is off.
    openssl_ciphers: Option<&'static str>,
    tls13_ciphersuites: &'static str,
    /// nginx `ssl_ecdh_curve`, colon separated.
    curves: &'static str,
    /// Postfix `tls_eecdh_auto_curves`, space separated.
    curves_postfix: &'static str,
    /// The DH parameter file, when DHE suites are on.
    dhparam: Option<&'static str>,
    hsts_max_age: u32,
}

fn values(profile: Profile) -> Values {
    let common = Values {
        guideline: GUIDELINE,
        profile: "",
        audience: "",
        nginx_protocols: "",
        postfix_protocols: "",
        openssl_ciphers: None,
        tls13_ciphersuites: TLS13_CIPHERSUITES,
        curves: "X25519:prime256v1:secp384r1",
        curves_postfix: "X25519 prime256v1 secp384r1",
        dhparam: None,
        hsts_max_age: HSTS_MAX_AGE,
    };
    match profile {
        Profile::Modern => Values {
            profile: "modern",
            audience: "clients with TLS 1.3, no backward compatibility",
            nginx_protocols: "TLSv1.3",
            postfix_protocols: ">=TLSv1.3",
            ..common
        },
        Profile::Intermediate => Values {
            profile: "intermediate",
            audience: "general-purpose servers",
            nginx_protocols: "TLSv1.2 TLSv1.3",
            postfix_protocols: ">=TLSv1.2",
            openssl_ciphers: Some(INTERMEDIATE_CIPHERS),
            dhparam: Some(NGINX_DHPARAM),
            ..common
        },
    }
}

/// The configuration for `server` in `profile`.
pub fn render(server: Server, profile: Profile) -> anyhow::Result<String> {
    let (name, template) = match server {
        Server::Nginx => ("nginx.conf", NGINX_TEMPLATE),
        Server::Postfix => ("postfix-main.cf", POSTFIX_TEMPLATE),
    };
    let mut tera = tera::Tera::default();
    // Configuration files, not HTML: nothing to escape.
    tera.autoescape_on(Vec::new());
    tera.add_raw_template(name, template)?;
    let context = tera::Context::from_serialize(values(profile))?;
    Ok(tera.render(name, &context)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_renders_without_leftovers() {
        for server in [Server::Nginx, Server::Postfix] {
            for profile in [Profile::Modern, Profile::Intermediate] {
                let out = render(server, profile).unwrap();
                assert!(!out.contains("{{") && !out.contains("{%"), "{out}");
                assert!(out.contains("5.7"), "{out}");
                assert_eq!(out, render(server, profile).unwrap());
            }
        }
    }

    #[test]
    fn ffdhe2048_is_a_pem() {
        assert!(FFDHE2048_PEM.starts_with("-----BEGIN DH PARAMETERS-----\n"));
        assert!(
            FFDHE2048_PEM
                .trim_end()
                .ends_with("-----END DH PARAMETERS-----")
        );
    }
}
