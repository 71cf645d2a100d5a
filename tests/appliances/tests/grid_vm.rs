//! Scenario (a) of the appliance images: the gwx grid as VMs on one private segment.
//!
//! Two gwx gateway VMs (gw1, gw2), the backend VM and a client VM (the backend image under
//! another host name: busybox's nslookup and wget) share one virtual L2 segment; the
//! segment's namespace is the brute-forcer (203.0.113.200). The client finds the web
//! service through the gateways' DNS answers and fetches the backend's page through each
//! gateway; the backend's ruleset (`gwx backend-ruleset`) drops the client when it comes
//! straight to 192.0.2.2; failed SSH logins on gw1's management port get the
//! brute-forcer banned there, and only there.

use std::time::{Duration, Instant};

use appliance_tests::grid::{self, NAME, addresses};
use testbed::vm::VirtualNet;

const T: Duration = Duration::from_secs(30);
const BRUTE_FORCER: &str = "203.0.113.200";

#[test]
#[ignore = "tier 2: boots four appliance VMs (scripts/test builds the images)"]
fn client_reaches_the_backend_through_the_gateways_and_a_brute_forcer_is_banned() {
    let net = VirtualNet::new("grid").expect("the grid segment");
    net.add_address(&format!("{BRUTE_FORCER}/24"))
        .expect("the brute-forcer's address");
    let [backend_vm, gw1, gw2, client] = grid::boot(grid::vms(&net));

    // DNS: each gateway answers for the service with the gateways its checks find up;
    // both are up once the checks have risen (rise 2 at 1 s).
    let page = grid::page();
    for ns in ["203.0.113.11", "203.0.113.12"] {
        let deadline = Instant::now() + T;
        let answer = loop {
            let out = client
                .run(&format!("nslookup {NAME} {ns}"), T)
                .expect("nslookup ran");
            let mut got = addresses(&out.output);
            got.sort();
            if got == ["203.0.113.11", "203.0.113.12"] {
                break got;
            }
            assert!(
                Instant::now() < deadline,
                "{ns} never answered both gateways; last answer:\n{}\ngw1's DNS log:\n{}",
                out.output,
                gw1.run("tail -n 20 /var/log/gwx-dns.log", T)
                    .map(|o| o.output)
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        // Through each gateway the DNS handed out: the backend's page.
        for addr in &answer {
            let got = client
                .succeed(&format!("wget -q -O - http://{addr}:8080/"), T)
                .unwrap_or_else(|e| panic!("fetch through {addr}: {e}"));
            assert_eq!(got, page, "the page through {addr}");
        }
    }
    let served = backend_vm
        .succeed("nft list chain inet gwx_backend input", T)
        .expect("the backend's ruleset");
    assert!(
        served.contains("accept comment \"accept:gateways tcp ip\""),
        "{served}"
    );

    // Straight to the backend: dropped by its ruleset (no answer at all).
    let direct = client
        .run("timeout 5 wget -q -O - http://192.0.2.2:8080/", T)
        .unwrap();
    assert!(
        !direct.success() && !direct.output.contains(page.trim()),
        "the client reached the backend directly: {direct:?}"
    );
    let after = backend_vm
        .succeed("nft list chain inet gwx_backend input", T)
        .unwrap();
    let dropped = after
        .lines()
        .find(|l| l.contains("drop:not-gateway tcp"))
        .unwrap_or_else(|| panic!("no not-gateway rule:\n{after}"));
    assert!(
        !dropped.contains("counter packets 0 "),
        "the backend counted no dropped packet from the client: {dropped}"
    );

    // A brute-forcer at gw1's management SSH: four wrong root passwords (dropbear names
    // the source only for existing users), maxretry is 3.
    let ns = net.netns();
    let askpass_dir = tempfile::tempdir().unwrap();
    let askpass = askpass_dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\necho wrong-password\n").unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for attempt in 1..=4 {
        let out = ns
            .command("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=5",
                "root@203.0.113.11",
                "true",
            ])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", "none")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ssh runs");
        assert!(
            !out.status.success(),
            "attempt {attempt}: a login with a wrong password succeeded"
        );
    }
    let deadline = Instant::now() + T;
    loop {
        let bans = gw1.succeed("gwx bans list", T).unwrap();
        if bans.contains(BRUTE_FORCER) {
            println!("gw1 bans:\n{bans}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gw1 never banned {BRUTE_FORCER}: bans:\n{bans}\nauth.log:\n{}\nban engine:\n{}",
            gw1.run("tail -n 20 /var/log/auth.log", T)
                .map(|o| o.output)
                .unwrap_or_default(),
            gw1.run("tail -n 20 /var/log/gwx-bans.log", T)
                .map(|o| o.output)
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Banned on gw1 only: its packets are dropped there, gw2 still serves it, and the
    // client still gets through gw1.
    let through = |addr: &str| {
        let addr: std::net::SocketAddr = format!("{addr}:8080").parse().unwrap();
        ns.enter(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok())
            .expect("entered the segment's namespace")
    };
    assert!(
        !through("203.0.113.11"),
        "gw1 still lets the banned source in"
    );
    assert!(
        through("203.0.113.12"),
        "gw2 refuses a source only gw1 banned"
    );
    assert!(
        !gw2.succeed("gwx bans list", T)
            .unwrap()
            .contains(BRUTE_FORCER),
        "the ban spread to gw2"
    );
    let got = client
        .succeed("wget -q -O - http://203.0.113.11:8080/", T)
        .unwrap();
    assert_eq!(got, page, "the client through gw1 after the ban");
}
