//! A backend that keeps the screen right where ratatui and the terminal disagree on a character's width.
//!
//! ratatui lays text out with Unicode's widths (unicode-width), terminals draw with the C library's
//! `wcwidth`, and for a few characters they differ: the spacing vowel signs of Bengali, Oriya, Tamil,
//! Kannada, Malayalam and Sinhala that extend a grapheme (বাংলা: ratatui 3 columns, the terminal 5),
//! the soft hyphen, Hangul fillers. ratatui then writes the next cell one column too far right and
//! leaves old glyphs on screen where its diff skips unchanged cells. This backend moves the cursor
//! explicitly after every such cell and redraws the cells it may have run over, from a copy of the
//! screen, so at worst a vowel sign is clipped; borders, alignment and the rest of the line hold.

use std::collections::HashSet;
use std::io;

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::{Buffer, Cell};
use ratatui::layout::{Position, Rect, Size};
use unicode_width::UnicodeWidthStr;

/// Characters unicode-width counts zero columns wide that `wcwidth` (and so most terminals) draws one
/// column wide: every such code point of Unicode 15/16, found by comparing the two over all of them.
const WIDER_IN_TERMINALS: &[(u32, u32)] = &[
    (0xad, 0xad),
    (0x605, 0x605),
    (0x70f, 0x70f),
    (0x890, 0x891),
    (0x8e2, 0x8e2),
    (0x9be, 0x9be),
    (0x9d7, 0x9d7),
    (0xb3e, 0xb3e),
    (0xb57, 0xb57),
    (0xbbe, 0xbbe),
    (0xbd7, 0xbd7),
    (0xcc0, 0xcc0),
    (0xcc2, 0xcc2),
    (0xcc7, 0xcc8),
    (0xcca, 0xccb),
    (0xcd5, 0xcd6),
    (0xd3e, 0xd3e),
    (0xd4e, 0xd4e),
    (0xd57, 0xd57),
    (0xdcf, 0xdcf),
    (0xddf, 0xddf),
    (0x1715, 0x1715),
    (0x1734, 0x1734),
    (0x1b35, 0x1b35),
    (0x1b3b, 0x1b3b),
    (0x1b3d, 0x1b3d),
    (0x1b43, 0x1b44),
    (0x1baa, 0x1baa),
    (0x1bf2, 0x1bf3),
    (0x302e, 0x302f),
    (0x3164, 0x3164),
    (0xa8fa, 0xa8fa),
    (0xa953, 0xa953),
    (0xa9c0, 0xa9c0),
    (0xffa0, 0xffa0),
    (0x111c0, 0x111c0),
    (0x111c2, 0x111c3),
    (0x11235, 0x11235),
    (0x1133e, 0x1133e),
    (0x1134d, 0x1134d),
    (0x11357, 0x11357),
    (0x114b0, 0x114b0),
    (0x114bd, 0x114bd),
    (0x115af, 0x115af),
    (0x116b6, 0x116b6),
    (0x11930, 0x11930),
    (0x1193d, 0x1193d),
    (0x1193f, 0x1193f),
    (0x11941, 0x11941),
    (0x11a84, 0x11a89),
    (0x11d46, 0x11d46),
    (0x16ff0, 0x16ff1),
    (0x1d165, 0x1d166),
    (0x1d16d, 0x1d172),
];

/// How many more columns a terminal may draw `symbol` (one cell's grapheme) in than ratatui counts.
fn extra_columns(symbol: &str) -> u16 {
    let wider = |c: char| WIDER_IN_TERMINALS.iter().any(|&(first, last)| (first..=last).contains(&(c as u32)));
    symbol.chars().filter(|&c| wider(c)).count() as u16
}

/// `inner` with the fix described in the module documentation.
pub struct WidthSafe<B> {
    inner: B,
    /// What the terminal shows, as ratatui meant it.
    screen: Buffer,
}

impl<B: Backend> WidthSafe<B> {
    pub fn new(inner: B) -> Self {
        Self { inner, screen: Buffer::empty(Rect::ZERO) }
    }
}

/// The cells to draw for `content`, split into runs that each start with an explicit cursor move: a
/// run ends after a cell the terminal may draw wider, and the cells that one may have run over follow
/// it from `screen` (which `content` has been applied to) unless `content` draws them. The same for a
/// cell that replaces such a cell (`replaced[i]` was on screen where `content[i]` goes): what the old
/// one ran over is still on the terminal.
fn runs(screen: &Buffer, content: &[(u16, u16, Cell)], replaced: &[Cell]) -> Vec<Vec<(u16, u16, Cell)>> {
    let drawn: HashSet<(u16, u16)> = content.iter().map(|&(x, y, _)| (x, y)).collect();
    let reach = |x: u16, cell: &Cell| {
        let width = (UnicodeWidthStr::width(cell.symbol()) as u16).max(1);
        (x.saturating_add(width), x.saturating_add(width + extra_columns(cell.symbol())))
    };
    let mut runs = vec![Vec::new()];
    for ((x, y, cell), old) in content.iter().zip(replaced) {
        runs.last_mut().expect("never empty").push((*x, *y, cell.clone()));
        let (own_end, new_reach) = reach(*x, cell);
        let old_reach = reach(*x, old).1;
        let overrun_end = new_reach.max(old_reach);
        if overrun_end <= own_end {
            continue;
        }
        let run: Vec<(u16, u16, Cell)> = (own_end..overrun_end)
            .map(|over| Position::new(over, *y))
            .filter(|&p| screen.area.contains(p) && !drawn.contains(&(p.x, p.y)))
            .map(|p| (p.x, p.y, screen[p].clone()))
            .collect();
        runs.push(run);
        runs.push(Vec::new());
    }
    runs.retain(|run| !run.is_empty());
    runs
}

impl<B: Backend> Backend for WidthSafe<B> {
    type Error = B::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let size = self.inner.size()?;
        let area = Rect::new(0, 0, size.width, size.height);
        if self.screen.area != area {
            self.screen.resize(area);
        }
        let content: Vec<(u16, u16, Cell)> = content.map(|(x, y, cell)| (x, y, cell.clone())).collect();
        let mut replaced = Vec::with_capacity(content.len());
        for (x, y, cell) in &content {
            let slot = self.screen.cell_mut(Position::new(*x, *y));
            replaced.push(slot.map(|slot| std::mem::replace(slot, cell.clone())).unwrap_or_default());
            // The cells a wide character covers are blank in ratatui's buffer, which never sends them.
            for covered in 1..UnicodeWidthStr::width(cell.symbol()) as u16 {
                if let Some(slot) = self.screen.cell_mut(Position::new(x.saturating_add(covered), *y)) {
                    slot.reset();
                }
            }
        }
        for run in runs(&self.screen, &content, &replaced) {
            self.inner.draw(run.iter().map(|(x, y, cell)| (*x, *y, cell)))?;
        }
        Ok(())
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.screen.reset();
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        // What is left on screen is unknown now: every cell counts as blank until drawn again.
        self.screen.reset();
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()
    }
}

/// The terminal's own backend, width-safe.
pub fn stdout_backend() -> WidthSafe<ratatui::backend::CrosstermBackend<io::Stdout>> {
    WidthSafe::new(ratatui::backend::CrosstermBackend::new(io::stdout()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Style;

    fn line(text: &str) -> Buffer {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 12, 1));
        buffer.set_string(0, 0, text, Style::new());
        buffer
    }

    /// What ratatui sends to go from `before` to `after` on screen, made into runs.
    fn drawn(before: &str, after: &str) -> Vec<Vec<(u16, String)>> {
        let (before, after) = (line(before), line(after));
        let content: Vec<(u16, u16, Cell)> =
            before.diff(&after).into_iter().map(|(x, y, c)| (x, y, c.clone())).collect();
        let replaced: Vec<Cell> = content.iter().map(|&(x, y, _)| before[(x, y)].clone()).collect();
        let runs = runs(&after, &content, &replaced);
        runs.iter().map(|run| run.iter().map(|(x, _, c)| (*x, c.symbol().to_string())).collect()).collect()
    }

    #[test]
    fn a_cell_a_terminal_draws_wider_ends_a_run_and_what_it_ran_over_is_drawn_again() {
        // "লা" is one column to ratatui, two to a terminal: the unchanged "|" after it is drawn again.
        assert_eq!(drawn("x|", "লা|"), vec![vec![(0, "লা".to_string())], vec![(1, "|".to_string())]]);
        // "বাংলা": ratatui puts "বাং" (2 columns) at 0 and "লা" at 2; each vowel sign takes a column
        // more in a terminal. The diff draws "লা" next anyway, so it is not repeated; the run after
        // each wider cell starts with a cursor move.
        assert_eq!(
            drawn("ab|", "বাংলা|"),
            vec![vec![(0, "বাং".to_string())], vec![(2, "লা".to_string())], vec![(3, "|".to_string())]]
        );
    }

    #[test]
    fn what_a_wider_cell_ran_over_is_drawn_again_when_it_goes() {
        // The list row "বাংলা" filtered away: blanks replace it, and the columns its vowel signs ran
        // over (blank to ratatui already, so not in its diff) are drawn again.
        let runs = drawn("বাংলা|", "     |");
        let cells: Vec<(u16, String)> = runs.concat();
        for column in 0..4 {
            assert!(cells.iter().any(|(x, s)| *x == column && s == " "), "column {column} is cleared: {cells:?}");
        }
    }

    #[test]
    fn text_whose_widths_agree_is_drawn_in_one_run() {
        for text in ["Marie Curie", "হিন্দি", "हिन्दी", "ไทย", "日本語", "한국어", "ქართ"]
        {
            let runs = drawn("", text);
            assert_eq!(runs.len(), 1, "{text}");
        }
        assert_eq!(extra_columns("\u{ad}"), 1, "the soft hyphen");
        assert_eq!(extra_columns("লা"), 1);
    }
}
