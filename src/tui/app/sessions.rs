//! Sessions pane state: the current session's name, the saved sessions, and a session that failed to
//! load (never saved over). Also the session as it would be saved, and loading one into the app.

use std::path::PathBuf;

use super::chat::ChatEntry;
use super::{App, Command, Deletion, Event, InputTarget, Pane};
use crate::session::{ChatTurn, Session, SessionSummary};
use crate::tui::layout::scroll_offset;
use crate::tui::worker::Job;

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

#[derive(Debug, Clone)]
pub struct SessionsState {
    /// The current session's name.
    pub name: String,
    pub dir: PathBuf,
    pub list: Vec<SessionSummary>,
    pub selected: usize,
    pub load_failure: Option<LoadFailure>,
}

impl SessionsState {
    pub fn new(name: &str, dir: PathBuf) -> Self {
        Self { name: name.to_string(), dir, list: Vec::new(), selected: 0, load_failure: None }
    }

    /// Whether saving is refused because the current session's files could not be loaded.
    pub fn save_refused(&self) -> bool {
        self.load_failure.as_ref().is_some_and(|f| f.name == self.name)
    }

    /// First list row shown in `rows` rows.
    pub fn list_offset(&self, rows: usize) -> usize {
        scroll_offset(self.selected, rows)
    }

    fn selected_summary(&self) -> Option<&SessionSummary> {
        self.list.get(self.selected)
    }

    pub(super) fn close_notice(&mut self) {
        if let Some(failure) = &mut self.load_failure {
            failure.shown = false;
        }
    }

    pub(super) fn load_selected(&self) -> Vec<Command> {
        self.selected_summary().map(|s| vec![Command::LoadSession(s.name.clone())]).unwrap_or_default()
    }

    pub(super) fn rename_selected(&mut self, to: String) -> Vec<Command> {
        let Some(from) = self.selected_summary().map(|s| s.name.clone()) else { return Vec::new() };
        if to.trim().is_empty() {
            return Vec::new();
        }
        if from == self.name {
            self.name = to.clone();
        }
        vec![Command::RenameSession { from, to }, Command::ListSessions]
    }
}

impl App {
    /// The session as it would be saved now.
    pub fn session(&self) -> Session {
        let mut session = Session::new(&self.sessions.name).unwrap_or_else(|_| Session::new("session").expect("valid"));
        session.name = self.sessions.name.clone();
        session.model = Some(self.model.spec.clone());
        session.model_fingerprint = self.model.info.as_ref().map(|i| i.fingerprint.clone());
        session.settings = self.settings.clone();
        session.cache_dir = self.model.cache_dir.clone();
        session.groups = self.edits.groups.iter().map(|g| g.saved.clone()).collect();
        session.chat = self
            .chat
            .entries
            .iter()
            .map(|c| ChatTurn {
                user: c.user.clone(),
                answer: c.with_cache.clone().or(c.without_cache.clone()).unwrap_or_default(),
                fired: c.fired.clone(),
                read_as: c.read_as.clone(),
                with_cache: c.with_cache.is_some(),
                unedited_answer: c.with_cache.as_ref().and(c.without_cache.clone()),
            })
            .collect();
        session
    }

    /// The answers to the session file commands.
    pub(super) fn session_event(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::SessionsListed(list) => {
                self.sessions.list = list;
                self.sessions.selected = self.sessions.selected.min(self.sessions.list.len().saturating_sub(1));
            }
            Event::SessionLoaded(session) => return self.load_session(*session),
            Event::SessionSaved { name, path } => {
                self.message = format!("saved session `{name}` to {}", path.display());
                return vec![Command::ListSessions];
            }
            Event::SessionLoadFailed { name, reason, has_backup } => {
                self.message = format!("session `{name}` was not loaded");
                self.sessions.load_failure = Some(LoadFailure { name, reason, has_backup, shown: true });
            }
            _ => {}
        }
        Vec::new()
    }

    fn load_session(&mut self, session: Session) -> Vec<Command> {
        self.sessions.load_failure = None;
        self.sessions.name = session.name.clone();
        self.settings = session.settings;
        self.edits.groups.clear();
        for saved in session.groups {
            self.edits.add_saved(saved);
        }
        self.edits.group_selected = 0;
        self.edits.field_selected = 0;
        self.chat.entries = session
            .chat
            .into_iter()
            .map(|t| {
                let (with_cache, without_cache) = match (t.with_cache, t.unedited_answer) {
                    (true, unedited) => (Some(t.answer), unedited),
                    (false, _) => (None, Some(t.answer)),
                };
                ChatEntry { user: t.user, with_cache, without_cache, fired: t.fired, read_as: t.read_as, done: true }
            })
            .collect();
        self.chat.scroll = 0;
        self.message = format!("loaded session `{}`", self.sessions.name);
        let mut commands = match session.model.filter(|m| *m != self.model.spec) {
            Some(spec) => self.submit(Job::Load { spec }),
            None => Vec::new(),
        };
        // After the load, if any: the worker runs jobs in order, so the check sees the model's cache.
        commands.extend(self.check_cache_entries());
        commands
    }

    pub(super) fn restore_failed_session(&mut self) -> Vec<Command> {
        match &self.sessions.load_failure {
            Some(failure) if failure.has_backup => {
                vec![Command::RestoreBackup(failure.name.clone()), Command::ListSessions]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn save_failed_session_as(&mut self) -> Vec<Command> {
        self.sessions.close_notice();
        let commands = self.switch(Pane::Sessions);
        self.open_input(InputTarget::SaveSessionAs, "");
        commands
    }

    pub(super) fn restore_backup(&mut self) -> Vec<Command> {
        match self.sessions.selected_summary() {
            Some(s) if s.has_backup => vec![Command::RestoreBackup(s.name.clone()), Command::ListSessions],
            Some(s) => {
                self.error = Some(format!("session `{}` has no previous save", s.name));
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    pub(super) fn rename_session(&mut self) {
        if let Some(name) = self.sessions.selected_summary().map(|s| s.name.clone()) {
            self.open_input(InputTarget::RenameSession, &name);
        }
    }

    pub(super) fn ask_delete_session(&mut self) {
        if let Some(name) = self.sessions.selected_summary().map(|s| s.name.clone()) {
            self.message = format!("delete session `{name}`? y/n");
            self.confirm = Some(Deletion::Session(name));
        }
    }
}
