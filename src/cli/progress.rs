//! Progress of long CLI jobs (model download, evaluation, edit) on stderr: an indicatif bar redrawn in
//! place when stderr is a terminal. In a log or CI, where every redraw would stay as a line, the bar is
//! hidden and plain status lines are written at the pace the job chose ([`PlainLines`]).

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle};

/// What a bar shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The bytes of a download.
    Bytes,
    /// Items (records, steps) done of a total, with elapsed time and ETA.
    Count,
    /// Work of unknown length: a spinner and the message.
    Spinner,
}

/// When a hidden bar (stderr not a terminal) writes a plain status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainLines {
    /// Never: the job's own output already logs its progress.
    Never,
    /// Whenever the position moves: one line per record.
    EachStep,
    /// When the position reaches another tenth of the total: downloads move thousands of times.
    EveryTenth,
}

/// The progress display of one job: a sequence of bars, each started below the last.
pub struct JobProgress {
    plain: PlainLines,
    on_terminal: bool,
    /// The latest bar; `None` before the first [`JobProgress::start`].
    current: Option<Bar>,
}

struct Bar {
    bar: ProgressBar,
    look: Look,
    /// The position the bar started at: the ETA counts only what was done since, so results resumed
    /// from an earlier run do not make it look short.
    first: u64,
    /// Pace key (see [`PlainLines`]) of the last plain line written.
    last_plain: Option<u64>,
}

impl JobProgress {
    pub fn new(plain: PlainLines) -> Self {
        Self { plain, on_terminal: std::io::stderr().is_terminal(), current: None }
    }

    /// Starts a new bar at `done` of `total` (the last bar stays as it was drawn); its elapsed time and
    /// ETA count from now. Nothing is shown before the first [`JobProgress::update`].
    pub fn start(&mut self, look: Look, prefix: impl Into<Cow<'static, str>>, done: u64, total: Option<u64>) {
        let target = if self.on_terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(total, target)
            .with_style(style(look, done))
            .with_prefix(prefix)
            .with_position(done)
            // A bar dropped unfinished (the job failed) stays as it was, not drawn as complete.
            .with_finish(ProgressFinish::Abandon);
        if self.on_terminal {
            // The spinner turns and the clocks move between updates (an eval record can take minutes).
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        self.current = Some(Bar { bar, look, first: done, last_plain: None });
    }

    /// Whether a bar is started and not finished.
    pub fn is_running(&self) -> bool {
        self.current.as_ref().is_some_and(|current| !current.bar.is_finished())
    }

    /// Moves the bar to `done`; in a log, writes a status line when the pace says so.
    pub fn update(&mut self, done: u64) {
        let Some(current) = &mut self.current else { return };
        current.bar.set_position(done);
        if self.on_terminal {
            return;
        }
        let Some(key) = pace_key(self.plain, done, current.bar.length()) else { return };
        if current.last_plain != Some(key) {
            current.last_plain = Some(key);
            eprintln!("{}", current.status_line());
        }
    }

    /// Moves the bar to `done` past items that needed no work (found done by an earlier run): the ETA's
    /// pace counts only the items this run worked on.
    pub fn skip_to(&mut self, done: u64) {
        let Some(current) = &mut self.current else { return };
        current.first += done.saturating_sub(current.bar.position());
        current.bar.set_style(style(current.look, current.first));
        self.update(done);
    }

    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        if let Some(current) = &self.current {
            current.bar.set_message(message);
        }
    }

    /// Writes a line to stderr above the running bar; in a log, the status after it is written again.
    pub fn println(&mut self, line: &str) {
        match &mut self.current {
            Some(current) if self.on_terminal && !current.bar.is_finished() => current.bar.println(line),
            current => {
                eprintln!("{line}");
                if let Some(current) = current {
                    current.last_plain = None;
                }
            }
        }
    }

    /// Runs `write` (printing to stdout, say) with the bar cleared, then draws the bar again.
    pub fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.current {
            Some(current) => current.bar.suspend(write),
            None => write(),
        }
    }

    /// Finishes the bar and leaves it on screen.
    pub fn finish(&self) {
        if let Some(current) = &self.current {
            current.bar.finish();
        }
    }

    /// Finishes the bar and removes it from the screen.
    pub fn clear(&self) {
        if let Some(current) = &self.current {
            current.bar.finish_and_clear();
        }
    }
}

impl Bar {
    /// The bar's state as one plain line, for logs.
    fn status_line(&self) -> String {
        let (done, total) = (self.bar.position(), self.bar.length());
        let line = match self.look {
            Look::Bytes => bytes_line(done, total.unwrap_or(0)),
            Look::Count => format!(
                "{} {done}/{}  elapsed {}  ETA {}  {}",
                self.bar.prefix(),
                total.map_or("?".into(), |total| total.to_string()),
                clock(self.bar.elapsed()),
                eta(done, total, self.first, self.bar.elapsed()),
                self.bar.message()
            ),
            Look::Spinner => self.bar.message(),
        };
        line.trim().to_string()
    }
}

/// Which pace step `done` of `total` is in; `None`: no plain lines.
fn pace_key(plain: PlainLines, done: u64, total: Option<u64>) -> Option<u64> {
    match plain {
        PlainLines::Never => None,
        PlainLines::EachStep => Some(done),
        PlainLines::EveryTenth => Some((fraction(done, total.unwrap_or(0)) * 10.0) as u64),
    }
}

fn style(look: Look, first: u64) -> ProgressStyle {
    let template = match look {
        Look::Bytes => {
            "[{bar:30}] {percent:>3}% {decimal_bytes}/{decimal_total_bytes}  {decimal_bytes_per_sec}  ETA {eta_mean}"
        }
        Look::Count => "{prefix} [{bar:30}] {pos}/{len}  elapsed {elapsed_clock}  ETA {eta_mean}  {wide_msg}",
        Look::Spinner => "{spinner} {msg}  {elapsed_clock}",
    };
    ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .progress_chars("#>-")
        .with_key("elapsed_clock", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = out.write_str(&clock(state.elapsed()));
        })
        .with_key("eta_mean", move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = out.write_str(&eta(state.pos(), state.len(), first, state.elapsed()));
        })
}

/// The time left at the mean pace since the bar started at `first`; "?" until something was done.
fn eta(done: u64, total: Option<u64>, first: u64, elapsed: Duration) -> String {
    let finished = done.saturating_sub(first);
    match total {
        Some(total) if finished > 0 => clock(elapsed.mul_f64(total.saturating_sub(done) as f64 / finished as f64)),
        _ => "?".into(),
    }
}

/// A download's state as the line logs have always had: `[#####     ]  16.7% 2.0/12.0 MB`.
fn bytes_line(done: u64, total: u64) -> String {
    let fraction = fraction(done, total);
    let filled = ((fraction * 30.0).round() as usize).min(30);
    format!(
        "[{}{}] {:5.1}% {:.1}/{:.1} MB",
        "#".repeat(filled),
        " ".repeat(30 - filled),
        fraction * 100.0,
        done as f64 / 1e6,
        total as f64 / 1e6
    )
}

fn fraction(done: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        done as f64 / total as f64
    }
}

/// `4m05s`, or `1h02m` from an hour on.
fn clock(duration: Duration) -> String {
    let s = duration.as_secs_f64().round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_get_a_line_per_tenth_of_a_download_or_per_record() {
        let tenths: Vec<Option<u64>> =
            [0, 99, 100, 999, 1000].map(|done| pace_key(PlainLines::EveryTenth, done, Some(1000))).into();
        assert_eq!(tenths, [Some(0), Some(0), Some(1), Some(9), Some(10)]);
        assert_eq!(pace_key(PlainLines::EveryTenth, 5, Some(0)), Some(0));
        assert_eq!(pace_key(PlainLines::EachStep, 7, Some(50)), Some(7));
        assert_eq!(pace_key(PlainLines::Never, 7, Some(50)), None);
    }

    #[test]
    fn the_eta_counts_only_what_this_run_did() {
        // 10 records resumed, 2 done in 60 s: 8 left at 30 s each.
        assert_eq!(eta(12, Some(20), 10, Duration::from_secs(60)), "4m00s");
        assert_eq!(eta(10, Some(20), 10, Duration::from_secs(60)), "?");
        assert_eq!(eta(3, None, 0, Duration::from_secs(60)), "?");
        assert_eq!(clock(Duration::from_secs(3725)), "1h02m");
    }

    #[test]
    fn download_lines_keep_their_format() {
        assert_eq!(bytes_line(2_000_000, 12_000_000), "[#####                         ]  16.7% 2.0/12.0 MB");
        assert_eq!(bytes_line(0, 0), "[                              ]   0.0% 0.0/0.0 MB");
    }

    #[test]
    fn plain_status_lines() {
        let mut progress = JobProgress { plain: PlainLines::Never, on_terminal: false, current: None };
        progress.start(Look::Count, "records", 3, Some(50));
        progress.set_message("(3 resumed)  ");
        let line = progress.current.as_ref().unwrap().status_line();
        assert_eq!(line, "records 3/50  elapsed 0m00s  ETA ?  (3 resumed)");
    }

    #[test]
    fn skipped_items_do_not_count_as_pace() {
        let mut progress = JobProgress { plain: PlainLines::Never, on_terminal: false, current: None };
        progress.start(Look::Count, "groups", 0, Some(10));
        progress.update(1);
        progress.skip_to(4);
        let current = progress.current.as_ref().unwrap();
        assert_eq!((current.bar.position(), current.first), (4, 3), "one group done, three skipped");
    }
}
