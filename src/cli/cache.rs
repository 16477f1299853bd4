//! `lafn cache list|show|rm`: a model's cached edits.

use clap::{Args, Subcommand};
use color_eyre::eyre::bail;
use lafn::method::cache::EditCache;
use lafn::runtime::WeightSource;
use lafn::Result;

use super::args::{CacheArgs, ModelArgs};

#[derive(Args)]
pub struct CacheCommandArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(subcommand)]
    action: CacheAction,
}

#[derive(Subcommand)]
enum CacheAction {
    /// One line per cached edit, a damaged one marked.
    List {
        /// Read every entry's update values in full (checking each value), not only the files' headers
        /// and lengths.
        #[arg(long)]
        verify: bool,
    },
    /// Everything stored for one edit.
    Show { id: String },
    /// Remove one edit.
    Rm { id: String },
}

pub fn run(args: CacheCommandArgs) -> Result<()> {
    // Reading a cache never creates one: a mistyped directory is an error, not a new empty cache.
    if let Some(dir) = args.cache.cache_dir.as_ref().filter(|dir| !dir.is_dir()) {
        bail!("there is no edit cache at {}", dir.display());
    }
    let files = args.model.files()?;
    let mut cache = args.cache.open(&files.weights)?;
    for warning in cache.warnings() {
        eprintln!("warning: {warning}");
    }
    match args.action {
        CacheAction::List { verify } => {
            let hidden_size = WeightSource::open(&files.weights, &args.model.device()?)?.1.hidden_size;
            list(&mut cache, hidden_size, verify);
        }
        CacheAction::Show { id } => outln!("{}", serde_json::to_string_pretty(&cache.get(&id)?)?),
        CacheAction::Rm { id } => {
            cache.remove(&id)?;
            outln!("removed {id}");
        }
    }
    Ok(())
}

/// One line per entry. Every entry is checked (`verify`: read in full), so a damaged one is marked here,
/// not found in chat.
fn list(cache: &mut EditCache, hidden_size: usize, verify: bool) {
    for row in cache.list().to_vec() {
        let checked = match verify {
            true => cache.load_update(&row.id, hidden_size).map(|_| ()),
            false => cache.check(&row.id, hidden_size),
        };
        let health = match checked {
            Ok(()) => String::new(),
            Err(e) => format!("  DAMAGED (chat skips it): {e:#}"),
        };
        outln!(
            "{}  {} neurons  [{}]  {}{health}",
            row.id,
            row.neuron_count,
            row.langs.join(","),
            row.subjects.join(" | ")
        );
    }
}
