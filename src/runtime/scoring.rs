//! Teacher-forced scoring of a target after a prompt, batched over right-padded sequences.

use std::ops::Range;

use candle_core::{Device, Tensor};
use color_eyre::eyre::{bail, eyre};

use super::model::{log_softmax_last_dim, FfnDelta, Hooks, KvCache, Model};
use crate::Result;

/// Token sequences padded on the right into one (batch, len) tensor.
pub struct PaddedBatch {
    pub ids: Tensor,
    pub lengths: Vec<usize>,
    /// Per row, where the answer begins: the prompt's last token, whose output is the answer's first
    /// token. Update values act from there on (a batch of prompts: each row's last token).
    pub answer_starts: Vec<usize>,
    /// Per row, the first position where update values no longer act (`usize::MAX`: the row's end).
    pub answer_ends: Vec<usize>,
}

impl PaddedBatch {
    /// The ids tensor is made on `device`, the model's that will run it.
    pub fn new(seqs: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Self> {
        let width = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if width == 0 {
            bail!("cannot run an empty batch (no tokens)");
        }
        let flat: Vec<u32> =
            seqs.iter().flat_map(|s| s.iter().copied().chain(std::iter::repeat_n(pad_id, width - s.len()))).collect();
        Ok(Self {
            ids: Tensor::from_vec(flat, (seqs.len(), width), device)?,
            lengths: seqs.iter().map(Vec::len).collect(),
            answer_starts: seqs.iter().map(|s| s.len().saturating_sub(1)).collect(),
            answer_ends: vec![usize::MAX; seqs.len()],
        })
    }

    /// The rows' tokens without padding.
    fn rows(&self) -> Result<Vec<Vec<u32>>> {
        let padded = self.ids.to_vec2::<u32>()?;
        Ok(padded
            .into_iter()
            .zip(&self.lengths)
            .map(|(mut row, &len)| {
                row.truncate(len);
                row
            })
            .collect())
    }

    pub fn width(&self) -> usize {
        self.ids.dim(1).unwrap_or(0)
    }

    /// Indices of sequences of these `lengths` grouped into padded batches, shortest first, each
    /// holding at most `budget_tokens` of rows x its longest row (a longer sequence alone). The cut
    /// between batches minimises the tokens run, padding included, plus [`BATCH_OVERHEAD_TOKENS`] a
    /// batch: a few short inputs beside many long ones would otherwise be run at the long ones' width.
    pub fn by_length(lengths: &[usize], budget_tokens: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&i| lengths[i]);
        let sorted: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();
        // cost[j]: the least cost of running the j shortest; cut[j]: where their last batch begins.
        let mut cost = vec![0usize; sorted.len() + 1];
        let mut cut = vec![0usize; sorted.len() + 1];
        for end in 1..=sorted.len() {
            let width = sorted[end - 1];
            // Sorted: the batch's last sequence is its longest; widen it while the budget allows.
            let mut best = (usize::MAX, end - 1);
            for start in (0..end).rev() {
                let rows = end - start;
                if rows > 1 && rows * width.max(1) > budget_tokens {
                    break;
                }
                let total = cost[start] + rows * width + BATCH_OVERHEAD_TOKENS;
                if total < best.0 {
                    best = (total, start);
                }
            }
            (cost[end], cut[end]) = best;
        }
        let mut batches = Vec::new();
        let mut end = sorted.len();
        while end > 0 {
            batches.push(order[cut[end]..end].to_vec());
            end = cut[end];
        }
        batches.reverse();
        batches
    }

    /// [`PaddedBatch::by_length`] over only the sequences no other one begins with: causal attention
    /// gives a position the same state in every sequence that begins alike, so a sequence another one
    /// begins with (a prompt, and the prompt followed by an answer frame) needs no pass of its own, and
    /// neither does a repeated one. Every sequence is served by exactly one batch.
    pub fn by_length_sharing_prefixes(seqs: &[Vec<u32>], budget_tokens: usize) -> Vec<SharedPasses> {
        let carrier_of = Self::prefix_carriers(seqs);
        let carriers: Vec<usize> = (0..seqs.len()).filter(|&i| carrier_of[i] == i).collect();
        let lengths: Vec<usize> = carriers.iter().map(|&i| seqs[i].len()).collect();
        let mut batches: Vec<SharedPasses> = Vec::new();
        // Where each carrier runs: its batch and its row there.
        let mut place = vec![(0, 0); seqs.len()];
        for (b, batch) in Self::by_length(&lengths, budget_tokens).into_iter().enumerate() {
            let rows: Vec<usize> = batch.into_iter().map(|c| carriers[c]).collect();
            for (row, &carrier) in rows.iter().enumerate() {
                place[carrier] = (b, row);
            }
            batches.push(SharedPasses { rows, served: Vec::new() });
        }
        for (i, &carrier) in carrier_of.iter().enumerate() {
            let (b, row) = place[carrier];
            batches[b].served.push((i, row));
        }
        batches
    }

    /// Per sequence, the index of the one whose forward pass serves it: the longest that begins
    /// with it (itself when none does).
    fn prefix_carriers(seqs: &[Vec<u32>]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let mut carrier_of = vec![0; seqs.len()];
        let mut carriers: Vec<usize> = Vec::new();
        for i in order {
            match carriers.iter().find(|&&c| seqs[c].starts_with(&seqs[i])) {
                Some(&c) => carrier_of[i] = c,
                None => {
                    carriers.push(i);
                    carrier_of[i] = i;
                }
            }
        }
        carrier_of
    }
}

/// What one more batch costs beside its tokens, in tokens: a pass over a few tokens of the dense
/// default model takes about 100 ms, which reads all its weights, and a token in a batch about 1.3 ms
/// more (2 threads).
const BATCH_OVERHEAD_TOKENS: usize = 64;

/// One padded batch of [`PaddedBatch::by_length_sharing_prefixes`]: the sequences it runs and the
/// sequences read from its rows.
#[derive(Debug, PartialEq, Eq)]
pub struct SharedPasses {
    /// The sequences run, one a row (indices into the caller's list).
    pub rows: Vec<usize>,
    /// Each sequence served, with the row whose pass holds it (its own, or one that begins with it).
    pub served: Vec<(usize, usize)>,
}

/// A prompt and the answer to score after it, as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTarget {
    pub prompt: Vec<u32>,
    pub target: Vec<u32>,
}

/// Per-token results of teacher forcing a batch of targets.
pub struct TargetLogProbs {
    /// log P(target token | prompt, earlier target tokens) for every target token of every pair,
    /// concatenated; differentiable with respect to the deltas.
    pub token_log_probs: Tensor,
    /// The model's argmax at each target position.
    pub predicted: Vec<u32>,
    /// The tokens of pair i are `spans[i]`.
    pub spans: Vec<Range<usize>>,
}

/// Scores of one prompt/target pair, as plain numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherForced {
    /// Sum of the target tokens' log-probabilities.
    pub log_prob: f32,
    /// The argmax token at each target position.
    pub predicted: Vec<u32>,
}

impl Model {
    /// Logits at chosen (row, position) cells of a right-padded batch: the LM head runs only there.
    pub fn logits_at(&self, batch: &PaddedBatch, cells: &[(usize, usize)], deltas: &[FfnDelta]) -> Result<Tensor> {
        self.logits_at_with(batch, cells, Hooks::with_deltas(deltas))
    }

    /// [`Model::logits_at`] with any hooks (e.g. resuming from a cached residual stream).
    pub fn logits_at_with(&self, batch: &PaddedBatch, cells: &[(usize, usize)], hooks: Hooks) -> Result<Tensor> {
        self.logits(&self.hidden_at(batch, cells, hooks)?)
    }

    /// Final hidden states (after the last norm) at chosen (row, position) cells, (cells, hidden).
    pub fn hidden_at(&self, batch: &PaddedBatch, cells: &[(usize, usize)], hooks: Hooks) -> Result<Tensor> {
        let width = batch.width();
        for &(row, pos) in cells {
            if row >= batch.lengths.len() || pos >= batch.lengths[row] {
                bail!("cell ({row}, {pos}) is outside the batch");
            }
        }
        let hooks = Hooks {
            deltas_from: hooks.deltas_from.or(Some(&batch.answer_starts)),
            deltas_until: hooks.deltas_until.or(Some(&batch.answer_ends)),
            ..hooks
        };
        let out = self.forward(&batch.ids, None, hooks)?;
        let hidden = out.hidden.expect("a full forward pass returns hidden states");
        let (b, s, d) = hidden.dims3()?;
        let flat_index: Vec<u32> = cells.iter().map(|&(r, p)| (r * width + p) as u32).collect();
        let index = Tensor::from_vec(flat_index, cells.len(), self.device())?;
        Ok(hidden.reshape((b * s, d))?.index_select(&index, 0)?)
    }

    /// Teacher-forced log-probabilities of each pair's target, in one batch.
    pub fn target_log_probs(&self, pairs: &[PromptTarget], deltas: &[FfnDelta], pad_id: u32) -> Result<TargetLogProbs> {
        let batch = TeacherForcingBatch::new(pairs, pad_id, self.device())?;
        batch.score(&self.logits_at(&batch.batch, &batch.cells, deltas)?)
    }

    /// Teacher-forced scores of many pairs, `chunk` pairs per forward pass.
    pub fn teacher_forced(
        &self,
        pairs: &[PromptTarget],
        deltas: &[FfnDelta],
        pad_id: u32,
        chunk: usize,
    ) -> Result<Vec<TeacherForced>> {
        let mut results = Vec::with_capacity(pairs.len());
        for part in pairs.chunks(chunk.max(1)) {
            let scored = self.target_log_probs(part, deltas, pad_id)?;
            let log_probs = scored.token_log_probs.to_vec1::<f32>()?;
            results.extend(scored.spans.into_iter().map(|span| TeacherForced {
                log_prob: log_probs[span.clone()].iter().sum(),
                predicted: scored.predicted[span].to_vec(),
            }));
        }
        Ok(results)
    }
}

/// Prompt/target pairs laid out for teacher forcing: which logits to compute and which token each must predict.
pub struct TeacherForcingBatch {
    pub batch: PaddedBatch,
    /// (row, position) of every logit row, in target-token order.
    pub cells: Vec<(usize, usize)>,
    /// The token each cell must predict, (cells, 1).
    targets: Tensor,
    /// The cells of pair i are `spans[i]`.
    pub spans: Vec<Range<usize>>,
}

impl TeacherForcingBatch {
    pub fn new(pairs: &[PromptTarget], pad_id: u32, device: &Device) -> Result<Self> {
        let mut seqs = Vec::with_capacity(pairs.len());
        let mut cells = Vec::new();
        let mut targets = Vec::new();
        let mut spans = Vec::with_capacity(pairs.len());
        for (row, pair) in pairs.iter().enumerate() {
            if pair.prompt.is_empty() || pair.target.is_empty() {
                bail!("teacher forcing needs a non-empty prompt and target");
            }
            let start = cells.len();
            // Position p predicts token p + 1: the target is predicted from the prompt's last token on.
            for (i, &token) in pair.target.iter().enumerate() {
                cells.push((row, pair.prompt.len() - 1 + i));
                targets.push(token);
            }
            spans.push(start..cells.len());
            seqs.push([pair.prompt.as_slice(), &pair.target[..pair.target.len() - 1]].concat());
        }
        let n = targets.len();
        let mut batch = PaddedBatch::new(&seqs, pad_id, device)?;
        batch.answer_starts = pairs.iter().map(|p| p.prompt.len() - 1).collect();
        Ok(Self { batch, cells, targets: Tensor::from_vec(targets, (n, 1), device)?, spans })
    }

    /// Update values act, in pair i, on the positions that predict its first `tokens[i]` target tokens
    /// only (see [`crate::runtime::AnswerTrack::followed_tokens`]).
    pub fn limit_deltas(&mut self, tokens: &[usize]) {
        for ((end, &start), &tokens) in self.batch.answer_ends.iter_mut().zip(&self.batch.answer_starts).zip(tokens) {
            *end = start + tokens;
        }
    }

    /// Scores logits computed at [`TeacherForcingBatch::cells`].
    pub fn score(&self, logits: &Tensor) -> Result<TargetLogProbs> {
        let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
        let token_log_probs = log_softmax_last_dim(logits)?.gather(&self.targets, 1)?.squeeze(1)?;
        Ok(TargetLogProbs { token_log_probs, predicted, spans: self.spans.clone() })
    }

    /// The token each cell must predict, (cells).
    pub fn target_ids(&self) -> Result<Tensor> {
        Ok(self.targets.squeeze(1)?)
    }
}

/// A batch split where its answers begin: the prompt prefixes before the answer start, which update
/// values never reach, run once and stay as cached keys and values; only the tails (the answer start
/// and what follows) are recomputed while update values change. Optimizing an edit thus runs a few
/// tokens per sequence instead of whole prompts.
pub struct PrefixCachedBatch {
    prefix_cache: KvCache,
    prefix_lengths: Vec<usize>,
    tails: Tensor,
    tail_lengths: Vec<usize>,
    /// The tails' residual stream entering `from_layer` (no delta acts below it).
    residual: Option<Tensor>,
    from_layer: usize,
}

impl PrefixCachedBatch {
    /// Prepares `batch` for repeated passes with deltas in layers `from_layer` and above. A prefix
    /// that begins a sequence of `known` is read from its keys and values; the others are run.
    pub fn new(
        model: &Model,
        batch: &PaddedBatch,
        from_layer: usize,
        pad_id: u32,
        known: &PromptStates,
    ) -> Result<Self> {
        let rows = batch.rows()?;
        let prefixes: Vec<Vec<u32>> = rows.iter().zip(&batch.answer_starts).map(|(r, &s)| r[..s].to_vec()).collect();
        let tails: Vec<Vec<u32>> = rows.iter().zip(&batch.answer_starts).map(|(r, &s)| r[s..].to_vec()).collect();
        let prefix_lengths: Vec<usize> = prefixes.iter().map(Vec::len).collect();
        let mut prefix_cache = KvCache::default();
        if prefix_lengths.iter().any(|&len| len > 0) {
            let found: Vec<Option<(&KvCache, usize)>> = prefixes.iter().map(|p| known.find(p)).collect();
            let unknown: Vec<Vec<u32>> =
                prefixes.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(p, _)| p.clone()).collect();
            let mut fresh = PromptStates::default();
            if !unknown.is_empty() {
                fresh.run(model, &unknown, pad_id)?;
            }
            let sources: Vec<(&KvCache, usize, usize)> = (prefixes.iter().zip(found))
                .map(|(p, found)| {
                    let (cache, row) = found.or_else(|| fresh.find(p)).expect("every prefix was run");
                    (cache, row, p.len())
                })
                .collect();
            prefix_cache = KvCache::gather(&sources)?;
        }
        let tail_batch = PaddedBatch::new(&tails, pad_id, model.device())?;
        let mut tails = Self {
            prefix_cache,
            prefix_lengths,
            tails: tail_batch.ids,
            tail_lengths: tail_batch.lengths,
            residual: None,
            from_layer: 0,
        };
        if from_layer > 0 {
            let hooks = Hooks { stop_after_layer: Some(from_layer - 1), ..Hooks::default() };
            tails.residual = Some(tails.forward(model, hooks)?.residual);
            tails.from_layer = from_layer;
        }
        Ok(tails)
    }

    /// Final hidden states at (row, absolute position) cells of the batch, each inside its row's tail.
    pub fn hidden_at(&self, model: &Model, cells: &[(usize, usize)], deltas: &[FfnDelta]) -> Result<Tensor> {
        let width = self.tails.dim(1)?;
        let mut flat_index = Vec::with_capacity(cells.len());
        for &(row, position) in cells {
            let start = *self.prefix_lengths.get(row).ok_or_else(|| eyre!("row {row} is outside the batch"))?;
            if position < start || position - start >= self.tail_lengths[row] {
                bail!("cell ({row}, {position}) is not in its row's answer tail");
            }
            flat_index.push((row * width + position - start) as u32);
        }
        let hooks = Hooks {
            ffn_deltas: deltas,
            resume: self.residual.as_ref().map(|r| (self.from_layer, r)),
            ..Hooks::default()
        };
        let hidden = self.forward(model, hooks)?.hidden.expect("a full forward pass returns hidden states");
        let (b, s, d) = hidden.dims3()?;
        let index = Tensor::from_vec(flat_index, cells.len(), model.device())?;
        Ok(hidden.reshape((b * s, d))?.index_select(&index, 0)?)
    }

    fn forward(&self, model: &Model, hooks: Hooks) -> Result<super::model::ForwardOutput> {
        // Each pass extends its own copy of the prefix cache (tensors are shared, not copied).
        let mut cache = self.prefix_cache.clone();
        let hooks = Hooks { row_offsets: Some(&self.prefix_lengths), ..hooks };
        model.forward(&self.tails, Some(&mut cache), hooks)
    }
}

/// Keys and values of every layer for sequences run before, one row each: a pass over a sequence
/// that begins like one of them reads that part from here instead of running it (an edit's training
/// prompts are among the inputs locating ran).
#[derive(Default)]
pub struct PromptStates {
    passes: Vec<KvCache>,
    /// Each kept sequence, with its pass and its row there.
    rows: Vec<(Vec<u32>, usize, usize)>,
}

impl PromptStates {
    /// Keeps `cache`, the keys and values of a pass over `seqs` (its rows, in order) through every
    /// layer.
    pub fn keep(&mut self, seqs: &[Vec<u32>], cache: KvCache) {
        let pass = self.passes.len();
        self.rows.extend(seqs.iter().enumerate().map(|(row, seq)| (seq.clone(), pass, row)));
        self.passes.push(cache);
    }

    /// Runs `seqs` in one right-padded batch through every layer and keeps their states.
    pub fn run(&mut self, model: &Model, seqs: &[Vec<u32>], pad_id: u32) -> Result<()> {
        let batch = PaddedBatch::new(seqs, pad_id, model.device())?;
        let mut cache = KvCache::default();
        let hooks = Hooks { stop_after_layer: Some(model.config().num_layers - 1), ..Hooks::default() };
        model.forward(&batch.ids, Some(&mut cache), hooks)?;
        self.keep(seqs, cache);
        Ok(())
    }

    /// The pass and row that hold `prefix`: a kept sequence beginning with it.
    fn find(&self, prefix: &[u32]) -> Option<(&KvCache, usize)> {
        let (_, pass, row) = self.rows.iter().find(|(seq, ..)| seq.starts_with(prefix))?;
        Some((&self.passes[*pass], *row))
    }
}

#[cfg(test)]
mod tests {
    use super::PaddedBatch;

    #[test]
    fn batches_by_length_hold_similar_lengths_within_the_budget() {
        let lengths = [5, 1, 9, 3, 300, 4];
        let batches = PaddedBatch::by_length(&lengths, 12);
        assert_eq!(batches, [vec![1, 3], vec![5, 0], vec![2], vec![4]], "shortest first; 300 alone");
        for batch in &batches[..3] {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(longest * batch.len() <= 12);
        }
        assert!(PaddedBatch::by_length(&[], 12).is_empty());
    }

    #[test]
    fn short_inputs_are_not_run_at_a_long_ones_width_unless_a_batch_costs_more() {
        // Thirty 3-token inputs beside one of 40: 1,240 tokens together, 130 apart.
        let lengths: Vec<usize> = std::iter::repeat_n(3, 30).chain([40]).collect();
        let batches = PaddedBatch::by_length(&lengths, 2048);
        assert_eq!(batches, [(0..30).collect::<Vec<_>>(), vec![30]]);
        // Nearly alike: one batch, its padding costs less than another pass.
        let alike = [10, 11, 10, 12, 10, 11];
        assert_eq!(PaddedBatch::by_length(&alike, 2048), [vec![0, 2, 4, 1, 5, 3]]);
    }

    #[test]
    fn a_sequence_another_begins_with_is_carried_by_the_longest() {
        let seqs = vec![vec![1, 2], vec![1, 2, 3, 4], vec![1, 2, 3], vec![5], vec![1, 2], vec![1, 3], vec![]];
        assert_eq!(PaddedBatch::prefix_carriers(&seqs), [1, 1, 1, 3, 1, 5, 1]);
        assert!(PaddedBatch::prefix_carriers(&[]).is_empty());
        let batches = PaddedBatch::by_length_sharing_prefixes(&seqs, 4);
        let run: Vec<&[usize]> = batches.iter().map(|b| b.rows.as_slice()).collect();
        assert_eq!(run, [&[3, 5][..], &[1]], "only the sequences no other begins with, shortest first");
        assert_eq!(batches[0].served, [(3, 0), (5, 1)]);
        assert_eq!(batches[1].served, [(0, 0), (1, 0), (2, 0), (4, 0), (6, 0)]);
    }
}
