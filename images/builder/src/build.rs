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
    // SHA256SUMS: (hex, file name) of every image file, hashed from the bytes written
    // where the build has them.
    let mut sums: Vec<(String, PathBuf)> = Vec::new();

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
            let kernel_data =
                std::fs::read(kernel).with_context(|| format!("read {}", kernel.display()))?;
            std::fs::write(&vmlinuz, &kernel_data)
                .with_context(|| format!("write {}", vmlinuz.display()))?;
            let disk = slots::disk(&def.name, &kernel_data, &data, opts.epoch, &dir)?;
            sums.push((oci::sha256_hex(&kernel_data), vmlinuz.clone()));
            sums.push((oci::sha256_hex(&data), initramfs.clone()));
            // Written by mkfs.vfat and mtools: read back.
            let disk_data = std::fs::read(&disk.path)
                .with_context(|| format!("read {}", disk.path.display()))?;
            sums.push((oci::sha256_hex(&disk_data), disk.path.clone()));
            Some(Vm {
                disk,
                kernel_bytes: kernel_data.len() as u64,
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
    sums.push((oci.archive_sha256.clone(), oci.archive.clone()));

    let sums = sums.iter().fold(String::new(), |mut out, (hex, path)| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(out, "{hex}  {name}");
        out
    });
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

/// The newest `/boot/vmlinuz-*` by release (package linux-image-amd64): the kernel the
/// images are built with and the VM tests boot.
pub fn debian_kernel() -> Result<PathBuf> {
    std::fs::read_dir("/boot")
        .context("read /boot")?
        .filter_map(|e| {
            let e = e.ok()?;
            let release = e
                .file_name()
                .into_string()
                .ok()?
                .strip_prefix("vmlinuz-")?
                .to_owned();
            Some((release, e.path()))
        })
        .max_by(|a, b| version_cmp(&a.0, &b.0))
        .map(|(_, path)| path)
        .context("no /boot/vmlinuz-*: install linux-image-amd64 (scripts/setup does)")
}

/// Compares version strings with digit runs as numbers: `6.1.0-56` > `6.1.0-9`.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, xa), (db, xb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (na, nb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
        } else {
            xa.cmp(xb)
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
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
        // Not by name: 6.1.0-56 is newer than 6.1.0-9.
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("6.1.0-56-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(version_cmp("6.10.0-1-amd64", "6.9.0-1-amd64"), Greater);
        assert_eq!(version_cmp("6.1.0-9-amd64", "6.1.0-9-amd64"), Equal);
    }
}
