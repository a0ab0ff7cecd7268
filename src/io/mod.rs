//! Reading and writing files, free of tensors: NumPy arrays ([`npy`]) and
//! output folders that never mix runs ([`output`]). The atomic write of one
//! file ([`write_atomic`](crate::error::write_atomic)) sits with the errors
//! it reports. Imports only [`error`](crate::error) and [`budget`](crate::budget).

pub mod npy;
pub mod output;

use std::io::Read;
use std::path::Path;

use crate::error::{GmuError, Result};

/// Opens `path` for reading where a file is required: a folder, FIFO,
/// socket or device (`/dev/zero`, a named pipe that would hang) is refused
/// with the path named, before a byte is read. Symlinks are followed.
pub fn open_regular(path: &Path) -> Result<std::fs::File> {
    let refuse = |meta: &std::fs::Metadata| {
        let what = if meta.is_dir() { "a folder" } else { "not a regular file (a device, FIFO or socket)" };
        GmuError::data(path, format!("is {what}; expected a file"))
    };
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(|e| GmuError::io(path, e))?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    let file = std::fs::File::open(path).map_err(|e| GmuError::io(path, e))?;
    let meta = file.metadata().map_err(|e| GmuError::io(path, e))?;
    if !meta.is_file() {
        return Err(refuse(&meta));
    }
    Ok(file)
}

/// The whole of a regular file ([`open_regular`]) of at most `cap` bytes; a
/// longer one is refused before it is read, naming its size and the cap.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(|e| GmuError::io(path, e))?.len();
    if len > cap {
        return Err(GmuError::data(
            path,
            format!("{len} bytes; at most {cap} are read from a file of this kind (is it the file you meant?)"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` holds the cap even if the file grows while it is read.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| GmuError::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(GmuError::data(path, format!("grew past {cap} bytes while it was read")));
    }
    Ok(bytes)
}

/// The whole of a regular file ([`open_regular`]) whose size fits the
/// memory budget ([`budget`](crate::budget)): data files (views, labels)
/// that may be large but must be files.
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(|e| GmuError::io(path, e))?.len();
    crate::budget::check(&format!("reading {len} bytes"), Some(len)).map_err(|m| GmuError::data(path, m))?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes).map_err(|e| GmuError::io(path, e))?;
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String> {
    String::from_utf8(read_capped(path, cap)?).map_err(|e| GmuError::data(path, format!("not UTF-8 text ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, item 15: `/dev/zero`, a FIFO and a folder are refused
    /// before anything is read (no unbounded read, no hang); a file past the
    /// cap is refused with its size.
    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_capped(Path::new("/dev/zero"), 1 << 20).unwrap_err().to_string();
        assert!(err.contains("/dev/zero") && err.contains("not a regular file"), "{err}");
        let fifo = dir.path().join("pipe.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // (No writer ever opens it: a reader that opened it would hang here.)
        let err = read_capped(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("pipe.json") && err.contains("not a regular file"), "{err}");
        let err = read_capped(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains("is a folder"), "{err}");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; 100]).unwrap();
        let err = read_capped(&big, 10).unwrap_err().to_string();
        assert!(err.contains("100 bytes") && err.contains("at most 10"), "{err}");
        assert_eq!(read_text_capped(&big, 100).unwrap().len(), 100);
    }
}
