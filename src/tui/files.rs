//! Session files and imports, off the UI thread: [`FileTasks`] runs the app's file commands one after
//! another on tokio's blocking pool (saves fsync) and sends back the events that answer them.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use super::app::{Command, Event};
use crate::method::EditGroup;
use crate::session::{self, Session};

/// Carries out a session or import command in sessions directory `dir` and returns the event that
/// answers it. Jobs and quitting are the event loop's: they return `None` here.
pub fn run_file_command(command: Command, dir: &Path) -> Option<Event> {
    let failed = |e: color_eyre::Report| {
        log::warn!("{e:#}");
        Some(Event::IoFailed(format!("{e:#}")))
    };
    match command {
        Command::Job(_) | Command::CancelJob | Command::Quit => None,
        Command::SaveSession(mut session) => match session.save(dir) {
            Ok(path) => Some(Event::SessionSaved { name: session.name.clone(), path }),
            Err(e) => failed(e),
        },
        Command::LoadSession(name) => match Session::load(dir, &name) {
            Ok(session) => Some(Event::SessionLoaded(Box::new(session))),
            Err(e) => {
                log::warn!("{e:#}");
                let has_backup = session::backup_exists(dir, &name);
                Some(Event::SessionLoadFailed { name, reason: format!("{e:#}"), has_backup })
            }
        },
        Command::RestoreBackup(name) => match Session::restore_backup(dir, &name) {
            Ok(session) => Some(Event::SessionLoaded(Box::new(session))),
            Err(e) => failed(e),
        },
        Command::RenameSession { from, to } => session::rename(dir, &from, &to).err().and_then(failed),
        Command::DeleteSession(name) => session::delete(dir, &name).err().and_then(failed),
        Command::ListSessions => match session::list_sessions(dir) {
            Ok(list) => Some(Event::SessionsListed(list)),
            Err(e) => failed(e),
        },
        Command::Import(path) => match EditGroup::load_file(&path) {
            Ok(groups) => Some(Event::Imported(groups)),
            Err(e) => failed(e),
        },
    }
}

/// A queue of file commands run in order (a rename before the listing that shows it, one save after
/// another), each answered on `answers`.
pub struct FileTasks {
    queue: UnboundedSender<Command>,
    runner: JoinHandle<()>,
}

impl FileTasks {
    pub fn spawn(dir: PathBuf, answers: UnboundedSender<Event>) -> Self {
        let (queue, mut commands): (_, UnboundedReceiver<Command>) = mpsc::unbounded_channel();
        let runner = tokio::spawn(async move {
            while let Some(command) = commands.recv().await {
                let dir = dir.clone();
                match tokio::task::spawn_blocking(move || run_file_command(command, &dir)).await {
                    Ok(Some(answer)) => {
                        // The loop is gone only after a quit, when answers no longer matter.
                        let _ = answers.send(answer);
                    }
                    Ok(None) => {}
                    Err(e) => log::error!("a file task failed: {e}"),
                }
            }
        });
        Self { queue, runner }
    }

    pub fn run(&self, command: Command) {
        // The runner ends only when the queue is dropped, in `finish`.
        let _ = self.queue.send(command);
    }

    /// Waits until every queued command has run: the session saved on quit is on disk before exit.
    pub async fn finish(self) {
        drop(self.queue);
        if let Err(e) = self.runner.await {
            log::error!("the file tasks stopped: {e}");
        }
    }
}
