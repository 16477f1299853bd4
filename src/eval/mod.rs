//! Evaluation on MzsRE and Bi-ZsRE (METHOD.md section 4): every record is edited with each compared
//! method and scored in every language on Reliability, Generality, Locality and Portability (F1 / EM).
//!
//! [`metrics`] scores one answer, [`methods`] says what each method applies to a question, [`runner`]
//! drives a run (standard or sequential protocol, resumable through [`state`]), [`report`] aggregates
//! the per-record results into tables, [`shard`] splits a run over machines and merges the parts.

pub mod methods;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod shard;
pub mod state;

pub use methods::{EvalMethod, Scoring};
pub use metrics::{token_f1, Metric, Score};
pub use report::{EvalReport, MethodReport, RecordResult, Table, TimeBreakdown};
pub use runner::{run, Dataset, EvalConfig, EvalModels, EvalPhase, EvalRequest, EvalSettings, Progress, Stage};
pub use shard::{merge, Merged, Shard};
pub use state::state_path_for;
