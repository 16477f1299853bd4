//! Optimizing update values for located neurons: L_target + lambda * L_kl, weights untouched.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use super::group::EditGroup;
use super::locate::LocatedNeurons;
use super::prompts::{answer_pair, kl_prompts};
use super::scope::{other_relation_questions, QuestionEncoder, ScopeSettings};
use crate::runtime::{
    log_softmax_last_dim, CandidateLimits, ChatFrame, FfnDelta, HeadCandidates, HeadLosses, HeadObjective,
    KeptDistributions, Model, PaddedBatch, PrefixCachedBatch, PromptFrame, PromptStates, PromptTarget,
    TeacherForcingBatch, Tokenizer, WeightMode,
};
use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimizeSettings {
    /// AdamW's step size; `None` (the default): [`AUTO_LEARNING_RATE`] times the root mean square of
    /// the located neurons' value vectors, so that update values move at one pace relative to what
    /// the neurons write, in every model (see [`TrainedValues::new`]).
    pub learning_rate: Option<f64>,
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
    /// Also train on the generated paraphrases (the prompts and the paraphrases the user wrote always are).
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
pub struct OptimizeStep {
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
    /// The hooks that apply these update values in a forward pass of a model on `device`.
    pub fn to_ffn_deltas(&self, device: &Device) -> Result<Vec<FfnDelta>> {
        self.layers
            .iter()
            .map(|l| {
                Ok(FfnDelta {
                    layer: l.layer,
                    neurons: Tensor::new(l.neurons.as_slice(), device)?,
                    delta: l.delta.to_device(device)?,
                })
            })
            .collect()
    }

    /// Fails when any value is NaN or infinite: such an update would break every answer it is applied to.
    fn check_finite(&self) -> Result<()> {
        for l in &self.layers {
            let values: Vec<f32> = l.delta.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                bail!("the update values of layer {} contain {bad}", l.layer);
            }
        }
        Ok(())
    }

    /// Writes the update values as safetensors (`layer.{i}.neurons` u32, `layer.{i}.delta` f32).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = BTreeMap::new();
        for l in &self.layers {
            tensors.insert(neurons_name(l.layer), Tensor::new(l.neurons.as_slice(), l.delta.device())?);
            tensors.insert(delta_name(l.layer), l.delta.to_dtype(DType::F32)?);
        }
        let tensors: std::collections::HashMap<_, _> = tensors.into_iter().collect();
        candle_core::safetensors::save(&tensors, path)
            .wrap_err_with(|| format!("cannot write update values to {}", path.display()))
    }

    /// Reads update values written by [`UpdateValues::save`], checked as [`UpdateValues::check_file`]
    /// checks them and every value finite (a damaged file must not break the answers it fires on).
    /// They are read into host memory; [`UpdateValues::to_ffn_deltas`] puts them on a model's device.
    pub fn load(path: &Path, hidden: usize) -> Result<Self> {
        let (file, layer_ids) = Self::open_checked(path, hidden)?;
        let unreadable = |e| eyre!("update values {} are unreadable ({e})", path.display());
        let mut layers = Vec::with_capacity(layer_ids.len());
        for layer in layer_ids {
            let neurons = file.load(&neurons_name(layer), &Device::Cpu).map_err(unreadable)?;
            let delta = file.load(&delta_name(layer), &Device::Cpu).map_err(unreadable)?;
            let neurons = neurons.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            layers.push(LayerUpdate { layer, neurons, delta: delta.to_dtype(DType::F32)? });
        }
        let values = Self { layers };
        values.check_finite().wrap_err_with(|| format!("update values {}", path.display()))?;
        Ok(values)
    }

    /// Checks an update file from its header alone, without reading a value: it is as long as its
    /// header says, and each layer has neurons and a delta of matching shapes for a model of width
    /// `hidden`.
    pub fn check_file(path: &Path, hidden: usize) -> Result<()> {
        Self::open_checked(path, hidden).map(|_| ())
    }

    /// The file mapped into memory and its layers, in order, checked as `check_file` says.
    fn open_checked(path: &Path, hidden: usize) -> Result<(MmapedSafetensors, Vec<usize>)> {
        let bad = |what: String| eyre!("update values {}: {what}", path.display());
        // SAFETY: cache files are written under a temporary name and renamed into place, never changed
        // in place, so the mapped file does not change while it is read.
        let file = unsafe { MmapedSafetensors::new(path) }
            .map_err(|e| eyre!("update values {} are unreadable ({e})", path.display()))?;
        let mut layers = Vec::new();
        for (name, neurons) in file.tensors() {
            let Some(layer) = name.strip_prefix("layer.").and_then(|r| r.strip_suffix(".neurons")) else {
                continue;
            };
            let layer: usize = layer.parse().map_err(|_| bad(format!("bad tensor name `{name}`")))?;
            let delta = file.get(&delta_name(layer)).map_err(|_| bad(format!("layer {layer} has no delta")))?;
            let &[count] = neurons.shape() else {
                return Err(bad(format!("layer {layer} neurons have shape {:?}", neurons.shape())));
            };
            if delta.shape() != [count, hidden] {
                let shape = delta.shape();
                return Err(bad(format!("layer {layer} delta has shape {shape:?}, expected [{count}, {hidden}]")));
            }
            layers.push(layer);
        }
        layers.sort_unstable();
        Ok((file, layers))
    }
}

fn neurons_name(layer: usize) -> String {
    format!("layer.{layer}.neurons")
}

fn delta_name(layer: usize) -> String {
    format!("layer.{layer}.delta")
}

impl Default for OptimizeSettings {
    fn default() -> Self {
        Self {
            learning_rate: None,
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
    settings: &OptimizeSettings,
) -> Result<Vec<String>> {
    let mut prompts: Vec<String> = group.descriptors.iter().flat_map(|d| kl_prompts(&d.lang, &d.subject)).collect();
    if !settings.other_relations {
        return Ok(prompts);
    }
    // Only similarities are read here: the relation table's wordings (for scoring queries) are not.
    let scope = ScopeSettings { relation_table_margin: None, ..ScopeSettings::default() };
    let encoder = QuestionEncoder::new(model, tokenizer, &scope)?;
    let keys = encoder.keys(model, tokenizer, group)?;
    let similarity = encoder.similarities(&keys, &keys.keys, &keys.other_relations)?;
    prompts.extend(
        other_relation_questions(group)
            .into_iter()
            .zip(similarity)
            .filter(|(_, s)| *s < settings.other_relation_max_similarity)
            .map(|(q, _)| q),
    );
    Ok(prompts)
}

/// The automatic learning rate per unit of the located neurons' value-vector RMS. SmolLM2's value
/// vectors are ten times the default model's (RMS 0.18-0.20 against 0.014-0.021): at one fixed rate
/// (0.05) its 12-language edits took 24 to over 40 steps, at 0.3-0.6 12-29 (docs/results.md, stop 41).
/// 3 is the fixed rate the default model was tuned with, 0.05, in its units.
pub const AUTO_LEARNING_RATE: f64 = 3.0;

/// Why an optimisation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// Every training prompt's target leads the best other token by at least `stop_margin` logits
    /// (with `early_stop` on).
    Converged,
    /// All configured steps ran.
    StepsDone,
    Cancelled,
}

/// The result of optimizing update values for one edit group.
pub struct OptimizeOutcome {
    pub update: UpdateValues,
    pub history: Vec<OptimizeStep>,
    pub stop: StopReason,
}

/// Optimizes update values for the located neurons of `group` on a dense (differentiable) model,
/// on its prompts as typed and, unless `frame` is raw for this model, as chat frames them.
/// Prompts that begin a sequence of `known` (the inputs locating ran) are not run again.
/// `on_step` sees every step's losses; setting `cancel` stops at the next step.
#[allow(clippy::too_many_arguments)]
pub fn optimize(
    model: &Model,
    tokenizer: &Tokenizer,
    group: &EditGroup,
    located: &LocatedNeurons,
    settings: &OptimizeSettings,
    frame: PromptFrame,
    known: PromptStates,
    cancel: &AtomicBool,
    on_step: &mut dyn FnMut(&OptimizeStep),
) -> Result<OptimizeOutcome> {
    if model.mode() != WeightMode::Dense {
        bail!("editing needs the dense (f32) weights: load the model with WeightMode::Dense");
    }
    group.validate()?;
    settings.validate()?;
    if located.neuron_count() == 0 {
        bail!("no language-agnostic neurons were located for `{}`: lower beta or choose other layers", group.name);
    }
    // Update values act from each answer's start on: everything before it is computed once, and so is
    // everything below the lowest edited layer.
    let first_layer = *located.selected.keys().next().expect("at least one layer is selected");
    let frame = tokenizer.chat_frame(frame)?;
    let (pairs, prompt_pair_of_lang) = training_pairs(tokenizer, group, settings, frame)?;
    let targets = TargetTerm::new(model, tokenizer.pad_id(), &pairs, prompt_pair_of_lang, first_layer, &known)?;
    let kl_prompts = kl_prompts_of(model, tokenizer, group, settings)?;
    let kl = KlTerm::new(model, tokenizer, &kl_prompts, first_layer, &known)?;
    // Their gathered rows are copies: what locating ran is not needed any more.
    drop(known);
    let mut values = TrainedValues::new(model, located, settings)?;

    let mut step = 0;
    let mut history = Vec::new();
    let mut head = EditHead::default();
    let stop = loop {
        let deltas = values.ffn_deltas();
        let losses = StepLosses::new(model, &targets, &kl, &deltas, settings, step, cancel, &mut head)?;
        on_step(&losses.record);
        history.push(losses.record);
        if let Some(reason) = stop_reason(&losses.pair_margins, step, settings, cancel) {
            break reason;
        }
        values.step(&losses.surrogate)?;
        step += 1;
    };
    log::info!("learning rate {:.4}", values.learning_rate);
    let update = values.into_update();
    update.check_finite().wrap_err("the edit diverged and is not kept")?;
    Ok(OptimizeOutcome { update, history, stop })
}

/// Why to stop after `step`, given every training pair's target margin; `None`: take a gradient step.
fn stop_reason(
    pair_margins: &[f32],
    step: usize,
    settings: &OptimizeSettings,
    cancel: &AtomicBool,
) -> Option<StopReason> {
    if settings.early_stop && pair_margins.iter().all(|&m| m >= settings.stop_margin) {
        Some(StopReason::Converged)
    } else if step == settings.steps {
        Some(StopReason::StepsDone)
    } else if cancel.load(Ordering::Relaxed) {
        Some(StopReason::Cancelled)
    } else {
        None
    }
}

/// The training pairs (each language's prompt first, its probability is reported, then its written
/// paraphrases and, when trained on, its generated ones, each followed by its framed version unless
/// `frame` is raw) and, per language, the index of its prompt's pair.
fn training_pairs(
    tokenizer: &Tokenizer,
    group: &EditGroup,
    settings: &OptimizeSettings,
    frame: ChatFrame,
) -> Result<(Vec<PromptTarget>, Vec<usize>)> {
    let mut pairs = Vec::new();
    let mut prompt_pair_of_lang = Vec::new();
    for d in &group.descriptors {
        prompt_pair_of_lang.push(pairs.len());
        let paraphrases: Vec<&str> = match settings.train_on_paraphrases {
            true => d.all_paraphrases().collect(),
            false => d.written_paraphrases().collect(),
        };
        for prompt in std::iter::once(d.prompt.as_str()).chain(paraphrases) {
            pairs.push(answer_pair(tokenizer, prompt, &d.target, settings.end_with_line_break)?);
            if !frame.is_raw() {
                pairs.push(answer_pair(tokenizer, &frame.frame(prompt)?, &d.target, settings.end_with_line_break)?);
            }
        }
    }
    Ok((pairs, prompt_pair_of_lang))
}

/// L_target's inputs: the teacher-forced training pairs, their prefixes cached.
struct TargetTerm {
    batch: TeacherForcingBatch,
    tails: PrefixCachedBatch,
    /// The token each of `batch.cells` must predict.
    target_ids: Vec<u32>,
    prompt_pair_of_lang: Vec<usize>,
}

impl TargetTerm {
    fn new(
        model: &Model,
        pad_id: u32,
        pairs: &[PromptTarget],
        prompt_pair_of_lang: Vec<usize>,
        first_layer: usize,
        known: &PromptStates,
    ) -> Result<Self> {
        let batch = TeacherForcingBatch::new(pairs, pad_id, model.device())?;
        let target_ids = batch.target_ids()?.to_vec1()?;
        let tails = PrefixCachedBatch::new(model, &batch.batch, first_layer, pad_id, known)?;
        Ok(Self { batch, tails, target_ids, prompt_pair_of_lang })
    }

    /// Per pair, its target cells' values folded with `fold` from `init`.
    fn per_pair(&self, cell_values: &[f32], init: f32, fold: fn(f32, f32) -> f32) -> Vec<f32> {
        self.batch.spans.iter().map(|s| cell_values[s.clone()].iter().copied().fold(init, fold)).collect()
    }
}

/// L_kl's inputs: the KL prompts, their prefixes cached, and the unedited model's next-token
/// log-probabilities at each prompt's last token, (cells x vocab) concatenated.
struct KlTerm {
    tails: PrefixCachedBatch,
    cells: Vec<(usize, usize)>,
    original: KeptDistributions,
}

impl KlTerm {
    fn new(
        model: &Model,
        tokenizer: &Tokenizer,
        prompts: &[String],
        first_layer: usize,
        known: &PromptStates,
    ) -> Result<Self> {
        let seqs: Vec<Vec<u32>> = prompts.iter().map(|p| tokenizer.encode_prompt(p)).collect::<Result<_>>()?;
        let batch = PaddedBatch::new(&seqs, tokenizer.pad_id(), model.device())?;
        let cells: Vec<(usize, usize)> = batch.lengths.iter().enumerate().map(|(r, &len)| (r, len - 1)).collect();
        let tails = PrefixCachedBatch::new(model, &batch, first_layer, tokenizer.pad_id(), known)?;
        let original_logits = model.logits(&tails.hidden_at(model, &cells, &[])?)?;
        let log_probs: Vec<f32> = log_softmax_last_dim(&original_logits)?.flatten_all()?.to_vec1()?;
        let original = KeptDistributions::from_log_probs(&log_probs, original_logits.dim(1)?)?;
        Ok(Self { tails, cells, original })
    }
}

/// The update values being trained (one variable per selected layer), their AdamW state and their
/// norm caps.
struct TrainedValues {
    layers: Vec<(usize, Vec<u32>)>,
    vars: Vec<Var>,
    neuron_tensors: Vec<Tensor>,
    /// Per layer, each neuron's largest update norm (`max_norm_ratio` times its value vector's norm).
    max_norms: Vec<Option<Tensor>>,
    learning_rate: f64,
    optimizer: AdamW,
}

impl TrainedValues {
    /// Zero update values for the located neurons.
    fn new(model: &Model, located: &LocatedNeurons, settings: &OptimizeSettings) -> Result<Self> {
        let device = model.device();
        let hidden = model.config().hidden_size;
        let layers: Vec<(usize, Vec<u32>)> = located.selected.iter().map(|(l, n)| (*l, n.clone())).collect();
        let vars: Vec<Var> = layers
            .iter()
            .map(|(_, neurons)| Var::zeros((neurons.len(), hidden), DType::F32, device))
            .collect::<candle_core::Result<_>>()?;
        let neuron_tensors: Vec<Tensor> =
            layers.iter().map(|(_, n)| Tensor::new(n.as_slice(), device)).collect::<candle_core::Result<_>>()?;
        let value_vectors: Vec<Tensor> = (layers.iter().zip(&neuron_tensors))
            .map(|((layer, _), idx)| Ok(model.value_vectors(*layer)?.index_select(idx, 0)?))
            .collect::<Result<_>>()?;
        let max_norms: Vec<Option<Tensor>> = (value_vectors.iter())
            .map(|values| {
                let max_norm = |ratio: f64| -> Result<Tensor> { Ok((values.sqr()?.sum_keepdim(1)?.sqrt()? * ratio)?) };
                settings.max_norm_ratio.map(max_norm).transpose()
            })
            .collect::<Result<_>>()?;
        let learning_rate = match settings.learning_rate {
            Some(rate) => rate,
            None => AUTO_LEARNING_RATE * root_mean_square(&value_vectors)?,
        };
        let optimizer = AdamW::new(
            vars.clone(),
            ParamsAdamW { lr: learning_rate, weight_decay: settings.weight_decay, ..Default::default() },
        )?;
        Ok(Self { layers, vars, neuron_tensors, max_norms, learning_rate, optimizer })
    }

    /// The current values as forward-pass hooks.
    fn ffn_deltas(&self) -> Vec<FfnDelta> {
        self.layers
            .iter()
            .zip(&self.vars)
            .zip(&self.neuron_tensors)
            .map(|(((layer, _), var), neurons)| FfnDelta {
                layer: *layer,
                neurons: neurons.clone(),
                delta: var.as_tensor().clone(),
            })
            .collect()
    }

    /// One AdamW step on `surrogate`, then each update vector clamped to its norm cap.
    fn step(&mut self, surrogate: &Tensor) -> Result<()> {
        self.optimizer.backward_step(surrogate)?;
        for (var, max_norm) in self.vars.iter().zip(&self.max_norms) {
            if let Some(max_norm) = max_norm {
                let norms = var.as_tensor().sqr()?.sum_keepdim(1)?.sqrt()?;
                let scale = (max_norm / (norms + 1e-12)?)?.clamp(0f32, 1f32)?;
                var.set(&var.as_tensor().broadcast_mul(&scale)?)?;
            }
        }
        Ok(())
    }

    fn into_update(self) -> UpdateValues {
        UpdateValues {
            layers: self
                .layers
                .into_iter()
                .zip(&self.vars)
                .map(|((layer, neurons), var)| LayerUpdate { layer, neurons, delta: var.as_tensor().detach() })
                .collect(),
        }
    }
}

/// The root mean square of every element of `tensors`.
fn root_mean_square(tensors: &[Tensor]) -> Result<f64> {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for t in tensors {
        sum += t.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        count += t.elem_count();
    }
    if count == 0 || !sum.is_finite() || sum <= 0.0 {
        bail!(
            "the located neurons' value vectors are {}: no learning rate follows from them",
            match count {
                0 => "empty",
                _ => "zero or not finite",
            }
        );
    }
    Ok((sum / count as f64).sqrt())
}

/// One step's losses: what is reported, every pair's target margin (for the stop rule), and the
/// surrogate whose gradient is the loss's gradient.
struct StepLosses {
    record: OptimizeStep,
    pair_margins: Vec<f32>,
    surrogate: Tensor,
}

/// Steps scored over the whole vocabulary are this many apart at most; the steps between them score
/// only the candidate tokens the last one chose (`HeadCandidates`), in a twentieth of the time. Every
/// 3, 5, 6 or 8 steps took more steps to converge: 4 saved the most (docs/results.md, stop 55).
const FULL_VOCABULARY_EVERY: usize = 4;

/// The LM head's state across an edit's steps: the logits' buffer of full passes, and the candidates
/// the last one chose, with its step.
#[derive(Default)]
struct EditHead {
    logits_buffer: Vec<f32>,
    candidates: Option<(HeadCandidates, usize)>,
}

impl StepLosses {
    /// Scores a step: over the candidate tokens when a full pass chose them less than
    /// [`FULL_VOCABULARY_EVERY`] steps ago, over the whole vocabulary otherwise, and whenever the
    /// estimate would end the edit (converged or out of steps): a stop is decided on every token.
    #[allow(clippy::too_many_arguments)]
    fn new(
        model: &Model,
        targets: &TargetTerm,
        kl: &KlTerm,
        deltas: &[FfnDelta],
        settings: &OptimizeSettings,
        step: usize,
        cancel: &AtomicBool,
        head: &mut EditHead,
    ) -> Result<Self> {
        // Losses and their gradients with respect to the final hidden states are computed in closed
        // form (softmax minus target); autograd only runs through the transformer layers.
        let target_hidden = targets.tails.hidden_at(model, &targets.batch.cells, deltas)?;
        let kl_hidden = kl.tails.hidden_at(model, &kl.cells, deltas)?;
        let hidden = Tensor::cat(&[&target_hidden, &kl_hidden], 0)?;
        let (pairs, kl_rows) = (targets.batch.spans.len() as f32, kl.cells.len() as f32);
        let objective = HeadObjective {
            target_ids: &targets.target_ids,
            // The target loss is the mean over pairs of their summed token NLL.
            target_weight: 1.0 / pairs,
            kept: &kl.original,
            kept_weight: settings.kl_weight as f32 / kl_rows,
        };
        let fresh = head.candidates.as_ref().filter(|(_, chosen_at)| step - chosen_at < FULL_VOCABULARY_EVERY);
        if let Some((candidates, _)) = fresh {
            let estimate = model.candidate_head_losses(&hidden, &objective, candidates)?;
            // An estimate that is not finite is checked on every token too (a NaN still stops the edit).
            if let Ok(losses) = Self::of_head(targets, &hidden, estimate, settings.kl_weight, step) {
                match stop_reason(&losses.pair_margins, step, settings, cancel) {
                    Some(StopReason::Converged | StopReason::StepsDone) => {}
                    _ => return Ok(losses),
                }
            }
        }
        let limits = CandidateLimits::default();
        let (full, candidates) = model.head_losses(&hidden, &objective, &limits, &mut head.logits_buffer)?;
        head.candidates = Some((candidates, step));
        Self::of_head(targets, &hidden, full, settings.kl_weight, step)
    }

    /// The step's record, margins and surrogate from the head's losses over `hidden`.
    fn of_head(targets: &TargetTerm, hidden: &Tensor, head: HeadLosses, kl_weight: f64, step: usize) -> Result<Self> {
        let (pairs, kl_rows) = (targets.batch.spans.len() as f32, head.kept_divergences.len() as f32);
        let surrogate = (hidden * head.hidden_grad)?.sum_all()?;
        let log_probs = targets.per_pair(&head.target_log_probs, 0.0, |sum, v| sum + v);
        let target_loss = -log_probs.iter().sum::<f32>() / pairs;
        let kl_loss = head.kept_divergences.iter().sum::<f32>() / kl_rows;
        let total_loss = target_loss + kl_weight as f32 * kl_loss;
        let pair_margins = targets.per_pair(&head.target_margins, f32::INFINITY, f32::min);
        let of_langs = &targets.prompt_pair_of_lang;
        let record = OptimizeStep {
            step,
            target_loss,
            kl_loss,
            total_loss,
            target_probs: of_langs.iter().map(|&i| log_probs[i].exp()).collect(),
            all_correct: pair_margins.iter().all(|&m| m > 0.0),
            target_margins: of_langs.iter().map(|&i| pair_margins[i]).collect(),
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
        Ok(Self { record, pair_margins, surrogate })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::{training_pairs, OptimizeSettings};
    use crate::method::prompts::{fill_paraphrases, ParaphraseSettings};
    use crate::method::{EditDescriptor, EditGroup};
    use crate::runtime::tiny::{write_tiny_model, TinySpec};
    use crate::runtime::{Arch, ChatFrame, LoadedModel, WeightMode};

    #[test]
    fn written_paraphrases_are_trained_on_and_generated_ones_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_tiny_model(dir.path(), TinySpec::new(Arch::Gemma3)).unwrap();
        let tokenizer = LoadedModel::load(&files, WeightMode::Quantized, &Device::Cpu).unwrap().tokenizer;
        let mut group = EditGroup {
            name: "curie".into(),
            descriptors: vec![EditDescriptor {
                lang: "en".into(),
                subject: "Marie Curie".into(),
                prompt: "Marie Curie was born in the city of".into(),
                target: "Lisbon".into(),
                // Kept though it does not name the subject; the blank one is no paraphrase.
                paraphrases: vec!["Where was she born?".into(), "  ".into()],
                generated_paraphrases: Vec::new(),
                aliases: Vec::new(),
            }],
        };
        fill_paraphrases(&mut group, &ParaphraseSettings { count: 3, ..ParaphraseSettings::default() }, None).unwrap();
        let d = &group.descriptors[0];
        assert_eq!(d.paraphrases, ["Where was she born?", "  "], "the written ones stay as written");
        assert_eq!(d.generated_paraphrases.len(), 2, "filled up to the count with the written one");
        assert!(d.generated_paraphrases.iter().all(|p| p.contains("Marie Curie") && p != "Where was she born?"));
        let mut again = group.clone();
        fill_paraphrases(&mut again, &ParaphraseSettings { count: 3, ..ParaphraseSettings::default() }, None).unwrap();
        assert_eq!(again, group, "preparing again changes nothing");

        let pairs = |train_on_paraphrases| {
            let settings = OptimizeSettings { train_on_paraphrases, ..OptimizeSettings::default() };
            training_pairs(&tokenizer, &group, &settings, ChatFrame::Raw).unwrap().0.len()
        };
        assert_eq!(pairs(false), 2, "the prompt and the written paraphrase");
        assert_eq!(pairs(true), 4, "and the generated ones");
    }
}
