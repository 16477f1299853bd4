//! Architecture hyper-parameters, read from GGUF metadata or a Hugging Face `config.json`.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use crate::Result;

/// The transformer families we run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Gemma3,
    Llama,
    Qwen2,
}

impl Arch {
    pub const SUPPORTED: &'static str = "gemma3, llama, qwen2";

    /// Maps a GGUF `general.architecture` or an HF `model_type` to an architecture.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "gemma3" | "gemma3_text" => Ok(Self::Gemma3),
            "llama" | "mistral" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            other => bail!("unsupported model architecture `{other}` (supported: {})", Self::SUPPORTED),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gemma3 => "gemma3",
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }
}

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RopeStyle {
    /// Dimension i pairs with i + d/2 (HF checkpoints, Gemma and Qwen GGUF).
    Halves,
    /// Dimension 2i pairs with 2i+1 (llama GGUF: the converter permutes q/k for this layout).
    Interleaved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub ffn_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_eps: f64,
    pub rope_theta: f32,
    /// Gemma 3's sliding-window layers use their own rope base.
    pub rope_theta_local: f32,
    /// Gemma 3: local layers attend to at most this many previous positions.
    pub sliding_window: Option<usize>,
    pub context_length: usize,
    pub rope_style: RopeStyle,
}

/// The most tokens any one input may take, whatever the model's context: a bound on the time and memory
/// one forward pass over it costs (long inputs are run in chunks, so memory grows linearly up to it).
pub const MAX_INPUT_TOKENS: usize = 4096;

impl ModelConfig {
    /// The most tokens one input (a question, prompt, paraphrase or target) may take on this model:
    /// [`MAX_INPUT_TOKENS`], or half the context when that is less, leaving room for what follows the
    /// input (its target, its answer) within the context.
    pub fn max_input_tokens(&self) -> usize {
        MAX_INPUT_TOKENS.min(self.context_length / 2)
    }

    /// Gemma 3 makes every 6th layer global; the others use the sliding window.
    pub fn is_sliding_layer(&self, layer: usize) -> bool {
        self.arch == Arch::Gemma3 && self.sliding_window.is_some() && !(layer + 1).is_multiple_of(6)
    }

    pub fn rope_theta_for(&self, layer: usize) -> f32 {
        if self.is_sliding_layer(layer) {
            self.rope_theta_local
        } else {
            self.rope_theta
        }
    }

    /// Gemma scales the token embeddings by sqrt(hidden size).
    pub fn embedding_scale(&self) -> Option<f64> {
        (self.arch == Arch::Gemma3).then(|| (self.hidden_size as f64).sqrt())
    }

    pub fn attention_scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let meta = &content.metadata;
        let arch_name = meta
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| eyre!("GGUF metadata has no `general.architecture`"))?;
        let arch = Arch::from_name(arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let get_usize = |k: &str| -> Result<usize> {
            let v = meta.get(&key(k)).ok_or_else(|| eyre!("GGUF metadata is missing `{}`", key(k)))?;
            Ok(v.to_u64().or_else(|_| v.to_u32().map(u64::from))? as usize)
        };
        let get_f32 = |k: &str, default: f32| -> Result<f32> {
            match meta.get(&key(k)) {
                Some(v) => Ok(v.to_f32()?),
                None => Ok(default),
            }
        };
        let hidden_size = get_usize("embedding_length")?;
        let num_heads = get_usize("attention.head_count")?;
        let head_dim = get_usize("attention.key_length").unwrap_or(hidden_size / num_heads.max(1));
        let vocab_size = match get_usize("vocab_size") {
            Ok(v) => v,
            Err(_) => content
                .tensor_infos
                .get("token_embd.weight")
                .ok_or_else(|| eyre!("GGUF has no `token_embd.weight` tensor"))?
                .shape
                .dims()[0],
        };
        let config = Self {
            arch,
            vocab_size,
            hidden_size,
            ffn_size: get_usize("feed_forward_length")?,
            num_layers: get_usize("block_count")?,
            num_heads,
            num_kv_heads: get_usize("attention.head_count_kv").unwrap_or(num_heads),
            head_dim,
            rms_eps: get_f32("attention.layer_norm_rms_epsilon", 1e-6)? as f64,
            rope_theta: get_f32("rope.freq_base", 10_000.0)?,
            rope_theta_local: 10_000.0,
            sliding_window: match arch {
                Arch::Gemma3 => Some(get_usize("attention.sliding_window").unwrap_or(512)),
                _ => None,
            },
            context_length: get_usize("context_length").unwrap_or(8192),
            rope_style: match arch {
                Arch::Llama => RopeStyle::Interleaved,
                Arch::Gemma3 | Arch::Qwen2 => RopeStyle::Halves,
            },
        };
        config.validate()?;
        Ok(config)
    }

    pub fn from_hf_json(text: &str) -> Result<Self> {
        let raw: HashMap<String, serde_json::Value> =
            serde_json::from_str(text).wrap_err("config.json is not a JSON object")?;
        // Multimodal Gemma 3 checkpoints nest the language model's settings.
        let raw = match raw.get("text_config").and_then(|v| v.as_object()) {
            Some(inner) => inner.clone().into_iter().collect(),
            None => raw,
        };
        let model_type =
            raw.get("model_type").and_then(|v| v.as_str()).ok_or_else(|| eyre!("config.json has no `model_type`"))?;
        let arch = Arch::from_name(model_type)?;
        let get_usize = |k: &str| -> Result<usize> {
            raw.get(k)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| eyre!("config.json is missing integer `{k}`"))
        };
        let get_f64 = |k: &str, default: f64| raw.get(k).and_then(|v| v.as_f64()).unwrap_or(default);
        let hidden_size = get_usize("hidden_size")?;
        let num_heads = get_usize("num_attention_heads")?;
        let config = Self {
            arch,
            vocab_size: get_usize("vocab_size")?,
            hidden_size,
            ffn_size: get_usize("intermediate_size")?,
            num_layers: get_usize("num_hidden_layers")?,
            num_heads,
            num_kv_heads: get_usize("num_key_value_heads").unwrap_or(num_heads),
            head_dim: get_usize("head_dim").unwrap_or(hidden_size / num_heads.max(1)),
            rms_eps: get_f64("rms_norm_eps", 1e-6),
            rope_theta: get_f64("rope_theta", 10_000.0) as f32,
            rope_theta_local: get_f64("rope_local_base_freq", 10_000.0) as f32,
            sliding_window: match arch {
                Arch::Gemma3 => Some(get_usize("sliding_window").unwrap_or(512)),
                _ => None,
            },
            context_length: get_usize("max_position_embeddings").unwrap_or(8192),
            rope_style: RopeStyle::Halves,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let nonzero = [
            ("vocab size", self.vocab_size),
            ("hidden size", self.hidden_size),
            ("FFN size", self.ffn_size),
            ("layer count", self.num_layers),
            ("head count", self.num_heads),
            ("KV head count", self.num_kv_heads),
            ("head dim", self.head_dim),
        ];
        for (what, value) in nonzero {
            if value == 0 {
                bail!("model config has {what} 0");
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            bail!("model config: {} heads is not a multiple of {} KV heads", self.num_heads, self.num_kv_heads);
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!("model config: head dim {} is odd", self.head_dim);
        }
        Ok(())
    }
}
