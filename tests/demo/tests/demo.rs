//! Runs the demo with the shipped inventory end to end and checks what it claims to show.

use std::path::{Path, PathBuf};

use testbed::topology::Grid;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// gwx is a binary of another package: `cargo test --workspace` builds it into the same
/// target directory as this test, two levels up from the test binary.
fn gwx_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("gwx");
    assert!(
        path.is_file(),
        "{} missing: run `cargo build -p gwx` (scripts/test does)",
        path.display()
    );
    path
}

#[test]
fn shipped_inventory_forwards_through_both_gateways_and_hides_the_backend() {
    let opts = demo::Options {
        inventory: repo("config/gwx/grid.toml"),
        gwx: gwx_binary(),
        requests_per_service: 2,
    };
    let mut out = Vec::new();
    let summary = demo::run(&opts, &mut out).unwrap();
    let printed = String::from_utf8(out).unwrap();

    assert_eq!(summary.gateways.len(), 2, "{printed}");
    for (i, gw) in summary.gateways.iter().enumerate() {
        let replies = |service: &str| -> Vec<&str> {
            gw.replies
                .iter()
                .filter(|(s, _)| s == service)
                .map(|(_, r)| r.as_str())
                .collect()
        };
        // Proxy mode with PROXY v2: the backend sees the client and which gateway.
        assert_eq!(
            replies("web"),
            vec![
                format!("{} {} v2 request 1", Grid::CLIENT, gw.id),
                format!("{} {} v2 request 2", Grid::CLIENT, gw.id)
            ],
            "{printed}"
        );
        // L3 mode: DNAT + SNAT, the backend sees the gateway's private address.
        assert_eq!(
            replies("raw"),
            vec![
                format!("{} - none request 1", Grid::gateway_private(i)),
                format!("{} - none request 2", Grid::gateway_private(i))
            ],
            "{printed}"
        );
        // UDP through the proxy.
        assert_eq!(
            replies("dns"),
            vec![
                format!("{} request 1", Grid::gateway_private(i)),
                format!("{} request 2", Grid::gateway_private(i))
            ],
            "{printed}"
        );
        assert!(gw.forwarded["dns"] >= 2.0, "{printed}");
        assert_eq!(gw.forwarded["raw"], 2.0, "{printed}");
    }
    let gw1 = &summary.gateways[0];
    // The flood: 64 allowed per source, 3 more stopped, by nftables' connection limit
    // (each SYN dropped, at least one packet per connection) or by the proxy's own
    // (accepted and closed), whichever acts first.
    let stopped = gw1.refused.get("source_limit").copied().unwrap_or(0.0)
        + gw1.dropped.get("connlimit").copied().unwrap_or(0.0);
    assert!(stopped >= 3.0, "{printed}");
    assert!(
        gw1.dropped.get("input-policy").copied().unwrap_or(0.0) >= 3.0,
        "{printed}"
    );
    assert!(!summary.backend_reachable_directly, "{printed}");
    assert!(printed.contains("unreachable, as it must be"), "{printed}");
}

#[test]
fn inventory_that_does_not_fit_the_demo_grid_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.toml");
    let text = std::fs::read_to_string(repo("config/gwx/grid.toml"))
        .unwrap()
        .replace("203.0.113.12\"", "203.0.113.99\"");
    std::fs::write(&path, text).unwrap();
    let opts = demo::Options {
        inventory: path,
        gwx: gwx_binary(),
        requests_per_service: 1,
    };
    let err = demo::run(&opts, &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("gateway `gw2` (number 2) must have 203.0.113.12 in `public`"),
        "{err}"
    );
}
