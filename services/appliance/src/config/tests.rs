use super::*;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    name: String,
    #[serde(default)]
    runtime: crate::RuntimeConfig,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    name: String,
    port: u16,
    backend: SocketAddr,
}

impl Validate for Sample {
    fn validate(&self, problems: &mut Problems) {
        problems.check(!self.name.is_empty(), "name", "expected a non-empty name");
        self.runtime.validate_at("runtime", problems);
        for (i, s) in self.services.iter().enumerate() {
            problems.check(
                !self.services[..i].iter().any(|o| o.name == s.name),
                format!("services[{i}].name"),
                format!("expected a unique service name, `{}` is used twice", s.name),
            );
            problems.check(
                s.port != 0,
                format!("services[{i}].port"),
                "expected a port between 1 and 65535, got 0",
            );
        }
    }
}

const GOOD: &str = r#"
name = "grid-a"

[runtime]
metrics_listen = "127.0.0.1:9100"

[[services]]
name = "https"
port = 443
backend = "10.9.0.2:443"
"#;

fn err(text: &str) -> ConfigError {
    parse::<Sample>(text, Path::new("/etc/gwx/grid.toml")).expect_err("config must be rejected")
}

fn only(e: &ConfigError) -> &Problem {
    assert_eq!(e.problems().len(), 1, "{e}");
    &e.problems()[0]
}

#[test]
fn good_config_parses_with_defaults() {
    let s: Sample = parse(GOOD, Path::new("grid.toml")).unwrap();
    assert_eq!(s.name, "grid-a");
    assert_eq!(
        s.runtime.metrics_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    assert_eq!(s.runtime.drain_timeout_secs, 30);
    assert_eq!(s.services[0].backend.port(), 443);
}

#[test]
fn unknown_top_level_key_names_key_line_and_expected_keys() {
    let e = err("name = \"a\"\nnmae = \"b\"\n");
    let p = only(&e);
    assert_eq!(p.key, "nmae");
    assert_eq!(p.position.map(|x| x.0), Some(2));
    assert!(p.message.contains("unknown field `nmae`"), "{p}");
    assert!(
        p.message
            .contains("expected one of `name`, `runtime`, `services`"),
        "{p}"
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("invalid config file /etc/gwx/grid.toml: line 2"),
        "{shown}"
    );
}

#[test]
fn unknown_nested_key_in_array_of_tables() {
    let text = GOOD.replace("port = 443", "port = 443\nprot = \"tcp\"");
    let e = err(&text);
    let p = only(&e);
    assert_eq!(p.key, "services[0].prot");
    assert_eq!(p.position.map(|x| x.0), Some(10));
}

#[test]
fn wrong_type_says_what_was_expected() {
    let text = GOOD.replace("port = 443", "port = \"https\"");
    let p = only(&err(&text)).clone();
    assert_eq!(p.key, "services[0].port");
    assert_eq!(p.position, Some((9, 8)));
    assert!(p.message.contains("expected u16"), "{p}");
}

#[test]
fn bad_address_value_names_the_key() {
    let text = GOOD.replace("10.9.0.2:443", "10.9.0.2");
    let p = only(&err(&text)).clone();
    assert_eq!(p.key, "services[0].backend");
    assert_eq!(p.position.map(|x| x.0), Some(10));
    assert!(p.message.contains("socket address"), "{p}");
}

#[test]
fn missing_field_is_reported_at_its_table() {
    let text = GOOD.replace("backend = \"10.9.0.2:443\"\n", "");
    let p = only(&err(&text)).clone();
    assert!(p.message.contains("missing field `backend`"), "{p}");
    assert_eq!(p.key, "services[0]");
    assert_eq!(p.position.map(|x| x.0), Some(7), "{p}");
}

#[test]
fn syntax_error_has_a_position() {
    let p = only(&err("name = \"a\"\n[runtime\n")).clone();
    assert_eq!(p.key, "");
    assert_eq!(p.position.map(|x| x.0), Some(2), "{p}");
}

#[test]
fn validation_reports_every_problem_with_lines() {
    let text = "name = \"\"\n[runtime]\ndrain_timeout_secs = 0\n\n[[services]]\nname = \"a\"\nport = 0\nbackend = \"10.9.0.2:1\"\n\n[[services]]\nname = \"a\"\nport = 1\nbackend = \"10.9.0.2:1\"\n";
    let e = err(text);
    let got: Vec<(String, Option<usize>)> = e
        .problems()
        .iter()
        .map(|p| (p.key.clone(), p.position.map(|x| x.0)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("name".into(), Some(1)),
            ("runtime.drain_timeout_secs".into(), Some(3)),
            ("services[0].port".into(), Some(7)),
            ("services[1].name".into(), Some(11)),
        ]
    );
    let shown = e.to_string();
    assert!(shown.contains("(4 problems):"), "{shown}");
    assert!(
        shown.contains("expected seconds between 1 and 3600, got 0"),
        "{shown}"
    );
}

#[test]
fn load_reads_the_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.toml");
    let e = load::<Sample>(&path).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("grid.toml"), "{e}");
    std::fs::write(&path, GOOD).unwrap();
    assert_eq!(load::<Sample>(&path).unwrap().name, "grid-a");
}

#[test]
fn positions_count_characters_not_bytes() {
    assert_eq!(line_col("ä = 1\nb", 7), (2, 1));
    assert_eq!(line_col("ää = x", 7), (1, 6));
}

#[test]
fn key_paths_split_into_segments() {
    assert_eq!(
        segments("services[2].limits.rate"),
        vec![
            Segment::Key("services"),
            Segment::Index(2),
            Segment::Key("limits"),
            Segment::Key("rate"),
        ]
    );
}
