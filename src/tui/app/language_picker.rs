//! The Edits pane's language picker: the language table (code, names, script) searched as the user
//! types, to add a language to a group. A code the table lacks can still be added: its edits get the
//! generic templates (see [`languages::templates`]).

use std::sync::LazyLock;

use crossterm::event::KeyEvent;

use crate::method::EditGroup;
use crate::text::languages::{self, Language};
use crate::text::normalize::{lowercase_chars, strip_diacritics};
use crate::tui::layout::scroll_offset;
use crate::tui::text::TextField;

/// A row of the picker.
#[derive(Debug, Clone)]
pub enum Choice {
    Known(&'static Language),
    /// A code the table lacks, as typed.
    Unknown(String),
}

impl Choice {
    /// The code the group's new language gets.
    pub fn code(&self) -> &str {
        match self {
            Choice::Known(language) => &language.code,
            Choice::Unknown(code) => code,
        }
    }

    /// How messages name the language: "Czech (cs)", or the unknown code.
    pub fn label(&self) -> String {
        match self {
            Choice::Known(language) => format!("{} ({})", language.english, language.code),
            Choice::Unknown(code) => format!("`{code}`"),
        }
    }

    /// Whether `group` has this language already, under any of its codes ("cz" is Czech too).
    pub fn is_in(&self, group: &EditGroup) -> bool {
        group.descriptors.iter().any(|d| match self {
            Choice::Known(language) => languages::find(&d.lang).is_some_and(|found| std::ptr::eq(found, *language)),
            Choice::Unknown(code) => d.lang.eq_ignore_ascii_case(code),
        })
    }
}

#[derive(Debug, Clone)]
pub struct LanguagePicker {
    /// The group the language goes to (by id: indices shift when groups come and go).
    pub group_id: u64,
    pub search: TextField,
    /// Index into [`LanguagePicker::choices`].
    pub selected: usize,
}

/// What the search compares of one language, folded: its codes (code and aliases) and its names.
struct SearchKeys {
    codes: Vec<String>,
    names: [String; 2],
}

static SEARCH_KEYS: LazyLock<Vec<SearchKeys>> = LazyLock::new(|| {
    languages::all()
        .iter()
        .map(|language| SearchKeys {
            codes: std::iter::once(&language.code).chain(&language.aliases).map(|code| fold(code)).collect(),
            names: [fold(&language.english), fold(&language.native)],
        })
        .collect()
});

/// Lowercase, without diacritics: "francais" finds "Français" and "CESTINA" finds "čeština".
fn fold(text: &str) -> String {
    strip_diacritics(&lowercase_chars(text).collect::<String>())
}

impl SearchKeys {
    /// How well the folded `query` matches, best 0; `None` when it does not.
    fn rank(&self, query: &str) -> Option<u8> {
        if self.codes.iter().any(|code| code == query) {
            Some(0)
        } else if self.codes.iter().any(|code| code.starts_with(query)) {
            Some(1)
        } else if self.names.iter().any(|name| name.starts_with(query)) {
            Some(2)
        } else if self.names.iter().any(|name| name.contains(query)) {
            Some(3)
        } else {
            None
        }
    }
}

/// Whether `text` looks like a language code: two or three ASCII letters, maybe with a region or
/// script after "-" or "_" ("yo", "pt-BR", "zh_Hant").
fn looks_like_code(text: &str) -> bool {
    let mut parts = text.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|part| (2..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

impl LanguagePicker {
    pub fn new(group_id: u64) -> Self {
        Self { group_id, search: TextField::default(), selected: 0 }
    }

    /// The languages the search finds, best match first (table order among equals); then, when the
    /// search is a code the table lacks, that code.
    pub fn choices(&self) -> Vec<Choice> {
        let typed = self.search.text().trim();
        let query = fold(typed);
        // A regional code ("pt-BR") finds its language, which no key spells.
        let found = languages::find(typed);
        let mut ranked: Vec<(u8, &'static Language)> = languages::all()
            .iter()
            .zip(SEARCH_KEYS.iter())
            .filter_map(|(language, keys)| {
                let rank = if found.is_some_and(|f| std::ptr::eq(f, language)) { Some(0) } else { keys.rank(&query) };
                rank.map(|rank| (rank, language))
            })
            .collect();
        ranked.sort_by_key(|(rank, _)| *rank);
        let mut choices: Vec<Choice> = ranked.into_iter().map(|(_, language)| Choice::Known(language)).collect();
        if found.is_none() && looks_like_code(typed) {
            choices.push(Choice::Unknown(typed.to_string()));
        }
        choices
    }

    pub fn selected_choice(&self) -> Option<Choice> {
        self.choices().into_iter().nth(self.selected)
    }

    /// Moves the selection by `rows`, stopping at the ends.
    pub fn move_by(&mut self, rows: isize) {
        let last = self.choices().len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(rows).min(last);
    }

    /// First row shown in `rows` rows.
    pub fn offset(&self, rows: usize) -> usize {
        scroll_offset(self.selected, rows)
    }

    pub fn edit_key(&mut self, key: KeyEvent) {
        self.edit_search(|search| {
            search.edit_key(key);
        });
    }

    pub fn paste(&mut self, text: &str) {
        self.edit_search(|search| search.paste(text));
    }

    /// Changes the search; a changed search selects its best match.
    fn edit_search(&mut self, change: impl FnOnce(&mut TextField)) {
        let before = self.search.text().to_string();
        change(&mut self.search);
        if self.search.text() != before {
            self.selected = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(search: &str) -> Vec<String> {
        let mut picker = LanguagePicker::new(0);
        picker.paste(search);
        picker.choices().iter().map(|choice| choice.code().to_string()).collect()
    }

    #[test]
    fn an_empty_search_lists_the_whole_table() {
        assert_eq!(codes("").len(), languages::all().len());
    }

    #[test]
    fn codes_come_before_names_and_case_and_diacritics_do_not_matter() {
        assert_eq!(codes("es")[0], "es", "Spanish before Estonian");
        assert_eq!(codes("CZ"), ["cs"], "an alias finds its language");
        assert_eq!(codes("francais"), ["fr"]);
        assert_eq!(codes("ČEŠTINA"), ["cs"]);
        assert_eq!(codes("cestina"), ["cs"]);
        assert_eq!(codes("pt-BR"), ["pt"], "a regional code finds its language");
        assert!(codes("日本").contains(&"ja".to_string()), "native names in their script");
    }

    #[test]
    fn a_code_the_table_lacks_is_offered_as_typed() {
        assert_eq!(codes(" yo "), ["yo"]);
        assert_eq!(codes("yo-NG"), ["yo-NG"]);
        assert!(codes("Klingon").is_empty(), "not a code");
        assert!(codes("y").iter().all(|code| languages::find(code).is_some()), "one letter is not a code");
    }

    #[test]
    fn the_selection_stops_at_the_ends_and_a_new_search_starts_at_the_top() {
        let mut picker = LanguagePicker::new(0);
        picker.move_by(-3);
        assert_eq!(picker.selected, 0);
        picker.move_by(isize::MAX);
        assert_eq!(picker.selected, languages::all().len() - 1);
        picker.paste("de");
        assert_eq!((picker.selected, picker.selected_choice().map(|c| c.code().to_string())), (0, Some("de".into())));
    }
}
