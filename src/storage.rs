//! Files on disk: crash-safe writes, JSON reads whose errors name the file, and where lafn keeps its data.
//!
//! Every file lafn writes goes through [`write_atomic`], so a process killed mid-write leaves either the old
//! file or the new one, never a torn one. Temporary names start with [`TEMP_PREFIX`]; readers ignore them and
//! [`remove_stale_temps`] cleans up what a killed process left behind.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use color_eyre::eyre::{eyre, Report, WrapErr};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Result;

/// Environment variable that replaces the platform's data directory.
pub const DATA_DIR_ENV: &str = "LAFN_DATA_DIR";

/// Names of temporary files and directories start with this; no real file or entry name does.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A temporary older than this belongs to a process that died; younger ones may be another process's
/// write in progress, so they are left alone.
const STALE_TEMP_AGE: Duration = Duration::from_secs(10 * 60);

/// lafn's data directory: `$LAFN_DATA_DIR` if set, else the platform's (e.g. `~/.local/share/lafn`).
pub fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "lafn")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or_else(|| eyre!("cannot find a home directory for lafn's data: set {DATA_DIR_ENV}"))
}

/// Proves that directory `dir` could be created, without creating it: a temporary directory is made and
/// removed in its nearest existing ancestor.
pub fn check_creatable(dir: &Path) -> Result<()> {
    let ancestor = dir.ancestors().skip(1).find(|a| a.is_dir()).unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(ancestor)
        .map(drop)
        .wrap_err_with(|| format!("cannot create a directory in {}", ancestor.display()))
}

/// Seconds since the Unix epoch, the timestamp format of lafn's files.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A fresh temporary path in the same directory as `path` (so a rename onto `path` is atomic).
pub fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map_or("file".into(), |n| n.to_string_lossy());
    // The clock tells our temp from a dead process's should the system reuse its process id.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    path.with_file_name(format!("{TEMP_PREFIX}{name}-{pid}-{nanos}-{unique}"))
}

/// Replaces `path` with `bytes` atomically and durably: temp file in the same directory, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |temp| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
        file.write_all(bytes)?;
        Ok(())
    })
}

/// [`write_atomic`] for writers that want a path (file formats whose libraries write files): `write`
/// creates the temp file it is given, which is then flushed and renamed onto `path`.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let temp = temp_sibling(path);
    let written = write(&temp).and_then(|()| -> Result<()> {
        File::open(&temp)?.sync_all()?;
        fs::rename(&temp, path)?;
        Ok(sync_dir(parent_dir(path))?)
    });
    if written.is_err() {
        // The write already failed; a leftover temp would only be cleaned later, so try now.
        let _ = fs::remove_file(&temp);
    }
    written.wrap_err_with(|| format!("cannot write {}", path.display()))
}

/// [`write_atomic`] of `value` as pretty JSON (people read and diff these files).
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .wrap_err_with(|| format!("cannot serialise the contents of {}", path.display()))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file; a parse error names the file, line and column.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    parse_json(path, &read_text(path)?)
}

/// A file written by a newer lafn whose format this one does not know.
#[derive(Debug)]
pub struct NewerFormatError {
    pub path: PathBuf,
    pub found: u32,
    pub supported: u32,
}

impl fmt::Display for NewerFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} was made by a newer lafn (format version {}, this lafn reads up to {}): update lafn to open it",
            self.path.display(),
            self.found,
            self.supported
        )
    }
}

impl std::error::Error for NewerFormatError {}

/// Reads a JSON file with a top-level `version` field. A version above `supported` fails with
/// [`NewerFormatError`] (callers can tell it from damage with `downcast_ref`). Older versions are read as
/// they are: fields added since carry `#[serde(default)]`; a breaking change would add a migration here.
pub fn read_versioned_json<T: DeserializeOwned>(path: &Path, supported: u32) -> Result<T> {
    #[derive(Deserialize)]
    struct VersionProbe {
        version: u32,
    }
    let text = read_text(path)?;
    let probe: VersionProbe = parse_json(path, &text)?;
    if probe.version > supported {
        return Err(Report::new(NewerFormatError { path: path.to_path_buf(), found: probe.version, supported }));
    }
    parse_json(path, &text)
}

/// Removes temporaries (files or directories named [`TEMP_PREFIX`]...) in `dir` left by a process that died.
pub fn remove_stale_temps(dir: &Path) -> Result<()> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot list {}", dir.display())),
    };
    for item in listing {
        let item = item.wrap_err_with(|| format!("cannot list {}", dir.display()))?;
        if !item.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let metadata = item.metadata()?;
        let age = metadata.modified()?.elapsed().unwrap_or_default();
        if age < STALE_TEMP_AGE {
            continue;
        }
        let path = item.path();
        let removed = if metadata.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        removed.wrap_err_with(|| format!("cannot remove the stale temporary {}", path.display()))?;
    }
    Ok(())
}

/// Makes a rename or new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // Directories can only be fsynced through a handle on Unix; elsewhere rename durability is the OS's.
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).wrap_err_with(|| format!("cannot read {}", path.display()))
}

fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    // serde_json's message ends with "at line L column C", which is what a person needs to fix the file.
    serde_json::from_str(text).map_err(|e| eyre!("{} is damaged or not in lafn's format: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Versioned {
        version: u32,
        text: String,
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["file.json"]);
    }

    #[test]
    fn write_atomic_into_missing_dir_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("file.json");
        let error = format!("{:#}", write_atomic(&path, b"x").unwrap_err());
        assert!(error.contains("missing/file.json"), "{error}");
    }

    #[test]
    fn json_round_trip_keeps_unicode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        let value =
            Versioned { version: 1, text: "北京 กรุงเทพฯ القاهرة 🦀\u{200f}".into() };
        write_json_atomic(&path, &value).unwrap();
        assert_eq!(read_json::<Versioned>(&path).unwrap(), value);
        assert_eq!(read_versioned_json::<Versioned>(&path, 1).unwrap(), value);
    }

    #[test]
    fn malformed_json_error_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        fs::write(&path, "{\n  \"version\": 1,\n  \"text\": \"cut").unwrap();
        let error = format!("{:#}", read_json::<Versioned>(&path).unwrap_err());
        assert!(error.contains("bad.json") && error.contains("line 3 column"), "{error}");
    }

    #[test]
    fn newer_version_is_a_distinct_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        fs::write(&path, r#"{"version": 7, "text": "x", "field_from_the_future": 1}"#).unwrap();
        let error = read_versioned_json::<Versioned>(&path, 1).unwrap_err();
        assert!(error.downcast_ref::<NewerFormatError>().is_some());
        assert!(error.to_string().contains("newer lafn"), "{error}");
    }

    #[test]
    fn only_stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale_file = dir.path().join(".tmp-index.json-1-0");
        let stale_dir = dir.path().join(".tmp-entry-1-1");
        let fresh_file = dir.path().join(".tmp-index.json-1-2");
        let real_file = dir.path().join("index.json");
        for path in [&stale_file, &fresh_file, &real_file] {
            fs::write(path, b"x").unwrap();
        }
        fs::create_dir(&stale_dir).unwrap();
        fs::write(stale_dir.join("update.safetensors"), b"x").unwrap();
        let long_ago = SystemTime::now() - 2 * STALE_TEMP_AGE;
        for path in [&stale_file, &stale_dir] {
            File::open(path).unwrap().set_modified(long_ago).unwrap();
        }
        remove_stale_temps(dir.path()).unwrap();
        assert!(!stale_file.exists() && !stale_dir.exists());
        assert!(fresh_file.exists() && real_file.exists());
    }
}
