//! Chat pane state: the transcript, the input, and how questions are asked (with the cache or without,
//! side by side, raw continuation).

use super::{App, Command};
use crate::method::apply::entries_to_teach;
use crate::method::retrieve::Hit;
use crate::session::CacheMention;
use crate::tui::text::TextField;
use crate::tui::worker::{ChatAnswers, Job};

/// Most tokens a chat answer may have.
pub const CHAT_MAX_TOKENS: usize = 48;

/// Lines PgUp/PgDn scroll the transcript by.
pub const PAGE: usize = 5;

/// One chat exchange; with side by side on, both answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatEntry {
    pub user: String,
    pub with_cache: Option<String>,
    pub without_cache: Option<String>,
    /// The entries that fired and why (subject match, scope score), then those whose subject the
    /// question names but whose fact it does not ask.
    pub fired: Vec<CacheMention>,
    /// The question as the edits that fired were trained to read it, where it differs from what was
    /// typed (a question mark added or dropped).
    pub read_as: Option<String>,
    /// Whether the answer with the cache is complete (what fired is known only then).
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct ChatState {
    pub entries: Vec<ChatEntry>,
    pub input: TextField,
    /// Keys type into the input (else they scroll and act).
    pub focused: bool,
    pub with_cache: bool,
    pub side_by_side: bool,
    /// Keep generating after the answer's first line (off: the answer ends at its line end).
    pub raw: bool,
    /// Lines scrolled up from the bottom of the transcript.
    pub scroll: usize,
}

impl Default for ChatState {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            input: TextField::default(),
            focused: true,
            with_cache: true,
            side_by_side: false,
            raw: false,
            scroll: 0,
        }
    }
}

impl ChatState {
    pub(super) fn scroll_up(&mut self, lines: usize) {
        self.scroll += lines;
    }

    pub(super) fn scroll_down(&mut self, lines: usize) {
        self.scroll = self.scroll.saturating_sub(lines);
    }

    fn answer_mut(&mut self, turn: usize, with_cache: bool) -> Option<&mut String> {
        let entry = self.entries.get_mut(turn)?;
        let answer = if with_cache { &mut entry.with_cache } else { &mut entry.without_cache };
        Some(answer.get_or_insert_with(String::new))
    }

    pub(super) fn answer_text(&mut self, turn: usize, with_cache: bool, text: &str) {
        if let Some(answer) = self.answer_mut(turn, with_cache) {
            answer.push_str(text);
        }
    }

    pub(super) fn answer_done(
        &mut self,
        turn: usize,
        with_cache: bool,
        fired: &[Hit],
        out_of_scope: &[Hit],
        read_as: Option<String>,
    ) {
        self.answer_mut(turn, with_cache);
        let Some(entry) = self.entries.get_mut(turn).filter(|_| with_cache) else { return };
        entry.done = true;
        let mention = |applied| move |hit: &Hit| CacheMention::Hit { hit: hit.clone(), applied };
        entry.fired = fired.iter().map(mention(true)).chain(out_of_scope.iter().map(mention(false))).collect();
        entry.read_as = read_as;
    }
}

impl App {
    pub(super) fn ask(&mut self) -> Vec<Command> {
        let query = self.chat.input.text().trim().to_string();
        if query.is_empty() {
            return Vec::new();
        }
        if self.model.info.is_none() && self.jobs.pending() == 0 {
            self.error = Some("no model is loaded: load one in the Model pane".into());
            return Vec::new();
        }
        self.chat.input = TextField::default();
        self.ask_again(query)
    }

    /// Puts `query` to the model as a new turn.
    fn ask_again(&mut self, query: String) -> Vec<Command> {
        let chat = &mut self.chat;
        let answers = match (chat.side_by_side, chat.with_cache) {
            (true, _) => ChatAnswers::SideBySide,
            (false, true) => ChatAnswers::WithCache,
            (false, false) => ChatAnswers::WithoutCache,
        };
        chat.entries.push(ChatEntry { user: query.clone(), ..ChatEntry::default() });
        chat.scroll = 0;
        // The frame the session's edits trained on, so they fire where chat asks.
        let (max_tokens, raw, frame) = (CHAT_MAX_TOKENS, chat.raw, self.settings.frame);
        let job = Job::Chat { turn: chat.entries.len() - 1, query, answers, max_tokens, raw, frame };
        self.submit(job)
    }

    /// Tells the scope gate that the last question asks the fact of an edit it named that did not
    /// act (`asks`), or does not ask the fact of the edits that acted; then asks it again.
    pub(super) fn teach(&mut self, asks: bool) -> Vec<Command> {
        let Some(last) = self.chat.entries.last().filter(|entry| entry.done) else {
            self.error = Some("no answered question to teach about: ask one first".into());
            return Vec::new();
        };
        let (mut acted, mut did_not) = (Vec::new(), Vec::new());
        for mention in &last.fired {
            if let CacheMention::Hit { hit, applied } = mention {
                if *applied {
                    acted.push(hit.clone())
                } else {
                    did_not.push(hit.clone())
                }
            }
        }
        let hits = match entries_to_teach(&acted, &did_not, asks, None) {
            Ok(hits) => hits.into_iter().cloned().collect(),
            Err(e) => {
                self.error = Some(format!("nothing to teach: {e}"));
                return Vec::new();
            }
        };
        let query = last.user.clone();
        let mut commands = self.submit(Job::Teach { query: query.clone(), hits, asks });
        commands.extend(self.ask_again(query));
        commands
    }
}
