//! The compared methods: what each applies to a question, and the neuron choices of the baselines.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use color_eyre::eyre::{bail, eyre};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::metrics::{score, Metric, Score};
use crate::method::apply::{teacher_forced_with_cache, CachedEdits};
use crate::method::prompts::teacher_forcing_pair;
use crate::method::retrieve::{RetrievalSettings, SubjectIndex};
use crate::method::{BenchmarkRecord, EditGroup, LocatedNeurons, UpdateValues};
use crate::runtime::{Model, NeuronEdit, PromptTarget, Tokenizer};
use crate::Result;

/// A method compared in an evaluation run; all run on the same model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvalMethod {
    /// The model as it is.
    Unedited,
    /// Ours: update values of the located LAFNs, applied only when retrieval fires on the query.
    LuLafns,
    /// The same update values as `lu-lafns`, applied to every query (no retrieval).
    LuLafnsNocache,
    /// As many neurons per layer as located, chosen at random, optimized and applied like ours.
    RandomNeurons,
    /// Fine-tuning one layer's whole down projection on the same loss, applied to every query.
    FtL,
    /// In-context editing (ReMaKE style): the retrieved fact is written before the question.
    Icl,
}

impl EvalMethod {
    pub const ALL: [EvalMethod; 6] = [
        EvalMethod::Unedited,
        EvalMethod::LuLafns,
        EvalMethod::LuLafnsNocache,
        EvalMethod::RandomNeurons,
        EvalMethod::FtL,
        EvalMethod::Icl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EvalMethod::Unedited => "unedited",
            EvalMethod::LuLafns => "lu-lafns",
            EvalMethod::LuLafnsNocache => "lu-lafns-nocache",
            EvalMethod::RandomNeurons => "random-neurons",
            EvalMethod::FtL => "ft-l",
            EvalMethod::Icl => "icl",
        }
    }

    /// Whether the method needs the record's LU-LAFNs edit (paraphrases, located neurons, update values).
    pub fn needs_edit(self) -> bool {
        matches!(self, EvalMethod::LuLafns | EvalMethod::LuLafnsNocache | EvalMethod::RandomNeurons | EvalMethod::FtL)
    }
}

impl fmt::Display for EvalMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EvalMethod {
    type Err = color_eyre::Report;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|m| m.name()).collect();
            eyre!("unknown method `{text}`: choose from {}", names.join(", "))
        })
    }
}

/// One question of a benchmark record in one language, with the answer it is scored against.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub lang: String,
    pub metric: Metric,
    pub prompt: String,
    /// The expected answer; for locality the dataset's `loc_ans`, which only fixes the teacher-forced
    /// positions (the reference is the unedited model's answer).
    pub answer: String,
}

/// Every question of a record in the given languages, in language order; portability only where present.
pub fn questions(record: &BenchmarkRecord, langs: &[String]) -> Result<Vec<Question>> {
    let mut out = Vec::new();
    for lang in langs {
        let entry = record.get(lang).ok_or_else(|| eyre!("the record has no language `{lang}`"))?;
        let portability = &entry.portability;
        let mut items = vec![
            (Metric::Reliability, &entry.src, &entry.alt),
            (Metric::Generality, &entry.rephrase, &entry.alt),
            (Metric::Locality, &entry.loc, &entry.loc_ans),
        ];
        if !portability.question.trim().is_empty() && !portability.answer.trim().is_empty() {
            items.push((Metric::Portability, &portability.question, &portability.answer));
        }
        for (metric, prompt, answer) in items {
            if prompt.trim().is_empty() || answer.trim().is_empty() {
                bail!("language `{lang}`: the {} question or its answer is empty", metric.name());
            }
            out.push(Question { lang: lang.clone(), metric, prompt: prompt.clone(), answer: answer.clone() });
        }
    }
    Ok(out)
}

/// The facts an in-context editor can retrieve: the edit groups, indexed by subject exactly as the cache is.
pub struct InContextFacts {
    index: SubjectIndex,
    groups: HashMap<String, EditGroup>,
}

impl InContextFacts {
    pub fn new(settings: RetrievalSettings) -> Self {
        Self { index: SubjectIndex::new(settings), groups: HashMap::new() }
    }

    pub fn insert(&mut self, id: &str, group: &EditGroup) {
        let prompts: Vec<String> = group.descriptors.iter().map(|d| d.prompt.clone()).collect();
        self.index.insert(id, &group.subjects(), &prompts);
        self.groups.insert(id.to_string(), group.clone());
    }

    pub fn remove(&mut self, id: &str) {
        self.index.remove(id);
        self.groups.remove(id);
    }

    /// The question with the best retrieved fact before it ("New Fact: {prompt} {target}\n{question}"),
    /// the fact in the question's language when the group has it; the question alone when nothing fires.
    pub fn prompt_for(&self, question: &Question) -> (String, bool) {
        let Some(group) = self.index.search(&question.prompt).first().and_then(|hit| self.groups.get(&hit.entry_id))
        else {
            return (question.prompt.clone(), false);
        };
        let fact = group.descriptors.iter().find(|d| d.lang == question.lang).unwrap_or(&group.descriptors[0]);
        (format!("New Fact: {} {}\n{}", fact.prompt.trim(), fact.target.trim(), question.prompt), true)
    }
}

/// How a method changes the model for a question.
pub enum Answerer<'a> {
    /// The same update values for every question (none for the unedited model).
    Fixed(&'a [NeuronEdit]),
    /// The update values of the cache entries that retrieval finds in the question.
    Cached(&'a mut CachedEdits),
    /// The retrieved fact in the prompt, no update values.
    InContext(&'a InContextFacts),
}

/// A method's teacher-forced answer to one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub predicted: Vec<u32>,
    /// Whether retrieval fired (methods with retrieval only).
    pub fired: Option<bool>,
}

/// Teacher-forced answers of a method to all questions, one question per forward pass: batching pads
/// questions to a common width, and the changed matrix shapes round differently enough to flip near-tied
/// argmaxes (seen on MzsRE record 1, de `loc`), which would count as locality failures.
pub fn answer_all(
    model: &Model,
    tokenizer: &Tokenizer,
    answerer: Answerer,
    questions: &[Question],
) -> Result<Vec<Answer>> {
    let pair = |prompt: &str, q: &Question| teacher_forcing_pair(tokenizer, prompt, &q.answer);
    match answerer {
        Answerer::Fixed(edits) => {
            let pairs: Vec<PromptTarget> = questions.iter().map(|q| pair(&q.prompt, q)).collect::<Result<_>>()?;
            let scored = model.teacher_forced(&pairs, edits, tokenizer.pad_id(), 1)?;
            Ok(scored.into_iter().map(|s| Answer { predicted: s.predicted, fired: None }).collect())
        }
        Answerer::Cached(cached) => {
            let prompts: Vec<String> = questions.iter().map(|q| q.prompt.clone()).collect();
            let pairs: Vec<PromptTarget> = questions.iter().map(|q| pair(&q.prompt, q)).collect::<Result<_>>()?;
            let scored = teacher_forced_with_cache(model, tokenizer, cached, &prompts, &pairs)?;
            Ok(scored
                .into_iter()
                .map(|(s, hits)| Answer { predicted: s.predicted, fired: Some(!hits.is_empty()) })
                .collect())
        }
        Answerer::InContext(facts) => {
            let mut pairs = Vec::with_capacity(questions.len());
            let mut fired = Vec::with_capacity(questions.len());
            for q in questions {
                let (prompt, hit) = facts.prompt_for(q);
                pairs.push(pair(&prompt, q)?);
                fired.push(hit);
            }
            let scored = model.teacher_forced(&pairs, &[], tokenizer.pad_id(), 1)?;
            Ok(scored.into_iter().zip(fired).map(|(s, f)| Answer { predicted: s.predicted, fired: Some(f) }).collect())
        }
    }
}

/// A method's scores and retrieval decisions in one language of one record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LangResult {
    pub scores: BTreeMap<Metric, Score>,
    /// Whether retrieval fired on each question (methods with retrieval only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fired: BTreeMap<Metric, bool>,
}

/// Scores a method's answers: against the expected answer, and for locality against the unedited
/// model's answer (`unedited`, answers to the same questions).
pub fn score_answers(
    tokenizer: &Tokenizer,
    questions: &[Question],
    answers: &[Answer],
    unedited: &[Answer],
) -> Result<BTreeMap<String, LangResult>> {
    let mut results: BTreeMap<String, LangResult> = BTreeMap::new();
    for ((q, answer), before) in questions.iter().zip(answers).zip(unedited) {
        let reference = match q.metric {
            Metric::Locality => before.predicted.clone(),
            _ => teacher_forcing_pair(tokenizer, &q.prompt, &q.answer)?.target,
        };
        let text = tokenizer.decode(&answer.predicted)?;
        let reference_text = tokenizer.decode(&reference)?;
        let result = results.entry(q.lang.clone()).or_default();
        result.scores.insert(q.metric, score(&answer.predicted, &text, &reference, &reference_text));
        if let Some(fired) = answer.fired {
            result.fired.insert(q.metric, fired);
        }
    }
    Ok(results)
}

/// As many neurons per layer as `located` selected, drawn at random (sorted, without repeats) from
/// the layer's `ffn_size` neurons; the same seed gives the same neurons.
pub fn random_neurons(located: &LocatedNeurons, ffn_size: usize, seed: u64) -> LocatedNeurons {
    let mut rng = StdRng::seed_from_u64(seed);
    let selected: BTreeMap<usize, Vec<u32>> = located
        .selected
        .iter()
        .map(|(&layer, neurons)| {
            let mut chosen: Vec<u32> = rand::seq::index::sample(&mut rng, ffn_size, neurons.len().min(ffn_size))
                .into_iter()
                .map(|j| j as u32)
                .collect();
            chosen.sort_unstable();
            (layer, chosen)
        })
        .collect();
    LocatedNeurons { selected, frequencies: BTreeMap::new(), ..located.clone() }
}

/// The layer FT-L tunes: `fixed` if given, else the selected layer with the most LAFNs (the later on ties).
pub fn fine_tune_layer(located: &LocatedNeurons, fixed: Option<usize>) -> Option<usize> {
    fixed.or_else(|| located.selected.iter().max_by_key(|(layer, neurons)| (neurons.len(), **layer)).map(|(l, _)| *l))
}

/// Every neuron of one layer: update values for all of them are exactly a full down-projection delta.
pub fn whole_layer(located: &LocatedNeurons, layer: usize, ffn_size: usize) -> LocatedNeurons {
    LocatedNeurons {
        selected: BTreeMap::from([(layer, (0..ffn_size as u32).collect())]),
        frequencies: BTreeMap::new(),
        ..located.clone()
    }
}

/// Several edits' update values summed into one dense delta per layer, to apply all of them at once.
pub fn merged_edits(updates: &[&UpdateValues], ffn_size: usize, hidden: usize) -> Result<Vec<NeuronEdit>> {
    let mut by_layer: BTreeMap<usize, Tensor> = BTreeMap::new();
    for update in updates {
        for layer in &update.layers {
            let sum = match by_layer.remove(&layer.layer) {
                Some(sum) => sum,
                None => Tensor::zeros((ffn_size, hidden), candle_core::DType::F32, &Device::Cpu)?,
            };
            let neurons = Tensor::new(layer.neurons.as_slice(), &Device::Cpu)?;
            by_layer.insert(layer.layer, sum.index_add(&neurons, &layer.delta, 0)?);
        }
    }
    let all = Tensor::arange(0u32, ffn_size as u32, &Device::Cpu)?;
    Ok(by_layer.into_iter().map(|(layer, delta)| NeuronEdit { layer, neurons: all.clone(), delta }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::LayerUpdate;

    fn located(selected: &[(usize, Vec<u32>)]) -> LocatedNeurons {
        LocatedNeurons {
            langs: vec!["en".into()],
            layers: Vec::new(),
            selected: selected.iter().cloned().collect(),
            frequencies: BTreeMap::new(),
        }
    }

    #[test]
    fn method_names_round_trip() {
        for method in EvalMethod::ALL {
            assert_eq!(method.name().parse::<EvalMethod>().unwrap(), method);
            assert_eq!(serde_json::to_value(method).unwrap(), method.name());
        }
        assert!("rome".parse::<EvalMethod>().unwrap_err().to_string().contains("lu-lafns"));
    }

    #[test]
    fn random_neurons_keep_counts_and_are_seeded() {
        let ours = located(&[(3, vec![1, 2, 3]), (7, vec![10; 5])]);
        let a = random_neurons(&ours, 100, 42);
        assert_eq!(a, random_neurons(&ours, 100, 42));
        assert_ne!(a.selected, random_neurons(&ours, 100, 43).selected);
        assert_eq!(a.selected[&3].len(), 3);
        assert_eq!(a.selected[&7].len(), 5);
        assert!(a.selected[&7].windows(2).all(|w| w[0] < w[1]) && a.selected[&7].iter().all(|&j| j < 100));
    }

    #[test]
    fn fine_tuned_layer_is_the_one_with_most_neurons_unless_fixed() {
        let ours = located(&[(3, vec![1, 2, 3]), (7, vec![4, 5]), (9, vec![6, 7, 8])]);
        assert_eq!(fine_tune_layer(&ours, None), Some(9));
        assert_eq!(fine_tune_layer(&ours, Some(1)), Some(1));
        assert_eq!(whole_layer(&ours, 9, 16).neuron_count(), 16);
    }

    #[test]
    fn merged_edits_add_update_values_of_shared_neurons() -> Result<()> {
        let update = |neurons: Vec<u32>, value: f32| UpdateValues {
            layers: vec![LayerUpdate {
                layer: 1,
                delta: Tensor::full(value, (neurons.len(), 2), &Device::Cpu).unwrap(),
                neurons,
            }],
        };
        let (a, b) = (update(vec![0, 2], 1.0), update(vec![2], 5.0));
        let merged = merged_edits(&[&a, &b], 4, 2)?;
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].delta.to_vec2::<f32>()?, vec![vec![1.0, 1.0], vec![0.0; 2], vec![6.0, 6.0], vec![0.0; 2]]);
        Ok(())
    }
}
