//! Sessions: the edit groups, their progress and the chat of one piece of work, saved to resume later.
//!
//! Layout: `<sessions dir>/<name>/session.json`, and `session.json.bak`, the previous save, kept so that a
//! damaged `session.json` never loses the work (see [`Session::load_backup`] and
//! [`Session::restore_backup`]). A `session.json` this lafn cannot read is never saved over.

use std::fs;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use crate::method::apply::describe_hit;
use crate::method::cache::{CacheEntry, EditStore};
use crate::method::retrieve::Hit;
use crate::method::{EditGroup, LocatedNeurons, MethodSettings, OptimizeStep};
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

/// Where sessions live unless the caller says otherwise: `$LAFN_SESSIONS_DIR`, else `./sessions`.
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
    /// Edited and stored: an edit is kept only in the cache, so there is no edited-but-uncached state.
    Cached,
}

/// An edit group and how far it has come.
///
/// A cached group's edit lives in its cache entry, which holds its located neurons and loss history too.
/// The session keeps a copy of those two for the groups that have no entry (located only, or an edit
/// cancelled) and for showing a cached group when its cache is not at hand (another model, another
/// machine). The copy is never trusted on its own: on load the entry is checked
/// ([`check_cache_entry`]) and, when it holds the group's edit, its located neurons and loss history
/// replace the copy; when it does not, the group is no longer cached ([`SessionGroup::take_cache_check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionGroup {
    pub group: EditGroup,
    pub status: GroupStatus,
    #[serde(default)]
    pub located: Option<LocatedNeurons>,
    #[serde(default)]
    pub loss_history: Vec<OptimizeStep>,
    /// Id of the group's entry in the edit cache, once cached.
    #[serde(default)]
    pub cache_entry: Option<String>,
}

impl SessionGroup {
    /// Takes the verdict of [`check_cache_entry`] on entry `entry_id`: the entry's located neurons and loss
    /// history when it holds the group's edit; otherwise the group is no longer cached (it keeps its
    /// located neurons, which its facts still match) and the reason is returned, for the user. A verdict
    /// on an entry the group no longer points at (it was edited since the check began) changes nothing.
    pub fn take_cache_check(
        &mut self,
        entry_id: &str,
        verdict: std::result::Result<CacheEntry, String>,
    ) -> Option<String> {
        if self.cache_entry.as_deref() != Some(entry_id) {
            return None;
        }
        match verdict {
            Ok(entry) => {
                self.located = Some(entry.located);
                self.loss_history = entry.loss_history;
                self.status = GroupStatus::Cached;
                None
            }
            Err(reason) => {
                self.cache_entry = None;
                self.status = if self.located.is_some() { GroupStatus::Located } else { GroupStatus::Draft };
                Some(reason)
            }
        }
    }
}

/// The entry `entry_id` of `store` if it holds the edit of `group`: it exists, is readable, was made for
/// this model (the disk cache checks) and for the group's facts ([`EditGroup::same_facts`]).
pub fn check_cache_entry(store: &dyn EditStore, entry_id: &str, group: &EditGroup) -> Result<CacheEntry> {
    let entry = store.get(entry_id)?;
    if !entry.group.same_facts(group) {
        bail!("cache entry `{entry_id}` holds other facts than group `{}` states now (edited since)", group.name);
    }
    Ok(entry)
}

/// A cache entry a chat question named, kept as data and formatted where it is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CacheMention {
    /// `applied`: the entry's update values produced the answer; else the question named its subject
    /// but not its fact (the scope gate stopped it).
    Hit { hit: Hit, applied: bool },
    /// A line as sessions saved before mentions were structured.
    Text(String),
}

impl std::fmt::Display for CacheMention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hit { hit, applied: true } => write!(f, "fired {}", describe_hit(hit)),
            Self::Hit { hit, applied: false } => write!(f, "named but not asked {}", describe_hit(hit)),
            Self::Text(text) => f.write_str(text),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTurn {
    pub user: String,
    pub answer: String,
    /// The cache entries the question named: those applied to produce the answer, then those whose
    /// fact it did not ask.
    #[serde(default)]
    pub fired: Vec<CacheMention>,
    /// The question as the applied edits read it, where that differs from `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_as: Option<String>,
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

/// The names of the sessions in `dir` (directories holding a save or a previous save), each with
/// whether it has a previous save, unsorted. A missing `dir` has none.
fn session_names(dir: &Path) -> Result<Vec<(String, bool)>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot list sessions in {}", dir.display())),
    };
    let mut names = Vec::new();
    for item in listing {
        let item = item.wrap_err_with(|| format!("cannot list sessions in {}", dir.display()))?;
        let has_session = item.path().join(SESSION_FILE).is_file();
        // Other files and directories (and names that are not Unicode) are not sessions.
        let Some(name) = item.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let has_backup = backup_exists(dir, &name);
        if has_session || has_backup {
            names.push((name, has_backup));
        }
    }
    Ok(names)
}

/// The sessions in `dir`, most recently saved first, damaged ones last. A missing `dir` has none.
pub fn list_sessions(dir: &Path) -> Result<Vec<SessionSummary>> {
    let mut summaries = Vec::new();
    for (name, has_backup) in session_names(dir)? {
        let path = dir.join(&name);
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

/// Whether a saved session in `dir` may need cache entry `entry_id`: another session's last save or
/// the one before, or the one before the last save of `current` (its last save is what an edit in
/// progress supersedes; the one before is what restoring the backup brings back). A session that
/// cannot be read might, so it counts: an entry is only removed when no saved session can need it.
pub fn entry_needed_by_saved_sessions(dir: &Path, current: &str, entry_id: &str) -> bool {
    let Ok(sessions) = session_names(dir) else { return true };
    let links = |loaded: Result<Session>| {
        loaded.map_or(true, |session| session.groups.iter().any(|g| g.cache_entry.as_deref() == Some(entry_id)))
    };
    sessions.iter().any(|(name, has_backup)| {
        (name != current && links(Session::load(dir, name))) || (*has_backup && links(Session::load_backup(dir, name)))
    })
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
mod tests;
