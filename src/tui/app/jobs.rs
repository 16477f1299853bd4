//! The worker's jobs as the app sees them: how many are pending, what the running one is doing, and
//! where each worker event goes.

use std::collections::VecDeque;

use super::{App, Command};
use crate::fetch::FetchEvent;
use crate::tui::worker::{Job, WorkerEvent};

/// What the running job reports, for the status line and the Model pane.
#[derive(Debug, Clone, Default)]
pub struct Busy {
    pub label: String,
    pub stage: String,
    /// Bytes done and total of a fetch.
    pub bytes: Option<(u64, u64)>,
    /// Edit step and step count.
    pub steps: Option<(usize, usize)>,
}

/// Jobs submitted and not yet finished. The app makes every job command through [`Jobs::submit`] and the
/// worker runs them in order and ends each with [`WorkerEvent::Finished`], so this list matches the
/// worker's queue and the job a `Finished` ends is the first of it.
#[derive(Debug, Default)]
pub struct Jobs {
    /// Per pending job, in order: the group it edits, for an edit job.
    pending: VecDeque<Option<u64>>,
    pub busy: Option<Busy>,
}

impl Jobs {
    pub fn submit(&mut self, job: Job) -> Command {
        let edits = match &job {
            Job::Edit { group_id, .. } => Some(*group_id),
            _ => None,
        };
        self.pending.push_back(edits);
        Command::Job(job)
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Ends the first pending job; returns the group it edited, for an edit job.
    fn finished(&mut self) -> Option<u64> {
        self.busy = None;
        self.pending.pop_front().flatten()
    }

    fn progress(&mut self, report: impl FnOnce(&mut Busy)) {
        if let Some(busy) = &mut self.busy {
            report(busy);
        }
    }
}

impl App {
    pub(super) fn worker_event(&mut self, event: WorkerEvent) -> Vec<Command> {
        match event {
            WorkerEvent::Started(label) => self.jobs.busy = Some(Busy { label, ..Busy::default() }),
            WorkerEvent::Stage(stage) => self.jobs.progress(|busy| {
                busy.stage = stage;
                busy.bytes = None;
            }),
            WorkerEvent::Fetch(FetchEvent::Stage(stage)) => self.jobs.progress(|busy| busy.stage = stage),
            WorkerEvent::Fetch(FetchEvent::Bytes { done, total }) => {
                self.jobs.progress(|busy| busy.bytes = Some((done, total)))
            }
            WorkerEvent::ModelLoaded { spec, info, cache_dir, cache_rows } => {
                self.message = format!("loaded {spec}: {} cached edits in {}", cache_rows.len(), cache_dir.display());
                self.model.loaded(spec, *info, cache_dir, cache_rows);
                self.neurons.forget_tokens();
                return self.check_cache_entries();
            }
            WorkerEvent::Paraphrased { group_id, lang_index, paraphrases } => {
                if let Some(message) = self.edits.paraphrased(group_id, lang_index, paraphrases) {
                    self.message = message;
                }
            }
            WorkerEvent::Located { group_id, group, located, measurements } => {
                let layers: Vec<usize> = located.selected.keys().copied().collect();
                let message = format!("located {} LAFNs in layers {layers:?}", located.neuron_count());
                if self.edits.located(group_id, group, located, measurements) {
                    self.message = message;
                }
                self.neurons.requested_tokens.clear();
                return self.request_top_tokens();
            }
            WorkerEvent::Step { group_id, step } => {
                let steps = self.settings.edit.steps;
                self.jobs.progress(|busy| busy.steps = Some((step.step, steps)));
                self.edits.step(group_id, step);
            }
            WorkerEvent::Edited(result) => return self.edited(*result),
            WorkerEvent::CacheEntriesChecked(verdicts) => self.cache_entries_checked(verdicts),
            WorkerEvent::ChatText { turn, with_cache, text } => self.chat.answer_text(turn, with_cache, &text),
            WorkerEvent::ChatDone { turn, with_cache, fired, out_of_scope, read_as } => {
                self.chat.answer_done(turn, with_cache, &fired, &out_of_scope, read_as)
            }
            WorkerEvent::Taught(lines) => self.message = lines.join("; "),
            WorkerEvent::TopTokens { layer, tokens } => self.neurons.top_tokens_found(layer, tokens),
            WorkerEvent::Failed(error) => self.error = Some(error),
            WorkerEvent::Finished => {
                let edited_group = self.jobs.finished();
                if self.jobs.pending() == 0 {
                    self.optimize.editing_group = None;
                }
                if let Some(group_id) = edited_group {
                    return self.queued_edit_finished(group_id);
                }
            }
        }
        Vec::new()
    }
}
