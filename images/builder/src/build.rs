//! One appliance, built: `<out>/<name>/` holds `vmlinuz` and `initramfs.cpio.gz` (the
//! VM image) and `disk.img` (the same as an A/B disk, [`crate::slots`]), `oci/` and
//! `<name>.oci.tar` (the OCI image), and `SHA256SUMS` of them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::archive;
use crate::definition::Definition;
use crate::oci::{self, Oci};
use crate::rootfs::{self, Flavour, Sources};
use crate::slots;

/// What to build from where.
#[derive(Debug, Clone)]
pub struct Options {
    pub sources: Sources,
    /// The kernel the VM image boots (`/boot/vmlinuz-<release>`); none: no VM image.
    pub kernel: Option<PathBuf>,
    /// Where `<name>/` is written.
    pub out: PathBuf,
    /// Every time stored in the images (`SOURCE_DATE_EPOCH`).
    pub epoch: u32,
}

/// The VM image's files.
#[derive(Debug, Clone)]
pub struct Vm {
    pub kernel: PathBuf,
    pub kernel_release: String,
    pub initramfs: PathBuf,
    pub initramfs_bytes: u64,
    pub kernel_bytes: u64,
    /// The A/B disk image: slot A holds the kernel and initramfs.
    pub disk: slots::Disk,
}

#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub dir: PathBuf,
    pub vm: Option<Vm>,
    pub oci: Oci,
    /// `SHA256SUMS`'s text: `<sha256 hex>  <file>` for each file of both images.
    pub sums: String,
}

/// Builds `def`'s images.
pub fn build(def: &Definition, opts: &Options) -> Result<Built> {
    let dir = opts.out.join(&def.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut files: Vec<PathBuf> = Vec::new();

    let vm = match &opts.kernel {
        Some(kernel) => {
            let kernel_release = kernel_release(kernel)?;
            let tree = rootfs::tree(
                def,
                &opts.sources,
                &Flavour::Vm {
                    kernel_release: kernel_release.clone(),
                },
            )?;
            let initramfs = dir.join("initramfs.cpio.gz");
            let data = archive::gzip(&archive::cpio(&tree, opts.epoch)?)?;
            std::fs::write(&initramfs, &data)
                .with_context(|| format!("write {}", initramfs.display()))?;
            let vmlinuz = dir.join("vmlinuz");
            std::fs::copy(kernel, &vmlinuz)
                .with_context(|| format!("copy {} to {}", kernel.display(), vmlinuz.display()))?;
            let disk = slots::disk(&def.name, &vmlinuz, &initramfs, opts.epoch, &dir)?;
            files.extend([vmlinuz.clone(), initramfs.clone(), disk.path.clone()]);
            Some(Vm {
                disk,
                kernel_bytes: size(&vmlinuz)?,
                kernel: vmlinuz,
                kernel_release,
                initramfs_bytes: data.len() as u64,
                initramfs,
            })
        }
        None => None,
    };

    let tree = rootfs::tree(def, &opts.sources, &Flavour::Oci)?;
    let oci = oci::write(&tree, def, opts.epoch, &dir)?;
    files.push(oci.archive.clone());

    let mut sums = String::new();
    for f in &files {
        let data = std::fs::read(f).with_context(|| format!("read {}", f.display()))?;
        let hex = oci::sha256(&data);
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(sums, "{}  {name}", hex.trim_start_matches("sha256:"));
    }
    let sums_file = dir.join("SHA256SUMS");
    std::fs::write(&sums_file, &sums).with_context(|| format!("write {}", sums_file.display()))?;
    Ok(Built {
        name: def.name.clone(),
        dir,
        vm,
        oci,
        sums,
    })
}

/// `6.1.0-56-amd64` of `/boot/vmlinuz-6.1.0-56-amd64`: the modules' directory.
pub fn kernel_release(kernel: &Path) -> Result<String> {
    let name = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match name.strip_prefix("vmlinuz-") {
        Some(r) if !r.is_empty() => Ok(r.to_owned()),
        _ => bail!(
            "{}: a kernel named vmlinuz-<release> is needed, so that its modules are found",
            kernel.display()
        ),
    }
}

/// The newest `/boot/vmlinuz-*` (package linux-image-amd64).
pub fn debian_kernel() -> Result<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .context("read /boot")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    kernels
        .pop()
        .context("no /boot/vmlinuz-*: install linux-image-amd64 (scripts/setup does)")
}

fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_comes_from_the_kernel_name() {
        assert_eq!(
            kernel_release(Path::new("/boot/vmlinuz-6.1.0-56-amd64")).unwrap(),
            "6.1.0-56-amd64"
        );
        assert!(kernel_release(Path::new("/tmp/bzImage")).is_err());
    }
}
