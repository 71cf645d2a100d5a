use std::fmt;

/// A test-bed failure, always with what was being done and why it failed.
#[derive(thiserror::Error)]
pub enum Error {
    /// The test needs something this machine lacks (root, a tool, a kernel feature).
    #[error("test needs {need}: {hint}")]
    Missing { need: String, hint: String },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// A server did not become ready.
    #[error("{server} not ready: {reason}\n--- last lines of {log} ---\n{tail}")]
    NotReady {
        server: String,
        reason: String,
        log: String,
        tail: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

// `unwrap()` in a test prints Debug; make it as readable as Display.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches "what was being done" to an io::Error.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}
