//! The edit cache on disk: the [`EditStore`] of chat and the TUI, one directory per model.
//!
//! Layout of a cache directory:
//! ```text
//! index.json                       CacheIndex: model fingerprint + one IndexRow per entry
//! entries/<id>/entry.json          CacheEntry: group, located neurons, settings, loss history
//! entries/<id>/update.safetensors  UpdateValues
//! entries/<id>/scope.safetensors   ScopeKeys (optional: computed and added when missing)
//! subject-index.bin                the retrieval index over the entries (optional: a cache of
//!                                  index.json's subjects and prompts, rebuilt or updated when stale)
//! scope-center.json                the scope encoder's center and each language's other-relation
//!                                  question vectors (optional: computed anew when missing, damaged,
//!                                  or computed another way; the name is older than the vectors)
//! ```
//! The entry directories are the truth; `index.json` is a summary of them that [`EditCache::open`] repairs.
//! An entry is written under a temporary name and renamed into place, so `entries/<id>` is always complete;
//! the index is then replaced atomically. A process killed at any point leaves at worst an entry without an
//! index row, which the next open adds back.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, WrapErr};
use serde::{Deserialize, Serialize};

use super::{is_safe_id, CacheEntry, EditStore, IndexRow, NewEntry, CACHE_FORMAT_VERSION};
use crate::method::edit::UpdateValues;
use crate::method::scope::{SavedEncoder, ScopeKeys, TaughtQuestions};
use crate::storage::{self, NewerFormatError};
use crate::Result;

pub(super) const INDEX_FILE: &str = "index.json";
pub(super) const ENTRIES_DIR: &str = "entries";
pub(super) const ENTRY_FILE: &str = "entry.json";
pub(super) const UPDATE_FILE: &str = "update.safetensors";
pub(super) const SCOPE_FILE: &str = "scope.safetensors";
pub(super) const SAVED_INDEX_FILE: &str = "subject-index.bin";
pub(super) const SAVED_ENCODER_FILE: &str = "scope-center.json";

/// How many entries' update values stay in memory, so chat does not reread files on every query.
pub(super) const RECENT_UPDATES_CAPACITY: usize = 64;

/// The default cache of a model: `<data dir>/cache/<model fingerprint>`, one directory per model so that
/// switching models never mixes their edits.
pub fn default_cache_dir(model_fingerprint: &str) -> Result<PathBuf> {
    if !is_safe_id(model_fingerprint) {
        bail!("model fingerprint `{model_fingerprint}` cannot name a directory");
    }
    Ok(storage::data_dir()?.join("cache").join(model_fingerprint))
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CacheIndex {
    version: u32,
    model_fingerprint: String,
    pub(super) entries: Vec<IndexRow>,
}

/// An open edit cache for one model.
#[derive(Debug)]
pub struct EditCache {
    dir: PathBuf,
    model_fingerprint: String,
    rows: Vec<IndexRow>,
    warnings: Vec<String>,
    recent_updates: RecentUpdates,
}

impl EditCache {
    /// Opens the cache in `dir` for the model with `model_fingerprint`, creating it if missing.
    ///
    /// Refuses a cache made for another model. Repairs what an interrupted write or damage left: a corrupt
    /// or missing index is rebuilt from the entries, entries missing from the index are added, index rows
    /// without an entry are dropped. Damaged entries are skipped; every repair is listed in
    /// [`EditCache::warnings`].
    pub fn open(dir: &Path, model_fingerprint: &str) -> Result<Self> {
        let mut cache = Self {
            dir: dir.to_path_buf(),
            model_fingerprint: model_fingerprint.to_string(),
            rows: Vec::new(),
            warnings: Vec::new(),
            recent_updates: RecentUpdates::default(),
        };
        let index_path = cache.index_path();
        let index = storage::read_versioned_json::<CacheIndex>(&index_path, CACHE_FORMAT_VERSION);
        let stored_rows = match index {
            Ok(index) if index.model_fingerprint != model_fingerprint => bail!(
                "the edit cache {} belongs to the model with fingerprint {}, \
                 not to this model ({model_fingerprint}): choose another cache directory",
                dir.display(),
                index.model_fingerprint
            ),
            Ok(index) => Some(index.entries),
            Err(e) if e.downcast_ref::<NewerFormatError>().is_some() => return Err(e),
            Err(_) if !index_path.exists() => None,
            Err(e) => {
                let warning = format!("{e:#}; rebuilt the index from the entries on disk");
                cache.warnings.push(warning);
                None
            }
        };
        // Only now, with another model's cache refused untouched, is anything created or cleaned.
        let entries_dir = dir.join(ENTRIES_DIR);
        fs::create_dir_all(&entries_dir).wrap_err_with(|| format!("cannot create the cache {}", dir.display()))?;
        storage::remove_stale_temps(dir)?;
        storage::remove_stale_temps(&entries_dir)?;
        cache.reconcile(stored_rows)?;
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn model_fingerprint(&self) -> &str {
        &self.model_fingerprint
    }

    /// The entries, in the order they were cached (entries recovered by `open` last).
    pub fn list(&self) -> &[IndexRow] {
        &self.rows
    }

    /// What [`EditCache::open`] repaired or skipped, for the user to see.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Fails unless a new entry can be written here: checked before an edit is computed, so that a
    /// read-only cache is found in a second, not after the edit.
    pub fn check_writable(&self) -> Result<()> {
        let probe = storage::temp_sibling(&self.dir.join(ENTRIES_DIR).join("write-check"));
        fs::write(&probe, b"")
            .and_then(|()| fs::remove_file(&probe))
            .wrap_err_with(|| format!("the edit cache {} is not writable", self.dir.display()))
    }

    /// Reads an entry's description (not its update values).
    pub fn get(&self, id: &str) -> Result<CacheEntry> {
        self.row(id)?;
        read_entry(&self.entry_dir(id)?, &self.model_fingerprint).wrap_err_with(|| format!("cache entry `{id}`"))
    }

    /// An entry's update values, checked against the model's hidden size; kept in memory after the first read.
    pub fn load_update(&mut self, id: &str, hidden: usize) -> Result<UpdateValues> {
        if let Some(values) = self.recent_updates.get(id, hidden) {
            return Ok(values);
        }
        // Reading the entry refuses one made for another model before its values are used.
        self.get(id)?;
        let values = UpdateValues::load(&self.entry_dir(id)?.join(UPDATE_FILE), hidden)
            .wrap_err_with(|| format!("cache entry `{id}`"))?;
        self.recent_updates.put(id, hidden, values.clone());
        Ok(values)
    }

    /// Checks an entry without reading its update values: its `entry.json` (made for this model), and its
    /// update file's header against the model's hidden size and the file's length (see
    /// [`UpdateValues::check_file`]).
    pub fn check(&self, id: &str, hidden: usize) -> Result<()> {
        self.get(id)?;
        UpdateValues::check_file(&self.entry_dir(id)?.join(UPDATE_FILE), hidden)
            .wrap_err_with(|| format!("cache entry `{id}`"))
    }

    /// Deletes an entry from disk and the index.
    pub fn remove(&mut self, id: &str) -> Result<()> {
        self.row(id)?;
        // Out of the way first: an entry directory left behind would be added back by the next open.
        let retired = self.retire(&self.entry_dir(id)?)?;
        self.rows.retain(|row| row.id != id);
        self.recent_updates.forget(id);
        self.write_index()?;
        remove_retired(retired)
    }

    /// Writes an entry's files and moves them into place; the index lists it once
    /// [`EditCache::commit_stored`] has run (so that many entries cost one index write).
    pub(super) fn store_entry(&mut self, edit: NewEntry<'_>) -> Result<StoredEntry> {
        let mut entry = CacheEntry::new(&edit, &self.model_fingerprint)?;
        let id = entry.id.clone();
        // The same group edited again keeps what the user taught the gate about its questions (an
        // unreadable earlier entry has nothing to keep).
        if let Ok(previous) = self.row(&id).and_then(|_| self.get(&id)) {
            entry.taught = previous.taught;
        }
        let final_dir = self.entry_dir(&id)?;
        let staging_dir = storage::temp_sibling(&final_dir);
        let replaced = write_entry_files(&staging_dir, &entry, edit.update, edit.scope_keys)
            .and_then(|()| self.move_into_place(&staging_dir, &final_dir))
            .inspect_err(|_| {
                // Nothing points at the staging directory; don't leave it for the stale-temp sweep.
                let _ = fs::remove_dir_all(&staging_dir);
            })
            .wrap_err_with(|| format!("cannot store cache entry `{id}` in {}", self.dir.display()))?;
        self.recent_updates.forget(&id);
        Ok(StoredEntry { row: IndexRow::from_entry(&entry), replaced })
    }

    /// Lists stored entries in the index (one write for all), then deletes the entries they replaced.
    pub(super) fn commit_stored(&mut self, stored: Vec<StoredEntry>) -> Result<()> {
        let ids: HashSet<&str> = stored.iter().map(|s| s.row.id.as_str()).collect();
        self.rows.retain(|row| !ids.contains(row.id.as_str()));
        let mut replaced = Vec::new();
        for entry in stored {
            self.rows.push(entry.row);
            replaced.extend(entry.replaced);
        }
        self.write_index()?;
        replaced.into_iter().try_for_each(|dir| remove_retired(Some(dir)))
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    fn entry_dir(&self, id: &str) -> Result<PathBuf> {
        // Ids reach us from files people can edit; never let one point outside the cache.
        if !is_safe_id(id) {
            bail!("`{id}` is not a valid cache entry id");
        }
        Ok(self.dir.join(ENTRIES_DIR).join(id))
    }

    /// Makes the index match the entry directories: keeps rows whose entry exists, adds readable entries
    /// that have no row, and writes the index if anything changed.
    fn reconcile(&mut self, stored_rows: Option<Vec<IndexRow>>) -> Result<()> {
        let entries_dir = self.dir.join(ENTRIES_DIR);
        let mut ids_on_disk = Vec::new();
        for item in fs::read_dir(&entries_dir).wrap_err_with(|| format!("cannot list {}", entries_dir.display()))? {
            let item = item.wrap_err_with(|| format!("cannot list {}", entries_dir.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if is_safe_id(&name) && item.path().is_dir() {
                ids_on_disk.push(name);
            }
        }
        let index_was_valid = stored_rows.is_some();
        let stored_rows = stored_rows.unwrap_or_default();
        let on_disk: HashSet<&str> = ids_on_disk.iter().map(String::as_str).collect();
        let mut rows = Vec::with_capacity(ids_on_disk.len());
        for row in &stored_rows {
            if on_disk.contains(row.id.as_str()) {
                rows.push(row.clone());
            } else {
                self.warnings
                    .push(format!("cache entry `{}` is listed in the index but missing on disk; dropped it", row.id));
            }
        }
        let listed: HashSet<String> = rows.iter().map(|row| row.id.clone()).collect();
        let mut recovered = Vec::new();
        for id in ids_on_disk {
            if listed.contains(&id) {
                continue;
            }
            let dir = self.entry_dir(&id)?;
            let readable = read_entry(&dir, &self.model_fingerprint).and_then(|entry| {
                if dir.join(UPDATE_FILE).is_file() {
                    Ok(entry)
                } else {
                    bail!("{} is missing", dir.join(UPDATE_FILE).display())
                }
            });
            match readable {
                Ok(entry) => recovered.push(IndexRow { id, ..IndexRow::from_entry(&entry) }),
                Err(e) => self.warnings.push(format!("skipped cache entry `{id}`: {e:#}")),
            }
        }
        recovered.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        rows.extend(recovered);
        let changed = !index_was_valid || rows != stored_rows;
        self.rows = rows;
        if changed {
            self.write_index()?;
        }
        Ok(())
    }

    fn write_index(&self) -> Result<()> {
        storage::write_json_atomic(
            &self.index_path(),
            &CacheIndex {
                version: CACHE_FORMAT_VERSION,
                model_fingerprint: self.model_fingerprint.clone(),
                entries: self.rows.clone(),
            },
        )
    }

    /// Puts a fully written entry directory at `final_dir`; returns the entry it replaced, moved aside.
    fn move_into_place(&self, staging_dir: &Path, final_dir: &Path) -> Result<Option<PathBuf>> {
        let replaced = self.retire(final_dir)?;
        if let Err(e) = fs::rename(staging_dir, final_dir) {
            if let Some(previous) = &replaced {
                // Put the old entry back: the index still lists it.
                let _ = fs::rename(previous, final_dir);
            }
            return Err(e).wrap_err_with(|| format!("cannot move the new entry to {}", final_dir.display()));
        }
        storage::sync_dir(&self.dir.join(ENTRIES_DIR))?;
        Ok(replaced)
    }

    /// Renames an entry directory, if present, to a temporary name, so that it disappears atomically.
    fn retire(&self, entry_dir: &Path) -> Result<Option<PathBuf>> {
        if !entry_dir.exists() {
            return Ok(None);
        }
        let retired = storage::temp_sibling(entry_dir);
        fs::rename(entry_dir, &retired).wrap_err_with(|| format!("cannot move {} aside", entry_dir.display()))?;
        Ok(Some(retired))
    }
}

/// An entry on disk that the index does not list yet.
pub(super) struct StoredEntry {
    row: IndexRow,
    /// The earlier entry of the same group, moved aside until the index no longer needs it.
    replaced: Option<PathBuf>,
}

/// The methods the CLI calls on the cache itself (`lafn cache`, `lafn chat`) are inherent, so it needs
/// no trait in scope; the others exist only here.
impl EditStore for EditCache {
    fn insert(&mut self, edit: NewEntry<'_>) -> Result<String> {
        let stored = self.store_entry(edit)?;
        let id = stored.row.id.clone();
        self.commit_stored(vec![stored])?;
        Ok(id)
    }

    fn remove(&mut self, id: &str) -> Result<()> {
        EditCache::remove(self, id)
    }

    fn list(&self) -> &[IndexRow] {
        &self.rows
    }

    fn get(&self, id: &str) -> Result<CacheEntry> {
        EditCache::get(self, id)
    }

    fn load_update(&mut self, id: &str, hidden: usize) -> Result<UpdateValues> {
        EditCache::load_update(self, id, hidden)
    }

    fn load_scope_keys(&self, id: &str, hidden: usize) -> Result<Option<ScopeKeys>> {
        self.row(id)?;
        let path = self.entry_dir(id)?.join(SCOPE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        ScopeKeys::load(&path, hidden).map(Some).wrap_err_with(|| format!("cache entry `{id}`"))
    }

    fn store_scope_keys(&mut self, id: &str, keys: &ScopeKeys) -> Result<()> {
        self.row(id)?;
        let path = self.entry_dir(id)?.join(SCOPE_FILE);
        storage::write_atomic_with(&path, |temp| keys.save(temp))
            .wrap_err_with(|| format!("cannot store the scope keys of cache entry `{id}`"))
    }

    fn store_taught(&mut self, id: &str, taught: &TaughtQuestions) -> Result<()> {
        let mut entry = self.get(id)?;
        entry.taught = taught.clone();
        storage::write_json_atomic(&self.entry_dir(id)?.join(ENTRY_FILE), &entry)
            .wrap_err_with(|| format!("cannot store what was taught about cache entry `{id}`"))
    }

    fn check_writable(&self) -> Result<()> {
        EditCache::check_writable(self)
    }

    fn describe(&self) -> String {
        format!("the edit cache {}", self.dir.display())
    }

    fn load_saved_index(&self) -> Option<Vec<u8>> {
        fs::read(self.dir.join(SAVED_INDEX_FILE)).ok()
    }

    fn save_index(&self, bytes: &[u8]) -> Result<()> {
        storage::write_atomic(&self.dir.join(SAVED_INDEX_FILE), bytes)
    }

    fn load_saved_encoder(&self) -> Option<SavedEncoder> {
        serde_json::from_slice(&fs::read(self.dir.join(SAVED_ENCODER_FILE)).ok()?).ok()
    }

    fn save_encoder(&self, saved: &SavedEncoder) -> Result<()> {
        storage::write_atomic(&self.dir.join(SAVED_ENCODER_FILE), &serde_json::to_vec(saved)?)
    }
}

/// Deletes a directory moved aside by `retire` (once the index no longer needs it).
fn remove_retired(retired: Option<PathBuf>) -> Result<()> {
    match retired {
        Some(dir) => fs::remove_dir_all(&dir).wrap_err_with(|| format!("cannot delete {}", dir.display())),
        None => Ok(()),
    }
}

fn write_entry_files(dir: &Path, entry: &CacheEntry, update: &UpdateValues, scope_keys: &ScopeKeys) -> Result<()> {
    fs::create_dir(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    let update_path = dir.join(UPDATE_FILE);
    update.save(&update_path)?;
    let scope_path = dir.join(SCOPE_FILE);
    scope_keys.save(&scope_path)?;
    // The safetensors writers do not fsync; the rename into place must not outrun the data.
    for path in [&update_path, &scope_path] {
        fs::File::open(path)
            .and_then(|file| file.sync_all())
            .wrap_err_with(|| format!("cannot flush {}", path.display()))?;
    }
    storage::write_json_atomic(&dir.join(ENTRY_FILE), entry)
}

fn read_entry(dir: &Path, model_fingerprint: &str) -> Result<CacheEntry> {
    let mut entry: CacheEntry = storage::read_versioned_json(&dir.join(ENTRY_FILE), CACHE_FORMAT_VERSION)?;
    if entry.version < 2 {
        // Written before the setting existed: its update values were trained without the line break.
        entry.settings.edit.end_with_line_break = false;
    }
    if entry.model_fingerprint != model_fingerprint {
        bail!(
            "made for the model with fingerprint {}, not for this model ({model_fingerprint})",
            entry.model_fingerprint
        );
    }
    Ok(entry)
}

/// The most recently used entries' update values (least recently used evicted first).
#[derive(Debug, Default)]
pub(super) struct RecentUpdates {
    /// Most recently used last.
    items: Vec<RecentUpdate>,
}

#[derive(Debug)]
struct RecentUpdate {
    id: String,
    hidden: usize,
    values: UpdateValues,
}

impl RecentUpdates {
    pub(super) fn get(&mut self, id: &str, hidden: usize) -> Option<UpdateValues> {
        let position = self.items.iter().position(|item| item.id == id && item.hidden == hidden)?;
        let item = self.items.remove(position);
        let values = item.values.clone();
        self.items.push(item);
        Some(values)
    }

    pub(super) fn put(&mut self, id: &str, hidden: usize, values: UpdateValues) {
        self.forget(id);
        if self.items.len() == RECENT_UPDATES_CAPACITY {
            self.items.remove(0);
        }
        self.items.push(RecentUpdate { id: id.to_string(), hidden, values });
    }

    fn forget(&mut self, id: &str) {
        self.items.retain(|item| item.id != id);
    }
}
