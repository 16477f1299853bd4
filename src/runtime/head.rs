//! The LM head's losses and their gradient with respect to the hidden states, in closed form, for
//! optimizing update values: one matmul for the logits of all rows, one pass over each row (in
//! parallel), one matmul back to the hidden states. The vocabulary is wide (262k on Gemma 3), so
//! tensor ops that each make a (rows, vocab) tensor and go over it once cost more time and memory
//! than the matmuls.

use candle_core::Tensor;
use color_eyre::eyre::bail;
use rayon::prelude::*;

use super::model::Model;
use crate::Result;

/// What the rows of a batch of final hidden states are scored against: the first
/// `target_ids.len()` rows must predict their target token; the rows after them must keep a
/// next-token distribution.
pub struct HeadObjective<'a> {
    /// The token each target row must predict.
    pub target_ids: &'a [u32],
    /// d loss / d(-log P(target)) of every target row (e.g. 1 / pairs when the loss is the mean over
    /// pairs of their summed token NLL).
    pub target_weight: f32,
    /// The log-probabilities to keep, one vocabulary-long row per kept row, concatenated.
    pub kept_log_probs: &'a [f32],
    /// d loss / d KL(kept || predicted) of every kept row.
    pub kept_weight: f32,
}

/// Per-row losses and the gradient of their weighted sum.
pub struct HeadLosses {
    /// Per target row: log P(target).
    pub target_log_probs: Vec<f32>,
    /// Per target row: the target's logit minus the best other token's.
    pub target_margins: Vec<f32>,
    /// Per kept row: KL(kept || predicted).
    pub kept_divergences: Vec<f32>,
    /// d loss / d hidden, (rows, hidden).
    pub hidden_grad: Tensor,
}

impl Model {
    /// Scores final hidden states (rows, hidden) against `objective`. The gradient stops at `hidden`:
    /// the caller chains it into the layers (e.g. through `(hidden * hidden_grad).sum()`).
    pub fn head_losses(&self, hidden: &Tensor, objective: &HeadObjective) -> Result<HeadLosses> {
        let logits = self.logits(&hidden.detach())?;
        let (rows, vocab) = logits.dims2()?;
        let targets = objective.target_ids.len();
        if targets > rows || objective.kept_log_probs.len() != (rows - targets) * vocab {
            bail!(
                "{rows} hidden rows cannot be {targets} target rows and {} kept distributions of {vocab} tokens",
                objective.kept_log_probs.len() as f64 / vocab as f64
            );
        }
        if let Some(&id) = objective.target_ids.iter().find(|&&id| id as usize >= vocab) {
            bail!("target token {id} is outside the vocabulary of {vocab}");
        }
        // Every row's logits become, in place, d loss / d logits.
        let mut grads: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        drop(logits);
        let (target_rows, kept_rows) = grads.split_at_mut(targets * vocab);
        let (target_log_probs, target_margins): (Vec<f32>, Vec<f32>) = target_rows
            .par_chunks_mut(vocab)
            .zip(objective.target_ids.par_iter())
            .map(|(row, &id)| target_row(row, id as usize, objective.target_weight))
            .unzip();
        let kept_divergences: Vec<f32> = kept_rows
            .par_chunks_mut(vocab)
            .zip(objective.kept_log_probs.par_chunks(vocab))
            .map(|(row, kept)| kept_row(row, kept, objective.kept_weight))
            .collect();
        let hidden_grad = self.head_gradient(&Tensor::from_vec(grads, (rows, vocab), self.device())?)?;
        Ok(HeadLosses { target_log_probs, target_margins, kept_divergences, hidden_grad })
    }
}

/// ln(sum(exp(row - max))), the log-softmax's offset after the max.
fn shifted_log_sum(row: &[f32], max: f32) -> f32 {
    row.iter().map(|&l| f64::from((l - max).exp())).sum::<f64>().ln() as f32
}

/// A target row's (log P(target), margin); the row becomes weight * (softmax - onehot(target)).
fn target_row(row: &mut [f32], target: usize, weight: f32) -> (f32, f32) {
    let target_logit = row[target];
    let best_other = row[..target].iter().chain(&row[target + 1..]).copied().fold(f32::NEG_INFINITY, f32::max);
    let max = best_other.max(target_logit);
    let log_sum = shifted_log_sum(row, max);
    for logit in row.iter_mut() {
        *logit = ((*logit - max) - log_sum).exp() * weight;
    }
    row[target] -= weight;
    ((target_logit - max) - log_sum, target_logit - best_other)
}

/// A kept row's KL(kept || predicted); the row becomes weight * (softmax - kept probabilities).
fn kept_row(row: &mut [f32], kept_log_probs: &[f32], weight: f32) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = shifted_log_sum(row, max);
    let mut divergence = 0f64;
    for (logit, &kept_log_prob) in row.iter_mut().zip(kept_log_probs) {
        let log_prob = (*logit - max) - log_sum;
        let kept_prob = kept_log_prob.exp();
        divergence += f64::from(kept_prob * (kept_log_prob - log_prob));
        *logit = (log_prob.exp() - kept_prob) * weight;
    }
    divergence as f32
}
