//! The state file of a run: per (method, record) results appended as JSON lines and flushed one by one,
//! so an interrupted run resumes where it stopped — but only with exactly the same settings and model.
//!
//! Line 1 is a [`StateHeader`]; every further line a [`RecordResult`]. A last line cut short by a crash
//! is dropped when the file is opened. Two runs must not share a state file at the same time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, WrapErr};
use serde::{Deserialize, Serialize};

use super::methods::Scoring;
use super::report::RecordResult;
use super::runner::EvalConfig;
use crate::storage;
use crate::Result;

/// Version of the state file's format.
const STATE_FORMAT_VERSION: u32 = 2;

/// How a record's questions are chosen (`eval::methods::questions`): results of runs that asked other
/// questions do not compare. 1: Specificity skipped the records whose English `src` asked the same
/// relation word for word; 2 (2026-12-04): those sharing a question template in any language.
pub const QUESTION_SET: u32 = 2;

/// What makes stored results valid for this run. Methods and `--limit` may change between runs
/// (except that a sequential run's cache holds all its records, so there the record count counts too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub dataset: String,
    /// Fingerprint of the data file.
    pub data_fingerprint: String,
    pub langs: Vec<String>,
    pub protocol: String,
    /// Sequential runs only: the number of records edited into one cache.
    pub sequential_records: Option<usize>,
    pub model_fingerprint: String,
    pub settings: EvalConfig,
    pub scoring: Scoring,
    /// The run's [`QUESTION_SET`]; state files from before it was recorded read as 1.
    #[serde(default = "first_question_set")]
    pub question_set: u32,
}

fn first_question_set() -> u32 {
    1
}

#[derive(Debug, Serialize, Deserialize)]
struct StateHeader {
    lafn_eval_state: u32,
    identity: RunIdentity,
}

/// The state file next to a report: `report.json` -> `report.state.jsonl`.
pub fn state_path_for(report: &Path) -> PathBuf {
    let stem = report.file_stem().map_or("report".into(), |s| s.to_string_lossy().into_owned());
    report.with_file_name(format!("{stem}.state.jsonl"))
}

/// An open state file, appending results.
pub struct StateFile {
    path: PathBuf,
    file: File,
}

impl StateFile {
    /// Opens (or creates) the state file for a run with `identity` and returns the results stored in it.
    /// Refuses a file written by a run with other settings, data or model.
    pub fn open(path: &Path, identity: &RunIdentity) -> Result<(Self, Vec<RecordResult>)> {
        let (results, intact) = if path.exists() {
            let stored = read_state(path)?;
            let differences = differences(&stored.identity, identity);
            if !differences.is_empty() {
                bail!(
                    "state file {} belongs to a run with different {}: resuming would mix incomparable results. \
                     Use the same settings, or remove the file (or choose another --out) to start over",
                    path.display(),
                    differences.join(", ")
                );
            }
            (stored.results, stored.intact)
        } else {
            (Vec::new(), false)
        };
        // A new file, or one with a cut-off last line: write what is valid so appends start on a fresh
        // line. An intact file is only appended to.
        if !intact {
            write_state(path, identity, &results)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .wrap_err_with(|| format!("cannot open state file {}", path.display()))?;
        Ok((Self { path: path.to_path_buf(), file }, results))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one result and flushes it to disk.
    pub fn append(&mut self, result: &RecordResult) -> Result<()> {
        let line = serde_json::to_string(result)? + "\n";
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .wrap_err_with(|| format!("cannot write state file {}", self.path.display()))
    }
}

/// A state file's contents.
pub struct StoredState {
    pub identity: RunIdentity,
    pub results: Vec<RecordResult>,
    /// The file ends with a whole line (no write was cut short).
    intact: bool,
}

/// Reads a state file. A last line cut short by an interrupted write is dropped.
pub fn read_state(path: &Path) -> Result<StoredState> {
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("cannot read state file {}", path.display()))?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let header: StateHeader = serde_json::from_str(first).wrap_err_with(|| {
        format!("{} is not an evaluation state file: remove it or choose another --out", path.display())
    })?;
    if header.lafn_eval_state != STATE_FORMAT_VERSION {
        bail!(
            "state file {} has format {}, this lafn reads {STATE_FORMAT_VERSION}: remove it to start over",
            path.display(),
            header.lafn_eval_state
        );
    }
    let lines: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let mut intact = text.ends_with('\n');
    let mut results = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<RecordResult>(line) {
            Ok(result) => results.push(result),
            // Only the last line can be cut short by an interrupted write.
            Err(_) if i + 1 == lines.len() => intact = false,
            Err(e) => bail!("state file {} line {}: {e}; remove the file to start over", path.display(), i + 2),
        }
    }
    Ok(StoredState { identity: header.identity, results, intact })
}

/// Writes a whole state file atomically: the header for `identity`, then `results`.
pub fn write_state(path: &Path, identity: &RunIdentity, results: &[RecordResult]) -> Result<()> {
    let header = StateHeader { lafn_eval_state: STATE_FORMAT_VERSION, identity: identity.clone() };
    let mut text = serde_json::to_string(&header)? + "\n";
    for result in results {
        text.push_str(&serde_json::to_string(result)?);
        text.push('\n');
    }
    storage::write_atomic(path, text.as_bytes())
}

/// Names of the identity parts that differ.
pub(super) fn differences(stored: &RunIdentity, current: &RunIdentity) -> Vec<&'static str> {
    let mut out = Vec::new();
    if stored.dataset != current.dataset || stored.data_fingerprint != current.data_fingerprint {
        out.push("data");
    }
    if stored.langs != current.langs {
        out.push("languages");
    }
    if stored.protocol != current.protocol || stored.sequential_records != current.sequential_records {
        out.push("protocol (sequential runs also need the same --limit)");
    }
    if stored.model_fingerprint != current.model_fingerprint {
        out.push("model");
    }
    if stored.settings != current.settings {
        out.push("settings");
    }
    if stored.scoring != current.scoring {
        out.push("--scoring");
    }
    if stored.question_set != current.question_set {
        out.push("questions (an earlier lafn chose other Specificity questions)");
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;
    use serde_json::Value;

    use super::*;
    use crate::eval::{Dataset, EvalMethod, EvalReport};

    fn results_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// State files of the current format load through the resume path.
    #[test]
    fn committed_state_files_of_this_format_resume() {
        for stem in ["scope-other-relations-8x6", "scope-subject-only-8x6"] {
            let dir = tempfile::tempdir().unwrap();
            let state_path = dir.path().join("copy.state.jsonl");
            std::fs::copy(results_dir().join(format!("{stem}.state.jsonl")), &state_path).unwrap();
            let text = read(&state_path);
            let header: StateHeader = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(header.lafn_eval_state, STATE_FORMAT_VERSION);
            let (_, stored) = StateFile::open(&state_path, &header.identity).unwrap();
            assert_eq!(stored.len(), text.lines().count() - 1, "{stem}: every result line loads");
            assert!(stored.iter().any(|result| result.method == EvalMethod::LuLafns), "{stem}");
        }
    }

    /// A state file from before the question set was recorded reads as set 1 and does not resume a run
    /// of this version: its Specificity questions were others.
    #[test]
    fn results_asked_other_questions_do_not_resume() {
        let dir = tempfile::tempdir().unwrap();
        let state_path = dir.path().join("old.state.jsonl");
        std::fs::copy(results_dir().join("scope-other-relations-8x6.state.jsonl"), &state_path).unwrap();
        let stored = read_state(&state_path).unwrap().identity;
        assert_eq!(stored.question_set, 1);
        let current = RunIdentity { question_set: QUESTION_SET, ..stored.clone() };
        assert_eq!(differences(&stored, &current), ["questions (an earlier lafn chose other Specificity questions)"]);
        let error = StateFile::open(&state_path, &current).err().unwrap().to_string();
        assert!(error.contains("different questions"), "{error}");
    }

    /// Every committed report and state file, of any format, names its dataset and methods as the command
    /// line does (`--dataset`, `--method`) and as serde reads them; every report of the current format (with
    /// teacher-forced and generated tables) loads as an [`EvalReport`], fields added since included.
    #[test]
    fn committed_results_name_datasets_and_methods_as_the_command_line() {
        let mut files: Vec<PathBuf> = ["", "steps"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(results_dir().join(sub)).unwrap())
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        let parse_method = |value: &Value| {
            let method: EvalMethod = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(EvalMethod::from_str(value.as_str().unwrap(), false), Ok(method));
        };
        let parse_dataset = |value: &Value| {
            let dataset: Dataset = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(Dataset::from_str(value.as_str().unwrap(), false), Ok(dataset));
        };
        let (mut reports, mut states, mut current_reports) = (0, 0, 0);
        for path in files {
            let name = path.to_string_lossy();
            if name.ends_with(".state.jsonl") {
                let text = read(&path);
                let mut lines = text.lines().map(|line| serde_json::from_str::<Value>(line).unwrap());
                parse_dataset(&lines.next().unwrap()["identity"]["dataset"]);
                lines.for_each(|result| parse_method(&result["method"]));
                states += 1;
            } else if name.ends_with(".json") {
                let report: Value = serde_json::from_str(&read(&path)).unwrap();
                // Not every .json there is a report: some are settings files.
                if let Some(methods) = report.get("methods").and_then(Value::as_array) {
                    // Reports from before the teacher-forced/generated split keep one table per method.
                    if methods.iter().all(|m| m.get("teacher_forced").is_some()) {
                        if let Err(e) = serde_json::from_value::<EvalReport>(report.clone()) {
                            panic!("{name} does not load as this version's report: {e}");
                        }
                        current_reports += 1;
                    }
                    parse_dataset(&report["dataset"]);
                    methods.iter().for_each(|m| parse_method(&m["method"]));
                    reports += 1;
                }
            }
        }
        assert!(reports >= 7 && states >= 7, "{reports} reports, {states} state files");
        assert!(current_reports >= 2, "{current_reports} reports of the current format");
    }
}
