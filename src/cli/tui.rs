//! `lafn` without a subcommand: the terminal UI.

use std::path::PathBuf;

use clap::Args;
use lafn::fetch;
use lafn::runtime::DeviceChoice;
use lafn::Result;

/// Options of the terminal UI (`lafn` without a subcommand).
#[derive(Args)]
pub struct TuiArgs {
    /// Model to load at start: a built-in name (fetched on first start), a path or an HF repo id.
    #[arg(long, short, default_value = fetch::DEFAULT_MODEL)]
    model: String,
    /// Sessions directory (default: $LAFN_SESSIONS_DIR, else ./sessions).
    #[arg(long)]
    sessions_dir: Option<PathBuf>,
    /// Edit cache directory (default: the data directory's cache for the model).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Session to open at start (default: a new one).
    #[arg(long)]
    session: Option<String>,
    /// Where models compute (only the CPU in this build).
    #[arg(long, value_enum, default_value_t)]
    device: DeviceChoice,
}

pub fn run(args: TuiArgs) -> Result<()> {
    let TuiArgs { model, sessions_dir, cache_dir, session, device } = args;
    if let Some(name) = &session {
        lafn::session::validate_name(name)?;
    }
    lafn::tui::run(lafn::tui::Options {
        model,
        sessions_dir: sessions_dir.unwrap_or_else(lafn::session::default_sessions_dir),
        cache_dir,
        device: device.open()?,
        session,
        log_file: lafn::storage::data_dir()?.join("logs").join("lafn.log"),
    })
}
