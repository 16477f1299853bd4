//! Inference with the cache: per query, retrieve the entries whose subject it mentions, keep those
//! whose scope the query is in (it asks their fact, see [`super::scope`]; of entries sharing a subject,
//! the one it asks most), and apply their update values; otherwise the model runs unedited (locality
//! by construction).

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Tensor};
use color_eyre::eyre::{bail, eyre};

use super::cache::{CacheEntry, EditStore, NewEntry};
use super::edit::{LayerUpdate, OptimizeStep, UpdateValues};
use super::group::EditGroup;
use super::locate::LocatedNeurons;
use super::prompts::answer_pair;
use super::retrieve::{Hit, RetrievalSettings, SubjectIndex};
use super::scope::{
    mask_subject, PreparedKeys, QuestionEncoder, ScopeKeys, ScopeScore, ScopeSettings, TaughtQuestions,
};
use super::settings::MethodSettings;
use crate::runtime::{
    AnswerOpening, AnswerTrack, FfnDelta, GenerateOptions, GenerationDeltas, Model, PromptFrame, Sampling, TextStream,
    TokenStart, Tokenizer, TrainedOpening,
};
use crate::text::scripts::{ends_sentence, is_completion, question_mark, Opening, Script};
use crate::text::writing::{Likeness, Writing};
use crate::Result;

/// An edit store with a retrieval index over its entries' subjects and their scope keys.
pub struct CachedEdits {
    /// Boxed, not a type parameter: one `CachedEdits` type serves chat (on disk) and the eval (in memory),
    /// and its users (`answer`, the worker, the eval's answerers) need no store parameter.
    cache: Box<dyn EditStore>,
    index: SubjectIndex,
    scope: ScopeSettings,
    encoder: QuestionEncoder,
    /// Scope keys read or computed so far, prepared for scoring, by entry id.
    keys: HashMap<String, PreparedKeys>,
    /// What each entry that fired so far was trained to answer, by entry id.
    answers: HashMap<String, Vec<TrainedAnswer>>,
    hidden: usize,
    /// The encoder's kept languages when its vectors were last saved with the cache.
    saved_languages: usize,
}

/// What a query retrieved: the entries that fired and their combined update values.
#[derive(Default)]
pub struct Retrieved {
    /// Entries that fired: the query names their subject and is in their scope.
    pub hits: Vec<Hit>,
    /// Entries whose subject the query names but whose fact it does not ask (scope score too low).
    pub out_of_scope: Vec<Hit>,
    /// Entries that would have fired but could not be read: skipped, with the reason.
    pub damaged: Vec<(String, String)>,
    pub edits: Vec<FfnDelta>,
    /// The answers the fired entries were trained to give to this query (their targets in its language).
    pub answers: Vec<String>,
    /// Those of `answers` whose language the query is written in (see [`QueryAnswer`]): an answer
    /// about to be another language's is first tried as one of these (see [`AnswerTrack`]). A query
    /// in none of an entry's languages prefers none of its answers.
    pub in_query_language: Vec<String>,
    /// Their answers in every language they were trained in: the update values act while the answer
    /// is one of these (see [`AnswerTrack`]).
    pub trained_answers: Vec<String>,
    /// The query as the fired edits read it, when not as typed: ending as the trained text nearest to it
    /// ends (see [`read_as_trained`]).
    pub read_as: Option<String>,
    /// How the answer opens that the fired entries were trained to give, when the query is written as
    /// their trained questions in its language are and they agree (see [`TrainedAnswer::opening_for`]).
    pub opening: Option<TrainedOpening>,
}

impl Retrieved {
    /// The update values as generation applies them: while the answer is one the fired entries were
    /// trained to give, opening as it opens.
    pub fn answer_edits<'a>(&'a self, tokenizer: &'a Tokenizer) -> GenerationDeltas<'a> {
        let opening =
            self.opening.map(|trained| AnswerOpening { starts: tokenizer.token_starts(), tokenizer, trained });
        GenerationDeltas { deltas: &self.edits, track: Some(self.answer_track(tokenizer)), opening }
    }

    /// Where the update values act in an answer (see [`AnswerTrack`]).
    pub fn answer_track<'a>(&'a self, tokenizer: &'a Tokenizer) -> AnswerTrack<'a> {
        AnswerTrack { tokenizer, answers: &self.trained_answers, in_query_language: &self.in_query_language }
    }

    /// What the model is asked: `query` as the fired edits read it.
    pub fn question<'a>(&'a self, query: &'a str) -> &'a str {
        self.read_as.as_deref().unwrap_or(query)
    }
}

impl CachedEdits {
    /// Indexes the cache's entries for `model`, the model that answers (its question vectors are
    /// what scope keys are compared in).
    pub fn new(
        cache: impl EditStore + 'static,
        model: &Model,
        tokenizer: &Tokenizer,
        retrieval: RetrievalSettings,
        scope: ScopeSettings,
    ) -> Result<Self> {
        // The encoder's reference pass (model threads) and reading the index (one thread) overlap: with
        // 10,000 entries each takes a good part of a second. The pass is skipped where the cache holds
        // the center it computes.
        let saved = cache.load_saved_encoder();
        let (index, encoder) = std::thread::scope(|threads| {
            let encoder = threads.spawn(|| QuestionEncoder::reusing(model, tokenizer, &scope, saved.as_ref()));
            let index = indexed_entries(&cache, retrieval);
            (index, encoder.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        let encoder = encoder?;
        let saved_languages = encoder.kept_languages();
        let hidden = model.config().hidden_size;
        let (keys, answers) = (HashMap::new(), HashMap::new());
        let mut edits = Self { cache: Box::new(cache), index, scope, encoder, keys, answers, hidden, saved_languages };
        if saved.as_ref() != Some(&edits.encoder.saved()?) {
            edits.save_encoder();
        }
        Ok(edits)
    }

    /// Saves what the encoder computed for every entry with the cache. Only a speed-up, as the saved
    /// index: a cache that cannot take it still works.
    fn save_encoder(&mut self) {
        let saved = self.encoder.saved().and_then(|saved| self.cache.save_encoder(&saved));
        match saved {
            Ok(()) => self.saved_languages = self.encoder.kept_languages(),
            Err(e) => log::warn!("cannot save the scope encoder's vectors with {}: {e:#}", self.cache.describe()),
        }
    }

    /// The scope keys of `group`, made by the encoder; what it computed on the way for every entry (a
    /// language's other-relation questions, met for the first time) is saved with the cache.
    fn scope_keys(&mut self, model: &Model, tokenizer: &Tokenizer, group: &EditGroup) -> Result<ScopeKeys> {
        let keys = self.encoder.keys(model, tokenizer, group)?;
        if self.encoder.kept_languages() != self.saved_languages {
            self.save_encoder();
        }
        Ok(keys)
    }

    /// An entry's keys made ready for scoring, with what the user taught about its questions.
    fn prepared(
        &self,
        model: &Model,
        tokenizer: &Tokenizer,
        keys: &ScopeKeys,
        taught: &TaughtQuestions,
    ) -> Result<PreparedKeys> {
        let taught = self.encoder.encode_taught(model, tokenizer, taught)?;
        self.encoder.prepare(keys, &taught)
    }

    pub fn cache(&self) -> &dyn EditStore {
        self.cache.as_ref()
    }

    /// Stores an edit with its scope keys and makes it retrievable. The keys are encoded as queries
    /// are, on `model`, the weights that answer (so an edit's own question scores exactly 1); with
    /// the tiled Q8_0 kernel a batch of questions runs there about twice as fast as on the dense
    /// weights (docs/results.md, stop 35).
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        model: &Model,
        tokenizer: &Tokenizer,
        group: &EditGroup,
        located: &LocatedNeurons,
        update: &UpdateValues,
        settings: &MethodSettings,
        history: &[OptimizeStep],
    ) -> Result<String> {
        if model.mode() != self.encoder.mode() {
            bail!(
                "scope keys are encoded on the weights that answer ({:?}), not {:?}",
                self.encoder.mode(),
                model.mode()
            );
        }
        let keys = self.scope_keys(model, tokenizer, group)?;
        let edit = NewEntry { group, located, update, settings, loss_history: history, scope_keys: &keys };
        let id = self.cache.insert(edit)?;
        let prompts: Vec<String> = group.descriptors.iter().map(|d| d.prompt.clone()).collect();
        self.index.remove(&id);
        self.index.insert(&id, &group.subjects(), &prompts);
        // The same group edited again keeps what was taught about its questions.
        let taught = self.cache.get(&id)?.taught;
        let prepared = self.prepared(model, tokenizer, &keys, &taught)?;
        self.keys.insert(id.clone(), prepared);
        self.answers.remove(&id);
        Ok(id)
    }

    /// Stores `group` as [`Self::insert`] does, with update values that change nothing (one neuron of
    /// zeros): what retrieval and the scope gate decide about its questions, without locating or
    /// optimizing (routing studies, gate tests).
    pub fn insert_routing_only(
        &mut self,
        model: &Model,
        tokenizer: &Tokenizer,
        group: &EditGroup,
        settings: &MethodSettings,
    ) -> Result<String> {
        let hidden = model.config().hidden_size;
        let update = UpdateValues {
            layers: vec![LayerUpdate {
                layer: 0,
                neurons: vec![0],
                delta: Tensor::zeros((1, hidden), DType::F32, model.device())?,
            }],
        };
        let located = LocatedNeurons {
            langs: group.descriptors.iter().map(|d| d.lang.clone()).collect(),
            layers: Vec::new(),
            selected: BTreeMap::from([(0, vec![0])]),
            frequencies: BTreeMap::new(),
        };
        self.insert(model, tokenizer, group, &located, &update, settings, &[])
    }

    pub fn remove(&mut self, id: &str) -> Result<()> {
        self.cache.remove(id)?;
        self.index.remove(id);
        self.keys.remove(id);
        self.answers.remove(id);
        Ok(())
    }

    /// The entries whose subject `query` names (before the scope gate).
    pub fn mentioned(&self, query: &str) -> Vec<Hit> {
        self.index.search(query)
    }

    /// The entries `query` names and asks about, and the update values to apply for it. Of entries
    /// that share a subject, retrieval keeps those whose prompts share most words with the query;
    /// of those in scope, only the one it asks most (highest scope score; the newer of equals) acts:
    /// two facts of one subject (where born, where died, asked in a language no prompt shares words
    /// with) must not both answer, nor an old and a new edit of one fact. An entry that cannot be
    /// read is skipped and reported in [`Retrieved::damaged`].
    pub fn retrieve(&mut self, model: &Model, tokenizer: &Tokenizer, query: &str) -> Result<Retrieved> {
        let mut retrieved = Retrieved::default();
        let mentioned = self.mentioned(query);
        if mentioned.is_empty() {
            return Ok(retrieved);
        }
        let mut in_scope = Vec::new();
        let mut encoded = HashMap::new();
        for mut hit in mentioned {
            match self.scope_score(model, tokenizer, &hit, query, &mut encoded) {
                Ok(score) => {
                    hit.scope_score = Some(score.edited);
                    hit.other_relations_score = score.other_relations;
                    hit.taught_not_asked_score = score.taught_not_asked;
                    match self.scope.in_scope(score) {
                        true => in_scope.push(hit),
                        false => retrieved.out_of_scope.push(hit),
                    }
                }
                Err(e) => retrieved.damaged.push((hit.entry_id, format!("{e:#}"))),
            }
        }
        let rows = self.cache.list();
        let stored_at: HashMap<String, usize> = (in_scope.iter())
            .map(|hit: &Hit| (hit.entry_id.clone(), rows.iter().position(|row| row.id == hit.entry_id).unwrap_or(0)))
            .collect();
        let asked_most = |a: &Hit, b: &Hit| {
            (a.scope_score.unwrap_or(f32::MIN).total_cmp(&b.scope_score.unwrap_or(f32::MIN)))
                .then(stored_at[&a.entry_id].cmp(&stored_at[&b.entry_id]))
        };
        let (chosen, passed_over) = self.index.best_per_subject(in_scope, asked_most);
        retrieved.out_of_scope.extend(passed_over);
        let query_ids = tokenizer.encode_prompt(query)?;
        let mut openings = Vec::new();
        for hit in chosen {
            let entry = self.cache.load_update(&hit.entry_id, self.hidden).and_then(|update| {
                let edits = update.to_ffn_deltas(model.device())?;
                if !self.answers.contains_key(&hit.entry_id) {
                    let answers = TrainedAnswer::of_entry(tokenizer, &self.cache.get(&hit.entry_id)?)?;
                    self.answers.insert(hit.entry_id.clone(), answers);
                }
                Ok(edits)
            });
            match entry {
                Ok(edits) => {
                    retrieved.edits.extend(edits);
                    let answers = &self.answers[&hit.entry_id];
                    retrieved.trained_answers.extend(answers.iter().map(|a| a.target.clone()));
                    let trained = trained_answer(answers, &hit, query, &query_ids);
                    let in_its_language = trained.as_ref().is_some_and(|t| t.in_its_language);
                    let trained = trained.map(|t| t.answer);
                    if let Some(trained) = trained {
                        retrieved.answers.push(trained.target.clone());
                        if in_its_language {
                            retrieved.in_query_language.push(trained.target.clone());
                        }
                        if retrieved.read_as.is_none() {
                            let last_token = |text: &str| tokenizer.encode_prompt(text).ok()?.last().copied();
                            retrieved.read_as = read_as_trained(query, trained.nearest_text(&query_ids), &last_token);
                        }
                    }
                    openings.push(trained.and_then(|t| t.opening_for(query, &query_ids, &hit)));
                    retrieved.hits.push(hit);
                }
                Err(e) => retrieved.damaged.push((hit.entry_id, format!("{e:#}"))),
            }
        }
        retrieved.opening = openings.first().copied().flatten().filter(|o| openings.iter().all(|p| *p == Some(*o)));
        Ok(retrieved)
    }

    /// After entry `id` is stored, what the user should know about the entries sharing its subject
    /// (see [`shared_subject_notes`]; none when no entry shares it). Edits of one subject compete for
    /// its questions (the one a question asks most acts, see [`CachedEdits::retrieve`]), so a fact
    /// edited again in other words is not always answered by the newer edit. The edit is stored either
    /// way: a check that fails is only a note.
    pub fn shared_subject_notes(&mut self, model: &Model, tokenizer: &Tokenizer, id: &str) -> Vec<String> {
        match self.shared_subject_answers(model, tokenizer, id) {
            Ok(answers) => shared_subject_notes(id, &answers),
            Err(e) => vec![format!("could not check which edits of its subject answer what: {e:#}")],
        }
    }

    /// Which entry now acts on each prompt of `id` and of the entries sharing a subject with it; of
    /// many such entries only the newest [`SHARED_SUBJECT_ENTRIES`] (each costs a retrieval per
    /// prompt). Empty when no entry shares a subject with `id`.
    fn shared_subject_answers(
        &mut self,
        model: &Model,
        tokenizer: &Tokenizer,
        id: &str,
    ) -> Result<Vec<SharedSubjectAnswer>> {
        let rows = self.cache.list();
        let others = rows.iter().filter(|row| row.id != id && self.index.share_subject(id, &row.id));
        let newest_others: Vec<_> = others.rev().take(SHARED_SUBJECT_ENTRIES).collect();
        if newest_others.is_empty() {
            return Ok(Vec::new());
        }
        let sharing: Vec<(String, Vec<String>)> = (rows.iter().filter(|row| row.id == id))
            .chain(newest_others.into_iter().rev())
            .map(|row| (row.id.clone(), row.prompts.clone()))
            .collect();
        let mut answers = Vec::new();
        for (written_for, prompts) in sharing {
            for question in prompts {
                let retrieved = self.retrieve(model, tokenizer, &question)?;
                let acting = (retrieved.hits.iter())
                    .find(|hit| hit.entry_id == written_for || self.index.share_subject(&hit.entry_id, &written_for))
                    .map(|hit| hit.entry_id.clone());
                answers.push(SharedSubjectAnswer { question, written_for: written_for.clone(), acting });
            }
        }
        Ok(answers)
    }

    /// How much `query` asks what entry `id` was edited for. Keys are read from the cache, or computed
    /// from the entry's group (and stored) when it has none for this layer and representation: entries
    /// cached before (or by an older version) keep working. `encoded` keeps the query's vector per
    /// subject list it was masked for: entries of one subject share it.
    fn scope_score(
        &mut self,
        model: &Model,
        tokenizer: &Tokenizer,
        hit: &Hit,
        query: &str,
        encoded: &mut HashMap<Vec<String>, Tensor>,
    ) -> Result<ScopeScore> {
        let id = hit.entry_id.as_str();
        // Prepared keys are this encoder's own: read as it reads questions, or computed by it.
        if !self.keys.contains_key(id) {
            let entry = self.cache.get(id)?;
            let keys = match self.cache.load_scope_keys(id, self.hidden) {
                Ok(Some(keys)) if self.encoder.reads_like(&keys) => keys,
                _ => {
                    let keys = self.scope_keys(model, tokenizer, &entry.group)?;
                    // Only a speed-up: a cache that cannot take them (read-only) still answers.
                    if let Err(e) = self.cache.store_scope_keys(id, &keys) {
                        log::warn!(
                            "{}: the scope keys of `{id}` are computed again next time: {e:#}",
                            self.cache.describe()
                        );
                    }
                    keys
                }
            };
            let prepared = self.prepared(model, tokenizer, &keys, &entry.taught)?;
            self.keys.insert(id.to_string(), prepared);
        }
        let subjects = self.masked_subjects(hit)?;
        if !encoded.contains_key(&subjects) {
            let vector = self.encoder.encode(model, tokenizer, query, &subjects)?;
            encoded.insert(subjects.clone(), vector);
        }
        self.encoder.score(&self.keys[id], &encoded[&subjects])
    }

    /// What the gate masks in a query that retrieved `hit`: the entry's subjects as the entry writes
    /// them, and as the query does where retrieval found it written otherwise (another script:
    /// "Шмавон Шмавонян" for "Shmavon Shmavonyan"; keys are masked the same way). Left in, the name
    /// makes the question look like none of the keys.
    fn masked_subjects(&self, hit: &Hit) -> Result<Vec<String>> {
        let mut subjects = self.cache.row(&hit.entry_id)?.subjects.clone();
        subjects.extend((!hit.mention.is_empty()).then(|| hit.mention.clone()));
        Ok(subjects)
    }

    /// Entry `to`, a group's new edit, takes over what was taught about the questions of `from`, the
    /// edit it replaces (what it taught itself holds where they disagree).
    pub fn inherit_taught(&mut self, from: &str, to: &str) -> Result<()> {
        let (old, new) = (self.cache.get(from)?.taught, self.cache.get(to)?.taught);
        if old.is_empty() {
            return Ok(());
        }
        let lessons = |t: &TaughtQuestions| {
            let asked = t.asks.iter().map(|q| (q.clone(), true));
            asked.chain(t.not_asked.iter().map(|q| (q.clone(), false))).collect::<Vec<_>>()
        };
        let mut taught = TaughtQuestions::default();
        for (question, asks) in lessons(&old).into_iter().chain(lessons(&new)) {
            taught.learn(&question, asks)?;
        }
        self.cache.store_taught(to, &taught)?;
        self.keys.remove(to);
        Ok(())
    }

    /// Tells the gate that `query`, which retrieved `hit`, asks its entry's fact (`asks`) or does not,
    /// where it decided otherwise: kept with the entry (see [`TaughtQuestions`]), used from the next
    /// retrieval on. Returns the question as kept (subject masked).
    pub fn teach(&mut self, hit: &Hit, query: &str, asks: bool) -> Result<String> {
        let id = hit.entry_id.as_str();
        let masked = mask_subject(query, &self.masked_subjects(hit)?);
        let mut taught = self.cache.get(id)?.taught;
        taught.learn(&masked, asks)?;
        self.cache.store_taught(id, &taught)?;
        // Prepared again, with the new question, when next asked.
        self.keys.remove(id);
        Ok(masked)
    }
}

/// The entries a user's word about a query's answer is about (see [`CachedEdits::teach`]): that it
/// asks a fact, the entry its subject named that did not act (`id`, or the one the gate scored
/// highest); that it does not, the entries that acted (`id`, or all).
pub fn entries_to_teach<'a>(
    acted: &'a [Hit],
    did_not: &'a [Hit],
    asks: bool,
    id: Option<&str>,
) -> Result<Vec<&'a Hit>> {
    let candidates = if asks { did_not } else { acted };
    if let Some(id) = id {
        return match candidates.iter().find(|hit| hit.entry_id == id) {
            Some(hit) => Ok(vec![hit]),
            None if asks => bail!("the question did not name `{id}` without it acting"),
            None => bail!("`{id}` did not act on the question"),
        };
    }
    if asks {
        let best = candidates
            .iter()
            .max_by(|a, b| a.scope_score.unwrap_or(f32::MIN).total_cmp(&b.scope_score.unwrap_or(f32::MIN)));
        return best.map(|hit| vec![hit]).ok_or_else(|| eyre!("the question named no cached edit that did not act"));
    }
    if candidates.is_empty() {
        bail!("no cached edit acted on the question");
    }
    Ok(candidates.iter().collect())
}

/// How many of the entries sharing a new edit's subject [`CachedEdits::shared_subject_notes`] asks
/// about (the newest).
pub const SHARED_SUBJECT_ENTRIES: usize = 8;

/// Which entry acts on a prompt of an entry that shares a subject with a new edit.
#[derive(Debug, Clone, PartialEq)]
struct SharedSubjectAnswer {
    question: String,
    /// The entry whose prompt it is.
    written_for: String,
    /// The entry that acts on it; `None`: none does, the unedited model answers.
    acting: Option<String>,
}

/// What to tell the user after storing edit `id` about the entries that share its subject, from
/// which entry acts on each of their prompts: its own prompts another entry answers; older entries
/// whose prompts it now answers, in part or whole (a fact edited again); and the others, which keep
/// their questions (another fact of the subject, or the same fact worded so differently that the
/// gate cannot tell: the user can).
fn shared_subject_notes(id: &str, answers: &[SharedSubjectAnswer]) -> Vec<String> {
    let mut entries: Vec<&str> = Vec::new();
    for answer in answers {
        if !entries.contains(&answer.written_for.as_str()) {
            entries.push(&answer.written_for);
        }
    }
    let quoted = |a: &SharedSubjectAnswer| format!("\"{}\"", a.question);
    let (mut notes, mut unchanged) = (Vec::new(), Vec::new());
    for entry in entries {
        let asked: Vec<&SharedSubjectAnswer> = answers.iter().filter(|a| a.written_for == entry).collect();
        if entry == id {
            let elsewhere: Vec<String> = (asked.iter())
                .filter(|a| a.acting.as_deref() != Some(id))
                .map(|a| format!("{} ({})", quoted(a), a.acting.as_deref().unwrap_or("no entry acts")))
                .collect();
            if !elsewhere.is_empty() {
                notes.push(format!(
                    "{id} does not answer its own {}: {}",
                    questions(elsewhere.len()),
                    elsewhere.join(", ")
                ));
            }
            continue;
        }
        let taken = asked.iter().filter(|a| a.acting.as_deref() == Some(id)).count();
        if taken == 0 {
            unchanged.push(format!("{entry} ({})", quoted(asked[0])));
            continue;
        }
        let kept: Vec<String> =
            asked.iter().filter(|a| a.acting.as_deref() == Some(entry)).map(|a| quoted(a)).collect();
        let mut note =
            format!("{id} answers {taken} of {entry}'s {} {} from now on", asked.len(), questions(asked.len()));
        if !kept.is_empty() {
            note += &format!("; {entry} still answers {}", kept.join(", "));
        }
        notes.push(note);
    }
    if !unchanged.is_empty() {
        notes.push(format!("other edits of this subject still answer their own questions: {}", unchanged.join(", ")));
    }
    notes
}

fn questions(count: usize) -> &'static str {
    if count == 1 {
        "question"
    } else {
        "questions"
    }
}

/// The retrieval index over the store's entries: the saved one brought up to date (and saved again when
/// it changed), or, when there is none or it cannot be used, one built anew. Indexing tokenizes and
/// respells every subject and prompt: 5 s for 10,000 twelve-language entries, where reading the saved
/// index takes a fraction of that.
fn indexed_entries(cache: &impl EditStore, retrieval: RetrievalSettings) -> SubjectIndex {
    let saved = cache.load_saved_index().and_then(|bytes| match SubjectIndex::from_bytes(&bytes, &retrieval) {
        Ok(index) => Some(index),
        Err(e) => {
            log::warn!("{}: {e:#}; indexing its entries anew", cache.describe());
            None
        }
    });
    let mut index = saved.unwrap_or_else(|| SubjectIndex::new(retrieval));
    let rows = cache.list().iter().map(|row| (row.id.as_str(), row.subjects.as_slice(), row.prompts.as_slice()));
    if index.sync(rows) > 0 {
        // Only a speed-up: a cache that cannot take it (read-only) still works.
        if let Err(e) = index.to_bytes().and_then(|bytes| cache.save_index(&bytes)) {
            log::warn!("cannot save the subject index of {}: {e:#}", cache.describe());
        }
    }
    index
}

/// Why an entry fired (or was considered): `id (subject "Marie Curie" 1.00, scope 0.82 vs 0.41)`, the
/// last figure the query's likeness to the subject's other relations; the subject followed by `as
/// "Мари Кюри"` where the query writes it otherwise.
pub fn describe_hit(hit: &Hit) -> String {
    let others = hit.other_relations_score.map_or(String::new(), |s| format!(" vs {s:.2}"));
    let taught = hit.taught_not_asked_score.map_or(String::new(), |t| format!(", taught not asked {t:.2}"));
    let scope = hit.scope_score.map_or(String::new(), |s| format!(", scope {s:.2}{others}{taught}"));
    let written_otherwise = !hit.mention.is_empty() && hit.mention.to_lowercase() != hit.matched_subject.to_lowercase();
    let mention = if written_otherwise { format!(" as \"{}\"", hit.mention) } else { String::new() };
    format!("{} (subject \"{}\"{mention} {:.2}{scope})", hit.entry_id, hit.matched_subject, hit.score)
}

/// What an entry was trained to answer in one language: read from the entry once, on its first hit,
/// so that a query does not re-read `entry.json`.
struct TrainedAnswer {
    /// The language's subject and aliases.
    subjects: Vec<String>,
    /// The texts trained on in this language, prompt first, then the written paraphrases, with their tokens.
    texts: Vec<(String, Vec<u32>)>,
    /// How each of `texts` is written, the subjects left out.
    writings: Vec<Writing>,
    target: String,
    /// How the target opens; `None` for a blank one.
    opening: Option<TrainedOpening>,
}

impl TrainedAnswer {
    /// The entry's answers, one per language.
    fn of_entry(tokenizer: &Tokenizer, entry: &CacheEntry) -> Result<Vec<Self>> {
        let end_line = entry.settings.edit.end_with_line_break;
        let frame = tokenizer.chat_frame(entry.settings.frame)?;
        (entry.group.descriptors.iter())
            .map(|d| {
                let pair = answer_pair(tokenizer, &d.prompt, &d.target, end_line)?;
                let framed = answer_pair(tokenizer, &frame.frame(&d.prompt)?, &d.target, end_line)?;
                let subjects: Vec<String> = std::iter::once(&d.subject).chain(&d.aliases).cloned().collect();
                let in_pieces = [&pair, &framed]
                    .iter()
                    .any(|p| p.target.first().is_some_and(|&id| tokenizer.token_start(id) == TokenStart::Unknown));
                let opening = Opening::of(&d.target).map(|opening| TrainedOpening { opening, in_pieces });
                let texts: Vec<(String, Vec<u32>)> = std::iter::once(d.prompt.as_str())
                    .chain(d.written_paraphrases())
                    .map(|text| Ok((text.to_string(), tokenizer.encode_prompt(text)?)))
                    .collect::<Result<_>>()?;
                let names: Vec<&str> = subjects.iter().map(String::as_str).collect();
                let writings = texts.iter().map(|(text, _)| Writing::of(text, &names)).collect();
                Ok(Self { subjects, texts, writings, target: d.target.trim().to_string(), opening })
            })
            .collect()
    }

    /// How this answer opens (its first character other than a space), when `query` is written as the
    /// trained text nearest to it is ([`TrainedAnswer::written_like`]): a query in a language the entry
    /// was not trained in is answered as the model writes it.
    fn opening_for(&self, query: &str, query_ids: &[u32], hit: &Hit) -> Option<TrainedOpening> {
        self.opening.filter(|_| self.written_like(query, query_ids, hit))
    }

    /// Whether `query` is written in the script of the trained text nearest to it, subjects (as the
    /// entry and as `hit` found them) left out (a Thai question may name its subject in Latin letters).
    fn written_like(&self, query: &str, query_ids: &[u32], hit: &Hit) -> bool {
        let script = |text: &str| {
            let found = [hit.matched_subject.as_str(), hit.mention.as_str()];
            let without_subjects = (self.subjects.iter().map(String::as_str).chain(found))
                .filter(|subject| !subject.is_empty())
                .fold(text.to_string(), |text, subject| text.replace(subject, " "));
            Script::detect(&without_subjects)
        };
        let query_script = script(query);
        query_script.is_some() && query_script == script(self.nearest_text(query_ids))
    }

    /// The trained text that shares the most tokens with `query` (the first of equals).
    fn nearest_text(&self, query: &[u32]) -> &str {
        let nearest = self.texts.iter().rev().max_by_key(|(_, ids)| shared_tokens(ids, query));
        nearest.map_or("", |(text, _)| text)
    }
}

/// How many of `ids` the query holds.
fn shared_tokens(ids: &[u32], query: &[u32]) -> usize {
    ids.iter().filter(|t| query.contains(t)).count()
}

/// `query` ending as the trained text `nearest` ends, where that differs: the update values were trained
/// at the end of the question, and a question typed without its question mark ("What is Stéphan
/// Perrot's country of citizenship") leaves the model writing on the question instead of answering:
/// the edited answer came first for 56% of such questions (MzsRE, 10 facts x 12 languages), against
/// 100% with the mark. So the mark of `nearest` closes a query that ends with no sentence mark, and a
/// query's question mark goes where `nearest` is a question written without one (Thai, Japanese) and
/// the query, without it, ends in the token `nearest` ends in (`last_token`): a question worded
/// otherwise would be left open on a name or a noun, and the model writes on it ("เสียงแบบไหนที่ปิเอโร
/// เด ปาลมา" -> "นูเอล", the name continued). `None` when the query already ends as `nearest` does.
fn read_as_trained(query: &str, nearest: &str, last_token: &dyn Fn(&str) -> Option<u32>) -> Option<String> {
    let typed = query.trim_end();
    match (question_mark(nearest), question_mark(typed)) {
        (Some(mark), None) if !typed.is_empty() && !ends_sentence(typed) => Some(format!("{typed}{mark}")),
        (None, Some(mark)) if !is_completion(nearest) => {
            let open = typed.strip_suffix(mark).unwrap_or(typed).trim_end();
            let ends_alike = last_token(open).is_some_and(|token| last_token(nearest.trim_end()) == Some(token));
            ends_alike.then(|| open.to_string())
        }
        _ => None,
    }
}

/// The answer an entry was trained to give for this query: that of the language whose trained texts
/// are written most like the query, subjects aside ([`Writing`]: the query's script, then its words'
/// character n-grams; of equals, a language whose subject the query named, then the one whose prompt
/// shares the most tokens with it, then the longest answer). By shared tokens alone (subjects and all),
/// another language was taken for 1.5-2.1% of BMIKE-53 dev rephrasings and 4.0-6.0% of portability
/// questions (by writing: 0.9-1.2%, 2.8-3.1%; `cargo run --release --example query_language`, 12
/// languages an edit): in a language of another script the subject's tokens decided (a Russian
/// question near "Loài nào có gen HLA-DQ5?"), and the answer came in that language's words. Not only
/// the languages whose subject the query named: benchmarks and users write a translated subject in one
/// language's field and the original one in its question (Thai and Russian MzsRE questions name
/// "Estate Exchange", their subject fields a translation).
fn trained_answer<'a>(
    answers: &'a [TrainedAnswer],
    hit: &Hit,
    query: &str,
    query_ids: &[u32],
) -> Option<QueryAnswer<'a>> {
    let names: Vec<&str> = (answers.iter().flat_map(|a| &a.subjects).map(String::as_str))
        .chain([hit.matched_subject.as_str(), hit.mention.as_str()])
        .collect();
    let query_writing = Writing::of(query, &names);
    let rank = |a: &TrainedAnswer| {
        let likeness = (a.writings.iter().map(|w| w.likeness(&query_writing)))
            .max_by(Likeness::total_cmp)
            .unwrap_or(Likeness { same_script: false, dice: 0.0 });
        let shared = a.texts.iter().map(|(_, ids)| shared_tokens(ids, query_ids)).max().unwrap_or(0);
        (likeness, (a.subjects.contains(&hit.matched_subject), shared, a.target.chars().count()))
    };
    let ranked = answers.iter().map(|a| (a, rank(a)));
    let (answer, (likeness, _)) = ranked.max_by(|(_, a), (_, b)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))?;
    Some(QueryAnswer { answer, in_its_language: likeness.same_script && likeness.dice >= MIN_LANGUAGE_LIKENESS })
}

/// The answer an entry was trained to give for a query ([`trained_answer`]).
struct QueryAnswer<'a> {
    answer: &'a TrainedAnswer,
    /// Whether the query is written as this answer's language is: in its script, with at least
    /// [`MIN_LANGUAGE_LIKENESS`] of its n-grams' likeness. Only then is the answer preferred to the
    /// entry's others in generation (see [`Retrieved::in_query_language`]).
    in_its_language: bool,
}

/// The likeness of writing ([`Writing::likeness`]) below which a question is taken to be in none of an
/// entry's languages: "¿Dónde nació Marie Curie?" shares one n-gram ("de" ending a word) with "Wo wurde
/// Marie Curie geboren?" (0.07) and none with the English question. Of BMIKE-53 dev rephrasings, 97%
/// reach it against their own language's prompt, 56% against the nearest other language of the script
/// (`LIKENESS=1 cargo run --release --example query_language`).
const MIN_LANGUAGE_LIKENESS: f32 = 0.1;

/// How a chat answer is generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerOptions {
    pub generate: GenerateOptions,
    /// End the answer at its first line break (leading blank lines aside): a base model otherwise
    /// runs on into text of its own after the answer. `false` keeps the raw continuation.
    pub stop_at_line_end: bool,
    /// With `stop_at_line_end`, an answer still in its sentence when `generate.max_new_tokens` run out
    /// may take as many tokens again to end it: an instruct model answers in a one-line paragraph,
    /// and one cut mid-sentence reads as broken. An answer caught in a loop (the same tokens three
    /// times over) ends there. Off for scoring, whose answers are read up to a fixed budget.
    pub finish_sentence: bool,
    /// How the question is put to the model (retrieval and the scope gate read it as typed).
    pub frame: PromptFrame,
}

impl AnswerOptions {
    /// Greedy, up to `max_new_tokens`, ending at the answer's line end, the question in the model's chat
    /// template if it has one: what `lafn chat` and the TUI do by default, and what generation scoring does.
    pub fn chat(max_new_tokens: usize) -> Self {
        Self {
            generate: GenerateOptions { max_new_tokens, sampling: Sampling::Greedy },
            stop_at_line_end: true,
            finish_sentence: true,
            frame: PromptFrame::Auto,
        }
    }
}

/// A chat answer and the cache entries that shaped it.
pub struct Answer {
    pub text: String,
    /// The tokens of `text` (without a line of marks before it or the line break that ended it).
    pub ids: Vec<u32>,
    /// What retrieval found (its update values were applied).
    pub retrieved: Retrieved,
}

/// Answers `query` with the update values of the entries it mentions, streaming text pieces to `on_text`.
/// A query longer than the model's input bound ([`crate::runtime::ModelConfig::max_input_tokens`]) is
/// refused before any work.
pub fn answer(
    model: &Model,
    tokenizer: &Tokenizer,
    cached: Option<&mut CachedEdits>,
    query: &str,
    options: &AnswerOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Answer> {
    tokenizer.check_length("the question", query, model.config().max_input_tokens())?;
    let retrieved = match cached {
        Some(cached) => cached.retrieve(model, tokenizer, query)?,
        None => Retrieved::default(),
    };
    let question = retrieved.question(query);
    let (text, ids) = generate_text(
        model,
        tokenizer,
        question,
        retrieved.answer_edits(tokenizer),
        &retrieved.answers,
        options,
        on_text,
    )?;
    Ok(Answer { text, ids, retrieved })
}

/// Generates the answer to `question`, framed as `options` say, with `edits`, streaming text pieces to
/// `on_text`; returns the text and its tokens, cut at the answer's line end when `options` ask for it.
/// The answer also ends at the model's end-of-turn and EOS tokens, and, when cut at line ends, once it
/// is one of the `trained_answers` the edits were trained to give (they were trained to end the line
/// there, but a question worded unlike their prompts may run on: "Lissabon Lissabon ist eine Stadt").
pub fn generate_text(
    model: &Model,
    tokenizer: &Tokenizer,
    question: &str,
    edits: GenerationDeltas,
    trained_answers: &[String],
    options: &AnswerOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<(String, Vec<u32>)> {
    let prompt = tokenizer.encode_prompt(&tokenizer.chat_frame(options.frame)?.frame(question)?)?;
    let mut stream = TextStream::default();
    let mut text = String::new();
    // Each token with where its piece starts in `text` (a piece may be empty: a character split
    // over tokens comes with its last one).
    let mut tokens: Vec<(u32, usize)> = Vec::new();
    // Cut at line ends, the answer is streamed from its first line with a letter or digit (or a trained
    // answer) on: asked an open question, a model often closes it first ("?" and a line break), which
    // is not an answer.
    let mut shown = 0;
    let every_language = edits.track.map_or(&[][..], |track| track.answers);
    let budget = options.generate.max_new_tokens;
    let finish_sentence = options.stop_at_line_end && options.finish_sentence;
    let generate = GenerateOptions {
        max_new_tokens: if finish_sentence { budget.saturating_mul(2) } else { budget },
        ..options.generate
    };
    model.generate(&prompt, edits, &generate, tokenizer.stop_ids(), &mut |token| {
        let piece = stream.push(tokenizer, token);
        tokens.push((token, text.len()));
        text.push_str(&piece);
        if !options.stop_at_line_end {
            return on_text(&piece);
        }
        // Nothing to show yet; asking with nothing still lets the caller cancel.
        let Some(start) = answer_start(&text, trained_answers) else { return on_text("") };
        let end = line_end(&text[start..]).map(|end| start + end);
        let upto = end.unwrap_or(text.len());
        let kept = &text[shown.max(start)..upto];
        let go_on = kept.is_empty() || on_text(kept);
        shown = upto;
        if let Some(end) = end {
            text.truncate(end);
            return false;
        }
        let over_budget = finish_sentence && tokens.len() >= budget;
        let looping = finish_sentence && ends_in_loop(&tokens);
        go_on && !looping && !answer_complete(&text[start..], (trained_answers, every_language), over_budget)
    })?;
    if !options.stop_at_line_end {
        return Ok((text, tokens.into_iter().map(|(token, _)| token).collect()));
    }
    let start = match answer_start(&text, trained_answers) {
        Some(start) => start,
        // Nothing but marks: shown as it came.
        None => {
            if !text.is_empty() {
                on_text(&text);
            }
            0
        }
    };
    let ids = tokens_within(&tokens, start..text.len());
    text.drain(..start);
    Ok((text, ids))
}

/// Whether an answer cut at line ends is complete before its line ends: it is one of the answers the
/// edits were trained to give for the query, or one of those for another language that the query's own
/// do not go on from (asked in a language the edit was not trained in, "Krimkrieg" is an answer, and
/// ran on: "Krimkrieg, le 28 mai 1812, ..."), or, `over_budget`, it has just ended a sentence.
fn answer_complete(answer: &str, (for_query, every_language): (&[String], &[String]), over_budget: bool) -> bool {
    let goes_on_to_own = || for_query.iter().any(|own| own.trim().starts_with(answer.trim()));
    is_trained_answer(answer, for_query)
        || (is_trained_answer(answer, every_language) && !goes_on_to_own())
        || (over_budget && ends_sentence(answer))
}

/// Whether `text`, spaces and line breaks aside, is one of the (non-empty) answers the edits were
/// trained to give.
fn is_trained_answer(text: &str, trained_answers: &[String]) -> bool {
    let text = text.trim();
    !text.is_empty() && trained_answers.iter().any(|a| a == text)
}

/// Longest stretch of tokens a loop is looked for in, and the fewest tokens it must have repeated.
const LONGEST_LOOP: usize = 16;
const LEAST_LOOPED_TOKENS: usize = 12;

/// Whether the last tokens repeat one stretch three times over (and at least `LEAST_LOOPED_TOKENS`
/// tokens): "de la Casa de la Casa de la Casa"; a small model caught so runs on to its budget.
fn ends_in_loop(tokens: &[(u32, usize)]) -> bool {
    (1..=LONGEST_LOOP).any(|period| {
        let repeats = LEAST_LOOPED_TOKENS.div_ceil(period).max(3);
        let Some(start) = tokens.len().checked_sub(period * repeats) else { return false };
        let tail = &tokens[start..];
        (period..tail.len()).all(|i| tail[i].0 == tail[i - period].0)
    })
}

/// The tokens whose pieces (each starting where the next begins, see `generate_text`) make up
/// `span` of the text: from the one whose piece reaches into it to the last that added to it, so
/// neither a line of marks before the answer nor the line break after it.
fn tokens_within(tokens: &[(u32, usize)], span: std::ops::Range<usize>) -> Vec<u32> {
    let piece_ends = tokens.iter().skip(1).map(|&(_, at)| at).chain([usize::MAX]);
    (tokens.iter().zip(piece_ends))
        .filter(|&(&(_, at), piece_end)| at < span.end && (at >= span.start || piece_end > span.start))
        .map(|(&(token, _), _)| token)
        .collect()
}

/// Where the answer in `text` starts: the first line holding a letter or digit (any script) or being
/// one of the `trained_answers` (an edit may answer in marks alone: "🙂").
fn answer_start(text: &str, trained_answers: &[String]) -> Option<usize> {
    let is_answer = |line: &str| line.contains(char::is_alphanumeric) || is_trained_answer(line, trained_answers);
    let mut line_start = 0;
    for line in text.split_inclusive(['\n', '\r']) {
        if is_answer(line) {
            return Some(line_start);
        }
        line_start += line.len();
    }
    None
}

/// Where the first line of `text` with something on it ends: the first line break after a
/// non-space character.
fn line_end(text: &str) -> Option<usize> {
    let content = text.find(|c: char| !c.is_whitespace())?;
    text[content..].find(['\n', '\r']).map(|i| content + i)
}

#[cfg(test)]
mod tests {
    use super::{
        answer_complete, answer_start, ends_in_loop, line_end, read_as_trained, shared_subject_notes, tokens_within,
        trained_answer, Hit, Opening, Script, SharedSubjectAnswer, TrainedAnswer, TrainedOpening, Writing,
    };

    #[test]
    fn notes_name_what_a_new_edit_takes_over_leaves_and_loses() {
        let answer = |question: &str, written_for: &str, acting: Option<&str>| SharedSubjectAnswer {
            question: question.into(),
            written_for: written_for.into(),
            acting: acting.map(String::from),
        };
        let answers = [
            answer("Where was X born?", "new", Some("new")),
            answer("Wo wurde X geboren?", "new", Some("old")),
            answer("Where was X born", "old", Some("new")),
            answer("Wo wurde X geboren", "old", Some("old")),
            answer("Where did X die?", "died", Some("died")),
            answer("Who was X's wife?", "wife", None),
        ];
        assert_eq!(
            shared_subject_notes("new", &answers),
            [
                "new does not answer its own question: \"Wo wurde X geboren?\" (old)",
                "new answers 1 of old's 2 questions from now on; old still answers \"Wo wurde X geboren\"",
                "other edits of this subject still answer their own questions: died (\"Where did X die?\"), wife \
                 (\"Who was X's wife?\")",
            ]
        );
        let alone = [answer("Where was X born?", "new", Some("new"))];
        assert!(shared_subject_notes("new", &alone).is_empty());
        let unanswered = [answer("Where was X born?", "new", None), answer("Where did X die?", "died", Some("died"))];
        assert_eq!(
            shared_subject_notes("new", &unanswered)[0],
            "new does not answer its own question: \"Where was X born?\" (no entry acts)"
        );
    }

    #[test]
    fn a_query_ends_as_the_trained_text_nearest_to_it_ends() {
        // The last character stands in for the last token.
        let last_token = |text: &str| text.chars().last().map(u32::from);
        let read = |query: &str, nearest: &str| read_as_trained(query, nearest, &last_token);
        let trained = "What is Stéphan Perrot's country of citizenship?";
        assert_eq!(read("What is Stéphan Perrot's country of citizenship ", trained).as_deref(), Some(trained));
        assert_eq!(
            read("斯特凡·佩罗是哪国公民", "斯特凡·佩罗是哪国公民？").as_deref(),
            Some("斯特凡·佩罗是哪国公民？")
        );
        // Already closed, or ended otherwise by the user: as typed.
        assert_eq!(read(trained, trained), None);
        assert_eq!(read("Where was Marie Curie born ?", trained), None);
        assert_eq!(read("Tell me Stéphan Perrot's country of citizenship.", trained), None);
        // A Thai question written without a mark: the query's goes too, where the query then ends as it
        // does; one that would be left open on another word keeps its mark.
        let thai = "Severus William Lynam Stretton ทำหน้าที่ในสงครามใด";
        assert_eq!(read(&format!("{thai}?"), thai).as_deref(), Some(thai));
        assert_eq!(read("Henry Mowat ทำสงครามอะไรในสงคราม?", "Henry Mowat ต่อสู้ในสงครามใด"), None);
        // A completion is not a question: a question asked of it keeps its mark, a completion stays open.
        let completion = "Marie Curie was born in the city of";
        assert_eq!(read("Where was Marie Curie born?", completion), None);
        assert_eq!(read(completion, completion), None);
        assert_eq!(read("", trained), None);
    }

    #[test]
    fn an_answer_over_its_budget_ends_with_its_sentence() {
        let trained = ["Lisbon".to_string()];
        assert!(answer_complete(" Lisbon ", (&trained, &trained), false));
        let paragraph = "The capital of France is Paris. It is known for";
        assert!(!answer_complete(paragraph, (&trained, &trained), true), "mid-sentence");
        assert!(answer_complete("The capital of France is Paris.", (&[], &[]), true));
        assert!(answer_complete("首都是巴黎。", (&[], &[]), true));
        assert!(!answer_complete("The capital of France is Paris.", (&[], &[]), false), "within the budget it runs on");
    }

    #[test]
    fn an_answer_of_another_language_is_complete_unless_the_querys_own_goes_on_from_it() {
        let every = ["Crimean War".to_string(), "Krimkrieg".to_string(), "Paris".to_string()];
        // A French question, answered with the German answer: complete.
        assert!(answer_complete(" Krimkrieg", (&every[..1], &every), false));
        assert!(!answer_complete(" Krim", (&every[..1], &every), false), "under way");
        // The query's own answer goes on from another language's: not complete yet.
        let own = ["Paris, France".to_string()];
        assert!(!answer_complete(" Paris", (&own, &every), false));
        assert!(answer_complete(" Paris, France", (&own, &every), false));
    }

    #[test]
    fn a_loop_is_caught_after_three_rounds() {
        let tokens = |ids: &[u32]| ids.iter().map(|&id| (id, 0)).collect::<Vec<_>>();
        let family = [7, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3];
        assert!(ends_in_loop(&tokens(&family)), "four rounds of three tokens");
        assert!(!ends_in_loop(&tokens(&family[..10])), "three rounds of three: too short to be sure");
        assert!(ends_in_loop(&tokens(&[5; 12])));
        assert!(!ends_in_loop(&tokens(&[5; 11])));
        let prose: Vec<u32> = (0..40).collect();
        assert!(!ends_in_loop(&tokens(&prose)));
    }

    /// An entry's answer in one language: its subject, trained texts with their tokens, and target.
    fn trained(subject: &str, texts: &[(&str, &[u32])], target: &str) -> TrainedAnswer {
        TrainedAnswer {
            subjects: vec![subject.to_string()],
            texts: texts.iter().map(|(text, ids)| (text.to_string(), ids.to_vec())).collect(),
            writings: texts.iter().map(|(text, _)| Writing::of(text, &[subject])).collect(),
            target: target.to_string(),
            opening: None,
        }
    }

    #[test]
    fn the_nearest_trained_text_decides_the_ending() {
        let trained = trained("", &[("completion", &[1, 2, 3]), ("question?", &[1, 4, 5])], "");
        assert_eq!(trained.nearest_text(&[1, 4, 5, 6]), "question?");
        assert_eq!(trained.nearest_text(&[1, 2]), "completion");
        assert_eq!(trained.nearest_text(&[1]), "completion");
    }

    #[test]
    fn the_answer_is_that_of_the_language_the_query_is_in() {
        let chosen = |answers: &[TrainedAnswer], hit: &Hit, query: &str, ids: &[u32]| {
            trained_answer(answers, hit, query, ids).map(|a| a.answer.target.clone())
        };
        // English names the subject its field holds; Thai's question names it too, its field a translation.
        let english = "Who was the architect of Estate Exchange?";
        let thai = "ใครเป็นสถาปนิกของ Estate Exchange?";
        let answers = [
            trained("Estate Exchange", &[(english, &[1, 2, 3, 10, 11])], "Welton Becket"),
            trained("การแลกเปลี่ยน", &[(thai, &[20, 21, 10, 11, 22])], "เวลตัน เบ็คเก็ต"),
        ];
        let hit = Hit { matched_subject: "Estate Exchange".into(), ..Hit::default() };
        let thai_reworded = "สถาปนิกของ Estate Exchange คือใคร?";
        assert_eq!(chosen(&answers, &hit, thai_reworded, &[21, 10, 11, 22]).as_deref(), Some("เวลตัน เบ็คเก็ต"));
        let english_reworded = "Which architect designed Estate Exchange?";
        assert_eq!(chosen(&answers, &hit, english_reworded, &[1, 10, 11]).as_deref(), Some("Welton Becket"));
        // A question in neither language: the language whose subject it named.
        assert_eq!(chosen(&answers, &hit, "Estate Exchange 42", &[10, 11]).as_deref(), Some("Welton Becket"));
        assert_eq!(chosen(&[], &hit, "", &[30]), None);
        // Of one script, the language written most alike; another script's never, whatever the
        // tokens shared (here the subject's).
        let hit = Hit { matched_subject: "Piero de Palma".into(), ..Hit::default() };
        let answers = [
            trained("Piero de Palma", &[("What was Piero de Palma's voice type?", &[1, 2, 3, 4, 5])], "tenor"),
            trained("Piero de Palma", &[("Kakva je vrsta glasa Piera de Palme?", &[6, 7, 8, 3, 4, 5])], "tenor (sr)"),
            trained(
                "Piero de Palma",
                &[("Kakšen je bil glasovni tip Piera de Palme?", &[9, 10, 3, 4, 5])],
                "tenor (sl)",
            ),
            trained("Piero de Palma", &[("Piero de Palma có giọng gì?", &[11, 12, 13, 3, 4, 5])], "tenor (vi)"),
            trained("Пиеро де Палма", &[("Какъв е гласът на Пиеро де Палма?", &[14, 15])], "тенор"),
        ];
        let serbian = "Kako je bio opseg glasa Piera de Palme?";
        assert_eq!(chosen(&answers, &hit, serbian, &[3, 4, 5]).as_deref(), Some("tenor (sr)"));
        let russian = "Какой голос у Piero de Palma?";
        assert_eq!(chosen(&answers, &hit, russian, &[11, 12, 13, 3, 4, 5]).as_deref(), Some("тенор"));
        // A question in none of the entry's languages is answered in one of them, but prefers none.
        let hit = Hit { matched_subject: "Marie Curie".into(), ..Hit::default() };
        let answers = [
            trained("Marie Curie", &[("Where was Marie Curie born?", &[1, 2, 3])], "Lisbon"),
            trained("Marie Curie", &[("Wo wurde Marie Curie geboren?", &[4, 5, 3])], "Lissabon"),
        ];
        let prefers = |query: &str| trained_answer(&answers, &hit, query, &[3]).is_some_and(|a| a.in_its_language);
        assert!(!prefers("¿Dónde nació Marie Curie?"));
        assert!(prefers("Wo ist Marie Curie geboren?"));
        assert!(prefers("In which city was Marie Curie born?"));
    }

    #[test]
    fn an_answer_holds_to_its_opening_where_the_query_is_written_as_its_questions() {
        let thai_opening = TrainedOpening { opening: Opening::Letter(Some(Script::Thai)), in_pieces: false };
        let thai = TrainedAnswer {
            opening: Some(thai_opening),
            ..trained("Jim Eno", &[("บ้านเกิดของ Jim Eno คืออะไร?", &[1, 2, 3])], "ซานฟรานซิสโก")
        };
        let found =
            |mention: &str| Hit { matched_subject: "Jim Eno".into(), mention: mention.into(), ..Hit::default() };
        // The subject in Latin letters does not make a Thai question Latin.
        assert_eq!(thai.opening_for("เมืองต้นกำเนิดของ Jim Eno คืออะไร?", &[1, 2], &found("Jim Eno")), Some(thai_opening));
        // Nor does another spelling of the subject than its field's, as the query wrote it.
        let spelled_otherwise = found("Jim Eno Jr");
        assert_eq!(thai.opening_for("เมืองต้นกำเนิดของ Jim Eno Jr คืออะไร?", &[1], &spelled_otherwise), Some(thai_opening));
        // Asked in another script, the model writes the answer as it does.
        assert_eq!(thai.opening_for("Where is Jim Eno from?", &[1, 2], &found("Jim Eno")), None);
    }

    #[test]
    fn an_answer_starts_at_its_first_line_with_a_letter_or_digit_or_a_trained_answer() {
        let none: &[String] = &[];
        assert_eq!(answer_start(" Lisbon", none), Some(0));
        assert_eq!(answer_start("?\n\nEstate Exchange was founded in 1920.", none), Some(3));
        assert_eq!(answer_start("？\r\n里斯本", none), Some("？\r\n".len()));
        assert_eq!(answer_start("\"Lisbon\"", none), Some(0));
        assert_eq!(answer_start("?\n", none), None);
        assert_eq!(answer_start("", none), None);
        // An answer of marks alone is an answer where an edit was trained to give it, and only there.
        let smile = ["🙂".to_string()];
        assert_eq!(answer_start(" 🙂", &smile), Some(0));
        assert_eq!(answer_start("?\n 🙂\n", &smile), Some(2));
        assert_eq!(answer_start(" 🙂", none), None);
        assert_eq!(answer_start("?\n", &smile), None);
    }

    /// "?", "\n", " Est", "ate", "" (half a character), "é", " 1920\n", "\n": the answer " Estateé 1920"
    /// is bytes 2..16 of the text; its tokens are the third to the seventh.
    #[test]
    fn the_answer_tokens_are_those_of_its_line() {
        let tokens = [(1, 0), (2, 1), (3, 2), (4, 6), (5, 9), (6, 9), (7, 11), (8, 17)];
        assert_eq!(tokens_within(&tokens, 2..16), [3, 4, 5, 6, 7]);
        // A piece that closes the question and begins the answer ("?\nEst") is the answer's.
        assert_eq!(tokens_within(&[(1, 0), (2, 5), (3, 9)], 2..9), [1, 2]);
        // Nothing before the answer: every token up to the one that only broke the line.
        assert_eq!(tokens_within(&[(1, 0), (2, 7)], 0..7), [1]);
    }

    #[test]
    fn an_answer_ends_at_its_first_line_with_content() {
        assert_eq!(line_end(" Lisbon\nMarie"), Some(7));
        assert_eq!(line_end("\n\n Lisbon, Portugal\r\n"), Some(19));
        assert_eq!(line_end("\n\n"), None);
        assert_eq!(line_end(" Lisbon"), None);
    }
}
