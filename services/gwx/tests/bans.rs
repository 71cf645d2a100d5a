//! The ban engine against the real kernel: `gwx run` hardens a gateway namespace (ban
//! sets included), `gwx bans run` follows real log formats written by the test and bans
//! into those sets; the client namespace's attacker address is then cut off while the
//! second client still gets through.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Grid, inventory};
use nix::sys::signal::Signal;
use testbed::Process;
use testbed::backends::tcp_echo;
use testbed::clients::{Client, healthz, http_get};
use testbed::topology::Chain;

const CLIENT2: &str = Chain::CLIENT2;

/// Where `gwx bans run` serves /metrics in the gateway namespace.
const BANS_METRICS: &str = "127.0.0.1:9101";

fn echo_service() -> String {
    format!(
        r#"[[service]]
name = "web"
protocol = "tcp"
port = 8080
backend = "{}:7"
mode = "proxy"
"#,
        Chain::BACKEND
    )
}

fn filter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/gwx/filter.d")
}

/// The test's log files, jails file and the running ban daemon.
struct Bans {
    grid: Grid,
    dir: PathBuf,
    jails: PathBuf,
    daemon: Option<Process>,
    starts: usize,
}

impl Bans {
    /// A gateway with gwx's ruleset, then the ban daemon with `jails` (the `[[jail]]`
    /// tables; `@DIR@` is replaced by the test's directory).
    fn start(jails: &str) -> Bans {
        let grid = Grid::start(&inventory(&echo_service()), &[]);
        tcp_echo(&grid.chain.backend, "0.0.0.0:7");
        grid.chain.add_second_client().unwrap();
        let dir = grid.dir.path().to_owned();
        let text = format!(
            "[bans]\nstate_dir = \"{d}/state\"\nfilter_dir = \"{f}\"\n\n[runtime]\nmetrics_listen = \"{BANS_METRICS}\"\ndrain_timeout_secs = 5\n\n{}",
            jails.replace("@DIR@", dir.to_str().unwrap()),
            d = dir.display(),
            f = filter_dir().display(),
        );
        // The logs exist before the daemon starts, as on a server.
        for log in ["access.log", "auth.log"] {
            std::fs::write(dir.join(log), "").unwrap();
        }
        let path = dir.join("bans.toml");
        std::fs::write(&path, text).unwrap();
        let mut b = Bans {
            grid,
            dir,
            jails: path,
            daemon: None,
            starts: 0,
        };
        b.restart();
        b
    }

    /// (Re)starts the ban daemon and waits until it serves /healthz.
    fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.signal(Signal::SIGTERM).unwrap();
            d.wait_exit(Duration::from_secs(15)).unwrap();
        }
        self.starts += 1;
        let log = self.dir.join(format!("bans-{}.log", self.starts));
        let args = self.args(&["--log-format", "json", "run"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let gw = &self.grid.chain.gateway;
        let mut p = gw
            .spawn("gwx-bans", env!("CARGO_BIN_EXE_gwx"), &args, &log)
            .unwrap();
        p.wait_ready(Duration::from_secs(20), || healthz(gw, BANS_METRICS))
            .unwrap();
        self.daemon = Some(p);
    }

    fn args(&self, tail: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--config".into(),
            self.grid.inventory.to_str().unwrap().into(),
            "bans".into(),
            "--jails".into(),
            self.jails.to_str().unwrap().into(),
        ];
        a.extend(tail.iter().map(|s| s.to_string()));
        a
    }

    /// Runs `gwx bans ARGS` in the gateway namespace; its stdout.
    fn gwx(&self, tail: &[&str]) -> Result<String, String> {
        let args = self.args(tail);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.grid
            .chain
            .gateway
            .exec(env!("CARGO_BIN_EXE_gwx"), &args)
            .map_err(|e| e.to_string())
    }

    /// The banned networks with their jails, from the kernel's sets.
    fn banned(&self) -> Vec<(String, String)> {
        let out = self.gwx(&["list", "--json"]).unwrap();
        out.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["net"].as_str().unwrap().to_owned(),
                    v["jail"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn is_banned(&self, net: &str) -> bool {
        self.banned().iter().any(|(n, _)| n == net)
    }

    fn metrics(&self) -> String {
        http_get(&self.grid.chain.gateway, BANS_METRICS, "/metrics")
            .unwrap()
            .1
    }

    /// Waits (up to 10 s) until the metric line starting with `prefix` has `value`.
    fn wait_metric(&self, prefix: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.metrics();
            let got = text.lines().find_map(|l| {
                l.strip_prefix(prefix)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            });
            if got == Some(value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{prefix} is {got:?}, want {value}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_banned(&self, net: &str, want: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.is_banned(net) != want {
            assert!(
                Instant::now() < deadline,
                "{net} banned should be {want}; sets: {:?}\ndaemon log:\n{}",
                self.banned(),
                self.daemon.as_ref().unwrap().log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
}

/// An nginx access-log line, timestamped now.
fn access(ip: &str, request: &str) -> String {
    let now = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    format!(r#"{ip} - - [{now}] "{request} HTTP/1.1" 200 1234 "-" "Mozilla/5.0""#)
}

fn wp_login(ip: &str) -> String {
    access(ip, "POST /wp-login.php")
}

/// An sshd line as rsyslog writes it to auth.log, timestamped now.
fn sshd(msg: &str) -> String {
    sshd_pid(4242, msg)
}

fn sshd_pid(pid: u32, msg: &str) -> String {
    let now = chrono::Utc::now().format("%b %e %H:%M:%S");
    format!("{now} gw1 sshd[{pid}]: {msg}")
}

fn wp_jail(maxretry: u32, bantime: &str) -> String {
    format!(
        r#"[[jail]]
name = "wordpress"
filter = "wordpress"
log = {{ file = "@DIR@/access.log" }}
maxretry = {maxretry}
findtime = "10m"
bantime = "{bantime}"
"#
    )
}

fn can_connect(b: &Bans, source: Option<&str>) -> bool {
    let to = format!("{}:8080", Chain::GATEWAY_FRONT);
    match Client::connect(&b.grid.chain.client, &to, source) {
        Ok(mut c) => c.ask("ping").map(|a| a == "ping").unwrap_or(false),
        Err(_) => false,
    }
}

#[test]
fn wordpress_bruteforce_is_banned_at_maxretry_and_only_the_attacker_is_cut_off() {
    let b = Bans::start(&wp_jail(5, "20m"));
    let log = b.dir.join("access.log");
    let attacker = Chain::CLIENT;
    assert!(can_connect(&b, Some(attacker)));

    // Noise and four failures: counted, not banned.
    append(
        &log,
        &[
            access(CLIENT2, "GET /"),
            access(attacker, "GET /wp-login.php"),
        ],
    );
    append(
        &log,
        &(0..4).map(|_| wp_login(attacker)).collect::<Vec<_>>(),
    );
    b.wait_metric("gwx_bans_lines_total{jail=\"wordpress\"}", 6.0);
    b.wait_metric("gwx_bans_matches_total{jail=\"wordpress\"}", 4.0);
    assert!(
        !b.is_banned(&format!("{attacker}/32")),
        "banned before maxretry"
    );

    // The fifth crosses maxretry.
    append(&log, &[wp_login(attacker)]);
    b.wait_banned(&format!("{attacker}/32"), true);
    assert_eq!(
        b.banned(),
        [(format!("{attacker}/32"), "wordpress".to_owned())]
    );
    b.wait_metric("gwx_bans_placed_total{jail=\"wordpress\"}", 1.0);

    // The kernel drops the attacker; the other client still passes.
    assert!(
        !can_connect(&b, Some(attacker)),
        "the banned source still connects"
    );
    assert!(
        can_connect(&b, Some(CLIENT2)),
        "an innocent source is cut off too"
    );
    b.grid
        .wait_for_metric("gwx_nft_drops_total{reason=\"ban\"}", |drops| drops >= 1.0);
}

#[test]
fn bans_expire_by_the_sets_own_timeout() {
    // The ban runs from the failure's time, which the log gives to the second.
    let b = Bans::start(&wp_jail(2, "5s"));
    let log = b.dir.join("access.log");
    append(&log, &[wp_login(Chain::CLIENT), wp_login(Chain::CLIENT)]);
    b.wait_banned(&format!("{}/32", Chain::CLIENT), true);
    // Nothing lifts it but the kernel's timeout.
    b.wait_banned(&format!("{}/32", Chain::CLIENT), false);
    assert!(can_connect(&b, Some(Chain::CLIENT)));
}

#[test]
fn bans_survive_a_restart_and_a_reboot_with_their_remaining_time() {
    let mut b = Bans::start(&wp_jail(1, "1h"));
    let log = b.dir.join("access.log");
    append(&log, &[wp_login("198.18.0.7")]);
    b.wait_banned("198.18.0.7/32", true);

    // A reboot empties the sets: simulate it while the daemon is down.
    let mut down = b.daemon.take().unwrap();
    down.signal(Signal::SIGTERM).unwrap();
    assert!(down.wait_exit(Duration::from_secs(15)).unwrap().success());
    b.grid
        .chain
        .gateway
        .exec("nft", &["flush", "set", "inet", "gwx", "bans4"])
        .unwrap();
    assert!(b.banned().is_empty());
    // Lines written while the daemon is down are read after it starts again.
    append(&log, &[wp_login("198.18.0.8")]);
    b.restart();
    b.wait_banned("198.18.0.7/32", true);
    b.wait_banned("198.18.0.8/32", true);
    let out = b.gwx(&["list", "--json"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let left = v["expires_secs"].as_u64().unwrap();
    assert!((3000..3600).contains(&left), "remaining time {left}s");
    // Each line counted once: the restart did not re-read the first one.
    b.wait_metric("gwx_bans_lines_total{jail=\"wordpress\"}", 1.0);
}

#[test]
fn log_rotation_loses_no_line() {
    let b = Bans::start(&wp_jail(6, "20m"));
    let log = b.dir.join("access.log");
    append(
        &log,
        &(0..3).map(|_| wp_login(Chain::CLIENT)).collect::<Vec<_>>(),
    );
    b.wait_metric("gwx_bans_lines_total{jail=\"wordpress\"}", 3.0);
    // logrotate's default: rename, then the server reopens a new file; the server
    // writes one more line to the old file before it reopens.
    std::fs::rename(&log, b.dir.join("access.log.1")).unwrap();
    append(&b.dir.join("access.log.1"), &[wp_login(Chain::CLIENT)]);
    append(
        &log,
        &(0..2).map(|_| wp_login(Chain::CLIENT)).collect::<Vec<_>>(),
    );
    b.wait_banned(&format!("{}/32", Chain::CLIENT), true);
    b.wait_metric("gwx_bans_lines_total{jail=\"wordpress\"}", 6.0);
    // copytruncate: the file is emptied in place and written from the start again.
    std::fs::File::create(&log).unwrap();
    append(&log, &[access(CLIENT2, "GET /")]);
    b.wait_metric("gwx_bans_lines_total{jail=\"wordpress\"}", 7.0);
}

#[test]
fn sshd_failures_ban_and_injected_addresses_do_not() {
    let b = Bans::start(
        r#"[[jail]]
name = "sshd"
filter = "/etc/fail2ban/filter.d/sshd.conf"
log = { file = "@DIR@/auth.log" }
maxretry = 3
"#,
    );
    let log = b.dir.join("auth.log");
    // A user name crafted to look like another source, three times over maxretry.
    let injected: Vec<String> = (0..5)
        .map(|i| {
            sshd(&format!(
                "Invalid user admin from 198.18.5.5 from 198.18.0.9 port {} ssh2",
                40000 + i
            ))
        })
        .chain((0..5).map(|i| {
            sshd(&format!(
                "Failed password for invalid user x from 198.18.5.5 from 198.18.0.9 port {} ssh2",
                41000 + i
            ))
        }))
        .collect();
    append(&log, &injected);
    b.wait_metric("gwx_bans_lines_total{jail=\"sshd\"}", 10.0);
    b.wait_banned("198.18.0.9/32", true);
    assert!(
        !b.is_banned("198.18.5.5/32"),
        "an address injected through the user name was banned"
    );

    // IPv6 sources are banned as their /64.
    append(
        &log,
        &(0..3)
            // Each connection is its own sshd process (fail2ban ties the lines of a
            // process to the first host it named).
            .map(|i| {
                sshd_pid(
                    5000 + i,
                    &format!("Failed password for root from 2001:db8:77:1::{i} port 5{i} ssh2"),
                )
            })
            .collect::<Vec<_>>(),
    );
    b.wait_banned("2001:db8:77:1::/64", true);
}

#[test]
fn the_gateways_and_the_backend_are_never_banned() {
    let b = Bans::start(&wp_jail(1, "20m"));
    let log = b.dir.join("access.log");
    let protected = [
        Chain::GATEWAY_FRONT,
        Chain::GATEWAY_BACK,
        Chain::BACKEND,
        "127.0.0.1",
    ];
    append(
        &log,
        &protected.iter().map(|ip| wp_login(ip)).collect::<Vec<_>>(),
    );
    b.wait_metric(
        "gwx_bans_skipped_total{jail=\"wordpress\",reason=\"protected\"}",
        4.0,
    );
    assert!(b.banned().is_empty(), "{:?}", b.banned());
    // Nor by hand.
    let e = b.gwx(&["add", Chain::BACKEND]).unwrap_err();
    assert!(e.contains("protected") && e.contains("backend"), "{e}");
}

#[test]
fn operators_add_list_and_lift_bans_by_hand() {
    let b = Bans::start(&wp_jail(5, "20m"));
    b.gwx(&["add", "198.18.0.20", "2001:db8:99::5", "--time", "10m"])
        .unwrap();
    let mut banned = b.banned();
    banned.sort();
    assert_eq!(
        banned,
        [
            ("198.18.0.20/32".to_owned(), "manual".to_owned()),
            ("2001:db8:99::/64".to_owned(), "manual".to_owned())
        ]
    );
    let stats = b.gwx(&["stats"]).unwrap();
    assert!(
        stats
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["manual", "1", "1", "2"]),
        "{stats}"
    );
    let report = b.gwx(&["report", "--no-dns"]).unwrap();
    assert!(
        report.contains("198.18.0.0/24") && report.contains("2001:db8:99::/64"),
        "{report}"
    );

    // Any address of a banned /64 names its ban.
    b.gwx(&["del", "2001:db8:99::1"]).unwrap();
    assert_eq!(
        b.banned(),
        [("198.18.0.20/32".to_owned(), "manual".to_owned())]
    );
    let e = b.gwx(&["del", "198.18.0.21"]).unwrap_err();
    assert!(e.contains("not banned"), "{e}");
    // Bad input: a clear error, nothing changed.
    let e = b
        .gwx(&["add", "198.18.0.30", "--time", "soon"])
        .unwrap_err();
    assert!(e.contains("--time"), "{e}");
    assert_eq!(b.banned().len(), 1);

    // Reading the kernel's sets needs no jails file; placing a ban does (its state file
    // and allowlists), and says which file it could not load.
    let without_jails = |tail: &[&str]| {
        let mut args = vec![
            "--config",
            b.grid.inventory.to_str().unwrap(),
            "bans",
            "--jails",
            "/nonexistent/bans.toml",
        ];
        args.extend(tail);
        b.grid.chain.gateway.exec(env!("CARGO_BIN_EXE_gwx"), &args)
    };
    let listed = without_jails(&["list"]).unwrap();
    assert!(listed.contains("198.18.0.20/32"), "{listed}");
    assert!(without_jails(&["stats"]).unwrap().contains("manual"));
    let e = without_jails(&["add", "198.18.0.31"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("jails file") && e.contains("/nonexistent/bans.toml"),
        "{e}"
    );
    assert_eq!(b.banned().len(), 1);
}

#[test]
fn a_bad_jails_file_is_refused_with_the_key_and_line() {
    let b = Bans::start(&wp_jail(5, "20m"));
    let bad = b.dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[jail]]\nname = \"x\"\nfilter = \"wordpress\"\nlog = { file = \"/var/log/x\" }\nmaxretry = 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gwx"))
        .args([
            "--config",
            b.grid.inventory.to_str().unwrap(),
            "bans",
            "--jails",
            bad.to_str().unwrap(),
            "run",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("line 5") && err.contains("jail[0].maxretry"),
        "{err}"
    );
}

#[test]
fn a_reload_adds_jails_keeps_bans_and_refuses_a_broken_file() {
    let b = Bans::start(&wp_jail(1, "1h"));
    append(&b.dir.join("access.log"), &[wp_login("198.18.0.40")]);
    b.wait_banned("198.18.0.40/32", true);
    let original = std::fs::read_to_string(&b.jails).unwrap();

    // A broken filter: the reload fails, the running jails go on.
    let broken = format!(
        "{original}\n[[jail]]\nname = \"bad\"\nfilter = \"no-such-filter\"\nlog = {{ file = \"/var/log/x\" }}\n"
    );
    std::fs::write(&b.jails, broken).unwrap();
    b.daemon.as_ref().unwrap().signal(Signal::SIGHUP).unwrap();
    b.wait_metric("gwx_reloads_total{result=\"error\"}", 1.0);
    append(&b.dir.join("access.log"), &[wp_login("198.18.0.41")]);
    b.wait_banned("198.18.0.41/32", true);

    // A second jail: added on reload; the bans stay.
    let more = format!(
        "{original}\n[[jail]]\nname = \"sshd\"\nfilter = \"/etc/fail2ban/filter.d/sshd.conf\"\nlog = {{ file = \"{}/auth.log\" }}\nmaxretry = 1\n",
        b.dir.display()
    );
    std::fs::write(&b.jails, more).unwrap();
    b.daemon.as_ref().unwrap().signal(Signal::SIGHUP).unwrap();
    b.wait_metric("gwx_reloads_total{result=\"ok\"}", 1.0);
    append(
        &b.dir.join("auth.log"),
        &[sshd_pid(
            6001,
            "Failed password for root from 198.18.0.42 port 4242 ssh2",
        )],
    );
    b.wait_banned("198.18.0.42/32", true);
    assert!(b.is_banned("198.18.0.40/32") && b.is_banned("198.18.0.41/32"));
}

#[test]
fn a_hundred_thousand_saved_bans_are_in_force_when_the_daemon_is_ready() {
    let mut b = Bans::start(&wp_jail(5, "20m"));
    let mut down = b.daemon.take().unwrap();
    down.signal(Signal::SIGTERM).unwrap();
    assert!(down.wait_exit(Duration::from_secs(15)).unwrap().success());
    let until = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let bans: Vec<serde_json::Value> = (0..100_000u32)
        .map(|i| {
            let net = if i % 2 == 0 {
                format!("10.{}.{}.{}/32", i >> 16, (i >> 8) & 255, i & 255)
            } else {
                format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff)
            };
            serde_json::json!({"net": net, "jail": "wordpress", "until": until})
        })
        .collect();
    let state = serde_json::json!({"version": 1, "saved_at": 0, "bans": bans});
    std::fs::write(b.dir.join("state/bans.json"), state.to_string()).unwrap();
    b.restart();
    let stats = b.gwx(&["stats"]).unwrap();
    let all: Vec<&str> = stats.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(all, ["all", "50000", "50000", "100000"], "{stats}");
}
