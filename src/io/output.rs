//! Output folders that never mix runs. A command that writes a folder
//! (`demo`, `train`, `multiview`, `mmimdb`, `plot`) builds it under
//! [`Staging::path`], a sibling named `<out>.partial`, and [`Staging::finish`]
//! moves it into place when the run is complete. A folder named `*.partial`
//! is a run still writing or one that was killed; the real `--out` only ever
//! holds one complete run. Each run folder carries a marker, [`MARKER`],
//! naming the command that wrote it: a later run of the same command
//! replaces it whole (the default output folders can be run again); any other
//! non-empty folder is refused unless the caller forces its replacement, so
//! a user's own files are never replaced by surprise.

use std::path::{Path, PathBuf};

use crate::error::{GmuError, Result};

/// The file in every run folder that names the command that wrote it.
pub const MARKER: &str = ".gmu-run";

/// A run's output folder under construction. Dropped before
/// [`finish`](Self::finish) (the run failed), it removes what it wrote; a
/// killed process leaves `<out>.partial`, which the next run into `<out>` clears.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    partial: PathBuf,
    finished: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.partial);
        }
    }
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
        Self::check(target, command, replace)?;
        let partial = partial_path(target);
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| GmuError::io(&partial, e))?;
        }
        std::fs::create_dir_all(&partial).map_err(|e| GmuError::io(&partial, e))?;
        let marker = serde_json::json!({ "command": command, "args": args });
        crate::error::write_atomic(&partial.join(MARKER), format!("{marker}\n").as_bytes())?;
        Ok(Staging { target: target.to_path_buf(), partial, finished: false })
    }

    /// Continues the run a killed process left in `<target>.partial` (the
    /// same command with the same `args`), or starts one where there is none.
    /// A partial folder of another command or other flags is an error, not
    /// something to mix into.
    pub fn resume(target: &Path, command: &str, replace: bool, args: &[String]) -> Result<Self> {
        let partial = partial_path(target);
        let Ok(text) = std::fs::read_to_string(partial.join(MARKER)) else {
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
        Ok(Staging { target: target.to_path_buf(), partial, finished: false })
    }

    /// What [`new`](Self::new) refuses, checked without writing anything
    /// (for a command to call before its work).
    pub fn check(target: &Path, command: &str, replace: bool) -> Result<()> {
        if target.exists() && !target.is_dir() {
            return Err(GmuError::invalid("out", format!("{} is a file; a run writes a folder", target.display())));
        }
        let ours = std::fs::read_to_string(target.join(MARKER))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["command"] == command);
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
        let killed = Staging::new(&dir.path().join("k"), "demo", false).unwrap();
        std::fs::write(killed.path().join("half"), "").unwrap();
        std::mem::forget(killed);
        assert!(dir.path().join("k.partial/half").exists() && !dir.path().join("k").exists());
        let again = Staging::new(&dir.path().join("k"), "demo", false).unwrap();
        assert!(!again.path().join("half").exists());
    }
}
