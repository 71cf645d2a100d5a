//! Runs the shipped demo config end to end and checks what the demo claims to show.

use std::path::Path;

use testbed::topology::Grid;

#[test]
fn shipped_demo_config_forwards_through_every_gateway_and_hides_the_backend() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo-grid.toml");
    let config: demo::Config = appliance::config::load(&path).unwrap();
    let mut out = Vec::new();
    let summary = demo::run(&config, &mut out).unwrap();
    let printed = String::from_utf8(out).unwrap();

    assert_eq!(summary.replies.len(), config.gateways, "{printed}");
    for (i, replies) in summary.replies.iter().enumerate() {
        assert_eq!(replies.len(), config.requests_per_gateway);
        for (n, reply) in replies.iter().enumerate() {
            // The backend sees the gateway's private address, never the client's.
            assert_eq!(
                reply,
                &format!(
                    "backend got \"request {}\" from {}",
                    n + 1,
                    Grid::gateway_private(i)
                )
            );
        }
        assert_eq!(
            summary.translated[i], config.requests_per_gateway as u64,
            "{printed}"
        );
    }
    assert!(!summary.backend_reachable_directly, "{printed}");
    assert!(printed.contains("unreachable, as it must be"), "{printed}");
}

#[test]
fn bad_demo_config_is_rejected_with_every_problem() {
    let text = "gateways = 0\nrequests_per_gateway = 1\n[service]\nname = \"echo\"\nport = 0\n";
    let err = appliance::config::parse::<demo::Config>(text, Path::new("demo.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("line 1, column 1, key `gateways`: expected 1 to 8 gateways, got 0"),
        "{msg}"
    );
    assert!(
        msg.contains("line 5, column 1, key `service.port`"),
        "{msg}"
    );
}
