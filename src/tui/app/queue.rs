//! "Edit all": every group not cached yet, edited one after another. The queue hands the worker one
//! edit at a time, the next when the last one's job ends, so other jobs (a chat question) run in between
//! and a cancel has only the running edit to stop.

use std::collections::VecDeque;

use super::{App, Command};
use crate::session::GroupStatus;
use crate::tui::worker::EditResult;

#[derive(Debug, Clone, Default)]
pub struct EditQueue {
    /// Ids of the groups still to edit, in order.
    waiting: VecDeque<u64>,
    /// The group whose edit job was submitted and has not ended.
    pub current: Option<u64>,
    /// Whether the current group's edit was cached (else its job failed or was cancelled).
    current_cached: bool,
    /// Groups whose edit ended (cached or failed) and how many the queue took at the start.
    pub done: usize,
    pub total: usize,
    pub failed: usize,
}

impl EditQueue {
    /// Whether group `id` waits for its edit.
    pub fn waits(&self, id: u64) -> bool {
        self.waiting.contains(&id)
    }

    fn cached(&self) -> usize {
        self.done - self.failed
    }
}

impl App {
    /// Queues every group not cached yet and submits the first edit.
    pub(super) fn edit_all(&mut self) -> Vec<Command> {
        if self.edits.queue.is_some() {
            self.message = "edit all runs already".into();
            return Vec::new();
        }
        let groups = self.edits.groups.iter().filter(|g| g.saved.status != GroupStatus::Cached);
        let waiting: VecDeque<u64> = groups.map(|g| g.id).collect();
        if waiting.is_empty() {
            self.message = "every group is cached: nothing to edit".into();
            return Vec::new();
        }
        self.edits.queue = Some(EditQueue { total: waiting.len(), waiting, ..EditQueue::default() });
        self.submit_next_queued()
    }

    /// Submits the edit of the next queued group that can be edited; a group that is not valid is counted
    /// failed (and said why), one deleted meanwhile is passed over. Ends the queue when none is left.
    fn submit_next_queued(&mut self) -> Vec<Command> {
        while let Some(id) = self.edits.queue.as_mut().and_then(|queue| queue.waiting.pop_front()) {
            let Some(g) = self.edits.group_by_id(id) else {
                self.queue_counts(|queue| queue.done += 1);
                continue;
            };
            if let Err(e) = g.saved.group.validate() {
                self.error = Some(format!("edit all passed over `{}`: {e:#}", g.saved.group.name));
                self.queue_counts(|queue| {
                    queue.done += 1;
                    queue.failed += 1;
                });
                continue;
            }
            let job = self.edit_job(id).expect("the group exists");
            self.queue_counts(|queue| {
                queue.current = Some(id);
                queue.current_cached = false;
            });
            self.optimize.editing_group = Some(id);
            return self.submit(job);
        }
        if let Some(queue) = self.edits.queue.take() {
            self.message =
                format!("edit all done: {} cached, {} failed, of {}", queue.cached(), queue.failed, queue.total);
        }
        Vec::new()
    }

    fn queue_counts(&mut self, change: impl FnOnce(&mut EditQueue)) {
        if let Some(queue) = &mut self.edits.queue {
            change(queue);
        }
    }

    /// Notes an edit's result for the queue when it is the queued group's.
    pub(super) fn queued_edit_result(&mut self, result: &EditResult) {
        let cached = result.cache_entry.is_some();
        self.queue_counts(|queue| {
            if queue.current == Some(result.group_id) {
                queue.current_cached = cached;
            }
        });
    }

    /// The edit job of group `group_id` ended: when it was the queue's, the next group's edit starts.
    pub(super) fn queued_edit_finished(&mut self, group_id: u64) -> Vec<Command> {
        let Some(queue) = self.edits.queue.as_mut().filter(|queue| queue.current == Some(group_id)) else {
            return Vec::new();
        };
        queue.current = None;
        queue.done += 1;
        if !queue.current_cached {
            queue.failed += 1;
        }
        self.submit_next_queued()
    }

    /// Empties the queue; the running edit is the caller's to cancel. False when there was none.
    pub(super) fn cancel_queue(&mut self) -> bool {
        let Some(queue) = self.edits.queue.take() else { return false };
        self.message = format!(
            "edit all cancelled: {} of {} cached, the running edit stops without caching",
            queue.cached(),
            queue.total
        );
        true
    }
}
