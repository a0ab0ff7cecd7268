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

/// True when `a` and `b` name the same file, existing or not (compared as
/// [`resolved`] paths).
pub fn same_file(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

/// `path` with its existing part resolved (symlinks, `..`), so two names of
/// one file compare equal even before the file exists.
pub fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            resolved(parent).join(name)
        }
        _ => path.to_path_buf(),
    }
}

/// Writes a file atomically (see [`AtomicFile`]): a failure never leaves a
/// half-written file, and a symlink or character device at `path` is written
/// through, never replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(|e| GmuError::io(path, e))?;
    file.commit()
}

/// Where a write to `path` lands: a regular file (or a new one) is replaced
/// by renaming a finished temporary file over it; a symlink is followed to
/// its target (the link stays a link); a character device such as
/// `/dev/null` is written directly. A folder, FIFO, socket or block device
/// is refused: gmu never renames over anything but a regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Write a temporary sibling, then rename it over this path.
    Replace(PathBuf),
    /// Write straight into this character device.
    Device(PathBuf),
}

/// The [`Destination`] of a write to `path`.
pub fn destination(path: &Path) -> Result<Destination> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Destination::Replace(at)),
            Err(e) => return Err(GmuError::io(&at, e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = std::fs::read_link(&at).map_err(|e| GmuError::io(&at, e))?;
            at = match at.parent() {
                Some(parent) if link.is_relative() => parent.join(link),
                _ => link,
            };
            continue;
        }
        if kind.is_file() {
            return Ok(Destination::Replace(at));
        }
        if kind.is_dir() {
            return Err(GmuError::data(path, "is a folder; expected a file name to write"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_char_device() {
                return Ok(Destination::Device(at));
            }
        }
        return Err(GmuError::data(
            path,
            "is not a regular file (a FIFO, socket or block device); gmu writes regular files and character devices such as /dev/null",
        ));
    }
    Err(GmuError::data(path, "too many levels of symbolic links"))
}

/// A file being written so that it appears whole or not at all: the bytes
/// go to a hidden temporary sibling ([`temp_path`]) that
/// [`commit`](Self::commit) renames over the target; dropped without a
/// commit (the command failed), the temporary file is removed and the
/// target is untouched. A symlink is followed and a character device is
/// written directly ([`destination`]).
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: Option<PathBuf>,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        match destination(path)? {
            Destination::Replace(target) => {
                let tmp = temp_path(&target);
                let file = std::fs::File::create(&tmp).map_err(|e| GmuError::io(&target, e))?;
                Ok(AtomicFile { target, tmp: Some(tmp), file: Some(std::io::BufWriter::new(file)) })
            }
            Destination::Device(target) => {
                let file =
                    std::fs::OpenOptions::new().write(true).open(&target).map_err(|e| GmuError::io(&target, e))?;
                Ok(AtomicFile { target, tmp: None, file: Some(std::io::BufWriter::new(file)) })
            }
        }
    }

    /// The file that [`commit`](Self::commit) replaces (a symlink's target).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes and moves the finished file into place.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("committed once");
        let file = file.into_inner().map_err(|e| GmuError::io(&self.target, e.into_error()))?;
        if let Some(tmp) = &self.tmp {
            file.sync_all().map_err(|e| GmuError::io(&self.target, e))?;
            drop(file);
            std::fs::rename(tmp, &self.target).map_err(|e| GmuError::io(&self.target, e))?;
            self.tmp = None;
        }
        Ok(())
    }
}

impl std::io::Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("open until committed").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open until committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The temporary sibling used by [`write_atomic`]: `.stem.tmp.ext`, hidden,
/// and keeping the extension for writers that choose a format from it.
pub fn temp_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match path.extension() {
        Some(ext) => path.with_file_name(format!(".{stem}.tmp.{}", ext.to_string_lossy())),
        None => path.with_file_name(format!(".{stem}.tmp")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Issue 20, item 3: a symlink is written through (it stays a link), a
    /// character device is written into (never replaced by a regular file),
    /// and a FIFO or a folder is refused with the path named.
    #[test]
    fn an_atomic_write_replaces_only_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink("real.csv", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        // A dangling link: the file it names is created.
        let dangling = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink("made.csv", &dangling).unwrap();
        write_atomic(&dangling, b"made").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("made.csv")).unwrap(), "made");
        // /dev/null stays a character device.
        use std::os::unix::fs::FileTypeExt;
        write_atomic(Path::new("/dev/null"), b"gone").unwrap();
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        assert_eq!(destination(Path::new("/dev/null")).unwrap(), Destination::Device("/dev/null".into()));
        // A FIFO would hang a reader or writer: refused, named.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let err = write_atomic(&fifo, b"x").unwrap_err().to_string();
        assert!(err.contains("fifo") && err.contains("not a regular file"), "{err}");
        let err = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("is a folder"), "{err}");
        // A write dropped before its commit leaves the old file and no temporary one.
        let mut half = AtomicFile::create(&real).unwrap();
        half.write_all(b"half").unwrap();
        drop(half);
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        assert!(!temp_path(&real).exists());
    }
}
