//! `lafn fetch-model`, and the download progress every command shows when it fetches a model.

use clap::Args;
use lafn::fetch::{self, FetchEvent};
use lafn::Result;

use super::progress::{JobProgress, Look, PlainLines};

#[derive(Args)]
pub struct FetchModelArgs {
    /// gemma-3-270m, smollm2-135m or qwen2.5-coder-0.5b.
    name: Option<String>,
    /// Download again even if the files are present.
    #[arg(long)]
    force: bool,
}

/// Prints the paths of the fetched weights and tokenizer.
pub fn run(args: FetchModelArgs) -> Result<()> {
    let name = args.name.as_deref().unwrap_or(fetch::DEFAULT_MODEL);
    let files = fetch::fetch_builtin(name, args.force, &mut fetch_progress())?;
    outln!("{}", files.weights.display());
    if let Some(tokenizer) = files.tokenizer {
        outln!("{}", tokenizer.display());
    }
    Ok(())
}

/// Fetch progress on stderr: stage lines, and a bar per download (a built-in's fetch is one download
/// over all its files). In a log, a line per tenth instead of the bar.
pub fn fetch_progress() -> impl FnMut(FetchEvent) {
    let mut progress = JobProgress::new(PlainLines::EveryTenth);
    move |event| match event {
        FetchEvent::Stage(stage) => progress.println(&stage),
        FetchEvent::Bytes { done, total } => {
            if !progress.is_running() {
                progress.start(Look::Bytes, "", done, Some(total));
            }
            progress.update(done);
            if total > 0 && done >= total {
                progress.finish();
            }
        }
    }
}
