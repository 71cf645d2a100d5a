//! `images`: the appliance images' sizes and boot-to-ready times under software
//! emulation, with a bare busybox appliance as the floor. See `bench/src/images.rs` and
//! `bench/README.md`.
//!
//! Exit status: 0 when every image booted (slow is fine), 1 when one did not come up,
//! 2 when the run could not be set up (images not built, no QEMU).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::cmd::workspace_binary;
use bench::images::{self, Measured};
use clap::Parser;

/// Sizes and boot-to-ready times of the appliance images under QEMU (TCG).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Boots per appliance.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// One boot per appliance.
    #[arg(long, conflicts_with = "rounds")]
    quick: bool,
    /// Where `imgbuild build` wrote the images [default: target/images of this workspace].
    #[arg(long)]
    images: Option<PathBuf>,
    /// How long one boot may take before it counts as failed, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Accepted so `scripts/bench` can pass its arguments to every benchmark; unused.
    #[arg(long, hide = true)]
    seconds: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rounds = if args.quick { 1 } else { args.rounds };
    let dir = args
        .images
        .unwrap_or_else(|| workspace_binary("imgbuild").with_file_name("../images"));
    let dir = dir.canonicalize().unwrap_or(dir);
    let timeout = Duration::from_secs(args.timeout);
    let imgbuild = workspace_binary("imgbuild");
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("images: no temporary directory: {e}");
            return ExitCode::from(2);
        }
    };
    let bare = match images::build_bare(&imgbuild, scratch.path()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("images: building the bare peer image: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut all = images::appliances(&dir);
    all.push(bare);
    let mut measured: Vec<Measured> = Vec::new();
    let mut accel = "?";
    for image in &all {
        let sizes = match images::sizes(image) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("images: {}: {e:#}", image.name);
                return ExitCode::from(2);
            }
        };
        measured.push(Measured {
            name: image.name.clone(),
            sizes,
            ready_secs: Vec::new(),
        });
    }
    // Interleaved rounds: a busier moment of the machine hits every image alike.
    for round in 1..=rounds {
        for (image, m) in all.iter().zip(&mut measured) {
            match images::boot_once(image, timeout) {
                Ok((t, used)) => {
                    accel = used;
                    eprintln!(
                        "round {round}: {} ready in {:.1} s",
                        image.name,
                        t.as_secs_f64()
                    );
                    m.ready_secs.push(t.as_secs_f64());
                }
                Err(e) => {
                    eprintln!("images: {} did not come up: {e:#}", image.name);
                    return ExitCode::from(1);
                }
            }
        }
    }
    let bare = measured.pop().expect("the bare image is measured last");
    println!(
        "appliance images: sizes and boot-to-ready under QEMU ({}), {rounds} boot(s) each, {}",
        accel,
        dir.display()
    );
    print!("{}", images::report(&measured, &bare));
    ExitCode::SUCCESS
}
