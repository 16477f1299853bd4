//! A sequential run's edits, kept on disk beside its state file: the run edits every record before it
//! scores any, so without them a run stopped after two hours of editing would start over.
//!
//! `<stem>.edits/` beside `<stem>.state.jsonl` holds `identity.json` (the run's [`RunIdentity`]: edits of
//! another run are never reused) and per record `record-N.json` with its update values in
//! `record-N.<method>.safetensors`. The JSON is written last, so a record counts only when all its
//! files are whole; a damaged or missing record is edited again.

use std::fs;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{bail, WrapErr};
use serde::{Deserialize, Serialize};

use super::methods::EvalMethod;
use super::runner::RecordEdits;
use super::state::RunIdentity;
use crate::method::pipeline::EditRun;
use crate::method::{EditGroup, LocatedNeurons, OptimizeOutcome, OptimizeStep, StopReason, UpdateValues};
use crate::storage;
use crate::Result;

/// Version of `record-N.json`.
const FORMAT_VERSION: u32 = 1;

/// The edits directory of a state file: `report.state.jsonl` -> `report.edits`.
pub fn edits_dir_for(state_file: &Path) -> PathBuf {
    let name = state_file.file_name().map_or("report".into(), |n| n.to_string_lossy().into_owned());
    let stem = name.strip_suffix(".state.jsonl").unwrap_or(&name);
    state_file.with_file_name(format!("{stem}.edits"))
}

/// One optimisation's outcome without its update values (they are in their own file).
#[derive(Serialize, Deserialize)]
struct KeptOutcome {
    history: Vec<OptimizeStep>,
    stop: StopReason,
}

/// What `record-N.json` holds.
#[derive(Serialize, Deserialize)]
struct KeptRecord {
    version: u32,
    /// The methods these edits were made for: a run needing more edits the record again.
    made_for: Vec<EvalMethod>,
    group: EditGroup,
    located: LocatedNeurons,
    ours: KeptOutcome,
    locate_seconds: f64,
    optimize_seconds: f64,
    paraphrase_seconds: f64,
    random: Option<(LocatedNeurons, KeptOutcome, f64)>,
    fine_tuned_seconds: Option<f64>,
}

/// The edits directory of one sequential run.
pub(super) struct KeptEdits {
    dir: PathBuf,
    hidden: usize,
}

impl KeptEdits {
    /// Opens `dir` for the run `identity` on a model of width `hidden`. Edits kept by a run with another
    /// identity (or of unknown identity) are removed.
    pub(super) fn open(dir: &Path, identity: &RunIdentity, hidden: usize) -> Result<Self> {
        let identity_file = dir.join("identity.json");
        let same_run = storage::read_json::<RunIdentity>(&identity_file).ok().as_ref() == Some(identity);
        if !same_run {
            fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
            // Only our own files go: whatever else someone put in the directory stays.
            let entries = fs::read_dir(dir).wrap_err_with(|| format!("cannot read {}", dir.display()))?;
            for entry in entries {
                let path = entry?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if name.starts_with("record-") && (name.ends_with(".json") || name.ends_with(".safetensors")) {
                    fs::remove_file(&path).wrap_err_with(|| format!("cannot remove {}", path.display()))?;
                }
            }
            storage::write_json_atomic(&identity_file, identity)?;
        }
        storage::remove_stale_temps(dir)?;
        Ok(Self { dir: dir.to_path_buf(), hidden })
    }

    /// The edits directory a coordinator has opened with [`KeptEdits::open`], for a worker saving
    /// the edits it makes into it (without the checks and clean-up of opening, which would remove
    /// another worker's files being written).
    pub(super) fn join(dir: &Path, hidden: usize) -> Self {
        Self { dir: dir.to_path_buf(), hidden }
    }

    fn record_file(&self, index: usize) -> PathBuf {
        self.dir.join(format!("record-{}.json", index + 1))
    }

    fn values_file(&self, index: usize, method: EvalMethod) -> PathBuf {
        self.dir.join(format!("record-{}.{method}.safetensors", index + 1))
    }

    /// Record `index`'s kept edits, if they were made for every method in `needed` and read whole.
    /// A damaged record is reported and `None` returned: it is edited again.
    pub(super) fn load(&self, index: usize, needed: &[EvalMethod]) -> Option<RecordEdits> {
        let path = self.record_file(index);
        if !path.exists() {
            return None;
        }
        match self.read(index, needed) {
            Ok(edits) => edits,
            Err(error) => {
                log::warn!("the kept edits of record {} are damaged and are made again: {error:#}", index + 1);
                None
            }
        }
    }

    fn read(&self, index: usize, needed: &[EvalMethod]) -> Result<Option<RecordEdits>> {
        let kept: KeptRecord = storage::read_versioned_json(&self.record_file(index), FORMAT_VERSION)?;
        if !needed.iter().all(|m| !m.needs_edit() || kept.made_for.contains(m)) {
            return Ok(None);
        }
        let values = |method| UpdateValues::load(&self.values_file(index, method), self.hidden);
        let outcome = |kept: KeptOutcome, update| OptimizeOutcome { update, history: kept.history, stop: kept.stop };
        let run = EditRun {
            group: kept.group,
            located: kept.located,
            outcome: outcome(kept.ours, values(EvalMethod::LuLafns)?),
            locate_seconds: kept.locate_seconds,
            optimize_seconds: kept.optimize_seconds,
        };
        let random = match kept.random {
            Some((located, ours, seconds)) => {
                Some((located, outcome(ours, values(EvalMethod::RandomNeurons)?), seconds))
            }
            None => None,
        };
        let fine_tuned = match kept.fine_tuned_seconds {
            Some(seconds) => Some((values(EvalMethod::FtL)?, seconds)),
            None => None,
        };
        if needed.contains(&EvalMethod::RandomNeurons) && random.is_none() {
            bail!("the random-neurons edit is missing");
        }
        Ok(Some(RecordEdits { run, paraphrase_seconds: kept.paraphrase_seconds, random, fine_tuned }))
    }

    /// Keeps record `index`'s edits, made for `made_for`.
    pub(super) fn save(&self, index: usize, made_for: &[EvalMethod], edits: &RecordEdits) -> Result<()> {
        // A record kept before (for fewer methods) must not pair its JSON with the new values.
        let record_file = self.record_file(index);
        if record_file.exists() {
            fs::remove_file(&record_file).wrap_err_with(|| format!("cannot remove {}", record_file.display()))?;
        }
        let write_values = |method, values: &UpdateValues| {
            storage::write_atomic_with(&self.values_file(index, method), |temp| values.save(temp))
        };
        write_values(EvalMethod::LuLafns, &edits.run.outcome.update)?;
        if let Some((_, outcome, _)) = &edits.random {
            write_values(EvalMethod::RandomNeurons, &outcome.update)?;
        }
        if let Some((values, _)) = &edits.fine_tuned {
            write_values(EvalMethod::FtL, values)?;
        }
        let outcome = |o: &OptimizeOutcome| KeptOutcome { history: o.history.clone(), stop: o.stop };
        let run = &edits.run;
        let kept = KeptRecord {
            version: FORMAT_VERSION,
            made_for: made_for.iter().copied().filter(|m| m.needs_edit()).collect(),
            group: run.group.clone(),
            located: run.located.clone(),
            ours: outcome(&run.outcome),
            locate_seconds: run.locate_seconds,
            optimize_seconds: run.optimize_seconds,
            paraphrase_seconds: edits.paraphrase_seconds,
            random: edits.random.as_ref().map(|(located, o, seconds)| (located.clone(), outcome(o), *seconds)),
            fine_tuned_seconds: edits.fine_tuned.as_ref().map(|(_, seconds)| *seconds),
        };
        storage::write_json_atomic(&record_file, &kept)
    }
}
