//! Evaluation on MzsRE, Bi-ZsRE and BMIKE-53 (METHOD.md section 4): every record is edited with each
//! compared method and scored in every language on Reliability, Generality, Locality and Portability (F1 / EM).
//!
//! [`dataset`] reads the benchmarks' files, [`metrics`] scores one answer, [`methods`] says what each
//! method applies to a question, [`runner`] drives a run (standard or sequential protocol, resumable
//! through [`state`] and, for a sequential run's edits, `kept_edits`), [`report`] aggregates the
//! per-record results into tables, [`shard`] splits a run over machines and merges the parts,
//! [`spread`] over worker processes on one machine, [`unedited`] keeps the unedited model's answers
//! between runs.

pub mod dataset;
mod kept_edits;
pub mod methods;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod shard;
pub mod spread;
pub mod state;
pub mod unedited;

pub use dataset::{load_records, Dataset, LanguageCoverage};
pub use kept_edits::edits_dir_for;
pub use methods::{EvalMethod, Scoring};
pub use metrics::{token_f1, Metric, Score};
pub use report::{EvalReport, MethodReport, RecordResult, Table, TimeBreakdown};
pub use runner::{run, EvalConfig, EvalModels, EvalPhase, EvalRequest, EvalSettings, Progress, Stage};
pub use shard::{merge, Merged, Shard};
pub use spread::{edit_spread, run_spread, serve};
pub use state::state_path_for;
