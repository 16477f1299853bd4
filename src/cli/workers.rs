//! `--jobs N` of `lafn eval` and `lafn edit`: the worker processes long work is spread over (see
//! `lafn::workers`). Each is this program again (`lafn <the same arguments> --worker`) with its share
//! of the CPUs.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use color_eyre::eyre::WrapErr;
use lafn::workers::WorkerLink;
use lafn::Result;

/// Lines of a worker's stderr kept to explain its failure.
const KEPT_STDERR_LINES: usize = 40;

/// Memory a worker needs per model parameter: the dense f32 copy it edits, the quantized weights
/// that answer, an edit's activations, an evaluation's kept answers. Measured on gemma-3-270m (268M
/// parameters): workers peaking at 1.5 GB over 50 MzsRE records.
const WORKER_BYTES_PER_PARAMETER: u64 = 6;

/// How many workers a run gets: `asked` (`--jobs`), or one per CPU this process may use; never
/// more than the available memory holds (a worker more would have the system kill one), which a
/// warning says when it cuts what was asked.
pub(super) fn jobs(asked: Option<usize>, parameters: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = asked.unwrap_or(cpus).max(1);
    let per_worker = (parameters as u64).saturating_mul(WORKER_BYTES_PER_PARAMETER).max(1);
    let Some(available) = available_memory_bytes() else { return wanted };
    let fit = ((available / per_worker).max(1) as usize).min(wanted);
    if asked.is_some() && fit < wanted {
        log::warn!(
            "--jobs {wanted}: the available memory ({:.1} GB) holds {fit} workers of this model (about {:.1} GB \
             each); running {fit}",
            available as f64 / 1e9,
            per_worker as f64 / 1e9
        );
    }
    fit
}

/// `MemAvailable` of /proc/meminfo (Linux); `None` where it cannot be read.
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `spread` (work spread over workers) with `jobs` worker processes to start, and ends them
/// afterwards; a failure carries what the workers wrote to stderr.
pub(super) fn spread_over<T>(
    jobs: usize,
    spread: impl FnOnce(&mut dyn FnMut(usize) -> Result<WorkerLink>) -> Result<T>,
) -> Result<T> {
    let mut workers = WorkerProcesses::new(jobs);
    let outcome = spread(&mut |n| workers.start(n));
    let stderr = workers.stderr_report();
    workers.finish();
    outcome.wrap_err_with(|| format!("the worker processes failed{stderr}"))
}

/// The worker processes of one command.
struct WorkerProcesses {
    children: Vec<Child>,
    /// The CPUs each worker computes on, one set per worker (empty: not pinned).
    cpus: Vec<Vec<usize>>,
    /// Threads each worker computes with.
    threads: usize,
    /// The last lines each worker wrote to stderr.
    stderr_tails: Vec<Arc<Mutex<VecDeque<String>>>>,
    /// Warnings already shown: workers meet the same damaged file alike.
    warned: Arc<Mutex<HashSet<String>>>,
}

impl WorkerProcesses {
    /// `jobs` workers, sharing the CPUs this process may use: each gets CPUs of its own
    /// where there are enough (pinned, a worker keeps its caches: 10 records took 86 s pinned, 97 s
    /// not), and as many threads as CPUs.
    fn new(jobs: usize) -> Self {
        let allowed = affinity::allowed_cpus();
        let available = if allowed.is_empty() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            allowed.len()
        };
        let threads = (available / jobs.max(1)).max(1);
        let cpus = if allowed.len() >= jobs * threads {
            allowed.chunks(threads).take(jobs).map(<[usize]>::to_vec).collect()
        } else {
            vec![Vec::new(); jobs]
        };
        Self { children: Vec::new(), cpus, threads, stderr_tails: Vec::new(), warned: Arc::default() }
    }

    /// Starts worker `number` (from 0) with this command's own arguments.
    fn start(&mut self, number: usize) -> Result<WorkerLink> {
        let program = std::env::current_exe().wrap_err("cannot find this program to start a worker")?;
        let mut command = Command::new(program);
        command
            .args(std::env::args_os().skip(1))
            .arg("--worker")
            // Set here: this process set it for itself at start, and the worker would inherit that.
            .env("RAYON_NUM_THREADS", self.threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cpus) = self.cpus.get(number) {
            affinity::pin(&mut command, cpus);
        }
        let mut child = command.spawn().wrap_err("cannot start a worker process")?;
        let (Some(input), Some(output), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("the worker's streams are piped");
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        self.stderr_tails.push(tail.clone());
        let warned = self.warned.clone();
        // A worker's warnings reach the user once; the rest of its stderr explains a failure.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(std::io::Result::ok) {
                if line.starts_with("warning:") && warned.lock().expect("warnings lock").insert(line.clone()) {
                    eprintln!("{line} (worker {})", number + 1);
                }
                let mut tail = tail.lock().expect("stderr tail lock");
                if tail.len() == KEPT_STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        self.children.push(child);
        Ok(WorkerLink { input: Box::new(input), output: Box::new(BufReader::new(output)) })
    }

    /// What the workers wrote to stderr, for an error message.
    fn stderr_report(&self) -> String {
        let mut report = String::new();
        for (number, tail) in self.stderr_tails.iter().enumerate() {
            let tail = tail.lock().expect("stderr tail lock");
            if !tail.is_empty() {
                report += &format!("\nworker {} wrote:\n  {}", number + 1, Vec::from(tail.clone()).join("\n  "));
            }
        }
        report
    }

    /// Ends the workers: those still evaluating a record (a cancelled or failed run) are killed, the
    /// others have ended with their input.
    fn finish(mut self) {
        for child in &mut self.children {
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// CPU affinity (Linux); elsewhere workers are not pinned.
#[cfg(target_os = "linux")]
mod affinity {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// The CPUs this process may run on, in order; empty where they cannot be read.
    pub(super) fn allowed_cpus() -> Vec<usize> {
        // SAFETY: a zeroed cpu_set_t is an empty set, and sched_getaffinity writes at most its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect()
        }
    }

    /// Runs the process `command` starts on `cpus` only (none: anywhere). Failing that, it runs
    /// unpinned: slower, not wrong.
    pub(super) fn pin(command: &mut Command, cpus: &[usize]) {
        if cpus.is_empty() {
            return;
        }
        // SAFETY: as above; the set is built before the fork, and the closure only makes a system
        // call, which is safe between fork and exec.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in cpus {
                libc::CPU_SET(cpu, &mut set);
            }
            command.pre_exec(move || {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                Ok(())
            });
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    pub(super) fn allowed_cpus() -> Vec<usize> {
        Vec::new()
    }

    pub(super) fn pin(_: &mut std::process::Command, _: &[usize]) {}
}
