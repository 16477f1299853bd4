//! The LU-LAFNs method: edit groups, locating language-agnostic factual neurons, optimizing their
//! update values, caching them on disk keyed by subject, and retrieving them for a query.

pub mod apply;
pub mod cache;
pub mod edit;
pub mod group;
pub mod locate;
pub mod pipeline;
pub mod prompts;
pub mod relation_table;
pub mod retrieve;
pub mod scope;
pub mod settings;

pub use edit::{
    optimize, LayerUpdate, OptimizeOutcome, OptimizeSettings, OptimizeStep, StopReason, UpdateValues,
    AUTO_LEARNING_RATE,
};
pub use group::{load_benchmark, BenchmarkEntry, BenchmarkRecord, EditDescriptor, EditGroup};
pub use locate::{
    describe_located, locate, measure, select, ActivationPosition, LayerChoice, LayerStats, LocateSettings,
    LocatedNeurons, Measurements,
};
pub use settings::{load_settings, MethodSettings};
