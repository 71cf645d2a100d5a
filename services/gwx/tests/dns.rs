//! `gwx dns run` end to end: a grid of four gateways in namespaces, three of them
//! serving the checked port; gwx's DNS runs in the client's namespace and `dig` asks
//! it. Answers hold only healthy addresses, each healthy one equally often; a gateway
//! cut off leaves the answers after `fall` failed checks and comes back after `rise`; a
//! drained gateway leaves the answers; with none healthy the fallback policy answers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use testbed::backends::tcp_echo;
use testbed::clients::{healthz, http_get, parse_metrics};
use testbed::topology::Grid;

const DNS: &str = "127.0.0.1";
const PORT: &str = "5300";
const METRICS: &str = "127.0.0.1:9102";
const GATEWAYS: usize = 4;
const ANSWER_COUNT: usize = 2;

fn inventory() -> String {
    let mut text = String::from("[grid]\nname = \"dns\"\n\n");
    for i in 0..GATEWAYS {
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
         [dns]\nzone = \"example.net\"\nlisten = [\"{DNS}:{PORT}\"]\nnameservers = [\"ns1.example.net\"]\nglue = {{ \"ns1.example.net\" = [\"{DNS}\"] }}\nanswer_count = {ANSWER_COUNT}\nttl_secs = 10\n\n\
         [dns.check]\ninterval_ms = 200\ntimeout_ms = 150\nrise = 1\nfall = 2\n",
        Grid::BACKEND
    );
    text
}

/// `dig +short` at gwx's DNS with `tail` (a name and type, or `-f FILE`): one line per
/// record.
fn dig(grid: &Grid, tail: &[&str]) -> Vec<String> {
    let mut args = vec!["@127.0.0.1", "-p", PORT, "+short", "+tries=1", "+time=2"];
    args.extend_from_slice(tail);
    let out = grid.client.exec("dig", &args).unwrap();
    out.lines().map(str::to_owned).collect()
}

/// Asks for www.example.net `qtype` `queries` times in one batch run and returns the
/// answers, `per_answer` addresses each (checked: a batch splits into answers only
/// when every answer has that many).
fn ask_batch(grid: &Grid, qtype: &str, queries: usize, per_answer: usize) -> Vec<Vec<String>> {
    let batch = format!("www.example.net {qtype}\n").repeat(queries);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), batch).unwrap();
    let lines = dig(grid, &["-f", &file.path().display().to_string()]);
    assert_eq!(
        lines.len(),
        queries * per_answer,
        "{queries} answers of {per_answer} expected, dig printed:\n{lines:?}"
    );
    lines.chunks(per_answer).map(<[String]>::to_vec).collect()
}

/// The A records `dig` gets for www.example.net.
fn ask(grid: &Grid) -> Vec<String> {
    dig(grid, &["www.example.net", "A"])
}

fn public(gateways: &[usize]) -> BTreeSet<String> {
    gateways.iter().map(|&i| Grid::gateway_public(i)).collect()
}

/// Cuts gateway `i` off the client's network (where gwx's DNS checks from) or joins it
/// again, as a dead or restored gateway looks to the checks.
fn link(grid: &Grid, i: usize, up: bool) {
    let port = format!("gw{}", i + 1);
    let state = if up { "up" } else { "down" };
    grid.client.ip(&["link", "set", &port, state]).unwrap();
}

/// Pearson's chi-square statistic of `observed` counts against equal expected counts.
fn chi_square(observed: &[u64]) -> f64 {
    let total: u64 = observed.iter().sum();
    let expected = total as f64 / observed.len() as f64;
    observed
        .iter()
        .map(|&o| (o as f64 - expected).powi(2) / expected)
        .sum()
}

/// The fallbacks counted for IPv4 so far.
fn fallbacks(grid: &Grid) -> f64 {
    let (code, text) = http_get(&grid.client, METRICS, "/metrics").unwrap();
    assert_eq!(code, 200);
    parse_metrics(&text)
        .iter()
        .filter(|s| s.name == "gwx_dns_fallback_total" && s.label("family") == Some("ipv4"))
        .map(|s| s.value)
        .sum()
}

/// Asks until every answer for 20 queries in a row lies within `allowed` and holds
/// `count` distinct addresses, and together they hold every address of `allowed`
/// (so answers from the state before a change, a subset, do not count); returns how
/// long it took.
fn settle(grid: &Grid, allowed: &BTreeSet<String>, count: usize) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    loop {
        let mut seen = BTreeSet::new();
        let good = (0..20).all(|_| {
            let a = ask(grid);
            let distinct: BTreeSet<&String> = a.iter().collect();
            seen.extend(a.iter().cloned());
            distinct.len() == count && a.len() == count && a.iter().all(|x| allowed.contains(x))
        });
        if good && seen == *allowed {
            return started.elapsed();
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
fn answers_follow_health_drains_and_the_fallback() {
    testbed::require::tool("dig", "dnsutils").unwrap();
    let grid = Grid::new(GATEWAYS).unwrap();
    // gw1 to gw3 serve the checked port; gw4 never does.
    for i in 0..3 {
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
    let gwx_dns = |tail: &[&str]| {
        let a = args(tail);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        grid.client.exec(gwx, &a)
    };
    let run_args = args(&["run"]);
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let log = dir.path().join("dns.log");
    let mut daemon = grid.client.spawn("gwx-dns", gwx, &run_args, &log).unwrap();
    let client = &grid.client;
    daemon
        .wait_ready(Duration::from_secs(20), || healthz(client, METRICS))
        .unwrap();

    // The very first answers already leave out gw4, which was never up: the server
    // waits for the first verdicts before it answers.
    let healthy = public(&[0, 1, 2]);
    for answer in ask_batch(&grid, "A", 20, ANSWER_COUNT) {
        let distinct: BTreeSet<String> = answer.iter().cloned().collect();
        assert_eq!(distinct.len(), ANSWER_COUNT, "{answer:?}");
        assert!(
            distinct.is_subset(&healthy),
            "{answer:?} not within {healthy:?}"
        );
    }

    // Over 600 answers every healthy address is handed out about equally often. Each
    // answer holds 2 of the 3, so each address is expected in 400. The bound is the
    // chi-square 1 - 1e-6 quantile for 2 degrees of freedom (-2 ln 1e-6): a fair draw
    // fails it once in a million runs, and inclusion counts vary less than multinomial
    // ones, so even that is an overestimate. An address left out would score > 100.
    let answers = ask_batch(&grid, "A", 600, ANSWER_COUNT);
    let counts: Vec<u64> = healthy
        .iter()
        .map(|addr| answers.iter().filter(|a| a.contains(addr)).count() as u64)
        .collect();
    assert!(
        answers.iter().all(|a| a[0] != a[1]),
        "an address twice in one answer"
    );
    let stat = chi_square(&counts);
    eprintln!("inclusion counts {counts:?}, chi-square {stat:.2}");
    assert!(
        stat < 27.63,
        "uneven inclusion counts {counts:?}: chi-square {stat}"
    );
    let healthy6: BTreeSet<String> = (0..3).map(Grid::gateway_public6).collect();
    for answer in ask_batch(&grid, "AAAA", 20, ANSWER_COUNT) {
        let distinct: BTreeSet<String> = answer.iter().cloned().collect();
        assert_eq!(distinct.len(), ANSWER_COUNT, "{answer:?}");
        assert!(
            distinct.is_subset(&healthy6),
            "{answer:?} not within {healthy6:?}"
        );
    }

    // gw2 dies: it leaves the answers after `fall` failed checks; back, after `rise`.
    link(&grid, 1, false);
    let gone = settle(&grid, &public(&[0, 2]), 2);
    link(&grid, 1, true);
    let back = settle(&grid, &healthy, 2);
    eprintln!(
        "gw2 out of the answers after {gone:?}, back after {back:?} (interval 200 ms, fall 2, rise 1)"
    );

    // Draining gw1 leaves two healthy addresses.
    gwx_dns(&["drain", "gw1"]).unwrap();
    settle(&grid, &public(&[1, 2]), 2);
    assert_eq!(gwx_dns(&["drained"]).unwrap().trim(), "gw1");

    // A gateway that is not in the inventory is refused with the ones there are.
    let e = gwx_dns(&["drain", "gw9"]).unwrap_err().to_string();
    assert!(e.contains("gw9") && e.contains("gw1, gw2, gw3, gw4"), "{e}");

    // With gw1 drained and gw2 and gw3 dead nothing is healthy: the fallback ("all",
    // the default) answers with every address that is not drained, counted and logged.
    let before = fallbacks(&grid);
    link(&grid, 1, false);
    link(&grid, 2, false);
    // gw4, never up, shows up only through the fallback.
    settle(&grid, &public(&[1, 2, 3]), 2);
    assert!(fallbacks(&grid) > before, "fallback answers are counted");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("answering with the fallback"), "{text}");

    link(&grid, 1, true);
    link(&grid, 2, true);
    gwx_dns(&["undrain", "gw1"]).unwrap();
    settle(&grid, &healthy, 2);
}
