//! Logging with `tracing`: human-readable text on a terminal, one JSON object per line
//! for log shippers (`--log-format json`). Always to stderr, so stdout stays free for a
//! command's real output and journald captures both.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Output format of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line, with `timestamp`, `level`, `target` and `fields`.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Builds a subscriber writing to `writer`. `filter` uses `RUST_LOG` syntax
/// (`info`, `gwx=debug,hyper=warn`).
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn Subscriber + Send + Sync>, LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter_layer = EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter_layer)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    })
}

/// Installs the process-wide logger on stderr. `RUST_LOG`, when set, wins over `level`
/// so an operator can turn up one module without editing the unit file.
pub fn init(format: LogFormat, level: &str) -> Result<(), LoggingError> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned());
    let ansi = std::io::stderr().is_terminal();
    let sub = subscriber(format, &filter, std::io::stderr, ansi)?;
    tracing::subscriber::set_global_default(sub).map_err(|_| LoggingError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer, so a test can read what was logged.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat, filter: &str, f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let out = buf.clone();
        let sub = subscriber(format, filter, move || buf.clone(), false).unwrap();
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_level_message_and_fields() {
        let out = capture(LogFormat::Json, "info", || {
            tracing::info!(peer = "192.0.2.7", banned = true, "ban added");
            tracing::debug!("filtered out");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "debug must be filtered at level info: {out}"
        );
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "ban added");
        assert_eq!(v["fields"]["peer"], "192.0.2.7");
        assert_eq!(v["fields"]["banned"], true);
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn text_lines_are_plain_without_ansi() {
        let out = capture(LogFormat::Text, "debug", || {
            tracing::warn!(port = 25, "listener restarted");
        });
        assert!(out.contains("WARN"), "{out}");
        assert!(out.contains("listener restarted port=25"), "{out}");
        assert!(
            !out.contains('\u{1b}'),
            "no escape codes when ansi is off: {out:?}"
        );
    }

    #[test]
    fn bad_filter_is_named_in_the_error() {
        let err = subscriber(LogFormat::Text, "gwx=loud", std::io::sink, false)
            .err()
            .expect("filter must be rejected");
        assert!(err.to_string().contains("gwx=loud"), "{err}");
    }
}
