//! The generated configurations: accepted by the real `nginx -t` and `postconf`, and
//! holding the Mozilla values.

use std::path::Path;
use std::process::Command;

use tlsaudit::configgen::{self, Profile, Server};

const PROFILES: [Profile; 2] = [Profile::Modern, Profile::Intermediate];

/// The program, found where Debian puts it; a missing one fails the test naming the
/// package (scripts/setup installs both), never skips it.
fn nginx() -> std::path::PathBuf {
    testbed::require::tool("nginx", "nginx-light").unwrap()
}

fn postconf() -> std::path::PathBuf {
    testbed::require::tool("postconf", "postfix").unwrap()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A test CA and a leaf signed by it, with an OCSP responder URL so that nginx can set
/// up stapling without warnings: `fullchain.pem` (leaf, CA) and `key.pem` in `dir`.
fn test_certificate(dir: &Path) {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").args(args).current_dir(dir));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=tlsaudit test CA"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=test.example",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName = DNS:test.example\n\
         authorityInfoAccess = OCSP;URI:http://127.0.0.1:9/\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    let chain = [
        std::fs::read_to_string(dir.join("leaf.pem")).unwrap(),
        std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("fullchain.pem"), chain).unwrap();
}

#[test]
fn nginx_accepts_both_profiles() {
    let nginx = nginx();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    test_certificate(d);
    std::fs::write(d.join(configgen::NGINX_DHPARAM), configgen::FFDHE2048_PEM).unwrap();
    let p = d.display();
    for profile in PROFILES {
        let snippet = configgen::render(Server::Nginx, profile).unwrap();
        std::fs::write(d.join("tls.conf"), &snippet).unwrap();
        std::fs::write(
            d.join("nginx.conf"),
            format!(
                "pid {p}/nginx.pid;
error_log {p}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:8443 ssl;
        server_name test.example;
        ssl_certificate {p}/fullchain.pem;
        ssl_certificate_key {p}/key.pem;
        include {p}/tls.conf;
        location / {{ return 204; }}
    }}
}}
"
            ),
        )
        .unwrap();
        let out = run(Command::new(&nginx)
            .arg("-t")
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(d.join("nginx.conf")));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("test is successful"), "{stderr}");
        for bad in ["[warn]", "[emerg]", "[alert]", "[crit]", "[error]"] {
            assert!(!stderr.contains(bad), "{profile:?}: {stderr}\n{snippet}");
        }
    }
}

#[test]
fn postconf_accepts_both_profiles_without_warnings() {
    let postconf = postconf();
    for profile in PROFILES {
        let dir = tempfile::tempdir().unwrap();
        let main_cf = configgen::render(Server::Postfix, profile).unwrap();
        std::fs::write(dir.path().join("main.cf"), &main_cf).unwrap();
        std::fs::write(
            dir.path().join("master.cf"),
            "smtp inet n - y - - smtpd\n\
             submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt\n",
        )
        .unwrap();
        let out = run(Command::new(&postconf).arg("-c").arg(dir.path()).arg("-n"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "{profile:?}: {stderr}\n{main_cf}");
        // Every parameter written is one postconf knows and reports back.
        let written: Vec<&str> = main_cf
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert!(written.len() >= 15, "{main_cf}");
        for line in &written {
            assert!(
                stdout.lines().any(|l| l == *line),
                "{line:?} not in\n{stdout}"
            );
        }
        // And postconf -p (with the defaults) reports no unused parameter either.
        let out = run(Command::new(&postconf).arg("-c").arg(dir.path()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "{profile:?}: {stderr}");
    }
}

fn directive<'a>(config: &'a str, name: &str) -> Vec<&'a str> {
    config
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .map(|v| v.trim_start_matches("= ").trim_end_matches(';'))
        .collect()
}

#[test]
fn nginx_values() {
    let modern = configgen::render(Server::Nginx, Profile::Modern).unwrap();
    assert_eq!(directive(&modern, "ssl_protocols"), ["TLSv1.3"]);
    assert!(directive(&modern, "ssl_ciphers").is_empty(), "{modern}");
    assert!(directive(&modern, "ssl_dhparam").is_empty(), "{modern}");

    let intermediate = configgen::render(Server::Nginx, Profile::Intermediate).unwrap();
    assert_eq!(
        directive(&intermediate, "ssl_protocols"),
        ["TLSv1.2 TLSv1.3"]
    );
    assert_eq!(
        directive(&intermediate, "ssl_ciphers"),
        ["ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
             ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
             ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
             DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"]
    );
    assert_eq!(directive(&intermediate, "ssl_dhparam"), ["ffdhe2048.pem"]);

    for config in [&modern, &intermediate] {
        assert_eq!(
            directive(config, "ssl_ecdh_curve"),
            ["X25519:prime256v1:secp384r1"]
        );
        assert_eq!(directive(config, "ssl_prefer_server_ciphers"), ["off"]);
        assert_eq!(directive(config, "ssl_session_tickets"), ["off"]);
        assert_eq!(directive(config, "ssl_session_timeout"), ["1d"]);
        assert_eq!(directive(config, "ssl_stapling"), ["on"]);
        let headers = directive(config, "add_header");
        for expected in [
            r#"Strict-Transport-Security "max-age=63072000; includeSubDomains" always"#,
            r#"X-Content-Type-Options "nosniff" always"#,
            r#"X-Frame-Options "DENY" always"#,
            r#"Referrer-Policy "strict-origin-when-cross-origin" always"#,
            r#"Content-Security-Policy "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'" always"#,
        ] {
            assert!(headers.contains(&expected), "{expected} not in {headers:?}");
        }
        assert!(headers.iter().any(|h| h.starts_with("Permissions-Policy ")));
        assert!(
            headers.iter().all(|h| h.ends_with(" always")),
            "{headers:?}"
        );
    }
}

#[test]
fn postfix_values() {
    let modern = configgen::render(Server::Postfix, Profile::Modern).unwrap();
    let intermediate = configgen::render(Server::Postfix, Profile::Intermediate).unwrap();
    assert_eq!(
        directive(&modern, "smtpd_tls_mandatory_protocols"),
        [">=TLSv1.3"]
    );
    assert_eq!(directive(&modern, "smtpd_tls_protocols"), [">=TLSv1.3"]);
    assert!(directive(&modern, "tls_medium_cipherlist").is_empty());
    assert_eq!(
        directive(&intermediate, "smtpd_tls_mandatory_protocols"),
        [">=TLSv1.2"]
    );
    assert_eq!(
        directive(&intermediate, "smtpd_tls_protocols"),
        [">=TLSv1.2"]
    );
    assert_eq!(
        directive(&intermediate, "tls_medium_cipherlist"),
        [configgen::INTERMEDIATE_CIPHERS]
    );
    assert_eq!(
        directive(&intermediate, "smtpd_tls_dh1024_param_file"),
        ["auto"]
    );
    for config in [&modern, &intermediate] {
        // Port 25 stays opportunistic, and says why.
        assert_eq!(directive(config, "smtpd_tls_security_level"), ["may"]);
        assert!(config.contains("MX that requires TLS"), "{config}");
        assert_eq!(directive(config, "smtp_tls_security_level"), ["may"]);
        assert_eq!(directive(config, "tls_preempt_cipherlist"), ["no"]);
        assert_eq!(directive(config, "tls_ssl_options"), ["NO_RENEGOTIATION"]);
        assert_eq!(
            directive(config, "tls_eecdh_auto_curves"),
            ["X25519 prime256v1 secp384r1"]
        );
    }
}
