//! The maxout engine's layer passes over flat row-major buffers: linear
//! maps and their gradients (through the `gemm` crate), batch norm, maxout
//! and the scatter to the winning pieces, dropout masks, and burn's max-norm
//! column scales. [`MaxoutNet`](super::MaxoutNet) strings them together.

use rayon::prelude::*;

use crate::cpu::gemm::matmul;

/// A linear map's place in the flat parameters: the weight `[d_in, d_out]`, then the bias `[d_out]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct LinearAt {
    pub(super) weight: usize,
    pub(super) bias: usize,
    pub(super) d_in: usize,
    pub(super) d_out: usize,
}

/// A batch norm's place: γ and β among the parameters, the running mean and
/// variance among the running statistics; `d` features.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct NormAt {
    pub(super) gamma: usize,
    pub(super) beta: usize,
    pub(super) mean: usize,
    pub(super) var: usize,
    pub(super) d: usize,
}

/// A batch norm's saved forward values.
#[derive(Default, Debug)]
pub(super) struct NormCache {
    /// `(x − mean) / √(var + ε)`, `[rows, d]`.
    pub(super) xhat: Vec<f32>,
    /// `1 / √(var + ε)`, `[d]`.
    pub(super) inv_std: Vec<f32>,
    /// The output `γ x̂ + β`, `[rows, d]`.
    pub(super) out: Vec<f32>,
}

/// A maxout layer's saved forward values.
#[derive(Default, Debug)]
pub(super) struct MaxoutCache {
    /// The linear map, `[rows, units · pieces]`; overwritten by its gradient in the backward pass.
    pub(super) pre: Vec<f32>,
    /// The maxima (after dropout where there is one), `[rows, units]`.
    pub(super) out: Vec<f32>,
    /// Which piece won, `[rows, units]`.
    pub(super) arg: Vec<u8>,
}

/// Rows of a weight per parallel task of [`MaxoutNet::max_norm`]: fixed, so the
/// sums come out the same whatever the thread count.
pub(super) const ROWS_PER_TASK: usize = 256;

/// burn's max-norm factor of each column of the row-major `[rows, d_out]`
/// weight `w`: `limit · 1 / max(‖w_j‖, limit)` (1 for a column within the
/// limit). The squares are summed in blocks of rows in parallel, then the
/// blocks in order.
pub(super) fn column_scales(w: &[f32], d_out: usize, limit: f32) -> Vec<f32> {
    let partial: Vec<Vec<f32>> = w.par_chunks(d_out * ROWS_PER_TASK).map(|rows| block_squares(rows, d_out)).collect();
    scales_of_blocks(partial.iter().map(Vec::as_slice), d_out, limit)
}

/// One block of [`column_scales`]: each column's sum of squares over the
/// block's rows (row-major `[rows, d_out]`), row after row.
pub(super) fn block_squares(rows: &[f32], d_out: usize) -> Vec<f32> {
    let mut norms = vec![0.0f32; d_out];
    for row in rows.chunks_exact(d_out) {
        norms.iter_mut().zip(row).for_each(|(n, x)| *n += x * x);
    }
    norms
}

/// [`column_scales`] from its blocks' sums of squares ([`block_squares`]), added in order.
pub(super) fn scales_of_blocks<'a>(blocks: impl IntoIterator<Item = &'a [f32]>, d_out: usize, limit: f32) -> Vec<f32> {
    let mut norms = vec![0.0f32; d_out];
    for block in blocks {
        norms.iter_mut().zip(block).for_each(|(n, b)| *n += b);
    }
    norms.iter().map(|n| limit * (1.0 / n.sqrt().max(limit))).collect()
}

/// The rows of a two-view batch that have one view only, with the index (0
/// or 1) of the view they keep; none when `present` is `None`.
pub(super) fn one_view_rows(present: Option<&[f32]>, rows: usize) -> Vec<(usize, usize)> {
    let Some(p) = present else { return vec![] };
    (0..rows)
        .filter_map(|r| match (p[2 * r] > 0.0, p[2 * r + 1] > 0.0) {
            (true, false) => Some((r, 0)),
            (false, true) => Some((r, 1)),
            _ => None,
        })
        .collect()
}

/// `out[rows, d_out] = x · W + b`, or with `accumulate` `out += x · W`
/// (the product only: the bias was added by the first call).
pub(super) fn linear(params: &[f32], at: &LinearAt, x: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
    let (d_in, d_out) = (at.d_in, at.d_out);
    debug_assert!(x.len() >= rows * d_in && out.len() >= rows * d_out);
    if !accumulate {
        for row in out[..rows * d_out].chunks_exact_mut(d_out) {
            row.copy_from_slice(&params[at.bias..at.bias + d_out]);
        }
    }
    // SAFETY: the slices cover their matrices (checked above); `out` is not an input.
    unsafe {
        matmul(
            (rows, d_out, d_in),
            (out.as_mut_ptr(), (d_out, 1)),
            true,
            (x.as_ptr(), (d_in, 1)),
            (params[at.weight..].as_ptr(), (d_out, 1)),
        );
    }
}

/// `grad[at.., d_in × d_out] = xᵀ · δ` for `x` `[rows, d_in]` and `δ` `[rows, d_out]`.
pub(super) fn weight_grad(
    grad: &mut [f32],
    at: usize,
    x: &[f32],
    d_in: usize,
    delta: &[f32],
    d_out: usize,
    rows: usize,
) {
    let dst = &mut grad[at..at + d_in * d_out];
    debug_assert!(x.len() >= rows * d_in && delta.len() >= rows * d_out);
    // SAFETY: as in `linear`; xᵀ is x read with swapped strides.
    unsafe {
        matmul(
            (d_in, d_out, rows),
            (dst.as_mut_ptr(), (d_out, 1)),
            false,
            (x.as_ptr(), (1, d_in)),
            (delta.as_ptr(), (d_out, 1)),
        );
    }
}

/// `grad_b = Σ_rows δ`.
pub(super) fn bias_grad(grad_b: &mut [f32], delta: &[f32], rows: usize) {
    let d = grad_b.len();
    grad_b.fill(0.0);
    for row in delta[..rows * d].chunks_exact(d) {
        grad_b.iter_mut().zip(row).for_each(|(g, x)| *g += x);
    }
}

/// A linear map's weight and bias gradients for the output gradient `δ`,
/// and the input gradient `dx = δ Wᵀ` where asked.
pub(super) fn linear_backward(
    params: &[f32],
    grad: &mut [f32],
    at: &LinearAt,
    x: &[f32],
    delta: &[f32],
    rows: usize,
    dx: Option<&mut [f32]>,
) {
    weight_grad(grad, at.weight, x, at.d_in, delta, at.d_out, rows);
    bias_grad(&mut grad[at.bias..at.bias + at.d_out], delta, rows);
    if let Some(dx) = dx {
        let (d_in, d_out) = (at.d_in, at.d_out);
        debug_assert!(dx.len() >= rows * d_in);
        // SAFETY: as in `linear`; Wᵀ is W read with swapped strides.
        unsafe {
            matmul(
                (rows, d_in, d_out),
                (dx.as_mut_ptr(), (d_in, 1)),
                false,
                (delta.as_ptr(), (d_out, 1)),
                (params[at.weight..].as_ptr(), (1, d_out)),
            );
        }
    }
}

/// Batch norm in training mode: batch mean and (biased) variance per
/// feature, `γ x̂ + β` into `cache.out`, and the running statistics moved
/// towards the batch's by `momentum`, as burn does.
pub(super) fn norm_forward(
    params: &[f32],
    running: &mut [f32],
    at: &NormAt,
    (momentum, epsilon): (f32, f32),
    x: &[f32],
    rows: usize,
    cache: &mut NormCache,
) {
    let d = at.d;
    let x = &x[..rows * d];
    let mut mean = vec![0.0f32; d];
    for row in x.chunks_exact(d) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    let n = rows as f32;
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0f32; d];
    for row in x.chunks_exact(d) {
        var.iter_mut().zip(row).zip(&mean).for_each(|((s, v), m)| *s += (v - m) * (v - m));
    }
    var.iter_mut().for_each(|s| *s /= n);
    cache.inv_std.resize(d, 0.0);
    cache.inv_std.iter_mut().zip(&var).for_each(|(i, v)| *i = 1.0 / (v + epsilon).sqrt());
    cache.xhat.resize(rows * d, 0.0);
    cache.out.resize(rows * d, 0.0);
    let (gamma, beta) = (&params[at.gamma..at.gamma + d], &params[at.beta..at.beta + d]);
    for ((row, xhat), out) in x.chunks_exact(d).zip(cache.xhat.chunks_exact_mut(d)).zip(cache.out.chunks_exact_mut(d)) {
        for j in 0..d {
            xhat[j] = (row[j] - mean[j]) * cache.inv_std[j];
            out[j] = gamma[j] * xhat[j] + beta[j];
        }
    }
    let keep = 1.0 - momentum;
    for (r, m) in running[at.mean..at.mean + d].iter_mut().zip(&mean) {
        *r = *r * keep + m * momentum;
    }
    for (r, v) in running[at.var..at.var + d].iter_mut().zip(&var) {
        *r = *r * keep + v * momentum;
    }
}

/// Batch norm's backward pass: `dγ = Σ dy x̂`, `dβ = Σ dy` and
/// `dx = γ / σ · (dy − dβ / n − x̂ dγ / n)` (a batch norm on data goes
/// through [`norm_maxout_backward`] instead).
pub(super) fn norm_backward(
    params: &[f32],
    grad: &mut [f32],
    at: &NormAt,
    cache: &NormCache,
    dy: &[f32],
    rows: usize,
    dx: &mut [f32],
) {
    let d = at.d;
    let (dgamma, rest) = grad[at.gamma..].split_at_mut(d);
    let dbeta = &mut rest[at.beta - at.gamma - d..][..d];
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    for (g, xhat) in dy[..rows * d].chunks_exact(d).zip(cache.xhat.chunks_exact(d)) {
        for j in 0..d {
            dgamma[j] += g[j] * xhat[j];
            dbeta[j] += g[j];
        }
    }
    let n = rows as f32;
    let gamma = &params[at.gamma..at.gamma + d];
    for ((out, g), xhat) in dx[..rows * d].chunks_exact_mut(d).zip(dy.chunks_exact(d)).zip(cache.xhat.chunks_exact(d)) {
        for j in 0..d {
            out[j] = gamma[j] * cache.inv_std[j] * (g[j] - dbeta[j] / n - xhat[j] * dgamma[j] / n);
        }
    }
}

/// A maxout layer: the linear map into `cache.pre`, the maximum over each
/// unit's `pieces` columns into `cache.out` (times the dropout mask where
/// there is one) and the winning piece into `cache.arg`.
pub(super) fn maxout_forward(
    params: &[f32],
    at: &LinearAt,
    pieces: usize,
    x: &[f32],
    rows: usize,
    mask: Option<&[f32]>,
    cache: &mut MaxoutCache,
) {
    let units = at.d_out / pieces;
    cache.pre.resize(rows * at.d_out, 0.0);
    cache.out.resize(rows * units, 0.0);
    cache.arg.resize(rows * units, 0);
    linear(params, at, x, rows, &mut cache.pre, false);
    for (i, (out, arg)) in cache.out.iter_mut().zip(&mut cache.arg).enumerate() {
        let group = &cache.pre[i * pieces..(i + 1) * pieces];
        let (mut best, mut k) = (group[0], 0);
        for (j, &v) in group.iter().enumerate().skip(1) {
            if v > best {
                (best, k) = (v, j);
            }
        }
        *out = best * mask.map_or(1.0, |m| m[i]);
        *arg = k as u8;
    }
}

/// A maxout layer: its linear map's place and its pieces per unit.
#[derive(Clone, Copy)]
pub(super) struct MaxoutAt<'a> {
    pub(super) linear: &'a LinearAt,
    pub(super) pieces: usize,
}

/// The gradient arriving at a maxout layer: at its maxima (`dout`, `rows`
/// of them, already through the dropout mask), with its saved forward values.
pub(super) struct Back<'a> {
    pub(super) dout: &'a [f32],
    pub(super) rows: usize,
    pub(super) cache: &'a mut MaxoutCache,
}

/// A maxout layer's backward pass on input `x`: the gradient goes to the
/// winning piece, then through the linear map (into `dx` where given).
pub(super) fn maxout_backward(
    params: &[f32],
    grad: &mut [f32],
    layer: MaxoutAt<'_>,
    x: &[f32],
    back: Back<'_>,
    dx: Option<&mut [f32]>,
) {
    let Back { dout, rows, cache } = back;
    let at = layer.linear;
    let dpre = to_winners(cache, dout, rows, at.d_out, layer.pieces);
    linear_backward(params, grad, at, x, dpre, rows, dx);
}

/// The gradient at a maxout's pre-activations, `[rows, d_out]`, written over
/// `cache.pre`: each unit's `dout` on its winning piece, zero on the others.
pub(super) fn to_winners<'a>(
    cache: &'a mut MaxoutCache,
    dout: &[f32],
    rows: usize,
    d_out: usize,
    pieces: usize,
) -> &'a [f32] {
    let dpre = &mut cache.pre[..rows * d_out];
    dpre.fill(0.0);
    for (i, (&g, &k)) in dout[..rows * d_out / pieces].iter().zip(&cache.arg).enumerate() {
        dpre[i * pieces + k as usize] = g;
    }
    dpre
}

/// The backward pass of `maxout(BN(x))` when `x` is data (no gradient
/// wanted for it): the batch norm's `dγ`, `dβ` and the maxout's `dW`, `db`
/// without forming `dy = δ Wᵀ`, the `[rows, d_in]` gradient at the batch
/// norm's output, which would cost a third matrix product as large as the
/// forward one. With `G = x̂ᵀ δ` (`δ` at the maxout's pre-activations):
/// `dW = γ G + β dbᵀ` row by row, `dγ_j = Σ_c W_jc G_jc` and `dβ = W db`,
/// since `dy_rj = Σ_c δ_rc W_jc`.
pub(super) fn norm_maxout_backward(
    params: &[f32],
    grad: &mut [f32],
    norm: &NormAt,
    cache: &NormCache,
    layer: MaxoutAt<'_>,
    back: Back<'_>,
) {
    let Back { dout, rows, cache: maxout } = back;
    let at = layer.linear;
    let (d_in, d_out) = (at.d_in, at.d_out);
    let dpre = to_winners(maxout, dout, rows, d_out, layer.pieces);
    bias_grad(&mut grad[at.bias..at.bias + d_out], dpre, rows);
    weight_grad(grad, at.weight, &cache.xhat, d_in, dpre, d_out, rows);
    let db = grad[at.bias..at.bias + d_out].to_vec();
    let (gamma, beta) = (&params[norm.gamma..norm.gamma + d_in], &params[norm.beta..norm.beta + d_in]);
    let w = &params[at.weight..at.weight + d_in * d_out];
    let (mut dgamma, mut dbeta) = (vec![0.0f32; d_in], vec![0.0f32; d_in]);
    let g = &mut grad[at.weight..at.weight + d_in * d_out];
    for (j, (g_row, w_row)) in g.chunks_exact_mut(d_out).zip(w.chunks_exact(d_out)).enumerate() {
        dgamma[j] = lane_dot(w_row, g_row);
        dbeta[j] = lane_dot(w_row, &db);
        let (gj, bj) = (gamma[j], beta[j]);
        g_row.iter_mut().zip(&db).for_each(|(x, b)| *x = gj * *x + bj * b);
    }
    grad[norm.gamma..norm.gamma + d_in].copy_from_slice(&dgamma);
    grad[norm.beta..norm.beta + d_in].copy_from_slice(&dbeta);
}

/// `Σ a_i b_i` in eight lanes (vectorises without reassociation flags).
pub(super) fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    crate::cpu::kernels::lane_sum(a.len(), |i| a[i] * b[i])
}

/// `d ⊙= mask`.
pub(super) fn mask(d: &mut [f32], mask: &[f32]) {
    d.iter_mut().zip(mask).for_each(|(x, m)| *x *= m);
}
