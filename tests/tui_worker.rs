//! The TUI's worker thread on a tiny random model: jobs in, events out, the edit cache on disk.

mod common;

use candle_core::Device;
use lafn::method::cache::EditCache;
use lafn::method::prompts::ParaphraseSettings;
use lafn::method::{EditDescriptor, EditGroup, MethodSettings};
use lafn::runtime::tiny::{write_tiny_model, TinySpec};
use lafn::runtime::Arch;
use lafn::tui::worker::{EditResult, Job, Worker, WorkerEvent};
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
    worker.submit(Job::Edit { group_id: 1, group: group("Oman"), settings: settings(), replaces: Some(old.clone()) });
    let second = edited(finish(&mut events));
    let new = second.cache_entry.expect("cached");
    assert_ne!(new, old);
    assert_eq!(second.replaced.as_deref(), Some(old.as_str()));
    let ids: Vec<&str> = second.cache_rows.iter().map(|row| row.id.as_str()).collect();
    assert_eq!(ids, [new.as_str()]);

    // An entry already gone (removed with `lafn cache rm`) is nothing to replace.
    worker.submit(Job::Edit { group_id: 1, group: group("Oman"), settings: settings(), replaces: Some(old) });
    let third = edited(finish(&mut events));
    assert_eq!((third.cache_entry.as_deref(), third.replaced), (Some(new.as_str()), None));

    // On disk, as another process opens it.
    let store = EditCache::open(&cache_dir, &fingerprint).unwrap();
    assert_eq!(store.list().iter().map(|row| row.id.clone()).collect::<Vec<_>>(), [new]);
}

#[test]
fn generated_paraphrases_follow_the_written_ones_which_stay_as_written_without_blanks() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), TinySpec::new(Arch::Gemma3)).unwrap();
    let (send, mut events) = unbounded_channel();
    let worker = Worker::spawn(Some(dir.path().join("cache")), Device::Cpu, send);
    worker.submit(Job::Load { spec: dir.path().join("model").display().to_string() });
    finish(&mut events);

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
