//! RMS norm for the dense weights that locate and edit: one pass forward and one backward. Built from
//! candle's primitives a norm was six tensors forward and about as many again backward, each
//! allocated and walked on its own, and a Gemma 3 layer has six norms (attention, query, key, after
//! attention, FFN, after the FFN): small tensors whose bookkeeping, not arithmetic, took the time
//! of an edit step that two threads barely sped up. The quantized model that answers keeps candle's.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::weights::contiguous_f32;

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension, differentiable in `x` (the weight
/// never trains).
pub(super) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&weight.contiguous()?, RmsNorm { eps })
}

/// Rows handed to one thread at least: a row is a few hundred multiplications.
const MIN_ROWS_PER_THREAD: usize = 64;

/// `1 / sqrt(mean(row^2) + eps)`.
fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let mean_square = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (mean_square + eps).sqrt()
}

/// The last dimension of `layout`, checked against the weight's length.
fn width(op: &str, layout: &Layout, weight: &[f32]) -> candle_core::Result<usize> {
    let width = layout.shape().dims().last().copied().unwrap_or(0);
    if width == 0 || width != weight.len() {
        candle_core::bail!("{op}: rows of {width} values against a weight of {}", weight.len());
    }
    Ok(width)
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, weight) =
            (contiguous_f32("rms norm", x, x_layout)?, contiguous_f32("rms norm", weight, weight_layout)?);
        let width = width("rms norm", x_layout, weight)?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(width).zip(x.par_chunks(width)).with_min_len(MIN_ROWS_PER_THREAD).for_each(|(y, x)| {
            let r = inverse_rms(x, self.eps);
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(weight) {
                *y = x * r * w;
            }
        });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gradient = RmsNormGradient { eps: self.eps };
        Ok((Some(x.apply_op3_no_bwd(weight, &grad.contiguous()?, &gradient)?), None))
    }
}

/// `(x, weight, grad) -> grad` with respect to `x`: with `r = 1 / rms(x)` and `g = grad * weight`,
/// `r g - x r^3 mean(g x)` per row.
struct RmsNormGradient {
    eps: f32,
}

impl CustomOp3 for RmsNormGradient {
    fn name(&self) -> &'static str {
        "rms-norm-gradient"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = "rms norm gradient";
        if x_layout.shape() != grad_layout.shape() {
            candle_core::bail!("{op}: {:?} against {:?}", x_layout.shape(), grad_layout.shape());
        }
        let (x, weight, grad) = (
            contiguous_f32(op, x, x_layout)?,
            contiguous_f32(op, weight, weight_layout)?,
            contiguous_f32(op, grad, grad_layout)?,
        );
        let width = width(op, x_layout, weight)?;
        let mut out = vec![0f32; x.len()];
        (out.par_chunks_mut(width).zip(x.par_chunks(width)).zip(grad.par_chunks(width)))
            .with_min_len(MIN_ROWS_PER_THREAD)
            .for_each(|((d, x), g)| {
                let r = inverse_rms(x, self.eps);
                let mean_gx = g.iter().zip(weight).zip(x).map(|((g, w), x)| g * w * x).sum::<f32>() / width as f32;
                let correction = r * r * r * mean_gx;
                for (((d, &x), &g), &w) in d.iter_mut().zip(x).zip(g).zip(weight) {
                    *d = r * g * w - x * correction;
                }
            });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var, D};

    use super::rms_norm;

    /// The norm as it was built from candle's primitives.
    fn composed(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
        let mean_square = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        x.broadcast_div(&(mean_square + eps).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(weight).unwrap()
    }

    #[test]
    fn rms_norm_and_its_gradient_match_candles_primitives() {
        let device = Device::Cpu;
        let max_diff = |a: &Tensor, b: &Tensor| {
            (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        // Rows as the layers have them (batch, seq, hidden) and as the query norm has them (…, head_dim),
        // more rows than one thread takes.
        for shape in [vec![3, 50, 64], vec![2, 4, 9, 16]] {
            let width = *shape.last().unwrap();
            let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape.as_slice(), &device).unwrap() * 3.0).unwrap())
                .unwrap();
            let weight = (Tensor::randn(0f32, 1.0, width, &device).unwrap() + 1.0).unwrap();
            let upstream = Tensor::randn(0f32, 1.0, shape.as_slice(), &device).unwrap();
            let ours = rms_norm(x.as_tensor(), &weight, 1e-6).unwrap();
            let theirs = composed(x.as_tensor(), &weight, 1e-6);
            assert!(max_diff(&ours, &theirs) < 1e-5, "{shape:?}: values differ by {}", max_diff(&ours, &theirs));
            let grad_of =
                |y: &Tensor| (y * &upstream).unwrap().sum_all().unwrap().backward().unwrap().get(&x).unwrap().clone();
            let (ours, theirs) = (grad_of(&ours), grad_of(&theirs));
            assert!(max_diff(&ours, &theirs) < 1e-4, "{shape:?}: gradients differ by {}", max_diff(&ours, &theirs));
        }
        let nan = rms_norm(
            &Tensor::new(&[[1.0f32, f32::NAN]], &device).unwrap(),
            &Tensor::new(&[1f32, 1.0], &device).unwrap(),
            1e-6,
        );
        assert!(
            nan.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.is_nan()),
            "NaN must reach the loss"
        );
        let wrong = rms_norm(
            &Tensor::zeros((2, 3), candle_core::DType::F32, &device).unwrap(),
            &Tensor::ones(4, candle_core::DType::F32, &device).unwrap(),
            1e-6,
        );
        assert!(wrong.is_err(), "a weight of another width is refused");
    }
}
