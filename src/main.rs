//! The `lafn` command: the TUI by default, and subcommands that drive the same library (see [`cli`]).

mod cli;

use std::io::IsTerminal;

use clap::Parser;
use lafn::Result;

fn main() -> Result<()> {
    // RUST_BACKTRACE=1 is for panics: library errors (candle's) would otherwise carry backtrace frames
    // in the very message the user reads. RUST_LIB_BACKTRACE=1 still asks for them explicitly. Set
    // before any thread starts or any error is built.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    lafn::runtime::fit_threads_to_allowed_cpus();
    // Colours only on a terminal: errors written to a file or a pipe stay plain text.
    let theme = if std::io::stderr().is_terminal() {
        color_eyre::config::Theme::dark()
    } else {
        color_eyre::config::Theme::new()
    };
    // No "run with RUST_BACKTRACE=1" hints: the messages are for users (see RUST_LIB_BACKTRACE above).
    color_eyre::config::HookBuilder::default().theme(theme).display_env_section(false).install()?;
    cli::Cli::parse().run()
}
