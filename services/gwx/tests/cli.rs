//! The nftables and sysctl subcommands as an operator runs them, against the real
//! kernel in a fresh namespace, with the shipped inventory.

use std::path::{Path, PathBuf};
use std::process::Output;

use testbed::Netns;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/gwx/grid.toml")
}

/// `gwx --config SHIPPED ARGS...` inside `ns`.
fn gwx_in(ns: &Netns, args: &[&str]) -> Output {
    let inventory = shipped();
    ns.command(env!("CARGO_BIN_EXE_gwx"))
        .arg("--config")
        .arg(&inventory)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tables(ns: &Netns) -> String {
    ns.exec("nft", &["list", "tables"]).unwrap()
}

#[test]
fn ruleset_prints_the_json_that_apply_installs() {
    let ns = Netns::new("cli-ruleset").unwrap();
    let out = gwx_in(&ns, &["--gateway", "gw1", "ruleset"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = json["nftables"].as_array().unwrap();
    assert!(
        objects.iter().any(|o| o["add"]["table"]["name"] == "gwx"),
        "{json}"
    );
    assert_eq!(tables(&ns), "", "printing changes nothing");
}

#[test]
fn apply_dry_run_checks_without_changing_anything_then_apply_installs() {
    let ns = Netns::new("cli-apply").unwrap();
    let dry = gwx_in(&ns, &["--gateway", "gw1", "apply", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("gateway gw1: table inet gwx checked (nothing changed)"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(tables(&ns), "");

    let real = gwx_in(&ns, &["--gateway", "gw1", "apply"]);
    assert!(real.status.success(), "{}", text(&real.stderr));
    assert!(
        text(&real.stdout).contains("table inet gwx applied"),
        "{}",
        text(&real.stdout)
    );
    assert!(
        text(&real.stdout).contains("sets created: bans4, bans6"),
        "{}",
        text(&real.stdout)
    );
    assert_eq!(tables(&ns).trim(), "table inet gwx");

    // Again: the sets, and what is in them, stay.
    let again = gwx_in(&ns, &["--gateway", "gw1", "apply"]);
    assert!(
        text(&again.stdout).contains("sets kept (elements preserved): bans4, bans6"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn backend_ruleset_applies_on_the_backend_host() {
    let ns = Netns::new("cli-backend").unwrap();
    let out = gwx_in(&ns, &["backend-ruleset", "--apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(tables(&ns).trim(), "table inet gwx_backend");
    let listing = ns
        .exec("nft", &["list", "table", "inet", "gwx_backend"])
        .unwrap();
    for gw in [
        "192.0.2.11",
        "192.0.2.12",
        "2001:db8:192::11",
        "2001:db8:192::12",
    ] {
        assert!(listing.contains(gw), "{gw} missing:\n{listing}");
    }
}

#[test]
fn sysctl_prints_and_writes_the_file_without_tw_recycle() {
    let ns = Netns::new("cli-sysctl").unwrap();
    let out = gwx_in(&ns, &["--gateway", "gw1", "sysctl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = text(&out.stdout);
    assert!(
        file.contains("net.ipv4.tcp_max_tw_buckets = 262144"),
        "{file}"
    );
    assert!(file.contains("net.ipv4.tcp_syncookies = 1"), "{file}");
    assert!(!file.contains("tcp_tw_recycle"), "{file}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("60-gwx.conf");
    let written = gwx_in(
        &ns,
        &[
            "--gateway",
            "gw1",
            "sysctl",
            "--write",
            path.to_str().unwrap(),
        ],
    );
    assert!(written.status.success(), "{}", text(&written.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), file);
}

#[test]
fn unknown_gateway_is_a_usage_error_naming_the_known_ones() {
    let ns = Netns::new("cli-unknown").unwrap();
    for args in [
        &["--gateway", "gw7", "ruleset"][..],
        &["--gateway", "gw7", "apply"],
        &["--gateway", "gw7", "run"],
    ] {
        let out = gwx_in(&ns, args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            text(&out.stderr).contains("gateway `gw7` is not in"),
            "{}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("(it has: gw1, gw2)"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(tables(&ns), "", "nothing was applied");
}
