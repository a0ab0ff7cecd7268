//! An engine for the paper's own models: every fusion of Table 2 that ends
//! in the maxout MLP (`BN → maxout → dropout → BN → maxout → dropout → BN →
//! linear`), on feature views, trained with hand-derived forward and backward
//! passes over flat `f32` buffers. Every matrix product is a call to the
//! `gemm` crate; batch norm, maxout, dropout and the GMU are single passes
//! over row-major buffers, and nothing is allocated per step once the
//! workspace has grown.
//!
//! | fusion | front, before the maxout MLP |
//! |---|---|
//! | `gmu` (two views) | `h = z ⊙ tanh(x_v W_v + b_v) + (1 − z) ⊙ tanh(x_t W_t + b_t)`, `z = σ([x_v x_t] W_z + b_z)` |
//! | `concat` (any number of views; one view is a single-modality model) | the joined views |
//! | `linear-sum` | `Σ_i maxout_i(BN_i(x_i))` |
//!
//! It trains exactly the burn model [`FusionSpec`](crate::fusion::FusionSpec)
//! builds: the parameters are read from that module and written back into it
//! in burn's own order and layout (a `[d_in, d_out]` weight, then its bias;
//! a batch norm's γ, β, running mean and running variance), so saving,
//! prediction and gate reports stay on the one burn model. The conformance
//! tests check the loss, every gradient, the running statistics and a
//! training trajectory against burn's autodiff. Dropout draws its masks from
//! the engine's own seeded generator (burn's come from its backend); a test
//! hands the same masks to burn's layers to check the rest.

use std::ops::Range;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, RunningState};
use burn::nn::BatchNorm;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cpu::kernels::{sigmoid, tanh};
use crate::cpu::loss::loss_and_delta;
use crate::error::{GmuError, Result};
use crate::fusion::blocks::MaxoutMlp;
use crate::fusion::network::FusionHead;
use crate::fusion::{FusionKind, FusionNet, Task};

mod infer;
mod max_norm;
mod ops;

pub use infer::{Inference, Inferred};

use super::choice::{Batches, Engine, FlatTraining, RunNeeds, TrainEngine, on_cpu, own_loss};

use ops::*;

/// The maxout MLP's layers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MlpAt {
    norm_in: NormAt,
    maxout_1: LinearAt,
    norm_1: NormAt,
    maxout_2: LinearAt,
    norm_2: NormAt,
    output: LinearAt,
}

/// What comes before the maxout MLP.
#[derive(Clone, Debug, PartialEq)]
enum Front {
    /// A two-view GMU: the transforms of `x_v` and `x_t`, and the gate on both.
    Gmu { transforms: [LinearAt; 2], gate: LinearAt },
    /// The views joined.
    Concat,
    /// One batch norm and maxout projection per view, summed.
    LinearSum { norms: Vec<NormAt>, projections: Vec<LinearAt> },
}

/// One float tensor of the burn module, in its visiting order: where it lives here.
#[derive(Clone, Debug, PartialEq)]
enum Slot {
    /// A trained parameter: `params[range]`.
    Param(Range<usize>),
    /// A batch norm's running statistic: `running[range]`.
    Running(Range<usize>),
}

/// Hands out places in the flat buffers in burn's visiting order.
#[derive(Default)]
struct Layout {
    params: usize,
    running: usize,
    slots: Vec<Slot>,
}

impl Layout {
    fn param(&mut self, len: usize) -> usize {
        let at = self.params;
        self.params += len;
        self.slots.push(Slot::Param(at..at + len));
        at
    }

    fn running(&mut self, len: usize) -> usize {
        let at = self.running;
        self.running += len;
        self.slots.push(Slot::Running(at..at + len));
        at
    }

    fn linear(&mut self, d_in: usize, d_out: usize) -> LinearAt {
        let weight = self.param(d_in * d_out);
        LinearAt { weight, bias: self.param(d_out), d_in, d_out }
    }

    fn norm(&mut self, d: usize) -> NormAt {
        let (gamma, beta) = (self.param(d), self.param(d));
        NormAt { gamma, beta, mean: self.running(d), var: self.running(d), d }
    }

    fn mlp(&mut self, d_in: usize, hidden: usize, pieces: usize, d_out: usize) -> MlpAt {
        MlpAt {
            norm_in: self.norm(d_in),
            maxout_1: self.linear(d_in, hidden * pieces),
            norm_1: self.norm(hidden),
            maxout_2: self.linear(hidden, hidden * pieces),
            norm_2: self.norm(hidden),
            output: self.linear(hidden, d_out),
        }
    }
}

/// One of the paper's maxout-MLP models on feature views, as flat buffers.
#[derive(Clone, Debug)]
pub struct MaxoutNet {
    /// The fusion: [`FusionKind::Gmu`], [`FusionKind::Concat`] or [`FusionKind::LinearSum`].
    pub kind: FusionKind,
    /// Width of each view.
    pub d_inputs: Vec<usize>,
    /// GMU units, maxout units, linear-sum width.
    pub hidden: usize,
    /// Pieces per maxout unit.
    pub pieces: usize,
    /// Outputs C.
    pub classes: usize,
    /// Sigmoids and BCE, or softmax and cross-entropy.
    pub task: Task,
    /// Dropout probability after each maxout of the MLP.
    pub dropout: f32,
    /// Every trained parameter, in burn's visiting order and layout.
    pub params: Vec<f32>,
    /// The batch norms' running means and variances, in the same order.
    pub running: Vec<f32>,
    /// The batch norms' momentum and ε (burn's defaults: 0.1 and 1e-5).
    momentum: f32,
    epsilon: f32,
    front: Front,
    mlp: MlpAt,
    slots: Vec<Slot>,
    /// Draws the dropout masks.
    rng: StdRng,
}

/// Buffers of one step, reused across steps.
#[derive(Default, Debug)]
pub struct MaxoutWorkspace {
    /// The MLP's input: the fused vector, the joined views or the sum, `[rows, D]`.
    fused: Vec<f32>,
    /// GMU: `h_v`, `h_t`, `z`, `[rows, H]` each.
    hv: Vec<f32>,
    ht: Vec<f32>,
    z: Vec<f32>,
    /// Linear sum: each view's batch norm and maxout.
    view_norms: Vec<NormCache>,
    view_maxouts: Vec<MaxoutCache>,
    norm_in: NormCache,
    maxout_1: MaxoutCache,
    norm_1: NormCache,
    maxout_2: MaxoutCache,
    norm_2: NormCache,
    /// The dropout masks after each maxout of the MLP: `0` or `1 / (1 − p)`, `[rows, H]`.
    pub(crate) masks: [Vec<f32>; 2],
    /// Which views each row has, `[rows, K]` of 0/1 (`None`: all of them); see [`MaxoutWorkspace::set_present`].
    present: Option<Vec<f32>>,
    /// GMU: the rows with one view and which view (0 or 1) they keep, found by the forward pass.
    one_view: Vec<(usize, usize)>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    terms: Vec<f32>,
    /// Gradient scratch: `[rows, max width]` twice.
    da: Vec<f32>,
    db: Vec<f32>,
    /// GMU: gradients at the pre-activations of `h_v`, `h_t`, `z`.
    dav: Vec<f32>,
    dat: Vec<f32>,
    daz: Vec<f32>,
}

impl MaxoutWorkspace {
    /// Sets which views each row of the next batch `views` has (`[rows, K]`,
    /// 1 present, 0 missing; `None`: every view), with burn's rule for a
    /// missing view ([`FusionNet::forward_present`]): its input is zero (its
    /// rows of `views` are zeroed here), and a GMU gives the present view's
    /// gate all the weight, so `h = h_v` or `h = h_t` on that row.
    pub fn set_present(&mut self, present: Option<Vec<f32>>, views: &mut [Vec<f32>]) {
        if let Some(p) = &present {
            let k = views.len();
            let rows = p.len() / k;
            for (i, view) in views.iter_mut().enumerate() {
                let d = view.len() / rows;
                for (r, row) in view.chunks_exact_mut(d).enumerate() {
                    if p[r * k + i] == 0.0 {
                        row.fill(0.0);
                    }
                }
            }
        }
        self.present = present;
    }
}

/// Reads every float tensor of a module, in visiting order.
struct Collect(Vec<Vec<f32>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().into_data().try_to_vec::<f32>().expect("f32 values"));
    }
}

/// Writes the trained parameters back, in visiting order; running statistics are left to [`MaxoutNet::write_into`].
struct Write<'a> {
    net: &'a MaxoutNet,
    next: usize,
}

impl ModuleMapper for Write<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let slot = &self.net.slots[self.next];
        self.next += 1;
        match slot {
            Slot::Param(range) => {
                let values = self.net.params[range.clone()].to_vec();
                param.map(|t| {
                    let (shape, device, require_grad) = (t.shape(), t.device(), t.is_require_grad());
                    let fresh = Tensor::from_data(TensorData::new(values, shape), &device);
                    if require_grad { fresh.require_grad() } else { fresh }
                })
            }
            Slot::Running(_) => param,
        }
    }
}

/// The batch norms of a maxout MLP, in visiting order.
fn mlp_norms(mlp: &mut MaxoutMlp) -> [&mut BatchNorm; 3] {
    [&mut mlp.norm_in, &mut mlp.norm_1, &mut mlp.norm_2]
}

impl MaxoutNet {
    /// Why this engine cannot train `net`, if it cannot.
    fn check(net: &FusionNet) -> std::result::Result<(), String> {
        if net.encoders.iter().any(Option::is_some) || net.texts.iter().any(Option::is_some) {
            return Err("it trains on feature views, without a CNN or LSTM encoder".into());
        }
        match &net.head {
            FusionHead::Gmu(head) if head.gmu.gate_hidden.is_some() => {
                Err("it trains the paper's linear gate, not a gate with a hidden layer".into())
            }
            FusionHead::Gmu(head) if head.gmu.modalities() == 2 => Ok(()),
            FusionHead::Gmu(_) => Err("it trains the GMU on two views".into()),
            FusionHead::Concat(_) | FusionHead::LinearSum(_) => Ok(()),
            _ => Err("it trains the GMU, concatenation and linear sum with the maxout MLP".into()),
        }
    }

    /// Reads the weights and running statistics of a maxout-MLP model (GMU
    /// on two views, concatenation or linear sum, no CNN or LSTM encoder);
    /// `seed` seeds the dropout masks.
    pub fn from_net(net: &FusionNet, seed: u64) -> Result<Self> {
        Self::check(net)
            .map_err(|why| GmuError::invalid("engine", format!("the maxout engine cannot train this model: {why}")))?;
        let mut layout = Layout::default();
        let dims = |w: &Param<Tensor<2>>| w.val().dims();
        let (kind, d_inputs, front, mlp) = match &net.head {
            FusionHead::Gmu(head) => {
                let ([d_v, hidden], [d_t, _]) =
                    (dims(&head.gmu.transforms[0].weight), dims(&head.gmu.transforms[1].weight));
                let transforms = [layout.linear(d_v, hidden), layout.linear(d_t, hidden)];
                let gate = layout.linear(d_v + d_t, hidden);
                (FusionKind::Gmu, vec![d_v, d_t], Front::Gmu { transforms, gate }, &head.mlp)
            }
            FusionHead::Concat(mlp) => {
                // The views' widths are not in the module, only their sum; the caller's spec has them.
                (FusionKind::Concat, vec![dims(&mlp.maxout_1.linear.weight)[0]], Front::Concat, mlp)
            }
            FusionHead::LinearSum(head) => {
                let d_inputs: Vec<usize> = head.norms.iter().map(|n| n.gamma.val().dims()[0]).collect();
                let norms = d_inputs.iter().map(|&d| layout.norm(d)).collect();
                let projections = head.projections.iter().map(|p| {
                    let [d_in, d_out] = dims(&p.linear.weight);
                    layout.linear(d_in, d_out)
                });
                let projections = projections.collect();
                (FusionKind::LinearSum, d_inputs, Front::LinearSum { norms, projections }, &head.mlp)
            }
            _ => unreachable!("checked above"),
        };
        let [d_in, width] = dims(&mlp.maxout_1.linear.weight);
        let pieces = mlp.maxout_1.pieces;
        let hidden = width / pieces;
        let [_, classes] = dims(&mlp.output.weight);
        let mlp_at = layout.mlp(d_in, hidden, pieces, classes);
        let has_bias = [&mlp.maxout_1.linear, &mlp.maxout_2.linear, &mlp.output].iter().all(|l| l.bias.is_some());
        if !has_bias || mlp.maxout_2.pieces != pieces || pieces > u8::MAX as usize {
            return Err(GmuError::invalid(
                "engine",
                "the maxout engine needs the maxout MLP's biases and the same pieces in both layers",
            ));
        }
        let mut collect = Collect(Vec::new());
        net.head.visit(&mut collect);
        let tensors = collect.0;
        let (mut params, mut running) = (vec![0.0; layout.params], vec![0.0; layout.running]);
        if tensors.len() != layout.slots.len() {
            return Err(GmuError::invalid(
                "engine",
                format!("the maxout engine expected {} tensors, the model has {}", layout.slots.len(), tensors.len()),
            ));
        }
        for (values, slot) in tensors.iter().zip(&layout.slots) {
            let (buffer, range) = match slot {
                Slot::Param(r) => (&mut params, r),
                Slot::Running(r) => (&mut running, r),
            };
            if values.len() != range.len() {
                return Err(GmuError::invalid("engine", "the maxout engine read a tensor of an unexpected size"));
            }
            buffer[range.clone()].copy_from_slice(values);
        }
        let norm = &mlp.norm_in;
        Ok(MaxoutNet {
            kind,
            d_inputs,
            hidden,
            pieces,
            classes,
            task: if net.multilabel { Task::Multilabel } else { Task::Multiclass },
            dropout: mlp.dropout.prob as f32,
            params,
            running,
            momentum: norm.momentum as f32,
            epsilon: norm.epsilon as f32,
            front,
            mlp: mlp_at,
            slots: layout.slots,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// Sets the widths of the views of a concatenation (the module holds only their sum).
    pub fn with_views(mut self, d_inputs: &[usize]) -> Self {
        if self.kind == FusionKind::Concat && d_inputs.iter().sum::<usize>() == self.d_inputs.iter().sum::<usize>() {
            self.d_inputs = d_inputs.to_vec();
        }
        self
    }

    /// Reseeds the dropout masks (the trainer does it at every epoch).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Writes the weights and running statistics into `net` (the module they
    /// were read from, or a clone of it). The running statistics get fresh
    /// state, so clones of `net` taken before keep their own.
    pub fn write_into(&self, mut net: FusionNet) -> FusionNet {
        let stats = |at: &NormAt, bn: &mut BatchNorm| {
            let device = bn.gamma.val().device();
            let tensor =
                |r: Range<usize>| Tensor::<1>::from_data(TensorData::new(self.running[r].to_vec(), [at.d]), &device);
            bn.running_mean = RunningState::new(tensor(at.mean..at.mean + at.d));
            bn.running_var = RunningState::new(tensor(at.var..at.var + at.d));
        };
        let mlp = match (&mut net.head, &self.front) {
            (FusionHead::Gmu(head), _) => &mut head.mlp,
            (FusionHead::Concat(mlp), _) => mlp,
            (FusionHead::LinearSum(head), Front::LinearSum { norms, .. }) => {
                for (bn, at) in head.norms.iter_mut().zip(norms) {
                    stats(at, bn);
                }
                &mut head.mlp
            }
            _ => panic!("write_into needs the model the weights were read from"),
        };
        let m = &self.mlp;
        for (bn, at) in mlp_norms(mlp).into_iter().zip([&m.norm_in, &m.norm_1, &m.norm_2]) {
            stats(at, bn);
        }
        net.head = net.head.map(&mut Write { net: self, next: 0 });
        net
    }

    /// Number of trained parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when there is no parameter (never, for a valid model).
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Draws the dropout masks of a batch of `rows` into `ws`.
    pub fn draw_masks(&mut self, rows: usize, ws: &mut MaxoutWorkspace) {
        let p = self.dropout;
        let keep = 1.0 - p;
        for mask in &mut ws.masks {
            mask.resize(rows * self.hidden, 1.0);
            if p > 0.0 {
                let scale = 1.0 / keep;
                for m in mask.iter_mut() {
                    *m = if self.rng.random::<f32>() < keep { scale } else { 0.0 };
                }
            } else {
                mask.fill(1.0);
            }
        }
    }

    /// One training step's loss and gradient: draws the dropout masks, then
    /// [`loss_and_grad_masked`](Self::loss_and_grad_masked).
    pub fn loss_and_grad(&mut self, views: &[&[f32]], y: &[f32], grad: &mut [f32], ws: &mut MaxoutWorkspace) -> f32 {
        self.draw_masks(y.len() / self.classes, ws);
        self.loss_and_grad_masked(views, y, grad, ws)
    }

    /// The mean loss of a batch in training mode (batch statistics, the
    /// dropout masks in `ws`) and its gradient in `grad` (the layout of
    /// [`params`](Self::params)); updates the running statistics as burn's
    /// batch norm does.
    ///
    /// # Shapes
    /// - `views[i]`: `[rows, d_i]`, row-major
    /// - `y`: `[rows, C]`, 0/1 (one-hot rows for a single-label task)
    pub fn loss_and_grad_masked(
        &mut self,
        views: &[&[f32]],
        y: &[f32],
        grad: &mut [f32],
        ws: &mut MaxoutWorkspace,
    ) -> f32 {
        let rows = y.len() / self.classes;
        assert_eq!(views.len(), self.d_inputs.len(), "one buffer per view");
        for (x, &d) in views.iter().zip(&self.d_inputs) {
            assert_eq!(x.len(), rows * d, "a view is not [rows, d]");
        }
        assert_eq!(grad.len(), self.len(), "gradient buffer of the wrong size");
        assert_eq!(ws.masks[0].len(), rows * self.hidden, "dropout masks of the wrong size");
        self.forward(views, rows, ws);
        let c = self.classes;
        ws.dlogits.resize(rows * c, 0.0);
        let loss = loss_and_delta(self.task.loss(), &ws.logits, y, c, &mut ws.dlogits, &mut ws.terms);
        self.backward(views, rows, grad, ws);
        loss
    }

    fn forward(&mut self, views: &[&[f32]], rows: usize, ws: &mut MaxoutWorkspace) {
        let (h, p) = (self.hidden, self.pieces);
        let d_mlp = self.mlp.norm_in.d;
        ws.fused.resize(rows * d_mlp, 0.0);
        let params = &self.params;
        match &self.front {
            Front::Gmu { transforms, gate } => {
                for buf in [&mut ws.hv, &mut ws.ht, &mut ws.z] {
                    buf.resize(rows * h, 0.0);
                }
                let (xv, xt) = (views[0], views[1]);
                linear(params, &transforms[0], xv, rows, &mut ws.hv, false);
                linear(params, &transforms[1], xt, rows, &mut ws.ht, false);
                let d_v = transforms[0].d_in;
                let rows_v = LinearAt { d_in: d_v, ..*gate };
                let rows_t = LinearAt { weight: gate.weight + d_v * h, d_in: gate.d_in - d_v, ..*gate };
                linear(params, &rows_v, xv, rows, &mut ws.z, false);
                linear(params, &rows_t, xt, rows, &mut ws.z, true);
                for (((hv, ht), z), out) in ws.hv.iter_mut().zip(&mut ws.ht).zip(&mut ws.z).zip(&mut ws.fused) {
                    *hv = tanh(*hv);
                    *ht = tanh(*ht);
                    *z = sigmoid(*z);
                    *out = *ht + *z * (*hv - *ht);
                }
                // A row with one view: that view's h alone.
                ws.one_view = one_view_rows(ws.present.as_deref(), rows);
                for &(r, kept) in &ws.one_view {
                    let row = r * h..(r + 1) * h;
                    let h_kept = if kept == 0 { &ws.hv[row.clone()] } else { &ws.ht[row.clone()] };
                    ws.fused[row].copy_from_slice(h_kept);
                }
            }
            Front::Concat => {
                let mut at = 0;
                for (x, &d) in views.iter().zip(&self.d_inputs) {
                    for r in 0..rows {
                        ws.fused[r * d_mlp + at..r * d_mlp + at + d].copy_from_slice(&x[r * d..(r + 1) * d]);
                    }
                    at += d;
                }
            }
            Front::LinearSum { norms, projections } => {
                ws.view_norms.resize_with(views.len(), NormCache::default);
                ws.view_maxouts.resize_with(views.len(), MaxoutCache::default);
                for (i, x) in views.iter().enumerate() {
                    norm_forward(
                        params,
                        &mut self.running,
                        &norms[i],
                        (self.momentum, self.epsilon),
                        x,
                        rows,
                        &mut ws.view_norms[i],
                    );
                    maxout_forward(
                        params,
                        &projections[i],
                        p,
                        &ws.view_norms[i].out,
                        rows,
                        None,
                        &mut ws.view_maxouts[i],
                    );
                    if i == 0 {
                        ws.fused.copy_from_slice(&ws.view_maxouts[0].out);
                    } else {
                        ws.fused.iter_mut().zip(&ws.view_maxouts[i].out).for_each(|(s, m)| *s += m);
                    }
                }
            }
        }
        let m = self.mlp;
        let stats = (self.momentum, self.epsilon);
        norm_forward(params, &mut self.running, &m.norm_in, stats, &ws.fused, rows, &mut ws.norm_in);
        maxout_forward(params, &m.maxout_1, p, &ws.norm_in.out, rows, Some(&ws.masks[0]), &mut ws.maxout_1);
        norm_forward(params, &mut self.running, &m.norm_1, stats, &ws.maxout_1.out, rows, &mut ws.norm_1);
        maxout_forward(params, &m.maxout_2, p, &ws.norm_1.out, rows, Some(&ws.masks[1]), &mut ws.maxout_2);
        norm_forward(params, &mut self.running, &m.norm_2, stats, &ws.maxout_2.out, rows, &mut ws.norm_2);
        ws.logits.resize(rows * self.classes, 0.0);
        linear(params, &m.output, &ws.norm_2.out, rows, &mut ws.logits, false);
    }

    fn backward(&self, views: &[&[f32]], rows: usize, grad: &mut [f32], ws: &mut MaxoutWorkspace) {
        let (h, p) = (self.hidden, self.pieces);
        let params = &self.params;
        let m = &self.mlp;
        let widest = m.norm_in.d.max(h).max(self.d_inputs.iter().copied().max().unwrap_or(0));
        ws.da.resize(rows * widest, 0.0);
        ws.db.resize(rows * widest, 0.0);
        // Output layer: dW = y₂ᵀ δ, db = Σ δ, dy₂ = δ Wᵀ.
        linear_backward(params, grad, &m.output, &ws.norm_2.out, &ws.dlogits, rows, Some(&mut ws.da[..rows * h]));
        norm_backward(params, grad, &m.norm_2, &ws.norm_2, &ws.da[..rows * h], rows, &mut ws.db[..rows * h]);
        mask(&mut ws.db[..rows * h], &ws.masks[1]);
        maxout_backward(
            params,
            grad,
            MaxoutAt { linear: &m.maxout_2, pieces: p },
            &ws.norm_1.out,
            Back { dout: &ws.db[..rows * h], rows, cache: &mut ws.maxout_2 },
            Some(&mut ws.da[..rows * h]),
        );
        norm_backward(params, grad, &m.norm_1, &ws.norm_1, &ws.da[..rows * h], rows, &mut ws.db[..rows * h]);
        mask(&mut ws.db[..rows * h], &ws.masks[0]);
        let d = m.norm_in.d;
        if matches!(self.front, Front::Concat) {
            // The input is data: nothing before the MLP needs its gradient.
            norm_maxout_backward(
                params,
                grad,
                &m.norm_in,
                &ws.norm_in,
                MaxoutAt { linear: &m.maxout_1, pieces: p },
                Back { dout: &ws.db[..rows * h], rows, cache: &mut ws.maxout_1 },
            );
            return;
        }
        maxout_backward(
            params,
            grad,
            MaxoutAt { linear: &m.maxout_1, pieces: p },
            &ws.norm_in.out,
            Back { dout: &ws.db[..rows * h], rows, cache: &mut ws.maxout_1 },
            Some(&mut ws.da[..rows * d]),
        );
        // The fused vector's gradient, which the GMU or the linear sum needs.
        norm_backward(params, grad, &m.norm_in, &ws.norm_in, &ws.da[..rows * d], rows, &mut ws.db[..rows * d]);
        let dfused = &ws.db[..rows * d];
        match &self.front {
            Front::Concat => {}
            Front::Gmu { transforms, gate } => {
                for buf in [&mut ws.dav, &mut ws.dat, &mut ws.daz] {
                    buf.resize(rows * h, 0.0);
                }
                let saved = dfused.iter().zip(&ws.hv).zip(&ws.ht).zip(&ws.z);
                let grads = ws.daz.iter_mut().zip(&mut ws.dav).zip(&mut ws.dat);
                for ((((&g, &hv), &ht), &z), ((daz, dav), dat)) in saved.zip(grads) {
                    *daz = g * (hv - ht) * z * (1.0 - z);
                    *dav = g * z * (1.0 - hv * hv);
                    *dat = g * (1.0 - z) * (1.0 - ht * ht);
                }
                for &(r, kept) in &ws.one_view {
                    let row = r * h..(r + 1) * h;
                    ws.daz[row.clone()].fill(0.0);
                    let (d_kept, d_gone, h_kept) =
                        if kept == 0 { (&mut ws.dav, &mut ws.dat, &ws.hv) } else { (&mut ws.dat, &mut ws.dav, &ws.ht) };
                    d_gone[row.clone()].fill(0.0);
                    for ((d, g), hk) in d_kept[row.clone()].iter_mut().zip(&dfused[row.clone()]).zip(&h_kept[row]) {
                        *d = g * (1.0 - hk * hk);
                    }
                }
                let (xv, xt) = (views[0], views[1]);
                linear_backward(params, grad, &transforms[0], xv, &ws.dav, rows, None);
                linear_backward(params, grad, &transforms[1], xt, &ws.dat, rows, None);
                // The gate's rows for x_v, then those for x_t; one bias.
                let d_v = transforms[0].d_in;
                weight_grad(grad, gate.weight, xv, d_v, &ws.daz, h, rows);
                weight_grad(grad, gate.weight + d_v * h, xt, gate.d_in - d_v, &ws.daz, h, rows);
                bias_grad(&mut grad[gate.bias..gate.bias + h], &ws.daz, rows);
            }
            Front::LinearSum { norms, projections } => {
                for (i, (norm, projection)) in norms.iter().zip(projections).enumerate() {
                    norm_maxout_backward(
                        params,
                        grad,
                        norm,
                        &ws.view_norms[i],
                        MaxoutAt { linear: projection, pieces: p },
                        Back { dout: dfused, rows, cache: &mut ws.view_maxouts[i] },
                    );
                }
            }
        }
    }
}

/// The maxout engine's account of what it trains (see [`TrainEngine`]): the
/// paper's GMU (two views), concatenation (and so single views and the members
/// of `avg-probs`) and linear sum with the maxout MLP, on feature views, on the
/// CPU, with burn's missing-view rule, the task's own loss.
pub struct Maxout;

impl TrainEngine for Maxout {
    fn engine(&self) -> Engine {
        Engine::Maxout
    }

    fn supports(
        &self,
        spec: &crate::fusion::FusionSpec,
        needs: &RunNeeds,
        device: &burn::tensor::Device,
    ) -> std::result::Result<(), String> {
        on_cpu(device)?;
        let front = match spec.kind {
            FusionKind::Gmu => spec.d_inputs.len() == 2,
            FusionKind::Concat | FusionKind::AvgProbs | FusionKind::LinearSum => true,
            FusionKind::Moe | FusionKind::Custom => false,
        };
        let identity = spec.encoders.iter().all(|e| *e == crate::fusion::SubnetSpec::Identity);
        if !(front && spec.head == crate::fusion::HeadKind::Maxout && identity) {
            return Err(
                "it trains the GMU (two views), concatenation and linear sum with the maxout MLP, on feature views"
                    .to_string(),
            );
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
        batches: &dyn Batches,
        adam: &dyn Fn(usize) -> crate::cpu::Adam,
        _loss: Option<crate::cpu::LossKind>,
    ) -> Option<Result<Box<dyn FlatTraining>>> {
        Some(MaxoutNet::from_net(&model, 0).map(|net| {
            let net = net.with_views(&batches.widths());
            let n = net.len();
            let training = MaxoutTraining {
                adam: adam(n),
                grad: vec![0.0; n],
                ws: MaxoutWorkspace::default(),
                template: burn::module::Module::valid(&model),
                net,
                views: Vec::new(),
                y: Vec::new(),
            };
            Box::new(training) as Box<dyn FlatTraining>
        }))
    }
}

/// The maxout engine training one of the paper's models.
struct MaxoutTraining {
    net: MaxoutNet,
    adam: crate::cpu::Adam,
    grad: Vec<f32>,
    ws: MaxoutWorkspace,
    /// The model on the inference device, which [`FlatTraining::snapshot`] writes the weights into.
    template: FusionNet,
    /// The step's batch (`[rows, d_i]` per view) and targets `[rows, C]`, reused from step to step.
    views: Vec<Vec<f32>>,
    y: Vec<f32>,
}

impl FlatTraining for MaxoutTraining {
    fn step(
        &mut self,
        batches: &dyn Batches,
        positions: &[usize],
        present: Option<Vec<f32>>,
        limit: Option<f32>,
    ) -> f32 {
        batches.batch_into(positions, &mut self.views, &mut self.y);
        self.ws.set_present(present, &mut self.views);
        let views: Vec<&[f32]> = self.views.iter().map(Vec::as_slice).collect();
        let value = self.net.loss_and_grad(&views, &self.y, &mut self.grad, &mut self.ws);
        if value.is_finite() {
            self.net.adam_step(&mut self.adam, &self.grad, limit);
        }
        value
    }

    fn training_loss(&self, _: &dyn Batches) -> Option<f32> {
        // In evaluation mode (running statistics, no dropout) on burn, from the snapshot.
        None
    }

    fn flat(&mut self) -> (&mut Vec<f32>, &mut crate::cpu::Adam) {
        (&mut self.net.params, &mut self.adam)
    }

    fn running(&mut self) -> Option<&mut Vec<f32>> {
        Some(&mut self.net.running)
    }

    fn reseed(&mut self, seed: u64) {
        self.net.reseed(seed);
    }

    fn snapshot(&self, _inference: &burn::tensor::Device) -> FusionNet {
        self.net.write_into(self.template.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The weights under training of a maxout-engine run, packed for the flat inference pass
/// straight from the engine's buffers (no round trip through the snapshot's tensors); `None`
/// for another engine's training.
pub fn training_inference(training: &dyn FlatTraining) -> Option<Inference> {
    training.as_any().downcast_ref::<MaxoutTraining>().map(|t| Inference::new(t.net.clone()))
}
