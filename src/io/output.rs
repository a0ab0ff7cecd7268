//! Output folders that never mix runs. A command that writes a folder
//! (`demo`, `train`, `multiview`, `mmimdb`, `plot`) builds it under
//! [`Staging::path`], a sibling named `<out>.partial`, and [`Staging::finish`]
//! moves it into place when the run is complete. A folder named `*.partial`
//! is a run still writing or one that was killed; the real `--out` only ever
//! holds one complete run. Each run folder carries a marker, [`MARKER`],
//! naming the command that wrote it: a later run of a quick command
//! ([`QUICK`]: the demo, the figures) replaces its own previous run whole, so
//! the README's first command works twice; a finished training run, or any
//! other non-empty folder, is refused unless the caller forces its
//! replacement, so hours of work or a user's own files are never replaced by
//! surprise.

use std::path::{Path, PathBuf};

use crate::error::{GmuError, Result};

/// Commands whose runs take seconds (the README's first command, the
/// figures): run again, each replaces its own previous run. A finished run
/// of any other command (hours of training) is replaced only with `--force`.
pub const QUICK: [&str; 2] = ["demo", "plot"];

/// The file in every run folder that names the command that wrote it.
pub const MARKER: &str = ".gmu-run";

/// A run's output folder under construction. Dropped before
/// [`finish`](Self::finish) (the run failed), it removes what it wrote; a
/// killed process leaves `<out>.partial`, which the next run into `<out>` clears.
///
/// While it lives, the run holds an advisory lock on `<out>.partial/.lock`:
/// a second run into the same `--out` is refused with a clear message rather
/// than deleting the first run's files under it. The lock goes with the
/// process, so a killed run never blocks the next one.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    partial: PathBuf,
    finished: bool,
    _lock: std::fs::File,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.partial);
        }
    }
}

/// The lock file inside a partial folder.
const LOCK: &str = ".lock";

/// Creates `partial` if needed and takes its lock, or says which run holds it.
fn lock(partial: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(partial).map_err(|e| GmuError::io(partial, e))?;
    let path = partial.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| GmuError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(GmuError::invalid(
            "out",
            format!(
                "another gmu run is writing {} (it holds the lock on {}); wait for it to end, or choose another --out",
                partial.display(),
                path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(GmuError::io(&path, e)),
    }
}

/// Empties `dir` of everything but its lock file.
fn clear_except_lock(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| GmuError::io(dir, e))? {
        let entry = entry.map_err(|e| GmuError::io(dir, e))?;
        if entry.file_name() == LOCK {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| GmuError::io(&path, e))?;
    }
    Ok(())
}

/// `target`, or the folder it links to when it is a symlink: a run writes
/// into a link's target and leaves the link in place.
fn through_link(target: &Path) -> PathBuf {
    if std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink())
        && let Ok(real) = target.canonicalize()
    {
        return real;
    }
    target.to_path_buf()
}

/// `<dir>.partial`: where a run into `dir` writes until it is complete.
pub fn partial_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "out".into());
    name.push(".partial");
    dir.with_file_name(name)
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

impl Staging {
    /// Starts a run into `target`. Refuses a `target` that holds anything
    /// (another run's files) unless `replace`; clears what a killed run left
    /// in `<target>.partial`.
    pub fn new(target: &Path, command: &str, replace: bool) -> Result<Self> {
        Self::start(target, command, replace, &[])
    }

    /// As [`new`](Self::new), recording `args` (the run's flags) so that
    /// [`resume`](Self::resume) can tell the same run from another.
    pub fn start(target: &Path, command: &str, replace: bool, args: &[String]) -> Result<Self> {
        let target = &through_link(target);
        Self::check(target, command, replace)?;
        let partial = partial_path(target);
        let lock = lock(&partial)?;
        clear_except_lock(&partial)?;
        let marker = serde_json::json!({ "command": command, "args": args });
        crate::error::write_atomic(&partial.join(MARKER), format!("{marker}\n").as_bytes())?;
        Ok(Staging { target: target.to_path_buf(), partial, finished: false, _lock: lock })
    }

    /// Continues the run a killed process left in `<target>.partial` (the
    /// same command with the same `args`), or starts one where there is none.
    /// A partial folder of another command or other flags is an error, not
    /// something to mix into.
    pub fn resume(target: &Path, command: &str, replace: bool, args: &[String]) -> Result<Self> {
        let target = &through_link(target);
        let partial = partial_path(target);
        if !partial.join(MARKER).is_file() {
            return Self::start(target, command, replace, args);
        }
        let lock = lock(&partial)?;
        let Ok(text) = std::fs::read_to_string(partial.join(MARKER)) else {
            drop(lock);
            return Self::start(target, command, replace, args);
        };
        let marker: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if marker["command"] != command || marker["args"] != serde_json::json!(args) {
            return Err(GmuError::invalid(
                "resume",
                format!(
                    "{} holds a run of `gmu {}` with other flags ({}); give the same flags to resume it, or leave out --resume to start afresh",
                    partial.display(),
                    marker["command"].as_str().unwrap_or("?"),
                    marker["args"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" "))
                        .unwrap_or_default()
                ),
            ));
        }
        Self::check(target, command, replace)?;
        Ok(Staging { target: target.to_path_buf(), partial, finished: false, _lock: lock })
    }

    /// What [`new`](Self::new) refuses, checked without writing anything
    /// (for a command to call before its work).
    pub fn check(target: &Path, command: &str, replace: bool) -> Result<()> {
        let target = &through_link(target);
        if std::fs::symlink_metadata(target).is_ok_and(|m| !m.is_dir()) {
            return Err(GmuError::invalid(
                "out",
                format!("{} is a file, not a folder; a run writes a folder", target.display()),
            ));
        }
        let ours = std::fs::read_to_string(target.join(MARKER))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["command"] == command);
        if ours && !replace && !QUICK.contains(&command) {
            return Err(GmuError::invalid(
                "out",
                format!(
                    "{} holds a finished `gmu {command}` run; pass --force to replace it, or choose a new folder",
                    target.display()
                ),
            ));
        }
        if target.is_dir() && !is_empty_dir(target) && !ours && !replace {
            return Err(GmuError::invalid(
                "out",
                format!(
                    "{} already holds files that no `gmu {command}` run wrote; choose a new folder, or pass --force to replace it",
                    target.display()
                ),
            ));
        }
        Ok(())
    }

    /// Where the run writes.
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// The folder the run ends in.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the complete run into place (replacing what was there, which
    /// [`new`](Self::new) allowed). Until this returns, `target` holds the
    /// previous run, whole.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.finished = true;
        if self.target.exists() {
            let mut name = self.partial.file_name().expect("has a name").to_os_string();
            name.push(".old");
            let old = self.partial.with_file_name(name);
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| GmuError::io(&old, e))?;
            }
            std::fs::rename(&self.target, &old).map_err(|e| GmuError::io(&self.target, e))?;
            std::fs::rename(&self.partial, &self.target).map_err(|e| GmuError::io(&self.target, e))?;
            std::fs::remove_dir_all(&old).map_err(|e| GmuError::io(&old, e))?;
        } else {
            std::fs::rename(&self.partial, &self.target).map_err(|e| GmuError::io(&self.target, e))?;
        }
        // The lock file came along; the run's lock is released when `self` drops.
        let _ = std::fs::remove_file(self.target.join(LOCK));
        Ok(self.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let first = Staging::new(&out, "demo", false).unwrap();
        std::fs::write(first.path().join("a.txt"), "first").unwrap();
        assert!(!out.exists(), "nothing at --out until the run is complete");
        assert!(first.path().ends_with("run.partial"));
        first.finish().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "first");
        // A second run of the same command replaces it whole; another command needs force.
        let err = Staging::new(&out, "multiview", false).unwrap_err().to_string();
        assert!(err.contains("no `gmu multiview` run wrote") && err.contains("--force"), "{err}");
        let second = Staging::new(&out, "demo", false).unwrap();
        std::fs::write(second.path().join("b.txt"), "second").unwrap();
        assert!(out.join("a.txt").exists(), "the old run stays whole while the new one is written");
        second.finish().unwrap();
        assert!(!out.join("a.txt").exists() && out.join("b.txt").exists(), "no file of the old run is left");
        assert!(!partial_path(&out).exists());
        // Issue 20, item 30: a finished training run is replaced only with force.
        let trained = dir.path().join("trained");
        Staging::new(&trained, "multiview", false).unwrap().finish().unwrap();
        let err = Staging::new(&trained, "multiview", false).unwrap_err().to_string();
        assert!(err.contains("holds a finished `gmu multiview` run") && err.contains("--force"), "{err}");
        Staging::new(&trained, "multiview", true).unwrap().finish().unwrap();
        // A folder of the user's own: refused without force.
        let mine = dir.path().join("mine");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("notes.txt"), "").unwrap();
        assert!(Staging::new(&mine, "demo", false).is_err());
        Staging::new(&mine, "demo", true).unwrap().finish().unwrap();
        assert!(!mine.join("notes.txt").exists());
        // A failed run removes what it wrote.
        let failed = Staging::new(&dir.path().join("f"), "demo", false).unwrap();
        std::fs::write(failed.path().join("half"), "").unwrap();
        drop(failed);
        assert!(!dir.path().join("f.partial").exists() && !dir.path().join("f").exists());
        // A killed run leaves only `k.partial`, which the next run clears.
        // (What a killed run leaves: its files and a lock file that no process holds.)
        std::fs::create_dir_all(dir.path().join("k.partial")).unwrap();
        std::fs::write(dir.path().join("k.partial/half"), "").unwrap();
        std::fs::write(dir.path().join("k.partial").join(LOCK), "").unwrap();
        assert!(dir.path().join("k.partial/half").exists() && !dir.path().join("k").exists());
        let again = Staging::new(&dir.path().join("k"), "demo", false).unwrap();
        assert!(!again.path().join("half").exists());
    }

    /// Issue 20, item 4: a second run into the same folder is refused while
    /// the first writes (it used to delete the first's `.partial`); once the
    /// first ends, or dies, the next run goes ahead.
    #[test]
    fn a_second_run_into_the_same_folder_waits_its_turn() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let first = Staging::new(&out, "demo", false).unwrap();
        std::fs::write(first.path().join("a.txt"), "first").unwrap();
        let err = Staging::new(&out, "demo", false).unwrap_err().to_string();
        assert!(err.contains("another gmu run is writing") && err.contains("run.partial"), "{err}");
        let err = Staging::resume(&out, "demo", false, &[]).unwrap_err().to_string();
        assert!(err.contains("another gmu run is writing"), "{err}");
        assert_eq!(std::fs::read_to_string(first.path().join("a.txt")).unwrap(), "first", "the first run's files stay");
        first.finish().unwrap();
        assert!(!out.join(LOCK).exists(), "the lock file does not end in the run");
        Staging::new(&out, "demo", false).unwrap().finish().unwrap();
    }

    /// Issue 20, item 3: an --out that is a symlink to a folder is written
    /// through; the link stays a link. A device or a file is not a folder.
    #[test]
    fn a_run_writes_through_a_symlinked_folder() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let run = Staging::new(&link, "demo", false).unwrap();
        std::fs::write(run.path().join("a.txt"), "x").unwrap();
        run.finish().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(real.join("a.txt").is_file());
        let err = Staging::new(Path::new("/dev/null"), "demo", false).unwrap_err().to_string();
        assert!(err.contains("/dev/null") && err.contains("a run writes a folder"), "{err}");
    }
}
