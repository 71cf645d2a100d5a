//! Building the same appliance twice, into different directories and at different
//! times, gives the same bytes: the initramfs, the OCI tar and the OCI digests.
//!
//! The backend appliance is built here; its one workspace binary (gwx, for the backend
//! ruleset) is stood in for by a copy of the static busybox, so the test needs no
//! release build. The gwx and avsx images go through the same code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use imgbuild::build::{self, Options};
use imgbuild::definition::Definition;
use imgbuild::rootfs::Sources;

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A directory with `gwx`: a copy of the static busybox (`ldd` finds no libraries, as
/// for any static binary), made once per test process.
fn stand_in_binaries() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reproducible-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy("/bin/busybox", dir.join("gwx")).unwrap();
        dir
    })
    .clone()
}

fn build_backend(out: &Path) -> build::Built {
    let images = images_dir();
    let def = Definition::load(&images.join("appliances/backend.toml")).unwrap();
    let opts = Options {
        sources: Sources {
            files_dir: images.join("files"),
            bin_dir: stand_in_binaries(),
            busybox: PathBuf::from("/bin/busybox"),
        },
        kernel: Some(build::debian_kernel().expect("a Debian kernel (scripts/setup)")),
        out: out.to_owned(),
        epoch: 1_700_000_000,
    };
    build::build(&def, &opts).unwrap()
}

#[test]
fn two_builds_in_different_places_and_times_are_identical() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = build_backend(a.path());
    // Another second on the clock: nothing of the build time may get in.
    std::thread::sleep(Duration::from_millis(1100));
    let second = build_backend(&b.path().join("elsewhere"));

    assert_eq!(first.sums, second.sums);
    assert_eq!(first.oci.manifest_digest, second.oci.manifest_digest);
    assert_eq!(first.oci.config_digest, second.oci.config_digest);
    let vm = first.vm.as_ref().unwrap();
    println!(
        "backend: initramfs {} bytes, kernel {} bytes, OCI layer {} bytes, manifest {}",
        vm.initramfs_bytes, vm.kernel_bytes, first.oci.layer_bytes, first.oci.manifest_digest
    );
    // disk.img: the A/B disk (GRUB, file systems with fixed ids and times).
    for file in [
        "initramfs.cpio.gz",
        "backend.oci.tar",
        "oci/index.json",
        "disk.img",
    ] {
        assert_eq!(
            std::fs::read(first.dir.join(file)).unwrap(),
            std::fs::read(second.dir.join(file)).unwrap(),
            "{file} differs"
        );
    }
    // The sums name every file of both images.
    for name in [
        "vmlinuz",
        "initramfs.cpio.gz",
        "backend.oci.tar",
        "disk.img",
    ] {
        assert!(
            first.sums.contains(&format!("  {name}\n")),
            "{}",
            first.sums
        );
    }
}

#[test]
fn a_bad_definition_is_named_and_builds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("bad.toml");
    std::fs::write(
        &def,
        "name = \"bad\"\ndescription = \"x\"\nready = \"tcp://127.0.0.1:0\"\n\
         [[service]]\nname = \"web\"\ncommand = [\"httpd\"]\n",
    )
    .unwrap();
    let e = format!("{:#}", Definition::load(&def).unwrap_err());
    assert!(e.contains("bad.toml"), "{e}");
    assert!(e.contains("ready:"), "{e}");
    assert!(e.contains("service[0].command"), "{e}");
}
