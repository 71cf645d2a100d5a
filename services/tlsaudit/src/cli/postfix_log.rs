//! `tlsaudit postfix-log FILE...`: the mail clients that fail the TLS handshake.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PostfixLogArgs {
    /// Postfix logs (maillog, mail.log, syslog), plain or gzip, read in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LogReportFormat::Text)]
    pub format: LogReportFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogReportFormat {
    Text,
    Json,
}

pub fn run(a: &PostfixLogArgs) -> anyhow::Result<ExitCode> {
    let report = tlsaudit::postfix_log::read(&a.files)?;
    let text = match a.format {
        LogReportFormat::Text => report.to_string(),
        LogReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    super::write_out(&text, a.output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
