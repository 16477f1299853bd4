//! `lafn edit --all` / `--range FIRST..LAST`: many groups of one file, each located, optimized and cached
//! exactly as a single `lafn edit` does, with the models loaded once. Rerunning the same command
//! continues where a killed run stopped: a group whose edit the cache already holds (same facts, same
//! settings) is skipped. A group that fails is reported at the end; the others go on.
//!
//! With `--jobs N` the groups are spread over worker processes (`lafn edit <the same arguments>
//! --worker`, one thread each, see `cli/workers.rs`), each editing the groups it is handed and storing
//! them in the cache itself: the cache's entries are written whole and its index is a summary that
//! opening repairs, so this process opens it once at the end to list every worker's entries.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use color_eyre::eyre::{bail, eyre, WrapErr};
use lafn::method::apply::CachedEdits;
use lafn::method::cache::EditCache;
use lafn::method::pipeline::{cached_edit, prepare_group, run_edit, EditEvent, EditModels};
use lafn::method::{EditGroup, MethodSettings, StopReason};
use lafn::runtime::LoadedModel;
use lafn::Result;
use serde::{Deserialize, Serialize};

use super::super::progress::{JobProgress, Look, PlainLines};
use super::{existing_cache, EditArgs};
use crate::cli::signals::cancel_on_signals;
use crate::cli::workers;

#[derive(Args, Default)]
pub struct ManyGroups {
    /// Edit every group of the file; rerun to resume (groups cached with the same settings are skipped).
    #[arg(long, conflicts_with_all = ["index", "range"])]
    all: bool,
    /// Edit groups FIRST..LAST of the file (1 is the first, LAST included; FIRST.. runs to the end);
    /// rerun to resume, as with --all.
    #[arg(long, value_name = "FIRST..LAST", conflicts_with = "index")]
    range: Option<GroupRange>,
    /// Worker processes to spread the groups over, sharing the CPUs: an edit gains little from a
    /// second thread. Default: one per CPU lafn may use, as many as the available memory holds (6
    /// bytes a model parameter each). 1: edit in this process.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..), conflicts_with = "index")]
    jobs: Option<u16>,
    /// Edit the groups a coordinating `lafn edit` assigns on stdin, reporting on stdout.
    #[arg(long, hide = true)]
    worker: bool,
}

impl ManyGroups {
    /// Whether many groups were asked for (else `--index` chooses one).
    pub fn chosen(&self) -> bool {
        self.all || self.range.is_some()
    }

    /// The numbers (1 = the first) of the groups to edit in `path`, which holds `count`.
    fn numbers(&self, count: usize, path: &Path) -> Result<RangeInclusive<usize>> {
        let Some(range) = self.range else { return Ok(1..=count) };
        let last = range.last.unwrap_or(count);
        if range.first > count || last > count {
            bail!("{} holds {count} groups; --range {range} goes past the last", path.display());
        }
        Ok(range.first..=last)
    }
}

/// Groups FIRST..LAST of a file, counted from 1, both included; without LAST, to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRange {
    first: usize,
    last: Option<usize>,
}

impl FromStr for GroupRange {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        let shape = "give FIRST..LAST, e.g. 1..300 (1 is the first group)";
        let (first, last) = match text.split_once("..") {
            _ if text.is_empty() => return Err(format!("the range is empty: {shape}")),
            Some((first, _)) if first.trim().is_empty() => return Err(format!("`{text}` has no first group: {shape}")),
            Some(parts) => parts,
            None => return Err(format!("`{text}` is not a range: {shape}")),
        };
        let number = |part: &str| match part.trim().parse::<usize>() {
            Ok(0) => Err(format!("`{text}`: groups count from 1 (1 is the first)")),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("`{}` in `{text}` is not a group number: {shape}", part.trim())),
        };
        // `1..=300` means what `1..300` does: both ends are included either way.
        let last = last.strip_prefix('=').unwrap_or(last);
        let first = number(first)?;
        let last = if last.trim().is_empty() { None } else { Some(number(last)?) };
        if let Some(last) = last.filter(|&last| last < first) {
            return Err(format!("`{text}` is reversed: write {last}..{first}"));
        }
        Ok(Self { first, last })
    }
}

impl std::fmt::Display for GroupRange {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.last {
            Some(last) => write!(f, "{}..{last}", self.first),
            None => write!(f, "{}..", self.first),
        }
    }
}

/// How one group went (a worker's report of it, too).
#[derive(Serialize, Deserialize)]
enum Outcome {
    Edited {
        id: String,
        stop: StopReason,
        seconds: f64,
        /// What changed for the other entries of its subject (see `CachedEdits::shared_subject_notes`).
        notes: Vec<String>,
    },
    /// The cache held its edit already (this entry).
    Skipped(String),
    /// A termination signal stopped it: nothing was stored.
    Interrupted,
}

/// A group for a worker to edit: its number in the file (from 1).
#[derive(Serialize, Deserialize)]
struct GroupTask {
    number: usize,
}

impl std::fmt::Display for GroupTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group {}", self.number)
    }
}

/// What a worker says about the group it edits.
#[derive(Serialize, Deserialize)]
enum GroupMessage {
    /// What it is doing (locating, a step), for the progress line.
    Stage(String),
    /// How the group went, or why it failed.
    Done(std::result::Result<Outcome, String>),
}

/// What the run did, for the summary.
#[derive(Default)]
struct Summary {
    edited: usize,
    skipped: usize,
    /// Group number, name (when it could be read) and why.
    failed: Vec<(usize, Option<String>, String)>,
    interrupted: bool,
}

/// Edits the chosen groups, in this process one after another or spread over workers (see the
/// module doc).
pub(super) fn run(args: &EditArgs) -> Result<()> {
    let inputs = &args.inputs;
    let settings = inputs.settings.load()?;
    let groups = inputs.group.load_each()?;
    let numbers = args.many.numbers(groups.len(), inputs.group.path())?;
    let loaded = inputs.model.load()?;
    let fingerprint = &loaded.info.fingerprint;
    let cache_dir = args.cache.dir(fingerprint)?;
    let existing = existing_cache(&cache_dir, fingerprint)?;
    if args.many.worker {
        return serve(settings, groups, &loaded, cache_dir, existing);
    }
    let total = numbers.clone().count();
    let jobs = workers::jobs(args.many.jobs.map(usize::from), loaded.info.parameters).min(total);
    let mut progress = JobProgress::new(PlainLines::EachStep);
    progress.start(Look::Count, "groups", 0, Some(total as u64));
    let mut summary = Summary::default();
    let mut done = 0;
    // How one group went, shown and counted.
    let mut finish = |progress: &mut JobProgress, summary: &mut Summary, number, name: Option<String>, outcome| {
        let label = label(number, name.as_deref());
        let skipped = matches!(outcome, Ok(Outcome::Skipped(_)));
        let line = summary.record(number, name, outcome);
        progress.suspend(|| outln!("{label}: {line}"));
        progress.set_message("");
        done += 1;
        if skipped {
            progress.skip_to(done);
        } else {
            progress.update(done);
        }
    };
    let chosen = groups.into_iter().enumerate().map(|(i, group)| (i + 1, group)).filter(|(n, _)| numbers.contains(n));
    if jobs > 1 {
        let cancel = cancel_on_signals()?;
        // A group that cannot be read is reported here; the others go to the workers.
        let mut names = std::collections::HashMap::new();
        let mut tasks = std::collections::VecDeque::new();
        for (number, group) in chosen {
            match group {
                Ok(group) => {
                    names.insert(number, group.name);
                    tasks.push_back(GroupTask { number });
                }
                Err(e) => finish(&mut progress, &mut summary, number, None, Err(e)),
            }
        }
        workers::spread_over(jobs, |start| {
            lafn::workers::distribute(tasks, jobs, start, &cancel, &mut |task: &GroupTask, message| {
                Ok(match message {
                    GroupMessage::Stage(stage) => {
                        progress.set_message(format!(
                            "{}: {stage}",
                            label(task.number, names.get(&task.number).map(String::as_str))
                        ));
                        false
                    }
                    GroupMessage::Done(outcome) => {
                        // A worker stopped by a signal of its own ends: no group goes to it again.
                        if matches!(outcome, Ok(Outcome::Interrupted)) {
                            cancel.store(true, Ordering::Relaxed);
                        }
                        let outcome = outcome.map_err(|reason| eyre!(reason));
                        finish(&mut progress, &mut summary, task.number, names.get(&task.number).cloned(), outcome);
                        true
                    }
                })
            })
        })?;
        summary.interrupted |= cancel.load(Ordering::Relaxed);
        // Every worker wrote its own view of the index: opening lists all their entries.
        if cache_dir.exists() {
            EditCache::open(&cache_dir, fingerprint).wrap_err("listing the workers' edits in the cache")?;
        }
    } else {
        let dense = loaded.editing_weights()?;
        let mut bulk = Bulk::new(&loaded, &dense, settings, cache_dir, existing)?;
        for (number, group) in chosen {
            let name = group.as_ref().ok().map(|group| group.name.clone());
            let label = label(number, name.as_deref());
            progress.set_message(label.clone());
            let outcome = group
                .and_then(|group| bulk.edit(group, &mut |stage| progress.set_message(format!("{label}: {stage}"))));
            let interrupted = matches!(outcome, Ok(Outcome::Interrupted));
            finish(&mut progress, &mut summary, number, name, outcome);
            if interrupted {
                break;
            }
        }
    }
    progress.finish();
    summary.report(total)
}

/// A group's name in progress and report lines.
fn label(number: usize, name: Option<&str>) -> String {
    name.map_or(format!("group {number}"), |name| format!("group {number} `{name}`"))
}

/// A worker: edits each group the coordinator assigns on stdin (one JSON line each) and reports its
/// stages and outcome on stdout, until stdin ends or a signal stops it.
fn serve(
    settings: MethodSettings,
    groups: Vec<Result<EditGroup>>,
    loaded: &LoadedModel,
    cache_dir: PathBuf,
    existing: Option<EditCache>,
) -> Result<()> {
    let dense = loaded.editing_weights()?;
    let mut bulk = Bulk::new(loaded, &dense, settings, cache_dir, existing)?;
    let mut groups: Vec<Option<Result<EditGroup>>> = groups.into_iter().map(Some).collect();
    let mut output = std::io::stdout().lock();
    let mut send = |message: &GroupMessage| lafn::workers::send(&mut output, message);
    for task in lafn::workers::tasks(std::io::stdin().lock()) {
        let GroupTask { number } = task?;
        let Some(group) = number.checked_sub(1).and_then(|i| groups.get_mut(i)).and_then(Option::take) else {
            bail!("group {number} is not in the file, or was edited already");
        };
        let mut stage_error = None;
        let outcome = group.and_then(|group| {
            bulk.edit(group, &mut |stage| {
                if let Err(e) = send(&GroupMessage::Stage(stage)) {
                    stage_error.get_or_insert(e);
                }
            })
        });
        if let Some(e) = stage_error {
            return Err(e);
        }
        let interrupted = matches!(outcome, Ok(Outcome::Interrupted));
        send(&GroupMessage::Done(outcome.map_err(|e| format!("{e:#}"))))?;
        if interrupted {
            break;
        }
    }
    Ok(())
}

/// What every group's edit shares: the models, the settings, the cache (opened or created on the first
/// edit stored, so that a run whose edits all fail leaves no cache behind, as a single edit does).
struct Bulk<'a> {
    models: EditModels<'a>,
    loaded: &'a LoadedModel,
    settings: MethodSettings,
    cache_dir: PathBuf,
    cached: Option<CachedEdits>,
    cancel: Arc<AtomicBool>,
}

impl<'a> Bulk<'a> {
    fn new(
        loaded: &'a LoadedModel,
        dense: &'a lafn::runtime::Model,
        settings: MethodSettings,
        cache_dir: PathBuf,
        existing: Option<EditCache>,
    ) -> Result<Self> {
        let models = EditModels { dense, paraphraser: &loaded.model, tokenizer: &loaded.tokenizer };
        let mut bulk = Bulk { models, loaded, settings, cache_dir, cached: None, cancel: cancel_on_signals()? };
        if let Some(cache) = existing {
            bulk.cached = Some(bulk.index(cache)?);
        }
        Ok(bulk)
    }

    /// Edits and caches `group`, unless the cache holds its edit already; `on_stage` hears what it is doing.
    fn edit(&mut self, group: EditGroup, on_stage: &mut dyn FnMut(String)) -> Result<Outcome> {
        if self.cancel.load(Ordering::Relaxed) {
            return Ok(Outcome::Interrupted);
        }
        let group = prepare_group(self.models, group, &self.settings)?;
        if let Some(cached) = &self.cached {
            if let Some(id) = cached_edit(cached.cache(), &group, &self.settings)? {
                return Ok(Outcome::Skipped(id));
            }
        }
        let steps = self.settings.edit.steps;
        let run = run_edit(self.models, group, &self.settings, &self.cancel, &mut |event| match event {
            EditEvent::Paraphrased(_) => on_stage("locating".into()),
            EditEvent::Located(located) => on_stage(format!("optimizing {} neurons", located.neuron_count())),
            EditEvent::Step(step) => on_stage(format!("step {}/{steps}", step.step)),
        })?;
        if run.outcome.stop == StopReason::Cancelled {
            return Ok(Outcome::Interrupted);
        }
        let cached = match self.cached.take() {
            Some(cached) => cached,
            None => self.index(EditCache::open(&self.cache_dir, &self.loaded.info.fingerprint)?)?,
        };
        let (model, tokenizer) = (&self.loaded.model, &self.loaded.tokenizer);
        let cached = self.cached.insert(cached);
        let id = run.store(cached, model, tokenizer, &self.settings)?;
        let seconds = run.locate_seconds + run.optimize_seconds;
        let notes = cached.shared_subject_notes(model, tokenizer, &id);
        Ok(Outcome::Edited { id, stop: run.outcome.stop, seconds, notes })
    }

    fn index(&self, cache: EditCache) -> Result<CachedEdits> {
        let (model, tokenizer, settings) = (&self.loaded.model, &self.loaded.tokenizer, &self.settings);
        CachedEdits::new(cache, model, tokenizer, settings.retrieval.clone(), settings.scope.clone())
    }
}

impl Summary {
    /// Counts how group `number` went and says it in a line.
    fn record(&mut self, number: usize, name: Option<String>, outcome: Result<Outcome>) -> String {
        match outcome {
            Ok(Outcome::Edited { id, stop, seconds, notes }) => {
                self.edited += 1;
                let notes: String = notes.iter().map(|note| format!("\n  note: {note}")).collect();
                format!("cached as {id} ({stop:?} in {seconds:.1} s){notes}")
            }
            Ok(Outcome::Skipped(id)) => {
                self.skipped += 1;
                format!("skipped, already cached as {id}")
            }
            Ok(Outcome::Interrupted) => {
                self.interrupted = true;
                "interrupted: nothing stored".into()
            }
            Err(e) => {
                let reason = format!("{e:#}");
                self.failed.push((number, name, reason.clone()));
                format!("FAILED: {reason}")
            }
        }
    }

    /// Prints the counts and every failure with its reason; an error when a group failed or the run was
    /// interrupted, so the exit code says it.
    fn report(self, total: usize) -> Result<()> {
        let (done, failed) = (self.edited + self.skipped, self.failed.len());
        outln!("edited {}, skipped {} (already cached), failed {failed}, of {total} groups", self.edited, self.skipped);
        for (number, name, reason) in &self.failed {
            let name = name.as_ref().map_or(String::new(), |name| format!(" `{name}`"));
            outln!("  group {number}{name} failed: {reason}");
        }
        if self.interrupted {
            bail!(
                "interrupted with {} of {total} groups left: rerun the same command to continue",
                total - done - failed
            );
        }
        if failed > 0 {
            bail!("{failed} of {total} groups failed (listed above); rerun the same command after fixing them");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<GroupRange, String> {
        text.parse()
    }

    #[test]
    fn ranges_are_one_based_and_inclusive() {
        assert_eq!(parse("1..300"), Ok(GroupRange { first: 1, last: Some(300) }));
        assert_eq!(parse(" 2..=2 "), Ok(GroupRange { first: 2, last: Some(2) }));
        assert_eq!(parse("5.."), Ok(GroupRange { first: 5, last: None }));
        let many = |range: &str| ManyGroups { range: Some(parse(range).unwrap()), ..ManyGroups::default() };
        assert_eq!(many("2..3").numbers(3, Path::new("f")).unwrap(), 2..=3);
        assert_eq!(many("2..").numbers(3, Path::new("f")).unwrap(), 2..=3);
        assert_eq!(ManyGroups { all: true, ..ManyGroups::default() }.numbers(3, Path::new("f")).unwrap(), 1..=3);
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        for (text, expected) in [
            ("", "empty"),
            ("..", "no first group"),
            ("..4", "no first group"),
            ("7", "not a range"),
            ("0..3", "count from 1"),
            ("1..x", "`x` in `1..x` is not a group number"),
            ("5..3", "reversed: write 3..5"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let many = |range: &str| ManyGroups { range: Some(parse(range).unwrap()), ..ManyGroups::default() };
        let error = format!("{:#}", many("2..4").numbers(3, Path::new("f.jsonl")).unwrap_err());
        assert_eq!(error, "f.jsonl holds 3 groups; --range 2..4 goes past the last");
        assert!(many("4..").numbers(3, Path::new("f")).is_err());
    }
}
