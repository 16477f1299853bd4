//! The Edits pane's "edit all" (the worker played by hand; no model): every group not cached yet is
//! queued and edited one job at a time, in order, other jobs in between; a group that fails does not stop
//! the queue; the list and the status line show where it is; cancel stops the running edit and empties
//! the queue.

mod common;

use std::path::PathBuf;

use common::tui::render;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lafn::method::{EditGroup, LocatedNeurons, OptimizeStep, StopReason};
use lafn::session::GroupStatus;
use lafn::tui::app::{App, Command, Event, Pane};
use lafn::tui::worker::{EditResult, Job, WorkerEvent};

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn worker(app: &mut App, event: WorkerEvent) -> Vec<Command> {
    app.handle(Event::Worker(event))
}

/// The groups whose edit jobs `commands` submit.
fn edits(commands: &[Command]) -> Vec<u64> {
    let edit_of = |command: &Command| match command {
        Command::Job(Job::Edit { group_id, .. }) => Some(*group_id),
        _ => None,
    };
    commands.iter().filter_map(edit_of).collect()
}

/// The twenty MzsRE dev sample records imported into the Edits pane, the load at start still running;
/// the second group cached already, the fourth without a target.
fn imported() -> App {
    let (mut app, _) = App::new("gemma-3-270m", "bulk", PathBuf::from("sessions"));
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mzsre.dev-sample.jsonl");
    app.handle(Event::Imported(EditGroup::load_file(file.as_ref()).unwrap()));
    app.pane = Pane::Edits;
    app.edits.groups[1].saved.status = GroupStatus::Cached;
    app.edits.groups[3].saved.group.descriptors[0].target.clear();
    app
}

fn step(step: usize, langs: usize) -> OptimizeStep {
    let fraction = step as f32 / 40.0;
    OptimizeStep {
        step,
        target_loss: 6.0 * (1.0 - fraction),
        kl_loss: 0.1 * fraction,
        total_loss: 6.0 * (1.0 - fraction) + 0.05 * fraction,
        target_probs: vec![fraction; langs],
        all_correct: false,
        target_margins: vec![fraction - 0.5; langs],
    }
}

/// The worker runs the edit of `group_id`: started, `steps` steps, then (`cached`) a result or a failure.
fn run_edit(app: &mut App, group_id: u64, steps: usize, cached: bool) -> Vec<Command> {
    let group = app.edits.group_by_id(group_id).unwrap().saved.group.clone();
    worker(app, WorkerEvent::Started(format!("editing `{}`", group.name)));
    worker(app, WorkerEvent::Stage("optimizing 96 neurons in layers [7, 11]".into()));
    for k in 0..steps {
        worker(app, WorkerEvent::Step { group_id, step: step(k, group.descriptors.len()) });
    }
    if !cached {
        worker(app, WorkerEvent::Failed(format!("editing `{}` failed: the loss diverged", group.name)));
        return worker(app, WorkerEvent::Finished);
    }
    let located = no_neurons();
    let result = EditResult {
        group_id,
        group,
        located,
        history: Vec::new(),
        stop: StopReason::Converged,
        cache_entry: Some(format!("entry-{group_id}")),
        replaced: None,
        shared_subject_notes: Vec::new(),
        cache_rows: Vec::new(),
        seconds: 14.6,
    };
    worker(app, WorkerEvent::Edited(Box::new(result)));
    worker(app, WorkerEvent::Finished)
}

/// What the played worker reports as located: nothing (these tests never draw the Neurons pane).
fn no_neurons() -> LocatedNeurons {
    LocatedNeurons {
        langs: Vec::new(),
        layers: Vec::new(),
        selected: Default::default(),
        frequencies: Default::default(),
    }
}

#[test]
fn edit_all_queues_the_groups_not_cached_and_edits_them_one_at_a_time() {
    let mut app = imported();
    let ids: Vec<u64> = app.edits.groups.iter().map(|g| g.id).collect();
    let commands = app.handle(key('E'));
    assert_eq!(edits(&commands), [ids[0]], "one edit job at a time");
    assert_eq!(app.edits.queue.as_ref().unwrap().total, 19, "the cached group is not queued");
    assert_eq!(app.jobs.pending(), 2, "the load at start, then the edit");

    // The load ends first: the queue waits for its own edit.
    assert!(edits(&worker(&mut app, WorkerEvent::Finished)).is_empty());
    assert!(edits(&app.handle(key('e'))).is_empty(), "no single edit while the queue runs");
    assert!(app.error.take().unwrap().contains("edit all is running"));

    let commands = run_edit(&mut app, ids[0], 3, true);
    assert_eq!(edits(&commands), [ids[2]], "the cached second group is passed over");
    assert_eq!(app.edits.groups[0].saved.status, GroupStatus::Cached);

    // A failed edit and a group that is not valid are counted, and the queue goes on.
    let commands = run_edit(&mut app, ids[2], 1, false);
    assert_eq!(edits(&commands), [ids[4]]);
    assert!(app.error.as_ref().unwrap().contains("passed over"), "{:?}", app.error);
    let queue = app.edits.queue.as_ref().unwrap();
    assert_eq!((queue.done, queue.failed, queue.current), (3, 2, Some(ids[4])));
    assert_eq!(app.optimize.editing_group, Some(ids[4]), "the Optimize pane follows the queue");

    // Progress: n of N and the current group, in the status line and the list.
    app.error = None;
    let name = app.edits.groups[4].saved.group.name.clone();
    worker(&mut app, WorkerEvent::Started(format!("editing `{name}`")));
    worker(&mut app, WorkerEvent::Step { group_id: ids[4], step: step(5, 12) });
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains(&format!("edit all 4/19: editing `{name}`")), "{screen}");
    assert!(screen.contains("step 5/") && screen.contains("Edit all: 3/19 done"), "{screen}");

    // Cancel: the running edit is cancelled and the queue emptied; its cancelled result starts nothing.
    let commands = app.handle(Event::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL)));
    assert!(matches!(commands[..], [Command::CancelJob]), "{commands:?}");
    assert!(app.edits.queue.is_none());
    assert!(app.message.contains("edit all cancelled: 1 of 19 cached"), "{}", app.message);
    let group = app.edits.groups[4].saved.group.clone();
    let located = no_neurons();
    let cancelled = EditResult {
        group_id: ids[4],
        group,
        located,
        history: Vec::new(),
        stop: StopReason::Cancelled,
        cache_entry: None,
        replaced: None,
        shared_subject_notes: Vec::new(),
        cache_rows: Vec::new(),
        seconds: 3.0,
    };
    worker(&mut app, WorkerEvent::Edited(Box::new(cancelled)));
    assert!(edits(&worker(&mut app, WorkerEvent::Finished)).is_empty());
    assert!(app.edits.queue.is_none());
}

#[test]
fn a_queue_runs_to_its_end() {
    let mut app = imported();
    app.edits.groups.truncate(3);
    let ids: Vec<u64> = app.edits.groups.iter().map(|g| g.id).collect();
    worker(&mut app, WorkerEvent::Finished);
    assert_eq!(edits(&app.handle(key('E'))), [ids[0]]);
    assert_eq!(edits(&run_edit(&mut app, ids[0], 2, true)), [ids[2]]);
    assert!(run_edit(&mut app, ids[2], 2, true).is_empty());
    assert!(app.edits.queue.is_none());
    assert_eq!(app.message, "edit all done: 2 cached, 0 failed, of 2");
    app.handle(key('E'));
    assert_eq!(app.message, "every group is cached: nothing to edit");
}

#[test]
fn edits_pane_while_edit_all_runs() {
    let mut app = imported();
    let ids: Vec<u64> = app.edits.groups.iter().map(|g| g.id).collect();
    worker(&mut app, WorkerEvent::Finished);
    app.handle(key('E'));
    run_edit(&mut app, ids[0], 2, true);
    run_edit(&mut app, ids[2], 1, false);
    app.error = None;
    let name = app.edits.groups[4].saved.group.name.clone();
    worker(&mut app, WorkerEvent::Started(format!("editing `{name}`")));
    worker(&mut app, WorkerEvent::Stage("optimizing 96 neurons in layers [7, 11]".into()));
    worker(&mut app, WorkerEvent::Step { group_id: ids[4], step: step(12, 12) });
    app.edits.group_selected = 4;
    insta::assert_snapshot!("edits_edit_all_80x24", render(&mut app, 80, 24));
}
