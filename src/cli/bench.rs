//! `lafn bench`: forward, decode and edit-step speed and peak memory.

use std::path::PathBuf;

use clap::Args;
use lafn::method::EditGroup;
use lafn::Result;

use super::args::ModelArgs;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Tokens decoded in the decode benchmark.
    #[arg(long, allow_negative_numbers = true, default_value_t = 64)]
    decode_tokens: usize,
    /// Also time locating and editing the first group of this file (e.g. an MzsRE record).
    #[arg(long)]
    group: Option<PathBuf>,
    /// Instead, measure an edit cache of this many entries made from the records of --group (their
    /// subjects respelled per copy, random update values): open, retrieval, chat's first token, memory.
    #[arg(long, requires = "group")]
    cache_entries: Option<usize>,
    /// Where the --cache-entries cache is built and kept for the next run (default: a temporary directory).
    #[arg(long, requires = "cache_entries")]
    cache_dir: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let (Some(entries), Some(records)) = (args.cache_entries, &args.group) {
        let loaded = args.model.load()?;
        let temporary = tempfile::tempdir()?;
        let dir = args.cache_dir.as_deref().unwrap_or(temporary.path());
        out!("{}", lafn::bench::cache::run(&loaded, records, entries, dir)?);
        return Ok(());
    }
    let files = args.model.files()?;
    let group = args.group.map(|path| EditGroup::load_one(&path, 1, None)).transpose()?;
    out!("{}", lafn::bench::run(&files, &args.model.device()?, args.decode_tokens, group)?);
    Ok(())
}
