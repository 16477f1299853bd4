//! The event loop, on tokio as the ratatui async templates run it: one `select!` over terminal input
//! (crossterm's `EventStream`), frame ticks, worker events, file task answers and termination signals.
//! Each event goes through [`App::handle`]; its commands go to the worker (jobs, cancel) or to the file
//! tasks, so nothing here blocks on a model or a disk.

use std::path::Path;
use std::time::Duration;

use color_eyre::eyre::WrapErr;
use crossterm::event::{Event as TerminalEvent, EventStream};
use futures_util::StreamExt;
use ratatui::Terminal;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::app::{App, Command, Event};
use super::files::FileTasks;
use super::panes;
use super::worker::Worker;
use super::Options;
use crate::Result;

/// The screen is redrawn at most this often, and only when something changed.
const FRAME: Duration = Duration::from_millis(40);

/// Runs the app until it quits; the session saved on the way out is on disk when this returns.
pub async fn run(options: &Options) -> Result<()> {
    let mut terminal = Terminal::new(super::width_safe::stdout_backend())?;
    let (session_name, session_exists) = session_to_open(options).await?;
    let (mut app, mut commands) = App::new(&options.model, &session_name, options.sessions_dir.clone());
    let size = terminal.size()?;
    app.handle(Event::Resize(size.width, size.height));
    if session_exists {
        commands.push(Command::LoadSession(session_name));
    }
    let (worker_events, mut from_worker) = mpsc::unbounded_channel();
    let worker = Worker::spawn(options.cache_dir.clone(), options.device.clone(), worker_events);
    let (answers, mut from_files) = mpsc::unbounded_channel();
    let files = FileTasks::spawn(options.sessions_dir.clone(), answers);
    let mut signals = TerminationSignals::register()?;
    let mut input = EventStream::new();
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut outcome = Ok(());
    while !app.quit {
        carry_out(std::mem::take(&mut commands), &worker, &files);
        let event = tokio::select! {
            _ = frames.tick() => {
                if !dirty {
                    continue;
                }
                match terminal.draw(|frame| panes::render(&app, frame)) {
                    Ok(_) => {
                        dirty = false;
                        continue;
                    }
                    // The terminal is gone: save like a quit, then report.
                    Err(e) => {
                        outcome = Err(e).wrap_err("cannot draw on the terminal");
                        Event::Terminate
                    }
                }
            }
            Some(event) = from_worker.recv() => Event::Worker(event),
            Some(event) = from_files.recv() => event,
            read = input.next() => match read {
                Some(Ok(event)) => match app_event(event) {
                    Some(event) => event,
                    None => continue,
                },
                // The terminal is gone (a hang-up can beat its SIGHUP here): save like a quit, then report.
                Some(Err(e)) => {
                    outcome = Err(e).wrap_err("cannot read the terminal");
                    Event::Terminate
                }
                None => {
                    outcome = Err(color_eyre::eyre::eyre!("the terminal closed its input"));
                    Event::Terminate
                }
            },
            name = signals.next() => {
                log::info!("terminated by {name}");
                Event::Terminate
            }
        };
        commands = app.handle(event);
        dirty = true;
    }
    carry_out(commands, &worker, &files);
    files.finish().await;
    outcome
}

/// The session named on the command line, or a fresh `session-N`, and whether it exists on disk.
async fn session_to_open(options: &Options) -> Result<(String, bool)> {
    let (dir, named) = (options.sessions_dir.clone(), options.session.clone());
    let found = tokio::task::spawn_blocking(move || match named {
        // A named session that exists is opened; a new name starts a new session.
        Some(name) => {
            let exists = dir.join(&name).is_dir();
            (name, exists)
        }
        None => (fresh_session_name(&dir), false),
    });
    found.await.wrap_err("cannot look for the session")
}

/// `session-N` with the first N not taken in `dir`.
fn fresh_session_name(dir: &Path) -> String {
    (1..).map(|n| format!("session-{n}")).find(|name| !dir.join(name).exists()).expect("some number is free")
}

fn app_event(event: TerminalEvent) -> Option<Event> {
    match event {
        TerminalEvent::Key(key) => Some(Event::Key(key)),
        TerminalEvent::Mouse(mouse) => Some(Event::Mouse(mouse)),
        TerminalEvent::Paste(text) => Some(Event::Paste(text)),
        TerminalEvent::Resize(w, h) => Some(Event::Resize(w, h)),
        _ => None,
    }
}

/// Sends jobs to the worker and file commands to the file tasks; their answers come back as events.
fn carry_out(commands: Vec<Command>, worker: &Worker, files: &FileTasks) {
    for command in commands {
        match command {
            Command::Job(job) => worker.submit(job),
            Command::CancelJob => worker.cancel(),
            Command::Quit => {}
            file_command => files.run(file_command),
        }
    }
}

/// SIGTERM, SIGHUP (a closed terminal window, a dropped ssh connection) and SIGINT end the loop like a
/// quit instead of killing the process, so the session is saved and the terminal restored (`lafn edit
/// --all` stops between groups on them too).
pub struct TerminationSignals {
    terminate: Signal,
    hangup: Signal,
    interrupt: Signal,
}

impl TerminationSignals {
    /// Takes the signals over from their default (ending the process); needs a tokio runtime with I/O.
    pub fn register() -> Result<Self> {
        let install = |kind| signal(kind).wrap_err("cannot install the signal handlers");
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    /// The name of the next signal received.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
