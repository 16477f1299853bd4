//! Running an evaluation: edit each record with every requested method, score every language, keep
//! per-record results in the state file, and aggregate them into the report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::ValueEnum;
use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use super::dataset::{load_records, Dataset, LanguageCoverage};
use super::kept_edits::{edits_dir_for, KeptEdits};
use super::methods::{
    answer_all, fine_tune_layer, merged_edits, questions, random_neurons, score_answers, whole_layer, Answer, Answerer,
    EvalMethod, InContextFacts, Question, Scoring,
};
use super::report::{aggregate, EvalReport, ModelSummary, RecordResult, TimeBreakdown};
use super::shard::Shard;
use super::state::{RunIdentity, StateFile, QUESTION_SET};
use super::unedited::UneditedAnswers;
use crate::method::apply::CachedEdits;
use crate::method::cache::MemoryStore;
use crate::method::pipeline::{run_edit, EditEvent, EditModels, EditRun};
use crate::method::{load_settings, optimize, BenchmarkRecord, EditGroup, MethodSettings};
use crate::method::{LocatedNeurons, UpdateValues};
use crate::runtime::{FfnDelta, LoadedModel, Model, PromptFrame, PromptStates};
use crate::Result;

/// Settings of the evaluation itself (beside the method's), under the key `eval` of the settings file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSettings {
    /// Seed of the random-neurons baseline; record i uses `random_seed + i`.
    pub random_seed: u64,
    /// The layer FT-L fine-tunes; `None`: per record, the located layer with the most LAFNs.
    pub ft_layer: Option<usize>,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self { random_seed: 1234, ft_layer: None }
    }
}

/// All settings of a run, from one JSON file: the method's settings (as `load_settings` reads them)
/// plus an `eval` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EvalConfig {
    #[serde(flatten)]
    pub method: MethodSettings,
    #[serde(default)]
    pub eval: EvalSettings,
}

impl EvalConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let method = load_settings(path)?;
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let eval = match value.get("eval") {
            Some(eval) => serde_json::from_value(eval.clone())
                .wrap_err_with(|| format!("settings {}: `eval` is not valid", path.display()))?,
            None => EvalSettings::default(),
        };
        Ok(Self { method, eval })
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub dataset: Dataset,
    pub file: PathBuf,
    /// Languages to edit and score; `None`: the dataset's languages.
    pub langs: Option<Vec<String>>,
    /// Only the first `limit` records.
    pub limit: Option<usize>,
    pub methods: Vec<EvalMethod>,
    /// All edits accumulate in one cache and every record is scored after all edits.
    pub sequential: bool,
    pub config: EvalConfig,
    /// Where per-record results are appended and resumed from (`None`: kept only in memory).
    pub state_file: Option<PathBuf>,
    pub scoring: Scoring,
    /// Evaluate only this part of the records (standard protocol); [`super::merge`] joins the parts.
    pub shard: Option<Shard>,
    /// Where the unedited model's answers are kept between runs (see [`UneditedAnswers`]); `None`:
    /// computed in every run.
    pub unedited_answers: Option<PathBuf>,
}

/// The models of a run: the quantized model answers (as chat does), the dense copy edits.
#[derive(Clone, Copy)]
pub struct EvalModels<'a> {
    pub loaded: &'a LoadedModel,
    pub dense: &'a Model,
}

/// The stages a run reports progress in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalPhase {
    /// Standard protocol: each record edited and scored in turn.
    Records,
    /// Sequential protocol, first pass: every record edited into the shared cache.
    Editing,
    /// Sequential protocol, second pass: every record scored.
    Scoring,
}

/// What a run is doing within the current record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Making a method's edit (for `lu-lafns`: paraphrases, locate, optimize).
    Editing(EvalMethod),
    Scoring(EvalMethod),
}

/// Progress: `done` of `total` records finished in `phase`, of which `resumed` came from the state file;
/// `stage` says what is being done for the next record (`None` when a record has just finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: EvalPhase,
    pub done: usize,
    pub total: usize,
    pub resumed: usize,
    pub stage: Option<Stage>,
}

/// Runs the evaluation and returns its report. Results found in the state file are not computed
/// again. Setting `cancel` stops after the current record; the report then covers what was finished.
pub fn run(
    models: EvalModels,
    request: &EvalRequest,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<EvalReport> {
    let started = Instant::now();
    let mut plan = Plan::new(models.loaded, request)?;
    plan.warn_of_missing_languages(request);
    let unedited = plan.unedited_answers(models.loaded, request);
    let mut evaluator = Evaluator::new(models, &request.config, &plan.langs, request.scoring, unedited)?;
    let before = plan.results.list.len();
    let total = plan.in_shard_count(request.shard);
    let mut sink = |result: RecordResult| plan.results.keep(result);
    if request.sequential {
        let kept = match &request.state_file {
            Some(path) => {
                Some(KeptEdits::open(&edits_dir_for(path), &plan.identity, models.dense.config().hidden_size)?)
            }
            None => None,
        };
        evaluator.run_sequential(&plan.records, &plan.missing, kept.as_ref(), cancel, on_progress, &mut sink)?;
    } else {
        evaluator.run_standard(&plan.records, &plan.missing, total, cancel, on_progress, &mut sink)?;
    }
    drop(evaluator);
    Ok(plan.report(request, models.loaded, (before, 1), started))
}

/// What a run has to do, worked out before any record is evaluated: the records and languages, the
/// state file and the results it already holds, and per record the methods still to evaluate.
pub(super) struct Plan {
    pub(super) methods: Vec<EvalMethod>,
    pub(super) records: Vec<BenchmarkRecord>,
    pub(super) langs: Vec<String>,
    missing_langs: std::collections::BTreeMap<String, Vec<usize>>,
    pub(super) identity: RunIdentity,
    pub(super) results: KeptResults,
    /// Per record, the methods without a result yet (empty outside the shard).
    pub(super) missing: Vec<Vec<EvalMethod>>,
}

impl Plan {
    pub(super) fn new(loaded: &LoadedModel, request: &EvalRequest) -> Result<Self> {
        let mut methods: Vec<EvalMethod> = Vec::new();
        for &m in &request.methods {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        if methods.is_empty() {
            bail!("no method to evaluate");
        }
        if request.sequential && request.shard.is_some() {
            bail!("a sequential run edits every record into one cache, so it cannot be split into shards");
        }
        let in_shard = |record: usize| request.shard.is_none_or(|shard| shard.contains(record));
        let mut records = load_records(&request.file)?;
        if let Some(limit) = request.limit {
            records.truncate(limit);
        }
        if records.is_empty() {
            bail!("{} holds no records to evaluate", request.file.display());
        }
        let requested: Vec<String> = match &request.langs {
            Some(langs) if !langs.is_empty() => langs.clone(),
            _ => request.dataset.languages().to_vec(),
        };
        // Each record is evaluated in the requested languages it has; the others are reported.
        let LanguageCoverage { present: langs, missing: missing_langs } = LanguageCoverage::of(&records, &requested);
        if langs.is_empty() {
            bail!("{}: no record has any of the languages {}", request.file.display(), requested.join(", "));
        }

        // Every question and answer fits the model, checked before hours of work rather than at its record.
        let (tokenizer, limit) = (&loaded.tokenizer, loaded.model.config().max_input_tokens());
        for i in 0..records.len() {
            let at = || format!("{} record {}", request.file.display(), i + 1);
            for q in questions(&records, i, &langs).wrap_err_with(at)? {
                let what = format!("{}, language {}: the {} question", at(), q.lang, q.metric.name());
                tokenizer.check_length(&what, &q.prompt, limit)?;
                tokenizer.check_length(&format!("{what}'s answer"), &q.answer, limit)?;
            }
        }

        let info = &loaded.info;
        let identity = RunIdentity {
            dataset: request.dataset.to_string(),
            data_fingerprint: crate::runtime::fingerprint(&request.file)?,
            langs: langs.clone(),
            protocol: protocol_name(request.sequential).into(),
            sequential_records: request.sequential.then_some(records.len()),
            model_fingerprint: info.fingerprint.clone(),
            settings: request.config.clone(),
            scoring: request.scoring,
            question_set: QUESTION_SET,
        };
        let (state, mut list) = match &request.state_file {
            Some(path) => {
                let (state, results) = StateFile::open(path, &identity)?;
                (Some(state), results)
            }
            None => (None, Vec::new()),
        };
        list.retain(|r| r.record < records.len() && methods.contains(&r.method) && in_shard(r.record));
        let done: HashSet<(EvalMethod, usize)> = list.iter().map(|r| (r.method, r.record)).collect();
        let missing: Vec<Vec<EvalMethod>> = (0..records.len())
            .map(|i| methods.iter().copied().filter(|m| in_shard(i) && !done.contains(&(*m, i))).collect())
            .collect();
        let results = KeptResults { state, list };
        Ok(Self { methods, records, langs, missing_langs, identity, results, missing })
    }

    /// Tells the user which records lack which requested languages (once per run: a worker does not).
    pub(super) fn warn_of_missing_languages(&self, request: &EvalRequest) {
        for line in LanguageCoverage::describe(&self.missing_langs, self.records.len()) {
            log::warn!("{}: language {line}", request.file.display());
        }
    }

    /// The records of the shard (all records without one).
    pub(super) fn in_shard_count(&self, shard: Option<Shard>) -> usize {
        (0..self.records.len()).filter(|&i| shard.is_none_or(|shard| shard.contains(i))).count()
    }

    /// The unedited model's answers kept between runs, or kept in memory when the request says so.
    pub(super) fn unedited_answers(&self, loaded: &LoadedModel, request: &EvalRequest) -> UneditedAnswers {
        match &request.unedited_answers {
            // Kept per model file and arithmetic: another kernel may round an answer otherwise.
            Some(dir) => {
                UneditedAnswers::open(dir, &format!("{}.{}", loaded.info.fingerprint, loaded.model.arithmetic()))
            }
            None => UneditedAnswers::in_memory(),
        }
    }

    /// The report of every result kept; the results from index `before` on were computed in this run,
    /// by `workers` processes side by side.
    pub(super) fn report(
        &self,
        request: &EvalRequest,
        loaded: &LoadedModel,
        (before, workers): (usize, usize),
        started: Instant,
    ) -> EvalReport {
        let computed: HashSet<usize> = self.results.list[before..].iter().map(|r| r.record).collect();
        let info = &loaded.info;
        EvalReport {
            dataset: request.dataset.to_string(),
            file: request.file.clone(),
            langs: self.langs.clone(),
            missing_langs: self.missing_langs.clone(),
            protocol: protocol_name(request.sequential).into(),
            records: self.records.len(),
            shard: request.shard,
            methods: aggregate(&self.results.list, &self.methods, &self.langs),
            settings: request.config.clone(),
            model: ModelSummary {
                path: info.path.clone(),
                architecture: info.config.arch.name().into(),
                fingerprint: info.fingerprint.clone(),
            },
            git_commit: BUILD_COMMIT.into(),
            wall_seconds: started.elapsed().as_secs_f64(),
            records_this_run: computed.len(),
            workers,
        }
    }
}

/// A run's results: those of the state file, and each one finished since, appended to it.
pub(super) struct KeptResults {
    state: Option<StateFile>,
    pub(super) list: Vec<RecordResult>,
}

impl KeptResults {
    pub(super) fn keep(&mut self, result: RecordResult) -> Result<()> {
        if let Some(state) = self.state.as_mut() {
            state.append(&result)?;
        }
        self.list.push(result);
        Ok(())
    }
}

fn protocol_name(sequential: bool) -> &'static str {
    if sequential {
        "sequential"
    } else {
        "standard"
    }
}

/// The commit lafn was built from, stamped by build.rs: `<sha>`, `<sha>-dirty` when the sources had
/// uncommitted changes, or "unknown" when built outside a git checkout.
const BUILD_COMMIT: &str = env!("LAFN_GIT_COMMIT");

/// The edits one record gets: ours and the baselines built from it.
pub(super) struct RecordEdits {
    pub(super) run: EditRun,
    pub(super) paraphrase_seconds: f64,
    pub(super) random: Option<(LocatedNeurons, crate::method::OptimizeOutcome, f64)>,
    pub(super) fine_tuned: Option<(UpdateValues, f64)>,
}

/// Per-run state: the models, the caches the methods retrieve from, the settings.
pub(super) struct Evaluator<'a> {
    models: EvalModels<'a>,
    config: &'a EvalConfig,
    langs: &'a [String],
    scoring: Scoring,
    ours: CachedEdits,
    random: CachedEdits,
    facts: InContextFacts,
    unedited: UneditedAnswers,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(
        models: EvalModels<'a>,
        config: &'a EvalConfig,
        langs: &'a [String],
        scoring: Scoring,
        unedited: UneditedAnswers,
    ) -> Result<Self> {
        // The run's edits end with it: kept in memory, never written to disk.
        let open = || -> Result<CachedEdits> {
            let loaded = models.loaded;
            let store = MemoryStore::new(&loaded.info.fingerprint);
            let (retrieval, scope) = (config.method.retrieval.clone(), config.method.scope.clone());
            CachedEdits::new(store, &loaded.model, &loaded.tokenizer, retrieval, scope)
        };
        Ok(Self {
            models,
            config,
            langs,
            scoring,
            ours: open()?,
            random: open()?,
            facts: InContextFacts::new(config.method.retrieval.clone()),
            unedited,
        })
    }

    /// Each record edited, scored and forgotten before the next: the cache holds one entry at a time.
    /// `total` counts the records of the run (its shard), finished or not.
    fn run_standard(
        &mut self,
        records: &[BenchmarkRecord],
        missing: &[Vec<EvalMethod>],
        total: usize,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(Progress),
        sink: &mut dyn FnMut(RecordResult) -> Result<()>,
    ) -> Result<()> {
        let resumed = total - missing.iter().filter(|m| !m.is_empty()).count();
        let mut done = resumed;
        on_progress(Progress { phase: EvalPhase::Records, done, total, resumed, stage: None });
        for (i, methods) in missing.iter().enumerate() {
            if methods.is_empty() {
                continue;
            }
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let mut on_stage =
                |stage| on_progress(Progress { phase: EvalPhase::Records, done, total, resumed, stage: Some(stage) });
            let Some(scored) = self.evaluate_record(records, i, methods, cancel, &mut on_stage)? else { break };
            for result in scored {
                sink(result)?;
            }
            done += 1;
            on_progress(Progress { phase: EvalPhase::Records, done, total, resumed, stage: None });
        }
        Ok(())
    }

    /// Record `index` edited with `methods`, scored, and forgotten; `None` when `cancel` stopped it.
    pub(super) fn evaluate_record(
        &mut self,
        records: &[BenchmarkRecord],
        index: usize,
        methods: &[EvalMethod],
        cancel: &AtomicBool,
        on_stage: &mut dyn FnMut(Stage),
    ) -> Result<Option<Vec<RecordResult>>> {
        let group = self.group(index, &records[index])?;
        let edits = self.edit(index, &group, methods, cancel, on_stage)?;
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let ids = self.insert(&group, edits.as_ref(), methods)?;
        let fixed = FixedEdits::of(edits.as_ref().into_iter().collect(), self.models)?;
        let scored = self.score(records, index, methods, edits.as_ref(), &fixed, on_stage)?;
        self.remove(&ids)?;
        Ok(Some(scored))
    }

    /// Every record edited into one cache first, then every record scored with all edits in place.
    /// Edits found in `kept` are not made again; those made are kept there.
    fn run_sequential(
        &mut self,
        records: &[BenchmarkRecord],
        missing: &[Vec<EvalMethod>],
        kept: Option<&KeptEdits>,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(Progress),
        sink: &mut dyn FnMut(RecordResult) -> Result<()>,
    ) -> Result<()> {
        let total = records.len();
        let resumed = missing.iter().filter(|m| m.is_empty()).count();
        if resumed == total {
            on_progress(Progress { phase: EvalPhase::Scoring, done: total, total, resumed, stage: None });
            return Ok(());
        }
        // Scoring a record needs every record's edits, finished or not: the edits are made again.
        let needed: Vec<EvalMethod> = EvalMethod::value_variants()
            .iter()
            .copied()
            .filter(|m| missing.iter().any(|list| list.contains(m)))
            .collect();
        // Edits kept by an earlier run count as resumed: the bar and its ETA cover the others.
        let mut kept_edits: Vec<Option<RecordEdits>> =
            (0..total).map(|i| kept.and_then(|kept| kept.load(i, &needed))).collect();
        let reused = kept_edits.iter().filter(|e| e.is_some()).count();
        let mut edited = reused;
        let editing = |done, stage| Progress { phase: EvalPhase::Editing, done, total, resumed: reused, stage };
        let mut all_edits = Vec::with_capacity(total);
        on_progress(editing(edited, None));
        for (i, record) in records.iter().enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
            let group = self.group(i, record)?;
            let edits = match kept_edits[i].take() {
                Some(edits) => Some(edits),
                None => {
                    let edits =
                        self.edit(i, &group, &needed, cancel, &mut |stage| on_progress(editing(edited, Some(stage))))?;
                    if cancel.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    if let (Some(kept), Some(edits)) = (kept, &edits) {
                        kept.save(i, &needed, edits)?;
                    }
                    edited += 1;
                    on_progress(editing(edited, None));
                    edits
                }
            };
            self.insert(&group, edits.as_ref(), &needed)?;
            all_edits.push(edits);
        }
        let fixed = FixedEdits::of(all_edits.iter().flatten().collect(), self.models)?;
        let mut done = resumed;
        on_progress(Progress { phase: EvalPhase::Scoring, done, total, resumed, stage: None });
        for i in 0..total {
            if missing[i].is_empty() {
                continue;
            }
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let mut on_stage =
                |stage| on_progress(Progress { phase: EvalPhase::Scoring, done, total, resumed, stage: Some(stage) });
            for result in self.score(records, i, &missing[i], all_edits[i].as_ref(), &fixed, &mut on_stage)? {
                sink(result)?;
            }
            done += 1;
            on_progress(Progress { phase: EvalPhase::Scoring, done, total, resumed, stage: None });
        }
        Ok(())
    }

    pub(super) fn group(&self, index: usize, record: &BenchmarkRecord) -> Result<EditGroup> {
        EditGroup::from_benchmark(&format!("record-{}", index + 1), record, Some(self.langs))
            .wrap_err_with(|| format!("record {}", index + 1))
    }

    /// Our edit of the record (when a method needs it) and the baselines' edits derived from it.
    /// Returns what was finished when `cancel` is set; the caller checks it.
    pub(super) fn edit(
        &self,
        index: usize,
        group: &EditGroup,
        methods: &[EvalMethod],
        cancel: &AtomicBool,
        on_stage: &mut dyn FnMut(Stage),
    ) -> Result<Option<RecordEdits>> {
        if !methods.iter().any(|m| m.needs_edit()) {
            return Ok(None);
        }
        let loaded = self.models.loaded;
        let edit_models =
            EditModels { dense: self.models.dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
        let settings = &self.config.method;
        on_stage(Stage::Editing(EvalMethod::LuLafns));
        let started = Instant::now();
        let mut paraphrased_at = None;
        let run = run_edit(edit_models, group.clone(), settings, cancel, &mut |event| {
            if let EditEvent::Paraphrased(_) = event {
                paraphrased_at = Some(started.elapsed().as_secs_f64());
            }
        })
        .wrap_err_with(|| format!("editing record {}", index + 1))?;
        let paraphrase_seconds = paraphrased_at.unwrap_or_default();
        let ffn = self.models.dense.config().ffn_size;
        let optimize_with = |located: &LocatedNeurons| -> Result<(crate::method::OptimizeOutcome, f64)> {
            let started = Instant::now();
            let outcome = optimize(
                self.models.dense,
                &loaded.tokenizer,
                &run.group,
                located,
                &settings.edit,
                settings.frame,
                PromptStates::default(),
                cancel,
                &mut |_| {},
            )
            .wrap_err_with(|| format!("editing record {}", index + 1))?;
            Ok((outcome, started.elapsed().as_secs_f64()))
        };
        let random = if methods.contains(&EvalMethod::RandomNeurons) && !cancel.load(Ordering::Relaxed) {
            let located = random_neurons(&run.located, ffn, self.config.eval.random_seed.wrapping_add(index as u64));
            on_stage(Stage::Editing(EvalMethod::RandomNeurons));
            let (outcome, seconds) = optimize_with(&located)?;
            Some((located, outcome, seconds))
        } else {
            None
        };
        let fine_tuned = match fine_tune_layer(&run.located, self.config.eval.ft_layer) {
            Some(layer) if methods.contains(&EvalMethod::FtL) && !cancel.load(Ordering::Relaxed) => {
                if layer >= self.models.dense.config().num_layers {
                    bail!("eval.ft_layer {layer} does not exist in this model");
                }
                on_stage(Stage::Editing(EvalMethod::FtL));
                let (outcome, seconds) = optimize_with(&whole_layer(&run.located, layer, ffn))?;
                Some((outcome.update, seconds))
            }
            _ => None,
        };
        Ok(Some(RecordEdits { run, paraphrase_seconds, random, fine_tuned }))
    }

    /// Makes a record's edits retrievable; returns the cache ids to remove afterwards.
    fn insert(
        &mut self,
        group: &EditGroup,
        edits: Option<&RecordEdits>,
        methods: &[EvalMethod],
    ) -> Result<Vec<String>> {
        let settings = &self.config.method;
        let loaded = self.models.loaded;
        let mut ids = Vec::new();
        if let Some(edits) = edits {
            let run = &edits.run;
            if methods.contains(&EvalMethod::LuLafns) {
                ids.push(run.store(&mut self.ours, &loaded.model, &loaded.tokenizer, settings)?);
            }
            if let Some((located, outcome, _)) = &edits.random {
                ids.push(self.random.insert(
                    &loaded.model,
                    &loaded.tokenizer,
                    &run.group,
                    located,
                    &outcome.update,
                    settings,
                    &outcome.history,
                )?);
            }
        }
        if methods.contains(&EvalMethod::Icl) {
            self.facts.insert(&group.name, group);
        }
        ids.push(group.name.clone());
        Ok(ids)
    }

    /// Forgets a record's edits (standard protocol). The random cache shares the entry ids.
    fn remove(&mut self, ids: &[String]) -> Result<()> {
        for id in ids {
            for cached in [&mut self.ours, &mut self.random] {
                if cached.cache().list().iter().any(|row| &row.id == id) {
                    cached.remove(id)?;
                }
            }
            self.facts.remove(id);
        }
        Ok(())
    }

    /// Scores record `index` with each of `methods`.
    fn score(
        &mut self,
        records: &[BenchmarkRecord],
        index: usize,
        methods: &[EvalMethod],
        edits: Option<&RecordEdits>,
        fixed: &FixedEdits,
        on_stage: &mut dyn FnMut(Stage),
    ) -> Result<Vec<RecordResult>> {
        let questions = questions(records, index, self.langs).wrap_err_with(|| format!("record {}", index + 1))?;
        let models = self.models;
        on_stage(Stage::Scoring(EvalMethod::Unedited));
        let scoring = (self.scoring, self.config.method.frame);
        let started = Instant::now();
        // Kept answers are keyed by the frame the model takes (what `auto` means changed once).
        let frame = models.loaded.tokenizer.chat_frame(scoring.1)?.setting();
        let unedited = self.unedited.answers(&questions, scoring.0, frame, &mut |asked| {
            Ok(answer(models, Answerer::Fixed(&[]), asked, scoring, None)?.0)
        })?;
        let unedited_seconds = started.elapsed().as_secs_f64();
        let known = Some(unedited.as_slice());
        let mut results = Vec::new();
        for &method in methods {
            on_stage(Stage::Scoring(method));
            let edit = || edits.ok_or_else(|| eyre!("{method} needs the record's edit"));
            let mut seconds = TimeBreakdown::default();
            let answers = match method {
                EvalMethod::Unedited => {
                    seconds.scoring = unedited_seconds;
                    unedited.clone()
                }
                EvalMethod::LuLafns => {
                    let e = edit()?;
                    seconds.paraphrases = e.paraphrase_seconds;
                    seconds.locate = e.run.locate_seconds;
                    seconds.optimize = e.run.optimize_seconds;
                    timed(models, Answerer::Cached(&mut self.ours), &questions, scoring, known, &mut seconds)?
                }
                EvalMethod::LuLafnsNocache => {
                    timed(models, Answerer::Fixed(&fixed.ours), &questions, scoring, known, &mut seconds)?
                }
                EvalMethod::RandomNeurons => {
                    seconds.optimize = edit()?.random.as_ref().map_or(0.0, |r| r.2);
                    timed(models, Answerer::Cached(&mut self.random), &questions, scoring, known, &mut seconds)?
                }
                EvalMethod::FtL => {
                    seconds.optimize = edit()?.fine_tuned.as_ref().map_or(0.0, |f| f.1);
                    timed(models, Answerer::Fixed(&fixed.fine_tuned), &questions, scoring, known, &mut seconds)?
                }
                EvalMethod::Icl => {
                    timed(models, Answerer::InContext(&self.facts), &questions, scoring, known, &mut seconds)?
                }
            };
            let tokenizer = &self.models.loaded.tokenizer;
            let langs = score_answers(tokenizer, &questions, &answers, &unedited)?;
            results.push(RecordResult { method, record: index, langs, seconds });
        }
        Ok(results)
    }
}

/// A method's answers on the quantized model, scored as `scoring` says with questions framed as its
/// frame says (`unedited`: the unedited model's answers, reused where nothing changes the model),
/// and the seconds they took.
fn answer(
    models: EvalModels,
    answerer: Answerer,
    questions: &[Question],
    scoring: (Scoring, PromptFrame),
    unedited: Option<&[Answer]>,
) -> Result<(Vec<Answer>, f64)> {
    let started = Instant::now();
    let loaded = models.loaded;
    let answers = answer_all(&loaded.model, &loaded.tokenizer, answerer, questions, scoring, unedited)?;
    Ok((answers, started.elapsed().as_secs_f64()))
}

/// [`answer`], recording the seconds as scoring time.
fn timed(
    models: EvalModels,
    answerer: Answerer,
    questions: &[Question],
    scoring: (Scoring, PromptFrame),
    unedited: Option<&[Answer]>,
    seconds: &mut TimeBreakdown,
) -> Result<Vec<Answer>> {
    let (answers, elapsed) = answer(models, answerer, questions, scoring, unedited)?;
    seconds.scoring = elapsed;
    Ok(answers)
}

/// Update values the no-retrieval methods apply to every question: the records' edits summed.
struct FixedEdits {
    ours: Vec<FfnDelta>,
    fine_tuned: Vec<FfnDelta>,
}

impl FixedEdits {
    fn of(edits: Vec<&RecordEdits>, models: EvalModels) -> Result<Self> {
        let c = models.dense.config();
        let ours: Vec<&UpdateValues> = edits.iter().map(|e| &e.run.outcome.update).collect();
        let fine_tuned: Vec<&UpdateValues> = edits.iter().filter_map(|e| e.fine_tuned.as_ref().map(|f| &f.0)).collect();
        let merge = |updates: &[&UpdateValues]| match updates {
            [one] => one.to_ffn_deltas(models.dense.device()),
            _ => merged_edits(updates, c.ffn_size, c.hidden_size, models.dense.device()),
        };
        Ok(Self { ours: merge(&ours)?, fine_tuned: merge(&fine_tuned)? })
    }
}
