//! Chat pane: the conversation, each answer with the cache entries that fired; with side by side on, the
//! answers with the cache on the left and without it on the right.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{draw_field, titled};
use crate::tui::app::chat::ChatEntry;
use crate::tui::app::App;
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::layout::{self, Pane};
use crate::tui::text;

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let [transcript, input] = layout::chat(body);
    let on_off = |on: bool| if on { "on" } else { "off" };
    if app.chat.side_by_side {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(transcript);
        render_transcript(app, frame, left, "With the edit cache", Side::WithCache);
        render_transcript(app, frame, right, "Without (unedited model)", Side::WithoutCache);
    } else {
        let side = if app.chat.with_cache { Side::WithCache } else { Side::WithoutCache };
        let key = |action| keymap::first_key(Scope::Pane(Pane::Chat), action);
        let title = format!(
            "Chat: cache {} ({}), side by side off ({}), raw continuation {} ({})",
            on_off(app.chat.with_cache),
            key(Action::ToggleCache),
            key(Action::ToggleSideBySide),
            on_off(app.chat.raw),
            key(Action::ToggleRaw)
        );
        render_transcript(app, frame, transcript, &title, side);
    }
    let title = if app.chat.focused {
        let key = |action| keymap::first_key(Scope::ChatInput, action);
        format!("Ask ({} sends, {} leaves)", key(Action::Ask), key(Action::LeaveChatInput))
    } else {
        let key = |action| keymap::first_key(Scope::ChatTranscript, action);
        format!(
            "Ask ({} to type; {} / {}: the last question asks the edit named / not the one that acted)",
            keymap::keys_in(Scope::ChatTranscript, Action::FocusChatInput).join(" or "),
            key(Action::TeachAsks),
            key(Action::TeachNotAsked)
        )
    };
    let block = titled(&title);
    let inner = block.inner(input);
    frame.render_widget(block, input);
    if app.chat.focused && app.input.is_none() && !app.help {
        draw_field(frame, &app.chat.input, inner.x, inner.y, inner.width, "> ");
    } else {
        frame.render_widget(Line::from(format!("> {}", app.chat.input.text())).fg(Color::Gray), inner);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    WithCache,
    WithoutCache,
}

fn answer(entry: &ChatEntry, side: Side) -> Option<&String> {
    match side {
        Side::WithCache => entry.with_cache.as_ref(),
        Side::WithoutCache => entry.without_cache.as_ref(),
    }
}

fn render_transcript(app: &App, frame: &mut Frame, area: Rect, title: &str, side: Side) {
    let block = titled(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    for entry in &app.chat.entries {
        for (i, part) in text::wrap(&format!("you: {}", entry.user), width).into_iter().enumerate() {
            let _ = i;
            lines.push(Line::from(part).bold());
        }
        let reply = answer(entry, side);
        // A turn asked only the other way shows that answer, labelled.
        let (reply, label) = match (reply, side) {
            (Some(r), _) => (Some(r), "lafn"),
            (None, Side::WithCache) => (entry.without_cache.as_ref(), "lafn (no cache)"),
            (None, Side::WithoutCache) => (entry.with_cache.as_ref(), "lafn (cache)"),
        };
        let reply = reply.map_or("…".to_string(), |r| r.trim().to_string());
        for part in text::wrap(&format!("{label}: {reply}"), width) {
            lines.push(Line::from(part).fg(Color::Cyan));
        }
        if entry.with_cache.is_some() && side == Side::WithCache {
            let fired = match (entry.done, entry.fired.is_empty()) {
                (false, _) => "…".to_string(),
                (true, true) => "none".to_string(),
                (true, false) => entry.fired.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            };
            let read_as = entry.read_as.iter().map(|question| format!("  read as: {question}"));
            for part in std::iter::once(format!("  cache: {fired}")).chain(read_as).flat_map(|l| text::wrap(&l, width))
            {
                lines.push(Line::from(part).style(Style::new().fg(Color::DarkGray)));
            }
        }
    }
    if lines.is_empty() {
        lines.push(Line::from("Ask the model something; answers show which cached edits fired.").fg(Color::Gray));
    }
    let rows = inner.height as usize;
    let end = lines.len().saturating_sub(app.chat.scroll.min(lines.len().saturating_sub(1)));
    let start = end.saturating_sub(rows);
    frame.render_widget(Paragraph::new(lines[start..end].to_vec()), inner);
}
