//! Tiny random-weight models written as real GGUF files, for fast tests of everything above the runtime.

use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::Arch;
use crate::fetch::ModelFiles;
use crate::Result;

/// Words of the tiny tokenizer's vocabulary (after the special tokens).
const WORDS: &[&str] = &[
    "the",
    "a",
    "is",
    "of",
    "in",
    "from",
    "what",
    "which",
    "country",
    "city",
    "capital",
    "born",
    "where",
    "who",
    "?",
    ".",
    ",",
    "Paris",
    "France",
    "Yemen",
    "Berlin",
    "Germany",
    "Rome",
    "Italy",
    "Japan",
    "Tokyo",
    "river",
    "language",
    "speaks",
    "works",
    "for",
    "company",
    "Alice",
    "Bob",
    "Shmavon",
    "Shmavonyan",
    "Danielle",
    "Darrieux",
    "was",
    "and",
    "to",
    "de",
    "la",
    "el",
    "die",
    "der",
    "und",
    "ist",
    "est",
    "le",
    "van",
    "het",
    "Jemen",
    "Yémen",
    "也门",
    "是",
    "哪",
    "国",
    "人",
    "的",
    "в",
    "из",
    "какой",
    "страны",
];

/// Size of the tiny models' vocabulary: specials, the words above, and filler tokens.
pub const TINY_VOCAB: usize = 96;

/// Shape of a tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinySpec {
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub seed: u64,
    /// Written as the GGUF's `tokenizer.chat_template`: an instruct model.
    pub chat_template: Option<&'static str>,
}

impl TinySpec {
    pub fn new(arch: Arch) -> Self {
        Self { arch, layers: 3, hidden: 64, ffn: 128, seed: 7, chat_template: None }
    }
}

/// Writes `model.gguf` and `tokenizer.json` of a random model into `dir`.
pub fn write_tiny_model(dir: &Path, spec: TinySpec) -> Result<ModelFiles> {
    std::fs::create_dir_all(dir)?;
    let (heads, kv_heads, head_dim) = (4, 2, spec.hidden / 4);
    let arch = spec.arch.name();
    let u32v = |v: usize| gguf_file::Value::U32(v as u32);
    let mut metadata: Vec<(String, gguf_file::Value)> = vec![
        ("general.architecture".into(), gguf_file::Value::String(arch.into())),
        (format!("{arch}.embedding_length"), u32v(spec.hidden)),
        (format!("{arch}.block_count"), u32v(spec.layers)),
        (format!("{arch}.feed_forward_length"), u32v(spec.ffn)),
        (format!("{arch}.attention.head_count"), u32v(heads)),
        (format!("{arch}.attention.head_count_kv"), u32v(kv_heads)),
        (format!("{arch}.attention.key_length"), u32v(head_dim)),
        (format!("{arch}.attention.layer_norm_rms_epsilon"), gguf_file::Value::F32(1e-6)),
        (format!("{arch}.rope.freq_base"), gguf_file::Value::F32(10_000.0)),
        (format!("{arch}.context_length"), u32v(256)),
        ("tokenizer.ggml.bos_token_id".into(), u32v(2)),
        ("tokenizer.ggml.eos_token_id".into(), u32v(1)),
        ("tokenizer.ggml.add_bos_token".into(), gguf_file::Value::Bool(true)),
    ];
    if let Some(template) = spec.chat_template {
        metadata.push(("tokenizer.chat_template".into(), gguf_file::Value::String(template.into())));
    }

    let mut rng = StdRng::seed_from_u64(spec.seed);
    // Uniform with unit variance: candle's CPU device cannot be seeded, and tests need fixed weights.
    let mut random = |shape: &[usize], scale: f64| -> Result<Tensor> {
        let limit = 3f32.sqrt() * scale as f32;
        let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| rng.random_range(-limit..limit)).collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    };
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let quantized = |t: &Tensor| QTensor::quantize(t, GgmlDType::Q8_0);
    let plain = |t: &Tensor| QTensor::quantize(t, GgmlDType::F32);
    let (h, f) = (spec.hidden, spec.ffn);
    let matrix_scale = 1.0 / (h as f64).sqrt();
    // Small embeddings keep the tied head's logits, and so the losses in tests, in a realistic range.
    tensors.push(("token_embd.weight".into(), quantized(&random(&[TINY_VOCAB, h], 0.2)?)?));
    tensors.push(("output_norm.weight".into(), plain(&(random(&[h], 0.1)? + 1.0)?)?));
    for i in 0..spec.layers {
        let mut add = |leaf: &str, t: QTensor| tensors.push((format!("blk.{i}.{leaf}"), t));
        add("attn_norm.weight", plain(&(random(&[h], 0.1)? + 1.0)?)?);
        add("attn_q.weight", quantized(&random(&[heads * head_dim, h], matrix_scale)?)?);
        add("attn_k.weight", quantized(&random(&[kv_heads * head_dim, h], matrix_scale)?)?);
        add("attn_v.weight", quantized(&random(&[kv_heads * head_dim, h], matrix_scale)?)?);
        add("attn_output.weight", quantized(&random(&[h, heads * head_dim], matrix_scale)?)?);
        add("ffn_norm.weight", plain(&(random(&[h], 0.1)? + 1.0)?)?);
        add("ffn_gate.weight", quantized(&random(&[f, h], matrix_scale)?)?);
        add("ffn_up.weight", quantized(&random(&[f, h], matrix_scale)?)?);
        add("ffn_down.weight", quantized(&random(&[h, f], 1.0 / (f as f64).sqrt())?)?);
        match spec.arch {
            Arch::Gemma3 => {
                add("attn_q_norm.weight", plain(&(random(&[head_dim], 0.1)? + 1.0)?)?);
                add("attn_k_norm.weight", plain(&(random(&[head_dim], 0.1)? + 1.0)?)?);
                add("post_attention_norm.weight", plain(&(random(&[h], 0.1)? + 1.0)?)?);
                add("post_ffw_norm.weight", plain(&(random(&[h], 0.1)? + 1.0)?)?);
            }
            Arch::Qwen2 => {
                add("attn_q.bias", plain(&random(&[heads * head_dim], 0.1)?)?);
                add("attn_k.bias", plain(&random(&[kv_heads * head_dim], 0.1)?)?);
                add("attn_v.bias", plain(&random(&[kv_heads * head_dim], 0.1)?)?);
            }
            Arch::Llama => {}
        }
    }
    let weights = dir.join("model.gguf");
    let mut file = std::fs::File::create(&weights)?;
    let metadata_refs: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &metadata_refs, &tensor_refs)?;

    let tokenizer = dir.join("tokenizer.json");
    std::fs::write(&tokenizer, tiny_tokenizer_json())?;
    Ok(ModelFiles { weights, tokenizer: Some(tokenizer) })
}

/// Converts a tiny GGUF model into a Hugging Face style directory (config.json + model.safetensors).
pub fn write_tiny_safetensors(gguf: &ModelFiles, dir: &Path) -> Result<ModelFiles> {
    std::fs::create_dir_all(dir)?;
    let mut reader = std::io::BufReader::new(std::fs::File::open(&gguf.weights)?);
    let content = gguf_file::Content::read(&mut reader)?;
    let config = super::config::ModelConfig::from_gguf(&content)?;
    let mut tensors = std::collections::HashMap::new();
    for name in content.tensor_infos.keys() {
        let mut t = content.tensor(&mut reader, name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
        if config.arch == Arch::Gemma3 && name.ends_with("norm.weight") {
            t = (t - 1.0)?;
        }
        tensors.insert(super::weights::hf_tensor_name(name, config.arch), t);
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    let hf_config = serde_json::json!({
        "model_type": config.arch.name(),
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.ffn_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "rms_norm_eps": config.rms_eps,
        "rope_theta": config.rope_theta,
        "max_position_embeddings": config.context_length,
    });
    std::fs::write(dir.join("config.json"), hf_config.to_string())?;
    let tokenizer = dir.join("tokenizer.json");
    if let Some(source) = &gguf.tokenizer {
        std::fs::copy(source, &tokenizer)?;
    }
    Ok(ModelFiles { weights: dir.to_path_buf(), tokenizer: Some(tokenizer) })
}

/// A word-level tokenizer over [`WORDS`], split on whitespace and punctuation.
fn tiny_tokenizer_json() -> String {
    let specials = ["<pad>", "<eos>", "<bos>", "<unk>"];
    let fillers: Vec<String> = (specials.len() + WORDS.len()..TINY_VOCAB).map(|i| format!("w{i}")).collect();
    let vocab: serde_json::Map<String, serde_json::Value> = specials
        .iter()
        .copied()
        .chain(WORDS.iter().copied())
        .chain(fillers.iter().map(String::as_str))
        .enumerate()
        .map(|(id, token)| (token.to_string(), serde_json::Value::from(id)))
        .collect();
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(id, content)| {
            serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}
