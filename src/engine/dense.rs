//! A GEMM engine for the plain GMU classifier at real sizes (MM-IMDb:
//! `x_v` 4096 + `x_t` 300 → GMU 512 → 23 labels): hand-derived forward,
//! backward and Adam over flat `f32` buffers, with every matrix product a call
//! to the `gemm` crate (the kernel burn's flex backend uses) and nothing
//! allocated per step.
//!
//! It trains exactly the burn model [`FusionSpec`](crate::fusion::FusionSpec) builds for `--fusion gmu
//! --head linear` with two modalities (the tests check its loss and gradients
//! against burn's autodiff), reading the initial weights from that module and
//! writing the trained ones back, so saving, prediction and gate reports stay
//! on the one burn model. Why it exists: burn's autodiff spends about as long
//! in its unfused Adam and graph bookkeeping as in the matrix products here,
//! and barely uses a second core (see `BENCHMARKS.md`).
//!
//! Layout: the transforms of `x_v` and the gate's `x_v` rows share one
//! `[d_v, 2H]` matrix (columns `0..H` are `W_v`, `H..2H` the gate), and the
//! same for `x_t`, so the forward pass is two GEMMs and the weight gradients
//! two more.

use super::choice::{Batches, Engine, FlatTraining, RunNeeds, TrainEngine, every_view, on_cpu, own_loss};
use crate::cpu::gemm::matmul;
use crate::cpu::kernels::{sigmoid, tanh};
use crate::cpu::loss::loss_and_delta;
use crate::error::{GmuError, Result};
use crate::fusion::network::{FusionHead, GmuLinearHead};
use crate::fusion::{FusionNet, Task};

/// The plain GMU classifier's parameters and sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseGmu {
    /// Width of `x_v`.
    pub d_v: usize,
    /// Width of `x_t`.
    pub d_t: usize,
    /// GMU units H.
    pub hidden: usize,
    /// Outputs C.
    pub classes: usize,
    /// Task: sigmoid + BCE or softmax + CE.
    pub task: Task,
    /// All parameters: `[d_v, 2H]`, `[d_t, 2H]`, `b_v [H]`, `b_t [H]`, `b_z [H]`, `W_o [H, C]`, `b_o [C]`.
    pub params: Vec<f32>,
}

/// Buffers of one step, reused across steps.
#[derive(Default, Debug)]
pub struct DenseWorkspace {
    av: Vec<f32>,
    at: Vec<f32>,
    hv: Vec<f32>,
    ht: Vec<f32>,
    z: Vec<f32>,
    h: Vec<f32>,
    logits: Vec<f32>,
    /// dL/dlogits.
    dlogits: Vec<f32>,
    /// Loss terms of the flat loss.
    terms: Vec<f32>,
    dh: Vec<f32>,
}

impl DenseGmu {
    /// Offsets of the parameter blocks in [`params`](Self::params).
    fn offsets(&self) -> [usize; 8] {
        let h2 = 2 * self.hidden;
        let wv = 0;
        let wt = wv + self.d_v * h2;
        let bv = wt + self.d_t * h2;
        let bt = bv + self.hidden;
        let bz = bt + self.hidden;
        let wo = bz + self.hidden;
        let bo = wo + self.hidden * self.classes;
        [wv, wt, bv, bt, bz, wo, bo, bo + self.classes]
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.offsets()[7]
    }

    /// True when there is no parameter (never, for a valid model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the weights of a two-modality GMU with a linear head (built by
    /// [`FusionSpec`](crate::fusion::FusionSpec) with `head: Linear`).
    pub fn from_net(net: &FusionNet) -> Result<Self> {
        let FusionHead::GmuLinear(head) = &net.head else {
            return Err(GmuError::invalid("engine", "the dense engine trains the GMU with a linear head only"));
        };
        if head.gmu.modalities() != 2 || net.encoders.iter().any(Option::is_some) {
            return Err(GmuError::invalid(
                "engine",
                "the dense engine takes exactly two feature modalities (no CNN encoder)",
            ));
        }
        let data = |t: burn::tensor::Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32 weights");
        let bias = |l: &burn::nn::Linear| -> Result<Vec<f32>> {
            l.bias
                .as_ref()
                .map(|b| b.val().into_data().try_to_vec::<f32>().expect("f32"))
                .ok_or_else(|| GmuError::invalid("engine", "the dense engine needs the bias terms"))
        };
        let [d_v, hidden] = head.gmu.transforms[0].weight.dims();
        let [d_t, _] = head.gmu.transforms[1].weight.dims();
        let [_, classes] = head.output.weight.dims();
        let (w_v, w_t, w_z) = (
            data(head.gmu.transforms[0].weight.val()),
            data(head.gmu.transforms[1].weight.val()),
            data(head.gmu.gate.weight.val()),
        );
        let mut params = Vec::new();
        for (rows, w, z_row0) in [(d_v, &w_v, 0), (d_t, &w_t, d_v)] {
            for r in 0..rows {
                params.extend_from_slice(&w[r * hidden..(r + 1) * hidden]);
                params.extend_from_slice(&w_z[(z_row0 + r) * hidden..(z_row0 + r + 1) * hidden]);
            }
        }
        params.extend(bias(&head.gmu.transforms[0])?);
        params.extend(bias(&head.gmu.transforms[1])?);
        params.extend(bias(&head.gmu.gate)?);
        params.extend(data(head.output.weight.val()));
        params.extend(bias(&head.output)?);
        let task = if net.multilabel { Task::Multilabel } else { Task::Multiclass };
        let model = DenseGmu { d_v, d_t, hidden, classes, task, params };
        debug_assert_eq!(model.params.len(), model.len());
        Ok(model)
    }

    /// Writes these weights into `net` (same shapes as the one read by [`from_net`](Self::from_net)).
    pub fn write_into(&self, mut net: FusionNet) -> FusionNet {
        use burn::module::Param;
        use burn::tensor::{Tensor, TensorData};
        let FusionHead::GmuLinear(GmuLinearHead { gmu, output }) = &mut net.head else {
            panic!("write_into needs the GMU with a linear head it was read from");
        };
        let device = output.weight.val().device();
        let [o_wv, o_wt, o_bv, o_bt, o_bz, o_wo, o_bo, end] = self.offsets();
        let (h, h2) = (self.hidden, 2 * self.hidden);
        let p = &self.params;
        let split = |block: &[f32], rows: usize, first: bool| -> Vec<f32> {
            (0..rows).flat_map(|r| block[r * h2 + if first { 0 } else { h }..][..h].iter().copied()).collect()
        };
        let weight = |values: Vec<f32>, shape: [usize; 2]| {
            Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), &device))
        };
        let bias = |values: &[f32]| {
            Some(Param::from_tensor(Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &device)))
        };
        let (wv_block, wt_block) = (&p[o_wv..o_wt], &p[o_wt..o_bv]);
        gmu.transforms[0].weight = weight(split(wv_block, self.d_v, true), [self.d_v, h]);
        gmu.transforms[1].weight = weight(split(wt_block, self.d_t, true), [self.d_t, h]);
        let mut gate = split(wv_block, self.d_v, false);
        gate.extend(split(wt_block, self.d_t, false));
        gmu.gate.weight = weight(gate, [self.d_v + self.d_t, h]);
        gmu.transforms[0].bias = bias(&p[o_bv..o_bt]);
        gmu.transforms[1].bias = bias(&p[o_bt..o_bz]);
        gmu.gate.bias = bias(&p[o_bz..o_wo]);
        output.weight = weight(p[o_wo..o_bo].to_vec(), [h, self.classes]);
        output.bias = bias(&p[o_bo..end]);
        net
    }

    /// Forward pass of `rows` samples into `ws` (logits in `ws.logits`).
    fn forward(&self, xv: &[f32], xt: &[f32], rows: usize, ws: &mut DenseWorkspace) {
        let (h, h2, c) = (self.hidden, 2 * self.hidden, self.classes);
        let [o_wv, o_wt, o_bv, o_bt, o_bz, o_wo, o_bo, _] = self.offsets();
        let p = &self.params;
        for buf in [&mut ws.av, &mut ws.at] {
            buf.resize(rows * h2, 0.0);
        }
        for buf in [&mut ws.hv, &mut ws.ht, &mut ws.z, &mut ws.h, &mut ws.dh] {
            buf.resize(rows * h, 0.0);
        }
        ws.logits.resize(rows * c, 0.0);
        // SAFETY: every buffer was sized above for its matrix; outputs do not alias inputs.
        unsafe {
            matmul(
                (rows, h2, self.d_v),
                (ws.av.as_mut_ptr(), (h2, 1)),
                false,
                (xv.as_ptr(), (self.d_v, 1)),
                (p[o_wv..].as_ptr(), (h2, 1)),
            );
            matmul(
                (rows, h2, self.d_t),
                (ws.at.as_mut_ptr(), (h2, 1)),
                false,
                (xt.as_ptr(), (self.d_t, 1)),
                (p[o_wt..].as_ptr(), (h2, 1)),
            );
        }
        let (bv, bt, bz) = (&p[o_bv..o_bt], &p[o_bt..o_bz], &p[o_bz..o_wo]);
        for r in 0..rows {
            let (av, at) = (&ws.av[r * h2..(r + 1) * h2], &ws.at[r * h2..(r + 1) * h2]);
            let row = r * h..(r + 1) * h;
            let (hv, ht, z, out) =
                (&mut ws.hv[row.clone()], &mut ws.ht[row.clone()], &mut ws.z[row.clone()], &mut ws.h[row]);
            for j in 0..h {
                hv[j] = tanh(av[j] + bv[j]);
                ht[j] = tanh(at[j] + bt[j]);
                z[j] = sigmoid(av[h + j] + at[h + j] + bz[j]);
                out[j] = ht[j] + z[j] * (hv[j] - ht[j]);
            }
        }
        for r in 0..rows {
            ws.logits[r * c..(r + 1) * c].copy_from_slice(&p[o_bo..o_bo + c]);
        }
        // SAFETY: as above.
        unsafe {
            matmul(
                (rows, c, h),
                (ws.logits.as_mut_ptr(), (c, 1)),
                true,
                (ws.h.as_ptr(), (h, 1)),
                (p[o_wo..].as_ptr(), (c, 1)),
            );
        }
    }

    /// Mean loss of the batch and its gradient in `grad` (same layout as
    /// [`params`](Self::params)): BCE averaged over samples and labels
    /// (multilabel), or cross-entropy averaged over samples. `y` is `[rows, C]` 0/1.
    pub fn loss_and_grad(&self, xv: &[f32], xt: &[f32], y: &[f32], grad: &mut [f32], ws: &mut DenseWorkspace) -> f32 {
        let rows = y.len() / self.classes;
        assert_eq!(xv.len(), rows * self.d_v, "x_v is not [rows, d_v]");
        assert_eq!(xt.len(), rows * self.d_t, "x_t is not [rows, d_t]");
        assert_eq!(grad.len(), self.len(), "gradient buffer of the wrong size");
        self.forward(xv, xt, rows, ws);
        let (h, h2, c) = (self.hidden, 2 * self.hidden, self.classes);
        let [_, o_wt, o_bv, _, _, o_wo, o_bo, end] = self.offsets();
        // dL/dlogits by the engines' one flat loss.
        ws.dlogits.resize(rows * c, 0.0);
        let loss = loss_and_delta(self.task.loss(), &ws.logits, y, c, &mut ws.dlogits, &mut ws.terms);
        let p = &self.params;
        let (grad_wv_wt, rest) = grad.split_at_mut(o_bv);
        let (grad_wv, grad_wt) = grad_wv_wt.split_at_mut(o_wt);
        let (grad_b, grad_head) = rest.split_at_mut(o_wo - o_bv);
        let (grad_wo, grad_bo) = grad_head.split_at_mut(o_bo - o_wo);
        // Head: dW_o = hᵀ dL, db_o = Σ dL, dh = dL W_oᵀ.
        grad_bo.iter_mut().for_each(|g| *g = 0.0);
        for row in ws.dlogits.chunks(c) {
            for (g, d) in grad_bo.iter_mut().zip(row) {
                *g += d;
            }
        }
        // SAFETY: buffers sized in `forward`; gradient blocks are disjoint slices.
        unsafe {
            matmul(
                (h, c, rows),
                (grad_wo.as_mut_ptr(), (c, 1)),
                false,
                (ws.h.as_ptr(), (1, h)),
                (ws.dlogits.as_ptr(), (c, 1)),
            );
            matmul(
                (rows, h, c),
                (ws.dh.as_mut_ptr(), (h, 1)),
                false,
                (ws.dlogits.as_ptr(), (c, 1)),
                (p[o_wo..].as_ptr(), (1, c)),
            );
        }
        // GMU: pre-activation gradients written over av (dA_v | dA_z) and at (dA_t | dA_z).
        grad_b.iter_mut().for_each(|g| *g = 0.0);
        let (gbv, rest) = grad_b.split_at_mut(h);
        let (gbt, gbz) = rest.split_at_mut(h);
        for r in 0..rows {
            let row = r * h..(r + 1) * h;
            let (hv, ht, z, dh) = (&ws.hv[row.clone()], &ws.ht[row.clone()], &ws.z[row.clone()], &ws.dh[row]);
            let (av, at) = (&mut ws.av[r * h2..(r + 1) * h2], &mut ws.at[r * h2..(r + 1) * h2]);
            for j in 0..h {
                let g = dh[j];
                let dz = g * (hv[j] - ht[j]) * z[j] * (1.0 - z[j]);
                let dv = g * z[j] * (1.0 - hv[j] * hv[j]);
                let dt = g * (1.0 - z[j]) * (1.0 - ht[j] * ht[j]);
                av[j] = dv;
                av[h + j] = dz;
                at[j] = dt;
                at[h + j] = dz;
                gbv[j] += dv;
                gbt[j] += dt;
                gbz[j] += dz;
            }
        }
        // SAFETY: as above.
        unsafe {
            matmul(
                (self.d_v, h2, rows),
                (grad_wv.as_mut_ptr(), (h2, 1)),
                false,
                (xv.as_ptr(), (1, self.d_v)),
                (ws.av.as_ptr(), (h2, 1)),
            );
            matmul(
                (self.d_t, h2, rows),
                (grad_wt[..o_bv - o_wt].as_mut_ptr(), (h2, 1)),
                false,
                (xt.as_ptr(), (1, self.d_t)),
                (ws.at.as_ptr(), (h2, 1)),
            );
        }
        debug_assert_eq!(end, grad.len());
        loss
    }

    /// Rescales every weight column (one per output unit, as in burn's
    /// `[d_in, d_out]` layout) whose L2 norm exceeds `limit`; the gate's
    /// columns span both modalities' rows.
    pub fn max_norm(&mut self, limit: f32) {
        let (h, h2, c) = (self.hidden, 2 * self.hidden, self.classes);
        let [o_wv, o_wt, _, _, _, o_wo, _, _] = self.offsets();
        let (d_v, d_t) = (self.d_v, self.d_t);
        let p = &mut self.params;
        // norms[j < H]: columns of W_v; norms[H + j]: the gate's columns, which span both blocks.
        let mut norms = vec![0.0f32; h2];
        for r in 0..d_v {
            for (j, n) in norms.iter_mut().enumerate() {
                *n += p[o_wv + r * h2 + j].powi(2);
            }
        }
        for r in 0..d_t {
            for (j, n) in norms.iter_mut().enumerate().skip(h) {
                *n += p[o_wt + r * h2 + j].powi(2);
            }
        }
        let mut t_norms = vec![0.0f32; h];
        for r in 0..d_t {
            for (j, n) in t_norms.iter_mut().enumerate() {
                *n += p[o_wt + r * h2 + j].powi(2);
            }
        }
        let scale = |n: f32| if n.sqrt() > limit { limit / n.sqrt() } else { 1.0 };
        for r in 0..d_v {
            for j in 0..h2 {
                p[o_wv + r * h2 + j] *= scale(norms[j]);
            }
        }
        for r in 0..d_t {
            for j in 0..h2 {
                p[o_wt + r * h2 + j] *= if j < h { scale(t_norms[j]) } else { scale(norms[j]) };
            }
        }
        let mut o_norms = vec![0.0f32; c];
        for r in 0..h {
            for (k, n) in o_norms.iter_mut().enumerate() {
                *n += p[o_wo + r * c + k].powi(2);
            }
        }
        for r in 0..h {
            for k in 0..c {
                p[o_wo + r * c + k] *= scale(o_norms[k]);
            }
        }
    }
}

/// The dense engine's account of what it trains (see [`TrainEngine`]): the GMU
/// with a linear head and its biases on two feature views, on the CPU, every
/// view present, the task's own loss.
pub struct Dense;

impl TrainEngine for Dense {
    fn engine(&self) -> Engine {
        Engine::Dense
    }

    fn supports(
        &self,
        spec: &crate::fusion::FusionSpec,
        needs: &RunNeeds,
        device: &burn::tensor::Device,
    ) -> std::result::Result<(), String> {
        on_cpu(device)?;
        every_view(needs)?;
        let features =
            spec.d_inputs.len() == 2 && spec.encoders.iter().all(|e| *e == crate::fusion::SubnetSpec::Identity);
        if !(spec.kind == crate::fusion::FusionKind::Gmu && spec.head == crate::fusion::HeadKind::Linear && features) {
            return Err("it trains the GMU with a linear head on two feature views".to_string());
        }
        if !spec.bias {
            return Err("it needs the bias terms".into());
        }
        if spec.gate_hidden > 0 {
            return Err("it trains the paper's linear gate, not a gate with a hidden layer (--gate-hidden)".into());
        }
        own_loss(spec, needs)
    }

    fn start(
        &self,
        _spec: &crate::fusion::FusionSpec,
        model: FusionNet,
        _batches: &dyn Batches,
        adam: &dyn Fn(usize) -> crate::cpu::Adam,
        _loss: Option<crate::cpu::LossKind>,
    ) -> Option<Result<Box<dyn FlatTraining>>> {
        Some(DenseGmu::from_net(&model).map(|dense| {
            let n = dense.len();
            let training = DenseTraining {
                adam: adam(n),
                grad: vec![0.0; n],
                ws: DenseWorkspace::default(),
                template: burn::module::Module::valid(&model),
                dense,
                views: Vec::new(),
                y: Vec::new(),
            };
            Box::new(training) as Box<dyn FlatTraining>
        }))
    }
}

/// The dense engine training one plain GMU classifier.
struct DenseTraining {
    dense: DenseGmu,
    adam: crate::cpu::Adam,
    grad: Vec<f32>,
    ws: DenseWorkspace,
    /// The model on the inference device, which [`FlatTraining::snapshot`] writes the weights into.
    template: FusionNet,
    /// The step's two views (`[rows, d_i]`) and targets `[rows, C]`, reused from step to step.
    views: Vec<Vec<f32>>,
    y: Vec<f32>,
}

/// Both views of a batch and its targets.
fn two_views(batches: &dyn Batches, positions: &[usize]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (views, y) = batches.batch(positions);
    let [xv, xt]: [Vec<f32>; 2] = views.try_into().expect("the dense engine trains two views");
    (xv, xt, y)
}

impl FlatTraining for DenseTraining {
    fn step(
        &mut self,
        batches: &dyn Batches,
        positions: &[usize],
        _present: Option<Vec<f32>>,
        limit: Option<f32>,
    ) -> f32 {
        batches.batch_into(positions, &mut self.views, &mut self.y);
        let [xv, xt] = &self.views[..] else { panic!("the dense engine trains two views") };
        let value = self.dense.loss_and_grad(xv, xt, &self.y, &mut self.grad, &mut self.ws);
        if value.is_finite() {
            self.adam.step(&mut self.dense.params, &self.grad);
            if let Some(limit) = limit {
                self.dense.max_norm(limit);
            }
        }
        value
    }

    fn training_loss(&self, batches: &dyn Batches) -> Option<f32> {
        let all: Vec<usize> = (0..batches.len()).collect();
        let (xv, xt, y) = two_views(batches, &all);
        Some(self.dense.loss_and_grad(&xv, &xt, &y, &mut vec![0.0; self.dense.len()], &mut DenseWorkspace::default()))
    }

    fn flat(&mut self) -> (&mut Vec<f32>, &mut crate::cpu::Adam) {
        (&mut self.dense.params, &mut self.adam)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn snapshot(&self, _inference: &burn::tensor::Device) -> FusionNet {
        self.dense.write_into(self.template.clone())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use burn::module::Module;
    use burn::tensor::Device;

    use super::*;
    use crate::fusion::blocks::MaxNorm;
    use crate::fusion::{FusionKind, FusionSpec, HeadKind};

    pub(crate) fn spec(task: Task) -> FusionSpec {
        let mut s = FusionSpec::new(FusionKind::Gmu, vec![5, 3], 4, 3, task);
        s.head = HeadKind::Linear;
        s
    }

    pub(crate) fn batch(rows: usize, task: Task) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let f = |i: usize, k: f32| (i as f32 * 0.37 + k).sin() * 1.5;
        let xv: Vec<f32> = (0..rows * 5).map(|i| f(i, 0.1)).collect();
        let xt: Vec<f32> = (0..rows * 3).map(|i| f(i, 2.0)).collect();
        let y: Vec<f32> = match task {
            Task::Multilabel => (0..rows * 3).map(|i| ((i * 7) % 3 == 0) as u8 as f32).collect(),
            Task::Multiclass => (0..rows).flat_map(|r| (0..3).map(move |c| (c == r % 3) as u8 as f32)).collect(),
        };
        (xv, xt, y)
    }

    #[test]
    fn weights_round_trip_through_the_burn_module() {
        let net = spec(Task::Multilabel).init(&Device::default()).unwrap();
        let mut dense = DenseGmu::from_net(&net).unwrap();
        dense.params.iter_mut().enumerate().for_each(|(i, p)| *p = i as f32 * 0.01);
        let back = DenseGmu::from_net(&dense.write_into(net)).unwrap();
        assert_eq!(back, dense);
    }

    #[test]
    fn max_norm_matches_the_burn_constraint() {
        let net = spec(Task::Multilabel).init(&Device::default()).unwrap();
        let mut dense = DenseGmu::from_net(&net).unwrap();
        dense.params.iter_mut().enumerate().for_each(|(i, p)| *p = ((i % 7) as f32 - 3.0) * 0.6);
        let net = dense.write_into(net);
        dense.max_norm(1.5);
        let clipped = DenseGmu::from_net(&net.map(&mut MaxNorm { limit: 1.5 })).unwrap();
        for (a, b) in dense.params.iter().zip(&clipped.params) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn adam_steps_lower_the_loss() {
        let net = spec(Task::Multilabel).init(&Device::default()).unwrap();
        let mut dense = DenseGmu::from_net(&net).unwrap();
        let (xv, xt, y) = batch(12, Task::Multilabel);
        let (mut grad, mut ws) = (vec![0.0; dense.len()], DenseWorkspace::default());
        let mut adam = crate::cpu::Adam::with_defaults(dense.len(), 0.05);
        let first = dense.loss_and_grad(&xv, &xt, &y, &mut grad, &mut ws);
        let mut last = first;
        for _ in 0..100 {
            last = dense.loss_and_grad(&xv, &xt, &y, &mut grad, &mut ws);
            adam.step(&mut dense.params, &grad);
        }
        assert!(last < 0.3 * first, "{first} → {last}");
    }

    #[test]
    fn other_models_are_refused() {
        let net =
            FusionSpec::new(FusionKind::Gmu, vec![5, 3], 4, 3, Task::Multilabel).init(&Device::default()).unwrap();
        assert!(DenseGmu::from_net(&net).unwrap_err().to_string().contains("the GMU with a linear head only"));
    }
}
