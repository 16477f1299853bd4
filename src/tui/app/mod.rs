//! The application state and its input handling: no I/O. [`App::handle`] takes a key, mouse, resize or
//! worker event and returns the [`Command`]s the terminal loop must carry out (jobs for the worker,
//! session files), so every interaction is testable without a terminal or a model. Keys become
//! [`Action`]s through the [keymap](super::keymap) and [`App::update`] carries them out.
//!
//! Each pane's state is its own struct in its own module ([`model`], [`edits`], [`neurons`],
//! [`optimize`], [`chat`], [`sessions`]; [`queue`] is the Edits pane's "edit all" and
//! [`language_picker`] its language picker); this module holds what is shared: the pane shown, the
//! status line, popups, the open input line, the method settings and the jobs.

pub mod chat;
pub mod edits;
pub mod jobs;
pub mod language_picker;
pub mod model;
pub mod neurons;
pub mod optimize;
pub mod queue;
pub mod sessions;

use std::path::PathBuf;

use crossterm::event::{KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Margin, Position, Rect};

use super::keymap::{self, Action, Mode};
use super::layout;
use super::text::TextField;
use super::worker::{Job, WorkerEvent};
use crate::method::{EditGroup, MethodSettings};
use crate::session::{Session, SessionSummary};
use chat::ChatState;
use edits::{EditsState, FieldRef};
use jobs::Jobs;
use model::ModelState;
use neurons::NeuronsState;
use optimize::{OptimizeState, Setting};
use sessions::SessionsState;

pub use super::layout::Pane;

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
    /// A session could not be loaded (see [`sessions::LoadFailure`]).
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

/// What a pending deletion (waiting for y) would delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    Group(u64),
    Session(String),
}

pub struct App {
    pub pane: Pane,
    pub size: (u16, u16),
    pub help: bool,
    pub quit: bool,
    pub message: String,
    pub error: Option<String>,
    pub jobs: Jobs,
    pub input: Option<Input>,
    pub confirm: Option<Deletion>,
    /// Shared by Edits (paraphrases), Neurons (beta) and Optimize (all of them).
    pub settings: MethodSettings,
    pub model: ModelState,
    pub edits: EditsState,
    pub neurons: NeuronsState,
    pub optimize: OptimizeState,
    pub chat: ChatState,
    pub sessions: SessionsState,
}

impl App {
    /// A fresh app for `session_name`, about to load `model_spec`. Returns the commands to start with.
    pub fn new(model_spec: &str, session_name: &str, sessions_dir: PathBuf) -> (Self, Vec<Command>) {
        let mut app = Self {
            pane: Pane::Model,
            size: (80, 24),
            help: false,
            quit: false,
            message: "press ? for keys".into(),
            error: None,
            jobs: Jobs::default(),
            input: None,
            confirm: None,
            settings: MethodSettings::default(),
            model: ModelState::new(model_spec),
            edits: EditsState::default(),
            neurons: NeuronsState::default(),
            optimize: OptimizeState::default(),
            chat: ChatState::default(),
            sessions: SessionsState::new(session_name, sessions_dir),
        };
        let load = app.submit(Job::Load { spec: model_spec.to_string() });
        let mut commands = vec![Command::ListSessions];
        commands.extend(load);
        (app, commands)
    }

    /// What receives keys now.
    pub fn mode(&self) -> Mode {
        if self.sessions.load_failure.as_ref().is_some_and(|f| f.shown) {
            Mode::LoadFailure
        } else if self.help {
            Mode::Help
        } else if self.input.is_some() {
            Mode::Input
        } else if self.edits.language_picker.is_some() {
            Mode::LanguagePicker
        } else if self.confirm.is_some() {
            Mode::Confirm
        } else if self.pane == Pane::Chat && self.chat.focused {
            Mode::ChatInput
        } else {
            Mode::Pane(self.pane)
        }
    }

    pub fn handle(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => {
                let mode = self.mode();
                match keymap::action(mode, key) {
                    Some(action) => self.update(action),
                    None => {
                        self.type_key(mode, key);
                        Vec::new()
                    }
                }
            }
            Event::Key(_) => Vec::new(),
            Event::Mouse(mouse) => self.mouse(mouse),
            Event::Paste(text) => {
                if let Some(input) = &mut self.input {
                    input.field.paste(&text);
                } else if let Some(picker) = &mut self.edits.language_picker {
                    picker.paste(&text);
                } else if self.pane == Pane::Chat {
                    self.chat.focused = true;
                    self.chat.input.paste(&text);
                }
                Vec::new()
            }
            Event::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Event::Worker(event) => self.worker_event(event),
            Event::IoFailed(error) => {
                self.error = Some(error);
                Vec::new()
            }
            Event::Imported(groups) => {
                self.import(groups);
                Vec::new()
            }
            Event::Terminate => self.quit(),
            Event::SessionsListed(_)
            | Event::SessionLoaded(_)
            | Event::SessionSaved { .. }
            | Event::SessionLoadFailed { .. } => self.session_event(event),
        }
    }

    /// Carries out an action; actions of another pane than the one shown act on that pane's state.
    pub fn update(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Quit => return self.quit(),
            Action::Save => return self.save(),
            Action::Cancel => return self.cancel(),
            Action::GoTo(pane) => return self.switch(pane),
            Action::NextPane => return self.switch(self.pane.cycle(1)),
            Action::PreviousPane => return self.switch(self.pane.cycle(-1)),
            Action::Help => self.help = true,
            Action::CloseHelp => self.help = false,
            Action::DismissError => self.error = None,
            Action::Up if self.edits.language_picker.is_some() => self.move_picker(-1),
            Action::Down if self.edits.language_picker.is_some() => self.move_picker(1),
            Action::Up => return self.move_in_list(false),
            Action::Down => return self.move_in_list(true),
            Action::PageUp => self.move_picker(-self.picker_page()),
            Action::PageDown => self.move_picker(self.picker_page()),
            Action::ToFirst => self.move_picker(isize::MIN),
            Action::ToLast => self.move_picker(isize::MAX),
            Action::PickLanguage => self.pick_language(),
            Action::ClosePicker => self.edits.language_picker = None,
            Action::Commit => return self.commit_input(),
            Action::CloseInput => self.input = None,
            Action::FieldEnd => {
                if let Some(input) = &mut self.input {
                    input.field.end();
                }
            }
            Action::ConfirmDelete => return self.delete_confirmed(),
            Action::KeepIt => {
                self.confirm = None;
                self.message = "nothing deleted".into();
            }
            Action::RestoreFailedSession => return self.restore_failed_session(),
            Action::SaveFailedSessionAs => return self.save_failed_session_as(),
            Action::CloseNotice => self.sessions.close_notice(),
            Action::LoadBuiltin => return self.load_builtin(),
            Action::TypeModelSpec => self.open_input(InputTarget::ModelSpec, ""),
            Action::NewGroup => self.new_group(),
            Action::Import => self.open_input(InputTarget::ImportPath, ""),
            Action::EditField => self.edit_field(),
            Action::PreviousGroup => self.select_group(self.edits.group_selected.saturating_sub(1)),
            Action::NextGroup => self.select_group(self.edits.group_selected + 1),
            Action::AddLanguage => self.open_language_picker(),
            Action::RemoveLanguage => self.remove_language(),
            Action::AddParaphrase => self.add_paraphrase(),
            Action::RemoveParaphrase => self.edits.remove_paraphrase(),
            Action::GenerateParaphrases => return self.generate_paraphrases(),
            Action::Locate => return self.start(false),
            Action::Edit => return self.start(true),
            Action::EditAll => return self.edit_all(),
            Action::DeleteGroup => self.ask_delete_group(),
            Action::BetaUp => return self.step_beta(true),
            Action::BetaDown => return self.step_beta(false),
            Action::ScrollLafnsUp => return self.scroll_lafns(false),
            Action::ScrollLafnsDown => return self.scroll_lafns(true),
            Action::ChangeSetting => self.change_setting(),
            Action::Ask => return self.ask(),
            Action::LeaveChatInput => self.chat.focused = false,
            Action::FocusChatInput => self.chat.focused = true,
            Action::ToggleCache => self.chat.with_cache = !self.chat.with_cache,
            Action::ToggleSideBySide => self.chat.side_by_side = !self.chat.side_by_side,
            Action::ToggleRaw => self.chat.raw = !self.chat.raw,
            Action::ScrollChatUp => self.chat.scroll_up(chat::PAGE),
            Action::ScrollChatDown => self.chat.scroll_down(chat::PAGE),
            Action::TeachAsks => return self.teach(true),
            Action::TeachNotAsked => return self.teach(false),
            Action::LoadSession => return self.sessions.load_selected(),
            Action::SaveAs => self.open_input(InputTarget::SaveSessionAs, &self.sessions.name.clone()),
            Action::RenameSession => self.rename_session(),
            Action::DeleteSession => self.ask_delete_session(),
            Action::RestoreBackup => return self.restore_backup(),
            Action::RefreshSessions => return vec![Command::ListSessions],
        }
        Vec::new()
    }

    /// A key no binding takes: typed into the open input line, the language picker's search or the chat
    /// input.
    fn type_key(&mut self, mode: Mode, key: KeyEvent) {
        let field = match (mode, &mut self.input, &mut self.edits.language_picker) {
            (Mode::Input, Some(input), _) => &mut input.field,
            (Mode::LanguagePicker, _, Some(picker)) => return picker.edit_key(key),
            (Mode::ChatInput, ..) => &mut self.chat.input,
            _ => return,
        };
        field.edit_key(key);
    }

    /// Submits a job; every job goes through here so the count of pending jobs stays exact.
    fn submit(&mut self, job: Job) -> Vec<Command> {
        vec![self.jobs.submit(job)]
    }

    fn switch(&mut self, pane: Pane) -> Vec<Command> {
        self.input = None;
        self.edits.language_picker = None;
        self.help = false;
        self.pane = pane;
        match pane {
            Pane::Sessions => vec![Command::ListSessions],
            Pane::Chat => {
                self.chat.focused = true;
                Vec::new()
            }
            Pane::Neurons => self.request_top_tokens(),
            _ => Vec::new(),
        }
    }

    /// Up or down in the shown pane's list.
    fn move_in_list(&mut self, down: bool) -> Vec<Command> {
        let step = |index: usize, count: usize| {
            if down {
                (index + 1).min(count.saturating_sub(1))
            } else {
                index.saturating_sub(1)
            }
        };
        match self.pane {
            Pane::Model => self.model.selected = step(self.model.selected, self.model.builtins.len()),
            Pane::Edits => self.edits.field_selected = step(self.edits.field_selected, self.edits.form_fields().len()),
            Pane::Neurons => return self.select_layer(step(self.neurons.layer_selected, self.layer_count())),
            Pane::Optimize => self.optimize.selected = step(self.optimize.selected, Setting::ALL.len()),
            Pane::Chat if down => self.chat.scroll_down(1),
            Pane::Chat => self.chat.scroll_up(1),
            Pane::Sessions => self.sessions.selected = step(self.sessions.selected, self.sessions.list.len()),
        }
        Vec::new()
    }

    /// Moves the language picker's selection by `rows`.
    fn move_picker(&mut self, rows: isize) {
        if let Some(picker) = &mut self.edits.language_picker {
            picker.move_by(rows);
        }
    }

    /// The language picker's list area at the current terminal size.
    fn picker_list(&self) -> Rect {
        let body = layout::frame(Rect::new(0, 0, self.size.0, self.size.1)).body;
        layout::language_picker(body)[2]
    }

    /// Rows PageUp and PageDown move in the language picker: what its list shows.
    fn picker_page(&self) -> isize {
        self.picker_list().height.max(1) as isize
    }

    fn quit(&mut self) -> Vec<Command> {
        self.quit = true;
        let mut commands = Vec::new();
        if (!self.edits.groups.is_empty() || !self.chat.entries.is_empty()) && !self.sessions.save_refused() {
            commands.push(Command::SaveSession(Box::new(self.session())));
        }
        commands.push(Command::CancelJob);
        commands.push(Command::Quit);
        commands
    }

    fn save(&mut self) -> Vec<Command> {
        if self.sessions.save_refused() {
            if let Some(failure) = &mut self.sessions.load_failure {
                failure.shown = true;
            }
            return Vec::new();
        }
        vec![Command::SaveSession(Box::new(self.session()))]
    }

    fn cancel(&mut self) -> Vec<Command> {
        if self.cancel_queue() {
            vec![Command::CancelJob]
        } else if self.jobs.busy.is_some() {
            self.message = "cancelling…".into();
            vec![Command::CancelJob]
        } else {
            Vec::new()
        }
    }

    fn open_input(&mut self, target: InputTarget, text: &str) {
        self.input = Some(Input { target, field: TextField::new(text) });
    }

    /// Enter in the open input line: the text goes where the line was opened for.
    fn commit_input(&mut self) -> Vec<Command> {
        let Some(Input { target, field }) = self.input.take() else { return Vec::new() };
        let text = field.text().to_string();
        match target {
            InputTarget::Field(field) => self.edits.set_field(field, text),
            InputTarget::Setting(setting) => return self.apply_setting(setting, &text),
            InputTarget::ModelSpec => return self.load_spec(&text),
            InputTarget::ImportPath => {
                let path = text.trim();
                if !path.is_empty() {
                    return vec![Command::Import(PathBuf::from(path))];
                }
            }
            InputTarget::RenameSession => return self.sessions.rename_selected(text),
            InputTarget::SaveSessionAs => {
                if let Err(e) = crate::session::validate_name(&text) {
                    self.error = Some(format!("{e:#}"));
                    return Vec::new();
                }
                self.sessions.name = text;
                return self.save();
            }
        }
        Vec::new()
    }

    fn delete_confirmed(&mut self) -> Vec<Command> {
        match self.confirm.take() {
            Some(Deletion::Session(name)) => vec![Command::DeleteSession(name), Command::ListSessions],
            Some(Deletion::Group(id)) => {
                self.edits.delete_group(id);
                self.message = "group deleted".into();
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    fn mouse(&mut self, mouse: MouseEvent) -> Vec<Command> {
        let area = Rect::new(0, 0, self.size.0, self.size.1);
        if layout::too_small(area) {
            return Vec::new();
        }
        let at = Position::new(mouse.column, mouse.row);
        let scrolls = matches!(self.mode(), Mode::Pane(_) | Mode::ChatInput | Mode::LanguagePicker);
        match mouse.kind {
            MouseEventKind::ScrollUp if scrolls => self.update(Action::Up),
            MouseEventKind::ScrollDown if scrolls => self.update(Action::Down),
            MouseEventKind::Down(MouseButton::Left) => {
                self.help = false;
                let frame = layout::frame(area);
                if frame.tabs.contains(at) {
                    return layout::tab_at(frame.tabs, mouse.column).map_or(Vec::new(), |pane| self.switch(pane));
                }
                if self.edits.language_picker.is_some() {
                    self.click_picker(at);
                    return Vec::new();
                }
                self.click(frame.body, at)
            }
            _ => Vec::new(),
        }
    }

    /// A click on a row of the language picker selects it; a click on the selected row adds it.
    fn click_picker(&mut self, at: Position) {
        let list = self.picker_list();
        let Some(picker) = &mut self.edits.language_picker else { return };
        if !list.contains(at) {
            return;
        }
        let row = picker.offset(list.height as usize) + usize::from(at.y - list.y);
        if row >= picker.choices().len() {
            return;
        }
        let again = row == picker.selected;
        picker.selected = row;
        if again {
            self.pick_language();
        }
    }

    /// A click in the body selects the list row under it.
    fn click(&mut self, body: Rect, at: Position) -> Vec<Command> {
        let Some((list, row)) = self.row_at(body, at) else { return Vec::new() };
        self.input = None;
        match (self.pane, list) {
            (Pane::Model, _) => self.model.selected = row.min(self.model.builtins.len().saturating_sub(1)),
            (Pane::Edits, 0) => self.select_group(row),
            (Pane::Edits, _) => self.edits.field_selected = row.min(self.edits.form_fields().len().saturating_sub(1)),
            (Pane::Neurons, _) => return self.select_layer(row.min(self.layer_count().saturating_sub(1))),
            (Pane::Optimize, _) => self.optimize.selected = row.min(Setting::ALL.len() - 1),
            (Pane::Sessions, _) => self.sessions.selected = row.min(self.sessions.list.len().saturating_sub(1)),
            (Pane::Chat, _) => self.chat.focused = true,
        }
        Vec::new()
    }

    /// The list and item under `at` in the body: (which list of the pane, item index).
    fn row_at(&self, body: Rect, at: Position) -> Option<(usize, usize)> {
        let lists: Vec<Rect> = match self.pane {
            Pane::Model => vec![layout::model(body)[0]],
            Pane::Edits => layout::edits(body).to_vec(),
            Pane::Neurons => {
                let heatmap = layout::neurons(body, self.edits.selected_language_count())[1];
                // Data rows start below the header line.
                vec![Rect { y: heatmap.y + 1, height: heatmap.height.saturating_sub(1), ..heatmap }]
            }
            Pane::Optimize => vec![layout::optimize(body, Setting::ALL.len())[0]],
            Pane::Chat => vec![layout::chat(body)[1]],
            Pane::Sessions => vec![layout::sessions(body)[0]],
        };
        lists.iter().enumerate().find_map(|(list, area)| {
            let inner = area.inner(Margin::new(1, 1));
            inner
                .contains(at)
                .then(|| (list, (at.y - inner.y) as usize + self.first_shown(list, inner.height as usize)))
        })
    }

    /// The first item a list of the shown pane shows in `rows` rows (lists follow their selection).
    fn first_shown(&self, list: usize, rows: usize) -> usize {
        match (self.pane, list) {
            (Pane::Edits, 0) => self.edits.group_offset(rows),
            (Pane::Edits, 1) => self.edits.form_offset(rows),
            (Pane::Neurons, _) => self.neurons.heatmap_offset(rows),
            (Pane::Sessions, _) => self.sessions.list_offset(rows),
            _ => 0,
        }
    }
}
