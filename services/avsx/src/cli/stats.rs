//! `avsx stats`: the score distribution of the kept verdicts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use avsx::config::Config;
use avsx::stats;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Start of the range: RFC 3339, a date, or a time ago ("7d", "1d 12h").
    #[arg(long)]
    from: Option<String>,
    /// End of the range (exclusive), same forms.
    #[arg(long)]
    to: Option<String>,
    /// Other levels to compare, TAG:KILL (e.g. 5:12); repeatable.
    #[arg(long = "what-if", value_name = "TAG:KILL")]
    what_if: Vec<String>,
    /// Also write the distribution as an SVG chart.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

pub fn run(config: &Config, args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let bound = |s: &Option<String>, what: &str| {
        s.as_deref()
            .map(|s| stats::parse_time_bound(s, now).with_context(|| format!("--{what}")))
            .transpose()
    };
    let (from, to) = (bound(&args.from, "from")?, bound(&args.to, "to")?);
    let what_if = args
        .what_if
        .iter()
        .map(|s| stats::parse_what_if(s).with_context(|| format!("--what-if {s}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = stats::report(
        &config.stats.path,
        from,
        to,
        config.scan.tag_level,
        config.scan.kill_level,
        &what_if,
    )?;
    print!("{report}");
    if let Some(path) = &args.svg {
        std::fs::write(path, report.svg())
            .with_context(|| format!("writing the chart {}", path.display()))?;
        println!("chart written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
