//! The terminal UI: a thin client of the library.
//!
//! - [`app`]: pure state and input handling (`App::handle(event) -> Vec<Command>`), no I/O, one module per
//!   pane's state;
//! - [`keymap`]: every key binding (key -> [`keymap::Action`]), which also prints the help and the README's
//!   key table;
//! - [`layout`]: the panes and where everything is on the screen, for rendering and mouse clicks alike;
//! - [`panes`]: rendering from `&App`, one module per pane;
//! - [`worker`]: a thread owning the models and the edit cache, running long jobs with progress events;
//! - [`files`]: session files and imports as background tasks;
//! - [`event_loop`]: the tokio loop selecting over terminal input, frame ticks, job and file events and
//!   termination signals, carrying out the app's commands;
//! - [`terminal`], [`logging`]: the terminal restored on every exit path, panics included; logs to a file;
//! - [`width_safe`]: the backend that keeps the screen right where ratatui and terminals disagree on widths.

pub mod app;
pub mod event_loop;
pub mod files;
pub mod keymap;
pub mod layout;
mod logging;
pub mod panes;
mod terminal;
pub mod text;
mod width_safe;
pub mod worker;

use std::path::PathBuf;

use color_eyre::eyre::WrapErr;

use crate::Result;
pub use files::run_file_command;

/// How the TUI starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model spec loaded at start.
    pub model: String,
    pub sessions_dir: PathBuf,
    /// Replaces the model's default edit cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Where models are loaded.
    pub device: candle_core::Device,
    /// Session to open at start (a new one if it does not exist); without one, a new `session-N`.
    pub session: Option<String>,
    /// Where the log file goes.
    pub log_file: PathBuf,
}

/// Runs the TUI until the user quits or a termination signal arrives.
pub fn run(options: Options) -> Result<()> {
    logging::init_logging(&options.log_file)?;
    log::info!("lafn TUI starting: {options:?}");
    terminal::install_panic_hook();
    // Two threads are plenty: the model work has its own thread, files go to the blocking pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lafn-tui")
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let _guard = terminal::TerminalGuard::enter()?;
        event_loop::run(&options).await
    });
    // The loop waited for the file tasks; the worker thread (a fetch or a load may run) ends with the
    // process rather than delay the quit.
    runtime.shutdown_background();
    if let Err(e) = &result {
        log::error!("TUI stopped: {e:#}");
    }
    result
}
