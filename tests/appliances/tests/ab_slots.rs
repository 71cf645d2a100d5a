//! The A/B disk image of an appliance (`disk.img`, `imgbuild`'s `slots` module): an
//! upgrade is installed into the other slot from inside the running appliance, boots once
//! on trial, and becomes the good slot when its service is ready; an upgrade whose
//! service never gets ready is rolled back by the deadline's reboot.
//!
//! ```text
//!   boot the backend's disk.img    GRUB: slot A (good)          ready
//!   install v2 into B, reboot      GRUB: slot B once (trial)    ready -> B committed
//!   install a broken image into A  GRUB: slot A once (trial)    never ready
//!     ... the deadline: reboot -f  GRUB: slot B (good)          ready, "A failed"
//! ```
//!
//! The backend appliance is used: busybox's httpd is its service, so its variants are
//! quick to build here. Both are built from `images/appliances/backend.toml` with the
//! builder's own code: v2 has another description (its `/etc/appliance/release` tells it
//! apart), the broken one runs `/bin/false` as its web service. They reach the guest on
//! a second virtio disk (a tar archive, `/dev/vdb`; the boot disk is `/dev/vda`), and
//! `appliance-slot install` writes them into the slot. The harness boots the VM from its
//! own qcow2 overlay of the disk and lets it reboot in place (`VmOptions::disk`).

use std::path::Path;
use std::time::{Duration, Instant};

use appliance_tests::slots::{GUEST, attach_payload, install, reboot, sha256_of, status, variant};
use appliance_tests::{BOOT_TIMEOUT, appliance};
use testbed::vm::Vm;

/// The trial deadline the test gives the appliance (`appliance.slot_deadline`), shorter
/// than the default 60 s: the good image is ready a few seconds after `rcS`.
const DEADLINE: u64 = 40;

#[test]
#[ignore = "tier 2: boots the backend appliance's A/B disk image under QEMU (build the images first)"]
fn an_upgrade_is_tried_once_committed_when_ready_and_a_broken_one_rolls_back() {
    let backend = appliance("backend");
    let disk = backend.dir.join("disk.img");
    assert!(
        disk.is_file(),
        "{} is missing: build the images with this imgbuild (`target/release/imgbuild build`)",
        disk.display()
    );
    let scratch = tempfile::tempdir().unwrap();

    // The two upgrades, and the disk that carries them into the guest.
    let built = Instant::now();
    let v2 = variant("backend", scratch.path(), "initramfs-v2.cpio.gz", |d| {
        d.description += " (v2)";
    });
    let broken = variant("backend", scratch.path(), "initramfs-broken.cpio.gz", |d| {
        d.services[0].command = vec!["/bin/false".into()];
    });
    let v2_sum = sha256_of(&v2);
    let broken_sum = sha256_of(&broken);
    println!(
        "upgrades built in {:.1} s: v2 {}, broken {}",
        built.elapsed().as_secs_f64(),
        &v2_sum[..12],
        &broken_sum[..12]
    );

    let mut opts = backend.vm(
        "ab-backend",
        Vec::new(),
        &[format!("appliance.slot_deadline={DEADLINE}")],
    );
    opts.disk = Some(disk);
    attach_payload(
        &mut opts,
        &scratch.path().join("payload.tar"),
        &[
            ("vmlinuz", &backend.kernel),
            ("initramfs-v2.cpio.gz", &v2),
            ("initramfs-broken.cpio.gz", &broken),
        ],
    );
    let mut vm = Vm::boot(opts).unwrap();
    let (dir, pid) = (vm.dir().to_owned(), vm.pid());
    println!(
        "slot A (new disk): boot to ready {:.1} s ({})",
        vm.boot_to_ready().as_secs_f64(),
        vm.accelerator()
    );
    assert!(
        vm.console()
            .lines()
            .any(|l| l.trim() == "grub: booting slot A"),
        "{}",
        vm.console()
    );
    let s = status(&vm);
    assert_eq!(
        (&s["booted"][..], &s["good"][..], &s["try"][..], &s["B"][..]),
        ("A", "A", "", "empty"),
        "{s:?}"
    );
    let a_sum = s["A.initramfs.cpio.gz"].clone();

    // The upgrade: v2 into slot B, tried once at the reboot, committed once ready.
    let t = Instant::now();
    install(&vm, "initramfs-v2.cpio.gz");
    let install_v2 = t.elapsed();
    let s = status(&vm);
    assert_eq!((&s["good"][..], &s["try"][..]), ("A", "B"), "{s:?}");
    assert_eq!(s["B.initramfs.cpio.gz"], v2_sum, "{s:?}");
    let mark = vm.console_mark();
    let t = Instant::now();
    reboot(&vm);
    vm.wait_for_line_since(mark, "grub: booting slot B once (trial)", BOOT_TIMEOUT)
        .unwrap();
    let upgrade_grub = t.elapsed();
    vm.wait_ready_since(mark, BOOT_TIMEOUT).unwrap();
    let upgrade_ready = t.elapsed();
    vm.wait_for_line_since(
        mark,
        "appliance-slot: slot B is ready: committed, it is the good slot now",
        Duration::from_secs(60),
    )
    .unwrap();
    let upgrade_committed = t.elapsed();
    let s = status(&vm);
    assert_eq!(state(&s), ["B", "1", "B", "", "", ""], "{s:?}");
    assert_eq!(s["A.initramfs.cpio.gz"], a_sum, "{s:?}");
    // The committed slot's deadline is off.
    vm.succeed(
        "! kill -0 $(cat /run/appliance-slot/watchdog) 2>/dev/null",
        GUEST,
    )
    .unwrap();
    let release = vm.succeed("cat /etc/appliance/release", GUEST).unwrap();
    assert!(release.contains("(v2)"), "{release}");

    // A broken upgrade into slot A: tried once, never ready, the deadline reboots into
    // slot B, which notes the failed trial.
    let t = Instant::now();
    install(&vm, "initramfs-broken.cpio.gz");
    let install_broken = t.elapsed();
    let s = status(&vm);
    assert_eq!((&s["good"][..], &s["try"][..]), ("B", "A"), "{s:?}");
    assert_eq!(s["A.initramfs.cpio.gz"], broken_sum, "{s:?}");
    let mark = vm.console_mark();
    let t = Instant::now();
    reboot(&vm);
    vm.wait_for_line_since(mark, "grub: booting slot A once (trial)", BOOT_TIMEOUT)
        .unwrap();
    let broken_grub = t.elapsed();
    vm.wait_for_line_since(
        mark,
        &format!("appliance-slot: slot A not ready within {DEADLINE}s: rebooting into slot B"),
        BOOT_TIMEOUT + Duration::from_secs(DEADLINE),
    )
    .unwrap();
    let gave_up = t.elapsed();
    vm.wait_for_line_since(mark, "grub: booting slot B", BOOT_TIMEOUT)
        .unwrap();
    vm.wait_ready_since(mark, BOOT_TIMEOUT).unwrap();
    let rolled_back = t.elapsed();
    let console = vm.console_since(mark);
    assert!(
        console.contains("svc: web exited with status 1"),
        "the broken image did not run: {console}"
    );
    assert!(
        console.contains("appliance-slot: slot A failed its trial: rolled back to slot B"),
        "{console}"
    );
    let s = status(&vm);
    assert_eq!(state(&s), ["B", "0", "B", "", "", "A"], "{s:?}");
    let release = vm.succeed("cat /etc/appliance/release", GUEST).unwrap();
    assert!(release.contains("(v2)"), "{release}");

    println!("timings ({}, deadline {DEADLINE} s):", vm.accelerator());
    println!(
        "  install v2 into B         {:6.1} s",
        install_v2.as_secs_f64()
    );
    println!(
        "  reboot -> B ready         {:6.1} s (GRUB at {:.1} s, committed at {:.1} s)",
        upgrade_ready.as_secs_f64(),
        upgrade_grub.as_secs_f64(),
        upgrade_committed.as_secs_f64()
    );
    println!(
        "  install broken into A     {:6.1} s",
        install_broken.as_secs_f64()
    );
    println!(
        "  reboot -> A given up      {:6.1} s (GRUB at {:.1} s)",
        gave_up.as_secs_f64(),
        broken_grub.as_secs_f64()
    );
    println!(
        "  reboot -> back on B ready {:6.1} s (rollback)",
        rolled_back.as_secs_f64()
    );

    drop(vm);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} is left"
    );
}

/// The slot state of `appliance-slot status`: booted, trial, good, try, trying, failed.
fn state(s: &std::collections::BTreeMap<String, String>) -> [&str; 6] {
    ["booted", "trial", "good", "try", "trying", "failed"].map(|k| s[k].as_str())
}
