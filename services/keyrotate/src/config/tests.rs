use std::path::Path;

use super::*;

const GOOD: &str = r#"
output_dir = "/var/lib/keyrotate/alice"

[[old_key]]
file = "/root/old.asc"
passphrase_file = "/root/old.pass"

[[old_key]]
gnupg_home = "/root/.gnupg"
fingerprint = "0123456789ABCDEF0123456789ABCDEF01234567"

[new_key]
user_ids = ["Alice Example <alice@example.org>", "alice@example.com"]
subkeys = ["sign", "encrypt", "auth"]

[publish]
hkp = ["http://127.0.0.1:11371"]
vks = ["https://keys.openpgp.org"]
[publish.wkd]
dir = "/var/www/example.org"
domain = "Example.org"

[notice]
from = "alice@example.org"
recipients = ["bob@example.net"]
[notice.smtp]
host = "127.0.0.1"
port = 2525
security = "none"
"#;

fn parse(text: &str) -> Result<Config, appliance::config::ConfigError> {
    appliance::config::parse(text, Path::new("rotation.toml"))
}

/// The problems of `text`, rendered.
fn problems(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn a_full_description_parses_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.old_keys.len(), 2);
    assert_eq!(
        c.old_keys[1].source(),
        OldKeySource::GnupgHome {
            home: Path::new("/root/.gnupg"),
            fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567"
        }
    );
    assert_eq!(c.new_key.algorithm, Algorithm::Cv25519);
    assert_eq!(
        c.new_key.validity(),
        Some(Duration::from_secs(2 * 31_557_600))
    );
    assert_eq!(c.publish.wkd.as_ref().unwrap().layout, WkdLayout::Both);
    let n = c.notice.unwrap();
    assert!(n.sign_with_old);
    assert_eq!(n.smtp.security, Security::None);
    assert_eq!(n.subject, "My OpenPGP key has changed");
}

#[test]
fn addresses_in_user_ids() {
    assert_eq!(
        address_of("Alice <alice@example.org>"),
        Some("alice@example.org")
    );
    assert_eq!(address_of("<alice@example.org>"), Some("alice@example.org"));
    assert_eq!(address_of("alice@example.org"), Some("alice@example.org"));
    for bad in [
        "Alice Example",
        "Alice <alice>",
        "Alice <alice@example.org",
        "alice@localhost",
        "Alice alice@example.org",
        "<a@b@example.org>",
        "alice@.example.org",
    ] {
        assert_eq!(address_of(bad), None, "{bad}");
    }
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = GOOD
        .replace(
            "output_dir = \"/var/lib/keyrotate/alice\"",
            "output_dir = \"relative\"",
        )
        .replace("\"alice@example.com\"", "\"Alice Example\"")
        .replace(
            "subkeys = [\"sign\", \"encrypt\", \"auth\"]",
            "subkeys = [\"sign\", \"sign\"]\nexpiry = \"5 minutes\"",
        )
        .replace("http://127.0.0.1:11371", "ftp://x")
        .replace("domain = \"Example.org\"", "domain = \"other.org\"")
        .replace(
            "from = \"alice@example.org\"",
            "from = \"mallory@example.org\"",
        )
        .replace(
            "fingerprint = \"0123456789ABCDEF0123456789ABCDEF01234567\"",
            "fingerprint = \"0123\"",
        );
    let e = problems(&text);
    for want in [
        "key `output_dir`: expected an absolute path",
        "key `new_key.user_ids[1]`: \"Alice Example\" holds no e-mail address",
        "key `new_key.subkeys`: a subkey kind is listed twice",
        "key `new_key.expiry`: expected at least a day",
        "key `publish.hkp[0]`: expected an http:// or https:// URL, got \"ftp://x\"",
        "key `publish.wkd.domain`: no user ID of the new key has an address in other.org",
        "key `notice.from`: expected one of the new key's addresses",
        "key `old_key[1].fingerprint`: expected a full fingerprint",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn sources_and_secrets_exclude_each_other() {
    let text = GOOD
        .replace(
            "file = \"/root/old.asc\"\npassphrase_file = \"/root/old.pass\"",
            "file = \"/root/old.asc\"\ngnupg_home = \"/g\"\npassphrase_file = \"/p\"\npassphrase_env = \"P\"",
        )
        .replace("security = \"none\"", "security = \"none\"\nusername = \"alice\"");
    let e = problems(&text);
    for want in [
        "key `old_key[0]`: expected either `file` or `gnupg_home` with `fingerprint`",
        "key `old_key[0]`: give passphrase_file or passphrase_env, not both",
        "key `notice.smtp`: username and password_file/password_env go together",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn unknown_keys_and_missing_sections_are_errors() {
    let e = problems(&GOOD.replace("subkeys =", "subkey ="));
    assert!(e.contains("subkey") && e.contains("unknown field"), "{e}");
    let e = problems("output_dir = \"/x\"\n[new_key]\nuser_ids = [\"a@example.org\"]\n");
    assert!(
        e.contains("key `old_key`: expected at least one [[old_key]]"),
        "{e}"
    );
    let e = problems("output_dir = \"/x\"\n");
    assert!(e.contains("new_key"), "{e}");
}

#[test]
fn the_shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/keyrotate/rotation.toml");
    let config: Config = appliance::config::load(&path).unwrap();
    assert_eq!(config.old_keys.len(), 2);
    assert_eq!(config.new_key.user_ids.len(), 2);
    assert!(config.notice.is_some() && config.publish.wkd.is_some());
}
