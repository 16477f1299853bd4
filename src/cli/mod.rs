//! The command line: the TUI by default, and one module per subcommand (its arguments and its `run`).

/// `print!` and `println!` for the subcommands' output: when the reader has gone
/// (`lafn cache list | head`), the program ends quietly and successfully, as Unix tools do, instead
/// of panicking. (SIGPIPE stays ignored, Rust's default, so that a closed network connection while
/// fetching a model is an error to report, not a kill.)
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

mod args;
mod bench;
mod cache;
mod chat;
mod edit;
mod eval;
mod fetch_model;
mod generate;
mod inspect;
mod progress;
mod signals;
mod tui;
mod workers;

use clap::{Parser, Subcommand};
use lafn::Result;

#[derive(Parser)]
#[command(name = "lafn", version, about = "Multilingual knowledge editing with language-agnostic factual neurons")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tui: tui::TuiArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Download a built-in model into the data directory (default: the default model).
    FetchModel(fetch_model::FetchModelArgs),
    /// Continue a prompt with the model.
    Generate(generate::GenerateArgs),
    /// Locate the language-agnostic factual neurons of an edit group and print per-layer statistics.
    Locate(edit::LocateArgs),
    /// Locate and optimize update values for an edit group, print the losses of every step, and
    /// store the result in the edit cache; with --all or --range, many groups of the file, resumably.
    Edit(edit::EditArgs),
    /// Line-based chat over stdin: each answer uses the cached edits whose subject the line mentions.
    Chat(chat::ChatArgs),
    /// List, show or remove cached edits of a model.
    Cache(cache::CacheCommandArgs),
    /// Show a model's architecture, size and storage types.
    Inspect(inspect::InspectArgs),
    /// Evaluate editing methods on MzsRE or Bi-ZsRE: a markdown table per metric on stdout, the full
    /// report as JSON with --out, and per-record results in a state file beside it to resume from.
    Eval(eval::EvalArgs),
    /// Measure forward, decode and edit-step speed and peak memory.
    Bench(bench::BenchArgs),
}

impl Cli {
    pub fn run(self) -> Result<()> {
        if self.command.is_some() {
            // The library's warnings (a damaged line of kept answers skipped, an index that cannot be
            // saved, ...) reach the user of a subcommand on stderr; the TUI logs to its file instead.
            if log::set_boxed_logger(Box::new(StderrWarnings)).is_ok() {
                log::set_max_level(log::LevelFilter::Warn);
            }
        }
        match self.command {
            None => tui::run(self.tui),
            Some(Command::FetchModel(args)) => fetch_model::run(args),
            Some(Command::Generate(args)) => generate::run(args),
            Some(Command::Locate(args)) => edit::run_locate(args),
            Some(Command::Edit(args)) => edit::run_edit(args),
            Some(Command::Chat(args)) => chat::run(args),
            Some(Command::Cache(args)) => cache::run(args),
            Some(Command::Inspect(args)) => inspect::run(args),
            Some(Command::Eval(args)) => eval::run(args),
            Some(Command::Bench(args)) => bench::run(args),
        }
    }
}

/// Writes to stdout; see [`out!`].
pub fn write_stdout(text: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(text) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        panic!("failed printing to stdout: {e}");
    }
}

/// Prints warnings and errors logged by the library as `warning: ...` lines on stderr.
struct StderrWarnings;

impl log::Log for StderrWarnings {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let level = if record.level() == log::Level::Error { "error" } else { "warning" };
            eprintln!("{level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}
