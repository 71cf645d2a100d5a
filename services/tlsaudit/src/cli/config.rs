//! `tlsaudit config nginx|postfix`: the hardened TLS configuration.

use std::process::ExitCode;

use tlsaudit::configgen::{Profile, Server};

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The server to configure.
    #[arg(value_enum)]
    pub server: Server,
    /// Mozilla profile: modern (TLS 1.3 only) or intermediate (TLS 1.2 and 1.3, for a
    /// general-purpose server).
    #[arg(long, value_enum, default_value_t = Profile::Intermediate)]
    pub profile: Profile,
}

pub fn run(a: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let text = tlsaudit::configgen::render(a.server, a.profile)?;
    super::write_out(&text, None)?;
    Ok(ExitCode::SUCCESS)
}
