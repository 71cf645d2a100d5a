use std::path::Path;

use super::*;

pub const GOOD: &str = r#"
[smtp]
listen = ["127.0.0.1:2525"]
hostname = "mx1.example.org"

[smtp.tls]
cert = "/etc/avsx/cert.pem"
key = "/etc/avsx/key.pem"

[recipients]
domains = ["example.org"]
map = "/var/lib/avsx/relay_recipients"

[recipients.ldap]
url = "ldap://127.0.0.1:389"
base = "dc=example,dc=org"

[scan.spamd]
address = "127.0.0.1:783"
max_bytes = 512000

[scan.clamd]
address = "/run/clamav/clamd.ctl"
max_bytes = 26214400

[relay]
address = "mail.internal:25"
"#;

fn parse(text: &str) -> Result<Config, appliance::config::ConfigError> {
    appliance::config::parse(text, Path::new("avsx.toml"))
}

#[test]
fn defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.smtp.max_message_bytes, 25 << 20);
    assert_eq!(c.smtp.max_line_bytes, 1000);
    assert_eq!(c.scan.tag_level, 4.5);
    assert_eq!(c.scan.kill_level, 16.0);
    assert_eq!(c.scan.on_failure, OnFailure::Tempfail);
    assert_eq!(c.scan.oversize, Oversize::Tempfail);
    let l = c.recipients.ldap.unwrap();
    assert_eq!(l.filter, "(|(mail=%s)(proxyAddresses=smtp:%s))");
    assert_eq!((l.cache_secs, l.negative_cache_secs), (300, 60));
}

#[test]
fn problems_name_their_keys() {
    let text = GOOD
        .replace(
            "hostname = \"mx1.example.org\"",
            "hostname = \"mx1\"\nmax_line_bytes = 80",
        )
        .replace(
            "domains = [\"example.org\"]",
            "domains = [\"example..org\"]",
        )
        .replace(
            "base = \"dc=example,dc=org\"",
            "base = \"dc=example,dc=org\"\nfilter = \"mail=x\"",
        )
        .replace("address = \"127.0.0.1:783\"", "address = \"spamd\"")
        .replace(
            "[relay]\naddress = \"mail.internal:25\"",
            "[scan]\ntag_level = 20.0\n\n[relay]\naddress = \"mail.internal\"",
        );
    let e = parse(&text).unwrap_err().to_string();
    for want in [
        "key `smtp.hostname`: expected the host's fully qualified name",
        "key `smtp.max_line_bytes`: expected 1000",
        "key `recipients.domains[0]`: expected a domain name",
        "key `recipients.ldap.filter`: expected a parenthesised LDAP filter with %s",
        "key `scan.spamd.address`: expected host:port or an absolute Unix socket path",
        "key `scan.kill_level`: expected tag_level (20) below kill_level (16)",
        "key `relay.address`: expected host:port",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/avsx/avsx.toml");
    let c: Config = appliance::config::load(&path).unwrap();
    assert_eq!(c.recipients.domains, ["example.org", "example.com"]);
    assert!(c.scan.spamd.is_some() && c.scan.clamd.is_some() && c.smtp.tls.is_some());
}
