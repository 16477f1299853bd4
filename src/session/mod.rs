//! Sessions: the edit groups, their progress and the chat of one piece of work, saved to resume later.
//!
//! Layout: `<sessions dir>/<name>/session.json`, and `session.json.bak`, the previous save, kept so that a
//! damaged `session.json` never loses the work (see [`Session::load_backup`] and
//! [`Session::restore_backup`]). A `session.json` this lafn cannot read is never saved over.

use std::fs;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use crate::method::{EditGroup, EditStep, LocatedNeurons, MethodSettings};
use crate::storage;
use crate::Result;

/// Version of `session.json`; bump it when its meaning changes.
pub const SESSION_FORMAT_VERSION: u32 = 1;

/// Environment variable that replaces the default sessions directory.
pub const SESSIONS_DIR_ENV: &str = "LAFN_SESSIONS_DIR";

/// Longest session name, in characters.
pub const MAX_SESSION_NAME_CHARS: usize = 64;

const SESSION_FILE: &str = "session.json";
const BACKUP_FILE: &str = "session.json.bak";

/// Where sessions live unless the caller says otherwise: `$LAFN_SESSIONS_DIR`, else `<data dir>/sessions`.
pub fn default_sessions_dir() -> PathBuf {
    sessions_dir_from(std::env::var_os(SESSIONS_DIR_ENV))
}

/// The sessions directory given the value of `LAFN_SESSIONS_DIR`: beside the project by default
/// (`sessions/` in the working directory), where users look for them.
fn sessions_dir_from(env_value: Option<std::ffi::OsString>) -> PathBuf {
    env_value.filter(|d| !d.is_empty()).map_or_else(|| PathBuf::from("sessions"), PathBuf::from)
}

/// How far an edit group has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    Draft,
    Located,
    Edited,
    Cached,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionGroup {
    pub group: EditGroup,
    pub status: GroupStatus,
    #[serde(default)]
    pub located: Option<LocatedNeurons>,
    #[serde(default)]
    pub loss_history: Vec<EditStep>,
    /// Id of the group's entry in the edit cache, once cached.
    #[serde(default)]
    pub cache_entry: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTurn {
    pub user: String,
    pub answer: String,
    /// Ids of the cache entries applied to produce the answer.
    #[serde(default)]
    pub fired: Vec<String>,
    /// Whether the edit cache was on for this turn.
    pub with_cache: bool,
    /// The unedited model's answer, when the turn was asked with and without the cache side by side.
    #[serde(default)]
    pub unedited_answer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub version: u32,
    /// Always the name of the session's directory (a directory renamed by hand renames the session).
    pub name: String,
    /// Unix seconds of the last save.
    pub saved_at: u64,
    /// The `--model` spec the session used.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub model_fingerprint: Option<String>,
    #[serde(default)]
    pub settings: MethodSettings,
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub groups: Vec<SessionGroup>,
    #[serde(default)]
    pub chat: Vec<ChatTurn>,
}

/// One line of a session list. A session that cannot be read is listed with `damaged` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub name: String,
    /// Unix seconds; `None` when damaged.
    pub saved_at: Option<u64>,
    /// Number of edit groups (0 when damaged).
    pub groups: usize,
    pub path: PathBuf,
    /// Why the session cannot be loaded.
    pub damaged: Option<String>,
    /// Whether a previous save can be loaded with [`Session::load_backup`].
    pub has_backup: bool,
}

impl Session {
    /// An empty session with default settings.
    pub fn new(name: &str) -> Result<Self> {
        validate_name(name)?;
        Ok(Self {
            version: SESSION_FORMAT_VERSION,
            name: name.to_string(),
            saved_at: 0,
            model: None,
            model_fingerprint: None,
            settings: MethodSettings::default(),
            cache_dir: None,
            groups: Vec::new(),
            chat: Vec::new(),
        })
    }

    /// Saves to `<dir>/<name>/session.json` atomically, keeping the file it replaces as `session.json.bak`.
    /// Stamps `saved_at` and the current format version. Returns the file's path.
    ///
    /// Refuses when the existing `session.json` cannot be loaded (damaged, or from a newer lafn): replacing
    /// it, or rotating it into the backup, would lose that work or the last good save.
    pub fn save(&mut self, dir: &Path) -> Result<PathBuf> {
        validate_name(&self.name)?;
        let session_dir = dir.join(&self.name);
        fs::create_dir_all(&session_dir).wrap_err_with(|| format!("cannot create {}", session_dir.display()))?;
        let path = session_dir.join(SESSION_FILE);
        if path.exists() {
            Self::load(dir, &self.name).wrap_err_with(|| {
                format!("not saving over session `{}`: restore its previous save or save under a new name", self.name)
            })?;
            let previous = fs::read(&path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
            storage::write_atomic(&session_dir.join(BACKUP_FILE), &previous)?;
        }
        self.version = SESSION_FORMAT_VERSION;
        self.saved_at = storage::unix_now();
        storage::write_json_atomic(&path, self)?;
        Ok(path)
    }

    /// Loads session `name` from `dir`. A newer format is refused; a damaged file is an error naming the
    /// file, line and column (the previous save may still load with [`Session::load_backup`]).
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        Self::load_file(dir, name, SESSION_FILE).map_err(|e| {
            if backup_exists(dir, name) {
                e.wrap_err(format!("cannot load session `{name}` (its previous save can be loaded instead)"))
            } else {
                e.wrap_err(format!("cannot load session `{name}`"))
            }
        })
    }

    /// Loads the previous save of session `name` (`session.json.bak`).
    pub fn load_backup(dir: &Path, name: &str) -> Result<Self> {
        Self::load_file(dir, name, BACKUP_FILE)
            .wrap_err_with(|| format!("cannot load the previous save of session `{name}`"))
    }

    /// Makes the previous save of session `name` its current one again (a copy of `session.json.bak`) and
    /// returns it. The `session.json` it replaces is kept as `session.json.replaced-<unix seconds>`: even a
    /// damaged file may hold work worth recovering by hand.
    pub fn restore_backup(dir: &Path, name: &str) -> Result<Self> {
        let session = Self::load_backup(dir, name)?;
        let session_dir = dir.join(name);
        let current = session_dir.join(SESSION_FILE);
        let read = |path: &Path| fs::read(path).wrap_err_with(|| format!("cannot read {}", path.display()));
        if current.exists() {
            let replaced = session_dir.join(format!("{SESSION_FILE}.replaced-{}", storage::unix_now()));
            storage::write_atomic(&replaced, &read(&current)?)?;
        }
        storage::write_atomic(&current, &read(&session_dir.join(BACKUP_FILE))?)?;
        Ok(session)
    }

    fn load_file(dir: &Path, name: &str, file: &str) -> Result<Self> {
        validate_name(name)?;
        let path = dir.join(name).join(file);
        if !path.is_file() {
            bail!("{} does not exist", path.display());
        }
        let mut session: Self = storage::read_versioned_json(&path, SESSION_FORMAT_VERSION)?;
        session.settings.validate().wrap_err_with(|| format!("{} holds invalid settings", path.display()))?;
        session.name = name.to_string();
        Ok(session)
    }
}

/// Whether session `name` has a previous save to restore.
pub fn backup_exists(dir: &Path, name: &str) -> bool {
    dir.join(name).join(BACKUP_FILE).is_file()
}

/// The sessions in `dir`, most recently saved first, damaged ones last. A missing `dir` has none.
pub fn list_sessions(dir: &Path) -> Result<Vec<SessionSummary>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot list sessions in {}", dir.display())),
    };
    let mut summaries = Vec::new();
    for item in listing {
        let item = item.wrap_err_with(|| format!("cannot list sessions in {}", dir.display()))?;
        let path = item.path();
        let has_session = path.join(SESSION_FILE).is_file();
        // Other files and directories (and names that are not Unicode) are not sessions.
        let Some(name) = item.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let has_backup = backup_exists(dir, &name);
        if !has_session && !has_backup {
            continue;
        }
        let summary = match Session::load(dir, &name) {
            Ok(session) => SessionSummary {
                name,
                saved_at: Some(session.saved_at),
                groups: session.groups.len(),
                path: path.join(SESSION_FILE),
                damaged: None,
                has_backup,
            },
            Err(e) => SessionSummary {
                name,
                saved_at: None,
                groups: 0,
                path: path.join(SESSION_FILE),
                damaged: Some(format!("{e:#}")),
                has_backup,
            },
        };
        summaries.push(summary);
    }
    summaries.sort_by(|a, b| {
        // `None` sorts below every `Some`, so reversing puts damaged sessions last.
        (b.saved_at, &a.name).cmp(&(a.saved_at, &b.name))
    });
    Ok(summaries)
}

/// Renames session `old` to `new` (its directory; the name inside follows on load).
pub fn rename(dir: &Path, old: &str, new: &str) -> Result<()> {
    validate_name(old)?;
    validate_name(new)?;
    let from = existing_session_dir(dir, old)?;
    let to = dir.join(new);
    if to.exists() {
        bail!("a session named `{new}` already exists in {}", dir.display());
    }
    fs::rename(&from, &to).wrap_err_with(|| format!("cannot rename session `{old}` to `{new}`"))
}

/// Deletes session `name` with its backup.
pub fn delete(dir: &Path, name: &str) -> Result<()> {
    validate_name(name)?;
    let session_dir = existing_session_dir(dir, name)?;
    fs::remove_dir_all(&session_dir).wrap_err_with(|| format!("cannot delete session `{name}`"))
}

/// Checks that `name` can name a session directory on any system: 1 to 64 characters, any script, no path
/// separators, no characters Windows forbids in file names, no control characters, not hidden (no leading
/// `.`, which also rules out `.` and `..`), no surrounding spaces.
pub fn validate_name(name: &str) -> Result<()> {
    const FORBIDDEN: &[char] = &['/', '\\', ':', '*', '?', '"', '<', '>', '|'];
    let problem = if name.trim().is_empty() {
        Some("is empty".to_string())
    } else if name.chars().count() > MAX_SESSION_NAME_CHARS {
        Some(format!("is longer than {MAX_SESSION_NAME_CHARS} characters"))
    } else if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c) || c.is_control()) {
        Some(format!("contains {c:?}"))
    } else if name.starts_with('.') {
        Some("starts with `.`".to_string())
    } else if name.trim() != name {
        Some("starts or ends with a space".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(eyre!("the session name `{name}` {problem}")),
        None => Ok(()),
    }
}

fn existing_session_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    let session_dir = dir.join(name);
    if !session_dir.is_dir() {
        bail!("there is no session `{name}` in {}", dir.display());
    }
    Ok(session_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::cache::fixtures::{descriptor, group, located, loss_history};

    fn sample(name: &str) -> Session {
        let mut session = Session::new(name).unwrap();
        session.model = Some("gemma-3-270m".into());
        session.model_fingerprint = Some("0123456789abcdef".into());
        session.cache_dir = Some(PathBuf::from("/tmp/cache"));
        session.settings.edit.steps = 7;
        session.groups = vec![
            SessionGroup {
                group: group("Eiffel"),
                status: GroupStatus::Cached,
                located: Some(located()),
                loss_history: loss_history(),
                cache_entry: Some("eiffel-0a1b2c3d".into()),
            },
            SessionGroup {
                group: group("Big Ben"),
                status: GroupStatus::Draft,
                located: None,
                loss_history: Vec::new(),
                cache_entry: None,
            },
        ];
        session.chat = vec![ChatTurn {
            user: "Where is the Eiffel Tower?".into(),
            answer: "Paris".into(),
            fired: vec!["eiffel-0a1b2c3d".into()],
            with_cache: true,
            unedited_answer: Some("Berlin".into()),
        }];
        session
    }

    fn names(dir: &Path) -> Vec<String> {
        list_sessions(dir).unwrap().into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = sample("work");
        let path = session.save(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("work").join(SESSION_FILE));
        assert!(session.saved_at > 0);
        assert_eq!(Session::load(dir.path(), "work").unwrap(), session);
        let listed = list_sessions(dir.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].saved_at, listed[0].groups), (Some(session.saved_at), 2));
        assert_eq!((listed[0].damaged.as_ref(), listed[0].has_backup), (None, false));
    }

    #[test]
    fn extreme_fields_survive() {
        let dir = tempfile::tempdir().unwrap();
        let name = "北京 กรุงเทพ القاهرة 🦀";
        let mut session = sample(name);
        let huge = "ไทย汉字🦀".repeat(20_000);
        session.groups[1].group.descriptors = vec![
            descriptor("th", "กรุงเทพมหานคร", &huge, "กรุงเทพฯ"),
            descriptor("ar", "القاهرة", "ما هي عاصمة مصر؟ \u{200f}", "القاهرة"),
            descriptor("xx", "", "", ""),
        ];
        session.chat.push(ChatTurn {
            user: huge.clone(),
            answer: String::new(),
            fired: Vec::new(),
            with_cache: false,
            unedited_answer: None,
        });
        session.save(dir.path()).unwrap();
        assert_eq!(Session::load(dir.path(), name).unwrap(), session);
        assert_eq!(names(dir.path()), vec![name]);
    }

    #[test]
    fn save_keeps_the_previous_file_as_backup() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = sample("work");
        session.save(dir.path()).unwrap();
        let first = session.clone();
        session.chat.clear();
        session.save(dir.path()).unwrap();
        assert_eq!(Session::load_backup(dir.path(), "work").unwrap(), first);
        assert_eq!(Session::load(dir.path(), "work").unwrap(), session);
        let files: Vec<_> = fs::read_dir(dir.path().join("work")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "no temporaries left: {files:?}");
    }

    #[test]
    fn malformed_session_errors_and_the_others_still_list() {
        let dir = tempfile::tempdir().unwrap();
        sample("good").save(dir.path()).unwrap();
        let mut broken = sample("broken");
        broken.save(dir.path()).unwrap();
        broken.save(dir.path()).unwrap();
        let path = dir.path().join("broken").join(SESSION_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        fs::write(dir.path().join("stray.txt"), "not a session").unwrap();
        fs::create_dir(dir.path().join("empty-dir")).unwrap();

        let error = format!("{:#}", Session::load(dir.path(), "broken").unwrap_err());
        assert!(error.contains("session.json") && error.contains("line") && error.contains("column"), "{error}");
        assert!(error.contains("previous save"), "{error}");
        assert_eq!(Session::load_backup(dir.path(), "broken").unwrap().groups.len(), 2);

        let listed = list_sessions(dir.path()).unwrap();
        let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["good", "broken"]);
        assert!(listed[0].damaged.is_none());
        assert!(listed[1].damaged.as_ref().unwrap().contains("line"));
        assert!(listed[1].has_backup);
    }

    /// Session `future` saved in `dir`, its file rewritten as a newer lafn would (version 2): the path
    /// and the text.
    fn future_session(dir: &Path) -> (PathBuf, String) {
        sample("future").save(dir).unwrap();
        let path = dir.join("future").join(SESSION_FILE);
        let newer = fs::read_to_string(&path).unwrap().replacen("\"version\": 1", "\"version\": 2", 1);
        fs::write(&path, &newer).unwrap();
        (path, newer)
    }

    #[test]
    fn newer_version_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let (path, text) = future_session(dir.path());
        fs::write(&path, text.replacen('{', "{\"only_in_v2\": [1, 2],", 1)).unwrap();
        let error = format!("{:#}", Session::load(dir.path(), "future").unwrap_err());
        assert!(error.contains("newer lafn"), "{error}");
        let listed = list_sessions(dir.path()).unwrap();
        assert!(listed[0].damaged.as_ref().unwrap().contains("newer lafn"));
    }

    /// A session whose `session.json` is cut short after two saves, so that its backup is good.
    fn damaged_with_backup(dir: &Path) -> (PathBuf, PathBuf) {
        let mut session = sample("work");
        session.save(dir).unwrap();
        session.save(dir).unwrap();
        let (path, backup) = (dir.join("work").join(SESSION_FILE), dir.join("work").join(BACKUP_FILE));
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        (path, backup)
    }

    #[test]
    fn a_damaged_session_is_never_saved_over() {
        let dir = tempfile::tempdir().unwrap();
        let (path, backup) = damaged_with_backup(dir.path());
        let before = (fs::read(&path).unwrap(), fs::read(&backup).unwrap());
        for _ in 0..2 {
            let error = format!("{:#}", Session::new("work").unwrap().save(dir.path()).unwrap_err());
            assert!(error.contains("not saving over session `work`"), "{error}");
        }
        assert_eq!((fs::read(&path).unwrap(), fs::read(&backup).unwrap()), before, "both files untouched");
    }

    #[test]
    fn a_session_from_a_newer_lafn_is_never_saved_over() {
        let dir = tempfile::tempdir().unwrap();
        let (path, newer) = future_session(dir.path());
        for _ in 0..2 {
            assert!(Session::new("future").unwrap().save(dir.path()).is_err());
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), newer);
        assert!(!backup_exists(dir.path(), "future"), "nothing rotated into the backup");
    }

    #[test]
    fn restoring_the_backup_keeps_the_damaged_file_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (path, backup) = damaged_with_backup(dir.path());
        let damaged = fs::read(&path).unwrap();
        let restored = Session::restore_backup(dir.path(), "work").unwrap();
        assert_eq!(restored.groups.len(), 2);
        assert_eq!(fs::read(&path).unwrap(), fs::read(&backup).unwrap());
        let kept: Vec<_> = fs::read_dir(dir.path().join("work"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".replaced-"))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(fs::read(&kept[0]).unwrap(), damaged);
        // Saving works again and the backup is a good session.
        let mut restored = restored;
        restored.save(dir.path()).unwrap();
        assert_eq!(Session::load_backup(dir.path(), "work").unwrap().groups.len(), 2);
    }

    #[test]
    fn invalid_settings_in_a_session_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = sample("odd");
        session.settings.edit.learning_rate = -1.0;
        fs::create_dir(dir.path().join("odd")).unwrap();
        storage::write_json_atomic(&dir.path().join("odd").join(SESSION_FILE), &session).unwrap();
        let error = format!("{:#}", Session::load(dir.path(), "odd").unwrap_err());
        assert!(error.contains("edit.learning_rate"), "{error}");
    }

    #[test]
    fn older_files_without_new_fields_load() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("old")).unwrap();
        fs::write(dir.path().join("old").join(SESSION_FILE), r#"{"version": 1, "name": "old", "saved_at": 5}"#)
            .unwrap();
        let session = Session::load(dir.path(), "old").unwrap();
        assert_eq!((session.saved_at, session.groups.len()), (5, 0));
        assert_eq!(session.settings, MethodSettings::default());
    }

    #[test]
    fn rename_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        sample("a").save(dir.path()).unwrap();
        sample("b").save(dir.path()).unwrap();
        assert!(rename(dir.path(), "a", "b").is_err(), "never overwrite");
        assert!(rename(dir.path(), "missing", "c").is_err());
        rename(dir.path(), "a", "東京").unwrap();
        assert_eq!(Session::load(dir.path(), "東京").unwrap().name, "東京");
        delete(dir.path(), "b").unwrap();
        assert!(delete(dir.path(), "b").is_err());
        assert_eq!(names(dir.path()), vec!["東京"]);
    }

    #[test]
    fn names_are_validated() {
        let too_long = "x".repeat(MAX_SESSION_NAME_CHARS + 1);
        for bad in ["", "  ", "a/b", "a\\b", "..", ".hidden", "a\nb", " padded", "what?", too_long.as_str()] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
            assert!(Session::new(bad).is_err() && Session::load(Path::new("."), bad).is_err(), "{bad:?}");
        }
        let longest = "猫".repeat(MAX_SESSION_NAME_CHARS);
        for good in ["work", "my session 2", "日本語", "ภาษาไทย", "العربية", "🦀", longest.as_str()]
        {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn missing_dir_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_sessions(&dir.path().join("nope")).unwrap().is_empty());
    }

    #[test]
    fn sessions_dir_follows_the_environment() {
        assert_eq!(sessions_dir_from(None), PathBuf::from("sessions"));
        assert_eq!(sessions_dir_from(Some("".into())), PathBuf::from("sessions"));
        assert_eq!(sessions_dir_from(Some("/elsewhere".into())), PathBuf::from("/elsewhere"));
    }
}
