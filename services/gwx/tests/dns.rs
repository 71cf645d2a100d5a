//! `gwx dns run` end to end: a grid of three gateways in namespaces, two of them
//! serving the checked port; gwx's DNS runs in the client's namespace and `dig` asks
//! it. Answers hold only healthy addresses, and a drained gateway leaves the answers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use testbed::backends::tcp_echo;
use testbed::clients::healthz;
use testbed::topology::Grid;

const DNS: &str = "127.0.0.1";
const PORT: &str = "5300";
const METRICS: &str = "127.0.0.1:9102";

fn inventory() -> String {
    let mut text = String::from("[grid]\nname = \"dns\"\n\n");
    for i in 0..3 {
        text += &format!(
            "[[gateway]]\nid = \"gw{}\"\npublic = [\"{}\", \"{}\"]\nprivate = [\"{}\"]\n\n",
            i + 1,
            Grid::gateway_public(i),
            Grid::gateway_public6(i),
            Grid::gateway_private(i),
        );
    }
    text += &format!(
        "[[service]]\nname = \"www\"\nprotocol = \"tcp\"\nport = 8080\nbackend = \"{}:8080\"\nmode = \"proxy\"\n\n\
         [runtime]\nmetrics_listen = \"{METRICS}\"\n\n\
         [dns]\nzone = \"example.net\"\nlisten = [\"{DNS}:{PORT}\"]\nnameservers = [\"ns1.example.net\"]\nanswer_count = 2\nttl_secs = 10\n\n\
         [dns.check]\ninterval_ms = 200\ntimeout_ms = 150\nrise = 1\nfall = 2\n",
        Grid::BACKEND
    );
    text
}

/// The A records `dig` gets for www.example.net.
fn ask(grid: &Grid) -> Vec<String> {
    let out = grid
        .client
        .exec(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                PORT,
                "+short",
                "+tries=1",
                "+time=2",
                "www.example.net",
                "A",
            ],
        )
        .unwrap();
    out.lines().map(str::to_owned).collect()
}

/// Asks until every answer for 20 queries in a row lies within `allowed` and holds
/// `count` distinct addresses; returns the addresses seen.
fn settle(grid: &Grid, allowed: &BTreeSet<String>, count: usize) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = BTreeSet::new();
        let good = (0..20).all(|_| {
            let a = ask(grid);
            let distinct: BTreeSet<&String> = a.iter().collect();
            seen.extend(a.iter().cloned());
            distinct.len() == count && a.len() == count && a.iter().all(|x| allowed.contains(x))
        });
        if good {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "answers never settled on {allowed:?}: last {:?}",
            ask(grid)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn answers_hold_healthy_gateways_only_and_drains_take_effect() {
    testbed::require::tool("dig", "dnsutils").unwrap();
    let grid = Grid::new(3).unwrap();
    // gw1 and gw2 serve the checked port; gw3 does not.
    for i in 0..2 {
        tcp_echo(
            &grid.gateways[i],
            &format!("{}:8080", Grid::gateway_public(i)),
        );
        tcp_echo(
            &grid.gateways[i],
            &format!("[{}]:8080", Grid::gateway_public6(i)),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("grid.toml");
    std::fs::write(&inv, inventory()).unwrap();
    let state = dir.path().join("state");
    let gwx = env!("CARGO_BIN_EXE_gwx");
    let args = |tail: &[&str]| -> Vec<String> {
        let mut a = vec![
            "--config".to_owned(),
            inv.display().to_string(),
            "dns".into(),
        ];
        a.push("--state-dir".into());
        a.push(state.display().to_string());
        a.extend(tail.iter().map(|s| s.to_string()));
        a
    };
    let run_args = args(&["run"]);
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let mut daemon = grid
        .client
        .spawn("gwx-dns", gwx, &run_args, &dir.path().join("dns.log"))
        .unwrap();
    let client = &grid.client;
    daemon
        .wait_ready(Duration::from_secs(20), || healthz(client, METRICS))
        .unwrap();

    let healthy: BTreeSet<String> = (0..2).map(Grid::gateway_public).collect();
    let seen = settle(&grid, &healthy, 2);
    assert_eq!(seen, healthy, "both healthy gateways take turns");

    // Draining gw1 leaves one healthy address: answers hold just gw2's.
    let drain = args(&["drain", "gw1"]);
    let drain: Vec<&str> = drain.iter().map(String::as_str).collect();
    grid.client.exec(gwx, &drain).unwrap();
    let only_gw2: BTreeSet<String> = [Grid::gateway_public(1)].into();
    settle(&grid, &only_gw2, 1);

    // A gateway that is not in the inventory is refused with the ones there are.
    let bad = args(&["drain", "gw9"]);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let e = grid.client.exec(gwx, &bad).unwrap_err().to_string();
    assert!(e.contains("gw9") && e.contains("gw1, gw2, gw3"), "{e}");

    let undrain = args(&["undrain", "gw1"]);
    let undrain: Vec<&str> = undrain.iter().map(String::as_str).collect();
    grid.client.exec(gwx, &undrain).unwrap();
    settle(&grid, &healthy, 2);
}
