//! Upgrades of an appliance booted from its A/B disk image (`imgbuild`'s `slots`): image
//! variants built with the builder's own code, carried into the guest on a second
//! virtio disk (a tar archive, `/dev/vdb`), installed with `appliance-slot` and booted by
//! a reboot. Shared by the slot test and the rolling-upgrade scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imgbuild::definition::Definition;
use imgbuild::rootfs::{Flavour, Sources};
use imgbuild::tree::{Content, Tree};
use imgbuild::{archive, build, oci, rootfs};
use testbed::vm::{Vm, VmOptions};

/// Commands in the guest that copy an image between tmpfs and FAT under TCG and hash it.
pub const GUEST: Duration = Duration::from_secs(120);

/// The initramfs of appliance `name`, built with the builder's code from its definition
/// as `change` leaves it, at `dir/file` (gzip'd).
pub fn variant(
    name: &str,
    dir: &Path,
    file: &str,
    change: impl FnOnce(&mut Definition),
) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let images = root.join("images");
    let mut def = Definition::load(&images.join(format!("appliances/{name}.toml"))).unwrap();
    change(&mut def);
    let sources = Sources {
        files_dir: images.join("files"),
        // The workspace's release build, as `imgbuild build` uses it.
        bin_dir: root.join("target/release"),
        busybox: PathBuf::from("/bin/busybox"),
    };
    let kernel_release = build::kernel_release(&build::debian_kernel().unwrap()).unwrap();
    let tree = rootfs::tree(&def, &sources, &Flavour::Vm { kernel_release }).unwrap();
    let cpio = dir.join(file.trim_end_matches(".gz"));
    std::fs::write(&cpio, archive::cpio(&tree, 0).unwrap()).unwrap();
    // The host's gzip: the builder's own (best ratio) is slow in a debug build.
    let status = Command::new("gzip")
        .args(["-1", "-n", "-f"])
        .arg(&cpio)
        .status()
        .unwrap();
    assert!(status.success(), "gzip {}", cpio.display());
    dir.join(file)
}

/// Writes `files` (name in the archive, host path) as a tar at `path` and attaches it to
/// `opts` as the guest's `/dev/vdb`.
pub fn attach_payload(opts: &mut VmOptions, path: &Path, files: &[(&str, &Path)]) {
    let mut tree = Tree::new();
    for (name, host) in files {
        tree.file(
            &format!("/{name}"),
            Content::Host(host.to_path_buf()),
            0o644,
        )
        .unwrap();
    }
    std::fs::write(path, archive::tar(&tree, 0).unwrap()).unwrap();
    opts.qemu_args.extend([
        "-drive".into(),
        format!(
            "if=none,id=payload,format=raw,readonly=on,file={}",
            path.display().to_string().replace(',', ",,")
        ),
        "-device".into(),
        "virtio-blk-pci,drive=payload,addr=0x07".into(),
    ]);
}

/// `appliance-slot status` as a map.
pub fn status(vm: &Vm) -> BTreeMap<String, String> {
    let out = vm.succeed("appliance-slot status", GUEST).unwrap();
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Takes `vmlinuz` and `initramfs` from the payload disk and installs them into the
/// other slot.
pub fn install(vm: &Vm, initramfs: &str) {
    let out = vm
        .succeed(
            &format!(
                "rm -rf /tmp/up && mkdir /tmp/up && tar -x -f /dev/vdb -C /tmp/up vmlinuz {initramfs} && \
                 appliance-slot install /tmp/up/vmlinuz /tmp/up/{initramfs} && rm -rf /tmp/up"
            ),
            GUEST,
        )
        .unwrap();
    assert!(out.contains("appliance-slot: installed into slot"), "{out}");
}

/// Reboots the guest the ordinary way (init's shutdown: services get SIGTERM and
/// drain), without waiting for it.
pub fn reboot(vm: &Vm) {
    vm.succeed("(sleep 1; reboot) >/dev/null 2>&1 &", GUEST)
        .unwrap();
}

pub fn sha256_of(path: &Path) -> String {
    oci::sha256_hex(&std::fs::read(path).unwrap())
}
