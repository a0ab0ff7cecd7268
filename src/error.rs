//! Typed errors of the library. The binary adds context with `anyhow` and maps
//! every error to a one-line message and a non-zero exit code.
//!
//! Layer 0 of the crate (see `ARCHITECTURE.md`): it imports nothing of gmu.

use std::path::{Path, PathBuf};

/// Everything the library can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum GmuError {
    /// A hyperparameter or option outside its domain, checked up front.
    #[error("invalid {name}: {message}")]
    InvalidParameter {
        /// The parameter or flag, as the user knows it (`hidden`, `--resolution`).
        name: &'static str,
        /// What was expected, with the value that was given.
        message: String,
    },
    /// A data file that cannot be used as it is.
    #[error("{}: {message}", path.display())]
    Data {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong, naming the line and column where there is one.
        message: String,
    },
    /// A NaN or an infinity in a loss or in computed values.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// An I/O failure, with the file it concerns.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A failure to save or load weights or a config.
    #[error("{}: {message}", path.display())]
    Store {
        /// The weight or config file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A failure while drawing a figure.
    #[error("plot {}: {message}", path.display())]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, GmuError>;

impl GmuError {
    /// Shorthand for [`GmuError::InvalidParameter`].
    pub fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        GmuError::InvalidParameter { name, message: message.into() }
    }

    /// `Ok` where `name` can name something registered from outside the crate
    /// (a fusion method, a data source, an encoder): lowercase letters, digits
    /// and `-`; otherwise an error for parameter `field` saying what `what` takes.
    pub fn check_registry_name(field: &'static str, what: &str, name: &str) -> Result<()> {
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(())
        } else {
            Err(GmuError::invalid(field, format!("{what} name is lowercase letters, digits and -, got {name:?}")))
        }
    }

    /// Shorthand for [`GmuError::Data`].
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        GmuError::Data { path: path.into(), message: message.into() }
    }

    /// Shorthand for [`GmuError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GmuError::Io { path: path.into(), source }
    }
}

/// True when `a` and `b` name the same file (compared as canonical paths
/// where both exist, as given otherwise).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Writes a file atomically: the bytes go to a temporary file beside `path`,
/// which is then renamed over it, so a failure never leaves a half-written file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| GmuError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        GmuError::io(path, e)
    })
}

/// The temporary sibling used by [`write_atomic`]: `.stem.tmp.ext`, hidden,
/// and keeping the extension for writers that choose a format from it.
pub fn temp_path(path: &std::path::Path) -> PathBuf {
    let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match path.extension() {
        Some(ext) => path.with_file_name(format!(".{stem}.tmp.{}", ext.to_string_lossy())),
        None => path.with_file_name(format!(".{stem}.tmp")),
    }
}
