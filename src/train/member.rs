//! The training loops of one member network: the two schedules of
//! [`Schedule`] over one [`Trainer`], which runs a step on the engine
//! [`Engine::pick`] chose. Every engine reads its initial weights from the
//! burn model (or, for the steps schedule of a synthetic-experiment model,
//! from the same Glorot-uniform draw) and gives a burn model back.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::checkpoint::{AbortHook, Checkpoint, State};
use super::noise;
use super::rows::{gather, gather_into};
use super::{EpochTiming, evaluate_nets};
use crate::config::{Keep, Schedule, TrainingConfig};
use crate::cpu::{Adam, LossKind};
use crate::data::{MultiviewData, Scaler, Targets};
use crate::engine::cnn::CnnFronts;
use crate::engine::{Batches as EngineBatches, ENGINES, Engine, FlatTraining};
use crate::error::{GmuError, Result};
use crate::fusion::synthetic::ModelSpec;
use crate::fusion::{FusionNet, FusionSpec, MaxNorm, Scores};
use crate::predict::MemberRef;
use crate::store::EpochLog;

/// What one member trains on: its views, their scalers, the training rows
/// and which of them lack a view.
pub(super) struct Problem<'a> {
    pub data: &'a MultiviewData,
    pub modalities: &'a [usize],
    pub scalers: &'a [Scaler],
    /// Training rows (data indices); the loops address them by position.
    pub train: &'a [usize],
    /// Dev rows for early stopping (may be empty for the steps schedule).
    pub dev: &'a [usize],
    /// Per view of `modalities`, per data row: missing.
    pub missing: &'a [Vec<bool>],
    /// Some training row lacks a view.
    pub any_missing: bool,
    /// Corrupted views (`--view-noise`): what the draws depend on, `None` when off.
    pub noise: Option<noise::Scope<'a>>,
    /// This epoch's corruption of each data row ([`noise::draw`]; empty outside an epoch's steps).
    pub corruption: std::sync::RwLock<Vec<Option<noise::Corruption>>>,
}

impl Problem<'_> {
    fn rows(&self, positions: &[usize]) -> Vec<usize> {
        positions.iter().map(|&p| self.train[p]).collect()
    }

    /// Each view of `rows`, scaled, a missing row zero, corrupted where this epoch's draws say.
    fn inputs(&self, rows: &[usize]) -> Vec<Vec<f32>> {
        let mut views = Vec::new();
        self.inputs_into(rows, &mut views);
        views
    }

    /// [`inputs`](Self::inputs) into `views`, one buffer per view, reused.
    fn inputs_into(&self, rows: &[usize], views: &mut Vec<Vec<f32>>) {
        let plan = self.corruption.read().unwrap_or_else(|p| p.into_inner());
        views.resize_with(self.modalities.len(), Vec::new);
        for ((&v, s), x) in self.modalities.iter().zip(self.scalers).zip(views.iter_mut()) {
            gather_into(self.data, v, rows, s, x);
            noise::corrupt(&plan, v, rows, x, s, |r| gather(self.data, v, &[r], s));
        }
    }

    /// Draws the corruption of `epoch` (nothing when view noise is off).
    fn corrupt_epoch(&self, epoch: usize) {
        let plan = match &self.noise {
            Some(scope) => {
                // Apart from the epoch's other randomness (batch order, dropout), which depends on the member.
                let seed = epoch_seed(scope.seed ^ 0x6e6f_6973_655f_7669, epoch);
                noise::draw(scope, seed, self.data.len(), |r, v| !self.data.views[v].row(r).iter().all(|x| x.is_nan()))
            }
            None => Vec::new(),
        };
        *self.corruption.write().unwrap_or_else(|p| p.into_inner()) = plan;
    }

    /// The gate-supervision targets of `rows` (data rows), two `[rows · K]`
    /// 0/1 masks: the views this epoch's draws corrupt (with `noisy_only`,
    /// under Gaussian noise only), and the views present (`present`, `[rows · K]`,
    /// `None`: all) and not corrupted in any way.
    fn gate_targets(&self, rows: &[usize], noisy_only: bool, present: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
        let k = self.modalities.len();
        let plan = self.corruption.read().unwrap_or_else(|p| p.into_inner());
        let mut corrupted = vec![0.0; rows.len() * k];
        let mut clean = present.map_or_else(|| vec![1.0; rows.len() * k], <[f32]>::to_vec);
        for (i, &r) in rows.iter().enumerate() {
            let Some(c) = plan.get(r).copied().flatten() else { continue };
            let Some(j) = self.modalities.iter().position(|&v| v == c.view) else { continue };
            clean[i * k + j] = 0.0;
            if !noisy_only || matches!(c.how, noise::How::Gaussian { .. }) {
                corrupted[i * k + j] = 1.0;
            }
        }
        (corrupted, clean)
    }

    /// The `[rows, K]` presence mask of the training rows at `positions`,
    /// `None` when no training row lacks a view.
    fn presence(&self, positions: &[usize]) -> Option<Vec<f32>> {
        self.any_missing.then(|| {
            positions
                .iter()
                .flat_map(|&p| self.missing.iter().map(move |m| if m[self.train[p]] { 0.0 } else { 1.0 }))
                .collect()
        })
    }
}

impl EngineBatches for Problem<'_> {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn widths(&self) -> Vec<usize> {
        self.modalities.iter().map(|&v| self.data.views[v].dim).collect()
    }

    fn batch_into(&self, positions: &[usize], views: &mut Vec<Vec<f32>>, y: &mut Vec<f32>) {
        let rows = self.rows(positions);
        self.inputs_into(&rows, views);
        y.clear();
        y.extend(rows.iter().flat_map(|&r| self.data.targets.indicator_row(r)).map(f32::from));
    }

    fn classes(&self) -> Option<Vec<u8>> {
        match &self.data.targets {
            Targets::Classes { y, .. } => Some(self.train.iter().map(|&r| y[r] as u8).collect()),
            Targets::Labels { .. } => None,
        }
    }
}

/// burn's Adam with the config's settings.
fn burn_adam(config: &TrainingConfig) -> burn::optim::ModuleOptimizer {
    let o = &config.optimizer;
    AdamConfig::new().with_beta_1(o.beta_1).with_beta_2(o.beta_2).with_epsilon(o.epsilon).init()
}

/// The hand-written engines' flat Adam over `n` parameters with the config's settings.
fn flat_adam(n: usize, config: &TrainingConfig) -> Adam {
    let o = &config.optimizer;
    Adam::new(n, o.lr as f32, o.beta_1, o.beta_2, o.epsilon)
}

/// An error unless every weight of `net` is finite (`at` says when it was checked).
fn check_weights(spec: &FusionSpec, net: &FusionNet, at: &str) -> Result<()> {
    match crate::store::first_non_finite(net) {
        Some(name) => Err(GmuError::NonFinite(format!(
            "{} weight {name} is NaN or infinite after {at}; lower the learning rate (--lr) or check the data",
            spec.kind
        ))),
        None => Ok(()),
    }
}

/// One member's weights under training, on one engine.
#[allow(clippy::large_enum_variant)]
enum Trainer {
    /// burn's autodiff on any model; with `cnn`, the image CNNs on the `cnn` engine.
    Burn { model: FusionNet, optim: Box<burn::optim::ModuleOptimizer>, cnn: Option<CnnFronts> },
    /// A hand-written engine's own steps over flat weights ([`TrainEngine::start`]).
    Flat(Box<dyn FlatTraining>),
}

impl Trainer {
    /// A trainer of `spec` on `engine`, starting from the weights of `model` (on the autodiff device).
    fn new(
        engine: Engine,
        spec: &FusionSpec,
        model: FusionNet,
        problem: &Problem<'_>,
        config: &TrainingConfig,
    ) -> Result<Self> {
        Ok(match engine {
            Engine::Cnn => {
                Trainer::Burn { cnn: Some(CnnFronts::new(&model)), model, optim: Box::new(burn_adam(config)) }
            }
            Engine::Burn | Engine::Auto => Trainer::Burn { model, optim: Box::new(burn_adam(config)), cnn: None },
            own => {
                let engine =
                    ENGINES.iter().find(|e| e.engine() == own).expect("every hand-written engine is registered");
                let adam = |n: usize| flat_adam(n, config);
                let started = engine.start(spec, model, problem, &adam, config.loss);
                Trainer::Flat(started.expect("a hand-written engine runs its own steps")?)
            }
        })
    }

    /// One Adam step on the training rows at `positions`, with the
    /// `[rows, K]` presence mask `present`; returns the batch loss.
    /// A non-finite loss leaves the weights as they were.
    fn step(
        &mut self,
        problem: &Problem<'_>,
        positions: &[usize],
        present: Option<Vec<f32>>,
        config: &TrainingConfig,
        device: &Device,
    ) -> f32 {
        let max_norm = config.model.max_norm;
        match self {
            Trainer::Burn { model, optim, cnn } => {
                let rows = problem.rows(positions);
                let loss = burn_loss(model, problem, &rows, present, config, device, cnn.as_mut());
                let value: f32 = loss.clone().into_scalar();
                if value.is_finite() {
                    let grads = match cnn {
                        Some(fronts) => fronts.gradients(model, loss.backward()),
                        None => GradientsParams::from_grads(loss.backward(), &*model),
                    };
                    let mut next = optim.step(config.optimizer.lr, model.clone(), grads);
                    if let Some(limit) = max_norm {
                        next = next.map(&mut MaxNorm { limit });
                    }
                    *model = next;
                }
                value
            }
            Trainer::Flat(training) => training.step(problem, positions, present, max_norm),
        }
    }

    /// The mean loss over every training row (evaluation mode: no dropout).
    fn training_loss(&self, problem: &Problem<'_>, config: &TrainingConfig, inference: &Device) -> f32 {
        if let Trainer::Flat(training) = self
            && let Some(loss) = training.training_loss(problem)
        {
            return loss;
        }
        let net = self.snapshot(inference);
        let all: Vec<usize> = (0..problem.train.len()).collect();
        burn_loss(&net, problem, problem.train, problem.presence(&all), config, inference, None).into_scalar()
    }

    /// The weights under training and the optimiser's state for `checkpoint`: burn's are written
    /// here (its optimiser cannot leave this thread); a flat engine's are copied and returned, for a
    /// write on another thread ([`Checkpoint::save_flat`]).
    fn save_or_copy(&mut self, checkpoint: &Checkpoint, epoch: usize) -> Result<Option<super::checkpoint::FlatState>> {
        match self {
            Trainer::Burn { model, optim, .. } => checkpoint.save_burn(epoch, model, optim).map(|()| None),
            Trainer::Flat(training) => {
                let running = training.running().map(|r| r.clone()).unwrap_or_default();
                let (params, adam) = training.flat();
                let (t, m, v) = adam.state();
                Ok(Some((params.clone(), t, m.to_vec(), v.to_vec(), running)))
            }
        }
    }

    /// Takes up the weights and optimiser state [`save_or_copy`](Self::save_or_copy) saved.
    fn restore(
        &mut self,
        checkpoint: &Checkpoint,
        epoch: usize,
        spec: &FusionSpec,
        config: &TrainingConfig,
        device: &Device,
    ) -> Result<()> {
        match self {
            Trainer::Burn { model, optim, .. } => {
                let taken = std::mem::replace(optim.as_mut(), burn_adam(config));
                let (net, loaded) = checkpoint.load_burn(epoch, spec, taken, device)?;
                (*model, **optim) = (net, loaded);
                Ok(())
            }
            Trainer::Flat(training) => {
                let n_running = training.running().map_or(0, |r| r.len());
                let (params, adam) = training.flat();
                let (loaded, t, m, v, running) = checkpoint.load_flat(epoch, params.len(), n_running)?;
                *params = loaded;
                adam.restore(t, m, v);
                if let Some(r) = training.running() {
                    *r = running;
                }
                Ok(())
            }
        }
    }

    /// Reseeds the engine's own randomness (the maxout engine's dropout
    /// masks); burn's comes from its device, which the loops seed.
    fn reseed(&mut self, seed: u64) {
        if let Trainer::Flat(training) = self {
            training.reseed(seed);
        }
    }

    /// The current weights packed for the flat inference pass on `inference`, taken from the
    /// maxout engine's own buffers ([`training_inference`](crate::engine::maxout::training_inference));
    /// `None`: score the [`snapshot`](Self::snapshot).
    fn flat_inference(&self, inference: &Device) -> Option<crate::engine::maxout::Inference> {
        match self {
            Trainer::Flat(training) if crate::device::is_cpu(inference) => {
                crate::engine::maxout::training_inference(training.as_ref())
            }
            _ => None,
        }
    }

    /// The current weights as an inference model on `inference`.
    fn snapshot(&self, inference: &Device) -> FusionNet {
        match self {
            Trainer::Burn { model, .. } => model.valid(),
            Trainer::Flat(training) => training.snapshot(inference),
        }
    }
}

/// The batch loss of `model` on `rows` in burn ops: the config's loss on the
/// logits where one is set, the model's own (by its task) otherwise; with
/// `cnn`, the image views' CNNs run on the engine.
fn burn_loss(
    model: &FusionNet,
    problem: &Problem<'_>,
    rows: &[usize],
    present: Option<Vec<f32>>,
    config: &TrainingConfig,
    device: &Device,
    cnn: Option<&mut CnnFronts>,
) -> Tensor<1> {
    let inputs: Vec<Tensor<2>> = (problem.inputs(rows).into_iter().zip(problem.modalities))
        .map(|(x, &v)| tensor(x, problem.data.views[v].dim, device))
        .collect();
    let gate_targets = config
        .view_noise
        .supervises_gates()
        .then(|| problem.gate_targets(rows, config.model.gate_per_view, present.as_deref()));
    let mask = present.map(|p| Tensor::from_data(TensorData::new(p, [rows.len(), problem.modalities.len()]), device));
    let out = match cnn {
        Some(fronts) => {
            model.forward_encoded(fronts.encode(model, model.zero_missing(&inputs, mask.as_ref())), mask.as_ref())
        }
        None => model.forward_present(&inputs, mask.as_ref()),
    };
    let targets = targets_tensor(&problem.data.targets, rows, device);
    let task = match (config.loss, out.scores) {
        (Some(kind), Scores::Logits(logits)) => logits_loss(logits, targets, kind),
        (_, scores) => model.loss(scores, targets),
    };
    // Gate units that each read one view can see noise on it, but a swapped view looks
    // clean to them and one at its mean sits among the clean rows: supervising those
    // only pulls every gate down (measured on mfeat fou + zer: the gate then stayed at 0.50),
    // so with per-view units they count as neither corrupted nor clean.
    match (out.gates, gate_targets) {
        (Some(gates), Some(masks)) => {
            let noise = &config.view_noise;
            task + gate_supervision(gates, masks, (noise.gate_supervision, noise.gate_supervision_clean), device)
        }
        _ => task,
    }
}

/// The gate-supervision term ([`ViewNoise`](crate::config::ViewNoise)'s
/// `gate_supervision` and `gate_supervision_clean`): `closed · Σ −ln(1 − z)`
/// over the gates `z` of each row's corrupted view (a 1 in `corrupted`) plus
/// `open · Σ −ln z` over those of its clean views (a 1 in `clean`), each
/// summed over the gate units (as the task loss's gradient reaches every
/// unit) and divided by the batch's rows.
///
/// # Shapes
/// - `gates`: `[batch, K, G]`; `corrupted`, `clean`: `[batch · K]` 0/1 values, row-major; output: `[1]`
pub fn gate_supervision(
    gates: Tensor<3>,
    (corrupted, clean): (Vec<f32>, Vec<f32>),
    (closed, open): (f32, f32),
    device: &Device,
) -> Tensor<1> {
    let [batch, k, _] = gates.dims();
    let mask = |m: Vec<f32>| Tensor::<2>::from_data(TensorData::new(m, [batch, k]), device).reshape([batch, k, 1]);
    let shut = gates.clone().neg().add_scalar(1.0).clamp_min(1e-6).log().neg();
    let term = (shut * mask(corrupted)).sum().mul_scalar(closed / batch as f32);
    if open == 0.0 {
        return term;
    }
    let opened = gates.clamp_min(1e-6).log().neg();
    term + (opened * mask(clean)).sum().mul_scalar(open / batch as f32)
}

/// The loss of [`LossKind`] in burn ops on logits, mean over the batch
/// (and over the classes for sigmoid cross-entropy): burn's side of
/// [`loss_and_delta`](crate::cpu::loss::loss_and_delta).
///
/// # Shapes
/// - `logits`, `targets` (0/1): `[batch, classes]`; output: `[1]`
pub fn logits_loss(logits: Tensor<2>, targets: Tensor<2>, kind: LossKind) -> Tensor<1> {
    let [batch, _] = logits.dims();
    match kind {
        LossKind::SoftmaxCe => {
            let log_p = burn::tensor::activation::log_softmax(logits, 1);
            (log_p * targets).sum().neg().div_scalar(batch as f32)
        }
        LossKind::SigmoidBce => {
            // max(o, 0) − o·t + log(1 + e^{−|o|}), averaged over every element.
            let softplus = logits.clone().abs().neg().exp().add_scalar(1.0).log();
            (logits.clone().clamp_min(0.0) - logits * targets + softplus).mean()
        }
    }
}

fn tensor(values: Vec<f32>, cols: usize, device: &Device) -> Tensor<2> {
    let rows = values.len() / cols;
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

fn targets_tensor(targets: &Targets, rows: &[usize], device: &Device) -> Tensor<2> {
    let values: Vec<f32> = rows.iter().flat_map(|&r| targets.indicator_row(r)).map(f32::from).collect();
    tensor(values, targets.width(), device)
}

/// Glorot-uniform weights (TensorFlow's default for dense layers) and zero
/// biases, in the flat layout of [`ModelSpec::params`].
pub fn glorot(spec: &ModelSpec, rng: &mut impl Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(spec.n_params());
    for p in spec.params() {
        match p.fans() {
            Some((fan_in, fan_out)) => {
                let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
                out.extend((0..p.len()).map(|_| rng.random_range(-limit..limit)));
            }
            None => out.extend(std::iter::repeat_n(0.0, p.len())),
        }
    }
    out
}

/// What training a member gives: the kept weights and the log of how they were found.
pub(super) struct Outcome {
    pub net: FusionNet,
    pub history: Vec<EpochLog>,
    pub best_epoch: usize,
    pub step_losses: Vec<f32>,
    pub restart_losses: Vec<f32>,
    pub engine: Engine,
}

fn non_finite(spec: &FusionSpec, value: f32, at: String) -> GmuError {
    GmuError::NonFinite(format!(
        "{} training loss is {value} at {at}; lower the learning rate (--lr) or check the data",
        spec.kind
    ))
}

/// The seed of epoch `epoch`'s randomness (batch order, modality dropout,
/// burn's dropout masks) in a member seeded with `seed`: a checkpoint needs
/// to keep no random state.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    // SplitMix64's finaliser over (seed, epoch).
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Dies after the process's N-th training step under the epochs schedule
/// (`GMU_ABORT_AFTER_STEPS=N`; see [`AbortHook`]).
static STEPS: AbortHook = AbortHook::new("GMU_ABORT_AFTER_STEPS");

/// How one member's training runs: under `config`, from `seed`, on the
/// autodiff `device`, its result living on `inference`; under the epochs
/// schedule with a `checkpoint` folder, every epoch is checkpointed there and
/// a checkpoint found there is resumed.
#[derive(Clone, Copy)]
pub(super) struct Run<'a> {
    pub config: &'a TrainingConfig,
    pub seed: u64,
    pub checkpoint: Option<&'a std::path::Path>,
    /// Called with each epoch's log and timing (the epochs schedule); its error stops the run.
    pub observe: &'a (dyn Fn(&EpochLog, &EpochTiming) -> Result<()> + Sync),
    pub device: &'a Device,
    pub inference: &'a Device,
}

/// Trains one member as `run` says on `engine` (already picked).
pub(super) fn train_member(spec: &FusionSpec, engine: Engine, problem: &Problem<'_>, run: Run<'_>) -> Result<Outcome> {
    let Run { config, seed, checkpoint, observe, device, inference } = run;
    match config.schedule {
        Schedule::Steps { steps, batch_size, restarts } => {
            let mut rng = StdRng::seed_from_u64(seed);
            let rng = &mut rng;
            // The seed's recipe starts a synthetic-experiment model from TensorFlow's Glorot-uniform draw.
            let synthetic = ModelSpec::from_fusion(spec);
            let mut best: Option<(f32, FusionNet, Vec<f32>)> = None;
            let mut restart_losses = Vec::with_capacity(restarts.min(1 << 16));
            for _ in 0..restarts {
                let model = match &synthetic {
                    Some(s) => s.to_net(&glorot(s, rng), device)?,
                    None => spec.init(device)?,
                };
                let mut trainer = Trainer::new(engine, spec, model, problem, config)?;
                trainer.reseed(epoch_seed(seed, restart_losses.len()));
                let mut batches = Batches::new(problem.train.len(), batch_size);
                let mut history = Vec::with_capacity(steps.min(1 << 16));
                for step in 0..steps {
                    let positions = batches.next(rng);
                    let presence = problem.presence(positions);
                    let n = positions.len();
                    let present = modality_dropout(n, problem.modalities.len(), config.modality_dropout, presence, rng);
                    let value = trainer.step(problem, batches.current(), present, config, device);
                    if !value.is_finite() {
                        return Err(non_finite(spec, value, format!("step {step}")));
                    }
                    history.push(value);
                }
                let last = trainer.training_loss(problem, config, inference);
                if !last.is_finite() {
                    return Err(non_finite(spec, last, format!("the end of {steps} steps")));
                }
                restart_losses.push(last);
                if best.as_ref().is_none_or(|(l, _, _)| last < *l) {
                    let net = trainer.snapshot(inference);
                    check_weights(spec, &net, &format!("{steps} steps"))?;
                    best = Some((last, net, history));
                }
            }
            let (_, net, step_losses) = best.expect("restarts ≥ 1");
            Ok(Outcome { net, history: vec![], best_epoch: 0, step_losses, restart_losses, engine })
        }
        Schedule::Epochs { max_epochs, patience, batch_size } => {
            let checkpoint = checkpoint.map(Checkpoint::open).transpose()?;
            let mut trainer = Trainer::new(engine, spec, spec.init(device)?, problem, config)?;
            let mut best: Option<(f64, FusionNet, usize)> = None;
            let mut history = Vec::new();
            let mut since_best = 0;
            let mut first = 1;
            let mut writing = BackgroundWrite::default();
            if let Some(c) = &checkpoint
                && let Some(state) = c.state()?
            {
                // Every checkpointed epoch has a best epoch (the first always improves).
                let net = c.load_best(state.best_epoch, spec, inference)?;
                if state.finished {
                    return Ok(Outcome {
                        net,
                        history: state.history,
                        best_epoch: state.best_epoch,
                        step_losses: vec![],
                        restart_losses: vec![],
                        engine,
                    });
                }
                trainer.restore(c, state.epoch, spec, config, device)?;
                best = Some((state.best_score, net, state.best_epoch));
                (history, since_best, first) = (state.history, state.since_best, state.epoch + 1);
            }
            // With view noise, early stopping scores dev rows corrupted the way training is.
            let scalers: Vec<(usize, &Scaler)> = problem.modalities.iter().copied().zip(problem.scalers).collect();
            let noisy_dev = problem.noise.as_ref().map(|scope| {
                let seed = epoch_seed(scope.seed ^ 0x6465_765f_6e6f_6973, 0);
                noise::corrupted_rows(problem.data, problem.dev, scope, &scalers, seed)
            });
            let dev_rows: Vec<usize> = (0..problem.dev.len()).collect();
            let (dev_data, dev_rows) = match &noisy_dev {
                Some(d) => (d, dev_rows.as_slice()),
                None => (problem.data, problem.dev),
            };
            for epoch in first..=max_epochs {
                let started = Instant::now();
                let mut timing = EpochTiming::default();
                let seed = epoch_seed(seed, epoch);
                let mut rng = StdRng::seed_from_u64(seed);
                device.seed(seed);
                trainer.reseed(seed);
                let mut order: Vec<usize> = (0..problem.train.len()).collect();
                order.shuffle(&mut rng);
                problem.corrupt_epoch(epoch);
                let (mut loss_sum, mut batches) = (0.0f64, 0usize);
                for positions in order.chunks(batch_size) {
                    // A batch of one has no batch statistics; leave it out of this epoch.
                    if positions.len() < 2 {
                        continue;
                    }
                    let present = modality_dropout(
                        positions.len(),
                        problem.modalities.len(),
                        config.modality_dropout,
                        problem.presence(positions),
                        &mut rng,
                    );
                    let step = Instant::now();
                    let value = trainer.step(problem, positions, present, config, device);
                    timing.steps += step.elapsed().as_secs_f64();
                    timing.rows += positions.len();
                    if !value.is_finite() {
                        return Err(non_finite(spec, value, format!("epoch {epoch}")));
                    }
                    STEPS.tick();
                    loss_sum += value as f64;
                    batches += 1;
                }
                problem.corruption.write().unwrap_or_else(|p| p.into_inner()).clear();
                let valid = trainer.snapshot(inference);
                check_weights(spec, &valid, &format!("epoch {epoch}"))?;
                let dev_pass = Instant::now();
                let flat = trainer.flat_inference(inference);
                let member =
                    MemberRef { views: problem.modalities, scalers: problem.scalers, net: &valid, flat: flat.as_ref() };
                let dev = evaluate_nets(dev_data, member, dev_rows, config.threshold, inference).0;
                timing.dev = dev_pass.elapsed().as_secs_f64();
                history.push(EpochLog {
                    epoch,
                    train_loss: loss_sum / batches.max(1) as f64,
                    dev_macro_f1: dev.f1.macro_,
                });
                let improved =
                    config.keep == Keep::Last || best.as_ref().is_none_or(|(score, _, _)| dev.f1.macro_ > *score);
                if improved {
                    best = Some((dev.f1.macro_, valid, epoch));
                    since_best = 0;
                } else {
                    since_best += 1;
                }
                let finished = since_best >= patience || epoch == max_epochs;
                if let Some(c) = &checkpoint {
                    // One epoch's files at a time, the state that names the others last.
                    writing.wait()?;
                    let (best_score, best_net, best_epoch) = best.as_ref().expect("set above");
                    let best_net = improved.then(|| best_net.clone());
                    let state = State {
                        epoch,
                        since_best,
                        best_epoch: *best_epoch,
                        best_score: *best_score,
                        history: history.clone(),
                        finished,
                    };
                    // Burn's optimiser state is written here; the rest (a flat engine's copied state, the
                    // best weights, the state) while the next epoch trains.
                    let flat = if finished { None } else { trainer.save_or_copy(c, epoch)? };
                    let to = c.clone();
                    writing.start(c.dir(), move || {
                        if let Some(net) = best_net {
                            to.save_best(epoch, &net)?;
                        }
                        if let Some((params, t, m, v, running)) = flat {
                            to.save_flat(epoch, &params, t, &m, &v, &running)?;
                        }
                        to.save_state(&state)
                    })?;
                }
                timing.seconds = started.elapsed().as_secs_f64();
                observe(history.last().expect("pushed above"), &timing)?;
                if finished {
                    break;
                }
            }
            writing.wait()?;
            let (_, net, best_epoch) = best.expect("at least one epoch");
            Ok(Outcome { net, history, best_epoch, step_losses: vec![], restart_losses: vec![], engine })
        }
    }
}

/// At most one checkpoint write in flight on its own thread, so an epoch's
/// files (tens of MB with `fsync`s at MM-IMDb's shape) go down while the next
/// epoch trains. Dropping it waits for the write (and drops its error: the
/// run is already ending with another).
#[derive(Default)]
struct BackgroundWrite(Option<std::thread::JoinHandle<Result<()>>>);

impl BackgroundWrite {
    /// Starts `write` into the checkpoint folder `dir` on a new thread; the last one must have been waited for.
    fn start(&mut self, dir: &std::path::Path, write: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
        debug_assert!(self.0.is_none(), "one write at a time");
        let thread = std::thread::Builder::new().name("gmu-checkpoint".into());
        self.0 = Some(thread.spawn(write).map_err(|e| GmuError::io(dir, e))?);
        Ok(())
    }

    /// Waits for the write in flight, if any, and returns its outcome.
    fn wait(&mut self) -> Result<()> {
        match self.0.take() {
            Some(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundWrite {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Draws the positions of each step's batch: all rows, or a reshuffled pass of minibatches.
struct Batches {
    order: Vec<usize>,
    batch: usize,
    cursor: usize,
}

impl Batches {
    fn new(n: usize, batch_size: Option<usize>) -> Self {
        let batch = batch_size.unwrap_or(n).min(n);
        Batches { order: (0..n).collect(), batch, cursor: n }
    }

    fn next(&mut self, rng: &mut impl Rng) -> &[usize] {
        let n = self.order.len();
        if self.batch == n {
            return &self.order;
        }
        if self.cursor + self.batch > n {
            for i in (1..n).rev() {
                self.order.swap(i, rng.random_range(0..=i));
            }
            self.cursor = 0;
        }
        self.cursor += self.batch;
        self.current()
    }

    /// The batch [`next`](Self::next) gave last.
    fn current(&self) -> &[usize] {
        if self.batch == self.order.len() { &self.order } else { &self.order[self.cursor - self.batch..self.cursor] }
    }
}

/// The `[rows, K]` presence mask of a training batch: the views present in
/// the data (`presence`, `None` when all are), each dropped with probability
/// `p` (modality dropout); where a row would lose every present view, one of
/// them, drawn at random, is kept. `None` when every view stays present.
pub(super) fn modality_dropout(
    rows: usize,
    k: usize,
    p: f64,
    presence: Option<Vec<f32>>,
    rng: &mut StdRng,
) -> Option<Vec<f32>> {
    if p == 0.0 || k < 2 {
        return presence;
    }
    let mut mask = presence.clone().unwrap_or_else(|| vec![1.0f32; rows * k]);
    for (r, row) in mask.chunks_mut(k).enumerate() {
        for x in row.iter_mut() {
            if rng.random_bool(p) {
                *x = 0.0;
            }
        }
        if row.iter().all(|&x| x == 0.0) {
            let there: Vec<usize> = match &presence {
                Some(p) => (0..k).filter(|&j| p[r * k + j] == 1.0).collect(),
                None => (0..k).collect(),
            };
            row[there[rng.random_range(0..there.len())]] = 1.0;
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::fusion::FusionKind;
    use crate::train::tests::{dev, planted, quick};
    use crate::train::train;

    #[test]
    fn minibatches_cover_the_data() {
        let mut batches = Batches::new(10, Some(4));
        let mut rng = StdRng::seed_from_u64(0);
        let mut seen = vec![];
        for _ in 0..2 {
            seen.extend_from_slice(batches.next(&mut rng));
            assert_eq!(batches.current(), &seen[seen.len() - 4..]);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8, "two batches of one pass never repeat a row");
        assert_eq!(Batches::new(5, None).next(&mut rng), &[0, 1, 2, 3, 4]);
    }

    /// `keep: last` runs every epoch (patience 1 would stop a run whose dev
    /// score does not improve) and keeps the final one; it is written into the
    /// config, and `best` (the default) is left out of it.
    #[test]
    fn keep_last_runs_every_epoch_and_keeps_the_final_one() {
        let data = planted(120, false, 5);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let mut config = quick(FusionKind::Gmu);
        config.schedule = Schedule::Epochs { max_epochs: 7, patience: 1, batch_size: 32 };
        config.keep = crate::config::Keep::Last;
        let model = train(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let member = &model.config.members[0];
        assert_eq!((member.best_epoch, member.history.len()), (7, 7));
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["keep"], "last");
        config.keep = crate::config::Keep::Best;
        assert!(serde_json::to_value(&config).unwrap().get("keep").is_none(), "best: not written");
        let mut steps = config.clone();
        steps.keep = crate::config::Keep::Last;
        steps.schedule = Schedule::Steps { steps: 10, batch_size: None, restarts: 1 };
        assert!(steps.validate().unwrap_err().to_string().contains("keep"));
    }
}
