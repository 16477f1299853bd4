//! One run over many machines: `lafn eval --shard K/N` evaluates every N-th record, and
//! [`merge`] joins the shards' state files into the report one run over all records gives. Any
//! scheduler (a Slurm array, GNU parallel, Kubernetes Jobs) can then spread a benchmark.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use super::methods::EvalMethod;
use super::report::{aggregate, EvalReport, RecordResult};
use super::state::{differences, read_state, state_path_for, RunIdentity};
use crate::Result;

/// Part `index` (from 1) of `count`: the records `i` with `i % count == index - 1`, so that every
/// part gets early and late records alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn contains(self, record: usize) -> bool {
        record % self.count == self.index - 1
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let usage = || format!("`{text}`: a shard is K/N with 1 <= K <= N, e.g. 2/8");
        let (k, n) = text.split_once('/').ok_or_else(usage)?;
        let (index, count) = (k.trim().parse().map_err(|_| usage())?, n.trim().parse().map_err(|_| usage())?);
        if index == 0 || index > count {
            return Err(usage());
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The report of merged runs, with the results it was aggregated from.
pub struct Merged {
    pub report: EvalReport,
    pub identity: RunIdentity,
    pub results: Vec<RecordResult>,
    /// (method, record) pairs of the merged runs' records that no run has a result for (a shard
    /// not run, or cancelled).
    pub missing: Vec<(EvalMethod, usize)>,
}

/// Merges the reports at `paths` (each with its state file beside it) of runs with the same data,
/// model, settings and scoring. A (method, record) result found in several runs is taken once.
pub fn merge(paths: &[PathBuf]) -> Result<Merged> {
    let Some(first_path) = paths.first() else { bail!("give the reports to merge") };
    let read_report = |path: &Path| -> Result<EvalReport> {
        let text = std::fs::read_to_string(path).wrap_err_with(|| format!("cannot read report {}", path.display()))?;
        serde_json::from_str(&text).wrap_err_with(|| format!("{} is not a lafn eval report", path.display()))
    };
    let first = read_report(first_path)?;
    let identity = read_state(&state_path_for(first_path))?.identity;
    let (mut methods, mut results, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
    let (mut wall_seconds, mut records_this_run, mut records) = (0.0, 0, 0);
    for path in paths {
        let report = read_report(path)?;
        let state =
            read_state(&state_path_for(path)).wrap_err_with(|| format!("the state file of {}", path.display()))?;
        let differ = differences(&identity, &state.identity);
        if !differ.is_empty() {
            bail!("{} was run with different {} than {}", path.display(), differ.join(", "), first_path.display());
        }
        for method in report.methods.iter().map(|m| m.method) {
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        for result in state.results {
            if methods.contains(&result.method) && seen.insert((result.method, result.record)) {
                results.push(result);
            }
        }
        wall_seconds += report.wall_seconds;
        records_this_run += report.records_this_run;
        records = records.max(report.records);
    }
    results.retain(|r| r.record < records);
    let missing = (0..records)
        .flat_map(|record| methods.iter().map(move |&method| (method, record)))
        .filter(|key| !seen.contains(key))
        .collect();
    let report = EvalReport {
        records,
        methods: aggregate(&results, &methods, &identity.langs),
        shard: None,
        wall_seconds,
        records_this_run,
        // The parts' wall times are added up: as if one process after the other.
        workers: 1,
        ..first
    };
    if report.methods.is_empty() {
        return Err(eyre!("the reports name no method"));
    }
    Ok(Merged { report, identity, results, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_records_round_robin() {
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!(shard, Shard { index: 2, count: 3 });
        assert_eq!(shard.to_string(), "2/3");
        assert_eq!((0..7).filter(|&r| shard.contains(r)).collect::<Vec<_>>(), [1, 4]);
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        // Every record is in exactly one of the shards.
        let shards: Vec<Shard> = (1..=4).map(|index| Shard { index, count: 4 }).collect();
        assert!((0..50).all(|r| shards.iter().filter(|s| s.contains(r)).count() == 1));
    }
}
