//! The scope of an edit: whether a query asks the edited fact, or only mentions its subject.
//!
//! Retrieval finds the entries whose subject a query names; an edit should act only when the query
//! also asks the edited relation ("Where was Marie Curie born?", not "Whom did Marie Curie marry?").
//! The model's own representation is the judge: at a middle layer, the residual stream at a question's
//! last token (where the answer is about to be produced) carries what is asked, across languages and
//! wordings, though on small models also much of the sentence's form (docs/results.md, "Scope").
//! Each entry keeps these vectors for its prompts and paraphrases in every language (its *scope
//! keys*); a query's *scope score* is the largest cosine similarity between its own vector and the
//! keys, and the entry acts only when the score reaches the threshold. Vectors are taken relative to
//! the mean over a fixed set of unrelated questions, so what every question shares does not count as
//! likeness. The same vectors decide which generated other-relation questions the edit's KL term
//! protects (see `edit::EditSettings::other_relation_max_similarity`). This is the activation-keyed
//! gate of GRACE / WISE / SERAC-style editors, keyed by the question rather than by the subject.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use color_eyre::eyre::{bail, WrapErr};
use serde::{Deserialize, Serialize};

use super::group::EditGroup;
use crate::runtime::{Hooks, Model, PaddedBatch, Tokenizer};
use crate::Result;

/// How an entry's scope is decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScopeSettings {
    /// An entry whose subject a query names acts only when the query's scope score (cosine
    /// similarity to the entry's prompts and paraphrases, in [-1, 1]) is at least this; `null` turns
    /// the gate off (every mention of the subject fires, the score is only shown). Default 0.5: on 8
    /// MzsRE dev records x 6 languages it keeps every rephrasing the edit answers and lets 71% of
    /// other-relation questions through instead of all (generated Specificity 4.5 -> 29.2); higher
    /// thresholds reject rephrasings fast (0.6: Generality 80.0 -> 67.5). See docs/results.md, "Scope".
    pub threshold: Option<f32>,
    /// The layer whose residual stream represents a question, as a fraction of the model's depth.
    pub depth: f32,
}

impl Default for ScopeSettings {
    fn default() -> Self {
        Self { threshold: Some(DEFAULT_THRESHOLD), depth: DEFAULT_DEPTH }
    }
}

const DEFAULT_THRESHOLD: f32 = 0.5;
const DEFAULT_DEPTH: f32 = 0.5;

impl ScopeSettings {
    /// The layer the settings choose in a model of `num_layers` layers.
    pub fn layer(&self, num_layers: usize) -> usize {
        let depth = if self.depth.is_finite() { self.depth.clamp(0.0, 1.0) } else { DEFAULT_DEPTH };
        ((depth * num_layers as f32).round() as usize).min(num_layers.saturating_sub(1))
    }

    /// Whether a query with this scope score asks the entry's fact.
    pub fn in_scope(&self, score: f32) -> bool {
        self.threshold.is_none_or(|threshold| score >= threshold)
    }
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
    /// Mean residual of the reference questions at `layer`, (hidden).
    center: Tensor,
}

impl QuestionEncoder {
    pub fn new(model: &Model, tokenizer: &Tokenizer, settings: &ScopeSettings) -> Result<Self> {
        let layer = settings.layer(model.config().num_layers);
        let center = last_residuals(model, tokenizer, REFERENCE_QUESTIONS, layer)?.mean(0)?;
        Ok(Self { layer, center })
    }

    pub fn layer(&self) -> usize {
        self.layer
    }

    /// A question's vector: its last token's residual at the layer, centred, unit length.
    pub fn encode(&self, model: &Model, tokenizer: &Tokenizer, question: &str) -> Result<Tensor> {
        Ok(self.encode_all(model, tokenizer, &[question])?.squeeze(0)?)
    }

    /// [`QuestionEncoder::encode`] of several questions in one batch, (questions, hidden).
    pub fn encode_all(&self, model: &Model, tokenizer: &Tokenizer, questions: &[&str]) -> Result<Tensor> {
        let centred = last_residuals(model, tokenizer, questions, self.layer)?.broadcast_sub(&self.center)?;
        let norms = centred.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-6f32, f32::MAX)?;
        Ok(centred.broadcast_div(&norms)?)
    }

    /// The scope keys of a group: the vectors of every language's prompt and paraphrases.
    pub fn keys(&self, model: &Model, tokenizer: &Tokenizer, group: &EditGroup) -> Result<ScopeKeys> {
        let texts: Vec<&str> = group
            .descriptors
            .iter()
            .flat_map(|d| std::iter::once(&d.prompt).chain(&d.paraphrases))
            .map(String::as_str)
            .collect();
        Ok(ScopeKeys { layer: self.layer, keys: self.encode_all(model, tokenizer, &texts)? })
    }
}

/// Tokens of a text a question vector reads: its first (the BOS where the model has one) and its last
/// ones. What is asked sits at the end; the bound keeps a huge query's cost fixed.
const MAX_QUESTION_TOKENS: usize = 256;

/// The residual stream after `layer` at the last token of each text, (texts, hidden). Rows are
/// right-padded: causal attention keeps real tokens from seeing the padding.
fn last_residuals(model: &Model, tokenizer: &Tokenizer, texts: &[&str], layer: usize) -> Result<Tensor> {
    if texts.is_empty() {
        bail!("no question to encode");
    }
    let mut seqs: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode_prompt(t)).collect::<Result<_>>()?;
    for seq in seqs.iter_mut().filter(|s| s.len() > MAX_QUESTION_TOKENS) {
        seq.drain(1..seq.len() - (MAX_QUESTION_TOKENS - 1));
    }
    if seqs.iter().any(Vec::is_empty) {
        bail!("cannot encode an empty question");
    }
    let batch = PaddedBatch::new(&seqs, tokenizer.pad_id())?;
    let out = model.forward(&batch.ids, None, Hooks { stop_after_layer: Some(layer), ..Hooks::default() })?;
    let last: Vec<Tensor> = (batch.lengths.iter().enumerate())
        .map(|(row, &len)| out.residual.get(row)?.get(len - 1))
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::stack(&last, 0)?.to_dtype(DType::F32)?)
}

/// An entry's scope keys: unit vectors (keys, hidden) read at `layer`.
#[derive(Debug, Clone)]
pub struct ScopeKeys {
    pub layer: usize,
    pub keys: Tensor,
}

const KEYS_TENSOR: &str = "keys";

impl ScopeKeys {
    /// The scope score of a query vector (from the same encoder): the best cosine over the keys.
    pub fn score(&self, query: &Tensor) -> Result<f32> {
        Ok(self.scores(&query.unsqueeze(0)?)?[0])
    }

    /// [`ScopeKeys::score`] of each row of `queries` (queries, hidden).
    pub fn scores(&self, queries: &Tensor) -> Result<Vec<f32>> {
        Ok(queries.matmul(&self.keys.t()?)?.max(1)?.to_vec1::<f32>()?)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let name = format!("{KEYS_TENSOR}.layer{}", self.layer);
        candle_core::safetensors::save(&std::collections::HashMap::from([(name, self.keys.clone())]), path)
            .wrap_err_with(|| format!("cannot write {}", path.display()))
    }

    /// Reads keys written by [`ScopeKeys::save`], checked for shape and finite values.
    pub fn load(path: &Path, hidden: usize) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .wrap_err_with(|| format!("cannot read scope keys {}", path.display()))?;
        let [(name, keys)] = <[_; 1]>::try_from(tensors.into_iter().collect::<Vec<_>>())
            .map_err(|_| color_eyre::eyre::eyre!("{} must hold one tensor of scope keys", path.display()))?;
        let Some(layer) = name.strip_prefix(&format!("{KEYS_TENSOR}.layer")).and_then(|l| l.parse().ok()) else {
            bail!("{}: unexpected tensor `{name}`", path.display());
        };
        let keys = keys.to_dtype(DType::F32)?;
        match keys.dims() {
            [n, h] if *n > 0 && *h == hidden => {}
            dims => bail!("{}: scope keys of shape {dims:?}, expected (n, {hidden})", path.display()),
        }
        if keys.flatten_all()?.to_vec1::<f32>()?.iter().any(|v| !v.is_finite()) {
            bail!("{}: scope keys hold non-finite values", path.display());
        }
        Ok(Self { layer, keys })
    }
}
