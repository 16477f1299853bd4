//! The Edits pane's language picker, over the pane: a search line and the languages it finds (code,
//! English and native names, script), those the group has marked.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::{draw_field, row, titled};
use crate::text::languages;
use crate::tui::app::language_picker::{Choice, LanguagePicker};
use crate::tui::app::App;
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::layout;
use crate::tui::text;

/// One row's text: code, names and script in columns, or what adding an unknown code means.
fn describe(choice: &Choice) -> String {
    match choice {
        Choice::Known(language) => format!(
            "{} {} {} {}",
            text::pad(&language.code, 4),
            text::pad(&language.english, 12),
            text::pad(&language.native, 16),
            text::pad(&format!("{:?}", language.script), 10)
        ),
        Choice::Unknown(code) => format!("{} add unknown code `{code}` (generic templates)", text::pad(code, 4)),
    }
}

pub fn render(app: &App, picker: &LanguagePicker, frame: &mut Frame, body: Rect) {
    let [popup, search, list] = layout::language_picker(body);
    let key = |action| keymap::first_key(Scope::LanguagePicker, action);
    let title = format!("Add a language ({} adds, {} closes)", key(Action::PickLanguage), key(Action::ClosePicker));
    let choices = picker.choices();
    let found = choices.iter().filter(|choice| matches!(choice, Choice::Known(_))).count();
    let count = format!(" {found} of {} ", languages::all().len());
    frame.render_widget(Clear, popup);
    frame.render_widget(titled(&title).title_bottom(Line::from(count).right_aligned()), popup);
    draw_field(frame, &picker.search, search.x, search.y, search.width, "search: ");

    let group = app.edits.group_by_id(picker.group_id).map(|g| &g.saved.group);
    let rows = list.height as usize;
    let lines: Vec<Line> = if choices.is_empty() {
        vec![Line::from(format!("no language matches `{}`", picker.search.text())).fg(Color::Gray)]
    } else {
        let offset = picker.offset(rows);
        choices
            .iter()
            .enumerate()
            .skip(offset)
            .take(rows)
            .map(|(i, choice)| {
                let in_group = group.is_some_and(|group| choice.is_in(group));
                let mark = if in_group { " in group" } else { "" };
                let line = row(i == picker.selected, format!("{}{mark}", describe(choice)));
                match choice {
                    _ if in_group => line.style(Style::new().fg(Color::Gray)),
                    Choice::Unknown(_) => line.fg(Color::Yellow),
                    Choice::Known(_) => line,
                }
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), list);
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;

    /// Whatever room the body leaves, the popup is clipped into it, the selection in view (below its
    /// minimum size the frame shows "too small" instead, so this draws the popup alone).
    #[test]
    fn the_popup_fits_any_body() {
        let (app, _) = App::new("gemma-3-270m", "s", "sessions".into());
        let mut picker = LanguagePicker::new(0);
        picker.paste("e");
        picker.move_by(isize::MAX);
        let mut terminal = Terminal::new(TestBackend::new(20, 5)).unwrap();
        for (width, height) in [(20, 5), (20, 3), (5, 2), (1, 1), (0, 0), (3, 0)] {
            terminal.draw(|frame| render(&app, &picker, frame, Rect::new(0, 0, width, height))).unwrap();
        }
        terminal.draw(|frame| render(&app, &picker, frame, frame.area())).unwrap();
        insta::assert_snapshot!(terminal.backend().to_string(), @r#"
        "┌ Add a language (E┐"
        "│search: e         │"
        "│  vi   Vietnamese │"
        "│> zh   Chinese    │"
        "└──────── 34 of 53 ┘"
        "#);
    }
}
