//! `lafn locate` and `lafn edit`: both locate an edit group's neurons the same way (on the dense
//! weights); `edit` then optimizes update values and stores them in the edit cache, for one group or,
//! with `--all` / `--range`, for many ([`bulk`]).

mod bulk;

use std::path::Path;

use clap::Args;
use color_eyre::eyre::{bail, WrapErr};
use lafn::method::apply::CachedEdits;
use lafn::method::cache::EditCache;
use lafn::method::pipeline::{
    check_group, locate_group, run_edit as run_edit_pipeline, EditEvent, EditModels, EditRun,
};
use lafn::method::{EditGroup, LocatedNeurons, MethodSettings, OptimizeStep, StopReason};
use lafn::runtime::{LoadedModel, Model};
use lafn::Result;

use super::args::{CacheArgs, GroupArgs, ModelArgs, SettingsArgs};
use super::progress::{JobProgress, Look, PlainLines};
use super::signals::cancel_on_signals;

#[derive(Args)]
pub struct LocateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    group: GroupArgs,
    #[command(flatten)]
    settings: SettingsArgs,
}

#[derive(Args)]
pub struct EditArgs {
    #[command(flatten)]
    inputs: LocateArgs,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    many: bulk::ManyGroups,
}

impl LocateArgs {
    /// The settings, the group, the model and its dense weights (both commands locate on those).
    fn load(&self) -> Result<(MethodSettings, EditGroup, LoadedModel, Model)> {
        let settings = self.settings.load()?;
        let group = self.group.load()?;
        let loaded = self.model.load()?;
        let dense = loaded.editing_weights()?;
        Ok((settings, group, loaded, dense))
    }
}

/// Prints the located neurons' per-layer statistics.
pub fn run_locate(args: LocateArgs) -> Result<()> {
    // Located on the dense weights, as `lafn edit` locates: both report the same layers.
    let (settings, group, loaded, dense) = args.load()?;
    let models = EditModels { dense: &dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
    let progress = locating_progress();
    let location = locate_group(models, group, &settings, &mut |event| {
        if let EditEvent::Paraphrased(_) = event {
            progress.set_message("locating");
        }
    })?;
    progress.clear();
    out!("{}", lafn::method::describe_located(&location.located));
    Ok(())
}

/// Edits the group chosen with `--index`, or the groups of `--all` / `--range`.
pub fn run_edit(args: EditArgs) -> Result<()> {
    if args.many.chosen() {
        bulk::run(&args)
    } else {
        run_single(args)
    }
}

/// Prints the located neurons and a line per optimization step, then caches the edit.
fn run_single(args: EditArgs) -> Result<()> {
    let (settings, group, loaded, dense) = args.inputs.load()?;
    let models = EditModels { dense: &dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
    // The input is checked and the cache proven usable before the edit is computed. A cache that does
    // not exist yet is created once the edit succeeded: a failed edit leaves nothing behind.
    check_group(models, &group)?;
    for d in group.descriptors.iter().filter(|d| d.trains_no_question()) {
        outln!(
            "note: {}: {:?} is a sentence to complete and no question is among its paraphrases: the edit \
             is not trained to answer questions about it (add one to `paraphrases`)",
            d.lang,
            d.prompt
        );
    }
    let fingerprint = &loaded.info.fingerprint;
    let cache_dir = args.cache.dir(fingerprint)?;
    let existing = existing_cache(&cache_dir, fingerprint)?;
    let langs = group.langs().join(" ");
    let cancel = cancel_on_signals()?;
    let mut progress = locating_progress();
    let run = run_edit_pipeline(models, group, &settings, &cancel, &mut |event| match event {
        EditEvent::Paraphrased(_) => progress.set_message("locating"),
        EditEvent::Located(located) => {
            progress.clear();
            print_located(located, &langs);
            progress.start(Look::Count, "optimizing", 0, Some(settings.edit.steps as u64));
        }
        EditEvent::Step(step) => {
            progress.suspend(|| print_step(step));
            progress.update(step.step as u64);
        }
    })?;
    progress.clear();
    outln!(
        "stopped: {:?} (locate {:.1} s, optimize {:.1} s)",
        run.outcome.stop,
        run.locate_seconds,
        run.optimize_seconds
    );
    if run.outcome.stop == StopReason::Cancelled {
        bail!("stopped by a signal: the edit was not stored (the cache is as it was)");
    }
    let cache = match existing {
        Some(cache) => cache,
        None => EditCache::open(&cache_dir, fingerprint)?,
    };
    store(&loaded, cache, &run, &settings)
}

/// A spinner naming the stage while the group is paraphrased and its neurons located (terminal only).
fn locating_progress() -> JobProgress {
    let mut progress = JobProgress::new(PlainLines::Never);
    progress.start(Look::Spinner, "", 0, None);
    progress.set_message("paraphrasing");
    progress.update(0);
    progress
}

/// The cache at `dir` if there is one, checked writable; else checks that it can be created.
fn existing_cache(dir: &Path, fingerprint: &str) -> Result<Option<EditCache>> {
    if dir.exists() {
        let cache = EditCache::open(dir, fingerprint)?;
        cache.check_writable()?;
        Ok(Some(cache))
    } else {
        lafn::storage::check_creatable(dir)
            .wrap_err_with(|| format!("the edit cache {} cannot be created", dir.display()))?;
        Ok(None)
    }
}

fn print_located(located: &LocatedNeurons, langs: &str) {
    outln!("located {} neurons in layers {:?}", located.neuron_count(), located.selected.keys().collect::<Vec<_>>());
    outln!("step  target     kl      total   P(target): {langs}");
}

fn print_step(s: &OptimizeStep) {
    let probs: Vec<String> = s.target_probs.iter().map(|p| format!("{p:.2}")).collect();
    outln!("{:4}  {:8.4} {:7.4} {:8.4}  {}", s.step, s.target_loss, s.kl_loss, s.total_loss, probs.join(" "));
}

/// Inserts the edit into `cache` and says where it went.
fn store(loaded: &LoadedModel, cache: EditCache, run: &EditRun, settings: &MethodSettings) -> Result<()> {
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let dir = cache.dir().to_path_buf();
    let mut cached = CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), settings.scope.clone())?;
    let id = run.store(&mut cached, model, tokenizer, settings)?;
    outln!("cached as {id} in {}", dir.display());
    let notes = cached.shared_subject_notes(model, tokenizer, &id);
    for note in &notes {
        outln!("note: {note}");
    }
    if !notes.is_empty() {
        outln!("(`lafn cache rm ID` removes an edit this one replaces)");
    }
    Ok(())
}
