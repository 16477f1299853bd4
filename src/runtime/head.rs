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

/// What a pass over the whole vocabulary leaves for the cheaper passes after it
/// ([`Model::candidate_head_losses`]): per row, the tokens that held its probability (and a target
/// row's target) with the output head's rows of them, and the other tokens as one lump: their summed
/// exp(logit) at the full pass, and its derivative with respect to the row's hidden state (their
/// head rows averaged, weighted by probability), so the lump follows the hidden state to first order.
/// An edit moves a row's distribution a little per step: the tokens it predicts, or must keep, a few
/// steps on are nearly always among those it predicted or kept.
pub struct HeadCandidates {
    /// Every row's tokens, sorted, each once.
    tokens: Vec<u32>,
    /// The output head's rows of `tokens`, dense: (tokens, hidden).
    weights: Tensor,
    rows: Vec<CandidateRow>,
    /// The hidden states of the full pass, (rows, hidden).
    hidden: Tensor,
    /// Per row, d ln(lump) / d hidden at the full pass, (rows, hidden).
    lump_directions: Tensor,
}

struct CandidateRow {
    /// Where this row's tokens are in `HeadCandidates::tokens`, ascending.
    positions: Vec<u32>,
    /// ln of the summed exp(logit) of the row's other tokens (its lump), at the full pass.
    lump_log_mass: f32,
    kind: CandidateRowKind,
}

enum CandidateRowKind {
    /// The target's index among the row's tokens.
    Target(usize),
    /// The kept probabilities of the row's tokens, the sum of their p·ln p, and their sum.
    Kept { probs: Vec<f32>, neg_entropy: f64, mass: f64 },
}

impl HeadCandidates {
    /// How many distinct tokens the candidate passes score.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }
}

/// Which tokens a full pass keeps as a row's candidates.
#[derive(Debug, Clone, Copy)]
pub struct CandidateLimits {
    /// A token whose predicted probability (or, in a kept row, its kept one) reaches this...
    pub probability: f32,
    /// ... up to this many per row, the likeliest: a row that spreads its probability thinly (the
    /// model unsure what comes next) would otherwise bring thousands, each too unlikely to matter.
    pub per_row: usize,
    /// Every row keeps at least its this many likeliest tokens, however unlikely: a target's best
    /// competitor (its margin) is among them.
    pub likeliest: usize,
}

impl Default for CandidateLimits {
    /// On a 12-language edit of the default model: 4,000-9,000 tokens of 262,144 for all rows
    /// together, a candidate pass in 7-28 ms against 250-350 ms for a full one.
    fn default() -> Self {
        Self { probability: 1e-4, per_row: 256, likeliest: 8 }
    }
}

/// One row's candidates, chosen in a full pass: its tokens (ascending), the log of the summed
/// exp(logit) of the others, and the others whose probability reaches `GRADIENT_FLOOR`, (token,
/// probability) ascending, for the lump's direction.
struct ChosenTokens {
    tokens: Vec<u32>,
    lump_log_mass: f32,
    lump_probability: f64,
    lump_tokens: Vec<(u32, f32)>,
}

/// Chooses a row's candidates from its exponentials `exps` (e^(logit - max), summing to `sum`): those
/// `limits` keep and those for which `also` holds (the first kept when there are too many).
fn choose_tokens(
    exps: &[f32],
    sum: f64,
    max: f32,
    limits: &CandidateLimits,
    also: impl Fn(usize) -> bool,
) -> ChosenTokens {
    // The `likeliest` largest exponentials, in descending order.
    let mut likeliest = vec![f32::NEG_INFINITY; limits.likeliest.max(1)];
    let last = likeliest.len() - 1;
    for &e in exps {
        if e > likeliest[last] {
            let at = likeliest.partition_point(|&l| l >= e);
            likeliest.copy_within(at..last, at + 1);
            likeliest[at] = e;
        }
    }
    let threshold = ((f64::from(limits.probability) * sum) as f32).min(likeliest[last]);
    let mut tokens: Vec<u32> = (0..exps.len()).filter(|&t| exps[t] >= threshold || also(t)).map(|t| t as u32).collect();
    if tokens.len() > limits.per_row {
        let rank = |t: u32| (also(t as usize), exps[t as usize]);
        tokens.sort_unstable_by(|&a, &b| {
            let ((also_a, a), (also_b, b)) = (rank(a), rank(b));
            also_b.cmp(&also_a).then(b.total_cmp(&a))
        });
        tokens.truncate(limits.per_row);
        tokens.sort_unstable();
    }
    let chosen_sum: f64 = tokens.iter().map(|&t| f64::from(exps[t as usize])).sum();
    let rest = sum - chosen_sum;
    let lump_log_mass = if rest > 0.0 { (f64::from(max) + rest.ln()) as f32 } else { f32::NEG_INFINITY };
    let floor = (f64::from(GRADIENT_FLOOR) * sum) as f32;
    let lump_tokens = (exps.iter().enumerate())
        .filter(|&(t, &e)| e >= floor && tokens.binary_search(&(t as u32)).is_err())
        .map(|(t, &e)| (t as u32, (f64::from(e) / sum) as f32))
        .collect();
    ChosenTokens { tokens, lump_log_mass, lump_probability: rest.max(0.0) / sum, lump_tokens }
}

impl Model {
    /// Scores final hidden states (rows, hidden) against `objective`. The gradient stops at `hidden`:
    /// the caller chains it into the layers (e.g. through `(hidden * hidden_grad).sum()`). The logits
    /// are computed in `buffer`, which a caller scoring many times keeps: on Gemma 3 they are 1 MB a
    /// row, and memory mapped afresh for every step cost an edit a tenth of its time in page faults.
    /// Also returns the candidates, chosen within `limits`, that later passes may score alone.
    pub fn head_losses(
        &self,
        hidden: &Tensor,
        objective: &HeadObjective,
        limits: &CandidateLimits,
        buffer: &mut Vec<f32>,
    ) -> Result<(HeadLosses, HeadCandidates)> {
        let rows = hidden.dims2()?.0;
        let vocab = self.output_head().out_in()?.0;
        check_objective(objective, rows, vocab)?;
        self.output_head().forward_into(&hidden.detach(), buffer)?;
        let targets = objective.target_ids.len();
        let kept = objective.kept;
        // Every row's logits become, in place, d loss / d logits.
        let grads = buffer;
        let (target_rows, kept_rows) = grads.split_at_mut(targets * vocab);
        let no_lump = f32::NEG_INFINITY;
        let (target_scores, target_chosen): (Vec<(f32, f32)>, Vec<ChosenTokens>) = target_rows
            .par_chunks_mut(vocab)
            .zip(objective.target_ids.par_iter())
            .map(|(row, &id)| {
                let id = id as usize;
                let mut chosen = None;
                let score = target_row(row, id, objective.target_weight, no_lump, &mut |exps, sum, max| {
                    chosen = Some(choose_tokens(exps, sum, max, limits, |token| token == id));
                });
                (score, chosen.expect("a target row chooses its candidates"))
            })
            .unzip();
        let (kept_divergences, kept_chosen): (Vec<f32>, Vec<ChosenTokens>) = kept_rows
            .par_chunks_mut(vocab)
            .zip(kept.probs.par_chunks(vocab))
            .zip(kept.neg_entropies.par_iter().zip(&kept.masses))
            .map(|((row, probs), (&neg_entropy, &mass))| {
                let mut chosen = None;
                let divergence =
                    kept_row(row, probs, neg_entropy, mass, objective.kept_weight, no_lump, &mut |exps, sum, max| {
                        chosen =
                            Some(choose_tokens(exps, sum, max, limits, |token| probs[token] >= limits.probability));
                    });
                (non_negative(divergence), chosen.expect("a kept row chooses its candidates"))
            })
            .unzip();
        let (target_log_probs, target_margins) = target_scores.into_iter().unzip();
        let floors: Vec<f32> = (0..rows)
            .map(|r| GRADIENT_FLOOR * if r < targets { objective.target_weight } else { objective.kept_weight })
            .collect();
        let chosen: Vec<ChosenTokens> = target_chosen.into_iter().chain(kept_chosen).collect();
        // d loss / d hidden, the head being linear: the sum over tokens of each gradient entry times
        // the token's output row. Entries below their row's floor in magnitude are left out (see
        // `GRADIENT_FLOOR`), so a step reads a few thousand output rows, not all 262,144 (on Gemma 3),
        // and the head can stay in its quantized form. The same product gives each lump's direction
        // (d ln(lump) / d hidden: its tokens' rows weighted by their share of it), in rows after the
        // gradient's: the head's rows both read are decoded once.
        let both = self.sparse_head_product(2 * rows, vocab, &|tokens, entries| {
            for (r, &floor) in floors.iter().enumerate() {
                let row = &grads[r * vocab + tokens.start..r * vocab + tokens.end];
                for (token, &g) in (tokens.start..).zip(row) {
                    // NaN is kept: it must reach the update values and stop the edit.
                    if g.abs() >= floor || g.is_nan() {
                        entries.push((token as u32, r as u32, g));
                    }
                }
            }
            for (r, c) in chosen.iter().enumerate() {
                let start = c.lump_tokens.partition_point(|e| (e.0 as usize) < tokens.start);
                let end = c.lump_tokens.partition_point(|e| (e.0 as usize) < tokens.end);
                let scale = if c.lump_probability > 0.0 { 1.0 / c.lump_probability } else { 0.0 };
                let lump_row = (rows + r) as u32;
                entries.extend(
                    c.lump_tokens[start..end].iter().map(|&(t, q)| (t, lump_row, (f64::from(q) * scale) as f32)),
                );
            }
        })?;
        let hidden_grad = both.narrow(0, 0, rows)?;
        let losses = HeadLosses { target_log_probs, target_margins, kept_divergences, hidden_grad };
        let candidates = self.head_candidates(hidden, objective, chosen, both.narrow(0, rows, rows)?)?;
        Ok((losses, candidates))
    }

    /// The candidates of every row: their tokens gathered into one set and the head's rows read.
    fn head_candidates(
        &self,
        hidden: &Tensor,
        objective: &HeadObjective,
        chosen: Vec<ChosenTokens>,
        lump_directions: Tensor,
    ) -> Result<HeadCandidates> {
        let mut tokens: Vec<u32> = chosen.iter().flat_map(|c| c.tokens.iter().copied()).collect();
        tokens.sort_unstable();
        tokens.dedup();
        let positions_of = |chosen: &ChosenTokens| -> Vec<u32> {
            chosen.tokens.iter().map(|token| tokens.partition_point(|t| t < token) as u32).collect()
        };
        let vocab = objective.kept.vocab;
        let targets = objective.target_ids.len();
        let rows = (chosen.iter().enumerate())
            .map(|(r, chosen)| {
                let kind = match objective.target_ids.get(r) {
                    Some(id) => CandidateRowKind::Target(chosen.tokens.partition_point(|t| t < id)),
                    None => {
                        let k = r - targets;
                        let all = &objective.kept.probs[k * vocab..(k + 1) * vocab];
                        let probs: Vec<f32> = chosen.tokens.iter().map(|&t| all[t as usize]).collect();
                        let neg_entropy =
                            probs.iter().filter(|&&p| p > 0.0).map(|&p| f64::from(p) * f64::from(p.ln())).sum();
                        let mass = probs.iter().map(|&p| f64::from(p)).sum();
                        CandidateRowKind::Kept { probs, neg_entropy, mass }
                    }
                };
                CandidateRow { positions: positions_of(chosen), lump_log_mass: chosen.lump_log_mass, kind }
            })
            .collect();
        let weights = self.output_head().rows(&Tensor::new(tokens.as_slice(), self.device())?)?;
        Ok(HeadCandidates { tokens, weights, rows, hidden: hidden.detach(), lump_directions })
    }

    /// [`Model::head_losses`] on `candidates` alone: each row's logits over its tokens, the rest of
    /// its vocabulary one lump whose log-mass moves with the hidden state to first order. Losses and
    /// margins are estimates (a token outside a row's candidates that rose is not seen); a caller
    /// decides on a full pass.
    pub fn candidate_head_losses(
        &self,
        hidden: &Tensor,
        objective: &HeadObjective,
        candidates: &HeadCandidates,
    ) -> Result<HeadLosses> {
        let rows = hidden.dims2()?.0;
        check_objective(objective, rows, self.output_head().out_in()?.0)?;
        if candidates.rows.len() != rows {
            bail!("candidates of {} rows cannot score {rows} rows", candidates.rows.len());
        }
        let hidden = hidden.detach();
        let width = candidates.tokens.len();
        let logits: Vec<f32> = hidden.matmul(&candidates.weights.t()?)?.flatten_all()?.to_vec1()?;
        let lump_moves: Vec<f32> =
            ((&hidden - &candidates.hidden)? * &candidates.lump_directions)?.sum(1)?.to_vec1()?;
        let (target_weight, kept_weight) = (objective.target_weight, objective.kept_weight);
        // Per row: its loss, its margin (target rows), its tokens' gradients and the lump's.
        let scored: Vec<(f32, f32, Vec<f32>, f32)> = (candidates.rows.par_iter().zip(logits.par_chunks(width)))
            .zip(lump_moves.par_iter())
            .map(|((row, logits), &moved)| {
                let mut own: Vec<f32> = row.positions.iter().map(|&p| logits[p as usize]).collect();
                let lump_log_mass = row.lump_log_mass + moved;
                let mut lump_share = 0f64;
                let mut log_normalizer = 0f64;
                let mut see = |_: &[f32], sum: f64, max: f32| {
                    lump_share = lump(lump_log_mass, max) / sum;
                    log_normalizer = f64::from(max) + sum.ln();
                };
                match &row.kind {
                    CandidateRowKind::Target(target) => {
                        let (log_prob, margin) = target_row(&mut own, *target, target_weight, lump_log_mass, &mut see);
                        (log_prob, margin, own, (f64::from(target_weight) * lump_share) as f32)
                    }
                    CandidateRowKind::Kept { probs, neg_entropy, mass } => {
                        let divergence =
                            kept_row(&mut own, probs, *neg_entropy, *mass, kept_weight, lump_log_mass, &mut see);
                        // The lump's term: kept mass p against predicted mass q = e^(lump - ln Z).
                        let kept_rest = (1.0 - mass).max(0.0);
                        let lump_term = match lump_log_mass.is_finite() && kept_rest > 0.0 {
                            true => kept_rest * (kept_rest.ln() - (f64::from(lump_log_mass) - log_normalizer)),
                            false => 0.0,
                        };
                        let lump_grad = f64::from(kept_weight) * (lump_share - kept_rest);
                        (non_negative(divergence + lump_term), f32::NAN, own, lump_grad as f32)
                    }
                }
            })
            .collect();
        let mut grads = vec![0f32; rows * width];
        for ((row, (_, _, own, _)), out) in candidates.rows.iter().zip(&scored).zip(grads.chunks_exact_mut(width)) {
            for (&p, &g) in row.positions.iter().zip(own) {
                out[p as usize] = g;
            }
        }
        let grads = Tensor::from_vec(grads, (rows, width), self.device())?;
        let lump_grads = Tensor::from_vec(scored.iter().map(|s| s.3).collect::<Vec<f32>>(), (rows, 1), self.device())?;
        let hidden_grad =
            (grads.matmul(&candidates.weights)? + candidates.lump_directions.broadcast_mul(&lump_grads)?)?;
        let targets = objective.target_ids.len();
        let (target_log_probs, target_margins) = scored[..targets].iter().map(|s| (s.0, s.1)).unzip();
        let kept_divergences = scored[targets..].iter().map(|s| s.0).collect();
        Ok(HeadLosses { target_log_probs, target_margins, kept_divergences, hidden_grad })
    }

    /// The product of a sparse (rows, vocab) matrix with the output head (vocab, hidden): `entries`
    /// lists, for a range of tokens, the matrix's (token, row, value) entries in it.
    fn sparse_head_product(&self, rows: usize, vocab: usize, entries: &SparseEntries) -> Result<Tensor> {
        const TOKENS_PER_CHUNK: usize = 4096;
        let hidden = self.config().hidden_size;
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
                let mut chunk_entries = Vec::new();
                for chunk in (group * chunks / groups)..((group + 1) * chunks / groups) {
                    chunk_entries.clear();
                    entries(chunk * TOKENS_PER_CHUNK..((chunk + 1) * TOKENS_PER_CHUNK).min(vocab), &mut chunk_entries);
                    chunk_entries.sort_unstable_by_key(|e| e.0);
                    head.add_rows(&chunk_entries, &mut sum)?;
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

/// Fills, for a range of tokens, a sparse matrix's (token, row, value) entries in it.
type SparseEntries<'a> = dyn Fn(std::ops::Range<usize>, &mut Vec<(u32, u32, f32)>) + Sync + 'a;

/// How many partial sums the gradient over hidden states is made of (work for the threads to share).
const SUM_GROUPS: usize = 16;

/// Gradient entries over logits smaller than this times their row's weight are left out of the
/// gradient over hidden states: probabilities of tokens the model does not predict, a small share of
/// a row's gradient mass that points in no common direction. Measured on a 12-language edit of the
/// default model: 0.6-2.7% of the entries kept (a row keeps at most 11% of the vocabulary), the
/// gradient within 0.2-0.7% of the full product's norm. The losses and margins use every logit.
const GRADIENT_FLOOR: f32 = 1e-6;

/// Sees a row's exponentials e^(logit - max) with their sum (the tail's included) and the max, before
/// they become gradients: where a full pass chooses its candidates.
type SeeExps<'a> = dyn FnMut(&[f32], f64, f32) + 'a;

/// A target row's (log P(target), margin); the row becomes weight * (softmax - onehot(target)).
/// `tail_log_mass`: ln of the summed exp(logit) of tokens the row leaves out (-inf: none).
fn target_row(row: &mut [f32], target: usize, weight: f32, tail_log_mass: f32, see: &mut SeeExps) -> (f32, f32) {
    let target_logit = row[target];
    row[target] = f32::NEG_INFINITY;
    let best_other = vocab_rows::max(row);
    row[target] = target_logit;
    let max = best_other.max(target_logit).max(tail_log_mass);
    let sum = vocab_rows::exp_in_place(row, max) + lump(tail_log_mass, max);
    see(row, sum, max);
    vocab_rows::scale(row, (f64::from(weight) / sum) as f32);
    row[target] -= weight;
    ((target_logit - max) - sum.ln() as f32, target_logit - best_other)
}

/// A kept row's KL(kept || predicted) over its tokens (unfloored), from the kept probabilities and
/// their row's constant terms; the row becomes weight * (softmax - kept probabilities).
/// `tail_log_mass` as for [`target_row`].
fn kept_row(
    row: &mut [f32],
    kept_probs: &[f32],
    neg_entropy: f64,
    mass: f64,
    weight: f32,
    tail_log_mass: f32,
    see: &mut SeeExps,
) -> f64 {
    let max = vocab_rows::max(row).max(tail_log_mass);
    let expected_logit = vocab_rows::dot(row, kept_probs);
    let sum = vocab_rows::exp_in_place(row, max) + lump(tail_log_mass, max);
    see(row, sum, max);
    // With ln q = logit - max - ln(sum): sum of p·ln q = sum of p·logit - mass·(max + ln(sum)).
    let divergence = neg_entropy - (expected_logit - mass * (f64::from(max) + sum.ln()));
    vocab_rows::softmax_minus(row, kept_probs, (1.0 / sum) as f32, weight);
    divergence
}

/// A divergence as reported: never below zero, as KL is (at the start its two terms cancel up to
/// rounding); NaN stays NaN.
fn non_negative(divergence: f64) -> f32 {
    if divergence < 0.0 {
        0.0
    } else {
        divergence as f32
    }
}

/// e^(tail_log_mass - max), the left-out tokens' share of a row's sum (none: 0).
fn lump(tail_log_mass: f32, max: f32) -> f64 {
    match tail_log_mass == f32::NEG_INFINITY {
        true => 0.0,
        false => f64::from(tail_log_mass - max).exp(),
    }
}

fn check_objective(objective: &HeadObjective, rows: usize, vocab: usize) -> Result<()> {
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
    Ok(())
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
