//! One run spread over worker processes on one machine (`lafn eval --jobs N`). An edit's optimizer
//! steps are hundreds of small tensor ops, each followed by candle's thread barrier: a second thread
//! makes a step only ~1.2x faster, while a second single-threaded process editing another record
//! doubles the records finished (measured: 10 MzsRE records x 12 languages, 145 s in one process on
//! 2 cores, 86 s in two processes of one thread each, every answer the same). candle sizes its
//! thread pools per process, so the workers are processes, not threads.
//!
//! The coordinator ([`run_spread`]) plans the run as [`super::run`] does, owns the state file and
//! the report, and hands out one record at a time to whichever worker is free; a worker ([`serve`])
//! evaluates the records it is sent. They speak JSON lines: an [`Assignment`] to the worker, a
//! [`WorkerMessage`] per stage and per finished record back. A sequential run scores every record
//! against one cache of all edits, so only its edits are spread ([`edit_spread`]): workers keep them
//! beside the state file as the run itself does, and the run then finds them made.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use color_eyre::eyre::{bail, ensure};
use serde::{Deserialize, Serialize};

use super::kept_edits::{edits_dir_for, KeptEdits};
use super::methods::EvalMethod;
use super::report::{EvalReport, RecordResult};
use super::runner::{EvalModels, EvalPhase, EvalRequest, Evaluator, Plan, Progress, Stage};
use crate::runtime::LoadedModel;
use crate::workers::{distribute, send, tasks, WorkerLink};
use crate::Result;

/// One record for a worker to evaluate with these methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub record: usize,
    pub methods: Vec<EvalMethod>,
}

impl std::fmt::Display for Assignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.record + 1)
    }
}

/// What a worker reports about the record it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerMessage {
    Stage(Stage),
    /// The record's results, one per method (none for a sequential run's edit, which is kept on disk).
    Finished(Vec<RecordResult>),
}

/// A worker: evaluates each record `input` assigns (one JSON line each) and writes its stages and
/// results to `output`, until `input` ends or `cancel` is set. `request` must be the coordinator's
/// (same file, languages, settings); its state file is the coordinator's to write. For a sequential
/// run the worker only makes each record's edits, and keeps them beside that state file.
pub fn serve(
    models: EvalModels,
    request: &EvalRequest,
    input: impl BufRead,
    mut output: impl Write,
    cancel: &AtomicBool,
) -> Result<()> {
    let kept = match (&request.state_file, request.sequential) {
        (Some(state), true) => Some(KeptEdits::join(&edits_dir_for(state), models.dense.config().hidden_size)),
        (None, true) => bail!("a sequential run's workers keep its edits beside its state file: give --out"),
        (_, false) => None,
    };
    let request = EvalRequest { state_file: None, ..request.clone() };
    let plan = Plan::new(models.loaded, &request)?;
    let unedited = plan.unedited_answers(models.loaded, &request);
    let mut evaluator = Evaluator::new(models, &request.config, &plan.langs, request.scoring, unedited)?;
    let mut send = |message: &WorkerMessage| send(&mut output, message);
    for assignment in tasks(input) {
        let Assignment { record, methods } = assignment?;
        ensure!(record < plan.records.len(), "record {} is not among the run's {}", record + 1, plan.records.len());
        ensure!(
            !methods.is_empty() && methods.iter().all(|m| plan.methods.contains(m)),
            "record {}: methods {methods:?} are not the run's {:?}",
            record + 1,
            plan.methods
        );
        let mut stage_error = None;
        let mut on_stage = |stage| {
            if let Err(e) = send(&WorkerMessage::Stage(stage)) {
                stage_error.get_or_insert(e);
            }
        };
        let finished = match &kept {
            Some(kept) => {
                let group = evaluator.group(record, &plan.records[record])?;
                let edits = evaluator.edit(record, &group, &methods, cancel, &mut on_stage)?;
                match edits {
                    Some(edits) if !cancel.load(Ordering::Relaxed) => {
                        kept.save(record, &methods, &edits)?;
                        Some(Vec::new())
                    }
                    _ => None,
                }
            }
            None => evaluator.evaluate_record(&plan.records, record, &methods, cancel, &mut on_stage)?,
        };
        if let Some(e) = stage_error {
            return Err(e);
        }
        match finished {
            Some(results) => send(&WorkerMessage::Finished(results))?,
            None => break,
        }
    }
    Ok(())
}

/// Runs the evaluation over `jobs` workers started by `start_worker` (given each worker's number
/// from 0; fewer are started when fewer records are left) and returns its report, as [`super::run`]
/// does: results found in the state file are not computed again, and setting `cancel` stops handing
/// out records and returns the report of what was finished. The caller ends workers still running
/// afterwards (a cancelled record is not kept either way). Standard protocol only.
pub fn run_spread(
    loaded: &LoadedModel,
    request: &EvalRequest,
    jobs: usize,
    start_worker: &mut dyn FnMut(usize) -> Result<WorkerLink>,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<EvalReport> {
    ensure!(!request.sequential, "a sequential run scores every record against one cache: spread its edits only");
    let started = Instant::now();
    let mut plan = Plan::new(loaded, request)?;
    plan.warn_of_missing_languages(request);
    let before = plan.results.list.len();
    let total = plan.in_shard_count(request.shard);
    let pending: VecDeque<Assignment> = (plan.missing.iter().enumerate())
        .filter(|(_, methods)| !methods.is_empty())
        .map(|(record, methods)| Assignment { record, methods: methods.clone() })
        .collect();
    let resumed = total - pending.len();
    let mut done = resumed;
    let progress = |done, stage| Progress { phase: EvalPhase::Records, done, total, resumed, stage };
    on_progress(progress(done, None));
    let workers = distribute(pending, jobs, start_worker, cancel, &mut |task: &Assignment, message| match message {
        WorkerMessage::Stage(stage) => {
            on_progress(progress(done, Some(stage)));
            Ok(false)
        }
        WorkerMessage::Finished(results) => {
            if let Some(other) = results.iter().find(|r| r.record != task.record) {
                bail!("it sent record {}", other.record + 1);
            }
            for result in results {
                plan.results.keep(result)?;
            }
            done += 1;
            on_progress(progress(done, None));
            Ok(true)
        }
    })?;
    Ok(plan.report(request, loaded, (before, workers), started))
}

/// Makes a sequential run's edits over `jobs` workers (see [`run_spread`] for `start_worker` and
/// `cancel`): every record without edits kept beside the state file gets them there, and
/// [`super::run`] then scores the run with them. Reports progress as that run's editing phase.
pub fn edit_spread(
    loaded: &LoadedModel,
    request: &EvalRequest,
    jobs: usize,
    start_worker: &mut dyn FnMut(usize) -> Result<WorkerLink>,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    ensure!(request.sequential, "only a sequential run keeps its edits apart from its results");
    let Some(state) = &request.state_file else {
        bail!("a sequential run's workers keep its edits beside its state file: give --out");
    };
    let plan = Plan::new(loaded, request)?;
    // Scoring any record needs every record's edits.
    let needed: Vec<EvalMethod> =
        plan.methods.iter().copied().filter(|m| plan.missing.iter().any(|list| list.contains(m))).collect();
    if !needed.iter().any(|m| m.needs_edit()) {
        return Ok(());
    }
    let kept = KeptEdits::open(&edits_dir_for(state), &plan.identity, loaded.model.config().hidden_size)?;
    let total = plan.records.len();
    let pending: VecDeque<Assignment> = (0..total)
        .filter(|&record| kept.load(record, &needed).is_none())
        .map(|record| Assignment { record, methods: needed.clone() })
        .collect();
    let resumed = total - pending.len();
    let mut done = resumed;
    let progress = |done, stage| Progress { phase: EvalPhase::Editing, done, total, resumed, stage };
    on_progress(progress(done, None));
    distribute(pending, jobs, start_worker, cancel, &mut |_: &Assignment, message| match message {
        WorkerMessage::Stage(stage) => {
            on_progress(progress(done, Some(stage)));
            Ok(false)
        }
        WorkerMessage::Finished(_) => {
            done += 1;
            on_progress(progress(done, None));
            Ok(true)
        }
    })?;
    Ok(())
}
