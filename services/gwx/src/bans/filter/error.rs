//! [`FilterError`]: why a filter file could not be loaded. Every message names the file,
//! and where it can the option (and the line of a multi-line option) and what is wrong,
//! so an operator can fix a `filter.d` file without reading our code.

use std::path::PathBuf;

/// Why a filter could not be loaded or compiled.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The file exists (or was named) but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// INI syntax: a line that is neither a section, an option, a continuation nor a
    /// comment; a duplicate section or option; an option before any section.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// An `[INCLUDES]` `before`/`after` entry names a file that does not exist.
    #[error("{}: includes {}, which does not exist", includer.display(), missing.display())]
    MissingInclude { includer: PathBuf, missing: PathBuf },
    /// A problem with an option's value as a whole: interpolation, tag substitution,
    /// a bad number, a required option missing.
    #[error("{}: option `{option}`: {message}", path.display())]
    Option {
        path: PathBuf,
        option: String,
        message: String,
    },
    /// One line (1-based) of a multi-line regex option does not compile.
    #[error("{}: option `{option}` line {line}: {message}", path.display())]
    Regex {
        path: PathBuf,
        option: String,
        line: usize,
        message: String,
    },
    /// One line of an option uses a fail2ban or Python feature this loader refuses.
    #[error("{}: option `{option}` line {line}: {feature}, which is not supported", path.display())]
    Unsupported {
        path: PathBuf,
        option: String,
        line: usize,
        feature: String,
    },
}

impl FilterError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            FilterError::Read { path, .. }
            | FilterError::Syntax { path, .. }
            | FilterError::Option { path, .. }
            | FilterError::Regex { path, .. }
            | FilterError::Unsupported { path, .. } => path,
            FilterError::MissingInclude { includer, .. } => includer,
        }
    }

    /// True when the filter uses a feature this loader refuses on purpose (as opposed to
    /// a file that is broken for fail2ban too).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, FilterError::Unsupported { .. })
    }
}

/// Where an option's value was set: the file (and line) an error message should name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

/// An error of a regex-level component (translator, tags, date patterns) before it knows
/// which file and option it belongs to; [`PatternError::at`] adds that context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// The pattern is wrong (it would not compile in fail2ban either).
    Invalid(String),
    /// The pattern uses a feature we refuse; the text names the feature.
    Unsupported(String),
}

impl PatternError {
    pub fn at(self, path: &std::path::Path, option: &str, line: usize) -> FilterError {
        match self {
            PatternError::Invalid(message) => FilterError::Regex {
                path: path.to_path_buf(),
                option: option.to_string(),
                line,
                message,
            },
            PatternError::Unsupported(feature) => FilterError::Unsupported {
                path: path.to_path_buf(),
                option: option.to_string(),
                line,
                feature,
            },
        }
    }
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatternError::Invalid(m) => f.write_str(m),
            PatternError::Unsupported(m) => write!(f, "{m}, which is not supported"),
        }
    }
}
