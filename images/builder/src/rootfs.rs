//! An appliance's root file system as a [`Tree`]: busybox (its init, shell and tools),
//! the services' binaries and the host programs with their libraries, the config files,
//! and the boot scripts generated from the definition ([`crate::boot`]). The VM flavour
//! adds the kernel modules and `/dev/console`; the OCI flavour leaves both to the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::boot;
use crate::closure;
use crate::definition::Definition;
use crate::slots;
use crate::tree::{Content, Tree, image_path};

/// Where the pieces come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `images/files`: the config files and rulesets the definitions name.
    pub files_dir: PathBuf,
    /// The workspace's release build (`target/release`): the services' binaries.
    pub bin_dir: PathBuf,
    /// The static busybox (`busybox-static`).
    pub busybox: PathBuf,
}

/// Which image the tree is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavour {
    /// A VM's initramfs for this kernel release (`/lib/modules/<release>`).
    Vm { kernel_release: String },
    /// An OCI image: the host's kernel, the runtime's `/dev`.
    Oci,
}

/// Builds the tree of `def` for `flavour`.
pub fn tree(def: &Definition, src: &Sources, flavour: &Flavour) -> Result<Tree> {
    let mut t = Tree::new();
    for dir in [
        "/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/etc", "/var/log", "/var/lib",
    ] {
        t.dir(dir)?;
    }

    // Programs first: a real `nft` or `ip` wins over a busybox applet of that name.
    let mut installed = std::collections::BTreeSet::new();
    for (s, binary) in def
        .commands()
        .filter_map(|s| s.binary.as_ref().map(|b| (s, b)))
    {
        if !installed.insert(binary) {
            continue; // a service and a setup step of the same binary
        }
        let bin = src.bin_dir.join(binary);
        if !bin.is_file() {
            bail!(
                "{}: {} is missing (cargo build --release -p {binary})",
                s.name,
                bin.display(),
            );
        }
        program(&mut t, &bin, &format!("/usr/bin/{binary}"))?;
    }
    for p in &def.programs {
        if !p.is_file() {
            bail!("program {} is not on this machine", p.display());
        }
        program(&mut t, p, &image_path(p)?)?;
    }
    busybox(&mut t, &src.busybox)?;

    for f in &def.files {
        let from = src.files_dir.join(&f.source);
        if !from.is_file() {
            bail!("file {}: {} is missing", f.path.display(), from.display());
        }
        t.file(&image_path(&f.path)?, Content::Host(from), f.mode()?)?;
    }
    let ruleset = match &def.nftables {
        Some(n) => {
            let from = src.files_dir.join(n);
            if !from.is_file() {
                bail!("nftables: {} is missing", from.display());
            }
            t.file(boot::NFTABLES, Content::Host(from), 0o644)?;
            true
        }
        None => false,
    };

    let modules = match flavour {
        Flavour::Vm { kernel_release } => {
            t.char_dev("/dev/console", 5, 1, 0o600)?;
            // The kernel runs /init of an initramfs; busybox is init by that name.
            t.symlink("/init", "/bin/busybox")?;
            // The A/B disk's tool, and the modules it needs besides the definition's.
            slots::tool(&mut t)?;
            let modules = slots::kernel_modules(&def.kernel_modules);
            let files = closure::modules(kernel_release, &modules)?;
            for f in &files {
                t.file(&image_path(f)?, Content::Host(f.clone()), 0o644)?;
            }
            files
        }
        Flavour::Oci => Vec::new(),
    };
    boot::scripts(&mut t, def, &modules, ruleset)?;
    Ok(t)
}

/// `host` at `at` in the image, with the libraries it loads at their own paths.
fn program(t: &mut Tree, host: &Path, at: &str) -> Result<()> {
    t.file(at, Content::Host(host.to_owned()), 0o755)?;
    for lib in closure::libraries(host)? {
        // The loader names the path it opens; the bytes are those of the file behind
        // any symlinks, so the image needs no link farm.
        let real =
            std::fs::canonicalize(&lib).with_context(|| format!("resolve {}", lib.display()))?;
        t.file(&image_path(&lib)?, Content::Host(real), 0o755)?;
    }
    Ok(())
}

/// busybox at `/bin/busybox` and a symlink for each applet it was built with (its own
/// `--list-full`), where no real program is.
fn busybox(t: &mut Tree, busybox: &Path) -> Result<()> {
    if !closure::libraries(busybox)?.is_empty() {
        bail!(
            "{} is not static (install busybox-static)",
            busybox.display()
        );
    }
    t.file("/bin/busybox", Content::Host(busybox.to_owned()), 0o755)?;
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("run {} --list-full", busybox.display()))?;
    if !out.status.success() {
        bail!("{} --list-full failed", busybox.display());
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let path = format!("/{}", applet.trim());
        if path == "/bin/busybox" || path == "/" || t.contains(&path) {
            continue;
        }
        t.symlink(&path, "/bin/busybox")?;
    }
    Ok(())
}
