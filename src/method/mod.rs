//! The LU-LAFNs method: edit groups, locating language-agnostic factual neurons, optimizing their
//! update values, caching them on disk keyed by subject, and retrieving them for a query.

pub mod group;
pub mod retrieve;

pub use group::{load_benchmark, BenchmarkEntry, BenchmarkRecord, EditDescriptor, EditGroup};
