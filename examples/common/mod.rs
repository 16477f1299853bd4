//! What the examples share: the model they run and the method settings they run it with.

#![allow(dead_code)] // each example uses part of it

use std::path::Path;

use candle_core::Device;
use lafn::method::prompts::fill_paraphrases;
use lafn::method::scope::{PreparedKeys, QuestionEncoder};
use lafn::method::{load_settings, EditDescriptor, EditGroup, MethodSettings};
use lafn::runtime::{LoadedModel, WeightMode};

/// The model `LAFN_MODEL` names (a built-in name or a path; the default model when unset), fetched if
/// needed and loaded in `mode`.
pub fn load_model(mode: WeightMode) -> lafn::Result<LoadedModel> {
    let name = std::env::var("LAFN_MODEL").unwrap_or_else(|_| lafn::fetch::DEFAULT_MODEL.to_string());
    let files = lafn::fetch::resolve(&name, &mut |_| {})?;
    LoadedModel::load(&files, mode, &Device::Cpu)
}

/// The weights' mode `LAFN_WEIGHTS` names (`dense`, editing's, several times faster on long batches;
/// `quantized`, chat's, the default).
pub fn weight_mode() -> lafn::Result<WeightMode> {
    match std::env::var("LAFN_WEIGHTS").as_deref() {
        Ok("dense") => Ok(WeightMode::Dense),
        Ok("quantized") | Err(_) => Ok(WeightMode::Quantized),
        Ok(other) => Err(color_eyre::eyre::eyre!("LAFN_WEIGHTS is `{other}`: dense or quantized")),
    }
}

/// Writes the encoder's center to `{prefix}.center.f32` (little-endian f32): what identifies the model
/// whose vectors a fit script reads beside it.
pub fn write_center(encoder: &lafn::method::scope::QuestionEncoder, prefix: &str) -> lafn::Result<()> {
    let center: Vec<u8> = encoder.center().to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(format!("{prefix}.center.f32"), center)?;
    Ok(())
}

/// The settings in the JSON file `path`, or the defaults.
pub fn settings(path: Option<&String>) -> lafn::Result<MethodSettings> {
    match path {
        Some(path) => load_settings(Path::new(path)),
        None => Ok(MethodSettings::default()),
    }
}

/// The scope keys of a one-language edit of `prompt` about `subject`, made as `lafn edit` makes them
/// (the prompt and its paraphrases from the settings), ready for scoring queries.
pub fn one_language_keys(
    loaded: &LoadedModel,
    encoder: &QuestionEncoder,
    settings: &MethodSettings,
    [lang, subject, prompt]: [&str; 3],
) -> lafn::Result<PreparedKeys> {
    let (model, tokenizer) = (&loaded.model, &loaded.tokenizer);
    let descriptor = EditDescriptor {
        lang: lang.to_string(),
        subject: subject.to_string(),
        prompt: prompt.to_string(),
        target: String::from("-"),
        paraphrases: Vec::new(),
        generated_paraphrases: Vec::new(),
        aliases: Vec::new(),
    };
    let mut group = EditGroup { name: "probe".into(), descriptors: vec![descriptor] };
    fill_paraphrases(&mut group, &settings.paraphrases, Some((model, tokenizer)))?;
    encoder.prepare(&encoder.keys(model, tokenizer, &group)?, &Default::default())
}
