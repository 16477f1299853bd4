//! Optimizing update values for located neurons: L_target + lambda * L_kl, weights untouched.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use super::group::EditGroup;
use super::locate::LocatedNeurons;
use super::prompts::{answer_pair, kl_prompts, other_relation_questions};
use super::scope::{QuestionEncoder, ScopeSettings};
use crate::runtime::{
    log_softmax_last_dim, AnswerTails, Model, NeuronEdit, PaddedBatch, TeacherForcingBatch, Tokenizer, WeightMode,
};
use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EditSettings {
    pub learning_rate: f64,
    pub steps: usize,
    /// lambda: weight of the KL term that keeps the subject's other knowledge.
    pub kl_weight: f64,
    pub weight_decay: f64,
    /// Each update vector's L2 norm is clamped to this multiple of its neuron's value-vector norm.
    pub max_norm_ratio: Option<f64>,
    /// Stop as soon as every language's target is the argmax at every target token, by `stop_margin`.
    pub early_stop: bool,
    /// Lead in logits the target must have over the best other token, at every target token, for the
    /// early stop. Edits are optimized on dense weights and answered on quantized ones, whose rounding
    /// moves logits by up to ~1.5 on the default model: a bare argmax (0) often flips in chat.
    pub stop_margin: f32,
    /// Also train on the paraphrases (not only the prompts).
    pub train_on_paraphrases: bool,
    /// Also keep, in the KL term, the answers to questions about the subject's other relations
    /// (per-language templates: where born, known for, occupation, ...), so that an edit that fires
    /// on them does not answer them with its new target. Off by default: with the scope gate on, the
    /// questions it protects are those scoring below `other_relation_max_similarity`, which the gate
    /// mostly stops anyway, and it cost Generality 7 points for 2 points of Specificity
    /// (docs/results.md, "Scope"); worth turning on when the gate is off.
    pub other_relations: bool,
    /// A template question counts as another relation only when its scope similarity (see
    /// `scope`) to every prompt and paraphrase of the group is below this; above it, it may ask the
    /// edited relation itself and is left out.
    pub other_relation_max_similarity: f32,
    /// Also train the line break after the target, so a generated answer ends where the answer does
    /// (" Yemen" rather than " Yemen, Yemen, Yemen. What is the capital of ..."): chat and generation
    /// scoring take the first line.
    pub end_with_line_break: bool,
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
    /// Per language: the target's smallest lead over the best other token, in logits (see `stop_margin`).
    #[serde(default)]
    pub target_margins: Vec<f32>,
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

    /// Fails when any value is NaN or infinite: such an update would break every answer it is applied to.
    fn check_finite(&self) -> Result<()> {
        for l in &self.layers {
            let values: Vec<f32> = l.delta.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                bail!("the update values of layer {} contain {bad}: the edit diverged and is not kept", l.layer);
            }
        }
        Ok(())
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
            let layer: usize =
                layer.parse().map_err(|_| eyre!("update values {}: bad tensor name `{name}`", path.display()))?;
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
            layers.push(LayerUpdate { layer, neurons, delta: delta.to_dtype(DType::F32)? });
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
            stop_margin: 2.0,
            train_on_paraphrases: false,
            other_relations: false,
            other_relation_max_similarity: 0.6,
            end_with_line_break: true,
        }
    }
}

/// The prompts whose next-token distribution the KL term keeps: "{subject} is a"-style prompts and,
/// when the settings ask for them, questions about the subject's other relations, in every language
/// of the group. Template questions too similar to the group's own prompts (they may ask the edited
/// relation) are left out.
fn kl_prompts_of(
    model: &Model,
    tokenizer: &Tokenizer,
    group: &EditGroup,
    settings: &EditSettings,
) -> Result<Vec<String>> {
    let mut prompts: Vec<String> = group.descriptors.iter().flat_map(|d| kl_prompts(&d.lang, &d.subject)).collect();
    if !settings.other_relations {
        return Ok(prompts);
    }
    let questions: Vec<String> =
        group.descriptors.iter().flat_map(|d| other_relation_questions(&d.lang, &d.subject)).collect();
    let encoder = QuestionEncoder::new(model, tokenizer, &ScopeSettings::default())?;
    let keys = encoder.keys(model, tokenizer, group)?;
    let similarity = keys.scores(&encoder.encode_about(model, tokenizer, group, &questions)?)?;
    prompts.extend(
        questions
            .into_iter()
            .zip(similarity)
            .filter(|(_, s)| *s < settings.other_relation_max_similarity)
            .map(|(q, _)| q),
    );
    Ok(prompts)
}

/// Why an optimisation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// Every training prompt's target became the argmax.
    Converged,
    /// All configured steps ran.
    StepsDone,
    Cancelled,
}

/// The result of optimizing update values for one edit group.
pub struct EditOutcome {
    pub update: UpdateValues,
    pub history: Vec<EditStep>,
    pub stop: StopReason,
}

/// Optimizes update values for the located neurons of `group` on a dense (differentiable) model.
/// `on_step` sees every step's losses; setting `cancel` stops at the next step.
pub fn optimize(
    model: &Model,
    tokenizer: &Tokenizer,
    group: &EditGroup,
    located: &LocatedNeurons,
    settings: &EditSettings,
    cancel: &AtomicBool,
    on_step: &mut dyn FnMut(&EditStep),
) -> Result<EditOutcome> {
    if model.mode() != WeightMode::Dense {
        bail!("editing needs the dense (f32) weights: load the model with WeightMode::Dense");
    }
    group.validate()?;
    settings.validate()?;
    if located.neuron_count() == 0 {
        bail!("no language-agnostic neurons were located for `{}`: lower beta or choose other layers", group.name);
    }
    let pad = tokenizer.pad_id();
    let hidden = model.config().hidden_size;

    // Training pairs: each language's prompt first (its probability is reported), then paraphrases.
    let mut pairs = Vec::new();
    let mut prompt_pair_of_lang = Vec::new();
    for d in &group.descriptors {
        prompt_pair_of_lang.push(pairs.len());
        pairs.push(answer_pair(tokenizer, &d.prompt, &d.target, settings.end_with_line_break)?);
        if settings.train_on_paraphrases {
            for p in &d.paraphrases {
                pairs.push(answer_pair(tokenizer, p, &d.target, settings.end_with_line_break)?);
            }
        }
    }
    let targets = TeacherForcingBatch::new(&pairs, pad)?;
    let pair_sums = span_sum_matrix(&targets.spans, targets.cells.len())?;

    let kl_seqs: Vec<Vec<u32>> = kl_prompts_of(model, tokenizer, group, settings)?
        .iter()
        .map(|p| tokenizer.encode_prompt(p))
        .collect::<Result<_>>()?;
    let kl_batch = PaddedBatch::new(&kl_seqs, pad)?;
    let kl_cells: Vec<(usize, usize)> = kl_batch.lengths.iter().enumerate().map(|(r, &len)| (r, len - 1)).collect();

    // Update values act from each answer's start on: everything before it is computed once, and so is
    // everything below the lowest edited layer.
    let first_layer = *located.selected.keys().next().expect("at least one layer is selected");
    let target_tails = AnswerTails::new(model, &targets.batch, first_layer, pad)?;
    let kl_tails = AnswerTails::new(model, &kl_batch, first_layer, pad)?;
    let original_log_probs = log_softmax_last_dim(&model.logits(&kl_tails.hidden_at(model, &kl_cells, &[])?)?)?;
    let original_probs = original_log_probs.exp()?;

    let layers: Vec<(usize, Vec<u32>)> = located.selected.iter().map(|(l, n)| (*l, n.clone())).collect();
    let vars: Vec<Var> = layers
        .iter()
        .map(|(_, neurons)| Var::zeros((neurons.len(), hidden), DType::F32, &Device::Cpu))
        .collect::<candle_core::Result<_>>()?;
    let neuron_tensors: Vec<Tensor> =
        layers.iter().map(|(_, n)| Tensor::new(n.as_slice(), &Device::Cpu)).collect::<candle_core::Result<_>>()?;
    let max_norms: Vec<Option<Tensor>> = layers
        .iter()
        .zip(&neuron_tensors)
        .map(|((layer, _), idx)| {
            settings
                .max_norm_ratio
                .map(|ratio| -> Result<Tensor> {
                    let values = model.value_vectors(*layer)?.index_select(idx, 0)?;
                    Ok((values.sqr()?.sum_keepdim(1)?.sqrt()? * ratio)?)
                })
                .transpose()
        })
        .collect::<Result<_>>()?;
    let mut optimizer = AdamW::new(
        vars.clone(),
        ParamsAdamW { lr: settings.learning_rate, weight_decay: settings.weight_decay, ..Default::default() },
    )?;

    let mut history = Vec::new();
    let mut stop = StopReason::StepsDone;
    for step in 0..=settings.steps {
        let edits: Vec<NeuronEdit> = layers
            .iter()
            .zip(&vars)
            .zip(&neuron_tensors)
            .map(|(((layer, _), var), neurons)| NeuronEdit {
                layer: *layer,
                neurons: neurons.clone(),
                delta: var.as_tensor().clone(),
            })
            .collect();
        // Losses and their gradients with respect to the final hidden states are computed in closed
        // form (softmax minus target); autograd only runs through the transformer layers.
        let target_hidden = target_tails.hidden_at(model, &targets.cells, &edits)?;
        let kl_hidden = kl_tails.hidden_at(model, &kl_cells, &edits)?;
        let target_logits = model.logits(&target_hidden.detach())?;
        let scored = targets.score(&target_logits)?;
        let pair_nll = pair_sums.matmul(&scored.token_log_probs.neg()?.unsqueeze(1)?)?.squeeze(1)?;
        let target_loss = pair_nll.mean_all()?;
        let edited_log_probs = log_softmax_last_dim(&model.logits(&kl_hidden.detach())?)?;
        let kl_rows = kl_cells.len() as f64;
        let kl_loss = ((&original_probs * (&original_log_probs - &edited_log_probs)?)?.sum_all()? / kl_rows)?;
        let total = (&target_loss + (&kl_loss * settings.kl_weight)?)?;

        // d(mean over pairs of summed NLL)/d logits = (softmax - onehot(target)) / pairs.
        let pairs_count = targets.spans.len() as f64;
        let target_grad = ((model.head_gradient(&log_softmax_last_dim(&target_logits)?.exp()?)?
            - model.output_rows(&targets.target_ids()?)?)?
            / pairs_count)?;
        // d KL(p0 || p) / d logits = p - p0, averaged over the prompts.
        let kl_grad =
            (model.head_gradient(&(edited_log_probs.exp()? - &original_probs)?)? * (settings.kl_weight / kl_rows))?;
        let surrogate = ((target_hidden * target_grad)?.sum_all()? + (kl_hidden * kl_grad)?.sum_all()?)?;

        let nll: Vec<f32> = pair_nll.to_vec1()?;
        let margins = targets.target_margins(&target_logits)?;
        let record = EditStep {
            step,
            target_loss: target_loss.to_scalar()?,
            kl_loss: kl_loss.to_scalar()?,
            total_loss: total.to_scalar()?,
            target_probs: prompt_pair_of_lang.iter().map(|&i| (-nll[i]).exp()).collect(),
            all_correct: margins.iter().all(|&m| m > 0.0),
            target_margins: prompt_pair_of_lang.iter().map(|&i| margins[i]).collect(),
        };
        if ![record.target_loss, record.kl_loss, record.total_loss].iter().all(|l| l.is_finite()) {
            bail!(
                "the edit diverged: the loss of step {step} is {} (target {}, KL {}); nothing is kept. \
                 Lower the learning rate or set a max_norm_ratio",
                record.total_loss,
                record.target_loss,
                record.kl_loss
            );
        }
        on_step(&record);
        let converged = settings.early_stop && margins.iter().all(|&m| m >= settings.stop_margin);
        history.push(record);
        if converged {
            stop = StopReason::Converged;
            break;
        }
        if step == settings.steps {
            break;
        }
        if cancel.load(Ordering::Relaxed) {
            stop = StopReason::Cancelled;
            break;
        }
        optimizer.backward_step(&surrogate)?;
        for (var, max_norm) in vars.iter().zip(&max_norms) {
            if let Some(max_norm) = max_norm {
                let norms = var.as_tensor().sqr()?.sum_keepdim(1)?.sqrt()?;
                let scale = (max_norm / (norms + 1e-12)?)?.clamp(0f32, 1f32)?;
                var.set(&var.as_tensor().broadcast_mul(&scale)?)?;
            }
        }
    }
    let update = UpdateValues {
        layers: layers
            .into_iter()
            .zip(&vars)
            .map(|((layer, neurons), var)| LayerUpdate { layer, neurons, delta: var.as_tensor().detach() })
            .collect(),
    };
    update.check_finite()?;
    Ok(EditOutcome { update, history, stop })
}

/// A (spans, cells) 0/1 matrix that sums each span's entries when multiplied with a column.
fn span_sum_matrix(spans: &[std::ops::Range<usize>], cells: usize) -> Result<Tensor> {
    let mut values = vec![0f32; spans.len() * cells];
    for (row, span) in spans.iter().enumerate() {
        for cell in span.clone() {
            values[row * cells + cell] = 1.0;
        }
    }
    Ok(Tensor::from_vec(values, (spans.len(), cells), &Device::Cpu)?)
}
