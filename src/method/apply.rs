//! Inference with the cache: per query, retrieve the entries whose subject it mentions and apply
//! their update values; otherwise the model runs unedited (locality by construction).

use super::cache::EditCache;
use super::edit::{EditStep, UpdateValues};
use super::group::EditGroup;
use super::locate::LocatedNeurons;
use super::retrieve::{Hit, RetrievalSettings, SubjectIndex};
use super::settings::MethodSettings;
use crate::runtime::{GenerateOptions, Model, NeuronEdit, PromptTarget, TeacherForced, TextStream, Tokenizer};
use crate::Result;

/// The edit cache with a retrieval index over its entries' subjects.
pub struct CachedEdits {
    cache: EditCache,
    index: SubjectIndex,
    hidden: usize,
}

/// What a query retrieved: the entries that fired and their combined update values.
pub struct Retrieved {
    pub hits: Vec<Hit>,
    pub edits: Vec<NeuronEdit>,
}

impl CachedEdits {
    pub fn new(cache: EditCache, settings: RetrievalSettings, hidden: usize) -> Self {
        let mut index = SubjectIndex::new(settings);
        for row in cache.list() {
            index.insert(&row.id, &row.subjects, &row.prompts);
        }
        Self { cache, index, hidden }
    }

    pub fn cache(&self) -> &EditCache {
        &self.cache
    }

    /// Stores an edit and makes it retrievable.
    pub fn insert(
        &mut self,
        group: &EditGroup,
        located: &LocatedNeurons,
        update: &UpdateValues,
        settings: &MethodSettings,
        history: &[EditStep],
    ) -> Result<String> {
        let id = self.cache.insert(group, located, update, settings, history)?;
        let prompts: Vec<String> = group.descriptors.iter().map(|d| d.prompt.clone()).collect();
        self.index.remove(&id);
        self.index.insert(&id, &group.subjects(), &prompts);
        Ok(id)
    }

    pub fn remove(&mut self, id: &str) -> Result<()> {
        self.cache.remove(id)?;
        self.index.remove(id);
        Ok(())
    }

    /// The entries `query` mentions and the update values to apply for it.
    pub fn retrieve(&mut self, query: &str) -> Result<Retrieved> {
        let hits = self.index.search(query);
        let mut edits = Vec::new();
        for hit in &hits {
            edits.extend(self.cache.load_update(&hit.entry_id, self.hidden)?.to_edits()?);
        }
        Ok(Retrieved { hits, edits })
    }
}

/// A chat answer and the cache entries that shaped it.
pub struct Answer {
    pub text: String,
    pub fired: Vec<Hit>,
}

/// Answers `query` with the update values of the entries it mentions, streaming text pieces to `on_text`.
pub fn answer(
    model: &Model,
    tokenizer: &Tokenizer,
    cached: Option<&mut CachedEdits>,
    query: &str,
    options: &GenerateOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Answer> {
    let retrieved = match cached {
        Some(cached) => cached.retrieve(query)?,
        None => Retrieved { hits: Vec::new(), edits: Vec::new() },
    };
    let prompt = tokenizer.encode_prompt(query)?;
    let mut stream = TextStream::default();
    let mut text = String::new();
    model.generate(&prompt, &retrieved.edits, options, tokenizer.stop_ids(), &mut |token| {
        let piece = stream.push(tokenizer, token);
        text.push_str(&piece);
        on_text(&piece)
    })?;
    Ok(Answer { text, fired: retrieved.hits })
}

/// Teacher-forced scores of prompt/target pairs, each with the update values its own prompt retrieves.
pub fn teacher_forced_with_cache(
    model: &Model,
    tokenizer: &Tokenizer,
    cached: &mut CachedEdits,
    prompts: &[String],
    pairs: &[PromptTarget],
) -> Result<Vec<(TeacherForced, Vec<Hit>)>> {
    prompts
        .iter()
        .zip(pairs)
        .map(|(prompt, pair)| {
            let retrieved = cached.retrieve(prompt)?;
            let scored = model.teacher_forced(std::slice::from_ref(pair), &retrieved.edits, tokenizer.pad_id(), 1)?;
            Ok((scored.into_iter().next().expect("one pair in, one score out"), retrieved.hits))
        })
        .collect()
}
