//! Token generation with a KV cache: greedy or sampled, stopping at stop tokens.

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as CandleSampling};
use color_eyre::eyre::bail;
use serde::{Deserialize, Serialize};

use super::model::{Hooks, KvCache, Model, NeuronEdit};
use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sampling {
    Greedy,
    /// Nucleus sampling at a temperature, reproducible from the seed.
    TopP {
        temperature: f64,
        top_p: f64,
        seed: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_new_tokens: 64, sampling: Sampling::Greedy }
    }
}

/// Update values to apply while generating. They act where they were trained to: from the prompt's
/// last token for `answer_tokens` positions, the length of the answer they produce; the text after the
/// answer comes from the unedited model (otherwise it keeps repeating the answer).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerEdits<'a> {
    pub edits: &'a [NeuronEdit],
    pub answer_tokens: usize,
}

impl AnswerEdits<'_> {
    /// No update values: the unedited model.
    pub const NONE: AnswerEdits<'static> = AnswerEdits { edits: &[], answer_tokens: 0 };
}

/// Prompt tokens run per forward pass before generating: attention scores then take (chunk x prompt)
/// memory instead of (prompt x prompt), so a long prompt costs memory linear in its length.
pub const PREFILL_CHUNK: usize = 256;

impl Model {
    /// Generates after `prompt`, calling `on_token` with each new token; it returns false to stop early.
    /// Stop tokens end the generation and are not returned.
    pub fn generate(
        &self,
        prompt: &[u32],
        edits: AnswerEdits,
        options: &GenerateOptions,
        stop_ids: &[u32],
        on_token: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            bail!("cannot generate from an empty prompt");
        }
        let context = self.config().context_length;
        if prompt.len() >= context {
            bail!("the prompt is {} tokens; this model reads at most {} (its context)", prompt.len(), context - 1);
        }
        let mut sampler = match options.sampling {
            Sampling::Greedy => LogitsProcessor::from_sampling(0, CandleSampling::ArgMax),
            Sampling::TopP { temperature, top_p, seed } => {
                LogitsProcessor::from_sampling(seed, CandleSampling::TopP { p: top_p, temperature })
            }
        };
        let mut cache = KvCache::default();
        // Everything before the chunk holding the prompt's last token is only cached: no edits act
        // there (they start at the answer) and no logits are needed.
        let last_chunk_start = (prompt.len() - 1) / PREFILL_CHUNK * PREFILL_CHUNK;
        for chunk in prompt[..last_chunk_start].chunks(PREFILL_CHUNK) {
            let ids = Tensor::new(chunk, &Device::Cpu)?.unsqueeze(0)?;
            self.forward(&ids, Some(&mut cache), Hooks::default())?;
        }
        let mut input = prompt[last_chunk_start..].to_vec();
        let mut generated = Vec::new();
        let answer_start = [prompt.len() - 1];
        while generated.len() < options.max_new_tokens && cache.len() + input.len() < context {
            let ids = Tensor::new(input.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            // Position prompt.len() - 1 + generated.len() is the last one this pass computes.
            let in_answer = generated.len() < edits.answer_tokens;
            let hooks = Hooks {
                edits: if in_answer { edits.edits } else { &[] },
                edit_from: Some(&answer_start),
                ..Hooks::default()
            };
            let out = self.forward(&ids, Some(&mut cache), hooks)?;
            let hidden = out.hidden.expect("a full forward pass returns hidden states");
            let last = hidden.get(0)?.get(input.len() - 1)?;
            let logits = self.logits(&last.unsqueeze(0)?)?.squeeze(0)?;
            let token = sampler.sample(&logits)?;
            if stop_ids.contains(&token) {
                break;
            }
            generated.push(token);
            if !on_token(token) {
                break;
            }
            input = vec![token];
        }
        Ok(generated)
    }
}
