//! Shared helpers for integration tests on real models.

#![allow(dead_code)]

use std::sync::OnceLock;

use lafn::fetch::{self, ModelFiles};
use lafn::runtime::{LoadedModel, Model, WeightMode};

/// Files of a built-in model, fetched on first use (CI fetches the default model up front).
pub fn model_files(name: &str) -> ModelFiles {
    fetch::resolve(name, &mut |_| {}).unwrap_or_else(|e| panic!("cannot get model {name}: {e:#}"))
}

/// The default model, quantized, loaded once per test binary.
pub fn default_quantized() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| LoadedModel::load(&model_files(fetch::DEFAULT_MODEL), WeightMode::Quantized).unwrap())
}

/// The default model's weights dequantized to f32, loaded once per test binary.
pub fn default_dense() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| default_quantized().load_weights(WeightMode::Dense).unwrap())
}
