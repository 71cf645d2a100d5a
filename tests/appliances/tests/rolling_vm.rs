//! Scenario (c) of the appliance images: a rolling upgrade of gw1 while a client keeps
//! connecting, and a failed upgrade rolled back.
//!
//! The grid of `grid_vm.rs` (backend, gw1, gw2, client on one segment), with gw1 booted
//! from the gwx appliance's A/B disk image. The client runs a loop the whole time: ask a
//! name server of the grid (gw1's, else gw2's) for `web.grid.example`, fetch the page
//! from the first address of the answer (answers come in random order), log `ok` or
//! `FAIL`. The operator's steps for gw1:
//!
//! ```text
//!   drain gw1 at both name servers, wait out the TTL    answers: gw2 only
//!   install v2 into the other slot, reboot              gw1: slot B once (trial)
//!   ready, committed; undrain                           answers: gw1 and gw2 again
//!   drain again, install a broken gwx into slot A,      gw1: slot A once, never ready,
//!   reboot                                               deadline: back on slot B
//!   undrain                                             answers: gw1 and gw2
//! ```
//!
//! No fetch may fail at any point. The drain state of a gateway's own name server lives
//! in its tmpfs and is gone after its reboot; that is harmless, as it answers only with
//! gateways its checks find up.

use std::time::{Duration, Instant};

use appliance_tests::grid::{self, GATEWAYS, NAME};
use appliance_tests::slots::{attach_payload, install, reboot, status, variant};
use appliance_tests::{BOOT_TIMEOUT, appliance};
use testbed::vm::{ConsoleMark, VirtualNet, Vm};

const T: Duration = Duration::from_secs(30);
/// gw1's trial deadline for a new slot (`appliance.slot_deadline`).
const DEADLINE: u64 = 45;
/// The grid's DNS TTL (`ttl_secs` in images/files/gwx/grid.toml) plus a check interval
/// and a margin: after a drain, no client should still use the drained gateway.
const DRAIN_WAIT: Duration = Duration::from_secs(8);

/// The client's loop, in the background, logging to /tmp/load.log until /tmp/stop exists.
const LOAD: &str = r#"
(
while [ ! -e /tmp/stop ]; do
    addr=""
    for ns in 203.0.113.11 203.0.113.12; do
        addr=$(timeout 3 nslookup web.grid.example "$ns" 2>/dev/null \
            | sed -n '/web.grid.example/,$p' | awk '/^Address/ {print $2; exit}')
        [ -n "$addr" ] && break
    done
    if [ -z "$addr" ]; then
        echo "FAIL no-answer"
    elif timeout 5 wget -q -O /tmp/page "http://$addr:8080/" && grep -q . /tmp/page; then
        echo "ok $addr"
    else
        echo "FAIL $addr"
    fi
    sleep 0.2
done > /tmp/load.log 2>&1
echo done >> /tmp/load.log
) </dev/null >/dev/null 2>&1 &
"#;

/// The client's log so far: (fetches through gw1, through gw2, failures).
fn tally(client: &Vm) -> (usize, usize, Vec<String>) {
    let log = client.succeed("cat /tmp/load.log", T).unwrap();
    let count = |addr: &str| log.lines().filter(|l| *l == format!("ok {addr}")).count();
    let failures = log
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(str::to_owned)
        .collect();
    (count(GATEWAYS[0]), count(GATEWAYS[1]), failures)
}

/// Waits until the client has fetched through gw1 `more` times beyond `since`.
fn wait_for_gw1_traffic(client: &Vm, since: usize, more: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (gw1, gw2, failures) = tally(client);
        assert!(failures.is_empty(), "{what}: failed fetches: {failures:?}");
        if gw1 >= since + more {
            println!("{what}: {gw1} fetches through gw1, {gw2} through gw2, none failed");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the client does not come back to gw1 ({gw1} fetches, {gw2} through gw2)"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `gwx dns drain|undrain gw1` at both name servers.
fn dns(gateways: &[&Vm], verb: &str) {
    for gw in gateways {
        let out = gw
            .succeed(
                &format!("gwx --config /etc/gwx/grid.toml dns {verb} gw1"),
                T,
            )
            .unwrap();
        println!("{}: {}", gw.name(), out.trim());
    }
}

/// Drains gw1 at both name servers, waits out the TTL, installs `initramfs` into gw1's
/// other slot (`slot`) and reboots it; returns once GRUB tries that slot, with the
/// console mark and the time of the reboot.
fn drain_install_reboot(
    gw1: &mut Vm,
    gw2: &Vm,
    client: &Vm,
    initramfs: &str,
    slot: &str,
) -> (ConsoleMark, Instant) {
    dns(&[gw1, gw2], "drain");
    std::thread::sleep(DRAIN_WAIT);
    let (drained_at, _, _) = tally(client);
    install(gw1, initramfs);
    // A fetch may have been under way at the drain; none started through gw1 after the
    // TTL ran out. (Once back, gw1's own name server, which lost its drain with the
    // reboot, may hand gw1 out again: it is healthy then.)
    assert_eq!(
        tally(client).0,
        drained_at,
        "the client used gw1 while it was drained"
    );
    let mark = gw1.console_mark();
    let t = Instant::now();
    reboot(gw1);
    gw1.wait_for_line_since(
        mark,
        &format!("grub: booting slot {slot} once (trial)"),
        BOOT_TIMEOUT,
    )
    .unwrap();
    (mark, t)
}

#[test]
#[ignore = "tier 2: boots four appliance VMs, gw1 from its A/B disk (scripts/test builds the images)"]
fn a_drained_gateway_is_upgraded_and_a_broken_upgrade_rolls_back_with_no_failed_fetch() {
    let gwx = appliance("gwx");
    let disk = gwx.dir.join("disk.img");
    assert!(
        disk.is_file(),
        "{} is missing: imgbuild build",
        disk.display()
    );
    let scratch = tempfile::tempdir().unwrap();
    let v2 = variant("gwx", scratch.path(), "initramfs-v2.cpio.gz", |d| {
        d.description += " (v2)";
    });
    // gwx refuses a gateway id the inventory does not have: exit 64, never ready.
    let broken = variant("gwx", scratch.path(), "initramfs-broken.cpio.gz", |d| {
        let gwx = d.services.iter_mut().find(|s| s.name == "gwx").unwrap();
        for arg in &mut gwx.command {
            if arg == "${APPLIANCE_GATEWAY}" {
                *arg = "no-such-gateway".into();
            }
        }
    });

    let net = VirtualNet::new("rolling").expect("the grid segment");
    let mut opts = grid::vms(&net);
    opts[1].disk = Some(disk);
    opts[1]
        .append
        .push(format!("appliance.slot_deadline={DEADLINE}"));
    attach_payload(
        &mut opts[1],
        &scratch.path().join("payload.tar"),
        &[
            ("vmlinuz", &gwx.kernel),
            ("initramfs-v2.cpio.gz", &v2),
            ("initramfs-broken.cpio.gz", &broken),
        ],
    );
    let [_backend, mut gw1, gw2, client] = grid::boot(opts);
    assert_eq!(status(&gw1)["booted"], "A");

    // Both gateways in the answers, then the load starts.
    let deadline = Instant::now() + T;
    while grid::addresses(
        &client
            .run(&format!("nslookup {NAME} {}", GATEWAYS[1]), T)
            .unwrap()
            .output,
    )
    .len()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "gw2's DNS never answered both gateways"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    client.succeed(LOAD, T).unwrap();
    wait_for_gw1_traffic(&client, 0, 3, "before the upgrade");

    // The upgrade: drained, v2 into slot B, tried once at the reboot.
    let (mark, t) = drain_install_reboot(&mut gw1, &gw2, &client, "initramfs-v2.cpio.gz", "B");
    gw1.wait_ready_since(mark, BOOT_TIMEOUT).unwrap();
    gw1.wait_for_line_since(
        mark,
        "appliance-slot: slot B is ready: committed, it is the good slot now",
        T,
    )
    .unwrap();
    println!(
        "gw1 on slot B, ready and committed {:.1} s after the reboot",
        t.elapsed().as_secs_f64()
    );
    let (gw1_during, gw2_during, failures) = tally(&client);
    assert!(
        failures.is_empty(),
        "failed fetches during the upgrade: {failures:?}"
    );
    println!("during the upgrade: {gw2_during} fetches through gw2");
    let release = gw1.succeed("cat /etc/appliance/release", T).unwrap();
    assert!(release.contains("(v2)"), "{release}");
    dns(&[&gw1, &gw2], "undrain");
    wait_for_gw1_traffic(&client, gw1_during, 3, "after the upgrade");

    // A broken upgrade: drained again, it never gets ready, the deadline reboots gw1
    // into slot B, which is undrained once it is ready.
    let (mark, t) = drain_install_reboot(&mut gw1, &gw2, &client, "initramfs-broken.cpio.gz", "A");
    gw1.wait_for_line_since(
        mark,
        &format!("appliance-slot: slot A not ready within {DEADLINE}s: rebooting into slot B"),
        BOOT_TIMEOUT + Duration::from_secs(DEADLINE),
    )
    .unwrap();
    gw1.wait_ready_since(mark, BOOT_TIMEOUT).unwrap();
    println!(
        "gw1 rolled back to slot B, ready {:.1} s after the reboot",
        t.elapsed().as_secs_f64()
    );
    let console = gw1.console_since(mark);
    assert!(
        console.contains("svc: gwx exited with status 64"),
        "{console}"
    );
    let s = status(&gw1);
    assert_eq!(
        (&s["booted"][..], &s["good"][..], &s["failed"][..]),
        ("B", "B", "A"),
        "{s:?}"
    );
    let (gw1_during, gw2_during, failures) = tally(&client);
    assert!(
        failures.is_empty(),
        "failed fetches during the rollback: {failures:?}"
    );
    println!("during the rollback: {gw2_during} fetches through gw2 in all");
    dns(&[&gw1, &gw2], "undrain");
    wait_for_gw1_traffic(&client, gw1_during, 3, "after the rollback");

    client.succeed("touch /tmp/stop", T).unwrap();
    let (gw1_total, gw2_total, failures) = tally(&client);
    assert!(failures.is_empty(), "{failures:?}");
    println!("in all: {gw1_total} fetches through gw1, {gw2_total} through gw2, 0 failed");
}
