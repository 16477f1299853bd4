//! Work handed out to worker processes, one task at a time over JSON lines: the coordinator writes a
//! task to a free worker's input and reads the worker's messages about it from its output. Used by
//! `lafn eval --jobs` (records, see [`crate::eval::spread`]) and `lafn edit --jobs` (edit groups); the
//! command line starts the processes and hands their pipes over as [`WorkerLink`]s.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Result;

/// The coordinator's ends of a worker's pipes: tasks are written to `input`, messages read from
/// `output`. Dropping `input` tells the worker that no task follows.
pub struct WorkerLink {
    pub input: Box<dyn Write + Send>,
    pub output: Box<dyn BufRead + Send>,
}

/// A worker's side: the tasks its coordinator writes to `input`, one JSON line each, until it ends.
pub fn tasks<Task: DeserializeOwned>(input: impl BufRead) -> impl Iterator<Item = Result<Task>> {
    input.lines().map(|line| {
        let line = line.wrap_err("reading the coordinator's tasks")?;
        serde_json::from_str(&line).wrap_err_with(|| format!("not a task: {line:.200}"))
    })
}

/// A worker's side: writes `message` to the coordinator as one JSON line, at once.
pub fn send<Message: Serialize>(output: &mut impl Write, message: &Message) -> Result<()> {
    serde_json::to_writer(&mut *output, message)?;
    output.write_all(b"\n")?;
    Ok(output.flush()?)
}

/// How often the coordinator looks at `cancel` while every worker is busy.
const CANCEL_POLL: Duration = Duration::from_millis(200);

/// Hands `pending` out over up to `jobs` workers started by `start_worker` (given each worker's
/// number from 0; no more are started than there are tasks), one task at a time to whichever is
/// free, and passes each message a worker sends about its task to `on_message`, which says whether
/// the task is finished. A task's `Display` names it in errors ("worker 2 failed on record 7"). Returns how many workers ran. Stops handing out when `cancel` is set, and
/// returns without waiting for the tasks in progress: the caller ends the workers.
pub fn distribute<Task: Serialize + fmt::Display, Message: DeserializeOwned + Send + 'static>(
    mut pending: VecDeque<Task>,
    jobs: usize,
    start_worker: &mut dyn FnMut(usize) -> Result<WorkerLink>,
    cancel: &AtomicBool,
    on_message: &mut dyn FnMut(&Task, Message) -> Result<bool>,
) -> Result<usize> {
    // Each worker's messages reach one channel through a thread of its own; the threads end with
    // the workers' output.
    let (sender, messages) = mpsc::channel::<(usize, Result<Message>)>();
    let workers = jobs.max(1).min(pending.len());
    let mut inputs: Vec<Option<Box<dyn Write + Send>>> = Vec::new();
    for worker in 0..workers {
        let WorkerLink { input, output } = start_worker(worker)?;
        inputs.push(Some(input));
        let sender = sender.clone();
        std::thread::Builder::new()
            .name(format!("lafn-worker-{worker}"))
            .spawn(move || {
                for line in output.lines() {
                    let message = line.map_err(color_eyre::Report::from).and_then(|line| {
                        serde_json::from_str(&line).wrap_err_with(|| format!("not a message: {line:.200}"))
                    });
                    let failed = message.is_err();
                    if sender.send((worker, message)).is_err() || failed {
                        return;
                    }
                }
                let _ = sender.send((worker, Err(eyre!("its output ended"))));
            })
            .wrap_err("cannot start a thread to read a worker")?;
    }
    drop(sender);

    // The task each worker is doing.
    let mut busy: Vec<Option<Task>> = (0..workers).map(|_| None).collect();
    let mut assign = |worker: usize, busy: &mut Vec<Option<Task>>| -> Result<()> {
        let next = if cancel.load(Ordering::Relaxed) { None } else { pending.pop_front() };
        match (next, inputs[worker].as_mut()) {
            (Some(task), Some(input)) => {
                serde_json::to_writer(&mut *input, &task)?;
                input.write_all(b"\n")?;
                input.flush().wrap_err_with(|| format!("worker {} has gone", worker + 1))?;
                busy[worker] = Some(task);
            }
            // Nothing left for it: its input ends, and so does the worker.
            _ => inputs[worker] = None,
        }
        Ok(())
    };
    for worker in 0..workers {
        assign(worker, &mut busy)?;
    }
    while busy.iter().any(Option::is_some) && !cancel.load(Ordering::Relaxed) {
        let (worker, message) = match messages.recv_timeout(CANCEL_POLL) {
            Ok(received) => received,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("every worker has gone"),
        };
        let Some(task) = busy[worker].as_ref() else {
            // A worker ending after its input did has nothing more to say.
            continue;
        };
        let message = match message {
            // A signal to the whole process group (Ctrl-C) stops the workers too.
            Err(_) if cancel.load(Ordering::Relaxed) => break,
            Err(e) => return Err(e.wrap_err(format!("worker {} failed on {task}", worker + 1))),
            Ok(message) => message,
        };
        if on_message(task, message).wrap_err_with(|| format!("worker {} on {task}", worker + 1))? {
            busy[worker] = None;
            assign(worker, &mut busy)?;
        }
    }
    Ok(workers)
}
