//! `images`: the appliance images' sizes and their boot-to-ready time under QEMU's
//! software emulation (TCG), against a bare appliance built the same way.
//!
//! The images are read from `target/images` (what `imgbuild build` wrote). Each appliance
//! boots `rounds` times with the harness of the VM tests ([`testbed::vm`]) and the least
//! it needs on the kernel command line (the gateway id, its addresses); boot-to-ready is
//! from QEMU's start to the `appliance NAME ready` line on the console, i.e. kernel,
//! modules, rcS (sysctls, ruleset, setup steps) and the services up to their ready
//! check.
//!
//! The peer is the floor any such image stands on: a `bare` appliance built by the same
//! `imgbuild` from a definition with nothing but busybox's httpd as its one service and
//! a TCP ready check, booted on the same kernel in the same way. Its time is what the
//! kernel and busybox init cost under TCG on this machine; the ratio says what our
//! services add.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use imgbuild::definition::ready_marker;
use testbed::vm::{Nic, Vm, VmOptions};

use crate::table::{Table, quantile};

/// The goals of issue 10 for the gwx appliance.
pub const GOAL_GWX_MB: f64 = 40.0;
pub const GOAL_GWX_READY_SECS: f64 = 15.0;

/// One appliance's built files and how to boot it.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub dir: PathBuf,
    /// `appliance.*` kernel parameters it needs to come up.
    pub append: Vec<String>,
}

/// Sizes in bytes.
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    pub kernel: u64,
    pub initramfs: u64,
    pub oci_tar: u64,
    /// The A/B disk image, when the build made one: its size, and what it takes on disk
    /// (it is sparse: the slots' free space is holes).
    pub disk: Option<(u64, u64)>,
}

impl Sizes {
    /// What a VM needs: the kernel and the initramfs.
    pub fn vm(&self) -> u64 {
        self.kernel + self.initramfs
    }
}

/// The result for one appliance.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub sizes: Sizes,
    /// Boot-to-ready of every round, seconds.
    pub ready_secs: Vec<f64>,
}

impl Measured {
    pub fn median(&self) -> f64 {
        quantile(&self.ready_secs, 0.5)
    }
}

fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{} (build the images: imgbuild build)", path.display()))?
        .len())
}

pub fn sizes(image: &Image) -> Result<Sizes> {
    let disk = image.dir.join("disk.img");
    Ok(Sizes {
        kernel: size(&image.dir.join("vmlinuz"))?,
        initramfs: size(&image.dir.join("initramfs.cpio.gz"))?,
        oci_tar: size(&image.dir.join(format!("{}.oci.tar", image.name)))?,
        disk: disk
            .exists()
            .then(|| -> Result<(u64, u64)> {
                use std::os::unix::fs::MetadataExt;
                Ok((size(&disk)?, std::fs::metadata(&disk)?.blocks() * 512))
            })
            .transpose()?,
    })
}

/// The appliances of `images_dir` and the parameters they boot with.
pub fn appliances(images_dir: &Path) -> Vec<Image> {
    let image = |name: &str, append: &[&str]| Image {
        name: name.to_owned(),
        dir: images_dir.join(name),
        append: append.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        image(
            "gwx",
            &[
                "appliance.gateway=gw1",
                "appliance.net=eth0=203.0.113.11/24,eth0=192.0.2.11/24",
            ],
        ),
        image("avsx", &["appliance.net=eth0=192.0.2.25/24"]),
        image("backend", &["appliance.net=eth0=192.0.2.2/24"]),
    ]
}

/// Boots `image` once on one NIC of its own (QEMU user networking, nothing forwarded)
/// and returns its boot-to-ready time and the accelerator QEMU used.
pub fn boot_once(image: &Image, timeout: Duration) -> Result<(Duration, &'static str)> {
    let mut opts = VmOptions::new(
        &format!("bench-{}", image.name),
        image.dir.join("vmlinuz"),
        image.dir.join("initramfs.cpio.gz"),
        &ready_marker(&image.name),
    );
    opts.nics = vec![Nic::user(&[])];
    opts.append = image.append.clone();
    opts.boot_timeout = timeout;
    let vm = Vm::boot(opts).with_context(|| format!("booting {}", image.name))?;
    Ok((vm.boot_to_ready(), vm.accelerator()))
}

/// The peer: a definition with busybox's httpd as its only service, built by `imgbuild`
/// (the workspace's release build) into `out/bare/`.
pub fn build_bare(imgbuild: &Path, out: &Path) -> Result<Image> {
    let images = out.join("definitions");
    std::fs::create_dir_all(images.join("appliances"))?;
    std::fs::create_dir_all(images.join("files"))?;
    std::fs::write(
        images.join("appliances/bare.toml"),
        "name = \"bare\"\n\
         description = \"The floor: busybox init and one trivial service\"\n\
         ready = \"tcp://127.0.0.1:80\"\n\
         kernel_modules = [\"virtio_pci\", \"virtio_net\"]\n\
         [[service]]\n\
         name = \"httpd\"\n\
         command = [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:80\", \"-h\", \"/etc\"]\n",
    )?;
    let status = std::process::Command::new(imgbuild)
        .arg("--images")
        .arg(&images)
        .arg("build")
        .arg("--out")
        .arg(out)
        .arg("bare")
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", imgbuild.display()))?;
    if !status.success() {
        bail!("{} build bare failed: {status}", imgbuild.display());
    }
    Ok(Image {
        name: "bare".into(),
        dir: out.join("bare"),
        append: Vec::new(),
    })
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// The one table: sizes, boot-to-ready (median, min, max) and the ratio to the bare
/// image's median.
pub fn report(measured: &[Measured], bare: &Measured) -> String {
    let mut t = Table::new([
        "appliance",
        "kernel MB",
        "initramfs MB",
        "VM image MB",
        "A/B disk MB (used)",
        "OCI tar MB",
        "ready s (median)",
        "min",
        "max",
        "vs bare",
    ]);
    for m in measured.iter().chain(std::iter::once(bare)) {
        let values = &m.ready_secs;
        t.row([
            m.name.clone(),
            mb(m.sizes.kernel),
            mb(m.sizes.initramfs),
            mb(m.sizes.vm()),
            m.sizes.disk.map_or("-".into(), |(all, used)| {
                format!("{} ({})", mb(all), mb(used))
            }),
            mb(m.sizes.oci_tar),
            format!("{:.1}", m.median()),
            format!("{:.1}", quantile(values, 0.0)),
            format!("{:.1}", quantile(values, 1.0)),
            format!("{:.2}", m.median() / bare.median()),
        ]);
    }
    let mut out = t.to_string();
    if let Some(gwx) = measured.iter().find(|m| m.name == "gwx") {
        let image_mb = gwx.sizes.vm() as f64 / 1e6;
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        out += &format!(
            "goal gwx image < {GOAL_GWX_MB} MB: {image_mb:.1} MB, {}; ready < {GOAL_GWX_READY_SECS} s \
             under TCG: {:.1} s (median), {}\n",
            verdict(image_mb < GOAL_GWX_MB),
            gwx.median(),
            verdict(gwx.median() < GOAL_GWX_READY_SECS),
        );
    }
    out
}
