//! The edit store in memory: for a run whose edits end with it (the eval), so nothing is written or
//! synced to disk. It keeps the values as [`EditCache`](super::EditCache) hands them back: update
//! deltas as f32, layers in order, shapes checked against the model's hidden size.

use candle_core::{DType, Tensor};
use color_eyre::eyre::{bail, eyre, WrapErr};

use super::{CacheEntry, EditStore, IndexRow, NewEntry};
use crate::method::edit::{LayerUpdate, UpdateValues};
use crate::method::scope::{ScopeKeys, TaughtQuestions};
use crate::Result;

/// Cached edits held in memory for one model.
#[derive(Debug)]
pub struct MemoryStore {
    model_fingerprint: String,
    /// In the order the entries were stored.
    rows: Vec<IndexRow>,
    entries: Vec<StoredEdit>,
}

#[derive(Debug)]
struct StoredEdit {
    entry: CacheEntry,
    update: UpdateValues,
    scope_keys: ScopeKeys,
}

impl MemoryStore {
    pub fn new(model_fingerprint: &str) -> Self {
        Self { model_fingerprint: model_fingerprint.to_string(), rows: Vec::new(), entries: Vec::new() }
    }

    fn stored(&self, id: &str) -> Result<&StoredEdit> {
        self.row(id)?;
        self.entries.iter().find(|stored| stored.entry.id == id).ok_or_else(|| eyre!("entry `{id}` is not stored"))
    }
}

impl EditStore for MemoryStore {
    fn insert(&mut self, edit: NewEntry<'_>) -> Result<String> {
        let mut entry = CacheEntry::new(&edit, &self.model_fingerprint)?;
        let id = entry.id.clone();
        if let Ok(previous) = self.stored(&id) {
            entry.taught = previous.entry.taught.clone();
        }
        let stored = StoredEdit { update: detached_f32(edit.update)?, scope_keys: edit.scope_keys.clone(), entry };
        self.remove_if_present(&id);
        self.rows.push(IndexRow::from_entry(&stored.entry));
        self.entries.push(stored);
        Ok(id)
    }

    fn remove(&mut self, id: &str) -> Result<()> {
        self.row(id)?;
        self.remove_if_present(id);
        Ok(())
    }

    fn list(&self) -> &[IndexRow] {
        &self.rows
    }

    fn get(&self, id: &str) -> Result<CacheEntry> {
        Ok(self.stored(id)?.entry.clone())
    }

    fn load_update(&mut self, id: &str, hidden: usize) -> Result<UpdateValues> {
        let update = &self.stored(id)?.update;
        for layer in &update.layers {
            if layer.delta.dims() != [layer.neurons.len(), hidden] {
                bail!(
                    "entry `{id}`: the update values of layer {} have shape {:?}, expected [{}, {hidden}]",
                    layer.layer,
                    layer.delta.dims(),
                    layer.neurons.len()
                );
            }
        }
        Ok(update.clone())
    }

    fn load_scope_keys(&self, id: &str, hidden: usize) -> Result<Option<ScopeKeys>> {
        let keys = &self.stored(id)?.scope_keys;
        keys.check(hidden).wrap_err_with(|| format!("entry `{id}`: scope keys"))?;
        Ok(Some(keys.clone()))
    }

    fn store_scope_keys(&mut self, id: &str, keys: &ScopeKeys) -> Result<()> {
        self.row(id)?;
        let stored = self.entries.iter_mut().find(|stored| stored.entry.id == id).expect("every row has its entry");
        stored.scope_keys = keys.clone();
        Ok(())
    }

    fn store_taught(&mut self, id: &str, taught: &TaughtQuestions) -> Result<()> {
        self.row(id)?;
        let stored = self.entries.iter_mut().find(|stored| stored.entry.id == id).expect("every row has its entry");
        stored.entry.taught = taught.clone();
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "the in-memory edit store".to_string()
    }
}

impl MemoryStore {
    fn remove_if_present(&mut self, id: &str) {
        self.rows.retain(|row| row.id != id);
        self.entries.retain(|stored| stored.entry.id != id);
    }
}

/// The update values as the disk cache reads them back: f32 deltas in layer order, copied so that no
/// later change to the optimizer's tensors reaches the stored ones.
fn detached_f32(update: &UpdateValues) -> Result<UpdateValues> {
    let mut layers = update
        .layers
        .iter()
        .map(|l| {
            let delta: Tensor = l.delta.to_dtype(DType::F32)?.copy()?;
            Ok(LayerUpdate { layer: l.layer, neurons: l.neurons.clone(), delta })
        })
        .collect::<Result<Vec<_>>>()
        .wrap_err("cannot copy the update values")?;
    layers.sort_by_key(|l| l.layer);
    Ok(UpdateValues { layers })
}
