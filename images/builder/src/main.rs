//! `imgbuild`: the appliance image builder's command line. See `images/README.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use imgbuild::build::{self, Options};
use imgbuild::definition::Definition;
use imgbuild::rootfs::Sources;

/// Builds reproducible appliance images (VM: kernel + initramfs, and an A/B disk image;
/// OCI: layout + docker tar) from the definitions under images/appliances.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The `images` directory (appliances/ and files/).
    #[arg(long, default_value_os_t = default_images_dir())]
    images: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validates definitions (all under appliances/ when none is named).
    Check { appliances: Vec<String> },
    /// Builds the images of the named appliances (all when none is named).
    Build {
        appliances: Vec<String>,
        /// Where `<name>/` is written.
        #[arg(long, default_value = "target/images")]
        out: PathBuf,
        /// The workspace's release binaries.
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// The static busybox.
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        /// The kernel of the VM image [default: the newest /boot/vmlinuz-*].
        #[arg(long, conflicts_with = "no_vm")]
        kernel: Option<PathBuf>,
        /// Only the OCI image.
        #[arg(long)]
        no_vm: bool,
        /// Every time stored in the images, in seconds since 1970.
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
        epoch: u32,
    },
}

fn default_images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("images"), Path::to_path_buf)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgbuild: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check { appliances } => {
            for (name, path) in definitions(&cli.images, &appliances)? {
                let def = Definition::load(&path)?;
                println!("{name}: ok ({} service(s))", def.services.len());
            }
            Ok(())
        }
        Command::Build {
            appliances,
            out,
            bin_dir,
            busybox,
            kernel,
            no_vm,
            epoch,
        } => {
            let kernel = match (kernel, no_vm) {
                (_, true) => None,
                (Some(k), false) => Some(k),
                (None, false) => Some(build::debian_kernel()?),
            };
            let opts = Options {
                sources: Sources {
                    files_dir: cli.images.join("files"),
                    bin_dir,
                    busybox,
                },
                kernel,
                out,
                epoch,
            };
            println!(
                "{:<10} {:>12} {:>12} {:>12} {:>12}  oci manifest digest",
                "appliance", "initramfs", "kernel", "disk (used)", "oci layer"
            );
            for (_, path) in definitions(&cli.images, &appliances)? {
                let def = Definition::load(&path)?;
                let built = build::build(&def, &opts)
                    .with_context(|| format!("build the {} appliance", def.name))?;
                let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
                // The disk is sparse: what its blocks hold, of its size.
                let disk = built.vm.as_ref().map_or("-".into(), |v| {
                    use std::os::unix::fs::MetadataExt;
                    let used = std::fs::metadata(&v.disk.path).map_or(0, |m| m.blocks() * 512);
                    format!("{} ({})", mb(v.disk.bytes), mb(used))
                });
                println!(
                    "{:<10} {:>12} {:>12} {:>12} {:>12}  {}",
                    built.name,
                    built
                        .vm
                        .as_ref()
                        .map_or("-".into(), |v| mb(v.initramfs_bytes)),
                    built.vm.as_ref().map_or("-".into(), |v| mb(v.kernel_bytes)),
                    disk,
                    mb(built.oci.layer_bytes),
                    built.oci.manifest_digest
                );
            }
            Ok(())
        }
    }
}

/// The named definitions, or all of them, as (name, path).
fn definitions(images: &Path, names: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let dir = images.join("appliances");
    if !names.is_empty() {
        return Ok(names
            .iter()
            .map(|n| (n.clone(), dir.join(format!("{n}.toml"))))
            .collect());
    }
    let mut all: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, p)
        })
        .collect();
    all.sort();
    Ok(all)
}
