//! The scope of an edit: whether a query asks the edited fact, or only mentions its subject.
//!
//! Retrieval finds the entries whose subject a query names; an edit should act only when the query
//! also asks the edited relation ("Where was Marie Curie born?", not "Whom did Marie Curie marry?").
//! The model's own representation is the judge. A question's vector is its residual stream at a layer
//! two thirds deep, averaged over its tokens, with the subject replaced by a placeholder: what is left
//! is what the question asks about the subject, across languages and wordings. (The last token alone,
//! or the subject left in, carries much of the sentence's form and of the subject itself: on MzsRE dev
//! questions, rephrasings vs same-subject other-relation questions, ROC AUC 0.78 for the last token at
//! half depth, 0.91 for this; docs/results.md, "Scope".) Each entry keeps these vectors for its
//! prompts and paraphrases in every language (its *scope keys*); a query's *scope score* is the largest
//! cosine similarity between its vector (masked for that entry's subject) and the keys, and the entry
//! acts only when the score reaches the threshold. Vectors are taken relative to the mean over a fixed
//! set of unrelated questions, so what every question shares does not count as likeness. This is the
//! activation-keyed gate of GRACE / WISE / SERAC-style editors, keyed by the question rather than by
//! the subject.
//!
//! A threshold alone is one radius for every language, and in languages the model knows poorly all
//! questions about a subject look alike. So each entry also keeps the vectors of questions about its
//! subject's *other* relations (the language table's: known for, who is, born where and when,
//! occupation, language, died where and when, worked where), and the query must resemble the entry's own
//! questions more than those (a nearest-class decision with the entry's questions as one class). Those
//! are questions about people; the relation table's wordings (works, organisations, places too) count
//! the same way, all but the relations nearest the entry's own (see
//! [`ScopeSettings::relation_table_margin`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use color_eyre::eyre::{bail, WrapErr};
use serde::{Deserialize, Serialize};

use super::group::EditGroup;
use super::prompts;
use super::relation_table;
use crate::runtime::{Hooks, Model, PaddedBatch, Tokenizer, WeightMode};
use crate::text::languages;
use crate::Result;

/// How an entry's scope is decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScopeSettings {
    /// An entry whose subject a query names acts only when the query's scope score (cosine
    /// similarity to the entry's prompts and paraphrases, in [-1, 1], on the scale of the model's
    /// relation space: see `RelationProjection::score`) is at least this; `null` turns the gate off
    /// (every mention of the subject fires, the score is only shown). Default 0.6: on 8
    /// held-out MzsRE dev records x 6 languages, generated answers, it keeps Generality at 79.0 (83.9
    /// without the gate) and leaves 97.9% of same-subject other-relation questions unchanged (0
    /// without), 1.0% stating the new object; 0.55 gives 81.8 / 94.8 / 4.2%. See docs/results.md,
    /// "Gate v5".
    pub threshold: Option<f32>,
    /// The layer whose residual stream represents a question, as a fraction of the model's depth.
    pub depth: f32,
    /// Compare questions in the model's relation space (see [`RelationProjection`]) when one is fitted
    /// for this model and layer; otherwise, or when off, in the residual stream itself.
    pub projection: bool,
    /// An entry also acts only when the query's scope score beats, by at least this, its similarity
    /// to questions about the subject's other relations (all but the one most like the entry's own
    /// questions when that one reaches the threshold: it may ask the edited relation); `null` does
    /// not compare. Default 0: on the held-out facts above, Specificity 87.4 -> 89.4 at the same
    /// Generality; in 10 BMIKE-53 languages outside MzsRE, other-relation questions stopped 49 -> 72%
    /// (Welsh 0 -> 69%) for 2% of rephrasings. See docs/results.md, "Gate v4".
    pub other_relations_margin: Option<f32>,
    /// An entry's questions are widened by the relation the relation space knows (the mean vector of
    /// a benchmark fact's questions in every language and wording it was fitted on) that one of them
    /// resembles most, when at least this much (cosine), so a query wording the relation as the
    /// entry's own questions do not ("The film X is by whom?" for "Who directed X?") still reaches
    /// it. `null`: only the entry's own questions count. Default 0.6: on 50 held-out Bi-ZsRE facts (en, zh) it
    /// lets 83% of rephrasings fire instead of 76% and still stops 98% of other-relation questions
    /// (99% before); on held-out MzsRE facts 93% instead of 91%, stopping as many. See
    /// docs/results.md, "Gate v6".
    pub known_relation_similarity: Option<f32>,
    /// A query fires an entry only when its scope score beats, by more than this, its likeness to the
    /// questions the user said do not ask the entry's fact (see [`TaughtQuestions`]): questions almost
    /// as like one of those as like the entry's own are taken as not asking it either. Default 0.1:
    /// in ten BMIKE-53 languages the model knows poorly, after one other-relation question that fired
    /// was taught not to, the entry's other such questions that fired went 78 -> 42 of 192 (at 0: 69),
    /// its rephrasings 62 -> 58 of 64. See docs/results.md, stop 51.
    pub taught_margin: f32,
    /// The relation table's wordings (`assets/scope/relations.toml`, 65 relations of people, works,
    /// organisations and places) also judge a query: the relation whose wordings an entry's questions
    /// resemble most counts as the entry's own when it reaches the threshold, and the relations this
    /// much or more below it count against the entry, as the other-relation questions do (those
    /// between count neither way: the relation space tells neighbouring relations apart less well than
    /// it tells wordings together). So "Who published X?" does not fire an edit of "Who wrote X?", nor
    /// "Who is the CEO of X?" one of "Who founded X?", and "Who is the author of X?" does. `null`: the
    /// table is not read. Default 0.2: rephrasings that fire, held-out MzsRE facts 91.6 -> 93.9%, 34
    /// BMIKE-53 languages 92.1 -> 94.6%, other-relation questions that fire 1.2 -> 1.3% and 11.8 ->
    /// 11.1%; see docs/results.md, stop 54.
    pub relation_table_margin: Option<f32>,
}

impl Default for ScopeSettings {
    fn default() -> Self {
        Self {
            threshold: Some(DEFAULT_THRESHOLD),
            depth: DEFAULT_DEPTH,
            projection: true,
            other_relations_margin: Some(DEFAULT_OTHER_RELATIONS_MARGIN),
            known_relation_similarity: Some(DEFAULT_KNOWN_RELATION_SIMILARITY),
            taught_margin: DEFAULT_TAUGHT_MARGIN,
            relation_table_margin: Some(DEFAULT_RELATION_TABLE_MARGIN),
        }
    }
}

const DEFAULT_THRESHOLD: f32 = 0.6;
const DEFAULT_DEPTH: f32 = 2.0 / 3.0;
const DEFAULT_OTHER_RELATIONS_MARGIN: f32 = 0.0;
const DEFAULT_KNOWN_RELATION_SIMILARITY: f32 = 0.6;
const DEFAULT_TAUGHT_MARGIN: f32 = 0.1;
const DEFAULT_RELATION_TABLE_MARGIN: f32 = 0.2;

/// How much a query asks an entry's fact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScopeScore {
    /// Best cosine similarity to the entry's prompts and paraphrases, in [-1, 1].
    pub edited: f32,
    /// Best cosine similarity to the questions about the subject's other relations; `None` when the
    /// entry has none that count (see [`ScopeSettings::other_relations_margin`]).
    pub other_relations: Option<f32>,
    /// Best cosine similarity to the questions the user said do not ask the entry's fact (see
    /// [`TaughtQuestions`]); `None` when there are none.
    pub taught_not_asked: Option<f32>,
}

impl ScopeSettings {
    /// The layer the settings choose in a model of `num_layers` layers.
    pub fn layer(&self, num_layers: usize) -> usize {
        let depth = if self.depth.is_finite() { self.depth.clamp(0.0, 1.0) } else { DEFAULT_DEPTH };
        ((depth * num_layers as f32).round() as usize).min(num_layers.saturating_sub(1))
    }

    /// Whether a query with this scope score asks the entry's fact. A query about as like a question
    /// the user said does not ask it as like the entry's own questions (see
    /// [`ScopeSettings::taught_margin`]) never does, with the gate on or off: the user's word is the last.
    pub fn in_scope(&self, score: ScopeScore) -> bool {
        if score.taught_not_asked.is_some_and(|taught| score.edited - taught <= self.taught_margin) {
            return false;
        }
        let Some(threshold) = self.threshold else { return true };
        let beats_other_relations = match (self.other_relations_margin, score.other_relations) {
            (Some(margin), Some(other)) => score.edited - other >= margin,
            _ => true,
        };
        score.edited >= threshold && beats_other_relations
    }
}

/// What the user told the gate about an entry, where it erred: questions that ask the entry's fact
/// although it did not act ("Où est la tour Eiffel ?" for an edit of the city the tower is in), and
/// questions that do not although it did (in a language the model knows poorly, every question about
/// the subject can look like the edited one). Kept with the entry, subject masked as the gate reads
/// them; the first count as the entry's own questions, the second against it (see
/// [`ScopeSettings::in_scope`]), and questions worded like them follow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaughtQuestions {
    pub asks: Vec<String>,
    pub not_asked: Vec<String>,
}

/// Most questions of each kind an entry keeps; the oldest go first.
pub const MAX_TAUGHT_QUESTIONS: usize = 64;

/// Characters kept of a taught question: its end, which is what the gate reads of a long one.
const MAX_TAUGHT_CHARS: usize = 2000;

impl TaughtQuestions {
    pub fn is_empty(&self) -> bool {
        self.asks.is_empty() && self.not_asked.is_empty()
    }

    /// Records that the masked question `masked` asks the entry's fact (`asks`) or does not; told
    /// both ways, the latest holds.
    pub fn learn(&mut self, masked: &str, asks: bool) -> Result<()> {
        let masked = masked.trim();
        if masked.is_empty() {
            bail!("no question to teach");
        }
        let skipped = masked.chars().count().saturating_sub(MAX_TAUGHT_CHARS);
        let kept = masked.chars().skip(skipped).collect::<String>();
        self.asks.retain(|q| *q != kept);
        self.not_asked.retain(|q| *q != kept);
        let list = if asks { &mut self.asks } else { &mut self.not_asked };
        list.push(kept);
        if list.len() > MAX_TAUGHT_QUESTIONS {
            list.remove(0);
        }
        Ok(())
    }
}

/// The vectors of an entry's [`TaughtQuestions`], (questions, hidden) each; `None` where there are none.
#[derive(Debug, Clone, Default)]
pub struct TaughtVectors {
    pub asks: Option<Tensor>,
    pub not_asked: Option<Tensor>,
}

/// Unrelated questions in several languages and scripts; their mean vector is what every question
/// shares, taken out before comparing.
const REFERENCE_QUESTIONS: &[&str] = &[
    "What is the capital of Australia?",
    "Who wrote the novel War and Peace?",
    "When did the Second World War end?",
    "Which river flows through Cairo?",
    "Wie hoch ist der höchste Berg der Alpen?",
    "Quelle langue parle-t-on au Brésil ?",
    "¿Quién pintó la Mona Lisa?",
    "Какой самый большой океан на Земле?",
    "中国的首都是哪个城市？",
    "ภาษาราชการของญี่ปุ่นคือภาษาอะไร",
    "Türkiye'nin en kalabalık şehri hangisidir?",
    "Ai là người phát minh ra bóng đèn?",
];

/// Turns questions into unit vectors that can be compared for what they ask.
pub struct QuestionEncoder {
    layer: usize,
    /// The first token a question vector averages over: the one after the first, which holds the
    /// attention sink (the BOS, or in models without one the question's first word, whose outsized
    /// vector would otherwise outweigh the rest: on held-out MzsRE facts it lifts the ROC AUC of
    /// rephrasings against other relations from 0.64 to 0.91 in Qwen2.5 and from 0.67 to 0.74 in
    /// SmolLM2; docs/results.md, "The attention sink").
    read_from: usize,
    /// BOS tokens the tokenizer puts before a prompt: where keys stored without a recorded first
    /// token were read from.
    bos_tokens: usize,
    /// The weights it reads questions on: its center is theirs.
    mode: WeightMode,
    /// Mean vector of the reference questions at `layer`, (hidden).
    center: Tensor,
    /// What `center` was computed from (see `center_key`), saved with it.
    center_key: String,
    /// The model's relation space, when one is fitted for it and the settings use it.
    projection: Option<RelationProjection>,
    /// The gate's threshold (see [`QuestionEncoder::prepare`]).
    threshold: Option<f32>,
    /// See [`ScopeSettings::known_relation_similarity`].
    known_relation_similarity: Option<f32>,
    /// The relation table's wordings, when the settings read it (see
    /// [`ScopeSettings::relation_table_margin`]).
    relation_table: Option<RelationTableVectors>,
    /// Vectors of one language's other-relation questions, by their masked texts: with the subject
    /// masked they are the same for every entry in that language, and encoding them was half of
    /// making an entry's keys. Valid for the model the encoder was made for, as its center is.
    other_relation_vectors: Mutex<HashMap<Vec<String>, Tensor>>,
}

/// Languages whose other-relation vectors an encoder keeps (a bound: masked texts differ only where a
/// subject could not be masked).
const KEPT_OTHER_RELATION_LANGUAGES: usize = 256;

/// What an encoder computed that is the same for every entry, as saved beside a cache (see
/// [`QuestionEncoder::reusing`]): its center (the model's pass over the reference questions takes a
/// good part of a second, every time a cache is opened) and the vectors of each language's masked
/// other-relation questions (half of making a 12-language entry's keys, the first time a process
/// meets the language).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEncoder {
    /// What the center was computed from besides the model (see `center_key`); the other-relation
    /// vectors were computed with the same encoder.
    pub key: String,
    /// The center.
    pub values: Vec<f32>,
    /// Absent from caches saved before the vectors were (they are computed again).
    #[serde(default)]
    pub other_relations: Vec<SavedQuestionVectors>,
}

/// The vectors of a set of masked questions, row after row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedQuestionVectors {
    pub masked: Vec<String>,
    pub vectors: Vec<f32>,
}

impl QuestionEncoder {
    pub fn new(model: &Model, tokenizer: &Tokenizer, settings: &ScopeSettings) -> Result<Self> {
        Self::reusing(model, tokenizer, settings, None)
    }

    /// As [`QuestionEncoder::new`], its center and other-relation vectors taken from `saved` when that
    /// was computed as this encoder would compute it (same weights' mode, layer, first position and
    /// reference questions' tokens; the caller vouches for the weights) and holds finite numbers of the
    /// right shape, else computed (when needed).
    pub fn reusing(
        model: &Model,
        tokenizer: &Tokenizer,
        settings: &ScopeSettings,
        saved: Option<&SavedEncoder>,
    ) -> Result<Self> {
        let layer = settings.layer(model.config().num_layers);
        let bos_tokens = tokenizer.encode_prompt("")?.len();
        let read_from = bos_tokens.max(1);
        let hidden = model.config().hidden_size;
        let center_key = center_key(model, tokenizer, layer, read_from)?;
        let reusable =
            saved.filter(|s| s.key == center_key && s.values.len() == hidden && s.values.iter().all(|v| v.is_finite()));
        let center = match reusable {
            Some(saved) => Tensor::from_slice(&saved.values, hidden, model.device())?,
            None => mean_residuals(model, tokenizer, REFERENCE_QUESTIONS, layer, read_from)?.mean(0)?,
        };
        let projection = match settings.projection {
            true => RelationProjection::fitted_for(layer, &center)?,
            false => None,
        };
        let mut other_relation_vectors = HashMap::new();
        for kept in reusable.iter().flat_map(|s| &s.other_relations).take(KEPT_OTHER_RELATION_LANGUAGES) {
            let whole = !kept.masked.is_empty() && kept.vectors.len() == kept.masked.len() * hidden;
            if whole && kept.vectors.iter().all(|v| v.is_finite()) {
                let vectors = Tensor::from_slice(&kept.vectors, (kept.masked.len(), hidden), model.device())?;
                other_relation_vectors.insert(kept.masked.clone(), vectors);
            }
        }
        let mut encoder = Self {
            layer,
            read_from,
            bos_tokens,
            mode: model.mode(),
            center,
            center_key,
            projection,
            threshold: settings.threshold,
            known_relation_similarity: settings.known_relation_similarity,
            relation_table: None,
            other_relation_vectors: Mutex::new(other_relation_vectors),
        };
        if let (Some(margin), Some(_)) = (settings.relation_table_margin, settings.threshold) {
            // Masked as every question is, so they are the same for every entry; kept (and saved) as
            // a language's other-relation questions are.
            let (masked, relation_of) = relation_table::wordings(SUBJECT_PLACEHOLDER);
            let vectors = encoder.other_relation_vectors(model, tokenizer, masked)?;
            encoder.relation_table = Some(RelationTableVectors { vectors, relation_of, margin });
        }
        Ok(encoder)
    }

    pub fn layer(&self) -> usize {
        self.layer
    }

    /// The weights it reads questions on.
    pub fn mode(&self) -> WeightMode {
        self.mode
    }

    /// The first token position a question vector averages over.
    pub fn read_from(&self) -> usize {
        self.read_from
    }

    /// Whether stored keys were read as this encoder reads questions (same layer, same first token),
    /// so that they can be scored against its queries; other keys must be computed anew.
    pub fn reads_like(&self, keys: &ScopeKeys) -> bool {
        keys.layer == self.layer && keys.read_from.unwrap_or(self.bos_tokens) == self.read_from
    }

    /// The mean vector questions are taken relative to (what a fitted projection is matched by).
    pub fn center(&self) -> &Tensor {
        &self.center
    }

    /// What to save beside a cache: the center with what it was computed from, and the other-relation
    /// vectors kept so far (in the order of their texts, so that the same state saves the same).
    pub fn saved(&self) -> Result<SavedEncoder> {
        let kept = self.other_relation_vectors.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut other_relations = (kept.iter())
            .map(|(masked, vectors)| {
                let vectors = vectors.flatten_all()?.to_vec1()?;
                Ok(SavedQuestionVectors { masked: masked.clone(), vectors })
            })
            .collect::<Result<Vec<_>>>()?;
        other_relations.sort_by(|a, b| a.masked.cmp(&b.masked));
        Ok(SavedEncoder { key: self.center_key.clone(), values: self.center.to_vec1()?, other_relations })
    }

    /// How many languages' other-relation vectors it keeps: when this grows there is more to save.
    pub fn kept_languages(&self) -> usize {
        self.other_relation_vectors.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether scores are compared in a fitted relation space.
    pub fn projected(&self) -> bool {
        self.projection.is_some()
    }

    /// An entry's keys made ready for scoring queries (see [`PreparedKeys`]). The relation most like the
    /// entry's own questions (on average over the group's languages) may be the edited one (a
    /// birthplace edit and "Where was X born?"): when the gate would let it fire, it does not count
    /// against the entry, in any language. Only that one: in languages the model knows poorly every
    /// question about the subject reaches the threshold, and the others are what tells them apart.
    /// The entry's questions are first widened by the known relation they resemble most (see
    /// [`ScopeSettings::known_relation_similarity`]).
    pub fn prepare(&self, keys: &ScopeKeys, taught: &TaughtVectors) -> Result<PreparedKeys> {
        let directions_weight = keys.directions_weight();
        let own = match &taught.asks {
            Some(asks) => Tensor::cat(&[&keys.keys, asks], 0)?,
            None => keys.keys.clone(),
        };
        let own = self.in_space(&own, directions_weight)?;
        let table = self.relation_table.as_ref().map(|table| table.split(self, &own, directions_weight)).transpose()?;
        let own = match (&self.projection, self.known_relation_similarity) {
            (Some(projection), Some(min_similarity)) => projection.widen(&own, min_similarity, directions_weight)?,
            _ => own,
        };
        let others = self.in_space(&keys.other_relations, directions_weight)?;
        let likeness = self.best_scores(&others, &own)?;
        let relations = languages::other_question_count();
        let mut mean = vec![0.0f32; relations];
        for (row, s) in likeness.iter().enumerate() {
            mean[row % relations] += s / (likeness.len() / relations) as f32;
        }
        let (closest, closest_mean) =
            mean.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, m)| (i, *m)).unwrap_or((0, f32::MIN));
        let edited_relation = self.threshold.filter(|&t| closest_mean >= t).map(|_| closest);
        let counted: Vec<u32> =
            (0..likeness.len() as u32).filter(|&row| Some(row as usize % relations) != edited_relation).collect();
        let other_relations = selected_rows(&others, counted)?;
        let (own, other_relations) = match table {
            Some(TableSplit { asked, not_asked }) => {
                let own = match asked {
                    Some(asked) => Tensor::cat(&[&own, &asked], 0)?,
                    None => own,
                };
                let other_relations = match (other_relations, not_asked) {
                    (Some(others), Some(not_asked)) => Some(Tensor::cat(&[&others, &not_asked], 0)?),
                    (others, not_asked) => others.or(not_asked),
                };
                (own, other_relations)
            }
            None => (own, other_relations),
        };
        let taught_not_asked = taught.not_asked.as_ref().map(|v| self.in_space(v, directions_weight)).transpose()?;
        Ok(PreparedKeys { own, other_relations, taught_not_asked, directions_weight })
    }

    /// The scope score of a query vector (from [`QuestionEncoder::encode`]) for an entry's prepared
    /// keys: the best cosines over its own questions and over the other-relation questions that count.
    pub fn score(&self, keys: &PreparedKeys, query: &Tensor) -> Result<ScopeScore> {
        let query = self.in_space(&query.unsqueeze(0)?, keys.directions_weight)?;
        let edited = self.best_scores(&query, &keys.own)?[0];
        let best = |vectors: &Option<Tensor>| -> Result<Option<f32>> {
            Ok(match vectors {
                Some(vectors) => Some(self.best_scores(&query, vectors)?[0]),
                None => None,
            })
        };
        let other_relations = best(&keys.other_relations)?;
        let taught_not_asked = best(&keys.taught_not_asked)?;
        Ok(ScopeScore { edited, other_relations, taught_not_asked })
    }

    /// For each row of `queries` (queries, hidden), its best score with a row of `vectors`, as the
    /// gate compares questions for the entry of `keys`.
    pub fn similarities(&self, keys: &ScopeKeys, vectors: &Tensor, queries: &Tensor) -> Result<Vec<f32>> {
        let weight = keys.directions_weight();
        self.best_scores(&self.in_space(queries, weight)?, &self.in_space(vectors, weight)?)
    }

    /// [`best_cosines`] of rows already in the comparison space, on the gate's scale.
    fn best_scores(&self, queries: &Tensor, vectors: &Tensor) -> Result<Vec<f32>> {
        let cosines = best_cosines(queries, vectors)?;
        Ok(match &self.projection {
            Some(projection) => cosines.into_iter().map(|c| projection.score(c)).collect(),
            None => cosines,
        })
    }

    /// Unit vectors (rows) in the space questions are compared in: the relation space when there is
    /// one (its relation directions weighted by `directions_weight`), else as they are.
    fn in_space(&self, vectors: &Tensor, directions_weight: f32) -> Result<Tensor> {
        match &self.projection {
            Some(projection) => projection.apply(vectors, directions_weight),
            None => Ok(vectors.clone()),
        }
    }

    /// The vector of a question about one of `subjects`: the subject masked, centred, unit length.
    pub fn encode(&self, model: &Model, tokenizer: &Tokenizer, question: &str, subjects: &[String]) -> Result<Tensor> {
        let masked = mask_subject(question, subjects);
        Ok(self.encode_masked(model, tokenizer, &[masked.as_str()])?.squeeze(0)?)
    }

    /// Vectors of questions whose subject is already masked, (questions, hidden).
    fn encode_masked(&self, model: &Model, tokenizer: &Tokenizer, questions: &[&str]) -> Result<Tensor> {
        let means = mean_residuals(model, tokenizer, questions, self.layer, self.read_from)?;
        unit_rows(&means.broadcast_sub(&self.center)?)
    }

    /// The vectors of an entry's taught questions (already masked), encoded together.
    /// Of a list longer than [`MAX_TAUGHT_QUESTIONS`] (an `entry.json` written by hand), the newest;
    /// blank ones are passed over.
    pub fn encode_taught(
        &self,
        model: &Model,
        tokenizer: &Tokenizer,
        taught: &TaughtQuestions,
    ) -> Result<TaughtVectors> {
        let newest = |list: &[String]| -> Vec<String> {
            let asked = list.iter().filter(|q| !q.trim().is_empty());
            let mut newest: Vec<String> = asked.rev().take(MAX_TAUGHT_QUESTIONS).cloned().collect();
            newest.reverse();
            newest
        };
        let (asks, not_asked) = (newest(&taught.asks), newest(&taught.not_asked));
        let questions: Vec<&str> = asks.iter().chain(&not_asked).map(String::as_str).collect();
        if questions.is_empty() {
            return Ok(TaughtVectors::default());
        }
        let vectors = self.encode_masked(model, tokenizer, &questions)?;
        let rows = |from: usize, count: usize| -> Result<Option<Tensor>> {
            Ok((count > 0).then(|| vectors.narrow(0, from, count)).transpose()?)
        };
        Ok(TaughtVectors { asks: rows(0, asks.len())?, not_asked: rows(asks.len(), not_asked.len())? })
    }

    /// Vectors of questions about the group's subject, (questions, hidden).
    pub fn encode_about(
        &self,
        model: &Model,
        tokenizer: &Tokenizer,
        group: &EditGroup,
        questions: &[String],
    ) -> Result<Tensor> {
        let subjects = group.subjects();
        let masked: Vec<String> = questions.iter().map(|q| mask_subject(q, &subjects)).collect();
        self.encode_masked(model, tokenizer, &masked.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The scope keys of a group: the vectors of every language's prompt and paraphrases, and of its
    /// [`other_relation_questions`].
    pub fn keys(&self, model: &Model, tokenizer: &Tokenizer, group: &EditGroup) -> Result<ScopeKeys> {
        let texts: Vec<String> = (group.descriptors.iter())
            .flat_map(|d| std::iter::once(d.prompt.as_str()).chain(d.all_paraphrases()).map(String::from))
            .collect();
        let subjects = group.subjects();
        let others = (group.descriptors.iter())
            .map(|d| {
                let questions = prompts::other_relation_questions(&d.lang, &d.subject);
                let masked: Vec<String> = questions.iter().map(|q| mask_subject(q, &subjects)).collect();
                self.other_relation_vectors(model, tokenizer, masked)
            })
            .collect::<Result<Vec<Tensor>>>()?;
        Ok(ScopeKeys {
            layer: self.layer,
            read_from: Some(self.read_from),
            keys: self.encode_about(model, tokenizer, group, &texts)?,
            other_relations: Tensor::cat(&others, 0)?,
        })
    }

    /// The vectors of one language's masked other-relation questions, encoded together the first
    /// time they are asked for.
    fn other_relation_vectors(&self, model: &Model, tokenizer: &Tokenizer, masked: Vec<String>) -> Result<Tensor> {
        let mut kept = self.other_relation_vectors.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(vectors) = kept.get(&masked) {
            return Ok(vectors.clone());
        }
        let vectors = self.encode_masked(model, tokenizer, &masked.iter().map(String::as_str).collect::<Vec<_>>())?;
        if kept.len() >= KEPT_OTHER_RELATION_LANGUAGES {
            kept.clear();
        }
        kept.insert(masked, vectors.clone());
        Ok(vectors)
    }
}

/// The language table's questions about the group's subject under other relations, in each of its
/// languages. One may ask the edited relation itself: users of the list leave out those that score
/// high against the group's own questions.
pub fn other_relation_questions(group: &EditGroup) -> Vec<String> {
    group.descriptors.iter().flat_map(|d| prompts::other_relation_questions(&d.lang, &d.subject)).collect()
}

/// What stands for the subject in a masked question: a letter every script's questions can hold.
const SUBJECT_PLACEHOLDER: &str = "X";

/// `text` with every mention of one of `subjects` replaced by [`SUBJECT_PLACEHOLDER`]: verbatim
/// (ignoring case), longest subject first; failing that, in scripts written with spaces, the words that
/// inflect a long subject word (same stem, changed ending: "Шмавона" for "Шмавон", "Фахр-ун-Ниссы"
/// for "Фахр-ун-Нисса").
pub fn mask_subject(text: &str, subjects: &[String]) -> String {
    let mut subjects: Vec<&str> = subjects.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    subjects.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    let mut masked = text.to_string();
    for subject in &subjects {
        masked = replace_ignoring_case(&masked, subject);
    }
    if masked != text {
        return masked;
    }
    let stems: Vec<Vec<char>> = subjects
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(|w| w.chars().flat_map(char::to_lowercase).collect::<Vec<char>>())
        .filter(|w| w.len() >= MIN_INFLECTED_WORD_CHARS && w.iter().all(|&c| is_word_char(c)))
        .map(|w| w[..w.len() - INFLECTED_ENDING_CHARS].to_vec())
        .collect();
    if stems.is_empty() {
        return masked;
    }
    let words: Vec<String> = masked
        .split(' ')
        .map(|word| {
            // Punctuation around a word ("«Шмавоняна?»") is kept, not compared.
            let end = word.trim_end_matches(|c: char| !c.is_alphabetic()).len();
            let start = end - word[..end].trim_start_matches(|c: char| !c.is_alphabetic()).len();
            let core = &word[start..end];
            let lower: Vec<char> = core.chars().flat_map(char::to_lowercase).collect();
            let inflects = stems.iter().any(|stem| {
                lower.starts_with(stem)
                    && lower.len() <= stem.len() + 2 * INFLECTED_ENDING_CHARS
                    && lower[stem.len()..].iter().all(|c| c.is_alphabetic())
            });
            if inflects {
                format!("{}{SUBJECT_PLACEHOLDER}{}", &word[..start], &word[end..])
            } else {
                word.to_string()
            }
        })
        .collect();
    words.join(" ")
}

/// Letters, and the marks that join parts of one word ("Фахр-ун-Нисса", "O'Brien").
fn is_word_char(c: char) -> bool {
    c.is_alphabetic() || matches!(c, '-' | '\'' | '’')
}

/// A subject word this long or longer may appear inflected: its last [`INFLECTED_ENDING_CHARS`]
/// letters may change, and as many again be added.
const MIN_INFLECTED_WORD_CHARS: usize = 6;
const INFLECTED_ENDING_CHARS: usize = 2;

/// `text` with every occurrence of `part` (compared in lowercase, character by character) replaced.
fn replace_ignoring_case(text: &str, part: &str) -> String {
    let lower_char = |c: char| c.to_lowercase().next().unwrap_or(c);
    let part: Vec<char> = part.chars().map(lower_char).collect();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let matches = i + part.len() <= chars.len()
            && chars[i..i + part.len()].iter().zip(&part).all(|(&(_, c), &p)| lower_char(c) == p);
        if matches {
            out.push_str(SUBJECT_PLACEHOLDER);
            i += part.len();
        } else {
            out.push(chars[i].1);
            i += 1;
        }
    }
    out
}

/// Tokens (rows x longest row) of one padded batch of questions.
const BATCH_TOKENS: usize = 2048;

/// Tokens of a text a question vector reads: its first ones (up to `read_from`) and its last ones.
/// What is asked sits at the end; the bound keeps a huge query's cost fixed.
const MAX_QUESTION_TOKENS: usize = 256;

/// What a center depends on besides the model's weights: their mode (quantized or dense compute
/// slightly different vectors), the layer and first position read, and the reference questions as
/// the tokenizer reads them (a tokenizer given in place of the model's own reads them otherwise).
fn center_key(model: &Model, tokenizer: &Tokenizer, layer: usize, read_from: usize) -> Result<String> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    // `DefaultHasher::new` has fixed keys: the same digest in every run.
    let mut hasher = DefaultHasher::new();
    for question in REFERENCE_QUESTIONS {
        tokenizer.encode_prompt(question)?.hash(&mut hasher);
    }
    Ok(format!("{}.layer{layer}.from{read_from}.questions{:016x}", model.arithmetic(), hasher.finish()))
}

/// The residual stream after `layer` averaged over each text's tokens from position `read_from` on
/// (from its first token after the BOS when it has no more), (texts, hidden). Texts of similar length run
/// together in right-padded batches: causal attention keeps real tokens from seeing the padding.
fn mean_residuals(
    model: &Model,
    tokenizer: &Tokenizer,
    texts: &[&str],
    layer: usize,
    read_from: usize,
) -> Result<Tensor> {
    if texts.is_empty() {
        bail!("no question to encode");
    }
    let prefix = tokenizer.encode_prompt("")?.len();
    let mut seqs: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode_prompt(t)).collect::<Result<_>>()?;
    for seq in seqs.iter_mut().filter(|s| s.len() > MAX_QUESTION_TOKENS) {
        seq.drain(read_from..seq.len() - (MAX_QUESTION_TOKENS - read_from));
    }
    if seqs.iter().any(|s| s.len() <= prefix) {
        bail!("cannot encode an empty question");
    }
    // A text another one begins with (a question and its answer frame) is read from that one's pass.
    let mut means: Vec<Option<Tensor>> = vec![None; seqs.len()];
    for shared in PaddedBatch::by_length_sharing_prefixes(&seqs, BATCH_TOKENS) {
        let batch_seqs: Vec<Vec<u32>> = shared.rows.iter().map(|&i| seqs[i].clone()).collect();
        let batch = PaddedBatch::new(&batch_seqs, tokenizer.pad_id(), model.device())?;
        let out = model.forward(&batch.ids, None, Hooks { stop_after_layer: Some(layer), ..Hooks::default() })?;
        for &(i, row) in &shared.served {
            let len = seqs[i].len();
            let from = if len > read_from { read_from } else { prefix };
            means[i] = Some(out.residual.get(row)?.narrow(0, from, len - from)?.mean(0)?);
        }
    }
    let means: Vec<Tensor> = means.into_iter().map(|m| m.expect("every text is in one batch")).collect();
    Ok(Tensor::stack(&means, 0)?.to_dtype(DType::F32)?)
}

/// A linear map of question vectors into a space where what a question asks (its relation) counts
/// and how it is worded (language, phrasing) does not: linear discriminant analysis fitted on
/// benchmark questions labelled by the fact they ask (a fact's questions in every language and
/// phrasing are one class; the same subject's other relations are other classes), keeping the
/// directions along which classes differ most relative to how much a class varies within. Stored
/// vectors stay in the residual space, so a projection can change without touching the cache.
/// Fitted offline per model (`examples/scope_vectors.rs`, `results/scripts/fit_scope_projection.py`),
/// on MzsRE and 21 BMIKE-53 dev facts (34 languages), 64 directions; on held-out MzsRE facts it lifts
/// the ROC AUC of rephrasings against same-subject other-relation questions from 0.89 to 0.996 on the
/// default model (BMIKE-53 0.94, Bi-ZsRE 0.98), and it carries to languages it was not fitted on
/// (docs/results.md, "Gate v3" and "Gate v5"); on Qwen2.5 from 0.914 to 0.981, on SmolLM2 from 0.743
/// to 0.836 (docs/results.md, stop 29 and 30).
struct RelationProjection {
    /// (hidden, dimensions)
    matrix: Tensor,
    /// The relations of the facts it was fitted on: each fact's mean question in the relation space,
    /// unit rows (facts, dimensions); `None` in a projection shipped without them.
    known_relations: Option<Tensor>,
    /// The cosine in this space that the gate's scale puts at its default threshold: where 85% of
    /// rephrasings unseen by the fit reach their fact's prompts (cross-validated when fitting). The
    /// default model's and Qwen2.5's spaces have it at the default threshold itself (no calibration
    /// needed); SmolLM2's cosines run lower (0.46). `None`: cosines are the scores.
    calibration: Option<f32>,
    /// Directions of the relation space along which relations differ most relative to how each is
    /// worded (dimensions, k): a second discriminant analysis, fitted on the relation table's English
    /// wordings of common relations (`assets/scope/relations.toml`, `examples/relation_table_vectors.rs`,
    /// `results/scripts/refine_scope_projection.py`). The benchmarks' questions word a relation a few
    /// ways in many languages; a user writes one language in words of their own ("What is X's place of
    /// birth?" for "Where was X born?"). A question's place in the space is both: its unit vector in the
    /// relation space beside its unit vector along these directions, so a cosine is the mean of the two
    /// (docs/results.md, "Gate v7"), for an entry in one language; the directions weigh less the more
    /// languages an entry's questions are in (see [`ScopeKeys::directions_weight`]). `None`: the
    /// relation space alone.
    relation_directions: Option<Tensor>,
}

/// Projections that ship with lafn, each for one model and layer. The model is recognised by its
/// own reference-question center (see [`RelationProjection::fitted_for`]), not by a file hash, so
/// the same weights quantized or dense (editing runs dense, chat quantized) share one.
const FITTED_PROJECTIONS: &[(&str, &[u8])] = &[
    ("gemma-3-270m", include_bytes!("../../assets/scope/gemma-3-270m.safetensors")),
    ("qwen2.5-coder-0.5b", include_bytes!("../../assets/scope/qwen2.5-coder-0.5b.safetensors")),
    ("smollm2-135m", include_bytes!("../../assets/scope/smollm2-135m.safetensors")),
];

/// How close a model's reference-question center must be to a projection's (cosine) for the
/// projection to be its own: quantization moves it by far less, another model by far more.
const SAME_MODEL_CENTER_COSINE: f32 = 0.99;

impl RelationProjection {
    /// The shipped projection fitted for the model whose reference-question center at `layer` is
    /// `center`, if any.
    fn fitted_for(layer: usize, center: &Tensor) -> Result<Option<Self>> {
        for (name, bytes) in FITTED_PROJECTIONS {
            let mut tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
                .wrap_err_with(|| format!("the shipped scope projection for {name} is unreadable"))?;
            let (Some(fitted_center), Some(matrix), Some(fitted_layer)) =
                (tensors.remove("center"), tensors.remove("projection"), tensors.remove("layer"))
            else {
                bail!("the shipped scope projection for {name} lacks center, projection or layer");
            };
            let fitted_layer = fitted_layer.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            if fitted_layer != [layer as f32] || fitted_center.dims() != center.dims() {
                continue;
            }
            let center = unit_rows(&center.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.unsqueeze(0)?)?;
            let fitted_center = unit_rows(&fitted_center.to_dtype(DType::F32)?.unsqueeze(0)?)?;
            let cosine = (center * fitted_center)?.sum_all()?.to_scalar::<f32>()?;
            if cosine >= SAME_MODEL_CENTER_COSINE {
                let relation_directions = match tensors.remove("relation-directions") {
                    Some(directions) if directions.dim(0)? == matrix.dim(1)? => Some(directions.to_dtype(DType::F32)?),
                    Some(directions) => bail!(
                        "the shipped scope projection for {name} has relation directions of shape {:?}",
                        directions.dims()
                    ),
                    None => None,
                };
                let known_relations = match tensors.remove("relations") {
                    Some(relations) if relations.dims() == [relations.dim(0)?, matrix.dim(1)?] => {
                        Some(unit_rows(&relations.to_dtype(DType::F32)?)?)
                    }
                    Some(relations) => {
                        bail!("the shipped scope projection for {name} has relations of shape {:?}", relations.dims())
                    }
                    None => None,
                };
                let calibration = match tensors.remove("calibration") {
                    Some(point) => match point.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?[..] {
                        [point] if point.is_finite() && point.abs() < 1.0 => Some(point),
                        _ => bail!("the shipped scope projection for {name} has a calibration outside (-1, 1)"),
                    },
                    None => None,
                };
                let matrix = matrix.to_dtype(DType::F32)?;
                return Ok(Some(Self { matrix, known_relations, calibration, relation_directions }));
            }
        }
        Ok(None)
    }

    /// A cosine in this space on the gate's shared scale: the calibration point goes to the default
    /// threshold, -1 and 1 stay where they are, linear in between. Monotone, so no comparison of two
    /// scores changes; only where a threshold cuts.
    fn score(&self, cosine: f32) -> f32 {
        let Some(point) = self.calibration else { return cosine };
        if cosine >= point {
            DEFAULT_THRESHOLD + (cosine - point) * (1.0 - DEFAULT_THRESHOLD) / (1.0 - point)
        } else {
            -1.0 + (cosine + 1.0) * (DEFAULT_THRESHOLD + 1.0) / (point + 1.0)
        }
    }

    /// Rows of `vectors` (n, hidden) mapped into the relation space, unit length, its relation
    /// directions weighted by `directions_weight`.
    fn apply(&self, vectors: &Tensor, directions_weight: f32) -> Result<Tensor> {
        let projected = unit_rows(&vectors.matmul(&self.matrix.to_device(vectors.device())?)?)?;
        along_relations(self.relation_directions.as_ref(), &projected, directions_weight)
    }

    /// `questions` (unit rows in the comparison space, relation directions weighted by
    /// `directions_weight`) followed by the known relation most like one of
    /// them, when it is at least `min_similarity` alike. Only the nearest: the space tells similar
    /// relations apart less well than it tells wordings together, and a second one is often a
    /// neighbour ("where did X die" for "when did X die") that would let its questions fire.
    fn widen(&self, questions: &Tensor, min_similarity: f32, directions_weight: f32) -> Result<Tensor> {
        let Some(known) = &self.known_relations else { return Ok(questions.clone()) };
        let known = along_relations(
            self.relation_directions.as_ref(),
            &known.to_device(questions.device())?,
            directions_weight,
        )?;
        let likeness = questions.matmul(&known.t()?)?.max(0)?.to_vec1::<f32>()?;
        let nearest = likeness.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1));
        let Some((nearest, _)) = nearest.filter(|(_, &s)| self.score(s) >= min_similarity) else {
            return Ok(questions.clone());
        };
        let near = known.narrow(0, nearest, 1)?;
        Ok(Tensor::cat(&[questions, &near], 0)?)
    }
}

/// Unit rows of the relation space with their unit vectors along `directions` beside them, scaled by
/// `weight` (see [`RelationProjection::relation_directions`]), unit length: a cosine of two such rows
/// is `(c + weight² c')/(1 + weight²)`, c in the relation space and c' along the directions. As they
/// are without directions.
fn along_relations(directions: Option<&Tensor>, projected: &Tensor, weight: f32) -> Result<Tensor> {
    let Some(directions) = directions else { return Ok(projected.clone()) };
    let along = (unit_rows(&projected.matmul(&directions.to_device(projected.device())?)?)? * weight as f64)?;
    unit_rows(&Tensor::cat(&[projected, &along], 1)?)
}

/// For each row of `queries`, its best cosine with a row of `vectors` (both unit rows, same space).
fn best_cosines(queries: &Tensor, vectors: &Tensor) -> Result<Vec<f32>> {
    // Keys are read from disk into host memory; the queries live on the model's device.
    let vectors = vectors.to_device(queries.device())?;
    Ok(queries.matmul(&vectors.t()?)?.max(1)?.to_vec1::<f32>()?)
}

/// The vectors of the relation table's masked wordings (see [`ScopeSettings::relation_table_margin`]).
struct RelationTableVectors {
    /// (wordings, hidden), unit rows as the encoder reads questions.
    vectors: Tensor,
    /// Each row's relation, an index into [`relation_table::relations`].
    relation_of: Vec<usize>,
    margin: f32,
}

/// The relation table's wordings, in an entry's comparison space, parted by what the entry asks.
struct TableSplit {
    /// The wordings of the relation the entry's questions resemble most; `None` when it does not
    /// reach the threshold.
    asked: Option<Tensor>,
    /// The wordings of the relations far from it; `None` when there are none.
    not_asked: Option<Tensor>,
}

impl RelationTableVectors {
    /// Parts the wordings by `own` (the entry's questions, unit rows in the comparison space), by each
    /// relation's best likeness to them (see [`relation_stands`]).
    fn split(&self, encoder: &QuestionEncoder, own: &Tensor, directions_weight: f32) -> Result<TableSplit> {
        let wordings = encoder.in_space(&self.vectors, directions_weight)?;
        let likeness = encoder.best_scores(&wordings, own)?;
        let mut best = vec![f32::NEG_INFINITY; relation_table::relations().len()];
        for (&relation, &s) in self.relation_of.iter().zip(&likeness) {
            best[relation] = best[relation].max(s);
        }
        let stands = relation_stands(&best, self.margin, encoder.threshold.unwrap_or(f32::INFINITY));
        let rows_standing = |stand: Stand| -> Vec<u32> {
            (0..self.relation_of.len() as u32).filter(|&row| stands[self.relation_of[row as usize]] == stand).collect()
        };
        Ok(TableSplit {
            asked: selected_rows(&wordings, rows_standing(Stand::Asked))?,
            not_asked: selected_rows(&wordings, rows_standing(Stand::Against))?,
        })
    }
}

/// The given rows of `vectors`; `None` when there are none.
fn selected_rows(vectors: &Tensor, rows: Vec<u32>) -> Result<Option<Tensor>> {
    Ok(match rows.is_empty() {
        true => None,
        false => Some(vectors.index_select(&Tensor::new(rows, vectors.device())?, 0)?),
    })
}

/// How a relation of the table stands to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stand {
    /// The entry's own: its questions resemble this relation most, at least at the threshold.
    Asked,
    /// Too near the asked one to tell apart: "Who wrote X?" is 0.89 like the table's "Who published
    /// X?", nearer than to a rewording of its own such as "Who is the author of X?" (0.80).
    Neither,
    /// Counts against the entry.
    Against,
}

/// How each relation stands to an entry, from its best likeness to the entry's questions: the likest
/// is asked when it reaches `threshold`, those `margin` or more below it count against.
fn relation_stands(likeness: &[f32], margin: f32, threshold: f32) -> Vec<Stand> {
    let top = likeness.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (likeness.iter())
        .map(|&l| match l {
            l if l >= top && l >= threshold => Stand::Asked,
            l if l <= top - margin => Stand::Against,
            _ => Stand::Neither,
        })
        .collect()
}

/// An entry's scope keys as queries are scored against them ([`QuestionEncoder::prepare`]): in the
/// comparison space, with the other-relation questions that count already chosen, so a query costs
/// two small products and nothing is projected again.
pub struct PreparedKeys {
    own: Tensor,
    /// `None` when no other-relation question counts.
    other_relations: Option<Tensor>,
    /// The questions the user said do not ask the entry's fact; `None` when there are none.
    taught_not_asked: Option<Tensor>,
    /// See [`ScopeKeys::directions_weight`].
    directions_weight: f32,
}

/// Rows of `vectors` (n, dimensions) scaled to unit length (an all-zero row stays zero).
fn unit_rows(vectors: &Tensor) -> Result<Tensor> {
    let norms = vectors.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-6f32, f32::MAX)?;
    Ok(vectors.broadcast_div(&norms)?)
}

/// An entry's scope keys, unit vectors read at `layer` from token `read_from` on: its own questions
/// (n, hidden) and questions about its subject's other relations (m, hidden).
#[derive(Debug, Clone)]
pub struct ScopeKeys {
    pub layer: usize,
    /// The first token position the vectors average over (see [`QuestionEncoder::reads_like`]);
    /// `None` in keys stored before it was recorded, which read from the first token after the BOS.
    pub read_from: Option<usize>,
    pub keys: Tensor,
    pub other_relations: Tensor,
}

/// Name the stored tensors with the representation they were read in: files of another one (the
/// last-token vectors of older versions, keys stored without other-relation questions, or with
/// another number of them per language) do not load, and the keys are computed anew.
const KEYS_TENSOR: &str = "masked-mean-keys";

/// `other-relations{n}`, n the language table's questions per language (unnumbered when there were 6).
fn other_relations_tensor() -> String {
    format!("other-relations{}", languages::other_question_count())
}

impl ScopeKeys {
    /// How much the relation space's relation directions count in comparing questions with these
    /// keys: fully for an entry in one language, 1/√n for one in n (the cosine along them weighs 1/n
    /// as much as the relation space's). They make up for the wordings an entry lacks, and an entry in
    /// many languages has many: on held-out MzsRE facts edited in 12 languages, at full weight they
    /// let as many other-relation questions fire as rephrasings (docs/results.md, "Gate v7").
    pub fn directions_weight(&self) -> f32 {
        let languages = self.other_relations.dims().first().copied().unwrap_or(0) / languages::other_question_count();
        1.0 / (languages.max(1) as f32).sqrt()
    }

    /// Tensors are named `{what}.layer{layer}.from{read_from}` (`.from` absent in older files).
    pub fn save(&self, path: &Path) -> Result<()> {
        let from = self.read_from.map_or(String::new(), |from| format!(".from{from}"));
        let tensors = std::collections::HashMap::from([
            (format!("{KEYS_TENSOR}.layer{}{from}", self.layer), self.keys.clone()),
            (format!("{}.layer{}{from}", other_relations_tensor(), self.layer), self.other_relations.clone()),
        ]);
        candle_core::safetensors::save(&tensors, path).wrap_err_with(|| format!("cannot write {}", path.display()))
    }

    /// Reads keys written by [`ScopeKeys::save`], checked (see [`ScopeKeys::check`]).
    pub fn load(path: &Path, hidden: usize) -> Result<Self> {
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .wrap_err_with(|| format!("cannot read scope keys {}", path.display()))?;
        let reading_of = |prefix: &str| -> Result<(String, usize, Option<usize>)> {
            let mut names = tensors.keys().filter(|name| name.starts_with(&format!("{prefix}.layer")));
            let (Some(name), None) = (names.next(), names.next()) else {
                bail!("{} must hold one `{prefix}` tensor", path.display());
            };
            let reading = &name[prefix.len() + ".layer".len()..];
            let (layer, from) = match reading.split_once(".from") {
                Some((layer, from)) => (layer, Some(from.parse::<usize>())),
                None => (reading, None),
            };
            match (layer.parse::<usize>(), from.transpose()) {
                (Ok(layer), Ok(from)) => Ok((name.clone(), layer, from)),
                _ => bail!("{}: `{name}` does not name a layer and a first token", path.display()),
            }
        };
        let (keys_name, layer, read_from) = reading_of(KEYS_TENSOR)?;
        let (others_name, others_layer, others_from) = reading_of(&other_relations_tensor())?;
        if (others_layer, others_from) != (layer, read_from) || tensors.len() != 2 {
            bail!("{}: the scope keys' tensors do not belong together", path.display());
        }
        let mut take = |name: &str| -> Result<Tensor> {
            let vectors = tensors.remove(name).expect("both names were found");
            Ok(vectors.to_dtype(DType::F32)?)
        };
        let keys = Self { layer, read_from, keys: take(&keys_name)?, other_relations: take(&others_name)? };
        keys.check(hidden).wrap_err_with(|| path.display().to_string())?;
        Ok(keys)
    }

    /// Both sets of vectors are (rows, `hidden`), with rows, and finite; the other-relation questions
    /// are the language table's, as many per language.
    pub fn check(&self, hidden: usize) -> Result<()> {
        for (name, vectors) in
            [(KEYS_TENSOR.to_string(), &self.keys), (other_relations_tensor(), &self.other_relations)]
        {
            match vectors.dims() {
                [n, h] if *n > 0 && *h == hidden => {}
                dims => bail!("`{name}` of shape {dims:?}, expected (n, {hidden})"),
            }
            if vectors.flatten_all()?.to_vec1::<f32>()?.iter().any(|v| !v.is_finite()) {
                bail!("`{name}` holds non-finite values");
            }
        }
        if self.other_relations.dim(0)? % languages::other_question_count() != 0 {
            bail!("`{}` rows do not match the language table's questions", other_relations_tensor());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::{
        along_relations, mask_subject, relation_stands, RelationProjection, ScopeScore, ScopeSettings, Stand,
        TaughtQuestions, DEFAULT_THRESHOLD, FITTED_PROJECTIONS, MAX_TAUGHT_CHARS, MAX_TAUGHT_QUESTIONS,
    };

    #[test]
    fn with_relation_directions_a_cosine_is_the_mean_of_the_space_and_the_directions() -> crate::Result<()> {
        let a = Tensor::new(&[[1.0f32, 0.0, 0.0]], &Device::Cpu)?;
        let b = Tensor::new(&[[0.6f32, 0.8, 0.0]], &Device::Cpu)?;
        // Along the first direction only: both are the same there.
        let directions = Tensor::new(&[[1.0f32], [0.0], [0.0]], &Device::Cpu)?;
        let cosine = |d: Option<&Tensor>, weight: f32| -> crate::Result<f32> {
            let (a, b) = (along_relations(d, &a, weight)?, along_relations(d, &b, weight)?);
            Ok((a * b)?.sum_all()?.to_scalar::<f32>()?)
        };
        assert!((cosine(None, 1.0)? - 0.6).abs() < 1e-6);
        assert!((cosine(Some(&directions), 1.0)? - (0.6 + 1.0) / 2.0).abs() < 1e-6);
        assert!((cosine(Some(&directions), 0.5)? - (0.6 + 0.25) / 1.25).abs() < 1e-6, "weighted");
        Ok(())
    }

    #[test]
    fn questions_are_widened_by_the_known_relation_they_resemble_most() -> crate::Result<()> {
        let known = Tensor::new(&[[0.6f32, 0.8], [0.0, 1.0], [1.0, 0.0]], &Device::Cpu)?;
        let projection = RelationProjection {
            matrix: Tensor::eye(2, candle_core::DType::F32, &Device::Cpu)?,
            known_relations: Some(known),
            calibration: None,
            relation_directions: None,
        };
        let questions = Tensor::new(&[[1.0f32, 0.0]], &Device::Cpu)?;
        let widened = projection.widen(&questions, 0.5, 1.0)?.to_vec2::<f32>()?;
        assert_eq!(widened, [[1.0, 0.0], [1.0, 0.0]], "only the nearest known relation");
        assert_eq!(projection.widen(&questions, 1.5, 1.0)?.to_vec2::<f32>()?, [[1.0, 0.0]], "none alike enough");
        let calibrated = RelationProjection { calibration: Some(0.4), ..projection };
        let widened = calibrated.widen(&questions, 0.7, 1.0)?.to_vec2::<f32>()?;
        assert_eq!(widened, [[1.0, 0.0], [1.0, 0.0]], "likeness 0.6 is 0.73 on the calibrated scale");
        let without = RelationProjection { known_relations: None, ..calibrated };
        assert_eq!(without.widen(&questions, 0.0, 1.0)?.to_vec2::<f32>()?, [[1.0, 0.0]]);
        Ok(())
    }

    #[test]
    fn an_entry_asks_the_likest_relation_and_those_far_below_it_count_against_it() {
        use Stand::{Against, Asked, Neither};
        assert_eq!(relation_stands(&[0.89, 1.0, 0.8, 0.3], 0.2, 0.6), [Neither, Asked, Against, Against]);
        assert_eq!(relation_stands(&[0.55, 0.5, 0.2], 0.2, 0.6), [Neither, Neither, Against], "none asked");
        assert_eq!(relation_stands(&[0.7, 0.7], 0.2, 0.6), [Asked, Asked], "ties");
        assert_eq!(relation_stands(&[], 0.2, 0.6), Vec::<Stand>::new());
    }

    #[test]
    fn a_calibrated_space_puts_its_point_at_the_default_threshold_and_keeps_every_order() -> crate::Result<()> {
        let projection = |calibration| RelationProjection {
            matrix: Tensor::eye(2, candle_core::DType::F32, &Device::Cpu).unwrap(),
            known_relations: None,
            calibration,
            relation_directions: None,
        };
        let calibrated = projection(Some(0.45));
        assert!((calibrated.score(0.45) - DEFAULT_THRESHOLD).abs() < 1e-6);
        assert_eq!((calibrated.score(-1.0), calibrated.score(1.0)), (-1.0, 1.0));
        let cosines: Vec<f32> = (-20..=20).map(|i| i as f32 / 20.0).collect();
        let scores: Vec<f32> = cosines.iter().map(|&c| calibrated.score(c)).collect();
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "monotone: {scores:?}");
        assert!(cosines.iter().all(|&c| projection(None).score(c) == c), "no calibration: the cosine");
        Ok(())
    }

    #[test]
    fn an_entry_acts_when_the_query_reaches_the_threshold_and_beats_the_other_relations() {
        let score = |edited, other_relations| ScopeScore { edited, other_relations, taught_not_asked: None };
        let gate = ScopeSettings { threshold: Some(0.5), other_relations_margin: Some(0.1), ..Default::default() };
        assert!(gate.in_scope(score(0.8, Some(0.7))));
        assert!(!gate.in_scope(score(0.8, Some(0.75))), "closer to another relation than the margin allows");
        assert!(!gate.in_scope(score(0.45, Some(0.0))), "below the threshold");
        assert!(gate.in_scope(score(0.5, None)), "no other-relation question counts");
        let no_margin = ScopeSettings { other_relations_margin: None, ..gate.clone() };
        assert!(no_margin.in_scope(score(0.8, Some(0.9))));
        let off = ScopeSettings { threshold: None, ..gate.clone() };
        assert!(off.in_scope(score(-1.0, Some(1.0))), "the gate off lets every mention fire");
        let taught = |edited, taught| ScopeScore { edited, other_relations: None, taught_not_asked: Some(taught) };
        let gate = ScopeSettings { taught_margin: 0.1, ..gate };
        assert!(gate.in_scope(taught(0.9, 0.75)), "nearer its own questions than a taught one, by the margin");
        assert!(!gate.in_scope(taught(0.9, 0.85)), "about as near a question taught not to ask it");
        assert!(!off.in_scope(taught(1.0, 1.0)), "taught questions hold with the gate off");
    }

    #[test]
    fn a_taught_question_is_kept_once_on_the_side_told_last() -> crate::Result<()> {
        let mut taught = TaughtQuestions::default();
        taught.learn(" Où est la X ? ", true)?;
        taught.learn("Où est la X ?", true)?;
        assert_eq!(taught.asks, ["Où est la X ?"]);
        taught.learn("Où est la X ?", false)?;
        assert_eq!((taught.asks.len(), taught.not_asked.as_slice()), (0, ["Où est la X ?".to_string()].as_slice()));
        assert!(taught.learn("  ", true).is_err(), "nothing to teach");
        for i in 0..MAX_TAUGHT_QUESTIONS + 3 {
            taught.learn(&format!("Question {i} about X?"), false)?;
        }
        assert_eq!(taught.not_asked.len(), MAX_TAUGHT_QUESTIONS);
        assert_eq!(taught.not_asked[0], "Question 3 about X?", "the oldest went first");
        taught.learn(&format!("{}Where is X?", "very ".repeat(1000)), true)?;
        assert!(taught.asks[0].ends_with("Where is X?") && taught.asks[0].chars().count() == MAX_TAUGHT_CHARS);
        Ok(())
    }

    fn subjects(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_subject_is_masked_in_any_case_and_script() {
        let curie = subjects(&["Marie Curie", "Curie"]);
        assert_eq!(mask_subject("Whom did MARIE CURIE marry?", &curie), "Whom did X marry?");
        assert_eq!(mask_subject("Marie Curie was married to", &curie), "X was married to");
        assert_eq!(mask_subject("Wo wurde Curie geboren?", &curie), "Wo wurde X geboren?");
        assert_eq!(mask_subject("居里夫人出生在哪里？", &subjects(&["居里夫人"])), "X出生在哪里？");
    }

    #[test]
    fn inflected_subject_words_are_masked_only_when_no_verbatim_mention_exists() {
        let name = subjects(&["Шмавон Шмавонян"]);
        assert_eq!(mask_subject("Где родился Шмавона Шмавоняна?", &name), "Где родился X X?");
        assert_eq!(mask_subject("Шмавон Шмавонян родился в", &name), "X родился в");
        let hyphenated = subjects(&["Фахр-ун-Нисса"]);
        assert_eq!(mask_subject("Кто мать «Фахр-ун-Ниссы»?", &hyphenated), "Кто мать «X»?");
        assert_eq!(mask_subject("Кто мать Фахр-ун-Ниссы?", &hyphenated), "Кто мать X?");
        // Short words never match by stem: "Marie" would take "married" along.
        assert_eq!(mask_subject("Who married Pierre?", &subjects(&["Marie Dupont"])), "Who married Pierre?");
        assert_eq!(mask_subject("Where is Paris?", &[]), "Where is Paris?");
    }

    #[test]
    fn every_shipped_projection_is_whole() {
        for (name, bytes) in FITTED_PROJECTIONS {
            let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).unwrap();
            let (center, matrix) = (&tensors["center"], &tensors["projection"]);
            let hidden = center.dims1().unwrap();
            let (rows, dimensions) = matrix.dims2().unwrap();
            assert_eq!(rows, hidden, "{name}: projection rows");
            assert_eq!(tensors["relations"].dims2().unwrap().1, dimensions, "{name}: relations");
            assert_eq!(tensors["layer"].dims(), [1], "{name}: layer");
            if let Some(directions) = tensors.get("relation-directions") {
                assert_eq!(directions.dims2().unwrap().0, dimensions, "{name}: relation directions");
            }
            if let Some(point) = tensors.get("calibration") {
                let point = point.to_vec1::<f32>().unwrap();
                assert!(point.len() == 1 && point[0].abs() < 1.0, "{name}: calibration {point:?}");
            }
        }
    }
}
