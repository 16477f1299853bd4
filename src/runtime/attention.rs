//! Attention of the answering (non-differentiable) model in plain code: for each query row,
//! `softmax(q k^T * scale + mask) v`, with one fixed order of every sum.
//!
//! Why not candle's matmul: it runs through gemm, whose kernels, and so the last bits of every score,
//! depend on the instructions gemm was built to use. The quantized model answers users and is compared
//! with llama.cpp, where such bits decide near-ties between tokens; editing (dense, differentiable) may
//! then take gemm's fastest kernels without moving a single answer. Dot products use fused
//! multiply-adds, so every CPU computes the same bits.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::weights::contiguous_f32;
use crate::Result;

/// `q` (batch, heads, seq, head_dim) attends to `k`, `v` (batch, kv_heads, keys, head_dim); query head
/// `h` reads KV head `h / (heads / kv_heads)`. `mask` is additive (0 or -inf), of shape (seq, keys) for
/// every row or (batch, 1, seq, keys). Returns (batch, heads, seq, head_dim).
pub(super) fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let (batch, heads, seq, head_dim) = q.dims4()?;
    let (k_batch, kv_heads, keys, k_dim) = k.dims4()?;
    if (k_batch, k_dim) != (batch, head_dim) || v.dims4()? != k.dims4()? || kv_heads == 0 || heads % kv_heads != 0 {
        color_eyre::eyre::bail!(
            "attention: queries {:?} do not fit keys {:?} and values {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let mask = match mask {
        None => None,
        Some(m) if m.dims() == [seq, keys] || m.dims() == [batch, 1, seq, keys] => Some(m.contiguous()?),
        Some(m) => {
            color_eyre::eyre::bail!("attention: a mask of shape {:?} for {seq} queries and {keys} keys", m.dims())
        }
    };
    let op = Attend { mask, scale: scale as f32 };
    Ok(q.contiguous()?.apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)?)
}

struct Attend {
    mask: Option<Tensor>,
    scale: f32,
}

impl CustomOp3 for Attend {
    fn name(&self) -> &'static str {
        "attend"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = |storage, layout| contiguous_f32("attention", storage, layout);
        let (q, k, v) = (input(q, q_layout)?, input(k, k_layout)?, input(v, v_layout)?);
        let (batch, heads, seq, head_dim) = q_layout.shape().dims4()?;
        let (_, kv_heads, keys, _) = k_layout.shape().dims4()?;
        let group = heads / kv_heads;
        let mask_storage = self.mask.as_ref().map(|m| m.storage_and_layout());
        let mask = match &mask_storage {
            Some((storage, layout)) => {
                let candle_core::Storage::Cpu(storage) = &**storage else {
                    candle_core::bail!("attention runs on the CPU");
                };
                Some((input(storage, layout)?, layout.dims().len() == 4))
            }
            None => None,
        };
        let mut out = vec![0f32; batch * heads * seq * head_dim];
        let block = keys * head_dim;
        out.par_chunks_mut(head_dim).enumerate().for_each_init(
            || vec![0f32; keys],
            |scores, (row, out_row)| {
                let (b, h, i) = (row / (heads * seq), row / seq % heads, row % seq);
                let kv = b * kv_heads + h / group;
                let mask_row = mask.map(|(values, per_batch)| {
                    let start = if per_batch { b * seq * keys } else { 0 } + i * keys;
                    &values[start..start + keys]
                });
                attend_row(
                    &q[row * head_dim..(row + 1) * head_dim],
                    &k[kv * block..(kv + 1) * block],
                    &v[kv * block..(kv + 1) * block],
                    mask_row,
                    self.scale,
                    scores,
                    out_row,
                );
            },
        );
        Ok((CpuStorage::F32(out), (batch, heads, seq, head_dim).into()))
    }
}

const LANES: usize = 16;

/// Σ a·b over 16 lanes of fused multiply-adds, then the lanes in order.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..LANES {
            lanes[l] = x[l].mul_add(y[l], lanes[l]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

crate::runtime::simd::vectorized! {
    /// One query row: `scores` (one per key) is scratch space, `out` receives the weighted values.
    fn attend_row(
        query: &[f32],
        keys: &[f32],
        values: &[f32],
        mask: Option<&[f32]>,
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32]
    ) {
        let dim = query.len();
        let mut max = f32::NEG_INFINITY;
        for (j, score) in scores.iter_mut().enumerate() {
            let bias = mask.map_or(0.0, |m| m[j]);
            // Masked keys are skipped, not computed: half of a causal prompt's products.
            *score = if bias == f32::NEG_INFINITY { bias } else { dot(query, &keys[j * dim..(j + 1) * dim]) * scale + bias };
            max = max.max(*score);
        }
        out.fill(0.0);
        if max == f32::NEG_INFINITY {
            return;
        }
        let mut sum = 0f32;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            sum += *score;
        }
        for (j, &weight) in scores.iter().enumerate() {
            if weight != 0.0 {
                let p = weight / sum;
                for (o, &x) in out.iter_mut().zip(&values[j * dim..(j + 1) * dim]) {
                    *o = p.mul_add(x, *o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::attend;
    use crate::runtime::softmax_last_dim;

    /// candle's matmul and softmax, the way the differentiable model attends.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, scale: f64) -> Tensor {
        let (batch, heads, seq, dim) = q.dims4().unwrap();
        let (_, kv_heads, keys, _) = k.dims4().unwrap();
        let group = heads / kv_heads;
        let q = q.reshape((batch, kv_heads, group * seq, dim)).unwrap();
        let mut scores =
            (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap().reshape((batch, heads, seq, keys)).unwrap();
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask).unwrap();
        }
        let probs = softmax_last_dim(&scores).unwrap().reshape((batch, kv_heads, group * seq, keys)).unwrap();
        probs.matmul(v).unwrap().reshape((batch, heads, seq, dim)).unwrap()
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn attends_as_candles_matmul_and_softmax_do() {
        let device = Device::Cpu;
        let (batch, heads, kv_heads, seq, keys, dim) = (2, 4, 2, 3, 5, 40);
        let q = Tensor::randn(0f32, 1.0, (batch, heads, seq, dim), &device).unwrap();
        let k = Tensor::randn(0f32, 1.0, (batch, kv_heads, keys, dim), &device).unwrap();
        let v = Tensor::randn(0f32, 1.0, (batch, kv_heads, keys, dim), &device).unwrap();
        let causal: Vec<f32> = (0..seq)
            .flat_map(|i| (0..keys).map(move |j| if j <= keys - seq + i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let shared = Tensor::from_vec(causal.clone(), (seq, keys), &device).unwrap();
        // The second row sees one key fewer, as a right-padded row of a batch does.
        let mut per_row = causal.clone();
        per_row.extend(causal.iter().enumerate().map(|(i, &m)| if i % keys == 0 { f32::NEG_INFINITY } else { m }));
        let per_row = Tensor::from_vec(per_row, (batch, 1, seq, keys), &device).unwrap();
        for mask in [None, Some(&shared), Some(&per_row)] {
            let ours = attend(&q, &k, &v, mask, 0.125).unwrap();
            assert_eq!(ours.dims(), [batch, heads, seq, dim]);
            let difference = max_difference(&ours, &reference(&q, &k, &v, mask, 0.125));
            assert!(difference < 1e-5, "differs from candle's by {difference}");
        }
    }

    #[test]
    fn a_row_that_sees_no_key_attends_to_nothing() {
        let device = Device::Cpu;
        let q = Tensor::ones((1, 1, 1, 16), candle_core::DType::F32, &device).unwrap();
        let kv = Tensor::ones((1, 1, 2, 16), candle_core::DType::F32, &device).unwrap();
        let mask = Tensor::new(&[[f32::NEG_INFINITY, f32::NEG_INFINITY]], &device).unwrap();
        let out = attend(&q, &kv, &kv, Some(&mask), 1.0).unwrap();
        assert_eq!(out.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.0; 16]);
        assert!(
            attend(&q, &kv, &kv, Some(&Tensor::zeros((3, 2), candle_core::DType::F32, &device).unwrap()), 1.0).is_err()
        );
    }
}
