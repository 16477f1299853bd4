//! Rendering: the frame (tabs, status line, help, "too small"), and one module per pane. Everything here
//! draws from `&App` only; the layout functions are shared with mouse hit-testing in the app.

mod chat;
mod edits;
mod model;
mod neurons;
mod optimize;
mod sessions;

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Input, LoadFailure, Pane};
use super::text::{self, TextField};

/// Smallest terminal the panes are laid out for.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// Every key, as the help popup and the README show them.
pub const KEYS: &[(&str, &str)] = &[
    ("Tab / Shift-Tab", "next / previous pane"),
    ("1..6, F1..F6, Alt-1..6", "go to a pane (digits only when not typing)"),
    ("?", "this help"),
    ("Ctrl-S", "save the session (anywhere)"),
    ("Ctrl-X", "cancel the running job"),
    ("q, Ctrl-C, Ctrl-Q", "quit (the session is saved)"),
    ("Esc", "leave a text field / dismiss an error"),
    ("Up/Down, j/k, mouse", "move in lists; click tabs and rows, wheel scrolls"),
    ("text fields", "Left/Right, Home/End, Backspace/Del, Ctrl-U, Ctrl-Z undo, paste"),
    ("Model: Enter", "load the selected built-in"),
    ("Model: p", "type a local path or HF repo id, Enter loads it"),
    ("Edits: n / i", "new group / import JSON or JSONL (MzsRE records too)"),
    ("Edits: Enter", "edit the field; [ ] or PgUp/PgDn choose the group"),
    ("Edits: a / d", "add / remove a language"),
    ("Edits: p / x", "add / remove a paraphrase"),
    ("Edits: g", "generate paraphrases for the language"),
    ("Edits: l / e / D", "locate / edit / delete the group"),
    ("Neurons: + / -", "beta up / down, recomputed live"),
    ("Neurons: Up/Down, r", "choose a layer; r locates again"),
    ("Optimize: Enter", "change the setting; s starts the edit, c cancels"),
    ("Chat: Enter", "ask; Esc leaves the input, i or Enter returns"),
    ("Chat: Ctrl-E / Ctrl-B", "cache on/off / with and without the cache side by side"),
    ("Chat: Ctrl-R", "raw continuation on/off (off: answers end at their line end)"),
    ("Sessions: Enter / s / a", "load / save / save as"),
    ("Sessions: r / d", "rename / delete (y confirms)"),
    ("Sessions: b", "restore the selected session's previous save"),
    ("Load failed: b / a / Esc", "restore the previous save / save as / close the notice"),
];

pub struct FrameLayout {
    pub tabs: Rect,
    pub body: Rect,
    pub status: Rect,
}

pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

pub fn layout(area: Rect) -> FrameLayout {
    let [tabs, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(area);
    FrameLayout { tabs, body, status }
}

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if too_small(area) {
        let message = format!(
            "Terminal too small: {}x{}, lafn needs {MIN_WIDTH}x{MIN_HEIGHT}. Enlarge it, or Ctrl-C to quit.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(message).wrap(Wrap { trim: true }), area);
        return;
    }
    let layout = layout(area);
    render_tabs(app, frame, layout.tabs);
    match app.pane {
        Pane::Model => model::render(app, frame, layout.body),
        Pane::Edits => edits::render(app, frame, layout.body),
        Pane::Neurons => neurons::render(app, frame, layout.body),
        Pane::Optimize => optimize::render(app, frame, layout.body),
        Pane::Chat => chat::render(app, frame, layout.body),
        Pane::Sessions => sessions::render(app, frame, layout.body),
    }
    render_status(app, frame, layout.status);
    if app.help {
        render_help(frame, layout.body);
    } else if let Some(failure) = app.load_failure.as_ref().filter(|f| f.shown) {
        render_load_failure(failure, frame, layout.body);
    }
}

fn tab_label(index: usize, pane: Pane) -> String {
    format!(" {} {} ", index + 1, pane.title())
}

/// The pane whose tab is at `column`.
pub fn tab_at(tabs: Rect, column: u16) -> Option<Pane> {
    let mut x = tabs.x;
    for (i, pane) in Pane::ALL.iter().enumerate() {
        let w = tab_label(i, *pane).len() as u16 + 1;
        if column >= x && column < x + w {
            return Some(*pane);
        }
        x += w;
    }
    None
}

fn render_tabs(app: &App, frame: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    for (i, pane) in Pane::ALL.iter().enumerate() {
        let style = if *pane == app.pane {
            Style::new().bg(Color::Cyan).fg(Color::Black).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Gray)
        };
        spans.push(Span::styled(tab_label(i, *pane), style));
        spans.push(Span::raw("│"));
    }
    let not_saved = if app.save_refused() { " (not loaded, not saved)" } else { "" };
    let right = format!("session: {}{not_saved} ", app.session_name);
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let room = (area.width as usize).saturating_sub(used);
    if room > text::width(&right) {
        spans.push(Span::raw(" ".repeat(room - text::width(&right))));
        spans.push(Span::styled(right, Style::new().fg(Color::DarkGray)));
    }
    frame.render_widget(Line::from(spans), area);
}

fn render_status(app: &App, frame: &mut Frame, area: Rect) {
    let width = area.width as usize;
    let line = if let Some(error) = &app.error {
        Line::from(Span::styled(text::truncate(&format!("error: {error}  (Esc)"), width), Style::new().fg(Color::Red)))
    } else if let Some(busy) = &app.busy {
        let mut status = format!("⏳ {}", busy.label);
        if !busy.stage.is_empty() {
            status.push_str(&format!(": {}", busy.stage));
        }
        if let Some((done, total)) = busy.bytes {
            status.push_str(&format!(" {:.0}%", percent(done, total)));
        }
        if let Some((step, steps)) = busy.steps {
            status.push_str(&format!(" step {step}/{steps}"));
        }
        status.push_str("  (Ctrl-X cancels)");
        Line::from(Span::styled(text::truncate(&status, width), Style::new().fg(Color::Yellow)))
    } else {
        Line::from(Span::styled(text::truncate(&app.message, width), Style::new().fg(Color::Green)))
    };
    frame.render_widget(line, area);
}

fn render_help(frame: &mut Frame, body: Rect) {
    let area = centered(body, 90, KEYS.len() as u16 + 2);
    let key_width = KEYS.iter().map(|(k, _)| text::width(k)).max().unwrap_or(0);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![Span::styled(format!("{k:key_width$}  "), Style::new().bold()), Span::raw(*what)])
        })
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(titled("Keys (any key closes)")), area);
}

/// A popup of at most `width` x `height` in the middle of `body`.
fn centered(body: Rect, width: u16, height: u16) -> Rect {
    let (width, height) = (body.width.min(width), body.height.min(height));
    Rect::new(body.x + (body.width - width) / 2, body.y + (body.height - height) / 2, width, height)
}

/// Why a session was not loaded and what the user can do, until dismissed.
fn render_load_failure(failure: &LoadFailure, frame: &mut Frame, body: Rect) {
    let area = centered(body, 84, 12);
    let key = |k: &str| Span::styled(format!("{k:>4}  "), Style::new().bold());
    let restore = if failure.has_backup {
        Line::from(vec![key("b"), Span::raw("restore its previous save (session.json.bak)")])
    } else {
        Line::from("      it has no previous save to restore").fg(Color::Gray)
    };
    let lines = vec![
        Line::from(failure.reason.clone()).fg(Color::Red),
        Line::from(""),
        Line::from("Its files are left as they are: nothing is saved over them."),
        restore,
        Line::from(vec![key("a"), Span::raw("save the current work under a new name")]),
        Line::from(vec![key("Esc"), Span::raw("close this notice")]),
    ];
    let title = format!("Session `{}` was not loaded", failure.name);
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(titled(&title)), area);
}

pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (done as f64 / total as f64 * 100.0).min(100.0)
    }
}

pub fn titled(title: &str) -> Block<'_> {
    Block::new().borders(Borders::ALL).title(Span::styled(format!(" {title} "), Style::new().bold()))
}

/// A list row: a marker and highlight when selected.
pub fn row(selected: bool, text: String) -> Line<'static> {
    if selected {
        Line::from(Span::styled(format!("> {text}"), Style::new().bg(Color::DarkGray).bold()))
    } else {
        Line::from(format!("  {text}"))
    }
}

/// Draws a text field in one line of `area` at `y`, placing the terminal cursor in it.
pub fn draw_field(frame: &mut Frame, field: &TextField, x: u16, y: u16, width: u16, label: &str) {
    let area = Rect::new(x, y, width, 1).intersection(frame.area());
    if area.is_empty() {
        return;
    }
    let label_width = text::width(label) as u16;
    let room = area.width.saturating_sub(label_width).max(1);
    let (shown, cursor) = field.visible(room as usize);
    let line = Line::from(vec![
        Span::styled(label.to_string(), Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(shown, Style::new().bg(Color::Blue)),
    ]);
    frame.render_widget(line, area);
    frame.set_cursor_position(Position::new((x + label_width + cursor as u16).min(area.right().saturating_sub(1)), y));
}

/// The open input if it edits `target`.
pub fn input_for(app: &App, target: super::app::InputTarget) -> Option<&Input> {
    app.input.as_ref().filter(|i| i.target == target)
}

/// First row shown so that `selected` is visible in `rows` rows.
pub fn scroll_offset(selected: usize, rows: usize) -> usize {
    selected.saturating_sub(rows.saturating_sub(1))
}

/// The list and item under a click in the body: (which list of the pane, item index).
pub fn hit(app: &App, body: Rect, at: Position) -> Option<(usize, usize)> {
    let lists = match app.pane {
        Pane::Model => model::lists(body),
        Pane::Edits => edits::lists(body),
        Pane::Neurons => neurons::lists(app, body),
        Pane::Optimize => optimize::lists(body),
        Pane::Chat => chat::lists(body),
        Pane::Sessions => sessions::lists(body),
    };
    lists.iter().enumerate().find_map(|(i, (area, offset))| {
        let inner = area.inner(ratatui::layout::Margin::new(1, 1));
        inner.contains(at).then(|| (i, (at.y - inner.y) as usize + offset(app, inner.height as usize)))
    })
}

/// A list area with the function giving its first shown item (from the app and the visible rows).
pub type ListArea = (Rect, fn(&App, usize) -> usize);

/// Lists that always start at the first item.
pub fn no_scroll(_: &App, _: usize) -> usize {
    0
}

/// Formats Unix seconds as a UTC date and time.
pub fn format_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let (h, m) = ((unix % 86_400) / 3600, (unix % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02} {h:02}:{m:02}")
}

/// A shade character for a share in [0, 1].
pub fn shade(share: f32) -> char {
    const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];
    SHADES[((share.clamp(0.0, 1.0) * 4.0).round()) as usize]
}

/// A color from dark blue (0) to yellow (1) for heatmap cells.
pub fn heat(share: f32) -> Color {
    let s = share.clamp(0.0, 1.0);
    Color::Rgb((40.0 + 215.0 * s) as u8, (40.0 + 180.0 * s) as u8, (120.0 - 100.0 * s) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(1_709_210_096), "2024-02-29 12:34");
    }
}
