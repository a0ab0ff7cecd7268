//! Training: [`TrainingConfig`] (saved as `config.json` beside the weights),
//! input scaling, initialisation, the Adam loop on either engine, restarts,
//! and saving/loading a trained model.

use std::path::Path;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::SyntheticData;
use crate::data::scale::{Scaler, Scaling};
use crate::error::{GmuError, Result};
use crate::fusion::{FusionNet, Scores, Task};
use crate::model::{ModelKind, ModelSpec, flat_params, linears};
use crate::model_dir::{self, FORMAT_VERSION, MemberConfig, ModelConfig, TrainingRecord, ViewSpec};
use crate::engine::Adam;
use crate::engine::native::{LossKind, Network, Workspace};

/// Which implementation runs the training loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The hand-differentiated `f32` engine ([`crate::engine::native`]); the fast path for small models.
    Native,
    /// burn's autodiff and Adam on the default CPU backend.
    Burn,
}

/// Adam's settings. ε defaults to 1e-8 (TensorFlow, PyTorch, optax); burn's
/// own default is 1e-5, so it is always set explicitly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamSettings {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// Denominator term.
    pub epsilon: f32,
}

/// Everything that decides a training run. Saved as `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// The classifier.
    pub model: ModelSpec,
    /// The loss.
    pub loss: LossKind,
    /// The optimiser.
    pub optimizer: AdamSettings,
    /// Number of Adam steps.
    pub steps: usize,
    /// Minibatch size; `None` for full batch (the seed).
    pub batch_size: Option<usize>,
    /// Independent initialisations; the one with the lowest final training
    /// loss is kept (never chosen on held-out data or on `M`).
    pub restarts: usize,
    /// Input scaling.
    pub scaling: Scaling,
    /// Which engine runs the loop.
    pub engine: Engine,
    /// Seed of the initialisation and minibatch order.
    pub seed: u64,
}

/// A named recipe for the synthetic experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// This project's robust recipe (see the README for why each choice).
    Default,
    /// The seed post as written: centring only, hidden 1, Adam 0.1,
    /// 100 full-batch steps, one initialisation, sigmoid cross-entropy.
    Seed,
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::Default => "default",
            Preset::Seed => "seed",
        })
    }
}

impl Preset {
    /// The training config of `kind` under this preset, for inputs of width `dim` per modality.
    pub fn config(self, kind: ModelKind, dim: usize, seed: u64) -> TrainingConfig {
        let hidden = match kind {
            ModelKind::Gmu => 1,
            ModelKind::Ff => 8,
            ModelKind::Logreg => 0,
        };
        let model = ModelSpec { kind, d_v: dim, d_t: dim, hidden, bias: true, n_classes: 2 };
        let optimizer = AdamSettings { lr: 0.1, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8 };
        match self {
            Preset::Seed => TrainingConfig {
                model,
                loss: LossKind::SigmoidBce,
                optimizer,
                steps: 100,
                batch_size: None,
                restarts: 1,
                scaling: Scaling::Center,
                engine: Engine::Native,
                seed,
            },
            Preset::Default => TrainingConfig {
                model,
                loss: LossKind::SoftmaxCe,
                optimizer,
                steps: 200,
                batch_size: None,
                // Logistic regression is convex: one start finds its optimum.
                restarts: if kind == ModelKind::Logreg { 1 } else { 10 },
                scaling: Scaling::Standardize,
                engine: Engine::Native,
                seed,
            },
        }
    }
}

/// Changes to a preset's config, one per optional flag (`None` keeps the preset's value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    /// Hidden width (GMU units or FF hidden units; logistic regression has none).
    pub hidden: Option<usize>,
    /// Adam learning rate.
    pub lr: Option<f32>,
    /// Adam steps.
    pub steps: Option<usize>,
    /// Minibatch size.
    pub batch_size: Option<usize>,
    /// Number of initialisations.
    pub restarts: Option<usize>,
    /// Input scaling.
    pub scaling: Option<Scaling>,
    /// Loss.
    pub loss: Option<LossKind>,
    /// Bias terms.
    pub bias: Option<bool>,
    /// Engine.
    pub engine: Option<Engine>,
}

impl Overrides {
    /// `config` with every set field replaced.
    pub fn apply(&self, mut config: TrainingConfig) -> TrainingConfig {
        if let Some(h) = self.hidden
            && config.model.kind != ModelKind::Logreg
        {
            config.model.hidden = h;
        }
        if let Some(lr) = self.lr {
            config.optimizer.lr = lr;
        }
        config.steps = self.steps.unwrap_or(config.steps);
        config.batch_size = self.batch_size.or(config.batch_size);
        config.restarts = self.restarts.unwrap_or(config.restarts);
        config.scaling = self.scaling.unwrap_or(config.scaling);
        config.loss = self.loss.unwrap_or(config.loss);
        config.model.bias = self.bias.unwrap_or(config.model.bias);
        config.engine = self.engine.unwrap_or(config.engine);
        config
    }
}

impl TrainingConfig {
    /// Checks the config up front, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(GmuError::invalid("lr", format!("a learning rate > 0 is expected, got {}", o.lr)));
        }
        if !(0.0..1.0).contains(&o.beta_1) || !(0.0..1.0).contains(&o.beta_2) {
            return Err(GmuError::invalid("beta", "Adam's betas must lie in [0, 1)"));
        }
        if !(o.epsilon.is_finite() && o.epsilon > 0.0) {
            return Err(GmuError::invalid("epsilon", format!("a value > 0 is expected, got {}", o.epsilon)));
        }
        if self.steps == 0 {
            return Err(GmuError::invalid("steps", "at least one training step is needed"));
        }
        if self.batch_size == Some(0) {
            return Err(GmuError::invalid("batch_size", "a batch needs at least one sample"));
        }
        if self.restarts == 0 {
            return Err(GmuError::invalid("restarts", "at least one initialisation is needed"));
        }
        Ok(())
    }
}

/// A trained model: its config, scaler and weights, plus what the run measured.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// The config it was trained with.
    pub config: TrainingConfig,
    /// Input scaling fitted on the training data.
    pub scaler: Scaler,
    /// The weights, in the fast engine (they load into burn with [`ModelSpec::to_net`]).
    pub net: Network,
    /// Training loss before each step of the kept restart.
    pub history: Vec<f32>,
    /// Final training loss of every restart (the kept one is the smallest).
    pub restart_losses: Vec<f32>,
    /// Wall time of the training steps alone, all restarts, in milliseconds.
    pub train_ms: f64,
}

/// Glorot-uniform weights (TensorFlow's default for dense layers) and zero biases.
pub fn init_params(spec: &ModelSpec, rng: &mut impl Rng) -> Vec<f32> {
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

fn check_finite(loss: f32, step: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(GmuError::NonFinite(format!("the training loss is {loss} at step {step}; lower the learning rate or check the data")))
    }
}

/// Draws the rows of each step's batch: all rows, or a reshuffled pass of minibatches.
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
        &self.order[self.cursor - self.batch..self.cursor]
    }
}

/// Trains on `data` as `config` says. Deterministic for a given seed and machine.
/// `device` is used by the burn engine only.
pub fn train(config: &TrainingConfig, data: &SyntheticData, device: &Device) -> Result<TrainedModel> {
    config.validate()?;
    let spec = &config.model;
    if spec.d_v != data.dim || spec.d_t != data.dim {
        return Err(GmuError::invalid("dim", format!("the model expects {} + {} inputs, the data has {} + {}", spec.d_v, spec.d_t, data.dim, data.dim)));
    }
    if data.is_empty() {
        return Err(GmuError::invalid("data", "no training samples"));
    }
    let mut x = data.joined();
    if x.iter().any(|v| !v.is_finite()) {
        return Err(GmuError::NonFinite("the training inputs contain NaN or infinity".into()));
    }
    let scaler = Scaler::fit(&x, spec.d_in(), config.scaling).with_impute_means(&x, spec.d_in());
    scaler.apply(&mut x);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut best: Option<(f32, Vec<f32>, Vec<f32>)> = None;
    let mut restart_losses = vec![];
    let mut train_ms = 0.0;
    for _ in 0..config.restarts {
        let init = init_params(spec, &mut rng);
        let start = Instant::now();
        let (params, history) = match config.engine {
            Engine::Native => train_native(config, init, &x, &data.c, &mut rng)?,
            Engine::Burn => train_burn(config, init, &x, &data.c, &mut rng, device)?,
        };
        train_ms += start.elapsed().as_secs_f64() * 1e3;
        let final_loss = Network::new(spec.clone(), params.clone()).loss(&x, &data.c, config.loss);
        check_finite(final_loss, config.steps)?;
        restart_losses.push(final_loss);
        if best.as_ref().is_none_or(|(l, _, _)| final_loss < *l) {
            best = Some((final_loss, params, history));
        }
    }
    let (_, params, history) = best.expect("restarts >= 1");
    Ok(TrainedModel { config: config.clone(), scaler, net: Network::new(spec.clone(), params), history, restart_losses, train_ms })
}

/// The Adam loop on the native engine. Returns the final weights and the loss before each step.
pub fn train_native(config: &TrainingConfig, init: Vec<f32>, x: &[f32], y: &[u8], rng: &mut impl Rng) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut net = Network::new(config.model.clone(), init);
    let o = &config.optimizer;
    let mut adam = Adam::new(net.params.len(), o.lr, o.beta_1, o.beta_2, o.epsilon);
    let mut grad = vec![0.0; net.params.len()];
    let mut workspace = Workspace::default();
    let mut batches = Batches::new(y.len(), config.batch_size);
    let mut history = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        let rows = batches.next(rng);
        let loss = net.loss_and_grad(x, y, rows, config.loss, &mut grad, &mut workspace);
        check_finite(loss, step)?;
        history.push(loss);
        adam.step(&mut net.params, &grad);
    }
    Ok((net.params, history))
}

/// Splits row-major `[n, d_v + d_t]` inputs into the two modality tensors.
pub fn split_inputs(x: &[f32], d_v: usize, d_t: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let d = d_v + d_t;
    let n = x.len() / d;
    let mut xv = Vec::with_capacity(n * d_v);
    let mut xt = Vec::with_capacity(n * d_t);
    for row in x.chunks_exact(d) {
        xv.extend_from_slice(&row[..d_v]);
        xt.extend_from_slice(&row[d_v..]);
    }
    (
        Tensor::from_data(TensorData::new(xv, [n, d_v]), device),
        Tensor::from_data(TensorData::new(xt, [n, d_t]), device),
    )
}

fn one_hot(y: &[u8], classes: usize, device: &Device) -> Tensor<2> {
    let mut t = vec![0.0f32; y.len() * classes];
    for (i, &c) in y.iter().enumerate() {
        t[i * classes + c as usize] = 1.0;
    }
    Tensor::from_data(TensorData::new(t, [y.len(), classes]), device)
}

/// The loss of [`LossKind`] in burn ops, mean over the batch.
///
/// # Shapes
/// - `logits`, `targets` (one-hot): `[batch, classes]`; output: `[1]`
pub fn burn_loss(logits: Tensor<2>, targets: Tensor<2>, kind: LossKind) -> Tensor<1> {
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

/// The loss and its gradient by burn's autodiff, flattened in the order of
/// [`ModelSpec::params`]: the reference the native engine is tested against.
pub fn burn_loss_and_grad(model: &FusionNet, x: &[f32], y: &[u8], spec: &ModelSpec, kind: LossKind, device: &Device) -> (f32, Vec<f32>) {
    let (xv, xt) = split_inputs(x, spec.d_v, spec.d_t, device);
    let loss = burn_loss(logits(model, xv, xt), one_hot(y, spec.n_classes, device), kind);
    let value = loss.clone().into_scalar::<f32>();
    let grads = loss.backward();
    let mut out = vec![];
    for layer in linears(model) {
        out.extend(layer.weight.val().grad(&grads).expect("weight grad").into_data().try_to_vec::<f32>().unwrap());
        if let Some(b) = &layer.bias {
            out.extend(b.val().grad(&grads).expect("bias grad").into_data().try_to_vec::<f32>().unwrap());
        }
    }
    (value, out)
}

/// The logits of a synthetic-experiment model (its heads all give logits).
fn logits(model: &FusionNet, xv: Tensor<2>, xt: Tensor<2>) -> Tensor<2> {
    match model.forward(&[xv, xt]).scores {
        Scores::Logits(l) => l,
        Scores::Probs(_) => unreachable!("a linear or tanh head gives logits"),
    }
}

/// The Adam loop on burn (autodiff on `device`).
pub fn train_burn(config: &TrainingConfig, init: Vec<f32>, x: &[f32], y: &[u8], rng: &mut impl Rng, device: &Device) -> Result<(Vec<f32>, Vec<f32>)> {
    let device = device.clone().autodiff();
    let spec = &config.model;
    let mut model = spec.to_net(&init, &device)?;
    let o = &config.optimizer;
    let mut optim = AdamConfig::new().with_beta_1(o.beta_1).with_beta_2(o.beta_2).with_epsilon(o.epsilon).init();
    let full = (split_inputs(x, spec.d_v, spec.d_t, &device), one_hot(y, spec.n_classes, &device));
    let mut batches = Batches::new(y.len(), config.batch_size);
    let d = spec.d_in();
    let mut history = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        let rows = batches.next(rng);
        let ((xv, xt), targets) = if rows.len() == y.len() {
            full.clone()
        } else {
            let xb: Vec<f32> = rows.iter().flat_map(|&r| x[r * d..(r + 1) * d].iter().copied()).collect();
            let yb: Vec<u8> = rows.iter().map(|&r| y[r]).collect();
            (split_inputs(&xb, spec.d_v, spec.d_t, &device), one_hot(&yb, spec.n_classes, &device))
        };
        let loss = burn_loss(logits(&model, xv, xt), targets, config.loss);
        let value = loss.clone().into_scalar::<f32>();
        check_finite(value, step)?;
        history.push(value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(o.lr as f64, model, grads);
    }
    Ok((flat_params(&model), history))
}

impl TrainedModel {
    /// The model directory's config: views `v` and `t`, classes `0`/`1`,
    /// the model as its [`FusionSpec`](crate::fusion::FusionSpec), the scaler
    /// split per view, and the training config and losses.
    pub fn model_config(&self, results: serde_json::Value) -> ModelConfig {
        let spec = &self.config.model;
        let view = |name: &str, width| ViewSpec { name: name.into(), width };
        ModelConfig {
            format_version: FORMAT_VERSION,
            gmu_version: env!("CARGO_PKG_VERSION").to_string(),
            method: spec.kind.to_string(),
            views: vec![view("v", spec.d_v), view("t", spec.d_t)],
            task: Task::Multiclass,
            outputs: (0..spec.n_classes).map(|c| c.to_string()).collect(),
            threshold: 0.5,
            members: vec![MemberConfig {
                views: vec![0, 1],
                spec: spec.fusion_spec(),
                scalers: vec![self.scaler.columns(0..spec.d_v), self.scaler.columns(spec.d_v..spec.d_in())],
                best_epoch: 0,
                history: vec![],
            }],
            training: TrainingRecord::Steps {
                config: self.config.clone(),
                history: self.history.clone(),
                restart_losses: self.restart_losses.clone(),
            },
            data: None,
            seconds: self.train_ms / 1e3,
            results,
        }
    }
}

/// Saves the model directory (see [`model_dir`](crate::model_dir)) in `dir`.
pub fn save(model: &TrainedModel, dir: &Path, device: &Device) -> Result<()> {
    let net = model.config.model.to_net(&model.net.params, device)?;
    model_dir::save(dir, &model.model_config(serde_json::Value::Null), &[&net])
}

/// Loads a model directory written by [`save`]: its training config, its
/// scaler over the joined inputs `[x_v, x_t]`, and the weights in the fast engine.
pub fn load(dir: &Path, device: &Device) -> Result<(TrainingConfig, Scaler, Network)> {
    let (config, nets) = model_dir::load(dir, device)?;
    let path = dir.join(model_dir::CONFIG_FILE);
    let TrainingRecord::Steps { config: training, .. } = config.training else {
        return Err(GmuError::Store {
            path,
            message: format!("a {} model of `multiview`/`mmimdb`; this command takes the synthetic experiment's models (use `gmu predict`)", config.method),
        });
    };
    training.validate()?;
    let spec = training.model.clone();
    let member = &config.members[0];
    if member.spec != spec.fusion_spec() {
        return Err(GmuError::Store { path, message: "the model spec does not match the training config".into() });
    }
    let scaler = Scaler {
        mean: member.scalers.iter().flat_map(|s| s.mean.iter().copied()).collect(),
        scale: member.scalers.iter().flat_map(|s| s.scale.iter().copied()).collect(),
        impute: member.scalers.iter().map(|s| s.impute.clone()).collect::<Option<Vec<Vec<f32>>>>().map(|m| m.concat()),
    };
    let params = flat_params(&nets[0]);
    Ok((training, scaler, Network::new(spec, params)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::SyntheticConfig;

    pub(crate) fn toy(seed: u64) -> SyntheticData {
        SyntheticConfig::default().generate(&mut StdRng::seed_from_u64(seed)).unwrap()
    }

    #[test]
    fn same_seed_same_model_and_loss_falls() {
        let data = toy(1);
        let config = Preset::Default.config(ModelKind::Gmu, 1, 9);
        let a = train(&config, &data, &Device::default()).unwrap();
        let b = train(&config, &data, &Device::default()).unwrap();
        assert_eq!(a.net.params, b.net.params);
        assert!(a.history.last().unwrap() < &(a.history[0] * 0.2), "{:?}", a.history);
        assert_eq!(a.restart_losses.len(), config.restarts);
    }

    #[test]
    fn minibatches_cover_the_data() {
        let mut batches = Batches::new(10, Some(4));
        let mut rng = StdRng::seed_from_u64(0);
        let mut seen = vec![];
        for _ in 0..2 {
            seen.extend_from_slice(batches.next(&mut rng));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8, "two batches of one pass never repeat a row");
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Preset::Default.config(ModelKind::Gmu, 2, 1);
        config.steps = 5;
        let data = SyntheticConfig { dim: 2, ..Default::default() }.generate(&mut StdRng::seed_from_u64(2)).unwrap();
        let model = train(&config, &data, &Device::default()).unwrap();
        save(&model, dir.path(), &Device::default()).unwrap();
        let (training, scaler, net) = load(dir.path(), &Device::default()).unwrap();
        assert_eq!(training, config);
        assert_eq!(scaler, model.scaler);
        assert_eq!(net.params, model.net.params);
    }

    /// The synthetic models load as fusion models too and predict what the
    /// native engine computes: P(C = 1) = softmax of the logits, and the gate.
    #[test]
    fn synthetic_models_predict_through_the_model_directory() {
        let device = Device::default();
        let data = toy(5);
        for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
            let mut config = Preset::Default.config(kind, 1, 2);
            config.restarts = 2;
            config.steps = 30;
            let model = train(&config, &data, &device).unwrap();
            let dir = tempfile::tempdir().unwrap();
            save(&model, dir.path(), &device).unwrap();
            let predictor = crate::predict::Predictor::load(dir.path(), &device).unwrap();
            let views = [
                crate::data::View { name: "v".into(), dim: 1, values: data.x_v.clone(), image: None, prescaled: false },
                crate::data::View { name: "t".into(), dim: 1, values: data.x_t.clone(), image: None, prescaled: false },
            ];
            let p = predictor.predict(&views).unwrap();
            let (prob, gate) = crate::experiment::Predictor::from(&model).predict(&data.joined());
            for i in 0..data.len() {
                assert!((p.probs[2 * i + 1] - prob[i]).abs() < 1e-5, "{kind} row {i}: {} vs {}", p.probs[2 * i + 1], prob[i]);
                if kind == ModelKind::Gmu {
                    assert!((p.gate_means.as_ref().unwrap()[2 * i] - gate[i]).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn a_diverging_loss_is_reported() {
        let data = toy(1);
        let mut config = Preset::Seed.config(ModelKind::Logreg, 1, 0);
        config.scaling = Scaling::None;
        config.optimizer.lr = 3e38;
        config.loss = LossKind::SoftmaxCe;
        let err = train(&config, &data, &Device::default()).unwrap_err().to_string();
        assert!(err.contains("non-finite"), "{err}");
    }
}
