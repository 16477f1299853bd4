//! A one-line text field: the cursor moves by grapheme (so a Thai vowel mark or an emoji with a skin tone
//! is one step), widths come from Unicode (a CJK character takes two columns), with paste and undo.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Undo keeps at most this many earlier states.
const UNDO_DEPTH: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextField {
    text: String,
    /// Byte offset of the cursor, always on a grapheme boundary.
    cursor: usize,
    undo: Vec<(String, usize)>,
}

impl TextField {
    pub fn new(text: &str) -> Self {
        Self { text: text.to_string(), cursor: text.len(), undo: Vec::new() }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Applies an editing key (typing, deleting, moving, Ctrl-Z undo, Ctrl-U, Ctrl-A home); returns
    /// whether the key was one. Ctrl-E (end) is left to the caller: the chat uses it for the cache.
    pub fn edit_key(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('z') if ctrl => self.undo(),
            KeyCode::Char('u') if ctrl => self.clear_before_cursor(),
            KeyCode::Char('a') if ctrl => self.home(),
            KeyCode::Char(c) if !ctrl => self.insert(c),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.left(),
            KeyCode::Right => self.right(),
            KeyCode::Home => self.home(),
            KeyCode::End => self.end(),
            _ => return false,
        }
        true
    }

    /// Replaces the whole text (undoable), cursor at the end.
    pub fn set(&mut self, text: &str) {
        self.remember();
        self.text = text.to_string();
        self.cursor = self.text.len();
    }

    pub fn insert(&mut self, c: char) {
        self.remember();
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Pastes text; line breaks become spaces (the field is one line).
    pub fn paste(&mut self, pasted: &str) {
        self.remember();
        let flat: String = pasted.chars().map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c }).collect();
        self.text.insert_str(self.cursor, &flat);
        self.cursor += flat.len();
    }

    pub fn backspace(&mut self) {
        if let Some(start) = self.previous_boundary() {
            self.remember();
            self.text.replace_range(start..self.cursor, "");
            self.cursor = start;
        }
    }

    pub fn delete(&mut self) {
        if let Some(end) = self.next_boundary() {
            self.remember();
            self.text.replace_range(self.cursor..end, "");
        }
    }

    pub fn left(&mut self) {
        if let Some(start) = self.previous_boundary() {
            self.cursor = start;
        }
    }

    pub fn right(&mut self) {
        if let Some(end) = self.next_boundary() {
            self.cursor = end;
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Deletes from the start of the line to the cursor (Ctrl-U).
    pub fn clear_before_cursor(&mut self) {
        if self.cursor > 0 {
            self.remember();
            self.text.replace_range(..self.cursor, "");
            self.cursor = 0;
        }
    }

    pub fn undo(&mut self) {
        if let Some((text, cursor)) = self.undo.pop() {
            self.text = text;
            self.cursor = cursor;
        }
    }

    /// Display columns of the text before the cursor.
    pub fn cursor_column(&self) -> usize {
        self.text[..self.cursor].width()
    }

    /// The part of the text to show in `width` columns so that the cursor is visible, and the cursor's
    /// column within it.
    pub fn visible(&self, width: usize) -> (String, usize) {
        let width = width.max(1);
        let mut skipped = 0;
        let mut shown = String::new();
        let mut cursor_col = self.cursor_column();
        // Scroll whole graphemes off the left until the cursor fits.
        let mut graphemes = self.text.grapheme_indices(true).peekable();
        while cursor_col >= width {
            match graphemes.next() {
                Some((_, g)) => {
                    skipped += g.len();
                    cursor_col -= g.width();
                }
                None => break,
            }
        }
        let mut used = 0;
        for (_, g) in self.text[skipped..].grapheme_indices(true) {
            let w = g.width();
            if used + w > width {
                break;
            }
            shown.push_str(g);
            used += w;
        }
        (shown, cursor_col)
    }

    fn remember(&mut self) {
        if self.undo.len() == UNDO_DEPTH {
            self.undo.remove(0);
        }
        self.undo.push((self.text.clone(), self.cursor));
    }

    fn previous_boundary(&self) -> Option<usize> {
        self.text[..self.cursor].grapheme_indices(true).next_back().map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..].graphemes(true).next().map(|g| self.cursor + g.len())
    }
}

/// Display width of a string in terminal columns.
pub fn width(text: &str) -> usize {
    text.width()
}

/// `text` cut to at most `max` columns (whole graphemes), with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in text.graphemes(true) {
        let w = g.width();
        if used + w + 1 > max {
            break;
        }
        out.push_str(g);
        used += w;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// `text` cut or padded with spaces to exactly `columns` columns.
pub fn pad(text: &str, columns: usize) -> String {
    let mut out = truncate(text, columns);
    out.push_str(&" ".repeat(columns.saturating_sub(out.width())));
    out
}

/// Greedy word wrap to `max` columns; words wider than a line are cut by grapheme.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut used = 0;
        for word in paragraph.split_word_bounds() {
            let w = word.width();
            if used + w > max && !line.is_empty() {
                lines.push(std::mem::take(&mut line).trim_end().to_string());
                used = 0;
                if word.trim().is_empty() {
                    continue;
                }
            }
            if w > max {
                for g in word.graphemes(true) {
                    let gw = g.width();
                    if used + gw > max {
                        lines.push(std::mem::take(&mut line));
                        used = 0;
                    }
                    line.push_str(g);
                    used += gw;
                }
            } else {
                line.push_str(word);
                used += w;
            }
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thai_and_cjk_move_by_grapheme_and_measure_by_width() {
        // "กี่" is one grapheme of three code points; 北京 is four columns wide.
        let mut field = TextField::new("กี่北京");
        assert_eq!(field.cursor_column(), 5);
        field.left();
        field.left();
        assert_eq!(field.cursor_column(), 1);
        field.backspace();
        assert_eq!(field.text(), "北京");
        field.end();
        field.insert('!');
        field.paste("a\nb");
        assert_eq!(field.text(), "北京!a b");
        field.undo();
        field.undo();
        assert_eq!(field.text(), "北京");
        field.undo();
        assert_eq!(field.text(), "กี่北京");
    }

    #[test]
    fn visible_window_keeps_the_cursor_in_view() {
        let field = TextField::new("汉字汉字汉字");
        let (shown, col) = field.visible(5);
        assert!(width(&shown) <= 5 && col < 5, "{shown} {col}");
        assert_eq!(truncate("汉字汉字", 5), "汉字…");
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(pad("北京 trip", 12), "北京 trip   ");
    }

    #[test]
    fn wrap_breaks_at_words_and_cuts_long_runs() {
        assert_eq!(wrap("the capital of France", 10), vec!["the", "capital of", "France"]);
        assert_eq!(wrap("汉字汉字汉字", 4), vec!["汉字", "汉字", "汉字"]);
        assert!(wrap("a\nb", 5).len() == 2);
    }
}
