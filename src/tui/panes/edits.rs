//! Edits pane: the list of edit groups with their status, and a form for the selected group.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{draw_field, input_for, row, titled};
use crate::session::GroupStatus;
use crate::tui::app::edits::FieldRef;
use crate::tui::app::{App, InputTarget};
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::layout::{self, Pane};
use crate::tui::text;

pub fn status_label(status: GroupStatus) -> (&'static str, Color) {
    match status {
        GroupStatus::Draft => ("draft", Color::Gray),
        GroupStatus::Located => ("located", Color::Yellow),
        GroupStatus::Cached => ("cached", Color::Green),
    }
}

/// How "edit all" marks a group in the list, while it runs.
fn queue_label(app: &App, id: u64) -> Option<(&'static str, Color)> {
    let queue = app.edits.queue.as_ref()?;
    if queue.current == Some(id) {
        Some(("active", Color::Cyan))
    } else {
        queue.waits(id).then_some(("queued", Color::Magenta))
    }
}

fn key(action: Action) -> String {
    keymap::first_key(Scope::Pane(Pane::Edits), action)
}

/// The groups with their status (or their place in "edit all"), scrolled to the selected one.
fn render_group_list(app: &App, frame: &mut Frame, area: Rect) {
    let list_title = match &app.edits.queue {
        Some(queue) => format!("Edit all: {}/{} done", queue.done, queue.total),
        None => "Edit groups".into(),
    };
    let block = titled(&list_title);
    let rows = block.inner(area).height as usize;
    let group_lines: Vec<Line> = if app.edits.groups.is_empty() {
        let hint = format!("no groups: {} new, {} import", key(Action::NewGroup), key(Action::Import));
        vec![Line::from(hint).fg(Color::Gray)]
    } else {
        app.edits
            .groups
            .iter()
            .enumerate()
            .skip(app.edits.group_offset(rows))
            .take(rows)
            .map(|(i, g)| {
                let (label, color) = queue_label(app, g.id).unwrap_or_else(|| status_label(g.saved.status));
                let mut line = row(i == app.edits.group_selected, format!("{} ", text::pad(&g.saved.group.name, 14)));
                line.spans
                    .push(Span::styled(format!("{label} {}", g.saved.group.descriptors.len()), Style::new().fg(color)));
                line
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(group_lines).block(block), area);
}

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let [groups, form] = layout::edits(body);
    render_group_list(app, frame, groups);

    let title = format!(
        "Group ({} edits; {}/{} language, {}/{} paraphrase, {} generate, {} locate, {} edit)",
        key(Action::EditField),
        key(Action::AddLanguage),
        key(Action::RemoveLanguage),
        key(Action::AddParaphrase),
        key(Action::RemoveParaphrase),
        key(Action::GenerateParaphrases),
        key(Action::Locate),
        key(Action::Edit)
    );
    let block = titled(&title);
    let inner = block.inner(form);
    frame.render_widget(block, form);
    let fields = app.edits.form_fields();
    if fields.is_empty() {
        let hint = format!(
            "Press {} for a new group or {} to import a JSON/JSONL file.",
            key(Action::NewGroup),
            key(Action::Import)
        );
        frame.render_widget(Paragraph::new(hint), inner);
        return;
    }
    let group = &app.edits.groups[app.edits.group_selected].saved.group;
    let offset = app.edits.form_offset(inner.height as usize);
    for (line_index, field) in fields.iter().enumerate().skip(offset).take(inner.height as usize) {
        let y = inner.y + (line_index - offset) as u16;
        let label = match *field {
            FieldRef::Name => "name       ".to_string(),
            FieldRef::Lang(_) => "── lang    ".to_string(),
            FieldRef::Subject(_) => "   subject ".to_string(),
            FieldRef::Prompt(_) => "   prompt  ".to_string(),
            FieldRef::Target(_) => "   target  ".to_string(),
            FieldRef::Paraphrase(_, k) => format!("   para {:<2} ", k + 1),
        };
        let selected = line_index == app.edits.field_selected;
        if let Some(input) = input_for(app, InputTarget::Field(*field)) {
            draw_field(frame, &input.field, inner.x, y, inner.width, &format!("> {label}"));
            continue;
        }
        let value = app.edits.field_text(*field);
        let value = match field {
            FieldRef::Lang(d) => {
                let descriptor = &group.descriptors[*d];
                let lang = if value.is_empty() { "(empty)" } else { value.as_str() };
                let written = descriptor.written_paraphrases().count();
                // Trained on a completion only, an edit does not answer the question users ask.
                let hint = match descriptor.trains_no_question() {
                    true => format!(" · not a question: add one ({})", key(Action::AddParaphrase)),
                    false => String::new(),
                };
                format!("{lang} — {written} paraphrase{}{hint}", if written == 1 { "" } else { "s" })
            }
            // Template paraphrases hold line breaks ("...?\nAnswer:"); a row shows them as a mark.
            _ => value.replace('\n', " ↵ "),
        };
        let room = (inner.width as usize).saturating_sub(text::width(&label) + 2);
        let mut line = row(selected, format!("{label}{}", text::truncate(&value, room)));
        if matches!(field, FieldRef::Lang(_)) && !selected {
            line = line.bold();
        }
        frame.render_widget(line, Rect::new(inner.x, y, inner.width, 1));
    }
}
