//! A decoder-only transformer (Gemma 3, Llama, Qwen2) with hooks on every FFN layer.
//!
//! The hooks read the FFN intermediate activation `h = act(x W_gate) * (x W_up)` and add update values
//! to chosen neurons' value vectors (`out += sum_j h_j * dV_j`) without touching the weights. In dense
//! mode every op is one candle can differentiate, so gradients reach `dV` through all later layers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Device, Tensor, D};
use color_eyre::eyre::bail;

use super::config::{Arch, ModelConfig, RopeStyle};
use super::weights::{Embedding, Linear, WeightMode, WeightSource};
use super::{attention, gelu, rms_norm};
use crate::Result;

/// Vectors added to some neurons' value vectors (rows of the down projection) in one FFN layer:
/// the layer then outputs `down(h) + sum_j h_j * delta_j` without its weights changing.
#[derive(Debug, Clone)]
pub struct FfnDelta {
    pub layer: usize,
    /// Neuron indices, u32, shape (k).
    pub neurons: Tensor,
    /// One d_model vector per neuron added to its value vector, shape (k, hidden).
    pub delta: Tensor,
}

/// What a forward pass should do besides computing hidden states.
#[derive(Default, Clone, Copy)]
pub struct Hooks<'a> {
    pub ffn_deltas: &'a [FfnDelta],
    /// Per batch row, the first absolute position at which the deltas act; `None`: every position.
    /// Update values are trained to act where the answer is produced — from the prompt's last token
    /// on — so they act only there (see [`crate::runtime::PaddedBatch::answer_starts`]).
    pub deltas_from: Option<&'a [usize]>,
    /// Per batch row, the first absolute position at which the deltas no longer act; `None`: they act
    /// to the end. An edit acts while the answer is the one it was trained to give (see
    /// [`crate::runtime::AnswerTrack`]).
    pub deltas_until: Option<&'a [usize]>,
    /// Per batch row, the absolute position of the row's first id when rows continue cached prefixes
    /// of different lengths: row r sees only the first `row_offsets[r]` cached keys (the cache's rows
    /// are right-padded). `None`: every row continues right after the whole cache.
    pub row_offsets: Option<&'a [usize]>,
    /// Layers whose FFN activation `h` (batch, seq, ffn) is returned.
    pub capture_layers: &'a [usize],
    /// Skip everything after this layer (locating needs no LM head or later layers).
    pub stop_after_layer: Option<usize>,
    /// Start at this layer from a residual stream computed earlier (see [`ForwardOutput::residual`])
    /// instead of embedding the ids: deltas above a layer never change what lies below it.
    pub resume: Option<(usize, &'a Tensor)>,
}

impl<'a> Hooks<'a> {
    pub fn with_deltas(ffn_deltas: &'a [FfnDelta]) -> Self {
        Self { ffn_deltas, ..Self::default() }
    }
}

pub struct ForwardOutput {
    /// Hidden states after the final norm (batch, seq, hidden); `None` when stopped early.
    pub hidden: Option<Tensor>,
    /// The residual stream after the last layer run (before the final norm).
    pub residual: Tensor,
    pub activations: BTreeMap<usize, Tensor>,
}

/// Keys and values of earlier positions, for incremental decoding of one sequence batch.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Number of positions already processed.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cache of one row per source `(cache, row, len)`: that row's first `len` positions, every
    /// layer, right-padded with zeros to the longest (a pass over it sets each row's offset to its
    /// `len`, see [`Hooks::row_offsets`], so the padding is never seen).
    pub fn gather(sources: &[(&KvCache, usize, usize)]) -> Result<KvCache> {
        let Some(layers) = sources.first().map(|(cache, ..)| cache.layers.len()) else {
            return Ok(KvCache::default());
        };
        let width = sources.iter().map(|&(_, _, len)| len).max().unwrap_or(0);
        let mut gathered = Vec::with_capacity(layers);
        for layer in 0..layers {
            let mut keys = Vec::with_capacity(sources.len());
            let mut values = Vec::with_capacity(sources.len());
            for &(cache, row, len) in sources {
                let Some(Some((k, v))) = cache.layers.get(layer) else {
                    bail!("a cache to gather from lacks layer {layer}");
                };
                if row >= k.dim(0)? || len > k.dim(2)? {
                    bail!("row {row} of {} positions is not in a cache of {:?}", len, k.dims());
                }
                let row_of = |t: &Tensor| -> Result<Tensor> {
                    Ok(t.narrow(0, row, 1)?.narrow(2, 0, len)?.pad_with_zeros(2, 0, width - len)?)
                };
                keys.push(row_of(k)?);
                values.push(row_of(v)?);
            }
            gathered.push(Some((Tensor::cat(&keys, 0)?, Tensor::cat(&values, 0)?)));
        }
        Ok(KvCache { layers: gathered })
    }
}

#[derive(Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_bias: Option<Tensor>,
    k_bias: Option<Tensor>,
    v_bias: Option<Tensor>,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
}

#[derive(Clone)]
struct Ffn {
    gate: Linear,
    up: Linear,
    down: Linear,
}

#[derive(Clone)]
struct Block {
    attn_norm: Tensor,
    attn: Attention,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    ffn: Ffn,
    post_ffn_norm: Option<Tensor>,
}

#[derive(Clone)]
pub struct Model {
    config: ModelConfig,
    mode: WeightMode,
    embedding: Embedding,
    blocks: Vec<Block>,
    final_norm: Tensor,
    lm_head: Linear,
    /// The LM head shares the embedding's storage.
    lm_head_tied: bool,
    /// Where the weights live; every tensor the model builds is made there.
    device: Device,
    /// Tells loaded weights apart (clones share it; see [`Model::weights_id`]).
    weights_id: u64,
}

/// The id the next loaded model gets.
static NEXT_WEIGHTS_ID: AtomicU64 = AtomicU64::new(0);

impl Model {
    /// Loads every weight from `source` in `mode`; with `shared_head`, a model of the same weights whose
    /// embedding and LM head are tiled (`q8_tiles`), those are shared instead of loaded (see
    /// [`crate::runtime::LoadedModel::editing_weights`]).
    pub fn load(
        source: &mut WeightSource,
        config: &ModelConfig,
        mode: WeightMode,
        shared_head: Option<&Model>,
    ) -> Result<Self> {
        let c = config;
        let (h, q_dim, kv_dim) = (c.hidden_size, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let shared_head = shared_head.filter(|m| {
            m.config.vocab_size == c.vocab_size
                && m.config.hidden_size == h
                && matches!(m.embedding, Embedding::Tiled(_))
                && matches!(m.lm_head, Linear::Tiled(_))
        });
        let embedding = match shared_head {
            Some(m) => m.embedding.clone(),
            None => source.embedding(c.vocab_size, h, mode)?,
        };
        let blocks = (0..c.num_layers)
            .map(|i| {
                let name = |leaf: &str| format!("blk.{i}.{leaf}");
                let gemma = c.arch == Arch::Gemma3;
                Ok(Block {
                    attn_norm: source.vector(&name("attn_norm.weight"), h)?,
                    attn: Attention {
                        q: source.linear(&name("attn_q.weight"), (q_dim, h), mode)?,
                        k: source.linear(&name("attn_k.weight"), (kv_dim, h), mode)?,
                        v: source.linear(&name("attn_v.weight"), (kv_dim, h), mode)?,
                        o: source.linear(&name("attn_output.weight"), (h, q_dim), mode)?,
                        q_bias: source.optional_vector(&name("attn_q.bias"), q_dim)?,
                        k_bias: source.optional_vector(&name("attn_k.bias"), kv_dim)?,
                        v_bias: source.optional_vector(&name("attn_v.bias"), kv_dim)?,
                        q_norm: source.optional_vector(&name("attn_q_norm.weight"), c.head_dim)?,
                        k_norm: source.optional_vector(&name("attn_k_norm.weight"), c.head_dim)?,
                    },
                    post_attn_norm: gemma.then(|| source.vector(&name("post_attention_norm.weight"), h)).transpose()?,
                    ffn_norm: source.vector(&name("ffn_norm.weight"), h)?,
                    ffn: Ffn {
                        gate: source.linear(&name("ffn_gate.weight"), (c.ffn_size, h), mode)?,
                        up: source.linear(&name("ffn_up.weight"), (c.ffn_size, h), mode)?,
                        down: source.linear(&name("ffn_down.weight"), (h, c.ffn_size), mode)?,
                    },
                    post_ffn_norm: gemma.then(|| source.vector(&name("post_ffw_norm.weight"), h)).transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let final_norm = source.vector("output_norm.weight", h)?;
        let lm_head_tied = !source.has("output.weight");
        let lm_head = match shared_head {
            _ if lm_head_tied => embedding.as_linear()?,
            Some(m) => m.lm_head.clone(),
            None => source.linear("output.weight", (c.vocab_size, h), mode)?,
        };
        let device = source.device().clone();
        let weights_id = NEXT_WEIGHTS_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            config: config.clone(),
            mode,
            embedding,
            blocks,
            final_norm,
            lm_head,
            lm_head_tied,
            device,
            weights_id,
        })
    }

    /// Unique to these weights as loaded, in this process: what is computed from the weights alone
    /// (never changed: edits act through hooks) can be kept under it.
    pub fn weights_id(&self) -> u64 {
        self.weights_id
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn mode(&self) -> WeightMode {
        self.mode
    }

    /// The device the weights were loaded on: inputs and hooks for this model are made there.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Dense weights use only differentiable ops; quantized weights use candle's fused kernels.
    fn differentiable(&self) -> bool {
        self.mode == WeightMode::Dense
    }

    /// The value vectors (rows of the down projection's transpose) of one layer: (ffn, hidden).
    pub fn value_vectors(&self, layer: usize) -> Result<Tensor> {
        Ok(self.blocks[layer].ffn.down.dense()?.t()?.contiguous()?)
    }

    /// The LM head, for reading its rows.
    pub(super) fn output_head(&self) -> &Linear {
        &self.lm_head
    }

    /// Rows of the LM head for the given token ids, (ids, hidden).
    pub fn output_rows(&self, ids: &Tensor) -> Result<Tensor> {
        self.lm_head.rows(ids)
    }

    /// Projects hidden states (…, hidden) to vocabulary logits.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    /// Runs token ids (batch, seq). Without a cache, positions start at 0 and rows may be
    /// right-padded: causal masking keeps real tokens from seeing the padding after them.
    pub fn forward(&self, ids: &Tensor, mut cache: Option<&mut KvCache>, hooks: Hooks) -> Result<ForwardOutput> {
        let (batch, seq) = ids.dims2()?;
        if seq == 0 {
            bail!("forward pass on an empty sequence");
        }
        let c = &self.config;
        if let Some(layer) = hooks.ffn_deltas.iter().map(|e| e.layer).find(|&l| l >= c.num_layers) {
            bail!("an FFN delta addresses layer {layer}, but the model has {} layers", c.num_layers);
        }
        let cached = cache.as_ref().map_or(0, |c| c.len());
        let offsets = match hooks.row_offsets {
            Some(offsets) if offsets.len() != batch || offsets.iter().any(|&o| o > cached) => {
                bail!("row offsets {offsets:?} do not fit a batch of {batch} rows after {cached} cached positions")
            }
            Some(offsets) => offsets.to_vec(),
            None => vec![cached; batch],
        };
        if let Some(cache) = cache.as_deref_mut() {
            cache.layers.resize(c.num_layers, None);
        }
        let (first_layer, mut x) = match hooks.resume {
            Some((layer, residual)) => (layer, residual.clone()),
            None => {
                let x = self.embedding.lookup(ids)?;
                match c.embedding_scale() {
                    Some(scale) => (0, (x * scale)?),
                    None => (0, x),
                }
            }
        };
        let masks = AttentionMasks::new(c, seq, cached, &offsets, &self.device)?;
        let delta_mask = match (hooks.deltas_from, hooks.ffn_deltas.is_empty()) {
            (Some(from), false) => delta_mask(from, hooks.deltas_until, &offsets, seq, &self.device)?,
            _ => None,
        };
        let ropes = Ropes::new(c, first_layer, &offsets, seq, &self.device)?;
        let mut activations = BTreeMap::new();
        for (i, block) in self.blocks.iter().enumerate().skip(first_layer) {
            let rope = ropes.for_layer(c, i);
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let mask = masks.for_layer(c, i);
            let residual = x.clone();
            let mut y = self.rms_norm(&x, &block.attn_norm)?;
            y = self.attention(&block.attn, &y, rope, mask, layer_cache, batch, seq)?;
            if let Some(norm) = &block.post_attn_norm {
                y = self.rms_norm(&y, norm)?;
            }
            x = (residual + y)?;
            let residual = x.clone();
            let mut y = self.rms_norm(&x, &block.ffn_norm)?;
            y = self.ffn(
                &block.ffn,
                &y,
                i,
                hooks.ffn_deltas,
                delta_mask.as_ref(),
                hooks.capture_layers,
                &mut activations,
            )?;
            if let Some(norm) = &block.post_ffn_norm {
                y = self.rms_norm(&y, norm)?;
            }
            x = (residual + y)?;
            if hooks.stop_after_layer == Some(i) {
                return Ok(ForwardOutput { hidden: None, residual: x, activations });
            }
        }
        Ok(ForwardOutput { hidden: Some(self.rms_norm(&x, &self.final_norm)?), residual: x, activations })
    }

    #[allow(clippy::too_many_arguments)]
    fn ffn(
        &self,
        ffn: &Ffn,
        x: &Tensor,
        layer: usize,
        deltas: &[FfnDelta],
        delta_mask: Option<&Tensor>,
        capture_layers: &[usize],
        activations: &mut BTreeMap<usize, Tensor>,
    ) -> Result<Tensor> {
        let gate = ffn.gate.forward(x)?;
        let gate = match self.config.arch {
            Arch::Gemma3 => gelu::gelu_tanh(&gate)?,
            Arch::Llama | Arch::Qwen2 => gate.silu()?,
        };
        let h = (gate * ffn.up.forward(x)?)?;
        if capture_layers.contains(&layer) {
            activations.insert(layer, h.clone());
        }
        let mut out = ffn.down.forward(&h)?;
        for added in deltas.iter().filter(|d| d.layer == layer) {
            let (b, s, _) = h.dims3()?;
            let mut chosen = h.index_select(&added.neurons, 2)?;
            if let Some(mask) = delta_mask {
                chosen = chosen.broadcast_mul(mask)?;
            }
            let k = chosen.dim(2)?;
            let update = chosen.reshape((b * s, k))?.matmul(&added.delta)?.reshape((b, s, ()))?;
            out = (out + update)?;
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        attn: &Attention,
        x: &Tensor,
        rope: &Rope,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        batch: usize,
        seq: usize,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (heads, kv_heads, head_dim) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let project = |linear: &Linear, bias: &Option<Tensor>, n: usize| -> Result<Tensor> {
            let mut t = linear.forward(x)?;
            if let Some(b) = bias {
                t = t.broadcast_add(b)?;
            }
            Ok(t.reshape((batch, seq, n, head_dim))?.transpose(1, 2)?.contiguous()?)
        };
        let mut q = project(&attn.q, &attn.q_bias, heads)?;
        let mut k = project(&attn.k, &attn.k_bias, kv_heads)?;
        let mut v = project(&attn.v, &attn.v_bias, kv_heads)?;
        if let Some(norm) = &attn.q_norm {
            q = self.rms_norm(&q, norm)?;
        }
        if let Some(norm) = &attn.k_norm {
            k = self.rms_norm(&k, norm)?;
        }
        q = rope.apply(&q, self.differentiable())?;
        k = rope.apply(&k, self.differentiable())?;
        if let Some(slot) = cache {
            if let Some((past_k, past_v)) = slot.as_ref() {
                k = Tensor::cat(&[past_k, &k], 2)?;
                v = Tensor::cat(&[past_v, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let out = if self.differentiable() {
            let keys = k.dim(2)?;
            // Grouped-query attention without copying K/V: fold the query heads sharing a KV head into rows.
            let group = heads / kv_heads;
            let q = q.reshape((batch, kv_heads, group * seq, head_dim))?;
            let scores = (q.matmul(&k.t()?)? * c.attention_scale())?;
            let mut scores = scores.reshape((batch, heads, seq, keys))?;
            if let Some(mask) = mask {
                scores = scores.broadcast_add(mask)?;
            }
            softmax_last_dim(&scores)?.reshape((batch, kv_heads, group * seq, keys))?.matmul(&v)?
        } else {
            attention::attend(&q, &k, &v, mask, c.attention_scale())?
        };
        let out =
            out.reshape((batch, heads, seq, head_dim))?.transpose(1, 2)?.reshape((batch, seq, heads * head_dim))?;
        attn.o.forward(&out)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let eps = self.config.rms_eps;
        if self.differentiable() {
            Ok(rms_norm::rms_norm(x, weight, eps as f32)?)
        } else {
            Ok(candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32)?)
        }
    }
}

/// Softmax over the last dimension from differentiable primitives.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?)
}

/// Log-softmax over the last dimension from differentiable primitives.
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// Additive attention masks (0 or -inf) for one forward pass, shared by all layers of a kind:
/// (seq, keys) when every row continues from the same position, else (batch, 1, seq, keys).
struct AttentionMasks {
    global: Option<Tensor>,
    sliding: Option<Tensor>,
}

impl AttentionMasks {
    /// `cached` keys precede the `seq` new ones; row r's new ids start at absolute position `offsets[r]`
    /// and it sees only its first `offsets[r]` cached keys.
    fn new(c: &ModelConfig, seq: usize, cached: usize, offsets: &[usize], device: &Device) -> Result<Self> {
        let uniform = offsets.iter().all(|&o| o == cached);
        let keys = cached + seq;
        let build = |window: Option<usize>| -> Result<Option<Tensor>> {
            let window = window.unwrap_or(usize::MAX);
            // A single new token sees every cached key unless the window cuts some off.
            if uniform && seq == 1 && keys <= window {
                return Ok(None);
            }
            let row_mask = |offset: usize| {
                (0..seq).flat_map(move |i| {
                    let query = offset + i;
                    (0..keys).map(move |key| {
                        // Cached keys sit at their own positions; new keys at offset + their index.
                        let (position, visible) =
                            if key < cached { (key, key < offset) } else { (offset + key - cached, key - cached <= i) };
                        if visible && query - position < window {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
            };
            let mask = if uniform {
                Tensor::from_vec(row_mask(cached).collect::<Vec<f32>>(), (seq, keys), device)?
            } else {
                let values: Vec<f32> = offsets.iter().flat_map(|&o| row_mask(o)).collect();
                Tensor::from_vec(values, (offsets.len(), 1, seq, keys), device)?
            };
            Ok(Some(mask))
        };
        Ok(Self {
            global: build(None)?,
            sliding: if c.sliding_window.is_some() { build(c.sliding_window)? } else { None },
        })
    }

    fn for_layer(&self, c: &ModelConfig, layer: usize) -> Option<&Tensor> {
        if c.is_sliding_layer(layer) {
            self.sliding.as_ref()
        } else {
            self.global.as_ref()
        }
    }
}

/// A (batch, seq, 1) 0/1 mask of the positions where deltas act (per row, from `deltas_from` up to
/// `deltas_until`), or `None` when they act everywhere.
fn delta_mask(
    deltas_from: &[usize],
    deltas_until: Option<&[usize]>,
    offsets: &[usize],
    seq: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    if deltas_from.len() != offsets.len() || deltas_until.is_some_and(|until| until.len() != offsets.len()) {
        bail!("delta positions are given for {} rows, the batch has {}", deltas_from.len(), offsets.len());
    }
    let until = |row: usize| deltas_until.map_or(usize::MAX, |until| until[row]);
    let acts = |row: usize, position: usize| deltas_from[row] <= position && position < until(row);
    if (0..offsets.len()).all(|row| acts(row, offsets[row]) && acts(row, offsets[row] + seq.saturating_sub(1))) {
        return Ok(None);
    }
    let values: Vec<f32> = (0..offsets.len())
        .flat_map(|row| (0..seq).map(move |i| if acts(row, offsets[row] + i) { 1.0 } else { 0.0 }))
        .collect();
    Ok(Some(Tensor::from_vec(values, (offsets.len(), seq, 1), device)?))
}

/// The rotary embeddings of one forward pass, one per rotary base its layers use (Gemma's sliding
/// layers have their own): built once, not per layer.
struct Ropes(Vec<(f32, Rope)>);

impl Ropes {
    fn new(c: &ModelConfig, first_layer: usize, offsets: &[usize], seq: usize, device: &Device) -> Result<Self> {
        let mut ropes: Vec<(f32, Rope)> = Vec::new();
        for layer in first_layer..c.num_layers {
            let theta = c.rope_theta_for(layer);
            if !ropes.iter().any(|(built, _)| *built == theta) {
                ropes.push((theta, Rope::new(c, theta, offsets, seq, device)?));
            }
        }
        Ok(Self(ropes))
    }

    fn for_layer(&self, c: &ModelConfig, layer: usize) -> &Rope {
        let theta = c.rope_theta_for(layer);
        &self.0.iter().find(|(built, _)| *built == theta).expect("a rope is built for every layer's base").1
    }
}

/// Rotary position embedding with base `theta` for positions offset..offset+seq of each row:
/// cos/sin are (seq, head_dim/2) when all rows share the offset, else (batch, seq, head_dim/2).
struct Rope {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
}

impl Rope {
    fn new(c: &ModelConfig, theta: f32, offsets: &[usize], seq: usize, device: &Device) -> Result<Self> {
        let half = c.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf(2.0 * i as f32 / c.head_dim as f32)).collect();
        let row_angles = |offset: usize| {
            let inv_freq = &inv_freq;
            (offset..offset + seq).flat_map(move |p| inv_freq.iter().map(move |f| p as f32 * f))
        };
        let angles = if offsets.iter().all(|&o| o == offsets[0]) {
            Tensor::from_vec(row_angles(offsets[0]).collect::<Vec<f32>>(), (seq, half), device)?
        } else {
            let values: Vec<f32> = offsets.iter().flat_map(|&o| row_angles(o)).collect();
            Tensor::from_vec(values, (offsets.len(), seq, half), device)?
        };
        Ok(Self { cos: angles.cos()?, sin: angles.sin()?, style: c.rope_style })
    }

    /// Rotates x (batch, heads, seq, head_dim).
    fn apply(&self, x: &Tensor, differentiable: bool) -> Result<Tensor> {
        let (cos, sin) = (&self.cos, &self.sin);
        if !differentiable {
            return Ok(match self.style {
                RopeStyle::Halves => candle_nn::rotary_emb::rope(x, cos, sin)?,
                RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, cos, sin)?,
            });
        }
        let (b, h, s, d) = x.dims4()?;
        // Per-row angles broadcast over the heads.
        let (cos, sin) = match cos.rank() {
            3 => (&cos.unsqueeze(1)?, &sin.unsqueeze(1)?),
            _ => (cos, sin),
        };
        let (first, second) = match self.style {
            RopeStyle::Halves => (x.narrow(3, 0, d / 2)?, x.narrow(3, d / 2, d / 2)?),
            RopeStyle::Interleaved => {
                let pairs = x.reshape((b, h, s, d / 2, 2))?;
                (pairs.narrow(4, 0, 1)?.squeeze(4)?, pairs.narrow(4, 1, 1)?.squeeze(4)?)
            }
        };
        let rotated_first = (first.broadcast_mul(cos)? - second.broadcast_mul(sin)?)?;
        let rotated_second = (second.broadcast_mul(cos)? + first.broadcast_mul(sin)?)?;
        Ok(match self.style {
            RopeStyle::Halves => Tensor::cat(&[rotated_first, rotated_second], 3)?,
            RopeStyle::Interleaved => Tensor::stack(&[rotated_first, rotated_second], 4)?.reshape((b, h, s, d))?,
        })
    }
}

/// Total bytes a tensor occupies, for memory reporting.
pub(crate) fn tensor_bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

impl Model {
    /// Approximate bytes held by the weights.
    pub fn weight_bytes(&self) -> usize {
        let linear = |l: &Linear| match l {
            Linear::Quantized(m) => match m.as_ref() {
                candle_core::quantized::QMatMul::QTensor(q) => q.storage_size_in_bytes(),
                candle_core::quantized::QMatMul::Tensor(t) | candle_core::quantized::QMatMul::TensorF16(t) => {
                    tensor_bytes(t)
                }
            },
            Linear::Tiled(w) => w.storage_bytes(),
            Linear::Dense(t) => tensor_bytes(t),
        };
        let embedding = match &self.embedding {
            Embedding::Quantized(q) => q.storage_size_in_bytes(),
            Embedding::Tiled(w) => w.storage_bytes(),
            Embedding::Dense(t) => tensor_bytes(t),
        };
        let blocks: usize = self.block_linears().map(linear).sum();
        embedding + blocks + if self.lm_head_tied { 0 } else { linear(&self.lm_head) }
    }

    /// How this model's matrix products compute, for results kept between runs that depend on the
    /// exact arithmetic (a cache's saved scope center, the kept unedited answers): dense f32, or
    /// quantized with candle's kernels, or also with lafn's tiled Q8_0 kernel (`q8_tiles`), whose
    /// sums round differently and which reads Q5_0 weights as stored rather than re-rounded. Quantized
    /// modes attend in lafn's own code (`attention`, "-attend"), not with candle's matmul, and take
    /// Gemma's GELU from lafn's vectorized tanh (`gelu`, "-gelu"), not libm's.
    pub fn arithmetic(&self) -> &'static str {
        let tiled = std::iter::once(&self.lm_head).chain(self.block_linears()).any(|l| matches!(l, Linear::Tiled(_)));
        match (self.mode, tiled) {
            (WeightMode::Dense, false) => "dense",
            (WeightMode::Dense, true) => "dense-with-q8-tiles-head",
            (WeightMode::Quantized, false) => "quantized-attend-gelu",
            (WeightMode::Quantized, true) => "quantized-q8-tiles-attend-gelu",
        }
    }

    fn block_linears(&self) -> impl Iterator<Item = &Linear> {
        self.blocks
            .iter()
            .flat_map(|b| [&b.attn.q, &b.attn.k, &b.attn.v, &b.attn.o, &b.ffn.gate, &b.ffn.up, &b.ffn.down])
    }
}
