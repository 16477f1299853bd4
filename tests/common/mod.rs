//! Shared helpers for integration tests: real models, and settings for tiny random ones.

#![allow(dead_code)]

pub mod tui;

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use lafn::fetch::{self, ModelFiles};
use lafn::method::{LayerChoice, MethodSettings};
use lafn::runtime::{LoadedModel, Model, WeightMode};

/// Files of a built-in model, fetched on first use (CI fetches the default model up front).
pub fn model_files(name: &str) -> ModelFiles {
    fetch::resolve(name, &mut |_| {}).unwrap_or_else(|e| panic!("cannot get model {name}: {e:#}"))
}

/// The default model, quantized, loaded once per test binary.
pub fn default_quantized() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        LoadedModel::load(&model_files(fetch::DEFAULT_MODEL), WeightMode::Quantized, &Device::Cpu).unwrap()
    })
}

/// The default model's weights dequantized to f32, loaded once per test binary.
pub fn default_dense() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| default_quantized().load_weights(WeightMode::Dense).unwrap())
}

/// The default model's weights as edits are optimized on them (dense layers, the quantized model's
/// head), loaded once per test binary.
pub fn default_editing() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| default_quantized().editing_weights().unwrap())
}

/// A file of `../shared` (the team's dev data and references, beside the repository in CI), or `None`
/// with a note when this clone has none: callers then check a vendored sample or skip the comparison.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared").join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} is not beside this clone", path.display());
        None
    }
}

/// The first MzsRE dev records, vendored for tests that must run in any clone.
pub fn mzsre_sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mzsre.sample.jsonl")
}

/// Method settings that locate and edit on a tiny random model in a moment: no generated paraphrases,
/// layers 1 and 2, neurons active on half the prompts, at most 16 a layer.
pub fn tiny_method_settings() -> MethodSettings {
    let mut settings = MethodSettings::default();
    settings.paraphrases.count = 0;
    settings.locate.layers = LayerChoice::Fixed(vec![1, 2]);
    settings.locate.beta = 0.5;
    settings.locate.generic_share = None;
    settings.locate.max_per_layer = Some(16);
    settings
}
