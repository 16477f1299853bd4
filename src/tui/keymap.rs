//! Every key binding in one table: which key does which [`Action`] where. Key handling looks actions up
//! here, and the help popup and the README's key table are printed from it, so they cannot disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::layout::Pane;

/// Declares [`Action`] with its unit variants listed for the tests, so a new action cannot be left out
/// of the check that every action has a key.
macro_rules! actions {
    ($($(#[$attr:meta])* $name:ident,)*) => {
        /// What the user asks for; [`super::app::App::update`] carries it out.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            GoTo(Pane),
            $($(#[$attr])* $name,)*
        }

        #[cfg(test)]
        impl Action {
            /// Every action but [`Action::GoTo`].
            const UNIT: &'static [Action] = &[$(Action::$name),*];
        }
    };
}

actions! {
    Quit,
    Save,
    Cancel,
    NextPane,
    PreviousPane,
    Help,
    CloseHelp,
    DismissError,
    /// Up or down in the pane's list (the chat scrolls its transcript).
    Up,
    Down,
    // An open input line.
    Commit,
    CloseInput,
    FieldEnd,
    // The language picker.
    PickLanguage,
    ClosePicker,
    PageUp,
    PageDown,
    ToFirst,
    ToLast,
    // A pending deletion.
    ConfirmDelete,
    KeepIt,
    // The notice of a session that was not loaded.
    RestoreFailedSession,
    SaveFailedSessionAs,
    CloseNotice,
    // Model
    LoadBuiltin,
    TypeModelSpec,
    // Edits
    NewGroup,
    Import,
    EditField,
    PreviousGroup,
    NextGroup,
    AddLanguage,
    RemoveLanguage,
    AddParaphrase,
    RemoveParaphrase,
    GenerateParaphrases,
    Locate,
    Edit,
    EditAll,
    DeleteGroup,
    // Neurons
    BetaUp,
    BetaDown,
    ScrollLafnsUp,
    ScrollLafnsDown,
    // Optimize
    ChangeSetting,
    // Chat
    Ask,
    LeaveChatInput,
    FocusChatInput,
    ToggleCache,
    ToggleSideBySide,
    ToggleRaw,
    ScrollChatUp,
    ScrollChatDown,
    TeachAsks,
    TeachNotAsked,
    // Sessions
    LoadSession,
    SaveAs,
    RenameSession,
    DeleteSession,
    RestoreBackup,
    RefreshSessions,
}

/// Where a binding applies. Which scopes are live, and in which order, depends on the [`Mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, also while typing and over popups.
    Anywhere,
    /// The help popup.
    Help,
    /// The notice of a session that was not loaded.
    LoadFailure,
    /// An open input line (text field).
    Input,
    /// The language picker of the Edits pane.
    LanguagePicker,
    /// A deletion waiting for y.
    Confirm,
    /// Everywhere but in popups and input lines (also while typing in the chat).
    Panes,
    /// When not typing.
    Browse,
    /// Typing in the chat input.
    ChatInput,
    /// One pane, not typing (the chat's also while typing in it).
    Pane(Pane),
    /// The chat transcript, when not typing.
    ChatTranscript,
    /// The lists of every pane, when not typing.
    Lists,
}

impl Scope {
    /// How the help names the scope, before the keys.
    fn prefix(self) -> &'static str {
        match self {
            Scope::Pane(Pane::Model) => "Model: ",
            Scope::Pane(Pane::Edits) => "Edits: ",
            Scope::Pane(Pane::Neurons) => "Neurons: ",
            Scope::Pane(Pane::Optimize) => "Optimize: ",
            Scope::Pane(Pane::Chat) | Scope::ChatTranscript | Scope::ChatInput => "Chat: ",
            Scope::Pane(Pane::Sessions) => "Sessions: ",
            Scope::LoadFailure => "Load failed: ",
            Scope::Input => "text field: ",
            Scope::LanguagePicker => "add language: ",
            Scope::Confirm => "delete? ",
            Scope::Anywhere | Scope::Help | Scope::Panes | Scope::Browse | Scope::Lists => "",
        }
    }
}

/// A key a binding answers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// This key with Ctrl or Alt held exactly as given (Shift is part of the character).
    Code(KeyCode, KeyModifiers),
    /// Any key not bound before it in the scope.
    Any,
}

impl Key {
    fn matches(self, key: KeyEvent) -> bool {
        match self {
            Key::Any => true,
            Key::Code(code, modifiers) => {
                let held = key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
                key.code == code && held == modifiers
            }
        }
    }

    /// How the help names the key; `after_others`: other keys of its scope are matched before it.
    fn label(self, after_others: bool) -> String {
        let Key::Code(code, modifiers) = self else {
            return if after_others { "any other key" } else { "any key" }.into();
        };
        let name = match code {
            KeyCode::Char(c) => c.to_string(),
            KeyCode::F(n) => format!("F{n}"),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Up => "Up".into(),
            KeyCode::Down => "Down".into(),
            KeyCode::Left => "Left".into(),
            KeyCode::Right => "Right".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Delete => "Del".into(),
            other => format!("{other:?}"),
        };
        match modifiers {
            KeyModifiers::CONTROL => format!("Ctrl-{}", name.to_uppercase()),
            KeyModifiers::ALT => format!("Alt-{name}"),
            _ => name,
        }
    }
}

const fn key(code: KeyCode) -> Key {
    Key::Code(code, KeyModifiers::NONE)
}

const fn char(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
    Key::Code(KeyCode::Char(c), KeyModifiers::CONTROL)
}

const fn alt(c: char) -> Key {
    Key::Code(KeyCode::Char(c), KeyModifiers::ALT)
}

/// One line of the help: the keys of one or more actions in one scope, and what they do.
pub struct Row {
    pub scope: Scope,
    pub bindings: &'static [(Action, &'static [Key])],
    pub does: &'static str,
    /// Replaces the list of keys where it would be long (the pane numbers, the picker's page keys).
    pub keys_label: Option<&'static str>,
}

const fn row(scope: Scope, bindings: &'static [(Action, &'static [Key])], does: &'static str) -> Row {
    Row { scope, bindings, does, keys_label: None }
}

use Action as A;
use Scope as S;

/// Every binding, in the order the help lists them; within a scope the first match wins.
pub const KEYMAP: &[Row] = &[
    row(
        S::Panes,
        &[(A::NextPane, &[key(KeyCode::Tab)]), (A::PreviousPane, &[key(KeyCode::BackTab)])],
        "next / previous pane",
    ),
    Row {
        scope: S::Anywhere,
        bindings: &[
            (A::GoTo(Pane::Model), &[key(KeyCode::F(1)), alt('1')]),
            (A::GoTo(Pane::Edits), &[key(KeyCode::F(2)), alt('2')]),
            (A::GoTo(Pane::Neurons), &[key(KeyCode::F(3)), alt('3')]),
            (A::GoTo(Pane::Optimize), &[key(KeyCode::F(4)), alt('4')]),
            (A::GoTo(Pane::Chat), &[key(KeyCode::F(5)), alt('5')]),
            (A::GoTo(Pane::Sessions), &[key(KeyCode::F(6)), alt('6')]),
        ],
        does: "go to a pane (also while typing)",
        keys_label: Some("F1..F6, Alt-1..6"),
    },
    Row {
        scope: S::Browse,
        bindings: &[
            (A::GoTo(Pane::Model), &[char('1')]),
            (A::GoTo(Pane::Edits), &[char('2')]),
            (A::GoTo(Pane::Neurons), &[char('3')]),
            (A::GoTo(Pane::Optimize), &[char('4')]),
            (A::GoTo(Pane::Chat), &[char('5')]),
            (A::GoTo(Pane::Sessions), &[char('6')]),
        ],
        does: "go to a pane",
        keys_label: Some("1..6"),
    },
    row(S::Browse, &[(A::Help, &[char('?')])], "this help"),
    row(S::Help, &[(A::CloseHelp, &[Key::Any])], "close this help"),
    row(S::Anywhere, &[(A::Save, &[ctrl('s')])], "save the session (anywhere)"),
    row(S::Anywhere, &[(A::Cancel, &[ctrl('x')])], "cancel the running job"),
    row(S::Anywhere, &[(A::Quit, &[ctrl('c'), ctrl('q')])], "quit (the session is saved)"),
    row(S::Browse, &[(A::Quit, &[char('q')])], "quit"),
    row(S::Browse, &[(A::DismissError, &[key(KeyCode::Esc)])], "dismiss an error"),
    row(
        S::Lists,
        &[(A::Up, &[key(KeyCode::Up), char('k')]), (A::Down, &[key(KeyCode::Down), char('j')])],
        "move in lists (the mouse wheel too; click tabs and rows)",
    ),
    row(
        S::Input,
        &[(A::Commit, &[key(KeyCode::Enter)]), (A::CloseInput, &[key(KeyCode::Esc)])],
        "done / leave the field (Left/Right, Home/End, Backspace/Del, Ctrl-U, Ctrl-Z undo, paste)",
    ),
    row(S::Input, &[(A::FieldEnd, &[ctrl('e')])], "to the end of the line"),
    row(
        S::LanguagePicker,
        &[(A::PickLanguage, &[key(KeyCode::Enter)]), (A::ClosePicker, &[key(KeyCode::Esc)])],
        "add the selected language / close (typing searches codes and names)",
    ),
    row(
        S::LanguagePicker,
        &[(A::Up, &[key(KeyCode::Up)]), (A::Down, &[key(KeyCode::Down)])],
        "move (the mouse wheel too; click a row, click it again to add it)",
    ),
    Row {
        scope: S::LanguagePicker,
        bindings: &[
            (A::PageUp, &[key(KeyCode::PageUp)]),
            (A::PageDown, &[key(KeyCode::PageDown)]),
            (A::ToFirst, &[key(KeyCode::Home)]),
            (A::ToLast, &[key(KeyCode::End)]),
        ],
        does: "a page up / down, to the first / last",
        keys_label: Some("PgUp/PgDn, Home/End"),
    },
    row(S::Confirm, &[(A::ConfirmDelete, &[char('y')]), (A::KeepIt, &[Key::Any])], "delete / keep"),
    row(S::Pane(Pane::Model), &[(A::LoadBuiltin, &[key(KeyCode::Enter)])], "load the selected built-in"),
    row(
        S::Pane(Pane::Model),
        &[(A::TypeModelSpec, &[char('p'), char('/')])],
        "type a local path or HF repo id, Enter loads it",
    ),
    row(
        S::Pane(Pane::Edits),
        &[(A::NewGroup, &[char('n')]), (A::Import, &[char('i')])],
        "new group / import JSON or JSONL (MzsRE records too)",
    ),
    row(S::Pane(Pane::Edits), &[(A::EditField, &[key(KeyCode::Enter)])], "edit the field"),
    row(
        S::Pane(Pane::Edits),
        &[(A::PreviousGroup, &[char('['), key(KeyCode::PageUp)]), (A::NextGroup, &[char(']'), key(KeyCode::PageDown)])],
        "previous / next group",
    ),
    row(
        S::Pane(Pane::Edits),
        &[(A::AddLanguage, &[char('a')]), (A::RemoveLanguage, &[char('d')])],
        "add a language from the table / remove the language",
    ),
    row(
        S::Pane(Pane::Edits),
        &[(A::AddParaphrase, &[char('p')]), (A::RemoveParaphrase, &[char('x'), key(KeyCode::Delete)])],
        "add / remove a paraphrase",
    ),
    row(S::Pane(Pane::Edits), &[(A::GenerateParaphrases, &[char('g')])], "generate paraphrases for the language"),
    row(
        S::Pane(Pane::Edits),
        &[(A::Locate, &[char('l')]), (A::Edit, &[char('e')]), (A::DeleteGroup, &[char('D')])],
        "locate / edit / delete the group",
    ),
    row(
        S::Pane(Pane::Edits),
        &[(A::EditAll, &[char('E')])],
        "edit all: every group not cached yet, one after another (cancel empties the queue)",
    ),
    row(
        S::Pane(Pane::Neurons),
        &[(A::BetaUp, &[char('+'), char('='), key(KeyCode::Right)]), (A::BetaDown, &[char('-'), key(KeyCode::Left)])],
        "beta up / down, recomputed live",
    ),
    row(S::Pane(Pane::Neurons), &[(A::Locate, &[char('r'), char('l')])], "locate again"),
    row(
        S::Pane(Pane::Neurons),
        &[(A::ScrollLafnsUp, &[key(KeyCode::PageUp)]), (A::ScrollLafnsDown, &[key(KeyCode::PageDown)])],
        "scroll the layer's LAFNs",
    ),
    row(S::Pane(Pane::Optimize), &[(A::ChangeSetting, &[key(KeyCode::Enter)])], "change the setting"),
    row(
        S::Pane(Pane::Optimize),
        &[(A::Edit, &[char('s'), char('e')]), (A::Cancel, &[char('c'), char('x')])],
        "start the edit / cancel it",
    ),
    row(
        S::ChatInput,
        &[(A::Ask, &[key(KeyCode::Enter)]), (A::LeaveChatInput, &[key(KeyCode::Esc)])],
        "ask / leave the input",
    ),
    row(
        S::ChatInput,
        &[(A::Up, &[key(KeyCode::Up)]), (A::Down, &[key(KeyCode::Down)])],
        "scroll the transcript while typing",
    ),
    row(S::ChatTranscript, &[(A::FocusChatInput, &[key(KeyCode::Enter), char('i')])], "back to the input"),
    row(S::ChatTranscript, &[(A::Cancel, &[char('c')])], "cancel the answer"),
    row(
        S::ChatTranscript,
        &[(A::TeachAsks, &[char('y')]), (A::TeachNotAsked, &[char('n')])],
        "the last question asks the edit it named / not the one that acted (taught, asked again)",
    ),
    row(
        S::Pane(Pane::Chat),
        &[(A::ToggleCache, &[ctrl('e')]), (A::ToggleSideBySide, &[ctrl('b')])],
        "cache on/off / with and without the cache side by side",
    ),
    row(
        S::Pane(Pane::Chat),
        &[(A::ToggleRaw, &[ctrl('r')])],
        "raw continuation on/off (off: answers end at their line end)",
    ),
    row(
        S::Pane(Pane::Chat),
        &[(A::ScrollChatUp, &[key(KeyCode::PageUp)]), (A::ScrollChatDown, &[key(KeyCode::PageDown)])],
        "scroll the transcript by five lines",
    ),
    row(
        S::Pane(Pane::Sessions),
        &[(A::LoadSession, &[key(KeyCode::Enter), char('l')]), (A::Save, &[char('s')]), (A::SaveAs, &[char('a')])],
        "load / save / save as",
    ),
    row(
        S::Pane(Pane::Sessions),
        &[(A::RenameSession, &[char('r')]), (A::DeleteSession, &[char('d')])],
        "rename / delete (y confirms)",
    ),
    row(S::Pane(Pane::Sessions), &[(A::RestoreBackup, &[char('b')])], "restore the selected session's previous save"),
    row(S::Pane(Pane::Sessions), &[(A::RefreshSessions, &[char('g')])], "read the list again"),
    row(
        S::LoadFailure,
        &[
            (A::RestoreFailedSession, &[char('b')]),
            (A::SaveFailedSessionAs, &[char('a')]),
            (A::CloseNotice, &[key(KeyCode::Esc)]),
        ],
        "restore the previous save / save as / close the notice",
    ),
];

/// What receives keys now, which decides the scopes searched and their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    LoadFailure,
    Help,
    Input,
    LanguagePicker,
    Confirm,
    ChatInput,
    Pane(Pane),
}

impl Mode {
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Mode::LoadFailure => &[S::Anywhere, S::LoadFailure],
            Mode::Help => &[S::Anywhere, S::Help],
            Mode::Input => &[S::Anywhere, S::Input],
            Mode::LanguagePicker => &[S::Anywhere, S::LanguagePicker],
            Mode::Confirm => &[S::Anywhere, S::Confirm],
            Mode::ChatInput => &[S::Anywhere, S::Panes, S::ChatInput, S::Pane(Pane::Chat)],
            Mode::Pane(Pane::Model) => &[S::Anywhere, S::Panes, S::Browse, S::Pane(Pane::Model), S::Lists],
            Mode::Pane(Pane::Edits) => &[S::Anywhere, S::Panes, S::Browse, S::Pane(Pane::Edits), S::Lists],
            Mode::Pane(Pane::Neurons) => &[S::Anywhere, S::Panes, S::Browse, S::Pane(Pane::Neurons), S::Lists],
            Mode::Pane(Pane::Optimize) => &[S::Anywhere, S::Panes, S::Browse, S::Pane(Pane::Optimize), S::Lists],
            Mode::Pane(Pane::Chat) => {
                &[S::Anywhere, S::Panes, S::Browse, S::Pane(Pane::Chat), S::ChatTranscript, S::Lists]
            }
            Mode::Pane(Pane::Sessions) => &[S::Anywhere, S::Panes, S::Browse, S::Pane(Pane::Sessions), S::Lists],
        }
    }
}

/// The action `key` asks for in `mode`, if any.
pub fn action(mode: Mode, key: KeyEvent) -> Option<Action> {
    mode.scopes().iter().find_map(|&scope| {
        KEYMAP
            .iter()
            .filter(|row| row.scope == scope)
            .flat_map(|row| row.bindings)
            .find_map(|(action, keys)| keys.iter().any(|k| k.matches(key)).then_some(*action))
    })
}

/// The keys bound to `action` in `scope`, as the help names them, for the hints in the panes.
pub fn keys_in(scope: Scope, action: Action) -> Vec<String> {
    let rows = KEYMAP.iter().filter(|row| row.scope == scope);
    let keys = rows.flat_map(|row| row.bindings).filter(|(bound, _)| *bound == action).flat_map(|(_, keys)| *keys);
    keys.map(|key| key.label(false)).collect()
}

/// The first key bound to `action` in `scope`.
pub fn first_key(scope: Scope, action: Action) -> String {
    let keys = keys_in(scope, action);
    keys.into_iter().next().unwrap_or_else(|| panic!("{action:?} has no key in {scope:?}"))
}

impl Row {
    /// The keys as the help shows them: a scope prefix, each action's keys, actions apart by " / ".
    pub fn keys(&self) -> String {
        let keys = match self.keys_label {
            Some(label) => label.to_string(),
            None => self
                .bindings
                .iter()
                .enumerate()
                .map(|(i, (_, keys))| keys.iter().map(|k| k.label(i > 0)).collect::<Vec<_>>().join(", "))
                .collect::<Vec<_>>()
                .join(" / "),
        };
        format!("{}{keys}", self.scope.prefix())
    }
}

/// The help: one (keys, what they do) line per row of the keymap.
pub fn help() -> Vec<(String, &'static str)> {
    KEYMAP.iter().map(|row| (row.keys(), row.does)).collect()
}

/// The README's key table, in Markdown.
pub fn markdown_table() -> String {
    let mut table = String::from("| key | does |\n|---|---|\n");
    for (keys, does) in help() {
        table.push_str(&format!("| {} | {does} |\n", keys.replace('|', "\\|")));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_action() -> Vec<Action> {
        Action::UNIT.iter().copied().chain(Pane::ALL.map(A::GoTo)).collect()
    }

    fn every_mode() -> Vec<Mode> {
        let mut modes =
            vec![Mode::LoadFailure, Mode::Help, Mode::Input, Mode::LanguagePicker, Mode::Confirm, Mode::ChatInput];
        modes.extend(Pane::ALL.map(Mode::Pane));
        modes
    }

    fn event(key: Key) -> Option<KeyEvent> {
        match key {
            Key::Code(code, modifiers) => Some(KeyEvent::new(code, modifiers)),
            Key::Any => None,
        }
    }

    #[test]
    fn every_action_has_a_key() {
        for action in every_action() {
            let bound = KEYMAP.iter().flat_map(|row| row.bindings).any(|(a, keys)| *a == action && !keys.is_empty());
            assert!(bound, "{action:?} has no key");
        }
    }

    /// Each binding does its action in some mode where its scope is live: no earlier binding shadows it.
    #[test]
    fn every_binding_works_somewhere() {
        for row in KEYMAP {
            for (bound, keys) in row.bindings {
                for key in keys.iter().filter_map(|&k| event(k)) {
                    let works = every_mode()
                        .into_iter()
                        .filter(|mode| mode.scopes().contains(&row.scope))
                        .any(|mode| action(mode, key) == Some(*bound));
                    assert!(works, "{key:?} never does {bound:?} ({:?})", row.scope);
                }
            }
        }
    }

    #[test]
    fn no_key_means_two_things_in_one_mode() {
        for mode in every_mode() {
            let mut seen: Vec<(KeyEvent, Action, Scope)> = Vec::new();
            for row in KEYMAP.iter().filter(|row| mode.scopes().contains(&row.scope)) {
                for (bound, keys) in row.bindings {
                    for key in keys.iter().filter_map(|&k| event(k)) {
                        if let Some((_, other, scope)) = seen.iter().find(|(k, a, _)| *k == key && a != bound) {
                            panic!("in {mode:?}, {key:?} is {other:?} ({scope:?}) and {bound:?} ({:?})", row.scope);
                        }
                        seen.push((key, *bound, row.scope));
                    }
                }
            }
        }
    }

    #[test]
    fn help_names_every_key_of_its_row() {
        for (row, (keys, does)) in KEYMAP.iter().zip(help()) {
            assert_eq!(does, row.does);
            if row.keys_label.is_none() {
                for (i, (_, bound)) in row.bindings.iter().enumerate() {
                    for key in bound.iter() {
                        assert!(keys.contains(&key.label(i > 0)), "help line `{keys}` lacks {key:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn pane_numbers_and_function_keys_go_to_their_pane() {
        for (n, pane) in Pane::ALL.into_iter().enumerate() {
            let digit = char::from(b'1' + n as u8);
            let f_key = KeyEvent::new(KeyCode::F(n as u8 + 1), KeyModifiers::NONE);
            let alt_digit = KeyEvent::new(KeyCode::Char(digit), KeyModifiers::ALT);
            assert_eq!(action(Mode::Input, f_key), Some(A::GoTo(pane)), "F-keys work while typing");
            assert_eq!(action(Mode::ChatInput, alt_digit), Some(A::GoTo(pane)));
            assert_eq!(action(Mode::Pane(Pane::Model), KeyEvent::from(KeyCode::Char(digit))), Some(A::GoTo(pane)));
            assert_eq!(action(Mode::ChatInput, KeyEvent::from(KeyCode::Char(digit))), None, "digits type in the chat");
        }
    }

    #[test]
    fn shift_is_part_of_the_character_and_ctrl_is_not() {
        let shifted = KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT);
        assert_eq!(action(Mode::Pane(Pane::Edits), shifted), Some(A::DeleteGroup));
        let ctrl_e = KeyEvent::new(KeyCode::Char('e'), KeyModifiers::CONTROL);
        assert_eq!(action(Mode::Pane(Pane::Edits), ctrl_e), None, "Ctrl-E is not e");
        assert_eq!(action(Mode::ChatInput, ctrl_e), Some(A::ToggleCache));
    }
}
