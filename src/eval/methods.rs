//! The compared methods: what each applies to a question, and the neuron choices of the baselines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use candle_core::{Device, Tensor};
use clap::ValueEnum;
use color_eyre::eyre::{bail, ensure};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::metrics::{generated_score, in_question_script, mentions, normalize_answer, score, Metric, Score};
use crate::method::apply::{self, generate_text, AnswerOptions, CachedEdits};
use crate::method::prompts::teacher_forcing_pair;
use crate::method::retrieve::{Hit, RetrievalSettings, SubjectIndex};
use crate::method::{BenchmarkRecord, EditGroup, LocatedNeurons, UpdateValues};
use crate::runtime::{AnswerTrack, FfnDelta, GenerationDeltas, Model, PromptFrame, TeacherForcingBatch, Tokenizer};
use crate::Result;

/// A method compared in an evaluation run; all run on the same model.
///
/// Its command-line name (clap) and its name in reports and state files (serde) are both the kebab-case
/// variant name: `lu-lafns`, `ft-l`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ValueEnum)]
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
    /// Whether the method needs the record's LU-LAFNs edit (paraphrases, located neurons, update values).
    pub fn needs_edit(self) -> bool {
        matches!(self, EvalMethod::LuLafns | EvalMethod::LuLafnsNocache | EvalMethod::RandomNeurons | EvalMethod::FtL)
    }
}

impl fmt::Display for EvalMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_possible_value().expect("no method is skipped").get_name())
    }
}

/// One question of a benchmark record in one language, with the answer it is scored against.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub lang: String,
    pub metric: Metric,
    pub prompt: String,
    /// The expected answer. Where the reference is the unedited model's answer (Locality, Specificity)
    /// it only fixes the teacher-forced positions: the dataset's `loc_ans`, or for Specificity the
    /// answer of the record the question was taken from.
    pub answer: String,
    /// The edit's new target in this language: what a specificity answer must not state.
    pub new_target: String,
}

/// How many same-subject, other-relation questions each record gets per language.
pub const SPECIFICITY_QUESTIONS: usize = 2;

/// Every question of record `index` in those of the given languages it has, in language order; portability only
/// where present. Generality is also asked as [`Metric::DistinctGenerality`] when the rephrasing
/// differs from `src`. Specificity questions come from other records (see [`specificity_questions`]).
pub fn questions(records: &[BenchmarkRecord], index: usize, langs: &[String]) -> Result<Vec<Question>> {
    let record = &records[index];
    let mut out = Vec::new();
    for lang in langs {
        // A language the record lacks has no questions (the run reports which records lack it).
        let Some(entry) = record.get(lang) else { continue };
        let portability = &entry.portability;
        let mut items = vec![
            (Metric::Reliability, entry.src.clone(), entry.alt.clone()),
            (Metric::Generality, entry.rephrase.clone(), entry.alt.clone()),
            (Metric::Locality, entry.loc.clone(), entry.loc_ans.clone()),
        ];
        if entry.rephrase.trim() != entry.src.trim() {
            items.push((Metric::DistinctGenerality, entry.rephrase.clone(), entry.alt.clone()));
        }
        if !portability.question.trim().is_empty() && !portability.answer.trim().is_empty() {
            items.push((Metric::Portability, portability.question.clone(), portability.answer.clone()));
        }
        for (prompt, answer) in specificity_questions(records, index, lang) {
            items.push((Metric::Specificity, prompt, answer));
        }
        for (metric, prompt, answer) in items {
            if prompt.trim().is_empty() || answer.trim().is_empty() {
                bail!("language `{lang}`: the {} question or its answer is empty", metric.name());
            }
            out.push(Question { lang: lang.clone(), metric, prompt, answer, new_target: entry.alt.clone() });
        }
    }
    Ok(out)
}

/// Questions about other relations of record `index`'s subject in `lang`: the `src` of the next
/// records (in file order, wrapping) whose subject occurs verbatim in it, with that subject replaced
/// by this record's, paired with their own `alt` (teacher-forced positions only). Skipped: records
/// that ask the same relation as this one (see [`question_templates`]) and records that name this
/// record's subject already.
pub fn specificity_questions(records: &[BenchmarkRecord], index: usize, lang: &str) -> Vec<(String, String)> {
    let Some(entry) = records[index].get(lang) else { return Vec::new() };
    let subject = entry.subject.trim();
    if subject.is_empty() {
        return Vec::new();
    }
    let own_templates = question_templates(&records[index]);
    let mut out = Vec::new();
    for other in (index + 1..records.len()).chain(0..index).map(|j| &records[j]) {
        if out.len() == SPECIFICITY_QUESTIONS {
            break;
        }
        let Some(o) = other.get(lang) else { continue };
        let other_subject = o.subject.trim();
        let usable = !other_subject.is_empty() && o.src.contains(other_subject) && !o.alt.trim().is_empty();
        if !usable || o.src.contains(subject) || !own_templates.is_disjoint(&question_templates(other)) {
            continue;
        }
        out.push((o.src.replacen(other_subject, subject, 1), o.alt.clone()));
    }
    out
}

/// A record's questions as templates, per language: `src` and `rephrase` with the subject taken out
/// (where it occurs verbatim), normalised. Two records that share one ask the same relation: one
/// language's wording suffices ("Welche Position hatte X inne?" asks what "Which was the position that
/// X held?" and "Which position was held by X?" ask), where comparing one language's wording alone
/// took differently worded English questions about one relation for other relations.
fn question_templates(record: &BenchmarkRecord) -> HashSet<(&str, String)> {
    let mut templates = HashSet::new();
    for (lang, entry) in record.iter() {
        let subject = entry.subject.trim();
        for question in [&entry.src, &entry.rephrase] {
            if !subject.is_empty() && question.contains(subject) {
                templates.insert((lang.as_str(), normalize_answer(&question.replace(subject, " "))));
            }
        }
    }
    templates
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
    Fixed(&'a [FfnDelta]),
    /// The update values of the cache entries that retrieval finds in the question.
    Cached(&'a mut CachedEdits),
    /// The retrieved fact in the prompt, no update values.
    InContext(&'a InContextFacts),
}

/// How answers are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scoring {
    /// The argmax at each position of the expected answer fed in (the benchmarks' own scoring).
    TeacherForced,
    /// The first line of the greedy answer, generated exactly as `lafn chat` does (what users see).
    Generate,
    #[default]
    Both,
}

impl Scoring {
    pub fn teacher_forced(self) -> bool {
        matches!(self, Scoring::TeacherForced | Scoring::Both)
    }

    pub fn generate(self) -> bool {
        matches!(self, Scoring::Generate | Scoring::Both)
    }
}

/// Tokens a generated answer may take at least; answers are cut at their first line end well before.
const GENERATED_ANSWER_TOKENS: usize = 16;

/// Tokens a generated answer may take beyond the expected answer's own.
const GENERATED_ANSWER_SLACK: usize = 4;

/// The tokens a generated answer to a question expecting `expected` may take: at least the expected
/// answer's own and a few more, so that a long answer (a princess's full title, a Thai name) is not
/// cut short where chat, with its larger budget, would have given it whole.
fn generation_budget(tokenizer: &Tokenizer, expected: &str) -> Result<usize> {
    Ok(GENERATED_ANSWER_TOKENS.max(tokenizer.encode_plain(expected)?.len() + GENERATED_ANSWER_SLACK))
}

/// A method's answer to one question, in each scoring mode asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// Teacher-forced argmax ids at the expected answer's positions.
    pub predicted: Option<Vec<u32>>,
    /// The generated first line and its ids.
    pub generated: Option<(String, Vec<u32>)>,
    /// Whether retrieval fired (methods with retrieval only).
    pub fired: Option<bool>,
    /// The best scope score among the entries the question names (cached methods only).
    pub scope_score: Option<f32>,
    /// That entry's other-relations score.
    pub other_relations_score: Option<f32>,
}

impl Answer {
    /// This answer with `other`'s predicted and generated answers (the same question answered by
    /// the same model).
    fn with_answers_of(self, other: &Answer) -> Answer {
        Answer { predicted: other.predicted.clone(), generated: other.generated.clone(), ..self }
    }
}

/// Of the entries a question names, fired or not, the one with the best scope score.
fn best_scored_hit(retrieved: &apply::Retrieved) -> Option<&Hit> {
    (retrieved.hits.iter().chain(&retrieved.out_of_scope))
        .filter_map(|h| Some((h.scope_score?, h)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, h)| h)
}

/// A method's answers to all questions, one question per forward pass: batching pads questions to a
/// common width, and the changed matrix shapes round differently enough to flip near-tied argmaxes
/// (seen on MzsRE record 1, de `loc`), which would count as locality failures.
///
/// Where a question is answered by the unchanged model (retrieval did not fire), its answer in
/// `unedited` (the unedited model's answers to the same questions) is taken instead of computed again.
pub fn answer_all(
    model: &Model,
    tokenizer: &Tokenizer,
    mut answerer: Answerer,
    questions: &[Question],
    (scoring, frame): (Scoring, PromptFrame),
    unedited: Option<&[Answer]>,
) -> Result<Vec<Answer>> {
    if let Some(unedited) = unedited {
        ensure!(unedited.len() == questions.len(), "the unedited answers are to other questions");
    }
    // Generated answers see the question as chat frames it; teacher-forced scoring keeps the
    // benchmarks' raw prompts.
    let mut answers: Vec<Answer> = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        // A question asked twice (a rephrasing equal to `src` is also asked as distinct Generality's)
        // is answered once: every answerer answers a question the same way each time.
        if let Some(j) = questions[..i].iter().position(|p| p.prompt == q.prompt && p.answer == q.answer) {
            answers.push(answers[j].clone());
            continue;
        }
        let before = unedited.map(|answers| &answers[i]);
        let budget = generation_budget(tokenizer, &q.answer)?;
        let options = AnswerOptions { frame, finish_sentence: false, ..AnswerOptions::chat(budget) };
        let pair = |prompt: &str| teacher_forcing_pair(tokenizer, prompt, &q.answer);
        // With a track, the edits act only while the expected answer fed in is theirs, as in generation.
        let forced = |prompt: &str, edits: &[FfnDelta], track: Option<AnswerTrack>| -> Result<Vec<u32>> {
            let pair = pair(prompt)?;
            let mut batch = TeacherForcingBatch::new(std::slice::from_ref(&pair), tokenizer.pad_id(), model.device())?;
            if let Some(track) = track {
                batch.limit_deltas(&[track.followed_tokens(&pair.target)]);
            }
            Ok(batch.score(&model.logits_at(&batch.batch, &batch.cells, edits)?)?.predicted)
        };
        let mut answer = Answer::default();
        match &mut answerer {
            Answerer::Fixed(edits) => {
                if scoring.teacher_forced() {
                    answer.predicted = Some(forced(&q.prompt, edits, None)?);
                }
                if scoring.generate() {
                    // Applied to every query, so through the whole answer.
                    let everywhere = GenerationDeltas { deltas: edits, track: None, opening: None };
                    answer.generated =
                        Some(generate_text(model, tokenizer, &q.prompt, everywhere, &[], &options, &mut |_| true)?);
                }
            }
            Answerer::Cached(cached) => {
                // One retrieval serves both modes; generation then runs as `apply::answer` runs it.
                let retrieved = cached.retrieve(model, tokenizer, &q.prompt)?;
                answer.fired = Some(!retrieved.hits.is_empty());
                let best = best_scored_hit(&retrieved);
                answer.scope_score = best.and_then(|h| h.scope_score);
                answer.other_relations_score = best.and_then(|h| h.other_relations_score);
                if let (true, Some(before)) = (retrieved.edits.is_empty(), before) {
                    answers.push(answer.with_answers_of(before));
                    continue;
                }
                let question = retrieved.question(&q.prompt);
                if scoring.teacher_forced() {
                    let track = retrieved.answer_track(tokenizer);
                    answer.predicted = Some(forced(question, &retrieved.edits, Some(track))?);
                }
                if scoring.generate() {
                    let (edits, trained) = (retrieved.answer_edits(tokenizer), &retrieved.answers);
                    answer.generated =
                        Some(generate_text(model, tokenizer, question, edits, trained, &options, &mut |_| true)?);
                }
            }
            Answerer::InContext(facts) => {
                let (prompt, hit) = facts.prompt_for(q);
                answer.fired = Some(hit);
                if let (false, Some(before)) = (hit, before) {
                    answers.push(answer.with_answers_of(before));
                    continue;
                }
                if scoring.teacher_forced() {
                    answer.predicted = Some(forced(&prompt, &[], None)?);
                }
                if scoring.generate() {
                    answer.generated = Some(generate_text(
                        model,
                        tokenizer,
                        &prompt,
                        GenerationDeltas::NONE,
                        &[],
                        &options,
                        &mut |_| true,
                    )?);
                }
            }
        }
        answers.push(answer);
    }
    Ok(answers)
}

/// How one question was answered and scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub metric: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_forced: Option<Score>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<GeneratedOutcome>,
    /// Whether retrieval fired (methods with retrieval only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<bool>,
    /// The best scope score among the entries the question names (cached methods only): with the
    /// unedited outcomes it gives the Generality / Specificity trade-off at any threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_score: Option<f32>,
    /// That entry's other-relations score (see `scope::ScopeScore`): with `scope_score`, the
    /// trade-off at any margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_relations_score: Option<f32>,
}

/// A generated answer's scores, kept with the answer itself for later analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedOutcome {
    pub score: Score,
    pub line: String,
    /// Written in the question's script.
    pub in_script: bool,
    /// States the edit's new target anywhere (what a specificity answer must not do).
    pub states_new_target: bool,
}

/// A method's outcomes in one language of one record, in question order.
pub type LangResult = Vec<Outcome>;

/// Scores a method's answers: against the expected answer, and for Locality and Specificity against
/// the unedited model's answer (`unedited`, answers to the same questions).
pub fn score_answers(
    tokenizer: &Tokenizer,
    questions: &[Question],
    answers: &[Answer],
    unedited: &[Answer],
) -> Result<BTreeMap<String, LangResult>> {
    let mut results: BTreeMap<String, LangResult> = BTreeMap::new();
    for ((q, answer), before) in questions.iter().zip(answers).zip(unedited) {
        let expected = teacher_forcing_pair(tokenizer, &q.prompt, &q.answer)?.target;
        let teacher_forced = match (&answer.predicted, &before.predicted) {
            (Some(predicted), Some(before)) => {
                let reference = if q.metric.compares_with_unedited() { before } else { &expected };
                let (text, reference_text) = (tokenizer.decode(predicted)?, tokenizer.decode(reference)?);
                Some(score(predicted, &text, reference, &reference_text))
            }
            _ => None,
        };
        let generated = match (&answer.generated, &before.generated) {
            (Some((line, ids)), Some((before_line, before_ids))) => {
                let score = if q.metric.compares_with_unedited() {
                    generated_score(ids, line, before_ids, before_line, true)
                } else {
                    generated_score(ids, line, &expected, &q.answer, false)
                };
                Some(GeneratedOutcome {
                    score,
                    line: line.clone(),
                    in_script: in_question_script(&q.prompt, line),
                    states_new_target: mentions(line, &q.new_target),
                })
            }
            _ => None,
        };
        let outcome = Outcome {
            metric: q.metric,
            teacher_forced,
            generated,
            fired: answer.fired,
            scope_score: answer.scope_score,
            other_relations_score: answer.other_relations_score,
        };
        results.entry(q.lang.clone()).or_default().push(outcome);
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
pub fn merged_edits(
    updates: &[&UpdateValues],
    ffn_size: usize,
    hidden: usize,
    device: &Device,
) -> Result<Vec<FfnDelta>> {
    let mut by_layer: BTreeMap<usize, Tensor> = BTreeMap::new();
    for update in updates {
        for layer in &update.layers {
            let sum = match by_layer.remove(&layer.layer) {
                Some(sum) => sum,
                None => Tensor::zeros((ffn_size, hidden), candle_core::DType::F32, device)?,
            };
            let neurons = Tensor::new(layer.neurons.as_slice(), device)?;
            by_layer.insert(layer.layer, sum.index_add(&neurons, &layer.delta.to_device(device)?, 0)?);
        }
    }
    let all = Tensor::arange(0u32, ffn_size as u32, device)?;
    Ok(by_layer.into_iter().map(|(layer, delta)| FfnDelta { layer, neurons: all.clone(), delta }).collect())
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

    fn record(blocks: &[(&str, &str, &str)]) -> BenchmarkRecord {
        let value: serde_json::Value = blocks
            .iter()
            .map(|(lang, subject, src)| {
                let block = serde_json::json!({"subject": subject, "src": src, "rephrase": src, "alt": format!("alt of {subject}"),
                    "loc": "l", "loc_ans": "a", "portability": {"New Question": "", "New Answer": ""}});
                (lang.to_string(), block)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        BenchmarkRecord::from_json(value).unwrap()
    }

    #[test]
    fn specificity_asks_other_records_relations_about_this_subject() {
        let records = vec![
            record(&[
                ("en", "Marie Curie", "Where was Marie Curie born?"),
                ("de", "Marie Curie", "Wo wurde Marie Curie geboren?"),
            ]),
            record(&[("en", "Rome", "Which country is Rome in?"), ("de", "Rom", "In welchem Land liegt Rom?")]),
            // Same relation as record 0 in English: skipped.
            record(&[("en", "Bach", "Where was Bach born?"), ("de", "Bach", "Wo ist Bach geboren?")]),
            // Worded otherwise in English, but the same German question: the same relation, skipped.
            record(&[("en", "Kant", "What is Kant's place of birth?"), ("de", "Kant", "Wo wurde Kant geboren?")]),
            // The subject is not in the question verbatim in German: skipped there.
            record(&[("en", "Paris", "Who is the mayor of Paris?"), ("de", "Paris", "Wer regiert die Stadt?")]),
            record(&[
                ("en", "Tokyo", "How many people live in Tokyo?"),
                ("de", "Tokio", "Wie viele Menschen leben in Tokio?"),
            ]),
        ];
        let en = specificity_questions(&records, 0, "en");
        assert_eq!(
            en,
            vec![
                ("Which country is Marie Curie in?".to_string(), "alt of Rome".to_string()),
                ("Who is the mayor of Marie Curie?".to_string(), "alt of Paris".to_string())
            ]
        );
        let de: Vec<String> = specificity_questions(&records, 0, "de").into_iter().map(|q| q.0).collect();
        assert_eq!(de, vec!["In welchem Land liegt Marie Curie?", "Wie viele Menschen leben in Marie Curie?"]);
        // Wraps around to earlier records, deterministically.
        assert_eq!(specificity_questions(&records, 5, "en")[0].0, "Where was Tokyo born?");
        assert_eq!(specificity_questions(&records, 5, "en"), specificity_questions(&records, 5, "en"));
        let all = questions(&records, 0, &["en".into()]).unwrap();
        assert_eq!(all.iter().filter(|q| q.metric == Metric::Specificity).count(), 2);
        assert!(all.iter().all(|q| q.new_target == "alt of Marie Curie"));
        assert!(all.iter().all(|q| q.metric != Metric::DistinctGenerality), "rephrase equals src here");
    }

    #[test]
    fn method_names_are_the_same_on_the_command_line_and_in_files() {
        for &method in EvalMethod::value_variants() {
            let name = method.to_string();
            assert_eq!(EvalMethod::from_str(&name, false).unwrap(), method);
            assert_eq!(serde_json::to_value(method).unwrap(), name);
        }
        assert_eq!(EvalMethod::LuLafnsNocache.to_string(), "lu-lafns-nocache");
        assert_eq!(EvalMethod::FtL.to_string(), "ft-l");
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
        let merged = merged_edits(&[&a, &b], 4, 2, &Device::Cpu)?;
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].delta.to_vec2::<f32>()?, vec![vec![1.0, 1.0], vec![0.0; 2], vec![6.0, 6.0], vec![0.0; 2]]);
        Ok(())
    }
}
