//! Tier 2 of the test suite: the appliance images that `imgbuild build` wrote, booted as
//! QEMU VMs with the test bed's harness ([`testbed::vm`]) and run as containers.
//!
//! The tests are `#[ignore]`d so that `cargo test --workspace` (tier 1) does not need
//! built images; `scripts/test` builds them and runs `cargo test -p appliance-tests --
//! --ignored`. A test that finds no image fails and says how to build it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use imgbuild::definition::ready_marker;
use testbed::vm::{Nic, VmOptions};

pub mod docker;
pub mod grid;
pub mod slots;

/// Where the images are: `$APPLIANCE_IMAGES`, or `target/images` of this workspace.
pub fn images_dir() -> PathBuf {
    match std::env::var_os("APPLIANCE_IMAGES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/images"),
    }
}

/// One built appliance: its VM image (kernel and initramfs) and its OCI image.
#[derive(Debug, Clone)]
pub struct Appliance {
    pub name: String,
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// The OCI layout directory.
    pub oci_layout: PathBuf,
    /// The same layout as one tar with Docker's `manifest.json` (`docker load -i`).
    pub oci_tar: PathBuf,
}

/// The built appliance `name`; panics, naming the command that builds it, if it is not
/// there.
pub fn appliance(name: &str) -> Appliance {
    let dir = images_dir().join(name);
    let a = Appliance {
        name: name.to_owned(),
        kernel: dir.join("vmlinuz"),
        initramfs: dir.join("initramfs.cpio.gz"),
        oci_layout: dir.join("oci"),
        oci_tar: dir.join(format!("{name}.oci.tar")),
        dir,
    };
    for file in [&a.kernel, &a.initramfs, &a.oci_tar] {
        assert!(
            file.exists(),
            "{} is missing: build the images first (`cargo build --release --workspace && \
             target/release/imgbuild build`, as scripts/test does), or point \
             APPLIANCE_IMAGES at them",
            file.display()
        );
    }
    a
}

/// How long a boot may take under software emulation on a busy 2-core machine before
/// the harness gives up (the benchmark reports the real figure).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

impl Appliance {
    /// VM options for this appliance as host `host`: the harness's command shell on
    /// ttyS1, the given NICs, and `append` on the kernel command line (`appliance.*`
    /// keys: addresses, routes, the gateway id).
    pub fn vm(&self, host: &str, nics: Vec<Nic>, append: &[String]) -> VmOptions {
        let mut opts = VmOptions::new(
            host,
            &self.kernel,
            &self.initramfs,
            &ready_marker(&self.name),
        );
        opts.nics = nics;
        opts.boot_timeout = BOOT_TIMEOUT;
        opts.append.push("appliance.shell=ttyS1".to_owned());
        opts.append.extend(append.iter().cloned());
        opts
    }
}
