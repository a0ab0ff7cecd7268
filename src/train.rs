//! Training: [`TrainingConfig`] (saved as `config.json` beside the weights),
//! input scaling, initialisation, the Adam loop on either engine, restarts,
//! and saving/loading a trained model.

use std::path::Path;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::SyntheticData;
use crate::error::{GmuError, Result, temp_path, write_atomic};
use crate::model::{Classifier, ModelKind, ModelSpec};
use crate::native::{Adam, LossKind, Network, Workspace};

/// How inputs are scaled before training (the statistics come from the
/// training data and are saved with the model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scaling {
    /// Raw inputs.
    None,
    /// Subtract the mean of each column (the seed post).
    Center,
    /// Subtract the mean and divide by the standard deviation of each column.
    Standardize,
}

/// Which implementation runs the training loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The hand-differentiated `f32` engine ([`crate::native`]); the fast path for small models.
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
            return Err(GmuError::invalid("--lr", format!("a learning rate > 0 is expected, got {}", o.lr)));
        }
        if !(0.0..1.0).contains(&o.beta_1) || !(0.0..1.0).contains(&o.beta_2) {
            return Err(GmuError::invalid("beta", "Adam's betas must lie in [0, 1)"));
        }
        if !(o.epsilon.is_finite() && o.epsilon > 0.0) {
            return Err(GmuError::invalid("epsilon", format!("a value > 0 is expected, got {}", o.epsilon)));
        }
        if self.steps == 0 {
            return Err(GmuError::invalid("--steps", "at least one training step is needed"));
        }
        if self.batch_size == Some(0) {
            return Err(GmuError::invalid("--batch-size", "a batch needs at least one sample"));
        }
        if self.restarts == 0 {
            return Err(GmuError::invalid("--restarts", "at least one initialisation is needed"));
        }
        Ok(())
    }
}

/// Per-column affine scaling fitted on training data: `(x − mean) / scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Column means (zeros for [`Scaling::None`]).
    pub mean: Vec<f32>,
    /// Column scales (ones unless [`Scaling::Standardize`]).
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Fits the scaler on row-major `x` with `d` columns.
    pub fn fit(x: &[f32], d: usize, scaling: Scaling) -> Self {
        let n = (x.len() / d).max(1) as f64;
        let mut mean = vec![0.0f32; d];
        let mut scale = vec![1.0f32; d];
        if scaling != Scaling::None {
            for j in 0..d {
                let m = x.iter().skip(j).step_by(d).map(|&v| v as f64).sum::<f64>() / n;
                mean[j] = m as f32;
                if scaling == Scaling::Standardize {
                    let var = x.iter().skip(j).step_by(d).map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
                    scale[j] = if var > 0.0 { var.sqrt() as f32 } else { 1.0 };
                }
            }
        }
        Scaler { mean, scale }
    }

    /// Scales row-major `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        let d = self.mean.len();
        for row in x.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
    }
}

/// A trained model: its config, scaler and weights, plus what the run measured.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// The config it was trained with.
    pub config: TrainingConfig,
    /// Input scaling fitted on the training data.
    pub scaler: Scaler,
    /// The weights, in the fast engine (they load into burn with [`ModelSpec::to_burn`]).
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
        Err(GmuError::NonFinite(format!("the training loss is {loss} at step {step}; lower --lr or check the data")))
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
pub fn train(config: &TrainingConfig, data: &SyntheticData) -> Result<TrainedModel> {
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
    let scaler = Scaler::fit(&x, spec.d_in(), config.scaling);
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
            Engine::Burn => train_burn(config, init, &x, &data.c, &mut rng)?,
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
pub fn burn_loss_and_grad(model: &Classifier, x: &[f32], y: &[u8], spec: &ModelSpec, kind: LossKind, device: &Device) -> (f32, Vec<f32>) {
    let (xv, xt) = split_inputs(x, spec.d_v, spec.d_t, device);
    let loss = burn_loss(model.forward(xv, xt).logits, one_hot(y, spec.n_classes, device), kind);
    let value = loss.clone().into_scalar::<f32>();
    let grads = loss.backward();
    let layers: Vec<&burn::nn::Linear> = match model {
        Classifier::Gmu(m) => vec![&m.gmu.transforms[0], &m.gmu.transforms[1], &m.gmu.gate, &m.head],
        Classifier::Ff(m) => vec![&m.hidden, &m.head],
        Classifier::Logreg(m) => vec![&m.head],
    };
    let mut out = vec![];
    for layer in layers {
        out.extend(layer.weight.val().grad(&grads).expect("weight grad").into_data().try_to_vec::<f32>().unwrap());
        if let Some(b) = &layer.bias {
            out.extend(b.val().grad(&grads).expect("bias grad").into_data().try_to_vec::<f32>().unwrap());
        }
    }
    (value, out)
}

/// The Adam loop on burn (autodiff on the default CPU backend).
pub fn train_burn(config: &TrainingConfig, init: Vec<f32>, x: &[f32], y: &[u8], rng: &mut impl Rng) -> Result<(Vec<f32>, Vec<f32>)> {
    let device = Device::default().autodiff();
    let spec = &config.model;
    let mut model = spec.to_burn(&init, &device)?;
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
        let loss = burn_loss(model.forward(xv, xt).logits, targets, config.loss);
        let value = loss.clone().into_scalar::<f32>();
        check_finite(value, step)?;
        history.push(value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(o.lr as f64, model, grads);
    }
    Ok((model.flat_params(), history))
}

/// What `config.json` holds beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedConfig {
    /// The training config.
    pub training: TrainingConfig,
    /// The input scaling fitted on the training data.
    pub scaler: Scaler,
}

/// File names inside a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights, as safetensors written by burn.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Saves `config.json` and `model.safetensors` in `dir` (created if needed),
/// each written to a temporary file first and then renamed.
pub fn save(model: &TrainedModel, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| GmuError::io(dir, e))?;
    let saved = SavedConfig { training: model.config.clone(), scaler: model.scaler.clone() };
    let json = serde_json::to_string_pretty(&saved).expect("config serialises");
    let weights = dir.join(WEIGHTS_FILE);
    let tmp = temp_path(&weights);
    let device = Device::default();
    let module = model.config.model.to_burn(&model.net.params, &device)?;
    let mut store = SafetensorsStore::from_file(&tmp).overwrite(true);
    module.save_into(&mut store).map_err(|e| GmuError::Store { path: weights.clone(), message: e.to_string() })?;
    std::fs::rename(&tmp, &weights).map_err(|e| GmuError::io(&weights, e))?;
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// Loads a model directory written by [`save`].
pub fn load(dir: &Path) -> Result<(SavedConfig, Network)> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| GmuError::io(&config_path, e))?;
    let saved: SavedConfig = serde_json::from_str(&text)
        .map_err(|e| GmuError::Store { path: config_path.clone(), message: format!("not a gmu training config: {e}") })?;
    saved.training.validate()?;
    let spec = saved.training.model.clone();
    if saved.scaler.mean.len() != spec.d_in() || saved.scaler.scale.len() != spec.d_in() {
        return Err(GmuError::Store { path: config_path, message: "the scaler does not match the model's input width".into() });
    }
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.exists() {
        return Err(GmuError::Store { path: weights, message: "missing weights file".into() });
    }
    let device = Device::default();
    let mut module = spec.to_burn(&vec![0.0; spec.n_params()], &device)?;
    let mut store = SafetensorsStore::from_file(&weights);
    let result = module.load_from(&mut store).map_err(|e| GmuError::Store { path: weights.clone(), message: e.to_string() })?;
    if !result.is_success() {
        return Err(GmuError::Store { path: weights, message: format!("weights do not match the config: {result:?}") });
    }
    let params = module.flat_params();
    if params.iter().any(|p| !p.is_finite()) {
        return Err(GmuError::NonFinite(format!("{}: the weights contain NaN or infinity", weights.display())));
    }
    Ok((saved, Network::new(spec, params)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SyntheticConfig;

    fn toy(seed: u64) -> SyntheticData {
        SyntheticConfig::default().generate(&mut StdRng::seed_from_u64(seed)).unwrap()
    }

    /// The two engines follow the same trajectory from the same initialisation.
    #[test]
    fn native_and_burn_engines_agree_step_by_step() {
        let data = toy(3);
        for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
            let mut config = Preset::Seed.config(kind, 1, 4);
            config.steps = 25;
            let native = train(&config, &data).unwrap();
            config.engine = Engine::Burn;
            let burn = train(&config, &data).unwrap();
            for (a, b) in native.history.iter().zip(&burn.history) {
                assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{kind}: {:?} vs {:?}", native.history, burn.history);
            }
            for (a, b) in native.net.params.iter().zip(&burn.net.params) {
                assert!((a - b).abs() < 1e-3, "{kind}");
            }
        }
    }

    #[test]
    fn same_seed_same_model_and_loss_falls() {
        let data = toy(1);
        let config = Preset::Default.config(ModelKind::Gmu, 1, 9);
        let a = train(&config, &data).unwrap();
        let b = train(&config, &data).unwrap();
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
        let model = train(&config, &data).unwrap();
        save(&model, dir.path()).unwrap();
        let (saved, net) = load(dir.path()).unwrap();
        assert_eq!(saved.training, config);
        assert_eq!(saved.scaler, model.scaler);
        assert_eq!(net.params, model.net.params);
    }

    #[test]
    fn a_diverging_loss_is_reported() {
        let data = toy(1);
        let mut config = Preset::Seed.config(ModelKind::Logreg, 1, 0);
        config.scaling = Scaling::None;
        config.optimizer.lr = 3e38;
        config.loss = LossKind::SoftmaxCe;
        let err = train(&config, &data).unwrap_err().to_string();
        assert!(err.contains("non-finite"), "{err}");
    }

    #[test]
    fn scaler_standardizes_columns() {
        let x = vec![1.0, 10.0, 3.0, 30.0];
        let s = Scaler::fit(&x, 2, Scaling::Standardize);
        let mut y = x.clone();
        s.apply(&mut y);
        assert_eq!(y, vec![-1.0, -1.0, 1.0, 1.0]);
        assert_eq!(Scaler::fit(&x, 2, Scaling::Center).scale, vec![1.0, 1.0]);
    }
}
