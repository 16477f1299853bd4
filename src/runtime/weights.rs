//! Reading weights from GGUF or safetensors, in quantized or dense f32 form.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use color_eyre::eyre::{bail, eyre, WrapErr};
use serde::{Deserialize, Serialize};

use super::config::{Arch, ModelConfig};
use super::q8_tiles::{self, TiledQ8};
use crate::Result;

/// Which form the weights take in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightMode {
    /// Quantized matmuls as stored in the GGUF: fast inference, no gradients.
    #[default]
    Quantized,
    /// Everything dequantized to f32: differentiable, used for editing.
    Dense,
}

/// A weight matrix of shape (out, in).
#[derive(Debug, Clone)]
pub enum Linear {
    Quantized(Arc<QMatMul>),
    /// Block-quantized values (Q8_0, Q5_0, Q4_1) in the tiled form of this CPU's fastest kernel
    /// (`q8_tiles`).
    Tiled(Arc<TiledQ8>),
    Dense(Tensor),
}

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Quantized(m) => m.forward(x)?,
            Self::Tiled(w) => x.contiguous()?.apply_op1_no_bwd(&TiledMatmul(w.clone()))?,
            Self::Dense(w) => match x.dims() {
                [b, s, d] => frozen_matmul(&x.reshape((b * s, *d))?, w)?.reshape((*b, *s, ()))?,
                _ => frozen_matmul(x, w)?,
            },
        })
    }

    /// [`Linear::forward`] of rows (rows, in) into `out`, row-major (rows, out), reusing its memory:
    /// for products too large to map afresh every time (the LM head's logits while editing).
    pub fn forward_into(&self, x: &Tensor, out: &mut Vec<f32>) -> Result<()> {
        match self {
            Self::Tiled(w) => w.matmul_into(&x.contiguous()?.flatten_all()?.to_vec1::<f32>()?, out),
            _ => {
                let product = self.forward(x)?.flatten_all()?;
                out.clear();
                out.extend_from_slice(&product.to_vec1::<f32>()?);
            }
        }
        Ok(())
    }

    /// The weights as a dense f32 (out, in) matrix.
    pub fn dense(&self) -> Result<Tensor> {
        Ok(match self {
            Self::Quantized(m) => match m.as_ref() {
                QMatMul::QTensor(q) => q.dequantize(&q.device())?,
                QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.to_dtype(DType::F32)?,
            },
            Self::Tiled(w) => tiled_rows(w, 0..w.dims().0)?,
            Self::Dense(w) => w.clone(),
        })
    }

    /// Rows of the weight as dense f32, (ids, in), for a vector of token ids.
    pub fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Dense(w) => w.index_select(ids, 0)?,
            Self::Tiled(w) => token_rows(w, ids)?,
            Self::Quantized(_) => bail!("rows of candle's quantized weights are not read one by one"),
        })
    }

    /// Adds `factor * row` of the weight to `out` (output rows of `in` values, row-major) for every
    /// `(row, output row, factor)` of `entries`, which must be sorted by weight row: each row is read
    /// (for tiled weights, decoded) once. This is a product with the weight's transpose for a sparse
    /// left factor, e.g. a gradient over logits whose entries are mostly negligible.
    pub fn add_rows(&self, entries: &[(u32, u32, f32)], out: &mut [f32]) -> Result<()> {
        let (rows, cols) = self.out_in()?;
        let add = |values: &[f32], group: &[(u32, u32, f32)], out: &mut [f32]| {
            for &(_, out_row, factor) in group {
                let target = &mut out[out_row as usize * cols..(out_row as usize + 1) * cols];
                add_scaled(target, values, factor);
            }
        };
        if let Some(&(row, ..)) = entries.iter().find(|e| e.0 as usize >= rows) {
            bail!("weight row {row} is outside the {rows} rows");
        }
        match self {
            Self::Dense(w) => {
                let (storage, layout) = w.storage_and_layout();
                let (candle_core::Storage::Cpu(storage), Some((start, _))) = (&*storage, layout.contiguous_offsets())
                else {
                    bail!("dense weights are read from contiguous CPU memory");
                };
                let values = &storage.as_slice::<f32>()?[start..];
                for group in entries.chunk_by(|a, b| a.0 == b.0) {
                    let row = group[0].0 as usize;
                    add(&values[row * cols..(row + 1) * cols], group, out);
                }
            }
            Self::Tiled(w) => {
                let mut values = vec![0f32; cols];
                for group in entries.chunk_by(|a, b| a.0 == b.0) {
                    w.row(group[0].0 as usize, &mut values);
                    add(&values, group, out);
                }
            }
            Self::Quantized(_) => bail!("rows of candle's quantized weights are not read one by one"),
        }
        Ok(())
    }

    pub(super) fn out_in(&self) -> Result<(usize, usize)> {
        Ok(match self {
            Self::Quantized(m) => match m.as_ref() {
                QMatMul::QTensor(q) => q.shape().dims2()?,
                QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dims2()?,
            },
            Self::Tiled(w) => w.dims(),
            Self::Dense(w) => w.dims2()?,
        })
    }
}

crate::runtime::simd::vectorized! {
    /// `target += factor * values`, element by element.
    fn add_scaled(target: &mut [f32], values: &[f32], factor: f32) {
        for (t, &v) in target.iter_mut().zip(values) {
            *t += factor * v;
        }
    }
}

/// `x (rows, in) @ weight (out, in)^T` for a weight that never trains. candle's own matmul backward
/// also computes the gradient of the weight matrix, which doubles the cost of every backward pass
/// through the model; this op only passes the gradient on to `x`.
fn frozen_matmul(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(FrozenMatmul(weight.clone()))
}

struct FrozenMatmul(Tensor);

impl candle_core::CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        x: &candle_core::CpuStorage,
        x_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        let (rows, inner) = x_layout.shape().dims2()?;
        let (out, weight_inner) = self.0.dims2()?;
        if inner != weight_inner {
            candle_core::bail!("frozen matmul: input has {inner} columns, weight expects {weight_inner}");
        }
        let (storage, weight_layout) = self.0.storage_and_layout();
        let candle_core::Storage::Cpu(weight) = &*storage else {
            candle_core::bail!("frozen matmul runs on the CPU");
        };
        let transposed = weight_layout.transpose(0, 1)?;
        let product = x.matmul(weight, (1, rows, out, inner), x_layout, &transposed)?;
        Ok((product, (rows, out).into()))
    }

    fn bwd(&self, _x: &Tensor, _product: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.0)?))
    }
}

/// The values of a custom op's contiguous f32 input; `op` names the op in the error.
pub(super) fn contiguous_f32<'a>(
    op: &str,
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: input is not contiguous");
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// `x (…, in) @ weight (out, in)^T` with a tiled weight; quantized weights never train.
struct TiledMatmul(Arc<TiledQ8>);

impl candle_core::CustomOp1 for TiledMatmul {
    fn name(&self) -> &'static str {
        "tiled-q8-matmul"
    }

    fn cpu_fwd(
        &self,
        x: &candle_core::CpuStorage,
        x_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (out, inner) = self.0.dims();
        let dims = x_layout.shape().dims();
        if dims.last() != Some(&inner) {
            candle_core::bail!("tiled matmul: input of shape {dims:?}, weight expects {inner} columns");
        }
        let product = self.0.matmul(contiguous_f32("tiled matmul", x, x_layout)?);
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("checked above") = out;
        Ok((candle_core::CpuStorage::F32(product), out_dims.into()))
    }
}

/// Rows of a tiled matrix as a dense (rows, cols) tensor.
fn tiled_rows(w: &TiledQ8, rows: impl ExactSizeIterator<Item = usize>) -> candle_core::Result<Tensor> {
    let cols = w.dims().1;
    let count = rows.len();
    let mut values = vec![0f32; count * cols];
    for (row, out) in rows.zip(values.chunks_exact_mut(cols)) {
        w.row(row, out);
    }
    Tensor::from_vec(values, (count, cols), &Device::Cpu)
}

/// The rows of a tiled (vocab, hidden) matrix for token ids of any shape, flattened: (ids, hidden).
fn token_rows(w: &TiledQ8, ids: &Tensor) -> Result<Tensor> {
    let vocab = w.dims().0;
    let ids = ids.flatten_all()?.to_vec1::<u32>()?;
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
        bail!("token id {id} is outside the vocabulary of {vocab}");
    }
    Ok(tiled_rows(w, ids.iter().map(|&id| id as usize))?)
}

/// The token embedding table (vocab, hidden), also the tied LM head.
#[derive(Debug, Clone)]
pub enum Embedding {
    Quantized(Arc<QTensor>),
    Tiled(Arc<TiledQ8>),
    Dense(Tensor),
}

impl Embedding {
    pub fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Quantized(q) => q.embedding(ids)?,
            Self::Tiled(w) => {
                let mut dims = ids.dims().to_vec();
                dims.push(w.dims().1);
                token_rows(w, ids)?.reshape(dims)?
            }
            Self::Dense(w) => {
                let mut dims = ids.dims().to_vec();
                dims.push(w.dim(1)?);
                w.index_select(&ids.flatten_all()?, 0)?.reshape(dims)?
            }
        })
    }

    pub fn as_linear(&self) -> Result<Linear> {
        Ok(match self {
            Self::Quantized(q) => Linear::Quantized(Arc::new(QMatMul::from_arc(q.clone())?)),
            Self::Tiled(w) => Linear::Tiled(w.clone()),
            Self::Dense(w) => Linear::Dense(w.clone()),
        })
    }
}

/// Where the weights come from, and the device they are read onto.
pub enum WeightSource {
    Gguf { path: PathBuf, content: gguf_file::Content, reader: BufReader<File>, device: Device },
    Safetensors { tensors: candle_core::safetensors::MmapedSafetensors, arch: Arch, device: Device },
}

/// One tensor as read from the source.
enum Stored {
    Quantized(QTensor),
    Plain(Tensor),
}

impl WeightSource {
    /// Opens a `.gguf` file or a directory with `config.json` and `*.safetensors`, whose tensors are
    /// read onto `device`.
    pub fn open(path: &Path, device: &Device) -> Result<(Self, ModelConfig)> {
        if path.is_dir() {
            return Self::open_safetensors(path, device);
        }
        let file = File::open(path).wrap_err_with(|| format!("cannot open model file {}", path.display()))?;
        let file_len = file.metadata()?.len();
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| {
            eyre!("{} is not a readable GGUF file ({e}); it may be truncated or not a GGUF model", path.display())
        })?;
        check_tensor_extents(&content, file_len, path)?;
        let config = ModelConfig::from_gguf(&content)
            .wrap_err_with(|| format!("reading the model config of {}", path.display()))?;
        Ok((Self::Gguf { path: path.to_path_buf(), content, reader, device: device.clone() }, config))
    }

    fn open_safetensors(dir: &Path, device: &Device) -> Result<(Self, ModelConfig)> {
        let config_path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&config_path).wrap_err_with(|| format!("cannot read {}", config_path.display()))?;
        let config = ModelConfig::from_hf_json(&text).wrap_err_with(|| format!("reading {}", config_path.display()))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{} has config.json but no *.safetensors files", dir.display());
        }
        // SAFETY: the files are memory-mapped read-only; we do not modify them while mapped.
        let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }
            .wrap_err_with(|| format!("cannot read safetensors in {}", dir.display()))?;
        Ok((Self::Safetensors { tensors, arch: config.arch, device: device.clone() }, config))
    }

    pub fn device(&self) -> &Device {
        match self {
            Self::Gguf { device, .. } | Self::Safetensors { device, .. } => device,
        }
    }

    /// GGUF metadata (empty for safetensors).
    pub fn gguf_content(&self) -> Option<&gguf_file::Content> {
        match self {
            Self::Gguf { content, .. } => Some(content),
            Self::Safetensors { .. } => None,
        }
    }

    pub fn has(&self, name: &str) -> bool {
        match self {
            Self::Gguf { content, .. } => content.tensor_infos.contains_key(name),
            Self::Safetensors { tensors, arch, .. } => tensors.get(&hf_tensor_name(name, *arch)).is_ok(),
        }
    }

    /// Reads a tensor by its GGUF name; `None` when the source lacks it.
    fn read(&mut self, name: &str) -> Result<Option<Stored>> {
        if !self.has(name) {
            return Ok(None);
        }
        match self {
            Self::Gguf { path, content, reader, device } => {
                let q = content
                    .tensor(reader, name, device)
                    .map_err(|e| eyre!("cannot read tensor `{name}` from {}: {e}", path.display()))?;
                Ok(Some(Stored::Quantized(q)))
            }
            Self::Safetensors { tensors, arch, device } => {
                let mut t = tensors.load(&hf_tensor_name(name, *arch), device)?.to_dtype(DType::F32)?;
                // HF Gemma stores RMSNorm weights as w with scale (1 + w); GGUF stores 1 + w.
                if *arch == Arch::Gemma3 && name.ends_with("norm.weight") {
                    t = (t + 1.0)?;
                }
                Ok(Some(Stored::Plain(t)))
            }
        }
    }

    fn require(&mut self, name: &str) -> Result<Stored> {
        self.read(name)?.ok_or_else(|| eyre!("model file has no tensor `{name}`"))
    }

    /// A small vector (norm weight, bias) as dense f32, checked against its expected length.
    pub fn vector(&mut self, name: &str, len: usize) -> Result<Tensor> {
        self.optional_vector(name, len)?.ok_or_else(|| eyre!("model file has no tensor `{name}`"))
    }

    pub fn optional_vector(&mut self, name: &str, len: usize) -> Result<Option<Tensor>> {
        let t = match self.read(name)? {
            None => return Ok(None),
            Some(Stored::Quantized(q)) => q.dequantize(self.device())?,
            Some(Stored::Plain(t)) => t,
        };
        if t.dims() != [len] {
            bail!("tensor `{name}` has shape {:?}, expected [{len}]", t.dims());
        }
        Ok(Some(t))
    }

    /// A weight matrix (out, in) in the requested mode, checked against its expected shape.
    pub fn linear(&mut self, name: &str, out_in: (usize, usize), mode: WeightMode) -> Result<Linear> {
        let linear = match (self.require(name)?, mode) {
            (Stored::Quantized(q), WeightMode::Quantized) => quantized_linear(q)?,
            (Stored::Quantized(q), WeightMode::Dense) => Linear::Dense(q.dequantize(self.device())?),
            (Stored::Plain(t), WeightMode::Quantized) if t.dim(1)? % GgmlDType::Q8_0.block_size() == 0 => {
                quantized_linear(QTensor::quantize(&t, GgmlDType::Q8_0)?)?
            }
            (Stored::Plain(t), _) => Linear::Dense(t),
        };
        let shape = linear.out_in()?;
        if shape != out_in {
            bail!("tensor `{name}` has shape {shape:?}, expected {out_in:?}");
        }
        Ok(linear)
    }

    /// The token embedding in the requested mode.
    pub fn embedding(&mut self, vocab: usize, hidden: usize, mode: WeightMode) -> Result<Embedding> {
        let name = "token_embd.weight";
        let embedding = match (self.require(name)?, mode) {
            (Stored::Quantized(q), WeightMode::Quantized) => match fastest_kernel(q)? {
                FastestKernel::Tiled(tiled) => Embedding::Tiled(tiled),
                FastestKernel::Candle(q) => Embedding::Quantized(Arc::new(q)),
            },
            (Stored::Quantized(q), WeightMode::Dense) => Embedding::Dense(q.dequantize(self.device())?),
            (Stored::Plain(t), _) => Embedding::Dense(t),
        };
        let dims = match &embedding {
            Embedding::Quantized(q) => q.shape().dims().to_vec(),
            Embedding::Tiled(w) => vec![w.dims().0, w.dims().1],
            Embedding::Dense(t) => t.dims().to_vec(),
        };
        if dims != [vocab, hidden] {
            bail!("tensor `{name}` has shape {dims:?}, expected [{vocab}, {hidden}]");
        }
        Ok(embedding)
    }

    /// Number of scalar parameters stored in the file.
    pub fn parameter_count(&self) -> usize {
        match self {
            Self::Gguf { content, .. } => content.tensor_infos.values().map(|i| i.shape.elem_count()).sum(),
            Self::Safetensors { tensors, .. } => {
                tensors.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>()).sum()
            }
        }
    }

    /// Quantization types and their tensor counts, for `lafn inspect`.
    pub fn quant_types(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        match self {
            Self::Gguf { content, .. } => {
                for info in content.tensor_infos.values() {
                    *counts.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
                }
            }
            Self::Safetensors { tensors, .. } => {
                for (_, view) in tensors.tensors() {
                    *counts.entry(format!("{:?}", view.dtype())).or_default() += 1;
                }
            }
        }
        counts
    }
}

/// Re-encodes block types that candle only has scalar CPU kernels for (Q5_0, Q4_1, ...) as Q8_0,
/// which has SIMD kernels: several times faster. Q5_0's values are kept exactly; the others' nearly.
fn with_fast_kernel(q: QTensor) -> Result<QTensor> {
    use GgmlDType::*;
    let fast = matches!(q.dtype(), F32 | F16 | BF16 | Q4_0 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K | Q8K);
    let cols = *q.shape().dims().last().unwrap_or(&0);
    if fast || !cols.is_multiple_of(Q8_0.block_size()) {
        return Ok(q);
    }
    if let Some(exact) = q8_tiles::exact_q8_0(&q)? {
        return Ok(exact);
    }
    Ok(QTensor::quantize(&q.dequantize(&q.device())?, Q8_0)?)
}

/// A quantized weight matrix in the form of the fastest kernel this CPU has for it.
enum FastestKernel {
    /// The tiled one, which reads Q8_0, Q5_0 and Q4_1 exactly.
    Tiled(Arc<TiledQ8>),
    /// candle's, in a block type it has SIMD kernels for ([`with_fast_kernel`]).
    Candle(QTensor),
}

fn fastest_kernel(q: QTensor) -> Result<FastestKernel> {
    Ok(match TiledQ8::from_qtensor(&q)? {
        Some(tiled) => FastestKernel::Tiled(Arc::new(tiled)),
        None => FastestKernel::Candle(with_fast_kernel(q)?),
    })
}

fn quantized_linear(q: QTensor) -> Result<Linear> {
    Ok(match fastest_kernel(q)? {
        FastestKernel::Tiled(tiled) => Linear::Tiled(tiled),
        FastestKernel::Candle(q) => Linear::Quantized(Arc::new(QMatMul::from_qtensor(q)?)),
    })
}

/// Rejects a GGUF whose tensor data runs past the end of the file (a truncated download).
fn check_tensor_extents(content: &gguf_file::Content, file_len: u64, path: &Path) -> Result<()> {
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        let bytes = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let end = content.tensor_data_offset + info.offset + bytes as u64;
        if end > file_len {
            bail!(
                "{} is truncated: tensor `{name}` ends at byte {end} but the file has {file_len} bytes",
                path.display()
            );
        }
    }
    Ok(())
}

/// The Hugging Face checkpoint name of a tensor we address by its GGUF name.
pub(crate) fn hf_tensor_name(gguf_name: &str, arch: Arch) -> String {
    match gguf_name {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let Some(rest) = gguf_name.strip_prefix("blk.") else {
        return gguf_name.into();
    };
    let (layer, leaf) = rest.split_once('.').unwrap_or((rest, ""));
    let (stem, suffix) = leaf.rsplit_once('.').unwrap_or((leaf, "weight"));
    let hf_stem = match (stem, arch) {
        ("attn_norm", _) => "input_layernorm",
        ("attn_q", _) => "self_attn.q_proj",
        ("attn_k", _) => "self_attn.k_proj",
        ("attn_v", _) => "self_attn.v_proj",
        ("attn_output", _) => "self_attn.o_proj",
        ("attn_q_norm", _) => "self_attn.q_norm",
        ("attn_k_norm", _) => "self_attn.k_norm",
        ("post_attention_norm", _) => "post_attention_layernorm",
        ("ffn_norm", Arch::Gemma3) => "pre_feedforward_layernorm",
        ("ffn_norm", _) => "post_attention_layernorm",
        ("post_ffw_norm", _) => "post_feedforward_layernorm",
        ("ffn_gate", _) => "mlp.gate_proj",
        ("ffn_up", _) => "mlp.up_proj",
        ("ffn_down", _) => "mlp.down_proj",
        (other, _) => other,
    };
    format!("model.layers.{layer}.{hf_stem}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_names_follow_each_architecture() {
        assert_eq!(
            hf_tensor_name("blk.3.ffn_norm.weight", Arch::Gemma3),
            "model.layers.3.pre_feedforward_layernorm.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.3.ffn_norm.weight", Arch::Llama),
            "model.layers.3.post_attention_layernorm.weight"
        );
        assert_eq!(hf_tensor_name("blk.0.attn_q.bias", Arch::Qwen2), "model.layers.0.self_attn.q_proj.bias");
        assert_eq!(hf_tensor_name("token_embd.weight", Arch::Llama), "model.embed_tokens.weight");
    }
}
