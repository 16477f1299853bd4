//! The TUI's worker thread on a tiny random model: jobs in, events out, the edit cache on disk.

mod common;

use std::path::Path;

use candle_core::Device;
use lafn::method::cache::EditCache;
use lafn::method::prompts::ParaphraseSettings;
use lafn::method::{EditDescriptor, EditGroup, MethodSettings};
use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::Arch;
use lafn::session::{GroupStatus, Session, SessionGroup};
use lafn::tui::worker::{EditResult, Job, Replaces, Worker, WorkerEvent};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

fn group(target: &str) -> EditGroup {
    EditGroup {
        name: "tiny".into(),
        descriptors: vec![EditDescriptor {
            lang: "en".into(),
            subject: "Shmavon Shmavonyan".into(),
            prompt: "what country is Shmavon Shmavonyan from ?".into(),
            target: target.into(),
            paraphrases: Vec::new(),
            generated_paraphrases: Vec::new(),
            aliases: Vec::new(),
        }],
    }
}

fn settings() -> Box<MethodSettings> {
    let mut settings = common::tiny_method_settings();
    settings.edit.steps = 3;
    Box::new(settings)
}

/// The events of the next job, up to its Finished (which is left out).
fn finish(events: &mut UnboundedReceiver<WorkerEvent>) -> Vec<WorkerEvent> {
    let mut seen = Vec::new();
    loop {
        match events.blocking_recv().expect("the worker is alive") {
            WorkerEvent::Failed(e) => panic!("{e}"),
            WorkerEvent::Finished => return seen,
            event => seen.push(event),
        }
    }
}

/// A worker with a tiny random model written under `dir` loaded, its edit cache in `dir/cache`.
fn loaded_worker(dir: &Path) -> (Worker, UnboundedReceiver<WorkerEvent>) {
    write_tiny_model(&dir.join("model"), TinySpec::new(Arch::Gemma3)).unwrap();
    let (send, mut events) = unbounded_channel();
    let worker = Worker::spawn(Some(dir.join("cache")), Device::Cpu, send);
    worker.submit(Job::Load { spec: dir.join("model").display().to_string() });
    finish(&mut events);
    (worker, events)
}

fn edited(events: Vec<WorkerEvent>) -> EditResult {
    events
        .into_iter()
        .find_map(|event| match event {
            WorkerEvent::Edited(result) => Some(*result),
            _ => None,
        })
        .expect("the edit reported its result")
}

#[test]
fn re_editing_a_changed_group_replaces_its_entry_once_the_new_one_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), TinySpec::new(Arch::Gemma3)).unwrap();
    let cache_dir = dir.path().join("cache");
    let sessions = dir.path().join("sessions");
    let replacing =
        |entry: &str| Some(Replaces { entry: entry.into(), sessions_dir: sessions.clone(), session: "work".into() });
    let (send, mut events) = unbounded_channel();
    let worker = Worker::spawn(Some(cache_dir.clone()), Device::Cpu, send);
    worker.submit(Job::Load { spec: dir.path().join("model").display().to_string() });
    let fingerprint = finish(&mut events)
        .into_iter()
        .find_map(|event| match event {
            WorkerEvent::ModelLoaded { info, .. } => Some(info.fingerprint),
            _ => None,
        })
        .expect("the model loaded");

    worker.submit(Job::Edit { group_id: 1, group: group("Yemen"), settings: settings(), replaces: None });
    let first = edited(finish(&mut events));
    let old = first.cache_entry.expect("cached");
    assert_eq!(first.replaced, None);

    // The same group with another target: a new entry, and the old one goes.
    worker.submit(Job::Edit { group_id: 1, group: group("Oman"), settings: settings(), replaces: replacing(&old) });
    let second = edited(finish(&mut events));
    let new = second.cache_entry.expect("cached");
    assert_ne!(new, old);
    assert_eq!(second.replaced.as_deref(), Some(old.as_str()));
    let ids: Vec<&str> = second.cache_rows.iter().map(|row| row.id.as_str()).collect();
    assert_eq!(ids, [new.as_str()]);

    // An entry already gone (removed with `lafn cache rm`) is nothing to replace.
    worker.submit(Job::Edit { group_id: 1, group: group("Oman"), settings: settings(), replaces: replacing(&old) });
    let third = edited(finish(&mut events));
    assert_eq!((third.cache_entry.as_deref(), third.replaced), (Some(new.as_str()), None));

    // On disk, as another process opens it.
    let store = EditCache::open(&cache_dir, &fingerprint).unwrap();
    assert_eq!(store.list().iter().map(|row| row.id.clone()).collect::<Vec<_>>(), [new]);
}

/// A session named `name` whose one group links to cache entry `entry`, saved in `dir`.
fn save_session_linking(dir: &Path, name: &str, entry: &str) {
    let mut session = Session::new(name).unwrap();
    session.groups.push(SessionGroup {
        group: group("Yemen"),
        status: GroupStatus::Cached,
        located: None,
        loss_history: Vec::new(),
        cache_entry: Some(entry.into()),
    });
    session.save(dir).unwrap();
}

#[test]
fn an_entry_a_saved_session_may_need_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), TinySpec::new(Arch::Gemma3)).unwrap();
    let sessions = dir.path().join("sessions");
    let (send, mut events) = unbounded_channel();
    let worker = Worker::spawn(Some(dir.path().join("cache")), Device::Cpu, send);
    worker.submit(Job::Load { spec: dir.path().join("model").display().to_string() });
    finish(&mut events);
    let mut edit = |target: &str, replaces: Option<Replaces>| {
        worker.submit(Job::Edit { group_id: 1, group: group(target), settings: settings(), replaces });
        edited(finish(&mut events))
    };
    let replacing =
        |entry: &str| Some(Replaces { entry: entry.into(), sessions_dir: sessions.clone(), session: "work".into() });

    // This session's last save links it: that is what the new edit supersedes, so it goes.
    let yemen = edit("Yemen", None).cache_entry.expect("cached");
    save_session_linking(&sessions, "work", &yemen);
    assert_eq!(edit("Oman", replacing(&yemen)).replaced, Some(yemen.clone()));

    // Saved twice, its backup links it too, and restoring the backup must find it.
    let qatar = edit("Qatar", None).cache_entry.expect("cached");
    save_session_linking(&sessions, "work", &qatar);
    save_session_linking(&sessions, "work", &qatar);
    let kept = edit("Kuwait", replacing(&qatar));
    assert_eq!(kept.replaced, None, "the backup needs it");
    assert!(kept.cache_rows.iter().any(|row| row.id == qatar));

    // Another session, or one that cannot be read, may need it.
    let bahrain = edit("Bahrain", None).cache_entry.expect("cached");
    save_session_linking(&sessions, "copy", &bahrain);
    assert_eq!(edit("Jordan", replacing(&bahrain)).replaced, None, "the copy's");
    std::fs::remove_dir_all(sessions.join("copy")).unwrap();
    std::fs::create_dir(sessions.join("damaged")).unwrap();
    std::fs::write(sessions.join("damaged").join("session.json"), "{").unwrap();
    assert_eq!(edit("Jordan", replacing(&bahrain)).replaced, None, "a damaged session's");
    std::fs::remove_dir_all(sessions.join("damaged")).unwrap();
    assert_eq!(edit("Syria", replacing(&bahrain)).replaced, Some(bahrain));
}

#[test]
fn generated_paraphrases_follow_the_written_ones_which_stay_as_written_without_blanks() {
    let dir = tempfile::tempdir().unwrap();
    let (worker, mut events) = loaded_worker(dir.path());

    let mut descriptor = group("Yemen").descriptors.remove(0);
    descriptor.paraphrases = vec![" Where is he from? ".into(), "   ".into()];
    let settings = ParaphraseSettings { count: 3, ..ParaphraseSettings::default() };
    worker.submit(Job::Paraphrase { group_id: 1, lang_index: 0, descriptor, settings });
    let paraphrases = finish(&mut events)
        .into_iter()
        .find_map(|event| match event {
            WorkerEvent::Paraphrased { paraphrases, .. } => Some(paraphrases),
            _ => None,
        })
        .expect("the paraphrases came back");
    assert_eq!(paraphrases.len(), 3, "{paraphrases:?}");
    assert_eq!(paraphrases[0], "Where is he from?", "the written one, kept though it does not name the subject");
    assert!(paraphrases[1..].iter().all(|p| p.contains("Shmavon Shmavonyan")), "{paraphrases:?}");
}

/// Teaching the gate from the chat: the entry that acted on a question does not once told so, and the
/// worker says what it kept.
#[test]
fn a_question_taught_not_to_ask_an_edit_no_longer_fires_it() {
    use lafn::runtime::PromptFrame;
    use lafn::tui::worker::ChatAnswers;

    let dir = tempfile::tempdir().unwrap();
    let (worker, mut events) = loaded_worker(dir.path());
    worker.submit(Job::Edit { group_id: 1, group: group("Yemen"), settings: settings(), replaces: None });
    let id = edited(finish(&mut events)).cache_entry.expect("cached");
    let query = group("Yemen").descriptors[0].prompt.clone();
    let ask = |events: &mut UnboundedReceiver<WorkerEvent>| {
        let (answers, frame) = (ChatAnswers::WithCache, PromptFrame::Raw);
        worker.submit(Job::Chat { turn: 0, query: query.clone(), answers, max_tokens: 2, raw: false, frame });
        let done = finish(events).into_iter().find_map(|event| match event {
            WorkerEvent::ChatDone { fired, out_of_scope, .. } => Some((fired, out_of_scope)),
            _ => None,
        });
        done.expect("the answer is done")
    };
    let (fired, _) = ask(&mut events);
    assert_eq!(fired.iter().map(|hit| hit.entry_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    worker.submit(Job::Teach { query: query.clone(), hits: fired, asks: false });
    match finish(&mut events).as_slice() {
        [.., WorkerEvent::Taught(lines)] => {
            assert_eq!(lines, &[format!("taught: \"what country is X from ?\" does not ask the fact of {id}")])
        }
        events => panic!("{events:?}"),
    }
    let (fired, out_of_scope) = ask(&mut events);
    assert!(fired.is_empty() && out_of_scope.len() == 1, "{fired:?}");

    // The group changed and edited again: its new entry replaces the old one, lessons and all.
    let sessions_dir = dir.path().join("sessions");
    let replaces = Some(Replaces { entry: id.clone(), sessions_dir, session: "work".into() });
    worker.submit(Job::Edit { group_id: 1, group: group("Oman"), settings: settings(), replaces });
    let result = edited(finish(&mut events));
    assert_eq!(result.replaced.as_deref(), Some(id.as_str()));
    let (fired, out_of_scope) = ask(&mut events);
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(out_of_scope.iter().map(|hit| hit.entry_id.clone()).collect::<Vec<_>>(), [result.cache_entry.unwrap()]);
}
