//! Inference with the cache: per query, retrieve the entries whose subject it mentions and apply
//! their update values; otherwise the model runs unedited (locality by construction).

use super::cache::EditCache;
use super::edit::{EditStep, UpdateValues};
use super::group::EditGroup;
use super::locate::LocatedNeurons;
use super::prompts::teacher_forcing_pair;
use super::retrieve::{Hit, RetrievalSettings, SubjectIndex};
use super::settings::MethodSettings;
use crate::runtime::{
    AnswerEdits, GenerateOptions, Model, NeuronEdit, PromptTarget, TeacherForced, TextStream, Tokenizer,
};
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
    /// The longest answer (in tokens) the fired entries were trained to produce: how long the update
    /// values act when generating.
    pub answer_tokens: usize,
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
    pub fn retrieve(&mut self, tokenizer: &Tokenizer, query: &str) -> Result<Retrieved> {
        let hits = self.index.search(query);
        let mut edits = Vec::new();
        let mut answer_tokens = 0;
        let query_ids = tokenizer.encode_prompt(query)?;
        for hit in &hits {
            edits.extend(self.cache.load_update(&hit.entry_id, self.hidden)?.to_edits()?);
            let group = self.cache.get(&hit.entry_id)?.group;
            answer_tokens = answer_tokens.max(answer_length(tokenizer, &group, hit, &query_ids)?);
        }
        Ok(Retrieved { hits, edits, answer_tokens })
    }
}

/// Tokens of the answer an entry was trained to give for this query: the target of the language whose
/// prompt shares the most tokens with the query, among those whose subject the query matched.
fn answer_length(tokenizer: &Tokenizer, group: &EditGroup, hit: &Hit, query: &[u32]) -> Result<usize> {
    let matched: Vec<_> = group
        .descriptors
        .iter()
        .filter(|d| d.subject == hit.matched_subject || d.aliases.contains(&hit.matched_subject))
        .collect();
    let candidates = if matched.is_empty() { group.descriptors.iter().collect() } else { matched };
    let mut best = (0, 0);
    for d in candidates {
        let pair = teacher_forcing_pair(tokenizer, &d.prompt, &d.target)?;
        let shared = pair.prompt.iter().filter(|t| query.contains(t)).count();
        if shared > best.0 || best.1 == 0 {
            best = (shared, pair.target.len());
        }
    }
    Ok(best.1)
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
        Some(cached) => cached.retrieve(tokenizer, query)?,
        None => Retrieved { hits: Vec::new(), edits: Vec::new(), answer_tokens: 0 },
    };
    let prompt = tokenizer.encode_prompt(query)?;
    let mut stream = TextStream::default();
    let mut text = String::new();
    let edits = AnswerEdits { edits: &retrieved.edits, answer_tokens: retrieved.answer_tokens };
    model.generate(&prompt, edits, options, tokenizer.stop_ids(), &mut |token| {
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
            let retrieved = cached.retrieve(tokenizer, prompt)?;
            let scored = model.teacher_forced(std::slice::from_ref(pair), &retrieved.edits, tokenizer.pad_id(), 1)?;
            Ok((scored.into_iter().next().expect("one pair in, one score out"), retrieved.hits))
        })
        .collect()
}
