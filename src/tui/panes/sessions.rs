//! Sessions pane: the saved sessions, the current one and where they are stored.

use ratatui::layout::Rect;
use ratatui::style::{Color, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{draw_field, format_time, input_for, row, titled};
use crate::tui::app::{App, InputTarget};
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::layout::{self, Pane};
use crate::tui::text;

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let [list, details] = layout::sessions(body);
    let key = |action| keymap::first_key(Scope::Pane(Pane::Sessions), action);
    let save_anywhere = keymap::first_key(Scope::Anywhere, Action::Save);
    let title = format!("Saved sessions ({} loads)", key(Action::LoadSession));
    let block = titled(&title);
    let inner = block.inner(list);
    frame.render_widget(block, list);
    let mut lines = Vec::new();
    for (i, s) in app.sessions.list.iter().enumerate().skip(app.sessions.list_offset(inner.height as usize)) {
        let when = s.saved_at.map_or("damaged".to_string(), format_time);
        let mut line =
            row(i == app.sessions.selected, format!("{} {when:<16} {:>2} groups", text::pad(&s.name, 16), s.groups));
        if s.damaged.is_some() {
            line = line.fg(Color::Red);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        lines.push(Line::from(format!("no saved sessions yet ({save_anywhere} saves)")).fg(Color::Gray));
    }
    frame.render_widget(Paragraph::new(lines), inner);
    for target in [InputTarget::RenameSession, InputTarget::SaveSessionAs] {
        if let Some(input) = input_for(app, target) {
            let label = if target == InputTarget::RenameSession { "rename to: " } else { "save as: " };
            draw_field(frame, &input.field, inner.x, inner.y + inner.height.saturating_sub(1), inner.width, label);
        }
    }

    let mut info = vec![
        Line::from(format!("current     {}", app.sessions.name)).bold(),
        Line::from(format!("directory   {}", app.sessions.dir.display())),
        Line::from(format!("groups      {}", app.edits.groups.len())),
        Line::from(format!("chat turns  {}", app.chat.entries.len())),
        Line::from(""),
    ];
    if let Some(s) = app.sessions.list.get(app.sessions.selected) {
        info.push(Line::from(format!("selected    {}", s.name)));
        info.push(Line::from(format!("file        {}", s.path.display())));
        if let Some(problem) = &s.damaged {
            info.push(Line::from(format!("damaged: {problem}")).fg(Color::Red));
        }
    }
    info.push(Line::from(""));
    let keys = [
        (Action::Save, "save"),
        (Action::SaveAs, "save as"),
        (Action::RenameSession, "rename"),
        (Action::DeleteSession, "delete"),
        (Action::RefreshSessions, "refresh"),
        (Action::RestoreBackup, "restore previous save"),
    ];
    let keys: Vec<String> = keys.iter().map(|(action, does)| format!("{} {does}", key(*action))).collect();
    info.push(Line::from(keys.join("  ")).fg(Color::Gray));
    info.push(Line::from(format!("{save_anywhere} saves anywhere; quitting saves too")).fg(Color::Gray));
    frame.render_widget(Paragraph::new(info).wrap(Wrap { trim: false }).block(titled("Session")), details);
}
