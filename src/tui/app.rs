//! The application state and its input handling: no I/O. [`App::handle`] takes a key, mouse, resize or
//! worker event and returns the [`Command`]s the terminal loop must carry out (jobs for the worker,
//! session files), so every interaction is testable without a terminal or a model.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::panes;
use super::text::TextField;
use super::worker::{EditResult, Job, WorkerEvent};
use crate::fetch::{self, FetchEvent};
use crate::method::apply::describe_hit;
use crate::method::cache::IndexRow;
use crate::method::prompts::ParaphraseSource;
use crate::method::{select, EditDescriptor, EditGroup, LayerChoice, Measurements, MethodSettings, StopReason};
use crate::runtime::ModelInfo;
use crate::session::{ChatTurn, GroupStatus, Session, SessionGroup, SessionSummary};

/// Most tokens a chat answer may have.
pub const CHAT_MAX_TOKENS: usize = 48;

/// Beta moves by this much per key press in the Neurons pane.
const BETA_STEP: f32 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Model,
    Edits,
    Neurons,
    Optimize,
    Chat,
    Sessions,
}

impl Pane {
    pub const ALL: [Pane; 6] = [Pane::Model, Pane::Edits, Pane::Neurons, Pane::Optimize, Pane::Chat, Pane::Sessions];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Model => "Model",
            Pane::Edits => "Edits",
            Pane::Neurons => "Neurons",
            Pane::Optimize => "Optimize",
            Pane::Chat => "Chat",
            Pane::Sessions => "Sessions",
        }
    }

    fn index(self) -> usize {
        Pane::ALL.iter().position(|&p| p == self).expect("every pane is in ALL")
    }
}

/// Everything that can happen to the app.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    Worker(WorkerEvent),
    /// Results of the file commands the terminal loop ran.
    SessionsListed(Vec<SessionSummary>),
    SessionLoaded(Box<Session>),
    SessionSaved {
        name: String,
        path: PathBuf,
    },
    Imported(Vec<EditGroup>),
    IoFailed(String),
    /// A session could not be loaded (see [`LoadFailure`]).
    SessionLoadFailed {
        name: String,
        reason: String,
        has_backup: bool,
    },
    /// The process was asked to end (SIGTERM, SIGHUP, SIGINT, or the terminal went away): like a quit.
    Terminate,
}

/// What the terminal loop must do for the app.
#[derive(Debug, Clone)]
pub enum Command {
    Job(Job),
    CancelJob,
    SaveSession(Box<Session>),
    LoadSession(String),
    /// Make the previous save of a session current again and load it.
    RestoreBackup(String),
    RenameSession {
        from: String,
        to: String,
    },
    DeleteSession(String),
    ListSessions,
    Import(PathBuf),
    Quit,
}

/// Which text an open input line edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputTarget {
    Field(FieldRef),
    Setting(Setting),
    ModelSpec,
    ImportPath,
    RenameSession,
    SaveSessionAs,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub target: InputTarget,
    pub field: TextField,
}

/// One line of the edit-group form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRef {
    Name,
    Lang(usize),
    Subject(usize),
    Prompt(usize),
    Target(usize),
    Paraphrase(usize, usize),
}

impl FieldRef {
    pub fn descriptor(self) -> Option<usize> {
        match self {
            FieldRef::Name => None,
            FieldRef::Lang(d) | FieldRef::Subject(d) | FieldRef::Prompt(d) | FieldRef::Target(d) => Some(d),
            FieldRef::Paraphrase(d, _) => Some(d),
        }
    }
}

/// The editable settings of the Optimize pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    LearningRate,
    Steps,
    KlWeight,
    StopMargin,
    Layers,
    Beta,
    ParaphraseSource,
    ParaphraseCount,
}

impl Setting {
    pub const ALL: [Setting; 8] = [
        Setting::LearningRate,
        Setting::Steps,
        Setting::KlWeight,
        Setting::StopMargin,
        Setting::Layers,
        Setting::Beta,
        Setting::ParaphraseSource,
        Setting::ParaphraseCount,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Setting::LearningRate => "learning rate",
            Setting::Steps => "steps",
            Setting::KlWeight => "lambda (KL)",
            Setting::StopMargin => "stop margin",
            Setting::Layers => "layers",
            Setting::Beta => "beta",
            Setting::ParaphraseSource => "paraphrases",
            Setting::ParaphraseCount => "paraphrase count",
        }
    }

    pub fn value(self, s: &MethodSettings) -> String {
        match self {
            Setting::LearningRate => s.edit.learning_rate.to_string(),
            Setting::Steps => s.edit.steps.to_string(),
            Setting::KlWeight => s.edit.kl_weight.to_string(),
            Setting::StopMargin => s.edit.stop_margin.to_string(),
            Setting::Layers => match &s.locate.layers {
                LayerChoice::Auto { count } => format!("auto {count}"),
                LayerChoice::Fixed(list) => list.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(","),
            },
            Setting::Beta => format!("{:.2}", s.locate.beta),
            Setting::ParaphraseSource => match s.paraphrases.source {
                ParaphraseSource::Templates => "templates",
                ParaphraseSource::Model => "model",
                ParaphraseSource::Both => "both",
            }
            .to_string(),
            Setting::ParaphraseCount => s.paraphrases.count.to_string(),
        }
    }

    /// Parses a typed value into the settings, which must stay valid; an error leaves them unchanged.
    fn apply(self, settings: &mut MethodSettings, text: &str) -> Result<(), String> {
        let text = text.trim();
        let bad = |what: &str| format!("{}: {what} (got `{text}`)", self.label());
        let mut s = settings.clone();
        match self {
            Setting::LearningRate => s.edit.learning_rate = text.parse().map_err(|_| bad("a number"))?,
            Setting::Steps => s.edit.steps = text.parse().map_err(|_| bad("a whole number"))?,
            Setting::KlWeight => s.edit.kl_weight = text.parse().map_err(|_| bad("a number"))?,
            Setting::StopMargin => s.edit.stop_margin = text.parse().map_err(|_| bad("a number"))?,
            Setting::Layers => {
                s.locate.layers = if let Some(count) = text.strip_prefix("auto") {
                    let count = count.trim();
                    LayerChoice::Auto {
                        count: if count.is_empty() { 2 } else { count.parse().map_err(|_| bad("`auto N` or 3,7"))? },
                    }
                } else {
                    LayerChoice::Fixed(
                        text.split(',')
                            .map(|l| l.trim().parse::<usize>())
                            .collect::<Result<_, _>>()
                            .map_err(|_| bad("`auto N` or a list like 3,7"))?,
                    )
                }
            }
            Setting::Beta => s.locate.beta = text.parse().map_err(|_| bad("a number"))?,
            Setting::ParaphraseSource => {
                s.paraphrases.source = match text {
                    "templates" => ParaphraseSource::Templates,
                    "model" => ParaphraseSource::Model,
                    "both" => ParaphraseSource::Both,
                    _ => return Err(bad("templates, model or both")),
                }
            }
            Setting::ParaphraseCount => s.paraphrases.count = text.parse().map_err(|_| bad("a whole number"))?,
        }
        s.validate().map_err(|e| format!("{}: {e}", self.label()))?;
        *settings = s;
        Ok(())
    }
}

/// A session that could not be loaded. Its files may hold the only copy of the work, so nothing is saved
/// under its name; the user restores its previous save or saves the current work under another name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub name: String,
    pub reason: String,
    pub has_backup: bool,
    /// Whether the notice is on screen: until Esc closes it, and again when a save is refused.
    pub shown: bool,
}

/// An edit group with what the UI knows about it beyond the session.
#[derive(Debug, Clone)]
pub struct GroupState {
    /// Stable id for worker results (indices shift when groups are removed).
    pub id: u64,
    pub saved: SessionGroup,
    /// Activation statistics from the last locate, for live beta changes (not saved).
    pub measurements: Option<Arc<Measurements>>,
}

#[derive(Debug, Clone, Default)]
pub struct Busy {
    pub label: String,
    pub stage: String,
    /// Bytes done and total of a fetch.
    pub bytes: Option<(u64, u64)>,
    /// Edit step and step count.
    pub steps: Option<(usize, usize)>,
}

/// One chat exchange; with side by side on, both answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatEntry {
    pub user: String,
    pub with_cache: Option<String>,
    pub without_cache: Option<String>,
    /// The entries that fired and why (subject match, scope score), then those whose subject the
    /// question names but whose fact it does not ask.
    pub fired: Vec<String>,
    /// Whether the answer with the cache is complete (what fired is known only then).
    pub done: bool,
}

pub struct App {
    pub pane: Pane,
    pub size: (u16, u16),
    pub help: bool,
    pub quit: bool,
    pub message: String,
    pub error: Option<String>,
    pub busy: Option<Busy>,
    /// Jobs submitted and not yet finished.
    pub pending_jobs: usize,
    pub input: Option<Input>,
    pub confirm_delete: Option<String>,
    pub load_failure: Option<LoadFailure>,

    // Model
    pub builtins: Vec<&'static str>,
    pub builtin_selected: usize,
    pub model_spec: String,
    pub model_info: Option<ModelInfo>,
    pub cache_dir: Option<PathBuf>,
    pub cache_rows: Vec<IndexRow>,

    // Edits
    pub groups: Vec<GroupState>,
    pub group_selected: usize,
    pub field_selected: usize,
    next_group_id: u64,

    // Neurons
    pub layer_selected: usize,
    pub lafn_scroll: usize,
    pub top_tokens: HashMap<(usize, u32), Vec<String>>,
    requested_tokens: HashSet<usize>,

    // Optimize
    pub settings: MethodSettings,
    pub setting_selected: usize,
    /// The group being edited by the worker.
    pub editing_group: Option<u64>,
    pub last_stop: Option<(StopReason, f64)>,

    // Chat
    pub chat: Vec<ChatEntry>,
    pub chat_input: TextField,
    pub chat_focused: bool,
    pub chat_with_cache: bool,
    pub side_by_side: bool,
    /// Keep generating after the answer's first line (off: the answer ends at its line end).
    pub chat_raw: bool,
    /// Lines scrolled up from the bottom of the transcript.
    pub chat_scroll: usize,

    // Sessions
    pub session_name: String,
    pub sessions_dir: PathBuf,
    pub sessions: Vec<SessionSummary>,
    pub session_selected: usize,
}

impl App {
    /// A fresh app for `session_name`, about to load `model_spec`. Returns the commands to start with.
    pub fn new(model_spec: &str, session_name: &str, sessions_dir: PathBuf) -> (Self, Vec<Command>) {
        let builtins = fetch::builtin_names();
        let builtin_selected = builtins.iter().position(|b| *b == model_spec).unwrap_or(0);
        let app = Self {
            pane: Pane::Model,
            size: (80, 24),
            help: false,
            quit: false,
            message: "press ? for keys".into(),
            error: None,
            busy: None,
            pending_jobs: 0,
            input: None,
            confirm_delete: None,
            load_failure: None,
            builtins,
            builtin_selected,
            model_spec: model_spec.to_string(),
            model_info: None,
            cache_dir: None,
            cache_rows: Vec::new(),
            groups: Vec::new(),
            group_selected: 0,
            field_selected: 0,
            next_group_id: 1,
            layer_selected: 0,
            lafn_scroll: 0,
            top_tokens: HashMap::new(),
            requested_tokens: HashSet::new(),
            settings: MethodSettings::default(),
            setting_selected: 0,
            editing_group: None,
            last_stop: None,
            chat: Vec::new(),
            chat_input: TextField::default(),
            chat_focused: true,
            chat_with_cache: true,
            side_by_side: false,
            chat_raw: false,
            chat_scroll: 0,
            session_name: session_name.to_string(),
            sessions_dir,
            sessions: Vec::new(),
            session_selected: 0,
        };
        let commands = vec![Command::ListSessions, app.job(Job::Load { spec: model_spec.to_string() })];
        (app, commands)
    }

    fn job(&self, job: Job) -> Command {
        Command::Job(job)
    }

    /// Whether keys go to a text field (so digits and letters type instead of acting).
    pub fn typing(&self) -> bool {
        self.input.is_some() || (self.pane == Pane::Chat && self.chat_focused)
    }

    pub fn selected_group(&self) -> Option<&GroupState> {
        self.groups.get(self.group_selected)
    }

    /// The fields of the selected group's form, in display order.
    pub fn form_fields(&self) -> Vec<FieldRef> {
        let Some(g) = self.selected_group() else { return Vec::new() };
        let mut fields = vec![FieldRef::Name];
        for (d, descriptor) in g.saved.group.descriptors.iter().enumerate() {
            fields.extend([FieldRef::Lang(d), FieldRef::Subject(d), FieldRef::Prompt(d), FieldRef::Target(d)]);
            fields.extend((0..descriptor.paraphrases.len()).map(|k| FieldRef::Paraphrase(d, k)));
        }
        fields
    }

    pub fn field_text(&self, field: FieldRef) -> String {
        let Some(g) = self.selected_group() else { return String::new() };
        let group = &g.saved.group;
        let d = |i: usize| &group.descriptors[i];
        match field {
            FieldRef::Name => group.name.clone(),
            FieldRef::Lang(i) => d(i).lang.clone(),
            FieldRef::Subject(i) => d(i).subject.clone(),
            FieldRef::Prompt(i) => d(i).prompt.clone(),
            FieldRef::Target(i) => d(i).target.clone(),
            FieldRef::Paraphrase(i, k) => d(i).paraphrases[k].clone(),
        }
    }

    /// The group whose losses the Optimize pane shows: the one being edited, else the selected one.
    pub fn optimize_group(&self) -> Option<&GroupState> {
        self.editing_group.and_then(|id| self.groups.iter().find(|g| g.id == id)).or(self.selected_group())
    }

    /// The session as it would be saved now.
    pub fn session(&self) -> Session {
        let mut session = Session::new(&self.session_name).unwrap_or_else(|_| Session::new("session").expect("valid"));
        session.name = self.session_name.clone();
        session.model = Some(self.model_spec.clone());
        session.model_fingerprint = self.model_info.as_ref().map(|i| i.fingerprint.clone());
        session.settings = self.settings.clone();
        session.cache_dir = self.cache_dir.clone();
        session.groups = self.groups.iter().map(|g| g.saved.clone()).collect();
        session.chat = self
            .chat
            .iter()
            .map(|c| ChatTurn {
                user: c.user.clone(),
                answer: c.with_cache.clone().or(c.without_cache.clone()).unwrap_or_default(),
                fired: c.fired.clone(),
                with_cache: c.with_cache.is_some(),
                unedited_answer: c.with_cache.as_ref().and(c.without_cache.clone()),
            })
            .collect();
        session
    }

    pub fn handle(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.key(key),
            Event::Key(_) => Vec::new(),
            Event::Mouse(mouse) => self.mouse(mouse),
            Event::Paste(text) => {
                if let Some(input) = &mut self.input {
                    input.field.paste(&text);
                } else if self.pane == Pane::Chat {
                    self.chat_focused = true;
                    self.chat_input.paste(&text);
                }
                Vec::new()
            }
            Event::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Event::Worker(event) => self.worker_event(event),
            Event::SessionsListed(list) => {
                self.sessions = list;
                self.session_selected = self.session_selected.min(self.sessions.len().saturating_sub(1));
                Vec::new()
            }
            Event::SessionLoaded(session) => self.load_session(*session),
            Event::SessionSaved { name, path } => {
                self.message = format!("saved session `{name}` to {}", path.display());
                vec![Command::ListSessions]
            }
            Event::Imported(groups) => {
                let count = groups.len();
                for group in groups {
                    self.add_group(group);
                }
                self.group_selected = self.groups.len().saturating_sub(count);
                self.field_selected = 0;
                self.message = format!("imported {count} edit group(s)");
                Vec::new()
            }
            Event::IoFailed(error) => {
                self.error = Some(error);
                Vec::new()
            }
            Event::SessionLoadFailed { name, reason, has_backup } => {
                self.message = format!("session `{name}` was not loaded");
                self.load_failure = Some(LoadFailure { name, reason, has_backup, shown: true });
                Vec::new()
            }
            Event::Terminate => self.quit(),
        }
    }

    fn add_group(&mut self, group: EditGroup) {
        let saved = SessionGroup {
            group,
            status: GroupStatus::Draft,
            located: None,
            loss_history: Vec::new(),
            cache_entry: None,
        };
        self.groups.push(GroupState { id: self.next_group_id, saved, measurements: None });
        self.next_group_id += 1;
    }

    fn load_session(&mut self, session: Session) -> Vec<Command> {
        let mut commands = Vec::new();
        self.load_failure = None;
        self.session_name = session.name.clone();
        self.settings = session.settings;
        self.groups.clear();
        for saved in session.groups {
            self.groups.push(GroupState { id: self.next_group_id, saved, measurements: None });
            self.next_group_id += 1;
        }
        self.group_selected = 0;
        self.field_selected = 0;
        self.chat = session
            .chat
            .into_iter()
            .map(|t| {
                let (with_cache, without_cache) = match (t.with_cache, t.unedited_answer) {
                    (true, unedited) => (Some(t.answer), unedited),
                    (false, _) => (None, Some(t.answer)),
                };
                ChatEntry { user: t.user, with_cache, without_cache, fired: t.fired, done: true }
            })
            .collect();
        self.chat_scroll = 0;
        if let Some(spec) = session.model.filter(|m| *m != self.model_spec) {
            self.model_spec = spec.clone();
            commands.push(self.job(Job::Load { spec }));
        }
        self.message = format!("loaded session `{}`", self.session_name);
        commands
    }

    fn worker_event(&mut self, event: WorkerEvent) -> Vec<Command> {
        match event {
            WorkerEvent::Started(label) => {
                self.busy = Some(Busy { label, ..Busy::default() });
            }
            WorkerEvent::Stage(stage) => {
                if let Some(busy) = &mut self.busy {
                    busy.stage = stage;
                    busy.bytes = None;
                }
            }
            WorkerEvent::Fetch(FetchEvent::Stage(stage)) => {
                if let Some(busy) = &mut self.busy {
                    busy.stage = stage;
                }
            }
            WorkerEvent::Fetch(FetchEvent::Bytes { done, total }) => {
                if let Some(busy) = &mut self.busy {
                    busy.bytes = Some((done, total));
                }
            }
            WorkerEvent::ModelLoaded { spec, info, cache_dir, cache_rows } => {
                self.message = format!("loaded {spec}: {} cached edits in {}", cache_rows.len(), cache_dir.display());
                self.model_spec = spec;
                self.model_info = Some(*info);
                self.cache_dir = Some(cache_dir);
                self.cache_rows = cache_rows;
                self.top_tokens.clear();
                self.requested_tokens.clear();
            }
            WorkerEvent::Paraphrased { group_id, lang_index, paraphrases } => {
                if let Some(d) = self.group_by_id(group_id).and_then(|g| g.saved.group.descriptors.get_mut(lang_index))
                {
                    let message = format!("{} paraphrases for {}", paraphrases.len(), d.lang);
                    d.paraphrases = paraphrases;
                    self.message = message;
                }
            }
            WorkerEvent::Located { group_id, group, located, measurements } => {
                let layers: Vec<usize> = located.selected.keys().copied().collect();
                let message = format!("located {} LAFNs in layers {layers:?}", located.neuron_count());
                if let Some(g) = self.group_by_id(group_id) {
                    g.saved.group = group;
                    g.saved.located = Some(located);
                    g.saved.status = GroupStatus::Located;
                    g.measurements = Some(measurements);
                    self.message = message;
                }
                self.requested_tokens.clear();
                return self.request_top_tokens();
            }
            WorkerEvent::Step { group_id, step } => {
                if let Some(busy) = &mut self.busy {
                    busy.steps = Some((step.step, self.settings.edit.steps));
                }
                if let Some(g) = self.group_by_id(group_id) {
                    if step.step == 0 {
                        g.saved.loss_history.clear();
                    }
                    g.saved.loss_history.push(step);
                }
            }
            WorkerEvent::Edited(result) => self.edited(*result),
            WorkerEvent::ChatText { turn, with_cache, text } => {
                if let Some(entry) = self.chat.get_mut(turn) {
                    let answer = if with_cache { &mut entry.with_cache } else { &mut entry.without_cache };
                    answer.get_or_insert_with(String::new).push_str(&text);
                }
            }
            WorkerEvent::ChatDone { turn, with_cache, fired, out_of_scope } => {
                if let Some(entry) = self.chat.get_mut(turn) {
                    let answer = if with_cache { &mut entry.with_cache } else { &mut entry.without_cache };
                    answer.get_or_insert_with(String::new);
                    if with_cache {
                        entry.done = true;
                        entry.fired = fired
                            .iter()
                            .map(|h| format!("fired {}", describe_hit(h)))
                            .chain(out_of_scope.iter().map(|h| format!("named but not asked {}", describe_hit(h))))
                            .collect();
                    }
                }
            }
            WorkerEvent::TopTokens { layer, tokens } => {
                for (neuron, words) in tokens {
                    self.top_tokens.insert((layer, neuron), words);
                }
            }
            WorkerEvent::Failed(error) => self.error = Some(error),
            WorkerEvent::Finished => {
                self.pending_jobs = self.pending_jobs.saturating_sub(1);
                self.busy = None;
                if self.pending_jobs == 0 {
                    self.editing_group = None;
                }
            }
        }
        Vec::new()
    }

    fn edited(&mut self, result: EditResult) {
        self.cache_rows = result.cache_rows;
        self.last_stop = Some((result.stop, result.seconds));
        if let Some(g) = self.group_by_id(result.group_id) {
            g.saved.group = result.group;
            g.saved.located = Some(result.located);
            g.saved.loss_history = result.history;
            g.saved.status = if result.cache_entry.is_some() { GroupStatus::Cached } else { GroupStatus::Located };
            if result.cache_entry.is_some() {
                g.saved.cache_entry = result.cache_entry.clone();
            }
        }
        self.message = match result.cache_entry {
            Some(id) => format!("edit {:?} in {:.0} s, cached as {id}", result.stop, result.seconds),
            None => "edit cancelled: nothing cached".to_string(),
        };
    }

    fn group_by_id(&mut self, id: u64) -> Option<&mut GroupState> {
        self.groups.iter_mut().find(|g| g.id == id)
    }

    fn submit(&mut self, job: Job) -> Vec<Command> {
        self.pending_jobs += 1;
        vec![Command::Job(job)]
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        // Keys that work everywhere, also while typing.
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('q') if ctrl => return self.quit(),
            KeyCode::Char('s') if ctrl => return self.save(),
            KeyCode::Char('x') if ctrl => return self.cancel(),
            KeyCode::F(n @ 1..=6) => return self.switch(Pane::ALL[n as usize - 1]),
            KeyCode::Char(c @ '1'..='6') if alt => return self.switch(Pane::ALL[c as usize - '1' as usize]),
            _ => {}
        }
        if self.load_failure.as_ref().is_some_and(|f| f.shown) {
            return self.load_failure_key(key);
        }
        if self.help {
            self.help = false;
            return Vec::new();
        }
        if self.input.is_some() {
            return self.input_key(key);
        }
        if let Some(name) = self.confirm_delete.take() {
            if key.code == KeyCode::Char('y') {
                return self.delete_confirmed(name);
            }
            self.message = "nothing deleted".into();
            return Vec::new();
        }
        match key.code {
            KeyCode::Tab => return self.switch(Pane::ALL[(self.pane.index() + 1) % Pane::ALL.len()]),
            KeyCode::BackTab => {
                return self.switch(Pane::ALL[(self.pane.index() + Pane::ALL.len() - 1) % Pane::ALL.len()])
            }
            _ => {}
        }
        if self.pane == Pane::Chat && self.chat_focused {
            return self.chat_key(key);
        }
        match key.code {
            KeyCode::Char('?') => {
                self.help = true;
                return Vec::new();
            }
            KeyCode::Char('q') => return self.quit(),
            KeyCode::Char(c @ '1'..='6') => return self.switch(Pane::ALL[c as usize - '1' as usize]),
            KeyCode::Esc => {
                self.error = None;
                return Vec::new();
            }
            _ => {}
        }
        match self.pane {
            Pane::Model => self.model_key(key),
            Pane::Edits => self.edits_key(key),
            Pane::Neurons => self.neurons_key(key),
            Pane::Optimize => self.optimize_key(key),
            Pane::Chat => self.chat_key(key),
            Pane::Sessions => self.sessions_key(key),
        }
    }

    fn switch(&mut self, pane: Pane) -> Vec<Command> {
        self.input = None;
        self.help = false;
        self.pane = pane;
        match pane {
            Pane::Sessions => vec![Command::ListSessions],
            Pane::Chat => {
                self.chat_focused = true;
                Vec::new()
            }
            Pane::Neurons => self.request_top_tokens(),
            _ => Vec::new(),
        }
    }

    /// The notice of a session that failed to load: restore its backup, save as, or close.
    fn load_failure_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Some(failure) = &mut self.load_failure else { return Vec::new() };
        match key.code {
            KeyCode::Char('b') if failure.has_backup => {
                return vec![Command::RestoreBackup(failure.name.clone()), Command::ListSessions]
            }
            KeyCode::Char('a') => {
                failure.shown = false;
                let commands = self.switch(Pane::Sessions);
                self.open_input(InputTarget::SaveSessionAs, "");
                return commands;
            }
            KeyCode::Esc => failure.shown = false,
            _ => {}
        }
        Vec::new()
    }

    /// Whether saving is refused because the current session's files could not be loaded.
    pub fn save_refused(&self) -> bool {
        self.load_failure.as_ref().is_some_and(|f| f.name == self.session_name)
    }

    fn quit(&mut self) -> Vec<Command> {
        self.quit = true;
        let mut commands = Vec::new();
        if (!self.groups.is_empty() || !self.chat.is_empty()) && !self.save_refused() {
            commands.push(Command::SaveSession(Box::new(self.session())));
        }
        commands.push(Command::CancelJob);
        commands.push(Command::Quit);
        commands
    }

    fn save(&mut self) -> Vec<Command> {
        if self.save_refused() {
            if let Some(failure) = &mut self.load_failure {
                failure.shown = true;
            }
            return Vec::new();
        }
        vec![Command::SaveSession(Box::new(self.session()))]
    }

    fn cancel(&mut self) -> Vec<Command> {
        if self.busy.is_some() {
            self.message = "cancelling…".into();
            vec![Command::CancelJob]
        } else {
            Vec::new()
        }
    }

    fn open_input(&mut self, target: InputTarget, text: &str) {
        self.input = Some(Input { target, field: TextField::new(text) });
    }

    fn input_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let Some(input) = &mut self.input else { return Vec::new() };
        let field = &mut input.field;
        match key.code {
            KeyCode::Esc => self.input = None,
            KeyCode::Enter => {
                let input = self.input.take().expect("checked above");
                return self.commit(input.target, input.field.text().to_string());
            }
            KeyCode::Char('e') if ctrl => field.end(),
            _ => {
                field.edit_key(key);
            }
        }
        Vec::new()
    }

    fn commit(&mut self, target: InputTarget, text: String) -> Vec<Command> {
        match target {
            InputTarget::Field(field) => self.set_field(field, text),
            InputTarget::Setting(setting) => {
                match setting.apply(&mut self.settings, &text) {
                    Ok(()) => {
                        self.error = None;
                        if setting == Setting::Beta {
                            self.reselect();
                        }
                    }
                    Err(e) => self.error = Some(e),
                }
                Vec::new()
            }
            InputTarget::ModelSpec => {
                let spec = text.trim().to_string();
                if spec.is_empty() {
                    return Vec::new();
                }
                self.model_spec = spec.clone();
                self.submit(Job::Load { spec })
            }
            InputTarget::ImportPath => {
                let path = text.trim();
                if path.is_empty() {
                    return Vec::new();
                }
                vec![Command::Import(PathBuf::from(path))]
            }
            InputTarget::RenameSession => match self.sessions.get(self.session_selected) {
                Some(s) if !text.trim().is_empty() => {
                    let from = s.name.clone();
                    if from == self.session_name {
                        self.session_name = text.clone();
                    }
                    vec![Command::RenameSession { from, to: text }, Command::ListSessions]
                }
                _ => Vec::new(),
            },
            InputTarget::SaveSessionAs => {
                if let Err(e) = crate::session::validate_name(&text) {
                    self.error = Some(format!("{e:#}"));
                    return Vec::new();
                }
                self.session_name = text;
                self.save()
            }
        }
    }

    fn set_field(&mut self, field: FieldRef, text: String) -> Vec<Command> {
        let Some(g) = self.groups.get_mut(self.group_selected) else { return Vec::new() };
        let group = &mut g.saved.group;
        let slot = match field {
            FieldRef::Name => &mut group.name,
            FieldRef::Lang(i) => &mut group.descriptors[i].lang,
            FieldRef::Subject(i) => &mut group.descriptors[i].subject,
            FieldRef::Prompt(i) => &mut group.descriptors[i].prompt,
            FieldRef::Target(i) => &mut group.descriptors[i].target,
            FieldRef::Paraphrase(i, k) => &mut group.descriptors[i].paraphrases[k],
        };
        if *slot != text {
            *slot = text;
            // The group changed: what was located or edited for it no longer holds.
            if field != FieldRef::Name {
                g.saved.status = GroupStatus::Draft;
                g.saved.located = None;
                g.measurements = None;
            }
        }
        Vec::new()
    }

    fn model_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.builtin_selected = self.builtin_selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.builtin_selected = (self.builtin_selected + 1).min(self.builtins.len().saturating_sub(1))
            }
            KeyCode::Enter => {
                if let Some(name) = self.builtins.get(self.builtin_selected) {
                    self.model_spec = name.to_string();
                    return self.submit(Job::Load { spec: name.to_string() });
                }
            }
            KeyCode::Char('p') | KeyCode::Char('/') => self.open_input(InputTarget::ModelSpec, ""),
            _ => {}
        }
        Vec::new()
    }

    fn edits_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let fields = self.form_fields();
        let focused = fields.get(self.field_selected).copied();
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.field_selected = self.field_selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.field_selected = (self.field_selected + 1).min(fields.len().saturating_sub(1))
            }
            KeyCode::Char('[') | KeyCode::PageUp => self.select_group(self.group_selected.saturating_sub(1)),
            KeyCode::Char(']') | KeyCode::PageDown => self.select_group(self.group_selected + 1),
            KeyCode::Enter => {
                if let Some(field) = focused {
                    let text = self.field_text(field);
                    self.open_input(InputTarget::Field(field), &text);
                }
            }
            KeyCode::Char('n') => {
                let number = self.groups.len() + 1;
                self.add_group(EditGroup {
                    name: format!("group-{number}"),
                    descriptors: vec![blank_descriptor("en")],
                });
                self.select_group(self.groups.len() - 1);
                self.field_selected = 2;
                self.open_input(InputTarget::Field(FieldRef::Subject(0)), "");
            }
            KeyCode::Char('i') => self.open_input(InputTarget::ImportPath, ""),
            KeyCode::Char('a') => {
                if let Some(g) = self.groups.get_mut(self.group_selected) {
                    let d = g.saved.group.descriptors.len();
                    g.saved.group.descriptors.push(blank_descriptor(""));
                    g.saved.status = GroupStatus::Draft;
                    g.measurements = None;
                    self.field_selected = self.form_fields().iter().position(|f| *f == FieldRef::Lang(d)).unwrap_or(0);
                    self.open_input(InputTarget::Field(FieldRef::Lang(d)), "");
                }
            }
            KeyCode::Char('d') => {
                if let (Some(d), Some(g)) =
                    (focused.and_then(FieldRef::descriptor), self.groups.get_mut(self.group_selected))
                {
                    if g.saved.group.descriptors.len() > 1 {
                        g.saved.group.descriptors.remove(d);
                        g.saved.status = GroupStatus::Draft;
                        g.saved.located = None;
                        g.measurements = None;
                        self.field_selected = self.field_selected.min(self.form_fields().len() - 1);
                    } else {
                        self.error = Some("a group needs at least one language".into());
                    }
                }
            }
            KeyCode::Char('p') => {
                if let (Some(d), Some(g)) =
                    (focused.and_then(FieldRef::descriptor), self.groups.get_mut(self.group_selected))
                {
                    let k = g.saved.group.descriptors[d].paraphrases.len();
                    g.saved.group.descriptors[d].paraphrases.push(String::new());
                    let field = FieldRef::Paraphrase(d, k);
                    self.field_selected = self.form_fields().iter().position(|f| *f == field).unwrap_or(0);
                    self.open_input(InputTarget::Field(field), "");
                }
            }
            KeyCode::Char('x') | KeyCode::Delete => {
                if let (Some(FieldRef::Paraphrase(d, k)), Some(g)) = (focused, self.groups.get_mut(self.group_selected))
                {
                    g.saved.group.descriptors[d].paraphrases.remove(k);
                    self.field_selected = self.field_selected.min(self.form_fields().len() - 1);
                }
            }
            KeyCode::Char('g') => {
                if let (Some(d), Some(g)) = (focused.and_then(FieldRef::descriptor), self.selected_group()) {
                    let descriptor = g.saved.group.descriptors[d].clone();
                    let mut settings = self.settings.paraphrases.clone();
                    settings.count = settings.count.max(descriptor.paraphrases.len() + 1);
                    let job = Job::Paraphrase { group_id: g.id, lang_index: d, descriptor, settings };
                    return self.submit(job);
                }
            }
            KeyCode::Char('l') => return self.start(false),
            KeyCode::Char('e') => return self.start(true),
            KeyCode::Char('D') => {
                if let Some((id, name)) = self.selected_group().map(|g| (g.id, g.saved.group.name.clone())) {
                    self.confirm_delete = Some(format!("group:{id}"));
                    self.message = format!("delete group `{name}`? y/n");
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn select_group(&mut self, index: usize) {
        let index = index.min(self.groups.len().saturating_sub(1));
        if index != self.group_selected {
            self.group_selected = index;
            self.field_selected = 0;
            self.layer_selected = 0;
            self.lafn_scroll = 0;
        }
    }

    /// Locates (or edits) the selected group.
    fn start(&mut self, edit: bool) -> Vec<Command> {
        let Some(g) = self.selected_group() else {
            self.error = Some("no edit group: add one in the Edits pane (n) or import one (i)".into());
            return Vec::new();
        };
        if let Err(e) = g.saved.group.validate() {
            self.error = Some(format!("{e:#}"));
            return Vec::new();
        }
        let (group_id, group, settings) = (g.id, g.saved.group.clone(), Box::new(self.settings.clone()));
        if edit {
            self.editing_group = Some(group_id);
            self.pane = Pane::Optimize;
            self.submit(Job::Edit { group_id, group, settings })
        } else {
            self.submit(Job::Locate { group_id, group, settings })
        }
    }

    /// Reselects the selected group's LAFNs from its measurements with the current settings.
    fn reselect(&mut self) {
        let settings = self.settings.locate.clone();
        let Some(g) = self.groups.get_mut(self.group_selected) else { return };
        let Some(measurements) = &g.measurements else {
            self.message = "beta applies at the next locate (r re-measures)".into();
            return;
        };
        match select(measurements, &settings) {
            Ok(located) => {
                g.saved.located = Some(located);
                if g.saved.status != GroupStatus::Draft {
                    g.saved.status = GroupStatus::Located;
                }
                self.error = None;
            }
            Err(e) => self.error = Some(format!("{e:#}")),
        }
    }

    /// Asks the worker for the top tokens of the selected layer's LAFNs, once per layer.
    fn request_top_tokens(&mut self) -> Vec<Command> {
        if self.model_info.is_none() || self.requested_tokens.contains(&self.layer_selected) {
            return Vec::new();
        }
        let neurons: Vec<u32> = self
            .layer_lafns()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|&n| !self.top_tokens.contains_key(&(self.layer_selected, n)))
            .collect();
        if neurons.is_empty() {
            return Vec::new();
        }
        self.requested_tokens.insert(self.layer_selected);
        self.submit(Job::TopTokens { layer: self.layer_selected, neurons })
    }

    /// The selected layer's LAFNs with their per-language frequencies: from the measurements when there
    /// are any, else what the saved located neurons hold for that layer.
    pub fn layer_lafns(&self) -> Vec<(u32, Vec<f32>)> {
        let Some(g) = self.selected_group() else { return Vec::new() };
        let layer = self.layer_selected;
        if let Some(m) = &g.measurements {
            if layer < m.num_layers() {
                return m
                    .layer_lafns(layer, &self.settings.locate)
                    .into_iter()
                    .map(|n| (n, m.neuron_frequencies(layer, n)))
                    .collect();
            }
        }
        let Some(located) = &g.saved.located else { return Vec::new() };
        match (located.selected.get(&layer), located.frequencies.get(&layer)) {
            (Some(neurons), Some(freqs)) => neurons.iter().copied().zip(freqs.iter().cloned()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn layer_count(&self) -> usize {
        self.selected_group().and_then(|g| g.saved.located.as_ref()).map_or(0, |l| l.layers.len())
    }

    fn neurons_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let layers = self.layer_count();
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.layer_selected = self.layer_selected.saturating_sub(1);
                self.lafn_scroll = 0;
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.layer_selected = (self.layer_selected + 1).min(layers.saturating_sub(1));
                self.lafn_scroll = 0;
            }
            KeyCode::PageDown => self.lafn_scroll += 5,
            KeyCode::PageUp => self.lafn_scroll = self.lafn_scroll.saturating_sub(5),
            KeyCode::Char('+') | KeyCode::Char('=') | KeyCode::Right => {
                self.settings.locate.beta = round_beta(self.settings.locate.beta + BETA_STEP);
                self.reselect();
                self.requested_tokens.clear();
            }
            KeyCode::Char('-') | KeyCode::Left => {
                self.settings.locate.beta = round_beta(self.settings.locate.beta - BETA_STEP);
                self.reselect();
                self.requested_tokens.clear();
            }
            KeyCode::Char('r') | KeyCode::Char('l') => return self.start(false),
            _ => return Vec::new(),
        }
        self.request_top_tokens()
    }

    fn optimize_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.setting_selected = self.setting_selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.setting_selected = (self.setting_selected + 1).min(Setting::ALL.len() - 1)
            }
            KeyCode::Enter => {
                let setting = Setting::ALL[self.setting_selected];
                self.open_input(InputTarget::Setting(setting), &setting.value(&self.settings));
            }
            KeyCode::Char('s') | KeyCode::Char('e') => return self.start(true),
            KeyCode::Char('c') | KeyCode::Char('x') => return self.cancel(),
            _ => {}
        }
        Vec::new()
    }

    fn chat_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('e') if ctrl => {
                self.chat_with_cache = !self.chat_with_cache;
                return Vec::new();
            }
            KeyCode::Char('b') if ctrl => {
                self.side_by_side = !self.side_by_side;
                return Vec::new();
            }
            KeyCode::Char('r') if ctrl => {
                self.chat_raw = !self.chat_raw;
                return Vec::new();
            }
            KeyCode::PageUp => self.chat_scroll += 5,
            KeyCode::PageDown => self.chat_scroll = self.chat_scroll.saturating_sub(5),
            _ => {}
        }
        if !self.chat_focused {
            match key.code {
                KeyCode::Enter | KeyCode::Char('i') => self.chat_focused = true,
                KeyCode::Up | KeyCode::Char('k') => self.chat_scroll += 1,
                KeyCode::Down | KeyCode::Char('j') => self.chat_scroll = self.chat_scroll.saturating_sub(1),
                KeyCode::Char('c') => return self.cancel(),
                _ => {}
            }
            return Vec::new();
        }
        let field = &mut self.chat_input;
        match key.code {
            KeyCode::Esc => self.chat_focused = false,
            KeyCode::Enter => return self.ask(),
            KeyCode::Up => self.chat_scroll += 1,
            KeyCode::Down => self.chat_scroll = self.chat_scroll.saturating_sub(1),
            _ => {
                field.edit_key(key);
            }
        }
        Vec::new()
    }

    fn ask(&mut self) -> Vec<Command> {
        let query = self.chat_input.text().trim().to_string();
        if query.is_empty() {
            return Vec::new();
        }
        if self.model_info.is_none() && self.pending_jobs == 0 {
            self.error = Some("no model is loaded: load one in the Model pane".into());
            return Vec::new();
        }
        self.chat_input = TextField::default();
        let modes = match (self.side_by_side, self.chat_with_cache) {
            (true, _) => vec![true, false],
            (false, with_cache) => vec![with_cache],
        };
        self.chat.push(ChatEntry { user: query.clone(), ..ChatEntry::default() });
        self.chat_scroll = 0;
        let raw = self.chat_raw;
        self.submit(Job::Chat { turn: self.chat.len() - 1, query, modes, max_tokens: CHAT_MAX_TOKENS, raw })
    }

    fn sessions_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let selected = self.sessions.get(self.session_selected).map(|s| s.name.clone());
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.session_selected = self.session_selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.session_selected = (self.session_selected + 1).min(self.sessions.len().saturating_sub(1))
            }
            KeyCode::Enter | KeyCode::Char('l') => {
                if let Some(name) = selected {
                    return vec![Command::LoadSession(name)];
                }
            }
            KeyCode::Char('s') => return self.save(),
            KeyCode::Char('a') => self.open_input(InputTarget::SaveSessionAs, &self.session_name.clone()),
            KeyCode::Char('b') => match self.sessions.get(self.session_selected) {
                Some(s) if s.has_backup => return vec![Command::RestoreBackup(s.name.clone()), Command::ListSessions],
                Some(s) => self.error = Some(format!("session `{}` has no previous save", s.name)),
                None => {}
            },
            KeyCode::Char('r') => {
                if let Some(name) = selected {
                    self.open_input(InputTarget::RenameSession, &name);
                }
            }
            KeyCode::Char('d') => {
                if let Some(name) = selected {
                    self.message = format!("delete session `{name}`? y/n");
                    self.confirm_delete = Some(format!("session:{name}"));
                }
            }
            KeyCode::Char('g') => return vec![Command::ListSessions],
            _ => {}
        }
        Vec::new()
    }

    fn delete_confirmed(&mut self, what: String) -> Vec<Command> {
        if let Some(name) = what.strip_prefix("session:") {
            return vec![Command::DeleteSession(name.to_string()), Command::ListSessions];
        }
        if let Some(id) = what.strip_prefix("group:").and_then(|id| id.parse::<u64>().ok()) {
            self.groups.retain(|g| g.id != id);
            self.group_selected = self.group_selected.min(self.groups.len().saturating_sub(1));
            self.field_selected = 0;
            self.message = "group deleted".into();
        }
        Vec::new()
    }

    fn mouse(&mut self, mouse: MouseEvent) -> Vec<Command> {
        let area = Rect::new(0, 0, self.size.0, self.size.1);
        if panes::too_small(area) {
            return Vec::new();
        }
        let at = Position::new(mouse.column, mouse.row);
        let key = |code| Event::Key(KeyEvent::new(code, KeyModifiers::NONE));
        match mouse.kind {
            MouseEventKind::ScrollUp if self.input.is_none() => self.handle(key(KeyCode::Up)),
            MouseEventKind::ScrollDown if self.input.is_none() => self.handle(key(KeyCode::Down)),
            MouseEventKind::Down(MouseButton::Left) => {
                self.help = false;
                let layout = panes::layout(area);
                if layout.tabs.contains(at) {
                    if let Some(pane) = panes::tab_at(layout.tabs, mouse.column) {
                        return self.switch(pane);
                    }
                    return Vec::new();
                }
                self.click(layout.body, at)
            }
            _ => Vec::new(),
        }
    }

    /// A click in the body selects the list row under it.
    fn click(&mut self, body: Rect, at: Position) -> Vec<Command> {
        let Some((list, row)) = panes::hit(self, body, at) else { return Vec::new() };
        self.input = None;
        match (self.pane, list) {
            (Pane::Model, 0) => self.builtin_selected = row.min(self.builtins.len().saturating_sub(1)),
            (Pane::Edits, 0) => self.select_group(row),
            (Pane::Edits, _) => self.field_selected = row.min(self.form_fields().len().saturating_sub(1)),
            (Pane::Neurons, _) => {
                self.layer_selected = row.min(self.layer_count().saturating_sub(1));
                return self.request_top_tokens();
            }
            (Pane::Optimize, _) => self.setting_selected = row.min(Setting::ALL.len() - 1),
            (Pane::Sessions, _) => self.session_selected = row.min(self.sessions.len().saturating_sub(1)),
            (Pane::Chat, _) => self.chat_focused = true,
            _ => {}
        }
        Vec::new()
    }
}

fn blank_descriptor(lang: &str) -> EditDescriptor {
    EditDescriptor {
        lang: lang.to_string(),
        subject: String::new(),
        prompt: String::new(),
        target: String::new(),
        paraphrases: Vec::new(),
        aliases: Vec::new(),
    }
}

/// Beta after a step, kept on the step grid (no 0.7999999) and valid: above 0, at most 1.
fn round_beta(beta: f32) -> f32 {
    ((beta / BETA_STEP).round() * BETA_STEP).clamp(BETA_STEP, 1.0)
}
