//! Cached edits: {subjects of an edit group -> its update values}, for one model, behind one interface,
//! [`EditStore`]. [`EditCache`] keeps them on disk, crash-safe, for chat and the TUI; [`MemoryStore`]
//! keeps them in memory for a run that forgets them at its end (the eval).

mod disk;
#[cfg(test)]
pub(crate) mod fixtures;
mod memory;
pub mod synthetic;
#[cfg(test)]
mod tests;

use color_eyre::eyre::{eyre, WrapErr};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use disk::{default_cache_dir, EditCache};
pub use memory::MemoryStore;

use super::edit::{OptimizeStep, UpdateValues};
use super::group::EditGroup;
use super::locate::LocatedNeurons;
use super::scope::{SavedEncoder, ScopeKeys, TaughtQuestions};
use super::settings::MethodSettings;
use crate::storage;
use crate::Result;

/// Version of `index.json` and `entry.json`; bump it when their meaning changes. 2: update values may
/// be trained to end the answer's line (`edit.end_with_line_break`); version 1 entries were not.
pub const CACHE_FORMAT_VERSION: u32 = 2;

/// An edit to store: the group, what was located and optimized for it, and its scope keys.
#[derive(Clone, Copy)]
pub struct NewEntry<'a> {
    pub group: &'a EditGroup,
    pub located: &'a LocatedNeurons,
    pub update: &'a UpdateValues,
    pub settings: &'a MethodSettings,
    pub loss_history: &'a [OptimizeStep],
    pub scope_keys: &'a ScopeKeys,
}

/// What retrieval ([`CachedEdits`](super::apply::CachedEdits)) and the eval need of a store of edits.
pub trait EditStore: Send {
    /// Stores an edit and returns its id. The id depends only on the group ([`entry_id`]), so storing the
    /// same group again replaces its earlier edit instead of adding a second one.
    fn insert(&mut self, edit: NewEntry<'_>) -> Result<String>;

    /// Deletes entry `id`.
    fn remove(&mut self, id: &str) -> Result<()>;

    /// The entries, in the order they were stored.
    fn list(&self) -> &[IndexRow];

    /// An entry's description (not its update values).
    fn get(&self, id: &str) -> Result<CacheEntry>;

    /// An entry's update values, checked against the model's hidden size.
    fn load_update(&mut self, id: &str, hidden: usize) -> Result<UpdateValues>;

    /// An entry's scope keys; `None` when it has none (cached before they existed).
    fn load_scope_keys(&self, id: &str, hidden: usize) -> Result<Option<ScopeKeys>>;

    /// Adds or replaces an entry's scope keys.
    fn store_scope_keys(&mut self, id: &str, keys: &ScopeKeys) -> Result<()>;

    /// Replaces what the user taught the scope gate about entry `id`'s questions.
    fn store_taught(&mut self, id: &str, taught: &TaughtQuestions) -> Result<()>;

    /// Fails unless a new entry can be stored: checked before an edit is computed, so that a read-only
    /// cache is found in a second, not after the edit.
    fn check_writable(&self) -> Result<()>;

    /// The store for messages: "the edit cache <dir>".
    fn describe(&self) -> String;

    /// The retrieval index saved over the store's entries (see `SubjectIndex::to_bytes`), if the store
    /// keeps one and it can be read. It may be out of date: the reader brings it up to date.
    fn load_saved_index(&self) -> Option<Vec<u8>> {
        None
    }

    /// Saves a retrieval index over the store's entries; a store that keeps none ignores it.
    fn save_index(&self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    /// What the scope encoder saved with the store (see `QuestionEncoder::reusing`), if the store keeps
    /// it and it can be read.
    fn load_saved_encoder(&self) -> Option<SavedEncoder> {
        None
    }

    /// Saves what the scope encoder computed for every entry; a store that keeps none ignores it.
    fn save_encoder(&self, _saved: &SavedEncoder) -> Result<()> {
        Ok(())
    }

    /// The index row of entry `id` (held in memory: nothing is read).
    fn row(&self, id: &str) -> Result<&IndexRow> {
        self.list().iter().find(|row| row.id == id).ok_or_else(|| eyre!("{} has no entry `{id}`", self.describe()))
    }
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
    pub loss_history: Vec<OptimizeStep>,
    /// What the user told the scope gate about this entry's questions; kept when the same group is
    /// edited again.
    #[serde(default, skip_serializing_if = "TaughtQuestions::is_empty")]
    pub taught: TaughtQuestions,
}

impl CacheEntry {
    /// The entry of `edit`, made now, with its id ([`entry_id`]).
    fn new(edit: &NewEntry<'_>, model_fingerprint: &str) -> Result<Self> {
        let NewEntry { group, located, settings, loss_history, .. } = *edit;
        Ok(Self {
            version: CACHE_FORMAT_VERSION,
            id: entry_id(group)?,
            subjects: group.subjects(),
            group: group.clone(),
            located: located.clone(),
            settings: settings.clone(),
            model_fingerprint: model_fingerprint.to_string(),
            created: storage::unix_now(),
            loss_history: loss_history.to_vec(),
            taught: TaughtQuestions::default(),
        })
    }
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

/// A readable, filesystem-safe id that depends only on the group: a slug of its name and a short hash of its
/// content (so two groups with the same name get different ids).
pub fn entry_id(group: &EditGroup) -> Result<String> {
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
