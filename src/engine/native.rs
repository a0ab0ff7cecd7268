//! A hand-differentiated `f32` engine for the small classifiers of
//! [`synthetic`](crate::fusion::synthetic): forward, backward and Adam over whole batches held
//! in flat buffers, with no allocation per step.
//!
//! Why it exists: on the synthetic problem (400 samples, a few dozen
//! parameters) burn spends its time in per-operation dispatch and allocation,
//! not arithmetic (see `BENCHMARKS.md`). This engine computes exactly what the
//! burn [`FusionNet`](crate::fusion::FusionNet) of [`ModelSpec::to_net`] computes, with the same
//! parameter layout, and is checked against burn's autodiff and against finite
//! differences in the tests below. The burn path stays the general one
//! (any backend, K > 2, larger models); `--engine burn` trains the toy with it.
//!
//! Layout: every activation is stored batch-major (`[rows, width]`) and each
//! stage is one loop over a contiguous buffer, with branch-free `exp`, `ln`,
//! `tanh` and `sigmoid` below, so the compiler vectorises them.

#[cfg(target_arch = "x86_64")]
use super::choice::{Batches, Engine, FlatTraining, RunNeeds, TrainEngine, every_view, on_cpu};
use crate::cpu::kernels::wide_simd;
use crate::cpu::kernels::{lane_sum, sigmoid, tanh};
pub use crate::cpu::loss::LossKind;
use crate::cpu::loss::loss_and_delta;
use crate::data::Scaler;
use crate::fusion::synthetic::{ModelKind, ModelSpec};

/// A dense layer's place in the flat parameter vector.
#[derive(Clone, Copy, Debug)]
struct Dense {
    w: usize,
    b: Option<usize>,
    d_in: usize,
    d_out: usize,
}

impl Dense {
    /// `out[r] = b + x[r, off..off + d_in] W` for every row of `x` (row stride `stride`).
    #[inline(always)]
    fn forward(&self, params: &[f32], x: &[f32], stride: usize, off: usize, out: &mut [f32]) {
        let (d_in, d_out) = (self.d_in, self.d_out);
        let w = &params[self.w..self.w + d_in * d_out];
        let bias = |j: usize| self.b.map_or(0.0, |b| params[b + j]);
        if d_out == 1 {
            // One output (the toy's H = 1): a dot product per row, no inner loop over outputs.
            let b0 = bias(0);
            // Widths 1 and 2 (the paper's inputs) as strided iterators without
            // bounds checks, so the loop over rows vectorises.
            let column = |j: usize| x[off + j..].iter().step_by(stride);
            match d_in {
                1 => out.iter_mut().zip(column(0)).for_each(|(o, &a)| *o = b0 + a * w[0]),
                2 => {
                    out.iter_mut().zip(column(0)).zip(column(1)).for_each(|((o, &a), &b)| *o = b0 + a * w[0] + b * w[1])
                }
                _ => x
                    .chunks_exact(stride)
                    .zip(out.iter_mut())
                    .for_each(|(row, o)| *o = b0 + row[off..off + d_in].iter().zip(w).map(|(a, b)| a * b).sum::<f32>()),
            }
            return;
        }
        if d_in == 1 {
            // One input (the head on H = 1): out[r] = b + x[r]·w, one row of W.
            let rows = out.chunks_exact_mut(d_out).zip(x[off..].iter().step_by(stride));
            match self.b {
                Some(b) => {
                    let b = &params[b..b + d_out];
                    rows.for_each(|(o, &a)| o.iter_mut().zip(b).zip(w).for_each(|((oj, &bj), &wj)| *oj = bj + a * wj));
                }
                None => rows.for_each(|(o, &a)| o.iter_mut().zip(w).for_each(|(oj, &wj)| *oj = a * wj)),
            }
            return;
        }
        for (row, o) in x.chunks_exact(stride).zip(out.chunks_exact_mut(d_out)) {
            for (j, oj) in o.iter_mut().enumerate() {
                *oj = bias(j);
            }
            for (i, &xi) in row[off..off + d_in].iter().enumerate() {
                for (oj, &wj) in o.iter_mut().zip(&w[i * d_out..(i + 1) * d_out]) {
                    *oj += xi * wj;
                }
            }
        }
    }

    /// Accumulates `dW += xᵀ g` and `db += Σ g` over the rows.
    #[inline(always)]
    fn backward_params(&self, x: &[f32], stride: usize, off: usize, g: &[f32], grad: &mut [f32]) {
        let (d_in, d_out) = (self.d_in, self.d_out);
        let dw = &mut grad[self.w..self.w + d_in * d_out];
        if d_out == 1 {
            // One output: each weight's gradient is a dot product over the rows,
            // summed in eight independent lanes.
            for (i, d) in dw.iter_mut().enumerate() {
                *d += lane_sum(g.len(), |r| x[r * stride + off + i] * g[r]);
            }
            if let Some(b) = self.b {
                grad[b] += lane_sum(g.len(), |r| g[r]);
            }
            return;
        }
        for (row, gr) in x.chunks_exact(stride).zip(g.chunks_exact(d_out)) {
            for (i, &xi) in row[off..off + d_in].iter().enumerate() {
                for (d, &gv) in dw[i * d_out..(i + 1) * d_out].iter_mut().zip(gr) {
                    *d += xi * gv;
                }
            }
        }
        if let Some(b) = self.b {
            let db = &mut grad[b..b + d_out];
            for gr in g.chunks_exact(d_out) {
                for (d, &v) in db.iter_mut().zip(gr) {
                    *d += v;
                }
            }
        }
    }

    /// `dx[r] = W g[r]` for every row.
    #[inline(always)]
    fn backward_input(&self, params: &[f32], g: &[f32], dx: &mut [f32]) {
        let (d_in, d_out) = (self.d_in, self.d_out);
        let w = &params[self.w..self.w + d_in * d_out];
        for (gr, dr) in g.chunks_exact(d_out).zip(dx.chunks_exact_mut(d_in)) {
            for (i, d) in dr.iter_mut().enumerate() {
                *d = w[i * d_out..(i + 1) * d_out].iter().zip(gr).map(|(a, b)| a * b).sum();
            }
        }
    }
}

/// A classifier of [`ModelSpec`] with its parameters in one flat vector.
#[derive(Clone, Debug)]
pub struct Network {
    spec: ModelSpec,
    layers: Vec<Dense>,
    /// The parameters, in the order of [`ModelSpec::params`].
    pub params: Vec<f32>,
}

/// Batch buffers, grown on demand and reused across steps.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    gathered: Vec<f32>,
    /// One-hot targets `[rows, classes]`.
    onehot: Vec<f32>,
    /// Per-element loss terms, summed after the vectorised pass.
    terms: Vec<f32>,
    /// GMU: tanh(a_v); FF: tanh(hidden). `[rows, H]`
    h_1: Vec<f32>,
    /// GMU: tanh(a_t). `[rows, H]`
    h_2: Vec<f32>,
    /// GMU: the visual gate z. `[rows, H]`
    z: Vec<f32>,
    /// GMU: the fused h. `[rows, H]`
    fused: Vec<f32>,
    logits: Vec<f32>,
    g_logits: Vec<f32>,
    g_h: Vec<f32>,
    g_a: Vec<f32>,
}

impl Workspace {
    fn reserve(&mut self, rows: usize, hidden: usize, classes: usize) {
        for (buf, width) in [
            (&mut self.h_1, hidden),
            (&mut self.h_2, hidden),
            (&mut self.z, hidden),
            (&mut self.fused, hidden),
            (&mut self.g_h, hidden),
            (&mut self.g_a, hidden),
            (&mut self.logits, classes),
            (&mut self.g_logits, classes),
        ] {
            buf.resize(rows * width, 0.0);
        }
    }

    /// The logits of the last forward pass, `[rows, classes]`.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The visual gates `z` of the last forward pass of a GMU, `[rows, H]`.
    pub fn gates(&self) -> &[f32] {
        &self.z
    }
}

impl Network {
    /// Wraps `params` (laid out as [`ModelSpec::params`]).
    ///
    /// # Panics
    /// If `params` has the wrong length.
    pub fn new(spec: ModelSpec, params: Vec<f32>) -> Self {
        assert_eq!(params.len(), spec.n_params(), "parameter count");
        let mut offset = 0;
        let mut layers = vec![];
        for p in spec.params() {
            match p.fans() {
                Some((d_in, d_out)) => {
                    layers.push(Dense { w: offset, b: None, d_in, d_out });
                }
                None => layers.last_mut().expect("weight before bias").b = Some(offset),
            }
            offset += p.len();
        }
        Network { spec, layers, params }
    }

    /// The model's shape.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Forward pass over the rows of `x` (`[rows, d_v + d_t]`, visual first).
    /// Leaves the logits (and, for the GMU, the gates) in `ws`.
    pub fn forward(&self, x: &[f32], ws: &mut Workspace) {
        self.forward_inline(x, ws)
    }

    #[inline(always)]
    fn forward_inline(&self, x: &[f32], ws: &mut Workspace) {
        let d = self.spec.d_in();
        let rows = x.len() / d;
        ws.reserve(rows, self.spec.hidden, self.spec.n_classes);
        let p = &self.params;
        match self.spec.kind {
            ModelKind::Gmu => {
                let [lv, lt, lz, lo] = [self.layers[0], self.layers[1], self.layers[2], self.layers[3]];
                lv.forward(p, x, d, 0, &mut ws.h_1);
                lt.forward(p, x, d, self.spec.d_v, &mut ws.h_2);
                lz.forward(p, x, d, 0, &mut ws.z);
                for (((hv, ht), z), h) in
                    ws.h_1.iter_mut().zip(ws.h_2.iter_mut()).zip(ws.z.iter_mut()).zip(ws.fused.iter_mut())
                {
                    *hv = tanh(*hv);
                    *ht = tanh(*ht);
                    *z = sigmoid(*z);
                    *h = *ht + *z * (*hv - *ht);
                }
                lo.forward(p, &ws.fused, lo.d_in, 0, &mut ws.logits);
            }
            ModelKind::Ff => {
                let [lh, lo] = [self.layers[0], self.layers[1]];
                lh.forward(p, x, d, 0, &mut ws.h_1);
                ws.h_1.iter_mut().for_each(|a| *a = tanh(*a));
                lo.forward(p, &ws.h_1, lo.d_in, 0, &mut ws.logits);
            }
            ModelKind::Logreg => self.layers[0].forward(p, x, d, 0, &mut ws.logits),
        }
    }

    /// Mean loss over `rows` of `x` (`[n, d_v + d_t]`) with labels `y`, and its
    /// gradient, written into `grad` (overwritten).
    ///
    /// Runs a build for AVX2 + FMA where the CPU has them (checked once per
    /// process), the baseline x86-64 build elsewhere: the same arithmetic, so
    /// a run repeats exactly on the same machine.
    pub fn loss_and_grad(
        &self,
        x: &[f32],
        y: &[u8],
        rows: &[usize],
        loss: LossKind,
        grad: &mut [f32],
        ws: &mut Workspace,
    ) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if wide_simd() {
            // SAFETY: `wide_simd` checked the CPU for AVX2 and FMA.
            return unsafe { self.loss_and_grad_avx2(x, y, rows, loss, grad, ws) };
        }
        self.loss_and_grad_inline(x, y, rows, loss, grad, ws)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn loss_and_grad_avx2(
        &self,
        x: &[f32],
        y: &[u8],
        rows: &[usize],
        loss: LossKind,
        grad: &mut [f32],
        ws: &mut Workspace,
    ) -> f32 {
        self.loss_and_grad_inline(x, y, rows, loss, grad, ws)
    }

    #[inline(always)]
    fn loss_and_grad_inline(
        &self,
        x: &[f32],
        y: &[u8],
        rows: &[usize],
        loss: LossKind,
        grad: &mut [f32],
        ws: &mut Workspace,
    ) -> f32 {
        let d = self.spec.d_in();
        let all = rows.len() == y.len() && rows.iter().enumerate().all(|(i, &r)| i == r);
        let mut gathered = std::mem::take(&mut ws.gathered);
        let xb: &[f32] = if all {
            x
        } else {
            gathered.clear();
            gathered.extend(rows.iter().flat_map(|&r| &x[r * d..(r + 1) * d]));
            &gathered
        };
        self.forward_inline(xb, ws);
        let total = self.loss_gradient(y, rows, all, loss, ws);
        self.backward(xb, grad, ws);
        ws.gathered = gathered;
        total
    }

    /// Fills `ws.g_logits` with dL/dlogits (divided by the batch size) and
    /// returns the mean loss: the engines' one flat loss on one-hot targets.
    #[inline(always)]
    fn loss_gradient(&self, y: &[u8], rows: &[usize], all: bool, loss: LossKind, ws: &mut Workspace) -> f32 {
        let c = self.spec.n_classes;
        let m = rows.len();
        ws.onehot.clear();
        ws.onehot.extend((0..m).flat_map(|k| {
            let label = y[if all { k } else { rows[k] }] as usize;
            (0..c).map(move |j| f32::from(j == label))
        }));
        loss_and_delta(loss, &ws.logits, &ws.onehot, c, &mut ws.g_logits, &mut ws.terms)
    }

    #[inline(always)]
    fn backward(&self, x: &[f32], grad: &mut [f32], ws: &mut Workspace) {
        grad.fill(0.0);
        let p = &self.params;
        let d = self.spec.d_in();
        match self.spec.kind {
            ModelKind::Gmu => {
                let [lv, lt, lz, lo] = [self.layers[0], self.layers[1], self.layers[2], self.layers[3]];
                lo.backward_params(&ws.fused, lo.d_in, 0, &ws.g_logits, grad);
                lo.backward_input(p, &ws.g_logits, &mut ws.g_h);
                let (hv, ht, z) = (&ws.h_1, &ws.h_2, &ws.z);
                for ((((ga, &gh), &v), &t), &z) in ws.g_a.iter_mut().zip(&ws.g_h).zip(hv).zip(ht).zip(z) {
                    *ga = gh * (v - t) * z * (1.0 - z);
                }
                lz.backward_params(x, d, 0, &ws.g_a, grad);
                for (((ga, &gh), &v), &z) in ws.g_a.iter_mut().zip(&ws.g_h).zip(hv).zip(z) {
                    *ga = gh * z * (1.0 - v * v);
                }
                lv.backward_params(x, d, 0, &ws.g_a, grad);
                for (((ga, &gh), &t), &z) in ws.g_a.iter_mut().zip(&ws.g_h).zip(ht).zip(z) {
                    *ga = gh * (1.0 - z) * (1.0 - t * t);
                }
                lt.backward_params(x, d, self.spec.d_v, &ws.g_a, grad);
            }
            ModelKind::Ff => {
                let [lh, lo] = [self.layers[0], self.layers[1]];
                lo.backward_params(&ws.h_1, lo.d_in, 0, &ws.g_logits, grad);
                lo.backward_input(p, &ws.g_logits, &mut ws.g_h);
                for ((ga, &gh), &h) in ws.g_a.iter_mut().zip(&ws.g_h).zip(&ws.h_1) {
                    *ga = gh * (1.0 - h * h);
                }
                lh.backward_params(x, d, 0, &ws.g_a, grad);
            }
            ModelKind::Logreg => self.layers[0].backward_params(x, d, 0, &ws.g_logits, grad),
        }
    }

    /// Mean loss over all rows, without keeping the gradient.
    pub fn loss(&self, x: &[f32], y: &[u8], loss: LossKind) -> f32 {
        let rows: Vec<usize> = (0..y.len()).collect();
        let mut grad = vec![0.0; self.params.len()];
        self.loss_and_grad(x, y, &rows, loss, &mut grad, &mut Workspace::default())
    }

    /// Scores many raw rows (`[n, d_v + d_t]`) on all cores: applies `scaler`
    /// (if any) block by block, and writes P(class 1) and the visual gate
    /// averaged over the H units (0 for models without a gate).
    pub fn predict(&self, x: &[f32], scaler: Option<&Scaler>, loss: LossKind, prob: &mut [f32], gate: &mut [f32]) {
        const BLOCK: usize = 4096;
        let d = self.spec.d_in();
        let n = prob.len();
        assert_eq!(x.len(), n * d);
        assert_eq!(gate.len(), n);
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.div_ceil(BLOCK)).max(1);
        let chunk = n.div_ceil(threads);
        #[cfg(target_arch = "x86_64")]
        let wide = wide_simd();
        std::thread::scope(|scope| {
            for ((xs, ps), gs) in x.chunks(chunk * d).zip(prob.chunks_mut(chunk)).zip(gate.chunks_mut(chunk)) {
                scope.spawn(move || {
                    let mut ws = Workspace::default();
                    let mut block = Vec::with_capacity(BLOCK * d);
                    for ((xb, pb), gb) in xs.chunks(BLOCK * d).zip(ps.chunks_mut(BLOCK)).zip(gs.chunks_mut(BLOCK)) {
                        let xb = match scaler {
                            Some(scaler) => {
                                block.clear();
                                block.extend_from_slice(xb);
                                scaler.apply(&mut block);
                                &block[..]
                            }
                            None => xb,
                        };
                        #[cfg(target_arch = "x86_64")]
                        if wide {
                            // SAFETY: the CPU was checked for AVX2 and FMA above.
                            unsafe { self.score_block_avx2(xb, loss, pb, gb, &mut ws) };
                            continue;
                        }
                        self.score_block(xb, loss, pb, gb, &mut ws);
                    }
                });
            }
        });
    }

    /// [`score_block`](Self::score_block) compiled for AVX2 + FMA (8 lanes
    /// instead of SSE2's 4); chosen at run time where the CPU has them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn score_block_avx2(&self, x: &[f32], loss: LossKind, prob: &mut [f32], gate: &mut [f32], ws: &mut Workspace) {
        self.score_block(x, loss, prob, gate, ws)
    }

    /// P(class 1) and the mean visual gate of every (scaled) row of `x`.
    #[inline(always)]
    fn score_block(&self, x: &[f32], loss: LossKind, prob: &mut [f32], gate: &mut [f32], ws: &mut Workspace) {
        let (h, c) = (self.spec.hidden, self.spec.n_classes);
        self.forward_inline(x, ws);
        match (loss, c) {
            (LossKind::SoftmaxCe, 2) => {
                for (p, o) in prob.iter_mut().zip(ws.logits.chunks_exact(2)) {
                    *p = sigmoid(o[1] - o[0]);
                }
            }
            (LossKind::SigmoidBce, _) => {
                for (p, o) in prob.iter_mut().zip(ws.logits.chunks_exact(c)) {
                    *p = sigmoid(o[1]);
                }
            }
            _ => {
                for (p, o) in prob.iter_mut().zip(ws.logits.chunks_exact(c)) {
                    *p = loss.prob_class1(o);
                }
            }
        }
        match (self.spec.kind == ModelKind::Gmu, h) {
            (true, 1) => gate.copy_from_slice(&ws.z),
            (true, _) => {
                for (g, z) in gate.iter_mut().zip(ws.z.chunks_exact(h)) {
                    *g = z.iter().sum::<f32>() / h as f32;
                }
            }
            (false, _) => gate.fill(0.0),
        }
    }

    /// Predicted class (arg-max logit) of every row of `x`; the forward pass
    /// stays in `ws`, so a GMU's gates can be read from it without a second pass.
    pub fn classify(&self, x: &[f32], ws: &mut Workspace) -> Vec<u8> {
        self.forward(x, ws);
        ws.logits
            .chunks_exact(self.spec.n_classes)
            .map(|o| (0..o.len()).fold(0, |b, k| if o[k] > o[b] { k } else { b }) as u8)
            .collect()
    }
}

/// Above this many parameters `Engine::Auto` prefers the GEMM engine to the
/// native one: the native engine's scalar loops win on the toy (a few dozen
/// parameters, see `BENCHMARKS.md`), the GEMM's blocked kernels on anything wide.
pub const NATIVE_MAX_PARAMS: usize = 20_000;

/// The native engine's account of what it trains (see [`TrainEngine`]): the
/// synthetic experiment's classifiers on the CPU, every view present, no max-norm;
/// `--engine auto` prefers it up to [`NATIVE_MAX_PARAMS`] parameters.
pub struct Native;

impl TrainEngine for Native {
    fn engine(&self) -> Engine {
        Engine::Native
    }

    fn supports(
        &self,
        spec: &crate::fusion::FusionSpec,
        needs: &RunNeeds,
        device: &burn::tensor::Device,
    ) -> std::result::Result<(), String> {
        on_cpu(device)?;
        every_view(needs)?;
        ModelSpec::from_fusion(spec).ok_or_else(|| {
            "it trains GMU → linear, concat → tanh → linear and logistic regression on two feature views, one class per sample".to_string()
        })?;
        if needs.max_norm {
            return Err("it has no max-norm constraint".into());
        }
        if needs.view_noise {
            return Err("it holds the training set as read once; corrupted views need every batch fresh".into());
        }
        Ok(())
    }

    fn prefers(&self, spec: &crate::fusion::FusionSpec) -> bool {
        ModelSpec::from_fusion(spec).is_some_and(|s| s.n_params() <= NATIVE_MAX_PARAMS)
    }

    fn start(
        &self,
        spec: &crate::fusion::FusionSpec,
        model: crate::fusion::FusionNet,
        batches: &dyn Batches,
        adam: &dyn Fn(usize) -> crate::cpu::Adam,
        loss: Option<LossKind>,
    ) -> Option<crate::error::Result<Box<dyn FlatTraining>>> {
        let spec = ModelSpec::from_fusion(spec).expect("picked for a synthetic-experiment model");
        let net = Network::new(spec, crate::fusion::synthetic::flat_params(&model));
        // The training rows gathered once: both views joined `[n_train, d_v + d_t]`, and their classes.
        let all: Vec<usize> = (0..batches.len()).collect();
        let (views, _) = batches.batch(&all);
        let widths = batches.widths();
        let x = views[0]
            .chunks_exact(widths[0])
            .zip(views[1].chunks_exact(widths[1]))
            .flat_map(|(a, b)| a.iter().chain(b).copied())
            .collect();
        let y = batches.classes().expect("picked for one class per sample");
        let n = net.params.len();
        let loss = loss.unwrap_or(LossKind::SoftmaxCe);
        let training = NativeTraining { adam: adam(n), grad: vec![0.0; n], ws: Workspace::default(), net, x, y, loss };
        Some(Ok(Box::new(training)))
    }
}

/// The native engine training one model on the training rows it gathered once.
struct NativeTraining {
    net: Network,
    adam: crate::cpu::Adam,
    grad: Vec<f32>,
    ws: Workspace,
    /// The training rows' views joined, `[n_train, d_v + d_t]`.
    x: Vec<f32>,
    /// Their classes.
    y: Vec<u8>,
    loss: LossKind,
}

impl FlatTraining for NativeTraining {
    fn step(&mut self, _: &dyn Batches, positions: &[usize], _present: Option<Vec<f32>>, _limit: Option<f32>) -> f32 {
        let NativeTraining { net, adam, grad, ws, x, y, loss } = self;
        let value = net.loss_and_grad(x, y, positions, *loss, grad, ws);
        if value.is_finite() {
            adam.step(&mut net.params, grad);
        }
        value
    }

    fn training_loss(&self, _: &dyn Batches) -> Option<f32> {
        Some(self.net.loss(&self.x, &self.y, self.loss))
    }

    fn flat(&mut self) -> (&mut Vec<f32>, &mut crate::cpu::Adam) {
        (&mut self.net.params, &mut self.adam)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn snapshot(&self, inference: &burn::tensor::Device) -> crate::fusion::FusionNet {
        self.net.spec().to_net(&self.net.params, inference).expect("the native engine's own layout")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cpu::kernels::{exp, ln};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    pub(crate) fn specs() -> Vec<ModelSpec> {
        let mut out = vec![];
        for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
            for bias in [true, false] {
                out.push(ModelSpec { kind, d_v: 2, d_t: 3, hidden: 3, bias, n_classes: 2 });
            }
        }
        out
    }

    pub(crate) fn random_problem(spec: &ModelSpec, rng: &mut StdRng) -> (Network, Vec<f32>, Vec<u8>) {
        let params = (0..spec.n_params()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x = (0..7 * spec.d_in()).map(|_| rng.random_range(-2.0..2.0)).collect();
        let y = (0..7).map(|_| rng.random_range(0..2)).collect();
        (Network::new(spec.clone(), params), x, y)
    }

    /// Analytic gradients against central finite differences,
    /// for every model, with and without bias, for both losses.
    #[test]
    #[allow(clippy::needless_range_loop)] // indices mirror the maths
    fn gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(11);
        for spec in specs() {
            for loss in [LossKind::SoftmaxCe, LossKind::SigmoidBce] {
                let (mut net, x, y) = random_problem(&spec, &mut rng);
                let rows: Vec<usize> = (0..y.len()).collect();
                let mut grad = vec![0.0; net.params.len()];
                net.loss_and_grad(&x, &y, &rows, loss, &mut grad, &mut Workspace::default());
                for i in 0..net.params.len() {
                    let eps = 1e-2;
                    let keep = net.params[i];
                    net.params[i] = keep + eps;
                    let up = net.loss(&x, &y, loss) as f64;
                    net.params[i] = keep - eps;
                    let down = net.loss(&x, &y, loss) as f64;
                    net.params[i] = keep;
                    let numeric = (up - down) / (2.0 * eps as f64);
                    assert!(
                        (numeric - grad[i] as f64).abs() < 2e-3 + 1e-2 * numeric.abs(),
                        "{:?} {loss:?} param {i}: analytic {} numeric {numeric}",
                        spec.kind,
                        grad[i]
                    );
                }
            }
        }
    }

    #[test]
    fn fast_exp_tanh_sigmoid_are_accurate() {
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.004;
            let xd = x as f64;
            assert!(((exp(x) as f64) / xd.exp() - 1.0).abs() < 3e-7, "exp({x})");
            assert!((tanh(x) as f64 - xd.tanh()).abs() < 3e-7, "tanh({x})");
            assert!((sigmoid(x) as f64 - 1.0 / (1.0 + (-xd).exp())).abs() < 3e-7, "sigmoid({x})");
        }
        assert_eq!(tanh(1e4), 1.0);
        assert_eq!(tanh(-1e4), -1.0);
        assert!(sigmoid(-1e4) < 1e-38 && sigmoid(1e4) == 1.0);
        assert!(exp(100.0).is_finite() && exp(-100.0) >= 0.0);
        for i in 1..=100_000 {
            let x = i as f32 * 1e-3;
            assert!(((ln(x) as f64) - (x as f64).ln()).abs() < 2e-7 * (1.0 + (x as f64).ln().abs()), "ln({x})");
        }
    }

    #[test]
    fn adam_matches_a_hand_computed_first_step() {
        // First step: m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr·sign(g).
        let mut adam = crate::cpu::Adam::new(2, 0.1, 0.9, 0.999, 1e-8);
        let mut p = vec![1.0, -1.0];
        adam.step(&mut p, &[0.5, -2.0]);
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] + 0.9).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn predict_agrees_with_forward_across_threads() {
        let mut rng = StdRng::seed_from_u64(2);
        let spec = ModelSpec { kind: ModelKind::Gmu, d_v: 1, d_t: 1, hidden: 2, bias: true, n_classes: 2 };
        let (net, _, _) = random_problem(&spec, &mut rng);
        let x: Vec<f32> = (0..2 * 10_001).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut p, mut g) = (vec![0.0; 10_001], vec![0.0; 10_001]);
        net.predict(&x, None, LossKind::SoftmaxCe, &mut p, &mut g);
        let mut ws = Workspace::default();
        for r in [0, 5000, 10_000] {
            net.forward(&x[2 * r..2 * r + 2], &mut ws);
            assert_eq!(p[r], LossKind::SoftmaxCe.prob_class1(ws.logits()));
            assert_eq!(g[r], (ws.gates()[0] + ws.gates()[1]) / 2.0);
        }
    }
}
