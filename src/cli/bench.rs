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
}

pub fn run(args: BenchArgs) -> Result<()> {
    let files = args.model.files()?;
    let group = args.group.map(|path| EditGroup::load_one(&path, 1, None)).transpose()?;
    print!("{}", lafn::bench::run(&files, &args.model.device()?, args.decode_tokens, group)?);
    Ok(())
}
