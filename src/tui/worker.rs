//! The worker thread: owns the models and the edit cache and runs every long job (fetch + load,
//! paraphrases, locate, edit, chat, top tokens) off the UI's async runtime, reporting progress over a
//! channel the event loop selects on. Model work is CPU-bound and keeps the models across jobs, so it has
//! a thread of its own rather than tokio's blocking pool. Jobs run one after another; the cancel flag
//! stops the running one (an edit at its next step, an answer at its next token).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use color_eyre::eyre::{eyre, WrapErr};
use tokio::sync::mpsc::UnboundedSender;

use crate::fetch::{self, FetchEvent};
use crate::method::apply::{answer, AnswerOptions, CachedEdits, Retrieved};
use crate::method::cache::{default_cache_dir, CacheEntry, EditCache, IndexRow};
use crate::method::edit::{OptimizeStep, StopReason};
use crate::method::pipeline::{locate_group, run_edit, EditEvent, EditModels, Location};
use crate::method::prompts::{fill_paraphrases, ParaphraseSettings};
use crate::method::retrieve::Hit;
use crate::method::{EditDescriptor, EditGroup, LocatedNeurons, Measurements, MethodSettings};
use crate::runtime::{LoadedModel, Model, ModelInfo, PromptFrame, WeightMode};
use crate::session::{check_cache_entry, entry_needed_by_saved_sessions};
use crate::Result;

/// Top tokens listed per neuron in the Neurons pane.
pub const TOP_TOKENS: usize = 5;

/// A long piece of work for the worker.
#[derive(Debug, Clone)]
pub enum Job {
    /// Fetch (if needed) and load a model spec, then open its edit cache.
    Load { spec: String },
    /// Paraphrases for one language of a group.
    Paraphrase { group_id: u64, lang_index: usize, descriptor: EditDescriptor, settings: ParaphraseSettings },
    /// Fill paraphrases, measure and select LAFNs.
    Locate { group_id: u64, group: EditGroup, settings: Box<MethodSettings> },
    /// The whole edit (`method::pipeline::run_edit`), then store it in the cache. `replaces`: the
    /// group's entry from an earlier edit, removed once the new one is stored unless a saved session
    /// may need it.
    Edit { group_id: u64, group: EditGroup, settings: Box<MethodSettings>, replaces: Option<Replaces> },
    /// Answer a query, with the cache and/or without it, put to the model as `frame` says. `raw`: keep
    /// generating after the answer's first line.
    Chat { turn: usize, query: String, answers: ChatAnswers, max_tokens: usize, raw: bool, frame: PromptFrame },
    /// Tell the scope gate that `query` asks the fact of the entries of `hits` (`asks`), or does not.
    Teach { query: String, hits: Vec<Hit>, asks: bool },
    /// Each neuron's value vector projected through the unembedding: its top tokens.
    TopTokens { layer: usize, neurons: Vec<u32> },
    /// Check that session groups' cache entries hold their edits (see `session::check_cache_entry`).
    CheckCacheEntries { links: Vec<CacheLink> },
}

/// A link and its entry when the entry holds the group's edit, else why not.
pub type CacheVerdict = (CacheLink, std::result::Result<Box<CacheEntry>, String>);

/// A group's link to its cache entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheLink {
    pub group_id: u64,
    pub entry_id: String,
    pub group: EditGroup,
}

impl Job {
    pub fn label(&self) -> String {
        match self {
            Job::Load { spec } => format!("loading {spec}"),
            Job::Paraphrase { descriptor, .. } => format!("paraphrasing ({})", descriptor.lang),
            Job::Locate { group, .. } => format!("locating `{}`", group.name),
            Job::Edit { group, .. } => format!("editing `{}`", group.name),
            Job::Chat { .. } => "answering".to_string(),
            Job::Teach { .. } => "teaching the scope gate".to_string(),
            Job::TopTokens { layer, .. } => format!("top tokens of layer {layer}"),
            Job::CheckCacheEntries { .. } => "checking cache entries".to_string(),
        }
    }
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    Started(String),
    Stage(String),
    Fetch(FetchEvent),
    ModelLoaded {
        spec: String,
        info: Box<ModelInfo>,
        cache_dir: PathBuf,
        cache_rows: Vec<IndexRow>,
    },
    Paraphrased {
        group_id: u64,
        lang_index: usize,
        paraphrases: Vec<String>,
    },
    Located {
        group_id: u64,
        group: EditGroup,
        located: LocatedNeurons,
        measurements: Arc<Measurements>,
    },
    Step {
        group_id: u64,
        step: OptimizeStep,
    },
    Edited(Box<EditResult>),
    ChatText {
        turn: usize,
        with_cache: bool,
        text: String,
    },
    ChatDone {
        turn: usize,
        with_cache: bool,
        fired: Vec<Hit>,
        /// Entries whose subject the question names but whose fact it does not ask.
        out_of_scope: Vec<Hit>,
        /// The question as the fired entries were trained to read it, where that differs.
        read_as: Option<String>,
    },
    /// What the scope gate was taught, a line per entry.
    Taught(Vec<String>),
    TopTokens {
        layer: usize,
        tokens: Vec<(u32, Vec<String>)>,
    },
    CacheEntriesChecked(Vec<CacheVerdict>),
    Failed(String),
    /// The job ended (after its result or failure).
    Finished,
}

/// A group's earlier cache entry that its new edit replaces, and the sessions that may still need it
/// (see `session::entry_needed_by_saved_sessions`; reading them is the worker's job, not the UI's).
#[derive(Debug, Clone, PartialEq)]
pub struct Replaces {
    pub entry: String,
    pub sessions_dir: PathBuf,
    pub session: String,
}

#[derive(Debug, Clone)]
pub struct EditResult {
    pub group_id: u64,
    pub group: EditGroup,
    pub located: LocatedNeurons,
    pub history: Vec<OptimizeStep>,
    pub stop: StopReason,
    pub cache_entry: Option<String>,
    /// The group's earlier entry, removed from the cache because the new one replaces it.
    pub replaced: Option<String>,
    /// What changed for the other entries of its subject (see `CachedEdits::shared_subject_notes`).
    pub shared_subject_notes: Vec<String>,
    pub cache_rows: Vec<IndexRow>,
    pub seconds: f64,
}

/// Handle to the worker thread. Dropping it cancels the running job and lets the thread end with it;
/// quitting never waits for a fetch or a load to finish.
/// Which answers a chat question gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatAnswers {
    WithCache,
    WithoutCache,
    /// Both, the one with the cache first.
    SideBySide,
}

impl ChatAnswers {
    /// Per answer, in order, whether it uses the cache.
    fn with_cache(self) -> &'static [bool] {
        match self {
            Self::WithCache => &[true],
            Self::WithoutCache => &[false],
            Self::SideBySide => &[true, false],
        }
    }
}

pub struct Worker {
    jobs: Sender<Job>,
    cancel: Arc<AtomicBool>,
}

impl Worker {
    /// Starts the worker, which loads models on `device`; `cache_dir` replaces the model's default edit
    /// cache directory.
    pub fn spawn(cache_dir: Option<PathBuf>, device: Device, events: UnboundedSender<WorkerEvent>) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        std::thread::Builder::new()
            .name("lafn-worker".into())
            .spawn(move || {
                run(queue, events, flag, State { loaded: None, dense: None, cached: None, cache_dir, device })
            })
            .expect("the worker thread starts");
        Self { jobs, cancel }
    }

    pub fn submit(&self, job: Job) {
        // A send only fails when the worker is gone, which a Failed event already reported.
        let _ = self.jobs.send(job);
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel();
    }
}

struct State {
    loaded: Option<LoadedModel>,
    /// Dense f32 weights for locating and editing, loaded on first need.
    dense: Option<Model>,
    cached: Option<CachedEdits>,
    cache_dir: Option<PathBuf>,
    device: Device,
}

fn run(queue: Receiver<Job>, events: UnboundedSender<WorkerEvent>, cancel: Arc<AtomicBool>, mut state: State) {
    for job in queue {
        // A cancel pressed for an earlier job must not stop this one.
        cancel.store(false, Ordering::Relaxed);
        let label = job.label();
        log::info!("job: {label}");
        let _ = events.send(WorkerEvent::Started(label.clone()));
        let send = |event| {
            let _ = events.send(event);
        };
        if let Err(e) = state.run(job, &cancel, &send) {
            log::error!("{label} failed: {e:#}");
            send(WorkerEvent::Failed(format!("{label} failed: {e:#}")));
        }
        send(WorkerEvent::Finished);
    }
}

impl State {
    fn run(&mut self, job: Job, cancel: &AtomicBool, send: &dyn Fn(WorkerEvent)) -> Result<()> {
        match job {
            Job::Load { spec } => self.load(spec, send)?,
            Job::Paraphrase { group_id, lang_index, descriptor, settings } => {
                let loaded = self.loaded()?;
                let mut group = EditGroup { name: "paraphrases".into(), descriptors: vec![descriptor] };
                fill_paraphrases(&mut group, &settings, Some((&loaded.model, &loaded.tokenizer)))?;
                // Asked for, they become the user's: shown, editable and trained on. The written ones
                // come back trimmed and without blanks, as the list was before generated ones were kept apart.
                let filled = group.descriptors.remove(0);
                let written = filled.written_paraphrases().map(String::from);
                let paraphrases = written.chain(filled.generated_paraphrases.iter().cloned()).collect();
                send(WorkerEvent::Paraphrased { group_id, lang_index, paraphrases });
            }
            Job::Locate { group_id, group, settings } => {
                self.ensure_dense(send)?;
                let loaded = self.loaded.as_ref().expect("ensure_dense checked the model");
                let dense = self.dense.as_ref().expect("ensure_dense loaded it");
                let models = EditModels { dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
                let Location { group, measurements, located, .. } =
                    locate_group(models, group, &settings, &mut |event| {
                        if let EditEvent::Paraphrased(_) = event {
                            send(WorkerEvent::Stage("measuring activations".into()));
                        }
                    })?;
                send(WorkerEvent::Located { group_id, group, located, measurements: Arc::new(measurements) });
            }
            Job::Edit { group_id, group, settings, replaces } => {
                self.edit(group_id, group, &settings, replaces, cancel, send)?
            }
            Job::Chat { turn, query, answers, max_tokens, raw, frame } => {
                let options = AnswerOptions { stop_at_line_end: !raw, frame, ..AnswerOptions::chat(max_tokens) };
                self.chat(turn, &query, answers, &options, cancel, send)?
            }
            Job::Teach { query, hits, asks } => {
                let cached = self.cached.as_mut().ok_or_else(|| eyre!("no edit cache is open"))?;
                let told = if asks { "asks" } else { "does not ask" };
                let mut taught = Vec::new();
                for hit in &hits {
                    let kept = cached.teach(hit, &query, asks)?;
                    taught.push(format!("taught: \"{kept}\" {told} the fact of {}", hit.entry_id));
                }
                send(WorkerEvent::Taught(taught));
            }
            Job::TopTokens { layer, neurons } => {
                let tokens = top_tokens(self.loaded()?, layer, &neurons)?;
                send(WorkerEvent::TopTokens { layer, tokens });
            }
            Job::CheckCacheEntries { links } => {
                // No cache open (no model yet): the links stay as saved until a model's cache is.
                let cached = self.cached.as_ref().ok_or_else(|| eyre!("no edit cache is open"))?;
                let verdicts = links
                    .into_iter()
                    .map(|link| {
                        let verdict = check_cache_entry(cached.cache(), &link.entry_id, &link.group);
                        (link, verdict.map(Box::new).map_err(|e| format!("{e:#}")))
                    })
                    .collect();
                send(WorkerEvent::CacheEntriesChecked(verdicts));
            }
        }
        Ok(())
    }

    /// The whole edit of a group, then (unless cancelled) its entry in the cache, which replaces the
    /// group's earlier one: removed only after the new one is stored, so a failed edit loses nothing,
    /// and only when no saved session may need it.
    fn edit(
        &mut self,
        group_id: u64,
        group: EditGroup,
        settings: &MethodSettings,
        replaces: Option<Replaces>,
        cancel: &AtomicBool,
        send: &dyn Fn(WorkerEvent),
    ) -> Result<()> {
        let cached = self.cached.as_ref().ok_or_else(|| eyre!("no edit cache is open"))?;
        cached.cache().check_writable()?;
        self.ensure_dense(send)?;
        let loaded = self.loaded.as_ref().expect("ensure_dense checked the model");
        let dense = self.dense.as_ref().expect("ensure_dense loaded it");
        let models = EditModels { dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
        send(WorkerEvent::Stage("paraphrasing and locating".into()));
        let run = run_edit(models, group, settings, cancel, &mut |event| match event {
            EditEvent::Paraphrased(_) => {}
            EditEvent::Located(located) => send(WorkerEvent::Stage(format!(
                "optimizing {} neurons in layers {:?}",
                located.neuron_count(),
                located.selected.keys().collect::<Vec<_>>()
            ))),
            EditEvent::Step(step) => send(WorkerEvent::Step { group_id, step: step.clone() }),
        })?;
        let cached = self.cached.as_mut().ok_or_else(|| eyre!("no edit cache is open"))?;
        let cache_entry = if run.outcome.stop == StopReason::Cancelled {
            None
        } else {
            Some(run.store(cached, &loaded.model, &loaded.tokenizer, settings)?)
        };
        // The group's earlier entry, when the new one is another and the earlier is still stored.
        let earlier = match (&cache_entry, replaces) {
            (Some(new), Some(replaces))
                if *new != replaces.entry && cached.cache().list().iter().any(|row| row.id == replaces.entry) =>
            {
                Some((new.clone(), replaces))
            }
            _ => None,
        };
        let replaced = match earlier {
            Some((new, Replaces { entry: old, sessions_dir, session })) => {
                // What the user taught the gate about the group's questions goes on to its new edit.
                if let Err(e) = cached.inherit_taught(&old, &new) {
                    log::warn!("what was taught about {old}'s questions stays with it: {e:#}");
                }
                if entry_needed_by_saved_sessions(&sessions_dir, &session, &old) {
                    None
                } else {
                    match cached.remove(&old) {
                        Ok(()) => Some(old),
                        Err(e) => {
                            log::warn!("the group's earlier cache entry {old} stays: {e:#}");
                            None
                        }
                    }
                }
            }
            None => None,
        };
        let shared_subject_notes = match &cache_entry {
            Some(id) => cached.shared_subject_notes(&loaded.model, &loaded.tokenizer, id),
            None => Vec::new(),
        };
        send(WorkerEvent::Edited(Box::new(EditResult {
            group_id,
            group: run.group,
            located: run.located,
            history: run.outcome.history,
            stop: run.outcome.stop,
            cache_entry,
            replaced,
            shared_subject_notes,
            cache_rows: cached.cache().list().to_vec(),
            seconds: run.locate_seconds + run.optimize_seconds,
        })));
        Ok(())
    }

    /// Fetches (if needed) and loads a model, then opens its edit cache. The current model stays until
    /// the new one and its cache are ready: a load that fails leaves it loaded, as the UI still shows it.
    fn load(&mut self, spec: String, send: &dyn Fn(WorkerEvent)) -> Result<()> {
        send(WorkerEvent::Stage(format!("resolving {spec}")));
        let files = fetch::resolve(&spec, &mut |event| send(WorkerEvent::Fetch(event)))?;
        send(WorkerEvent::Stage(format!("loading {}", files.weights.display())));
        let loaded = LoadedModel::load(&files, WeightMode::Quantized, &self.device)
            .wrap_err_with(|| format!("cannot load model `{spec}`"))?;
        if let Some(warning) = loaded.tokenizer.chat_template_warning() {
            log::warn!("{warning}");
        }
        let fingerprint = loaded.info.fingerprint.clone();
        let dir = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir(&fingerprint)?,
        };
        let cache = EditCache::open(&dir, &fingerprint)?;
        for warning in cache.warnings() {
            log::warn!("edit cache: {warning}");
        }
        let cache_rows = cache.list().to_vec();
        let settings = MethodSettings::default();
        let cached = CachedEdits::new(cache, &loaded.model, &loaded.tokenizer, settings.retrieval, settings.scope)?;
        let info = Box::new(loaded.info.clone());
        self.loaded = Some(loaded);
        self.dense = None;
        self.cached = Some(cached);
        send(WorkerEvent::ModelLoaded { spec, info, cache_dir: dir, cache_rows });
        Ok(())
    }

    /// Answers a query once per mode (with the cache or without), streaming the text.
    fn chat(
        &mut self,
        turn: usize,
        query: &str,
        answers: ChatAnswers,
        options: &AnswerOptions,
        cancel: &AtomicBool,
        send: &dyn Fn(WorkerEvent),
    ) -> Result<()> {
        let loaded = self.loaded.as_ref().ok_or_else(|| eyre!("no model is loaded"))?;
        for &with_cache in answers.with_cache() {
            let cached = if with_cache { self.cached.as_mut() } else { None };
            let reply = answer(&loaded.model, &loaded.tokenizer, cached, query, options, &mut |piece| {
                send(WorkerEvent::ChatText { turn, with_cache, text: piece.to_string() });
                !cancel.load(Ordering::Relaxed)
            })?;
            for (id, reason) in &reply.retrieved.damaged {
                log::warn!("skipped damaged cache entry `{id}`: {reason}");
            }
            let Retrieved { hits, out_of_scope, read_as, .. } = reply.retrieved;
            send(WorkerEvent::ChatDone { turn, with_cache, fired: hits, out_of_scope, read_as });
        }
        Ok(())
    }

    fn loaded(&self) -> Result<&LoadedModel> {
        self.loaded.as_ref().ok_or_else(|| eyre!("no model is loaded: load one in the Model pane"))
    }

    fn ensure_dense(&mut self, send: &dyn Fn(WorkerEvent)) -> Result<()> {
        let loaded = self.loaded()?;
        if self.dense.is_none() {
            send(WorkerEvent::Stage("loading dense weights for editing".into()));
            self.dense = Some(loaded.editing_weights()?);
        }
        Ok(())
    }
}

/// The tokens each neuron's value vector promotes most when read through the unembedding.
fn top_tokens(loaded: &LoadedModel, layer: usize, neurons: &[u32]) -> Result<Vec<(u32, Vec<String>)>> {
    if neurons.is_empty() {
        return Ok(Vec::new());
    }
    let index = Tensor::new(neurons, loaded.model.device())?;
    let values = loaded.model.value_vectors(layer)?.index_select(&index, 0)?;
    let logits = loaded.model.logits(&values)?.to_vec2::<f32>()?;
    Ok(neurons
        .iter()
        .zip(logits)
        .map(|(&neuron, row)| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            if order.len() > TOP_TOKENS {
                order.select_nth_unstable_by(TOP_TOKENS, |&a, &b| row[b].total_cmp(&row[a]));
                order.truncate(TOP_TOKENS);
            }
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            (neuron, order.into_iter().map(|id| loaded.tokenizer.piece(id as u32)).collect())
        })
        .collect())
}
