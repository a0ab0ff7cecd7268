//! Inference on the maxout engine's flat buffers: the forward pass in
//! evaluation mode (each batch norm on its running statistics, no dropout),
//! with the GMU's gates and contribution shares and burn's rule for a
//! missing view. `predict` runs the paper's models through it on the CPU
//! instead of through burn's tensors (the same numbers within 1e-6; a test
//! checks every method, task and missing-view pattern against burn's forward).
//!
//! [`Inference`] packs every weight matrix once ([`PackedMatrix`]), so a
//! model that predicts again and again (a server, a Python session) pays the
//! packing once, and every output of a row is computed in the same order
//! whatever the other rows of its batch: a row gives the same bits alone or
//! batched with any others (tested), which is what lets a server batch
//! concurrent requests without changing an answer.

use super::ops::{LinearAt, NormAt};
use super::{Front, MaxoutNet};
use crate::cpu::kernels::{lane_sum, sigmoid, tanh, wide_variant};
use crate::cpu::packed::PackedMatrix;
use crate::fusion::Task;

/// A maxout-MLP model ready for inference on the CPU: its flat parameters
/// and each weight matrix packed for the product kernel.
#[derive(Debug)]
pub struct Inference {
    net: MaxoutNet,
    /// Each linear map the pass uses, by its weight's offset and input width.
    packed: Vec<(usize, usize, PackedMatrix)>,
}

/// What one inference pass gives, row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inferred {
    /// Class or label probabilities, `[rows, C]`.
    pub probs: Vec<f32>,
    /// GMU: the mean gate of each view over the units, `[rows, 2]`.
    pub gate_means: Option<Vec<f32>>,
    /// GMU: each view's share of `Σ_u |g_i h_i|`, `[rows, 2]`.
    pub shares: Option<Vec<f32>>,
}

/// Batch norm in evaluation mode: `γ (x − μ) / √(σ² + ε) + β` with the running `μ`, `σ²`.
fn norm_eval(params: &[f32], running: &[f32], at: &NormAt, epsilon: f32, x: &[f32], rows: usize) -> Vec<f32> {
    let d = at.d;
    let (gamma, beta) = (&params[at.gamma..at.gamma + d], &params[at.beta..at.beta + d]);
    let (mean, var) = (&running[at.mean..at.mean + d], &running[at.var..at.var + d]);
    let scale: Vec<f32> = gamma.iter().zip(var).map(|(g, v)| g / (v + epsilon).sqrt()).collect();
    let mut out = vec![0.0f32; rows * d];
    for (row, o) in x[..rows * d].chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        for j in 0..d {
            o[j] = (row[j] - mean[j]) * scale[j] + beta[j];
        }
    }
    out
}

/// Softmax over each row of `[rows, c]`, in place.
fn softmax_rows(x: &mut [f32], c: usize) {
    for row in x.chunks_exact_mut(c) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// A gate rescaled over the present views as burn's masked GMU does:
/// `kept · (total / kept)`, or the whole total where `kept` underflowed.
#[inline(always)]
fn rescaled(kept: f32, total: f32) -> f32 {
    if kept <= 1e-12 { total } else { kept * (total / kept) }
}

/// `tanh` over the transforms `hv`, `ht` and the logistic over the gate `z`, in place.
#[inline(always)]
fn activate_body(hv: &mut [f32], ht: &mut [f32], z: &mut [f32]) {
    for x in hv.iter_mut() {
        *x = tanh(*x);
    }
    for x in ht.iter_mut() {
        *x = tanh(*x);
    }
    for x in z.iter_mut() {
        *x = sigmoid(*x);
    }
}

wide_variant!(fn activate(hv: &mut [f32], ht: &mut [f32], z: &mut [f32]) = activate_body);

/// Each group of `pieces` consecutive values of `pre` to its largest, in `out`
/// (the first of equals, as the training pass picks it); two pieces, the
/// paper's, in a loop that vectorises.
#[inline(always)]
fn largest_pieces_body(pre: &[f32], pieces: usize, out: &mut [f32]) {
    if pieces == 2 {
        for (o, pair) in out.iter_mut().zip(pre.chunks_exact(2)) {
            *o = if pair[1] > pair[0] { pair[1] } else { pair[0] };
        }
        return;
    }
    for (o, group) in out.iter_mut().zip(pre.chunks_exact(pieces)) {
        let mut best = group[0];
        for &v in &group[1..] {
            if v > best {
                best = v;
            }
        }
        *o = best;
    }
}

wide_variant!(fn largest_pieces(pre: &[f32], pieces: usize, out: &mut [f32]) = largest_pieces_body);

/// A two-view GMU's activated rows: `h_v`, `h_t`, `z` `[rows, h]` and which
/// views each row has (`[rows, 2]` of 0/1; empty: both, every row).
struct Fused<'a> {
    hv: &'a [f32],
    ht: &'a [f32],
    z: &'a [f32],
    presence: &'a [f32],
    h: usize,
}

/// Each row's fused vector `g_v h_v + g_t h_t` into `fused`, its mean gates
/// and contribution shares into `means` and `shares` (`[rows, 2]`). A row with
/// one view gives it the whole gate (burn's masked GMU: [`rescaled`]).
#[inline(always)]
fn fuse_body(g: Fused<'_>, fused: &mut [f32], means: &mut [f32], shares: &mut [f32]) {
    let h = g.h;
    let mut gv = vec![0.0f32; h];
    let mut gt = vec![0.0f32; h];
    for (r, out) in fused.chunks_exact_mut(h).enumerate() {
        let span = r * h..(r + 1) * h;
        let (a, b, z) = (&g.hv[span.clone()], &g.ht[span.clone()], &g.z[span]);
        let (on_v, on_t) =
            if g.presence.is_empty() { (true, true) } else { (g.presence[2 * r] > 0.0, g.presence[2 * r + 1] > 0.0) };
        match (on_v, on_t) {
            (true, false) => {
                for u in 0..h {
                    (gv[u], gt[u]) = (rescaled(z[u], z[u] + (1.0 - z[u])), 0.0);
                }
            }
            (false, true) => {
                for u in 0..h {
                    (gv[u], gt[u]) = (0.0, rescaled(1.0 - z[u], z[u] + (1.0 - z[u])));
                }
            }
            _ => {
                for u in 0..h {
                    (gv[u], gt[u]) = (z[u], 1.0 - z[u]);
                }
            }
        }
        for u in 0..h {
            out[u] = gv[u] * a[u] + gt[u] * b[u];
        }
        means[2 * r] = lane_sum(h, |u| gv[u]) / h as f32;
        means[2 * r + 1] = lane_sum(h, |u| gt[u]) / h as f32;
        let contrib_v = lane_sum(h, |u| (gv[u] * a[u]).abs());
        let contrib_t = lane_sum(h, |u| (gt[u] * b[u]).abs());
        let total = (contrib_v + contrib_t).max(1e-12);
        shares[2 * r] = contrib_v / total;
        shares[2 * r + 1] = contrib_t / total;
    }
}

wide_variant!(fn fuse(g: Fused<'_>, fused: &mut [f32], means: &mut [f32], shares: &mut [f32]) = fuse_body);

/// The GMU's gate map split by view: the rows of its weight that read each view.
fn gate_parts(transforms: &[LinearAt; 2], gate: &LinearAt) -> [LinearAt; 2] {
    let d_v = transforms[0].d_in;
    [
        LinearAt { d_in: d_v, ..*gate },
        LinearAt { weight: gate.weight + d_v * gate.d_out, d_in: gate.d_in - d_v, ..*gate },
    ]
}

impl Inference {
    /// `net` with its weights packed.
    pub fn new(net: MaxoutNet) -> Inference {
        let mut maps: Vec<LinearAt> = Vec::new();
        match &net.front {
            Front::Gmu { transforms, gate } => {
                maps.extend(transforms);
                maps.extend(gate_parts(transforms, gate));
            }
            Front::Concat => {}
            Front::LinearSum { projections, .. } => maps.extend(projections),
        }
        let m = &net.mlp;
        maps.extend([m.maxout_1, m.maxout_2, m.output]);
        let packed = maps
            .iter()
            .map(|at| {
                let w = &net.params[at.weight..at.weight + at.d_in * at.d_out];
                (at.weight, at.d_in, PackedMatrix::from_in_out(w, at.d_in, at.d_out))
            })
            .collect();
        Inference { net, packed }
    }

    /// The flat network it runs.
    pub fn net(&self) -> &MaxoutNet {
        &self.net
    }

    /// `out[rows, d_out] = x · W + b`, or with `accumulate` `out += x · W` (no bias).
    fn linear(&self, at: &LinearAt, x: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
        let (_, _, w) = self
            .packed
            .iter()
            .find(|(weight, d_in, _)| *weight == at.weight && *d_in == at.d_in)
            .expect("every map of the pass was packed");
        let (x, out) = (&x[..rows * at.d_in], &mut out[..rows * at.d_out]);
        if accumulate {
            w.matmul_acc(x, out);
        } else {
            w.affine(x, &self.net.params[at.bias..at.bias + at.d_out], out, false);
        }
    }

    /// A maxout layer in evaluation mode: the linear map, then each unit's largest piece, `[rows, d_out / pieces]`.
    fn maxout(&self, at: &LinearAt, x: &[f32], rows: usize) -> Vec<f32> {
        let pieces = self.net.pieces;
        let mut pre = vec![0.0f32; rows * at.d_out];
        self.linear(at, x, rows, &mut pre, false);
        let mut out = vec![0.0f32; rows * at.d_out / pieces];
        largest_pieces(&pre, pieces, &mut out);
        out
    }

    /// The model's outputs on `rows` rows in evaluation mode. Each row's
    /// outputs are the same bits whatever the other rows.
    ///
    /// # Shapes
    /// - `views[i]`: `[rows, d_i]`, scaled, a missing view's rows zeroed
    /// - `present`: `[rows, K]`, 1 present and 0 missing (`None`: every view)
    /// - output: see [`Inferred`]
    pub fn infer(&self, views: &[&[f32]], rows: usize, present: Option<&[f32]>) -> Inferred {
        let net = &self.net;
        let h = net.hidden;
        let d_mlp = net.mlp.norm_in.d;
        let params = &net.params;
        let mut fused = vec![0.0f32; rows * d_mlp];
        let (mut gate_means, mut shares) = (None, None);
        match &net.front {
            Front::Gmu { transforms, gate } => {
                let (mut hv, mut ht, mut z) = (vec![0.0f32; rows * h], vec![0.0f32; rows * h], vec![0.0f32; rows * h]);
                let (xv, xt) = (views[0], views[1]);
                self.linear(&transforms[0], xv, rows, &mut hv, false);
                self.linear(&transforms[1], xt, rows, &mut ht, false);
                let [rows_v, rows_t] = gate_parts(transforms, gate);
                self.linear(&rows_v, xv, rows, &mut z, false);
                self.linear(&rows_t, xt, rows, &mut z, true);
                let (mut means, mut share) = (vec![0.0f32; rows * 2], vec![0.0f32; rows * 2]);
                activate(&mut hv, &mut ht, &mut z);
                let presence = present.unwrap_or(&[]);
                fuse(Fused { hv: &hv, ht: &ht, z: &z, presence, h }, &mut fused, &mut means, &mut share);
                (gate_means, shares) = (Some(means), Some(share));
            }
            Front::Concat => {
                let mut at = 0;
                for x in views {
                    let d = x.len() / rows.max(1);
                    for r in 0..rows {
                        fused[r * d_mlp + at..r * d_mlp + at + d].copy_from_slice(&x[r * d..(r + 1) * d]);
                    }
                    at += d;
                }
            }
            Front::LinearSum { norms, projections } => {
                for (i, x) in views.iter().enumerate() {
                    let normed = norm_eval(params, &net.running, &norms[i], net.epsilon, x, rows);
                    let out = self.maxout(&projections[i], &normed, rows);
                    fused.iter_mut().zip(&out).for_each(|(s, m)| *s += m);
                }
            }
        }
        let m = net.mlp;
        let x = norm_eval(params, &net.running, &m.norm_in, net.epsilon, &fused, rows);
        let out = self.maxout(&m.maxout_1, &x, rows);
        let x = norm_eval(params, &net.running, &m.norm_1, net.epsilon, &out, rows);
        let out = self.maxout(&m.maxout_2, &x, rows);
        let x = norm_eval(params, &net.running, &m.norm_2, net.epsilon, &out, rows);
        let mut probs = vec![0.0f32; rows * net.classes];
        self.linear(&m.output, &x, rows, &mut probs, false);
        match net.task {
            Task::Multiclass => softmax_rows(&mut probs, net.classes),
            Task::Multilabel => probs.iter_mut().for_each(|v| *v = sigmoid(*v)),
        }
        Inferred { probs, gate_means, shares }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Tensor, TensorData};

    use super::*;
    use crate::fusion::{FusionKind, FusionSpec};

    /// Every row of a batch gives the same bits alone, in the batch, and in
    /// batches of other sizes (the products pack `W` and never split a row's sum by the batch).
    #[test]
    fn a_row_gives_the_same_bits_alone_or_in_any_batch() {
        let device = burn::tensor::Device::default();
        for kind in [FusionKind::Gmu, FusionKind::Concat, FusionKind::LinearSum] {
            let spec = FusionSpec::new(kind, vec![37, 21], 24, 10, Task::Multiclass);
            let net = crate::fusion::random::exclusive(|| {
                device.seed(3);
                spec.init(&device).unwrap()
            });
            let flat = Inference::new(MaxoutNet::from_net(&net, 0).unwrap().with_views(&[37, 21]));
            let rows = 613;
            let xs: Vec<Vec<f32>> = [37usize, 21]
                .iter()
                .map(|&d| (0..rows * d).map(|i| ((i * 2654435761usize) % 1000) as f32 / 250.0 - 2.0).collect())
                .collect();
            let present: Vec<f32> = (0..rows).flat_map(|r| [f32::from(r % 7 != 3), f32::from(r % 5 != 1)]).collect();
            let mut zeroed = xs.clone();
            for (k, x) in zeroed.iter_mut().enumerate() {
                let d = x.len() / rows;
                for r in (0..rows).filter(|r| present[r * 2 + k] == 0.0) {
                    x[r * d..(r + 1) * d].fill(0.0);
                }
            }
            let slice = |lo: usize, hi: usize| -> Vec<&[f32]> {
                zeroed
                    .iter()
                    .map(|x| {
                        let d = x.len() / rows;
                        &x[lo * d..hi * d]
                    })
                    .collect()
            };
            let whole = flat.infer(&slice(0, rows), rows, Some(&present));
            for (lo, hi) in [(0, 1), (5, 6), (3, 70), (100, 613), (611, 613), (17, 29)] {
                let part = flat.infer(&slice(lo, hi), hi - lo, Some(&present[lo * 2..hi * 2]));
                let c = 10;
                assert_eq!(part.probs, whole.probs[lo * c..hi * c], "{kind}: rows {lo}..{hi}");
                if let (Some(a), Some(b)) = (&part.gate_means, &whole.gate_means) {
                    assert_eq!(a[..], b[lo * 2..hi * 2], "{kind}: gates of rows {lo}..{hi}");
                    assert_eq!(part.shares.as_ref().unwrap()[..], whole.shares.as_ref().unwrap()[lo * 2..hi * 2]);
                }
            }
        }
    }

    /// burn's forward and the flat one on the same trained-looking weights
    /// (random, with running statistics moved off their defaults), for every
    /// front, both tasks, and rows with each view missing.
    #[test]
    fn infer_matches_burns_forward_with_missing_views() {
        let device = burn::tensor::Device::default();
        for kind in [FusionKind::Gmu, FusionKind::Concat, FusionKind::LinearSum] {
            for task in [Task::Multiclass, Task::Multilabel] {
                let spec = FusionSpec::new(kind, vec![5, 3], 6, 4, task);
                let net = crate::fusion::random::exclusive(|| {
                    device.seed(7);
                    spec.init(&device).unwrap()
                });
                let mut flat = MaxoutNet::from_net(&net, 0).unwrap().with_views(&[5, 3]);
                // Running statistics away from (0, 1), so evaluation mode is tested.
                for (i, v) in flat.running.iter_mut().enumerate() {
                    *v = if (i / 3) % 2 == 0 { 0.1 * (i % 7) as f32 - 0.3 } else { 0.5 + 0.1 * (i % 5) as f32 };
                }
                let net = flat.write_into(net);
                let flat = Inference::new(flat);
                let rows = 6;
                let xs: Vec<Vec<f32>> = [5usize, 3]
                    .iter()
                    .enumerate()
                    .map(|(k, &d)| (0..rows * d).map(|i| ((i * 7 + k * 3) % 11) as f32 / 5.0 - 1.0).collect())
                    .collect();
                // Rows 1 and 4 lose view 1, row 2 view 0.
                let present: Vec<f32> =
                    (0..rows).flat_map(|r| [f32::from(r != 2), f32::from(r != 1 && r != 4)]).collect();
                let mut zeroed = xs.clone();
                for (k, x) in zeroed.iter_mut().enumerate() {
                    let d = x.len() / rows;
                    for r in 0..rows {
                        if present[r * 2 + k] == 0.0 {
                            x[r * d..(r + 1) * d].fill(0.0);
                        }
                    }
                }
                for mask in [None, Some(&present)] {
                    let inputs = if mask.is_some() { &zeroed } else { &xs };
                    let tensors: Vec<Tensor<2>> = inputs
                        .iter()
                        .map(|x| Tensor::from_data(TensorData::new(x.clone(), [rows, x.len() / rows]), &device))
                        .collect();
                    let m = mask.map(|p| Tensor::<2>::from_data(TensorData::new(p.clone(), [rows, 2]), &device));
                    let out = net.forward_present(&tensors, m.as_ref());
                    let want = net.probabilities(out.scores).into_data().try_to_vec::<f32>().unwrap();
                    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                    let got = flat.infer(&refs, rows, mask.map(Vec::as_slice));
                    let close = |a: &[f32], b: &[f32], what: &str| {
                        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
                        assert!(worst < 2e-6, "{kind} {task:?} mask={}: {what} differs by {worst}", mask.is_some());
                    };
                    close(&got.probs, &want, "probabilities");
                    if let (Some(g), Some(c)) = (out.gates, out.contributions) {
                        let means = g.mean_dim(2).reshape([rows, 2]).into_data().try_to_vec::<f32>().unwrap();
                        close(got.gate_means.as_ref().unwrap(), &means, "gate means");
                        let per_view = c.sum_dim(2).reshape([rows, 2]);
                        let total = per_view.clone().sum_dim(1).clamp_min(1e-12);
                        let shares = (per_view / total).into_data().try_to_vec::<f32>().unwrap();
                        close(got.shares.as_ref().unwrap(), &shares, "shares");
                    } else {
                        assert!(got.gate_means.is_none() && kind != FusionKind::Gmu);
                    }
                }
            }
        }
    }
}
