//! Optimizing update values for located neurons: L_target + lambda * L_kl, weights untouched.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use crate::runtime::NeuronEdit;
use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EditSettings {
    pub learning_rate: f64,
    pub steps: usize,
    /// lambda: weight of the KL term that keeps the subject's other knowledge.
    pub kl_weight: f64,
    pub weight_decay: f64,
    /// Each update vector's L2 norm is clamped to this multiple of its neuron's value-vector norm.
    pub max_norm_ratio: Option<f64>,
    /// Stop as soon as every language's target is the argmax at every target token.
    pub early_stop: bool,
    /// Also train on the paraphrases (not only the prompts).
    pub train_on_paraphrases: bool,
}

/// Losses after one optimisation step, for the loss-curve pane and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditStep {
    pub step: usize,
    pub target_loss: f32,
    pub kl_loss: f32,
    pub total_loss: f32,
    /// Per language (in group order): P(target | prompt), the product over target tokens.
    pub target_probs: Vec<f32>,
    /// Whether the teacher-forced argmax equals the target in every language.
    pub all_correct: bool,
}

/// Update values of one layer: one d_model vector per neuron.
#[derive(Debug, Clone)]
pub struct LayerUpdate {
    pub layer: usize,
    pub neurons: Vec<u32>,
    /// (neurons, hidden) f32.
    pub delta: Tensor,
}

/// All update values of one edit.
#[derive(Debug, Clone, Default)]
pub struct UpdateValues {
    pub layers: Vec<LayerUpdate>,
}

impl UpdateValues {
    /// The hooks that apply these update values in a forward pass.
    pub fn to_edits(&self) -> Result<Vec<NeuronEdit>> {
        self.layers
            .iter()
            .map(|l| {
                Ok(NeuronEdit {
                    layer: l.layer,
                    neurons: Tensor::new(l.neurons.as_slice(), &Device::Cpu)?,
                    delta: l.delta.clone(),
                })
            })
            .collect()
    }

    /// Writes the update values as safetensors (`layer.{i}.neurons` u32, `layer.{i}.delta` f32).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = BTreeMap::new();
        for l in &self.layers {
            tensors.insert(format!("layer.{}.neurons", l.layer), Tensor::new(l.neurons.as_slice(), &Device::Cpu)?);
            tensors.insert(format!("layer.{}.delta", l.layer), l.delta.to_dtype(DType::F32)?);
        }
        let tensors: std::collections::HashMap<_, _> = tensors.into_iter().collect();
        candle_core::safetensors::save(&tensors, path)
            .wrap_err_with(|| format!("cannot write update values to {}", path.display()))
    }

    /// Reads update values written by [`UpdateValues::save`], checking their shapes against `hidden`.
    pub fn load(path: &Path, hidden: usize) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| eyre!("update values {} are unreadable ({e})", path.display()))?;
        let mut layers = Vec::new();
        for (name, neurons) in &tensors {
            let Some(layer) = name.strip_prefix("layer.").and_then(|r| r.strip_suffix(".neurons")) else {
                continue;
            };
            let layer: usize = layer
                .parse()
                .map_err(|_| eyre!("update values {}: bad tensor name `{name}`", path.display()))?;
            let delta = tensors
                .get(&format!("layer.{layer}.delta"))
                .ok_or_else(|| eyre!("update values {}: layer {layer} has no delta", path.display()))?;
            let neurons = neurons.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            if delta.dims() != [neurons.len(), hidden] {
                bail!(
                    "update values {}: layer {layer} delta has shape {:?}, expected [{}, {hidden}]",
                    path.display(),
                    delta.dims(),
                    neurons.len()
                );
            }
            layers.push(LayerUpdate {
                layer,
                neurons,
                delta: delta.to_dtype(DType::F32)?,
            });
        }
        layers.sort_by_key(|l| l.layer);
        Ok(Self { layers })
    }
}

impl Default for EditSettings {
    fn default() -> Self {
        Self {
            learning_rate: 0.05,
            steps: 40,
            kl_weight: 0.5,
            weight_decay: 0.0,
            max_norm_ratio: Some(4.0),
            early_stop: true,
            train_on_paraphrases: true,
        }
    }
}
