//! `lafn inspect`: a model's architecture, size and storage types.

use clap::Args;
use lafn::Result;

use super::args::ModelArgs;

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let loaded = args.model.load()?;
    out!("{}", lafn::runtime::describe(&loaded.info));
    Ok(())
}
