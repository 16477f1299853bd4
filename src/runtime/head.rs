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
    /// The distributions to keep, one per kept row.
    pub kept: &'a KeptDistributions,
    /// d loss / d KL(kept || predicted) of every kept row.
    pub kept_weight: f32,
}

/// Next-token distributions an edit must keep, prepared once for all its steps: the probabilities
/// and each row's terms of KL(kept || predicted) that do not depend on the prediction.
pub struct KeptDistributions {
    vocab: usize,
    probs: Vec<f32>,
    /// Per row: the sum of p·ln p.
    neg_entropies: Vec<f64>,
    /// Per row: the sum of p (1 up to rounding).
    masses: Vec<f64>,
}

impl KeptDistributions {
    /// From log-probabilities, one vocabulary-long row per kept row, concatenated.
    pub fn from_log_probs(log_probs: &[f32], vocab: usize) -> Result<Self> {
        if vocab == 0 || !log_probs.len().is_multiple_of(vocab) {
            bail!("{} log-probabilities are not rows of {vocab} tokens", log_probs.len());
        }
        let probs: Vec<f32> = log_probs.iter().map(|l| l.exp()).collect();
        let (neg_entropies, masses) = log_probs
            .chunks(vocab)
            .zip(probs.chunks(vocab))
            .map(|(logs, ps)| {
                logs.iter().zip(ps).fold((0f64, 0f64), |(sum, mass), (&l, &p)| {
                    // 0·ln 0 = 0: a token the kept row never predicts adds nothing.
                    let term = if p > 0.0 { f64::from(p) * f64::from(l) } else { 0.0 };
                    (sum + term, mass + f64::from(p))
                })
            })
            .unzip();
        Ok(Self { vocab, probs, neg_entropies, masses })
    }

    pub fn rows(&self) -> usize {
        self.masses.len()
    }
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
    /// the caller chains it into the layers (e.g. through `(hidden * hidden_grad).sum()`). The logits
    /// are computed in `buffer`, which a caller scoring many times keeps: on Gemma 3 they are 1 MB a
    /// row, and memory mapped afresh for every step cost an edit a tenth of its time in page faults.
    pub fn head_losses(&self, hidden: &Tensor, objective: &HeadObjective, buffer: &mut Vec<f32>) -> Result<HeadLosses> {
        let rows = hidden.dims2()?.0;
        let vocab = self.output_head().out_in()?.0;
        self.output_head().forward_into(&hidden.detach(), buffer)?;
        let targets = objective.target_ids.len();
        let kept = objective.kept;
        if targets > rows || kept.rows() != rows - targets || (kept.rows() > 0 && kept.vocab != vocab) {
            bail!(
                "{rows} hidden rows cannot be {targets} target rows and {} kept distributions of {} tokens \
                 (the head has {vocab})",
                kept.rows(),
                kept.vocab
            );
        }
        if let Some(&id) = objective.target_ids.iter().find(|&&id| id as usize >= vocab) {
            bail!("target token {id} is outside the vocabulary of {vocab}");
        }
        // Every row's logits become, in place, d loss / d logits.
        let grads = buffer;
        let (target_rows, kept_rows) = grads.split_at_mut(targets * vocab);
        let (target_log_probs, target_margins): (Vec<f32>, Vec<f32>) = target_rows
            .par_chunks_mut(vocab)
            .zip(objective.target_ids.par_iter())
            .map(|(row, &id)| target_row(row, id as usize, objective.target_weight))
            .unzip();
        let kept_divergences: Vec<f32> = kept_rows
            .par_chunks_mut(vocab)
            .zip(kept.probs.par_chunks(vocab))
            .zip(kept.neg_entropies.par_iter().zip(&kept.masses))
            .map(|((row, probs), (&neg_entropy, &mass))| kept_row(row, probs, neg_entropy, mass, objective.kept_weight))
            .collect();
        let floors: Vec<f32> = (0..rows)
            .map(|r| GRADIENT_FLOOR * if r < targets { objective.target_weight } else { objective.kept_weight })
            .collect();
        let hidden_grad = self.sparse_head_gradient(grads, vocab, &floors)?;
        Ok(HeadLosses { target_log_probs, target_margins, kept_divergences, hidden_grad })
    }

    /// d loss / d hidden (rows, hidden) from d loss / d logits (rows of `vocab`), the LM head being
    /// linear: the sum over tokens of each gradient entry times the token's output row. Entries below
    /// their row's floor in magnitude are left out (see `GRADIENT_FLOOR`), so a step reads a few
    /// thousand output rows, not all 262,144 (on Gemma 3), and the head can stay in its quantized form.
    fn sparse_head_gradient(&self, grads: &[f32], vocab: usize, floors: &[f32]) -> Result<Tensor> {
        const TOKENS_PER_CHUNK: usize = 4096;
        let (rows, hidden) = (floors.len(), self.config().hidden_size);
        let head = self.output_head();
        let chunks = vocab.div_ceil(TOKENS_PER_CHUNK);
        // Chunks are summed in groups fixed by the vocabulary alone, and the groups in order: a sum
        // whose grouping followed rayon's work stealing differed in its last bits from run to run,
        // and so did an edit's losses from the fourth decimal on.
        let groups = chunks.min(SUM_GROUPS);
        let partial_sums = (0..groups)
            .into_par_iter()
            .map(|group| -> Result<Vec<f32>> {
                let mut sum = vec![0f32; rows * hidden];
                let mut entries = Vec::new();
                for chunk in (group * chunks / groups)..((group + 1) * chunks / groups) {
                    let tokens = chunk * TOKENS_PER_CHUNK..((chunk + 1) * TOKENS_PER_CHUNK).min(vocab);
                    entries.clear();
                    for (r, &floor) in floors.iter().enumerate() {
                        let row = &grads[r * vocab + tokens.start..r * vocab + tokens.end];
                        for (token, &g) in (tokens.start..).zip(row) {
                            // NaN is kept: it must reach the update values and stop the edit.
                            if g.abs() >= floor || g.is_nan() {
                                entries.push((token as u32, r as u32, g));
                            }
                        }
                    }
                    entries.sort_unstable_by_key(|e| e.0);
                    head.add_rows(&entries, &mut sum)?;
                }
                Ok(sum)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut sum = vec![0f32; rows * hidden];
        for partial in &partial_sums {
            sum.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
        }
        Ok(Tensor::from_vec(sum, (rows, hidden), self.device())?)
    }
}

/// How many partial sums the gradient over hidden states is made of (work for the threads to share).
const SUM_GROUPS: usize = 16;

/// Gradient entries over logits smaller than this times their row's weight are left out of the
/// gradient over hidden states: probabilities of tokens the model does not predict, a small share of
/// a row's gradient mass that points in no common direction. Measured on a 12-language edit of the
/// default model: 0.6-2.7% of the entries kept (a row keeps at most 11% of the vocabulary), the
/// gradient within 0.2-0.7% of the full product's norm. The losses and margins use every logit.
const GRADIENT_FLOOR: f32 = 1e-6;

/// A target row's (log P(target), margin); the row becomes weight * (softmax - onehot(target)).
fn target_row(row: &mut [f32], target: usize, weight: f32) -> (f32, f32) {
    let target_logit = row[target];
    row[target] = f32::NEG_INFINITY;
    let best_other = vocab_rows::max(row);
    row[target] = target_logit;
    let max = best_other.max(target_logit);
    let sum = vocab_rows::exp_in_place(row, max);
    vocab_rows::scale(row, (f64::from(weight) / sum) as f32);
    row[target] -= weight;
    ((target_logit - max) - sum.ln() as f32, target_logit - best_other)
}

/// A kept row's KL(kept || predicted), from the kept probabilities and their row's constant terms;
/// the row becomes weight * (softmax - kept probabilities).
fn kept_row(row: &mut [f32], kept_probs: &[f32], neg_entropy: f64, mass: f64, weight: f32) -> f32 {
    let max = vocab_rows::max(row);
    let expected_logit = vocab_rows::dot(row, kept_probs);
    let sum = vocab_rows::exp_in_place(row, max);
    // With ln q = logit - max - ln(sum): sum of p·ln q = sum of p·logit - mass·(max + ln(sum)).
    let divergence = neg_entropy - (expected_logit - mass * (f64::from(max) + sum.ln()));
    vocab_rows::softmax_minus(row, kept_probs, (1.0 / sum) as f32, weight);
    // Never below zero, as KL is (at the start the two terms cancel up to rounding); NaN stays NaN.
    if divergence < 0.0 {
        0.0
    } else {
        divergence as f32
    }
}

/// Passes over vocabulary-wide rows. libm's `expf` is a call per element and made these passes as slow
/// as a matmul; here the arithmetic is plain, so the compiler vectorizes it (`simd::vectorized`).
/// Sums run in f32 lanes within short blocks and in f64 across them.
mod vocab_rows {
    const LANES: usize = 16;
    const BLOCK: usize = 256;

    use crate::runtime::simd::{exp_nonpositive, vectorized};

    vectorized! {
        /// The largest element (NaN elements are skipped; -inf for an empty row).
        fn max(row: &[f32]) -> f32 {
            let mut lanes = [f32::NEG_INFINITY; LANES];
            let chunks = row.chunks_exact(LANES);
            let rest = chunks.remainder();
            for chunk in chunks {
                for (m, &x) in lanes.iter_mut().zip(chunk) {
                    *m = if x > *m { x } else { *m };
                }
            }
            lanes.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
        }
    }

    vectorized! {
        /// Each element x becomes e^(x - max); returns their sum.
        fn exp_in_place(row: &mut [f32], max: f32) -> f64 {
            let mut total = 0f64;
            for block in row.chunks_mut(BLOCK) {
                let mut lanes = [0f32; LANES];
                let mut chunks = block.chunks_exact_mut(LANES);
                for chunk in &mut chunks {
                    for (sum, x) in lanes.iter_mut().zip(chunk) {
                        *x = exp_nonpositive(*x - max);
                        *sum += *x;
                    }
                }
                let mut rest = 0f32;
                for x in chunks.into_remainder() {
                    *x = exp_nonpositive(*x - max);
                    rest += *x;
                }
                total += f64::from(lanes.iter().sum::<f32>() + rest);
            }
            total
        }
    }

    vectorized! {
        /// The sum of products of two rows of one length.
        fn dot(a: &[f32], b: &[f32]) -> f64 {
            let mut total = 0f64;
            for (a, b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
                let mut lanes = [0f32; LANES];
                let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
                let rest: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
                for (a, b) in a_chunks.zip(b_chunks) {
                    for ((sum, x), y) in lanes.iter_mut().zip(a).zip(b) {
                        *sum += x * y;
                    }
                }
                total += f64::from(lanes.iter().sum::<f32>() + rest);
            }
            total
        }
    }

    vectorized! {
        /// Each element multiplied by `factor`.
        fn scale(row: &mut [f32], factor: f32) {
            for x in row {
                *x *= factor;
            }
        }
    }

    vectorized! {
        /// Each element x becomes (x·inverse_sum - p)·weight, p the same element of `probs`.
        fn softmax_minus(row: &mut [f32], probs: &[f32], inverse_sum: f32, weight: f32) {
            for (x, &p) in row.iter_mut().zip(probs) {
                *x = (*x * inverse_sum - p) * weight;
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn exp_matches_libm_over_the_range_softmax_uses() {
            let mut worst = 0f32;
            for i in 0..=200_000 {
                let x = -87.0 * i as f32 / 200_000.0;
                let (fast, exact) = (exp_nonpositive(x), x.exp());
                worst = worst.max((fast - exact).abs() / exact);
            }
            assert!(worst < 3e-7, "relative error {worst}");
            assert_eq!(exp_nonpositive(0.0), 1.0);
            assert!(exp_nonpositive(f32::NEG_INFINITY) > 0.0 && exp_nonpositive(-1000.0) < 1e-37);
            assert!(exp_nonpositive(f32::NAN).is_nan());
        }

        #[test]
        fn row_passes_equal_their_plain_definitions() {
            let row: Vec<f32> = (0..1001).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
            let probs: Vec<f32> = (0..1001).map(|i| (i % 13) as f32 / 6500.0).collect();
            let plain_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&row), plain_max);
            assert_eq!(max(&[]), f32::NEG_INFINITY);
            let plain_dot: f64 = row.iter().zip(&probs).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            assert!((dot(&row, &probs) - plain_dot).abs() < 1e-4);
            let mut exps = row.clone();
            let sum = exp_in_place(&mut exps, plain_max);
            let plain_sum: f64 = row.iter().map(|&x| f64::from(x - plain_max).exp()).sum();
            assert!((sum - plain_sum).abs() < 1e-5 * plain_sum);
            for (e, &x) in exps.iter().zip(&row) {
                assert!((e - (x - plain_max).exp()).abs() <= 1e-6);
            }
        }
    }
}
