//! EfficientNet-Lite0's architecture facts (block strides, batch-norm epsilon)
//! and the two helpers both forms share: batch norm folded into a
//! convolution, and TensorFlow's "SAME" padding. Imports nothing of the
//! burn ([`tensor`](super::tensor)) or CPU ([`cpu`](super::cpu)) forms.

use crate::encoders::weights::Weights;
use crate::error::{GmuError, Result};

/// EfficientNet-Lite0's block strides (stages of 1, 2, 2, 3, 3, 4, 1 blocks).
pub const LITE0_STRIDES: [usize; 16] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1];
/// Batch-norm epsilon of the TensorFlow checkpoints.
pub const BN_EPS: f64 = 1e-3;

/// `conv` followed by `bn`, folded: `W' = W·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`.
/// Returns the folded weight (PyTorch's `[out, in/groups, k, k]` order), the
/// bias `[out]` and the weight's shape.
pub(crate) fn fold(w: &Weights, conv: &str, bn: &str) -> Result<(Vec<f32>, Vec<f32>, [usize; 4])> {
    let name = format!("{conv}.weight");
    let shape = w.shape(&name).ok_or_else(|| GmuError::data(w.path(), format!("no tensor '{name}'")))?.to_vec();
    let [out, per_group, k, k2] = shape[..] else {
        return Err(GmuError::data(w.path(), format!("tensor '{name}' has shape {shape:?}, expected 4 dimensions")));
    };
    if k != k2 {
        return Err(GmuError::data(w.path(), format!("tensor '{name}' has a non-square kernel {k}×{k2}")));
    }
    let weight = w.values(&name, &shape)?;
    let get = |s: &str| w.values(&format!("{bn}.{s}"), &[out]);
    let (gamma, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
    let per_out = per_group * k * k;
    let mut folded = vec![0f32; weight.len()];
    let mut bias = vec![0f32; out];
    for o in 0..out {
        let s = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
        for i in 0..per_out {
            folded[o * per_out + i] = (weight[o * per_out + i] as f64 * s) as f32;
        }
        bias[o] = (beta[o] as f64 - mean[o] as f64 * s) as f32;
    }
    Ok((folded, bias, [out, per_group, k, k]))
}

/// TensorFlow's "SAME" padding along one axis of `size`: the output size
/// `⌈size/stride⌉` and the padding before and after (the larger half after,
/// as TensorFlow puts it).
pub(crate) fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (out, total / 2, total - total / 2)
}
