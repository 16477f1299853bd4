//! The Edits pane's language picker (no model): `a` lists the language table, typing searches it by
//! code, alias or name (any case, without diacritics), the keys and the mouse move in it, Enter adds the
//! language and opens its subject; a language the group has is refused, a code the table lacks is added
//! with a warning; tiny terminals do not break it.

mod common;

use std::path::PathBuf;

use common::tui::render;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use lafn::method::{EditDescriptor, EditGroup};
use lafn::session::GroupStatus;
use lafn::text::languages;
use lafn::tui::app::edits::FieldRef;
use lafn::tui::app::{App, Event, InputTarget, Pane};

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle(key(KeyCode::Char(c)));
    }
}

fn wheel(app: &mut App, kind: MouseEventKind, row: u16) {
    app.handle(Event::Mouse(MouseEvent { kind, column: 30, row, modifiers: KeyModifiers::NONE }));
}

/// An English and German group in the Edits pane, located, with the picker open on it.
fn picking() -> App {
    let descriptor = |lang: &str, subject: &str, prompt: &str, target: &str| EditDescriptor {
        lang: lang.into(),
        subject: subject.into(),
        prompt: prompt.into(),
        target: target.into(),
        paraphrases: Vec::new(),
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    };
    let group = EditGroup {
        name: "Eiffel".into(),
        descriptors: vec![
            descriptor("en", "Eiffel Tower", "Where is the Eiffel Tower?", "Rome"),
            descriptor("de", "Eiffelturm", "Wo steht der Eiffelturm?", "Rom"),
        ],
    };
    let (mut app, _) = App::new("gemma-3-270m", "picker", PathBuf::from("sessions"));
    app.handle(Event::Imported(vec![group]));
    app.edits.groups[0].saved.status = GroupStatus::Located;
    app.handle(Event::Resize(80, 24));
    app.handle(key(KeyCode::Char('2')));
    assert_eq!(app.pane, Pane::Edits);
    app.handle(key(KeyCode::Char('a')));
    assert!(app.edits.language_picker.is_some(), "a opens the picker");
    app
}

fn langs(app: &App) -> Vec<String> {
    app.edits.groups[0].saved.group.descriptors.iter().map(|d| d.lang.clone()).collect()
}

fn selected_code(app: &App) -> String {
    let picker = app.edits.language_picker.as_ref().expect("the picker is open");
    picker.selected_choice().expect("a row is selected").code().to_string()
}

#[test]
fn the_picker_lists_the_table_and_marks_the_group_s_languages() {
    let mut app = picking();
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains(&format!("of {}", languages::all().len())), "{screen}");
    insta::assert_snapshot!("picker_80x24", screen);
}

#[test]
fn typing_searches_codes_aliases_and_names_without_case_or_diacritics() {
    let mut app = picking();
    type_text(&mut app, "FRAN");
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains("Français") && screen.contains("1 of"), "{screen}");
    insta::assert_snapshot!("picker_search_80x24", screen);
    app.handle(Event::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    type_text(&mut app, "cestina");
    assert_eq!(selected_code(&app), "cs");
    app.handle(Event::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    app.handle(Event::Paste("cz".into()));
    assert_eq!(selected_code(&app), "cs", "MzsRE's code for Czech");
    app.handle(key(KeyCode::Enter));
    assert_eq!(langs(&app), ["en", "de", "cs"], "the table's code is added");
}

#[test]
fn picking_adds_the_language_and_opens_its_subject() {
    let mut app = picking();
    type_text(&mut app, "ja");
    app.handle(key(KeyCode::Enter));
    assert!(app.edits.language_picker.is_none());
    assert_eq!(langs(&app), ["en", "de", "ja"]);
    assert_eq!(app.edits.groups[0].saved.status, GroupStatus::Draft, "a new language makes a draft");
    assert_eq!(app.message, "added Japanese (ja)");
    let input = app.input.as_ref().expect("the subject is open for typing");
    assert_eq!(input.target, InputTarget::Field(FieldRef::Subject(2)));
    type_text(&mut app, "エッフェル塔");
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.edits.groups[0].saved.group.descriptors[2].subject, "エッフェル塔");
    insta::assert_snapshot!("picker_added_80x24", render(&mut app, 80, 24));
}

#[test]
fn a_language_the_group_has_is_refused() {
    let mut app = picking();
    type_text(&mut app, "de");
    app.handle(key(KeyCode::Enter));
    assert_eq!(langs(&app), ["en", "de"]);
    assert_eq!(app.message, "the group has German (de) already");
    assert!(app.edits.language_picker.is_some(), "the picker stays open for another language");
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains("in group"), "{screen}");
    insta::assert_snapshot!("picker_refused_80x24", screen);
    app.handle(key(KeyCode::Esc));
    assert!(app.edits.language_picker.is_none() && app.input.is_none(), "Esc closes it");
    assert_eq!(langs(&app), ["en", "de"]);
}

#[test]
fn a_code_the_table_lacks_is_added_with_a_warning() {
    let mut app = picking();
    type_text(&mut app, "yo");
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains("add unknown code `yo`"), "{screen}");
    insta::assert_snapshot!("picker_unknown_80x24", screen);
    app.handle(key(KeyCode::Enter));
    assert_eq!(langs(&app), ["en", "de", "yo"]);
    assert!(app.message.starts_with("warning: `yo` is not in the language table"), "{}", app.message);
    // Nothing to add: Enter says so.
    app.handle(key(KeyCode::Esc));
    app.handle(key(KeyCode::Char('a')));
    type_text(&mut app, "Klingon");
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.message, "no language matches `Klingon`");
    assert!(render(&mut app, 80, 24).contains("no language matches `Klingon`"));
}

#[test]
fn keys_and_the_mouse_move_in_the_list() {
    let mut app = picking();
    let all = languages::all();
    app.handle(key(KeyCode::Down));
    assert_eq!(selected_code(&app), all[1].code);
    app.handle(key(KeyCode::End));
    assert_eq!(selected_code(&app), all[all.len() - 1].code);
    app.handle(key(KeyCode::Home));
    assert_eq!(selected_code(&app), all[0].code);
    // At 80x24 the list shows 17 rows: a page.
    app.handle(key(KeyCode::PageDown));
    assert_eq!(selected_code(&app), all[17].code);
    app.handle(key(KeyCode::PageUp));
    app.handle(key(KeyCode::Up));
    assert_eq!(selected_code(&app), all[0].code, "the selection stops at the top");
    // Typing j and k searches; the wheel moves.
    type_text(&mut app, "k");
    assert!(app.edits.language_picker.as_ref().unwrap().search.text() == "k");
    app.handle(key(KeyCode::Backspace));
    wheel(&mut app, MouseEventKind::ScrollDown, 10);
    wheel(&mut app, MouseEventKind::ScrollDown, 10);
    wheel(&mut app, MouseEventKind::ScrollUp, 10);
    assert_eq!(selected_code(&app), all[1].code);
    // The list's first row is screen row 4 (below the tabs, a blank row, the popup's border and the
    // search line); a click selects, a second one adds.
    let click = |app: &mut App| wheel(app, MouseEventKind::Down(crossterm::event::MouseButton::Left), 6);
    click(&mut app);
    assert_eq!(selected_code(&app), all[2].code);
    click(&mut app);
    assert_eq!(langs(&app), ["en", "de", all[2].code.as_str()]);
}

#[test]
fn tiny_terminals_clip_the_picker() {
    let mut app = picking();
    type_text(&mut app, "e");
    insta::assert_snapshot!("picker_60x16", render(&mut app, 60, 16));
    let screen = render(&mut app, 20, 5);
    assert!(screen.contains("too small"), "{screen}");
    // Keys still work, with a page of at least one row.
    app.handle(key(KeyCode::PageDown));
    assert_eq!(app.edits.language_picker.as_ref().unwrap().selected, 1);
    for (width, height) in [(60, 16), (61, 17), (200, 50)] {
        render(&mut app, width, height);
    }
    // Another pane closes the picker.
    app.handle(key(KeyCode::F(1)));
    assert!(app.edits.language_picker.is_none());
}
