//! `gwx sysctl`: the sysctl.d file for this gateway, printed or written atomically.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use appliance::state::{MODE_PUBLIC, write_atomic};

#[derive(Debug, clap::Args)]
pub struct SysctlArgs {
    /// Write the file here (e.g. /etc/sysctl.d/60-gwx.conf) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

pub fn run(path: &Path, gateway_id: &str, args: &SysctlArgs) -> anyhow::Result<ExitCode> {
    let inv = super::load_for_gateway(path, gateway_id)?;
    let text = gwx::sysctl::render(&inv, gateway_id)?;
    match &args.write {
        None => print!("{text}"),
        Some(file) => {
            write_atomic(file, text.as_bytes(), MODE_PUBLIC)
                .with_context(|| format!("writing the sysctl file for gateway {gateway_id}"))?;
            println!("wrote {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
