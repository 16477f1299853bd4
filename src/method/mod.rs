//! The LU-LAFNs method: edit groups, locating language-agnostic factual neurons, optimizing their
//! update values, caching them on disk keyed by subject, and retrieving them for a query.

pub mod edit;
pub mod group;
pub mod locate;
pub mod retrieve;
pub mod settings;

pub use edit::{EditSettings, EditStep, LayerUpdate, UpdateValues};
pub use group::{load_benchmark, BenchmarkEntry, BenchmarkRecord, EditDescriptor, EditGroup};
pub use locate::{ActivationPosition, LayerChoice, LayerStats, LocateSettings, LocatedNeurons};
pub use settings::MethodSettings;
