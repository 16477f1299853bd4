//! The TUI's edit groups and the edit cache: one rule for a changed group, and a session's cache links
//! checked when it loads (the worker's verdicts played by hand; no model).

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lafn::method::cache::{EditStore, MemoryStore, NewEntry};
use lafn::method::scope::ScopeKeys;
use lafn::method::{EditDescriptor, EditGroup, LayerUpdate, LocatedNeurons, MethodSettings, UpdateValues};
use lafn::session::{GroupStatus, Session, SessionGroup};
use lafn::text::languages::other_question_count;
use lafn::tui::app::{App, Command, Event, Pane};
use lafn::tui::worker::{CacheLink, Job, Replaces, WorkerEvent};

const HIDDEN: usize = 4;
const MODEL: &str = "0123456789abcdef";

fn group() -> EditGroup {
    let descriptor = |lang: &str, subject: &str, prompt: &str, target: &str| EditDescriptor {
        lang: lang.into(),
        subject: subject.into(),
        prompt: prompt.into(),
        target: target.into(),
        paraphrases: vec![format!("{prompt} Tell me.")],
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    };
    EditGroup {
        name: "Eiffel".into(),
        descriptors: vec![
            descriptor("en", "Eiffel Tower", "Where is the Eiffel Tower?", "Rome"),
            descriptor("fr", "tour Eiffel", "Où est la tour Eiffel ?", "Rome"),
        ],
    }
}

fn located(neuron: u32) -> LocatedNeurons {
    LocatedNeurons {
        langs: vec!["en".into(), "fr".into()],
        layers: Vec::new(),
        selected: BTreeMap::from([(1, vec![neuron])]),
        frequencies: BTreeMap::from([(1, vec![vec![1.0, 1.0]])]),
    }
}

/// Stores an edit of `group` located at neuron 7; returns the entry's id.
fn store_edit(store: &mut MemoryStore, group: &EditGroup) -> String {
    let zeros = Tensor::zeros((1, HIDDEN), DType::F32, &Device::Cpu).unwrap();
    let update = UpdateValues { layers: vec![LayerUpdate { layer: 1, neurons: vec![7], delta: zeros.clone() }] };
    let other_relations = Tensor::zeros((other_question_count(), HIDDEN), DType::F32, &Device::Cpu).unwrap();
    let keys = ScopeKeys { layer: 2, read_from: Some(1), keys: zeros.clone(), other_relations };
    let (located, settings) = (located(7), MethodSettings::default());
    let edit = NewEntry {
        group,
        located: &located,
        update: &update,
        settings: &settings,
        loss_history: &[],
        scope_keys: &keys,
    };
    store.insert(edit).unwrap()
}

/// A store holding an edit of [`group`], and its entry's id.
fn store_with_edit() -> (MemoryStore, String) {
    let mut store = MemoryStore::new(MODEL);
    let id = store_edit(&mut store, &group());
    (store, id)
}

/// A session of groups [`group`], each saved as cached under one of `entries`, located at `neuron`.
fn cached_session(entries: &[&str], neuron: u32) -> Session {
    let mut session = Session::new("s").unwrap();
    session.model = Some("gemma-3-270m".into());
    for entry in entries {
        session.groups.push(SessionGroup {
            group: group(),
            status: GroupStatus::Cached,
            located: Some(located(neuron)),
            loss_history: Vec::new(),
            cache_entry: Some(entry.to_string()),
        });
    }
    session
}

/// An app with a session loaded whose one group was saved as cached under `entry_id`, located at neuron 1
/// (a copy that disagrees with the entry's neuron 7); returns the check job's links.
fn app_with_cached_session(entry_id: &str) -> (App, Vec<CacheLink>) {
    let (mut app, _) = App::new("gemma-3-270m", "s", PathBuf::from("sessions"));
    let commands = app.handle(Event::SessionLoaded(Box::new(cached_session(&[entry_id], 1))));
    let links = commands
        .into_iter()
        .find_map(|c| match c {
            Command::Job(Job::CheckCacheEntries { links }) => Some(links),
            _ => None,
        })
        .expect("a loaded session's cache links are checked");
    (app, links)
}

/// The verdicts the worker would send for `links` against `store`.
fn check(app: &mut App, store: &dyn EditStore, links: Vec<CacheLink>) {
    let verdicts = links
        .into_iter()
        .map(|link| {
            let verdict = lafn::session::check_cache_entry(store, &link.entry_id, &link.group);
            (link, verdict.map(Box::new).map_err(|e| format!("{e:#}")))
        })
        .collect();
    app.handle(Event::Worker(WorkerEvent::CacheEntriesChecked(verdicts)));
}

#[test]
fn a_checked_entry_replaces_the_sessions_copy() {
    let (store, id) = store_with_edit();
    let (mut app, links) = app_with_cached_session(&id);
    assert_eq!(links, vec![CacheLink { group_id: app.edits.groups[0].id, entry_id: id.clone(), group: group() }]);
    check(&mut app, &store, links);
    let saved = &app.edits.groups[0].saved;
    assert_eq!((saved.status, saved.cache_entry.as_ref()), (GroupStatus::Cached, Some(&id)));
    assert_eq!(saved.located, Some(located(7)), "the entry's neurons, not the session's copy");
    assert_eq!(app.error, None);
}

#[test]
fn a_missing_entry_or_another_models_cache_leaves_the_group_needing_a_re_edit() {
    let (mut app, links) = app_with_cached_session("eiffel-00000000");
    check(&mut app, &MemoryStore::new("fedcba9876543210"), links);
    let saved = &app.edits.groups[0].saved;
    assert_eq!((saved.status, saved.cache_entry.as_ref()), (GroupStatus::Located, None));
    let error = app.error.clone().unwrap();
    assert!(error.contains("`Eiffel` is not cached any more, edit it again") && error.contains("eiffel-00000000"));
    // Saved again, the session no longer claims the entry.
    assert_eq!(app.session().groups[0].cache_entry, None);
}

#[test]
fn an_entry_of_other_facts_is_not_the_groups_edit() {
    // The session links the group to an entry that holds other facts (edited since, saved elsewhere).
    let mut store = MemoryStore::new(MODEL);
    let mut other = group();
    other.descriptors[0].target = "Paris".into();
    let id = store_edit(&mut store, &other);
    let (mut app, links) = app_with_cached_session(&id);
    check(&mut app, &store, links);
    assert_eq!(app.edits.groups[0].saved.status, GroupStatus::Located);
    assert!(app.error.clone().unwrap().contains("edited since"));
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Retypes form line `field` of the selected group as `text`.
fn retype(app: &mut App, field: usize, text: &str) {
    app.pane = Pane::Edits;
    app.edits.field_selected = field;
    app.handle(key(KeyCode::Enter));
    app.handle(key(KeyCode::End));
    app.handle(Event::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    for c in text.chars() {
        app.handle(key(KeyCode::Char(c)));
    }
    app.handle(key(KeyCode::Enter));
}

#[test]
fn one_rule_for_a_changed_group_renaming_keeps_the_edit_new_facts_drop_it() {
    let (store, id) = store_with_edit();
    let (mut app, links) = app_with_cached_session(&id);
    check(&mut app, &store, links);

    retype(&mut app, 0, "Tour Eiffel");
    let saved = &app.edits.groups[0].saved;
    assert_eq!(saved.group.name, "Tour Eiffel");
    assert_eq!((saved.status, saved.cache_entry.as_ref()), (GroupStatus::Cached, Some(&id)), "a label only");

    // Generated paraphrases are new facts too (they are located with): the same rule as typing.
    let group_id = app.edits.groups[0].id;
    let paraphrases = vec!["Where can the Eiffel Tower be found?".to_string()];
    app.handle(Event::Worker(WorkerEvent::Paraphrased { group_id, lang_index: 0, paraphrases }));
    let saved = &app.edits.groups[0].saved;
    assert_eq!((saved.status, saved.cache_entry.as_ref(), saved.located.as_ref()), (GroupStatus::Draft, None, None));
    assert!(saved.loss_history.is_empty());
}

/// The `replaces` of the edit job that pressing `e` on group `selected` submits, in a session whose
/// groups link to `entries`.
fn replaces_on_edit(entries: &[&str], selected: usize) -> Option<Replaces> {
    let (mut app, _) = App::new("gemma-3-270m", "s", PathBuf::from("sessions"));
    app.handle(Event::SessionLoaded(Box::new(cached_session(entries, 7))));
    app.pane = Pane::Edits;
    app.edits.group_selected = selected;
    let commands = app.handle(Event::Key(KeyEvent::new(KeyCode::Char('e'), KeyModifiers::NONE)));
    commands
        .into_iter()
        .find_map(|c| match c {
            Command::Job(Job::Edit { replaces, .. }) => Some(replaces),
            _ => None,
        })
        .expect("e submits the edit")
}

#[test]
fn an_edit_replaces_the_groups_earlier_entry_unless_another_group_links_to_it() {
    // Whether a saved session may still need it is the worker's to check (tests/tui_worker.rs): it
    // gets the sessions' directory and this session's name.
    let own = Replaces { entry: "own".into(), sessions_dir: PathBuf::from("sessions"), session: "s".into() };
    assert_eq!(replaces_on_edit(&["shared", "shared", "own"], 2), Some(own));
    assert_eq!(replaces_on_edit(&["shared", "shared", "own"], 0), None, "the other group's edit");
}
