//! Rendering: the frame (tabs, status line, help, "too small"), and one module per pane. Everything here
//! draws from `&App` only, into the areas of [`layout`].

mod chat;
mod edits;
mod language_picker;
mod model;
mod neurons;
mod optimize;
mod sessions;

use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::sessions::LoadFailure;
use super::app::{App, Input, InputTarget, Pane};
use super::keymap::{self, Action, Scope};
use super::layout::{self, MIN_HEIGHT, MIN_WIDTH};
use super::text::{self, TextField};

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if layout::too_small(area) {
        let message = format!(
            "Terminal too small: {}x{}, lafn needs {MIN_WIDTH}x{MIN_HEIGHT}. Enlarge it, or {} to quit.",
            area.width,
            area.height,
            keymap::first_key(Scope::Anywhere, Action::Quit)
        );
        frame.render_widget(Paragraph::new(message).wrap(Wrap { trim: true }), area);
        return;
    }
    let layout = layout::frame(area);
    render_tabs(app, frame, layout.tabs);
    match app.pane {
        Pane::Model => model::render(app, frame, layout.body),
        Pane::Edits => edits::render(app, frame, layout.body),
        Pane::Neurons => neurons::render(app, frame, layout.body),
        Pane::Optimize => optimize::render(app, frame, layout.body),
        Pane::Chat => chat::render(app, frame, layout.body),
        Pane::Sessions => sessions::render(app, frame, layout.body),
    }
    if let Some(picker) = &app.edits.language_picker {
        language_picker::render(app, picker, frame, layout.body);
    }
    render_status(app, frame, layout.status);
    if app.help {
        render_help(frame, layout.body);
    } else if let Some(failure) = app.sessions.load_failure.as_ref().filter(|f| f.shown) {
        render_load_failure(failure, frame, layout.body);
    }
}

fn render_tabs(app: &App, frame: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    for pane in Pane::ALL {
        let style = if pane == app.pane {
            Style::new().bg(Color::Cyan).fg(Color::Black).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Gray)
        };
        spans.push(Span::styled(layout::tab_label(pane), style));
        spans.push(Span::raw("│"));
    }
    let not_saved = if app.sessions.save_refused() { " (not loaded, not saved)" } else { "" };
    let right = format!("session: {}{not_saved} ", app.sessions.name);
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
    } else if let Some(busy) = &app.jobs.busy {
        let mut status = match &app.edits.queue {
            Some(queue) => format!("⏳ edit all {}/{}: {}", queue.done + 1, queue.total, busy.label),
            None => format!("⏳ {}", busy.label),
        };
        if !busy.stage.is_empty() {
            status.push_str(&format!(": {}", busy.stage));
        }
        if let Some((done, total)) = busy.bytes {
            status.push_str(&format!(" {:.0}%", percent(done, total)));
        }
        if let Some((step, steps)) = busy.steps {
            status.push_str(&format!(" step {step}/{steps}"));
        }
        status.push_str(&format!("  ({} cancels)", keymap::first_key(Scope::Anywhere, Action::Cancel)));
        Line::from(Span::styled(text::truncate(&status, width), Style::new().fg(Color::Yellow)))
    } else {
        Line::from(Span::styled(text::truncate(&app.message, width), Style::new().fg(Color::Green)))
    };
    frame.render_widget(line, area);
}

/// The help popup, printed from the keymap.
fn render_help(frame: &mut Frame, body: Rect) {
    let help = keymap::help();
    let key_width = help.iter().map(|(keys, _)| text::width(keys)).max().unwrap_or(0);
    let width = help.iter().map(|(_, does)| key_width + 2 + text::width(does)).max().unwrap_or(0) + 2;
    let area = layout::centered(body, width as u16, help.len() as u16 + 2);
    let lines: Vec<Line> = help
        .into_iter()
        .map(|(keys, does)| {
            Line::from(vec![Span::styled(format!("{keys:key_width$}  "), Style::new().bold()), Span::raw(does)])
        })
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(titled("Keys (any key closes)")), area);
}

/// Why a session was not loaded and what the user can do, until dismissed.
fn render_load_failure(failure: &LoadFailure, frame: &mut Frame, body: Rect) {
    let area = layout::centered(body, 84, 12);
    let key = |action| {
        Span::styled(format!("{:>4}  ", keymap::keys_in(Scope::LoadFailure, action).join(", ")), Style::new().bold())
    };
    let restore = if failure.has_backup {
        Line::from(vec![key(Action::RestoreFailedSession), Span::raw("restore its previous save (session.json.bak)")])
    } else {
        Line::from("      it has no previous save to restore").fg(Color::Gray)
    };
    let lines = vec![
        Line::from(failure.reason.clone()).fg(Color::Red),
        Line::from(""),
        Line::from("Its files are left as they are: nothing is saved over them."),
        restore,
        Line::from(vec![key(Action::SaveFailedSessionAs), Span::raw("save the current work under a new name")]),
        Line::from(vec![key(Action::CloseNotice), Span::raw("close this notice")]),
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
    // The whole width is marked, so that a field being typed in shows even while it is empty (typing
    // after `n` or adding a language goes straight into the subject).
    let padding = " ".repeat((room as usize).saturating_sub(text::width(&shown)));
    let line = Line::from(vec![
        Span::styled(label.to_string(), Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(shown + &padding, Style::new().bg(Color::Blue)),
    ]);
    frame.render_widget(line, area);
    frame.set_cursor_position(Position::new((x + label_width + cursor as u16).min(area.right().saturating_sub(1)), y));
}

/// The open input if it edits `target`.
pub fn input_for(app: &App, target: InputTarget) -> Option<&Input> {
    app.input.as_ref().filter(|i| i.target == target)
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
