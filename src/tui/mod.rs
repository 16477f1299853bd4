//! The terminal UI: a thin client of the library.
//!
//! - [`app`]: pure state and input handling (`App::handle(event) -> Vec<Command>`), no I/O;
//! - [`panes`]: rendering from `&App`, one module per pane;
//! - [`worker`]: a thread owning the models and the edit cache, running long jobs with progress events;
//! - this module: the terminal loop (raw mode, alternate screen, mouse), running the app's commands, and a
//!   guard that restores the terminal on every exit path, panics included. SIGTERM, SIGHUP and SIGINT
//!   end the loop like a quit (the session is saved). Logs go to a file.

pub mod app;
pub mod panes;
pub mod text;
pub mod worker;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::WrapErr;
use crossterm::event::{
    self as terminal_event, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TerminalEvent,
};
use crossterm::execute;
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::method::EditGroup;
use crate::session::{self, Session};
use crate::Result;
use app::{App, Command, Event};
use worker::{Worker, WorkerEvent};

/// How the TUI starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model spec loaded at start.
    pub model: String,
    pub sessions_dir: PathBuf,
    /// Replaces the model's default edit cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Session to open at start (a new one if it does not exist); without one, a new `session-N`.
    pub session: Option<String>,
    /// Where the log file goes.
    pub log_file: PathBuf,
}

/// Runs the TUI until the user quits.
pub fn run(options: Options) -> Result<()> {
    init_logging(&options.log_file)?;
    log::info!("lafn TUI starting: {options:?}");
    install_panic_hook();
    let signals = TerminationSignals::register()?;
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    let (events, worker_events) = mpsc::channel();
    let worker = Worker::spawn(options.cache_dir.clone(), events);
    let result = event_loop(&mut terminal, &options, &worker, &worker_events, &signals.received);
    drop(worker);
    if let Err(e) = &result {
        log::error!("TUI stopped: {e:#}");
    }
    result
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    options: &Options,
    worker: &Worker,
    worker_events: &Receiver<WorkerEvent>,
    terminate: &AtomicBool,
) -> Result<()> {
    let session_name = match &options.session {
        Some(name) => name.clone(),
        None => fresh_session_name(&options.sessions_dir),
    };
    let (mut app, commands) = App::new(&options.model, &session_name, options.sessions_dir.clone());
    let size = terminal.size()?;
    app.handle(Event::Resize(size.width, size.height));
    let mut pending: Vec<Command> = commands;
    // A named session that exists is opened; a new name starts a new session.
    if let Some(name) = options.session.as_ref().filter(|name| options.sessions_dir.join(name).is_dir()) {
        pending.push(Command::LoadSession(name.clone()));
    }
    let mut dirty = true;
    loop {
        if !pending.is_empty() {
            run_commands(&mut app, std::mem::take(&mut pending), |command, app| execute_command(command, app, worker));
            dirty = true;
        }
        if app.quit {
            return Ok(());
        }
        if terminate.load(Ordering::Relaxed) {
            log::info!("terminated by a signal");
            pending.extend(app.handle(Event::Terminate));
            continue;
        }
        match next_terminal_event(terminal, &app, &mut dirty) {
            Ok(Some(event)) => {
                pending.extend(app.handle(event));
                dirty = true;
            }
            Ok(None) => {}
            Err(e) => {
                // The terminal is gone (a hang-up can beat its SIGHUP here): save like a quit, then report.
                let commands = app.handle(Event::Terminate);
                run_commands(&mut app, commands, |command, app| execute_command(command, app, worker));
                return Err(e);
            }
        }
        while let Ok(event) = worker_events.try_recv() {
            pending.extend(app.handle(Event::Worker(event)));
            dirty = true;
        }
    }
}

/// Draws if needed, then waits briefly for the next terminal event.
fn next_terminal_event(
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    app: &App,
    dirty: &mut bool,
) -> Result<Option<Event>> {
    if *dirty {
        terminal.draw(|frame| panes::render(app, frame))?;
        *dirty = false;
    }
    if !terminal_event::poll(Duration::from_millis(40))? {
        return Ok(None);
    }
    Ok(match terminal_event::read()? {
        TerminalEvent::Key(key) => Some(Event::Key(key)),
        TerminalEvent::Mouse(mouse) => Some(Event::Mouse(mouse)),
        TerminalEvent::Paste(text) => Some(Event::Paste(text)),
        TerminalEvent::Resize(w, h) => Some(Event::Resize(w, h)),
        _ => None,
    })
}

/// Carries out commands with `execute`, and the commands the app answers their results with, until none
/// are left. Public so that tests drive the app against real files with [`run_file_command`].
pub fn run_commands(app: &mut App, mut pending: Vec<Command>, mut execute: impl FnMut(Command, &App) -> Option<Event>) {
    while !pending.is_empty() {
        for command in std::mem::take(&mut pending) {
            if let Some(event) = execute(command, app) {
                pending.extend(app.handle(event));
            }
        }
    }
}

/// Carries out one command; file operations answer with an event for the app.
fn execute_command(command: Command, app: &App, worker: &Worker) -> Option<Event> {
    match command {
        Command::Job(job) => {
            worker.submit(job);
            None
        }
        Command::CancelJob => {
            worker.cancel();
            None
        }
        Command::Quit => None,
        file_command => run_file_command(file_command, &app.sessions_dir),
    }
}

/// Carries out a session or import command in sessions directory `dir` and returns the event that
/// answers it. Jobs and quitting are the terminal loop's: they return `None` here.
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

/// SIGTERM, SIGHUP (a closed terminal window, a dropped ssh connection) and SIGINT set `received` instead
/// of killing the process, so the loop can save and restore the terminal; unregistered when dropped.
struct TerminationSignals {
    received: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl TerminationSignals {
    fn register() -> Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let received = Arc::new(AtomicBool::new(false));
        let ids = [SIGTERM, SIGHUP, SIGINT]
            .into_iter()
            .map(|signal| signal_hook::flag::register(signal, Arc::clone(&received)))
            .collect::<std::io::Result<_>>()
            .wrap_err("cannot install the signal handlers")?;
        Ok(Self { received, ids })
    }
}

impl Drop for TerminationSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// `session-N` with the first N not taken in `dir`.
fn fresh_session_name(dir: &Path) -> String {
    (1..).map(|n| format!("session-{n}")).find(|name| !dir.join(name).exists()).expect("some number is free")
}

/// Raw mode, alternate screen, mouse capture and bracketed paste while alive; restored when dropped.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<Self> {
        enable_raw_mode().wrap_err("cannot put the terminal in raw mode")?;
        let guard = Self;
        execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture, EnableBracketedPaste)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = execute!(std::io::stdout(), DisableBracketedPaste, DisableMouseCapture, LeaveAlternateScreen);
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), crossterm::cursor::Show);
}

/// Restores the terminal before the panic hook in place (color-eyre's, installed by `main`) reports.
fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        log::error!("panic: {info}");
        report(info);
    }));
}

/// Appends log records to one file; the screen belongs to the UI.
struct FileLogger {
    file: Mutex<File>,
}

impl log::Log for FileLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info || metadata.target().starts_with("lafn")
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            if let Ok(mut file) = self.file.lock() {
                let _ = writeln!(
                    file,
                    "{} {:5} {}: {}",
                    crate::storage::unix_now(),
                    record.level(),
                    record.target(),
                    record.args()
                );
            }
        }
    }

    fn flush(&self) {
        if let Ok(mut file) = self.file.lock() {
            let _ = file.flush();
        }
    }
}

fn init_logging(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .wrap_err_with(|| format!("cannot open the log file {}", path.display()))?;
    // A logger set earlier (tests) stays; ours is only for the real terminal.
    if log::set_boxed_logger(Box::new(FileLogger { file: Mutex::new(file) })).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    Ok(())
}
