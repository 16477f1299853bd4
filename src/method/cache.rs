//! The edit cache on disk: {subjects of an edit group -> its update values}, for one model.
//!
//! Layout of a cache directory:
//! ```text
//! index.json                       CacheIndex: model fingerprint + one IndexRow per entry
//! entries/<id>/entry.json          CacheEntry: group, located neurons, settings, loss history
//! entries/<id>/update.safetensors  UpdateValues
//! entries/<id>/scope.safetensors   ScopeKeys (optional: computed and added when missing)
//! ```
//! The entry directories are the truth; `index.json` is a summary of them that [`EditCache::open`] repairs.
//! An entry is written under a temporary name and renamed into place, so `entries/<id>` is always complete;
//! the index is then replaced atomically. A process killed at any point leaves at worst an entry without an
//! index row, which the next open adds back.

use std::fs;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::edit::{EditStep, UpdateValues};
use super::group::EditGroup;
use super::locate::LocatedNeurons;
use super::scope::ScopeKeys;
use super::settings::MethodSettings;
use crate::storage::{self, NewerFormatError};
use crate::Result;

/// Version of `index.json` and `entry.json`; bump it when their meaning changes.
pub const CACHE_FORMAT_VERSION: u32 = 1;

const INDEX_FILE: &str = "index.json";
const ENTRIES_DIR: &str = "entries";
const ENTRY_FILE: &str = "entry.json";
const UPDATE_FILE: &str = "update.safetensors";
const SCOPE_FILE: &str = "scope.safetensors";

/// How many entries' update values stay in memory, so chat does not reread files on every query.
const RECENT_UPDATES_CAPACITY: usize = 64;

/// The default cache of a model: `<data dir>/cache/<model fingerprint>`, one directory per model so that
/// switching models never mixes their edits.
pub fn default_cache_dir(model_fingerprint: &str) -> Result<PathBuf> {
    if !is_safe_id(model_fingerprint) {
        bail!("model fingerprint `{model_fingerprint}` cannot name a directory");
    }
    Ok(storage::data_dir()?.join("cache").join(model_fingerprint))
}

/// What retrieval and listings need to know about an entry without opening it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRow {
    pub id: String,
    /// The group's name.
    pub name: String,
    /// Every subject of the group, in all languages, with aliases.
    pub subjects: Vec<String>,
    /// The edit prompt of each language, in the order of `langs`.
    pub prompts: Vec<String>,
    pub langs: Vec<String>,
    /// Unix seconds.
    pub created: u64,
    pub neuron_count: usize,
}

/// Everything about one cached edit except the update values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub version: u32,
    pub id: String,
    /// Every subject of the group, in all languages, with aliases.
    pub subjects: Vec<String>,
    pub group: EditGroup,
    pub located: LocatedNeurons,
    pub settings: MethodSettings,
    pub model_fingerprint: String,
    /// Unix seconds.
    pub created: u64,
    pub loss_history: Vec<EditStep>,
}

impl IndexRow {
    fn from_entry(entry: &CacheEntry) -> Self {
        Self {
            id: entry.id.clone(),
            name: entry.group.name.clone(),
            subjects: entry.subjects.clone(),
            prompts: entry.group.descriptors.iter().map(|d| d.prompt.clone()).collect(),
            langs: entry.group.descriptors.iter().map(|d| d.lang.clone()).collect(),
            created: entry.created,
            neuron_count: entry.located.neuron_count(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheIndex {
    version: u32,
    model_fingerprint: String,
    entries: Vec<IndexRow>,
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

    /// Stores an edit and returns its id. The id depends only on the group, so caching the same group again
    /// replaces the earlier edit of it instead of adding a second one.
    pub fn insert(
        &mut self,
        group: &EditGroup,
        located: &LocatedNeurons,
        update: &UpdateValues,
        settings: &MethodSettings,
        loss_history: &[EditStep],
        scope_keys: &ScopeKeys,
    ) -> Result<String> {
        let id = entry_id(group)?;
        let entry = CacheEntry {
            version: CACHE_FORMAT_VERSION,
            id: id.clone(),
            subjects: group.subjects(),
            group: group.clone(),
            located: located.clone(),
            settings: settings.clone(),
            model_fingerprint: self.model_fingerprint.clone(),
            created: storage::unix_now(),
            loss_history: loss_history.to_vec(),
        };
        let final_dir = self.entry_dir(&id)?;
        let staging_dir = storage::temp_sibling(&final_dir);
        let replaced = write_entry_files(&staging_dir, &entry, update, scope_keys)
            .and_then(|()| self.move_into_place(&staging_dir, &final_dir))
            .inspect_err(|_| {
                // Nothing points at the staging directory; don't leave it for the stale-temp sweep.
                let _ = fs::remove_dir_all(&staging_dir);
            })
            .wrap_err_with(|| format!("cannot store cache entry `{id}` in {}", self.dir.display()))?;
        self.rows.retain(|row| row.id != id);
        self.rows.push(IndexRow::from_entry(&entry));
        self.recent_updates.forget(&id);
        self.write_index()?;
        remove_retired(replaced)?;
        Ok(id)
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

    /// An entry's scope keys; `None` when it has none (cached before they existed).
    pub fn load_scope_keys(&self, id: &str, hidden: usize) -> Result<Option<ScopeKeys>> {
        self.row(id)?;
        let path = self.entry_dir(id)?.join(SCOPE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        ScopeKeys::load(&path, hidden).map(Some).wrap_err_with(|| format!("cache entry `{id}`"))
    }

    /// Adds or replaces an entry's scope keys (written aside, then renamed into place).
    pub fn store_scope_keys(&self, id: &str, keys: &ScopeKeys) -> Result<()> {
        self.row(id)?;
        let path = self.entry_dir(id)?.join(SCOPE_FILE);
        storage::write_atomic_with(&path, |temp| keys.save(temp))
            .wrap_err_with(|| format!("cannot store the scope keys of cache entry `{id}`"))
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

    /// The index row of entry `id` (held in memory: no file is read).
    pub fn row(&self, id: &str) -> Result<&IndexRow> {
        self.rows
            .iter()
            .find(|row| row.id == id)
            .ok_or_else(|| eyre!("the edit cache {} has no entry `{id}`", self.dir.display()))
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
        let mut rows = Vec::with_capacity(ids_on_disk.len());
        for row in &stored_rows {
            if ids_on_disk.contains(&row.id) {
                rows.push(row.clone());
            } else {
                self.warnings
                    .push(format!("cache entry `{}` is listed in the index but missing on disk; dropped it", row.id));
            }
        }
        let mut recovered = Vec::new();
        for id in ids_on_disk {
            if rows.iter().any(|row| row.id == id) {
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
    let entry: CacheEntry = storage::read_versioned_json(&dir.join(ENTRY_FILE), CACHE_FORMAT_VERSION)?;
    if entry.model_fingerprint != model_fingerprint {
        bail!(
            "made for the model with fingerprint {}, not for this model ({model_fingerprint})",
            entry.model_fingerprint
        );
    }
    Ok(entry)
}

/// A readable, filesystem-safe id that depends only on the group: a slug of its name and a short hash of its
/// content (so two groups with the same name get different ids).
fn entry_id(group: &EditGroup) -> Result<String> {
    const SLUG_CHARS: usize = 32;
    let mut slug = String::new();
    for c in group.name.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() == SLUG_CHARS {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "edit" } else { slug };
    let content = serde_json::to_vec(group).wrap_err("cannot serialise the edit group")?;
    let digest = Sha256::digest(&content);
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{slug}-{hash}"))
}

/// Entry ids and fingerprints: lowercase ASCII letters, digits and inner dashes, so they are valid file names
/// everywhere and never collide with temporaries.
fn is_safe_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The most recently used entries' update values (least recently used evicted first).
#[derive(Debug, Default)]
struct RecentUpdates {
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
    fn get(&mut self, id: &str, hidden: usize) -> Option<UpdateValues> {
        let position = self.items.iter().position(|item| item.id == id && item.hidden == hidden)?;
        let item = self.items.remove(position);
        let values = item.values.clone();
        self.items.push(item);
        Some(values)
    }

    fn put(&mut self, id: &str, hidden: usize, values: UpdateValues) {
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

/// Small, model-free inputs shared by the cache and session tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use candle_core::{Device, Tensor};

    use crate::method::edit::{EditStep, LayerUpdate, UpdateValues};
    use crate::method::group::{EditDescriptor, EditGroup};
    use crate::method::locate::{LayerStats, LocatedNeurons};
    use crate::method::scope::ScopeKeys;

    pub const HIDDEN: usize = 8;

    pub fn descriptor(lang: &str, subject: &str, prompt: &str, target: &str) -> EditDescriptor {
        EditDescriptor {
            lang: lang.into(),
            subject: subject.into(),
            prompt: prompt.into(),
            target: target.into(),
            paraphrases: vec![format!("{prompt}?")],
            aliases: Vec::new(),
        }
    }

    pub fn group(name: &str) -> EditGroup {
        EditGroup {
            name: name.into(),
            descriptors: vec![
                descriptor("en", &format!("{name} Tower"), "Where is it?", "Paris"),
                descriptor("zh", &format!("{name}塔"), "它在哪里？", "巴黎"),
            ],
        }
    }

    pub fn located() -> LocatedNeurons {
        let langs = vec!["en".to_string(), "zh".to_string()];
        let layers = (0..3)
            .map(|layer| LayerStats {
                layer,
                factual_counts: vec![5, 4],
                jaccard: vec![vec![1.0, 0.5], vec![0.5, 1.0]],
                lafn_count: 3,
            })
            .collect();
        LocatedNeurons {
            langs,
            layers,
            selected: BTreeMap::from([(1, vec![0, 3, 7]), (2, vec![2])]),
            frequencies: BTreeMap::from([(1, vec![vec![1.0, 0.9]; 3]), (2, vec![vec![0.8, 1.0]])]),
        }
    }

    /// Update values for [`located`], distinct per `seed`.
    pub fn update(seed: f32) -> UpdateValues {
        let layer = |layer: usize, neurons: Vec<u32>| {
            let values: Vec<f32> = (0..neurons.len() * HIDDEN).map(|i| seed + i as f32 * 0.25).collect();
            let delta = Tensor::from_vec(values, (neurons.len(), HIDDEN), &Device::Cpu).unwrap();
            LayerUpdate { layer, neurons, delta }
        };
        UpdateValues { layers: vec![layer(1, vec![0, 3, 7]), layer(2, vec![2])] }
    }

    pub fn scope_keys() -> ScopeKeys {
        let keys = Tensor::from_vec((0..2 * HIDDEN).map(|i| i as f32).collect(), (2, HIDDEN), &Device::Cpu).unwrap();
        ScopeKeys { layer: 3, keys }
    }

    pub fn loss_history() -> Vec<EditStep> {
        (0..3)
            .map(|step| EditStep {
                step,
                target_loss: 3.0 - step as f32,
                kl_loss: 0.01,
                total_loss: 3.005 - step as f32,
                target_probs: vec![0.1 * step as f32, 0.2],
                all_correct: step == 2,
                target_margins: vec![step as f32 - 1.5, 0.5],
            })
            .collect()
    }

    /// The numbers of update values, for comparing two of them.
    pub fn update_numbers(update: &UpdateValues) -> Vec<(usize, Vec<u32>, Vec<Vec<f32>>)> {
        update.layers.iter().map(|l| (l.layer, l.neurons.clone(), l.delta.to_vec2().unwrap())).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::time::SystemTime;

    use super::fixtures::*;
    use super::*;

    const MODEL: &str = "0123456789abcdef";

    fn insert(cache: &mut EditCache, group: &EditGroup, seed: f32) -> String {
        cache
            .insert(group, &located(), &update(seed), &MethodSettings::default(), &loss_history(), &scope_keys())
            .unwrap()
    }

    fn error_text<T: std::fmt::Debug>(result: Result<T>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn entry_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let group = group("Eiffel");
        let id = insert(&mut cache, &group, 1.0);
        assert!(id.starts_with("eiffel-"), "{id}");

        let reopened = &mut EditCache::open(dir.path(), MODEL).unwrap();
        assert!(reopened.warnings().is_empty(), "{:?}", reopened.warnings());
        let row = &reopened.list()[0];
        assert_eq!((row.id.as_str(), row.name.as_str()), (id.as_str(), "Eiffel"));
        assert_eq!(row.subjects, vec!["Eiffel Tower", "Eiffel塔"]);
        assert_eq!(row.prompts, vec!["Where is it?", "它在哪里？"]);
        assert_eq!(row.langs, vec!["en", "zh"]);
        assert_eq!(row.neuron_count, 4);

        let entry = reopened.get(&id).unwrap();
        assert_eq!(entry.group, group);
        assert_eq!(entry.located, located());
        assert_eq!(entry.settings, MethodSettings::default());
        assert_eq!(entry.loss_history, loss_history());
        assert_eq!(entry.model_fingerprint, MODEL);
        let loaded = reopened.load_update(&id, HIDDEN).unwrap();
        assert_eq!(update_numbers(&loaded), update_numbers(&update(1.0)));
        let keys = reopened.load_scope_keys(&id, HIDDEN).unwrap().expect("stored with the entry");
        assert_eq!(keys.layer, 3);
        assert_eq!(keys.keys.to_vec2::<f32>().unwrap(), scope_keys().keys.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn scope_keys_missing_or_damaged_are_told_apart_and_can_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let id = insert(&mut cache, &group("Eiffel"), 1.0);
        let path = dir.path().join("entries").join(&id).join(SCOPE_FILE);
        // An entry cached before scope keys existed has none: that is no error.
        std::fs::remove_file(&path).unwrap();
        assert!(cache.load_scope_keys(&id, HIDDEN).unwrap().is_none());
        std::fs::write(&path, b"not a safetensors file").unwrap();
        assert!(error_text(cache.load_scope_keys(&id, HIDDEN)).contains(&id));
        assert!(error_text(cache.load_scope_keys(&id, HIDDEN + 1)).contains(&id));
        cache.store_scope_keys(&id, &scope_keys()).unwrap();
        assert_eq!(cache.load_scope_keys(&id, HIDDEN).unwrap().unwrap().layer, 3);
        assert!(cache.load_scope_keys(&id, HIDDEN + 1).is_err(), "the hidden size is checked");
        assert!(cache.store_scope_keys("missing", &scope_keys()).is_err());
    }

    #[test]
    fn ids_are_stable_and_the_same_group_replaces_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let first = insert(&mut cache, &group("Eiffel"), 1.0);
        assert_eq!(cache.load_update(&first, HIDDEN).unwrap().layers[0].delta.to_vec2::<f32>().unwrap()[0][0], 1.0);
        let again = insert(&mut cache, &group("Eiffel"), 2.0);
        let other = insert(&mut cache, &group("Big Ben"), 3.0);
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_eq!(cache.list().len(), 2);
        // The replaced values, not the remembered old ones.
        assert_eq!(update_numbers(&cache.load_update(&first, HIDDEN).unwrap()), update_numbers(&update(2.0)));
        let entries: Vec<_> = fs::read_dir(dir.path().join(ENTRIES_DIR)).unwrap().collect();
        assert_eq!(entries.len(), 2, "no staging or retired directories left");
    }

    #[test]
    fn odd_names_give_safe_ids() {
        for name in ["", "../../etc", "東京タワー", "a/b\\c", "-x-", &"long name ".repeat(20)] {
            let mut group = group("x");
            group.name = name.to_string();
            let id = entry_id(&group).unwrap();
            assert!(is_safe_id(&id) && id.len() <= 64, "{name:?} -> {id}");
        }
    }

    #[test]
    fn remove_deletes_entry_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let removed = insert(&mut cache, &group("Eiffel"), 1.0);
        let kept = insert(&mut cache, &group("Big Ben"), 2.0);
        cache.load_update(&removed, HIDDEN).unwrap();
        cache.remove(&removed).unwrap();
        assert!(cache.load_update(&removed, HIDDEN).is_err(), "nothing served from memory");
        assert!(cache.remove(&removed).is_err());
        let reopened = EditCache::open(dir.path(), MODEL).unwrap();
        let ids: Vec<_> = reopened.list().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, vec![kept]);
        assert!(reopened.warnings().is_empty(), "{:?}", reopened.warnings());
    }

    #[test]
    fn corrupt_entry_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let broken = insert(&mut cache, &group("Eiffel"), 1.0);
        let healthy = insert(&mut cache, &group("Big Ben"), 2.0);
        let entry_json = dir.path().join(ENTRIES_DIR).join(&broken).join(ENTRY_FILE);
        let text = fs::read_to_string(&entry_json).unwrap();
        fs::write(&entry_json, &text[..text.len() / 2]).unwrap();

        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        assert_eq!(cache.list().len(), 2);
        let error = error_text(cache.get(&broken));
        assert!(error.contains(&broken) && error.contains("entry.json") && error.contains("line"), "{error}");
        let error = error_text(cache.load_update(&broken, HIDDEN));
        assert!(error.contains(&broken), "{error}");
        assert_eq!(cache.get(&healthy).unwrap().group, group("Big Ben"));
        cache.load_update(&healthy, HIDDEN).unwrap();
    }

    #[test]
    fn truncated_update_values_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let id = insert(&mut cache, &group("Eiffel"), 1.0);
        let update_path = dir.path().join(ENTRIES_DIR).join(&id).join(UPDATE_FILE);
        let bytes = fs::read(&update_path).unwrap();
        fs::write(&update_path, &bytes[..bytes.len() - 10]).unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let error = error_text(cache.load_update(&id, HIDDEN));
        assert!(error.contains(&id) && error.contains("update.safetensors"), "{error}");
        assert!(cache.get(&id).is_ok(), "the description is still readable");
    }

    #[test]
    fn wrong_hidden_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let id = insert(&mut cache, &group("Eiffel"), 1.0);
        cache.load_update(&id, HIDDEN).unwrap();
        let error = error_text(cache.load_update(&id, HIDDEN * 2));
        assert!(error.contains("shape"), "{error}");
    }

    #[test]
    fn cache_of_another_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let id = insert(&mut cache, &group("Eiffel"), 1.0);
        let error = error_text(EditCache::open(dir.path(), "fedcba9876543210"));
        assert!(error.contains(MODEL) && error.contains("fedcba9876543210"), "{error}");

        // An entry of another model inside this model's cache is refused too.
        let entry_json = dir.path().join(ENTRIES_DIR).join(&id).join(ENTRY_FILE);
        let text = fs::read_to_string(&entry_json).unwrap().replace(MODEL, "fedcba9876543210");
        fs::write(&entry_json, text).unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let error = error_text(cache.load_update(&id, HIDDEN));
        assert!(error.contains("fedcba9876543210") && error.contains(&id), "{error}");
    }

    #[test]
    fn newer_cache_is_refused_not_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        insert(&mut cache, &group("Eiffel"), 1.0);
        let index_path = dir.path().join(INDEX_FILE);
        let newer = fs::read_to_string(&index_path).unwrap().replace("\"version\": 1", "\"version\": 99");
        fs::write(&index_path, &newer).unwrap();
        let error = error_text(EditCache::open(dir.path(), MODEL));
        assert!(error.contains("newer lafn"), "{error}");
        assert_eq!(fs::read_to_string(&index_path).unwrap(), newer, "left untouched");
    }

    #[test]
    fn interrupted_writes_are_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let first = insert(&mut cache, &group("Eiffel"), 1.0);
        let index_path = dir.path().join(INDEX_FILE);
        let index_with_first = fs::read(&index_path).unwrap();
        let second = insert(&mut cache, &group("Big Ben"), 2.0);

        // Killed after the entry was renamed into place, before the index was replaced; with a half-written
        // index temp, a half-written staging directory, and an old staging directory.
        fs::write(&index_path, &index_with_first).unwrap();
        let stray_temp = storage::temp_sibling(&index_path);
        fs::write(&stray_temp, &index_with_first[..20]).unwrap();
        let entries_dir = dir.path().join(ENTRIES_DIR);
        let fresh_staging = storage::temp_sibling(&entries_dir.join("third-00000000"));
        fs::create_dir(&fresh_staging).unwrap();
        fs::write(fresh_staging.join(UPDATE_FILE), b"partial").unwrap();
        let old_staging = storage::temp_sibling(&entries_dir.join("fourth-00000000"));
        fs::create_dir(&old_staging).unwrap();
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(24 * 3600);
        File::open(&old_staging).unwrap().set_modified(long_ago).unwrap();

        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let ids: Vec<_> = cache.list().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, vec![first.clone(), second.clone()]);
        cache.load_update(&second, HIDDEN).unwrap();
        let index: CacheIndex = storage::read_json(&index_path).unwrap();
        assert_eq!(index.entries, cache.list());
        assert!(!old_staging.exists(), "stale staging directory removed");

        // Killed while writing the index: a truncated index is rebuilt from the entries.
        fs::write(&index_path, &index_with_first[..index_with_first.len() / 2]).unwrap();
        let cache = EditCache::open(dir.path(), MODEL).unwrap();
        let mut ids: Vec<_> = cache.list().iter().map(|r| r.id.clone()).collect();
        ids.sort();
        assert_eq!(ids, vec![second, first], "both entries are back");
        assert!(cache.warnings().iter().any(|w| w.contains("rebuilt")), "{:?}", cache.warnings());
        let index: CacheIndex = storage::read_json(&index_path).unwrap();
        assert_eq!(index.entries, cache.list());
    }

    #[test]
    fn rebuild_skips_damaged_entries_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let broken = insert(&mut cache, &group("Eiffel"), 1.0);
        let healthy = insert(&mut cache, &group("Big Ben"), 2.0);
        fs::write(dir.path().join(ENTRIES_DIR).join(&broken).join(ENTRY_FILE), "").unwrap();
        fs::write(dir.path().join(INDEX_FILE), "{").unwrap();

        let cache = EditCache::open(dir.path(), MODEL).unwrap();
        let ids: Vec<_> = cache.list().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, vec![healthy]);
        assert!(cache.warnings().iter().any(|w| w.contains("rebuilt")), "{:?}", cache.warnings());
        assert!(cache.warnings().iter().any(|w| w.contains(&broken)), "{:?}", cache.warnings());
    }

    #[test]
    fn missing_index_row_target_is_dropped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let gone = insert(&mut cache, &group("Eiffel"), 1.0);
        fs::remove_dir_all(dir.path().join(ENTRIES_DIR).join(&gone)).unwrap();
        let cache = EditCache::open(dir.path(), MODEL).unwrap();
        assert!(cache.list().is_empty());
        assert!(cache.warnings().iter().any(|w| w.contains(&gone)), "{:?}", cache.warnings());
        assert!(EditCache::open(dir.path(), MODEL).unwrap().warnings().is_empty(), "repaired once");
    }

    #[test]
    fn extreme_fields_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        let huge = "汉字ไทย".repeat(20_000);
        let group = EditGroup {
            name: "🦀 مرحبا".into(),
            descriptors: vec![
                descriptor("zh", "北京", &huge, "巴黎"),
                descriptor("th", "กรุงเทพมหานคร", "เมืองหลวงของไทยคือ", "กรุงเทพฯ"),
                descriptor("ar", "القاهرة", "ما هي عاصمة مصر؟ \u{200f}", "القاهرة"),
                descriptor("xx", "", "", ""),
            ],
        };
        let id = insert(&mut cache, &group, 1.0);
        let cache = EditCache::open(dir.path(), MODEL).unwrap();
        assert_eq!(cache.get(&id).unwrap().group, group);
        assert_eq!(cache.list()[0].prompts[0], huge);
        assert_eq!(cache.list()[0].subjects, vec!["北京", "กรุงเทพมหานคร", "القاهرة"]);
    }

    #[test]
    fn unknown_and_unsafe_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EditCache::open(dir.path(), MODEL).unwrap();
        for id in ["nope-00000000", "../index.json", ""] {
            assert!(cache.get(id).is_err() && cache.load_update(id, HIDDEN).is_err() && cache.remove(id).is_err());
        }
    }

    #[test]
    fn recent_updates_evict_the_least_recently_used() {
        let mut recent = RecentUpdates::default();
        for i in 0..RECENT_UPDATES_CAPACITY {
            recent.put(&i.to_string(), HIDDEN, update(i as f32));
        }
        assert!(recent.get("0", HIDDEN).is_some());
        recent.put("new", HIDDEN, update(0.0));
        assert!(recent.get("0", HIDDEN).is_some() && recent.get("new", HIDDEN).is_some());
        assert!(recent.get("1", HIDDEN).is_none(), "the least recently used went");
        assert!(recent.get("2", HIDDEN * 2).is_none(), "another hidden size is a miss");
    }

    #[test]
    fn default_dir_is_per_model() {
        let dir = default_cache_dir(MODEL).unwrap();
        assert!(dir.ends_with(Path::new("cache").join(MODEL)), "{}", dir.display());
        assert!(default_cache_dir("../x").is_err());
    }
}
