//! `lafn eval`: evaluate editing methods on MzsRE, Bi-ZsRE or BMIKE-53.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::LazyLock;

use clap::builder::PossibleValue;
use clap::{Args, Subcommand, ValueEnum};
use color_eyre::eyre::bail;
use lafn::eval::{
    Dataset, EvalConfig, EvalMethod, EvalModels, EvalPhase, EvalRequest, Progress, Scoring, Shard, Stage,
};
use lafn::Result;

use super::args::ModelArgs;
use super::progress::{JobProgress, Look, PlainLines};
use super::signals::cancel_on_signals;
use super::workers;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    model: ModelArgs,
    /// The benchmark.
    #[arg(long, value_enum, required = true)]
    dataset: Option<Dataset>,
    /// The benchmark's JSONL file (one fact per line, language -> entry), or a directory in BMIKE-53's
    /// layout (zsre_test_{lang}.json files, each pairing en with one language).
    #[arg(long, required = true)]
    file: Option<PathBuf>,
    /// Languages to edit and score (comma-separated; default: all of the dataset's). Each record is
    /// evaluated in those it has; the records lacking one are listed in the report.
    #[arg(long, value_delimiter = ',')]
    langs: Option<Vec<String>>,
    /// Evaluate only the first N records.
    #[arg(long, allow_negative_numbers = true)]
    limit: Option<usize>,
    /// Methods to compare (comma-separated).
    #[arg(long = "method", value_enum, value_delimiter = ',', default_value = "all")]
    methods: Vec<MethodChoice>,
    /// Accumulate all edits in one cache and score every record after all edits.
    #[arg(long)]
    sequential: bool,
    /// Method and evaluation settings as one JSON file (see docs/results.md).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Write the report as JSON here; results are also kept in <stem>.state.jsonl beside it (and a
    /// sequential run's edits in <stem>.edits/), and a rerun with the same settings resumes from them.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How answers are scored: teacher-forced (the benchmarks' way), generate (the first line of
    /// the greedy answer, as `lafn chat` gives it), or both.
    #[arg(long, value_enum, default_value_t = Scoring::Both)]
    scoring: Scoring,
    /// Evaluate only part K of N of the records (every N-th, from record K; standard protocol), to
    /// spread a benchmark over machines; `lafn eval merge` joins the parts' reports.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Compute the unedited model's answers anew instead of reusing those kept from earlier runs
    /// (in the data directory's `unedited-answers/`, per model; each run checks one against the model).
    #[arg(long)]
    recompute_unedited: bool,
    /// Worker processes to spread the records over (a sequential run: its edits, with --out),
    /// sharing the CPUs: an edit gains little from a second thread, so two one-thread processes
    /// finish about 1.4x the records of one two-thread process, with the same answers. Default: one
    /// per CPU this process may use, as many as the available memory holds (6 bytes a model
    /// parameter each). 1: no workers.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Evaluate (or, in a sequential run, edit) the records a coordinating `lafn eval` assigns on
    /// stdin, reporting on stdout.
    #[arg(long, hide = true)]
    worker: bool,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Join the reports of runs over parts of a benchmark (`--shard K/N`, or runs cut short) into the
    /// report of one run, with the state file beside it.
    Merge(MergeArgs),
}

#[derive(Args)]
struct MergeArgs {
    /// The reports to merge (each with its state file beside it).
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Where to write the merged report (and its state file).
    #[arg(long)]
    out: PathBuf,
}

/// A `--method` value: one method, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MethodChoice {
    One(EvalMethod),
    All,
}

impl ValueEnum for MethodChoice {
    fn value_variants<'a>() -> &'a [Self] {
        static CHOICES: LazyLock<Vec<MethodChoice>> = LazyLock::new(|| {
            EvalMethod::value_variants().iter().copied().map(MethodChoice::One).chain([MethodChoice::All]).collect()
        });
        &CHOICES
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            MethodChoice::One(method) => method.to_possible_value(),
            MethodChoice::All => Some(PossibleValue::new("all").help("All of the above")),
        }
    }
}

/// The methods chosen, `all` spelled out.
fn chosen_methods(choices: &[MethodChoice]) -> Vec<EvalMethod> {
    let every = EvalMethod::value_variants();
    choices
        .iter()
        .flat_map(|choice| match choice {
            MethodChoice::One(method) => std::slice::from_ref(method),
            MethodChoice::All => every,
        })
        .copied()
        .collect()
}

/// Prints the report as markdown tables, and writes it as JSON with `--out`.
pub fn run(args: EvalArgs) -> Result<()> {
    if let Some(EvalCommand::Merge(merge)) = args.command {
        return run_merge(merge);
    }
    let (Some(dataset), Some(file)) = (args.dataset, args.file) else { bail!("--dataset and --file are required") };
    if args.limit == Some(0) {
        bail!("--limit 0 evaluates nothing: give at least 1 (or leave it out for every record)");
    }
    let config = args.settings.map(|path| EvalConfig::load(&path)).transpose()?.unwrap_or_default();
    let loaded = args.model.load()?;
    let request = EvalRequest {
        dataset,
        file,
        langs: args.langs,
        limit: args.limit,
        methods: chosen_methods(&args.methods),
        sequential: args.sequential,
        config,
        state_file: args.out.as_deref().map(lafn::eval::state_path_for),
        scoring: args.scoring,
        shard: args.shard,
        unedited_answers: if args.recompute_unedited {
            None
        } else {
            Some(lafn::storage::data_dir()?.join("unedited-answers"))
        },
    };
    // A signal stops the run at the next step of an edit or between records; what is finished is kept.
    let cancel = cancel_on_signals()?;
    if args.worker {
        let dense = loaded.editing_weights()?;
        let models = EvalModels { loaded: &loaded, dense: &dense };
        return lafn::eval::serve(models, &request, std::io::stdin().lock(), std::io::stdout().lock(), &cancel);
    }
    if let Some(state) = &request.state_file {
        eprintln!("per-record results: {}", state.display());
    }
    let mut progress = EvalProgress::default();
    let jobs = workers::jobs(args.jobs.map(usize::from), loaded.info.parameters);
    // A sequential run scores every record against one cache, in this process: workers make its
    // edits, kept beside the state file, which the run then finds made.
    let spread_edits = request.sequential && jobs > 1 && request.state_file.is_some();
    if request.sequential && args.jobs.is_some_and(|j| j > 1) && !spread_edits {
        log::warn!("--jobs: a sequential run spreads its edits only when they are kept, beside --out; one process");
    }
    if spread_edits {
        workers::spread_over(jobs, |start| {
            lafn::eval::edit_spread(&loaded, &request, jobs, start, &cancel, &mut |p| progress.show(p))
        })?;
    }
    let report = if jobs > 1 && !request.sequential {
        workers::spread_over(jobs, |start| {
            lafn::eval::run_spread(&loaded, &request, jobs, start, &cancel, &mut |p| progress.show(p))
        })?
    } else if spread_edits && cancel.load(Ordering::Relaxed) {
        bail!("stopped by a signal while the edits were made: run the same command again to resume");
    } else {
        let dense = loaded.editing_weights()?;
        let models = EvalModels { loaded: &loaded, dense: &dense };
        lafn::eval::run(models, &request, &cancel, &mut |p| progress.show(p))?
    };
    out!("{}", report.markdown());
    if let Some(out) = &args.out {
        lafn::storage::write_json_atomic(out, &report)?;
        eprintln!("report written to {}", out.display());
    }
    if cancel.load(Ordering::Relaxed) {
        let resume = match request.state_file {
            Some(_) => "run the same command again to resume",
            None => "with --out, a rerun would resume from it",
        };
        bail!("stopped by a signal: the report covers what was finished; {resume}");
    }
    Ok(())
}

/// Prints the merged report and writes it, with its state file, to `--out`.
fn run_merge(args: MergeArgs) -> Result<()> {
    let merged = lafn::eval::merge(&args.reports)?;
    if !merged.missing.is_empty() {
        let records: BTreeSet<usize> = merged.missing.iter().map(|&(_, record)| record + 1).collect();
        let listed: Vec<String> = records.iter().take(20).map(usize::to_string).collect();
        eprintln!(
            "warning: {} (method, record) results are missing, in records {}{}: the report covers the rest",
            merged.missing.len(),
            listed.join(", "),
            if records.len() > listed.len() { ", ..." } else { "" }
        );
    }
    out!("{}", merged.report.markdown());
    lafn::eval::state::write_state(&lafn::eval::state_path_for(&args.out), &merged.identity, &merged.results)?;
    lafn::storage::write_json_atomic(&args.out, &merged.report)?;
    eprintln!("report written to {}", args.out.display());
    Ok(())
}

/// A bar per phase with what is being done for the next record; in a log, a line per finished record.
struct EvalProgress {
    progress: JobProgress,
    phase: Option<EvalPhase>,
}

impl Default for EvalProgress {
    fn default() -> Self {
        Self { progress: JobProgress::new(PlainLines::EachStep), phase: None }
    }
}

impl EvalProgress {
    fn show(&mut self, p: Progress) {
        if self.phase != Some(p.phase) {
            self.phase = Some(p.phase);
            let label = match p.phase {
                EvalPhase::Records => "records",
                EvalPhase::Editing => "editing",
                EvalPhase::Scoring => "scoring",
            };
            self.progress.start(Look::Count, label, p.done as u64, Some(p.total as u64));
        }
        let stage = match p.stage {
            Some(Stage::Editing(method)) => format!("editing {method}"),
            Some(Stage::Scoring(method)) => format!("scoring {method}"),
            None => String::new(),
        };
        self.progress.set_message(format!("({} resumed)  {stage}", p.resumed));
        self.progress.update(p.done as u64);
        if p.done == p.total && p.stage.is_none() {
            self.progress.finish();
        }
    }
}
