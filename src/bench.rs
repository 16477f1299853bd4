//! Speed and memory benchmarks on a real model (`lafn bench`): figures, not pass/fail tests.

pub mod cache;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use color_eyre::eyre::bail;

use std::sync::atomic::AtomicBool;

use crate::fetch::ModelFiles;
use crate::method::pipeline::{locate_group, run_edit, EditModels};
use crate::method::scope::QuestionEncoder;
use crate::method::{EditGroup, MethodSettings};
use crate::runtime::{
    kernel_description, FfnDelta, GenerateOptions, GenerationDeltas, Hooks, LoadedModel, PromptTarget, Sampling,
    WeightMode,
};
use crate::Result;

const PROMPT: &str = "The history of the city begins in the early middle ages, when a small settlement grew \
around the river crossing. Merchants from many countries came to trade wool, salt and wine, and over the \
following centuries the town became";

/// Token counts the decode benchmark accepts: the first token includes the prompt's prefill and is not
/// timed, so at least one more is needed; more than a few thousand only takes longer.
pub const DECODE_TOKENS: std::ops::RangeInclusive<usize> = 2..=4096;

/// Runs the runtime benchmarks (and, given an edit group, the method's) and returns a printable report.
pub fn run(files: &ModelFiles, device: &Device, decode_tokens: usize, group: Option<EditGroup>) -> Result<String> {
    if !DECODE_TOKENS.contains(&decode_tokens) {
        bail!(
            "--decode-tokens must be from {} to {} (got {decode_tokens})",
            DECODE_TOKENS.start(),
            DECODE_TOKENS.end()
        );
    }
    let mut report = String::new();
    let quantized = LoadedModel::load(files, WeightMode::Quantized, device)?;
    let prompt = quantized.tokenizer.encode_prompt(PROMPT)?;
    writeln!(report, "model: {} ({})", files.weights.display(), quantized.info.config.arch.name())?;
    writeln!(report, "threads: {}; Q8_0, Q5_0 and Q4_1 products: {}", rayon_threads(), kernel_description())?;

    let ids = Tensor::new(prompt.as_slice(), device)?.unsqueeze(0)?;
    let forward = median_time(5, || {
        let start = Instant::now();
        let out = quantized.model.forward(&ids, None, Hooks::default())?;
        let hidden = out.hidden.expect("a full forward pass returns hidden states");
        quantized.model.logits(&hidden.get(0)?.get(prompt.len() - 1)?.unsqueeze(0)?)?;
        Ok(start.elapsed())
    })?;
    writeln!(
        report,
        "prompt forward (quantized, {} tokens): {:.1} ms, {:.0} tokens/s",
        prompt.len(),
        ms(forward),
        prompt.len() as f64 / forward.as_secs_f64()
    )?;

    let options = GenerateOptions { max_new_tokens: decode_tokens, sampling: Sampling::Greedy };
    let decode = median_time(3, || {
        let mut stamps = Vec::with_capacity(decode_tokens);
        quantized.model.generate(&prompt, GenerationDeltas::NONE, &options, &[], &mut |_| {
            stamps.push(Instant::now());
            true
        })?;
        // The first token includes the prompt prefill: time the tokens after it.
        let (Some(first), Some(last)) = (stamps.first(), stamps.last()) else {
            bail!("the model decoded no tokens");
        };
        Ok(last.duration_since(*first) / (stamps.len() as u32 - 1).max(1))
    })?;
    writeln!(
        report,
        "decode (quantized, greedy): {:.2} ms/token, {:.1} tokens/s",
        ms(decode),
        1.0 / decode.as_secs_f64()
    )?;

    let dense = quantized.editing_weights()?;
    // What the weights alone hold; the peak below also covers the edit-step benchmark and the edit.
    let loaded_mb = proc_status_mb("VmRSS:");
    let step = edit_step_time(&dense, &quantized)?;
    writeln!(
        report,
        "edit step (dense layers, forward+backward+AdamW, 12 prompts, 64 neurons in 2 layers): {:.0} ms",
        ms(step)
    )?;
    if let Some(group) = group {
        let models = EditModels { dense: &dense, paraphraser: &quantized.model, tokenizer: &quantized.tokenizer };
        let settings = MethodSettings::default();
        let run = run_edit(models, group, &settings, &AtomicBool::new(false), &mut |_| {})?;
        let paraphrases: usize = run.group.descriptors.iter().map(|d| d.all_paraphrases().count()).sum();
        writeln!(
            report,
            "edit group ({} languages, {paraphrases} paraphrases): locate {:.1} s, edit {:.1} s ({} steps, {:.2} s/step, {:?}), {} neurons",
            run.group.descriptors.len(),
            run.locate_seconds,
            run.optimize_seconds,
            run.outcome.history.len(),
            run.optimize_seconds / run.outcome.history.len().max(1) as f64,
            run.outcome.stop,
            run.located.neuron_count()
        )?;
        // The reference prompts' activations are measured once for the weights: later edits skip them.
        let again = locate_group(models, run.group.clone(), &settings, &mut |_| {})?;
        writeln!(report, "locate again, the reference prompts known: {:.1} s", again.seconds)?;
        // What storing the edit adds: its scope keys, encoded on the weights that answer as editing
        // stores them. Each language's other-relation questions are encoded the first time a cache
        // meets the language, then read from what it saved (`SavedEncoder`).
        let (model, tokenizer) = (&quantized.model, &quantized.tokenizer);
        let encoder = QuestionEncoder::new(model, tokenizer, &settings.scope)?;
        let start = Instant::now();
        let keys = encoder.keys(model, tokenizer, &run.group)?;
        let first = start.elapsed();
        let saved = encoder.saved()?;
        let reopened = QuestionEncoder::reusing(model, tokenizer, &settings.scope, Some(&saved))?;
        let start = Instant::now();
        reopened.keys(model, tokenizer, &run.group)?;
        writeln!(
            report,
            "scope keys ({} questions and {} other-relation questions, {}): {:.1} s; {:.1} s in a cache that has met the languages",
            keys.keys.dim(0)?,
            keys.other_relations.dim(0)?,
            model.arithmetic(),
            first.as_secs_f64(),
            start.elapsed().as_secs_f64()
        )?;
    }
    writeln!(
        report,
        "memory: {loaded_mb:.0} MB resident with the quantized and editing weights loaded, peak {:.0} MB (VmHWM)",
        peak_memory_mb()
    )?;
    Ok(report)
}

/// One optimisation step of update values on a batch shaped like a 12-language edit group.
fn edit_step_time(dense: &crate::runtime::Model, loaded: &LoadedModel) -> Result<Duration> {
    let c = dense.config();
    let hidden = c.hidden_size;
    let layers = [c.num_layers / 2, c.num_layers / 2 + 1];
    let vars: Vec<Var> = layers
        .iter()
        .map(|_| Var::zeros((32, hidden), candle_core::DType::F32, dense.device()))
        .collect::<candle_core::Result<_>>()?;
    let neurons = Tensor::arange(0u32, 32, dense.device())?;
    let mut optimizer = AdamW::new(vars.clone(), ParamsAdamW { lr: 1e-3, ..Default::default() })?;
    let prompt = loaded.tokenizer.encode_prompt("What country is Shmavon Shmavonyan from?")?;
    let target = loaded.tokenizer.encode_plain(" Yemen")?;
    let pairs = vec![PromptTarget { prompt, target }; 12];
    median_time(3, || {
        let start = Instant::now();
        let edits: Vec<FfnDelta> = layers
            .iter()
            .zip(&vars)
            .map(|(&layer, var)| FfnDelta { layer, neurons: neurons.clone(), delta: var.as_tensor().clone() })
            .collect();
        let scored = dense.target_log_probs(&pairs, &edits, loaded.tokenizer.pad_id())?;
        let loss = scored.token_log_probs.mean_all()?.neg()?;
        optimizer.backward_step(&loss)?;
        Ok(start.elapsed())
    })
}

fn median_time(runs: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut times = (0..runs).map(|_| f()).collect::<Result<Vec<_>>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Peak resident memory of this process, from /proc (0 where unavailable).
pub fn peak_memory_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

/// A memory figure of this process's /proc status (`VmHWM:`, `VmRSS:`) in MB; 0 where unavailable.
fn proc_status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
