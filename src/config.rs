//! The one training config of every model gmu trains: [`TrainingConfig`]
//! (the model, the optimiser, the schedule, the data handling, the engine and
//! the seed), validated once by [`TrainingConfig::validate`], saved typed in
//! the model directory's `config.json` and loaded typed. Beside it: the named
//! recipes ([`Preset`] for the synthetic experiment, [`TrainingConfig::paper`]
//! for the paper's models) and the paper's random-search ranges
//! ([`TrainingConfig::sample`]).
//!
//! `train::train` trains any config on any data: the schedule
//! decides the loop (Adam steps with restarts, or epochs with early stopping
//! on the dev macro-F1), the engine the arithmetic.
//!
//! Layer 7 (see `ARCHITECTURE.md`): it owns the one training config and its
//! checks; it imports the model layer, the data's scaling and the engine choice,
//! never the store, prediction or training.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::cpu::LossKind;
use crate::data::Scaling;
use crate::engine::{Engine, RunNeeds};
use crate::error::{GmuError, Result};
use crate::fusion::synthetic::ModelKind;
use crate::fusion::{ExpertKind, FusionKind, FusionSpec, HeadKind, SubnetSpec, Task};

/// The model, apart from what the data decide (the views' widths and
/// encoders, the number of outputs, the task): [`ModelOptions::spec`] adds those.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelOptions {
    /// Fusion method.
    pub fusion: FusionKind,
    /// The classifier on the fused vector (see [`HeadKind`] for which fusion takes which).
    pub head: HeadKind,
    /// Hidden width (GMU units, maxout units, tanh units).
    pub hidden: usize,
    /// Bias terms in the GMU and in a linear or tanh head.
    pub bias: bool,
    /// Dropout probability in the maxout MLPs.
    pub dropout: f64,
    /// Max-norm limit on every weight column; `None` for no constraint.
    pub max_norm: Option<f32>,
    /// Mixture of experts: expert kind.
    pub experts: ExpertKind,
    /// Mixture of experts: one gate for all labels.
    pub tied_gates: bool,
    /// GMU with K > 2 modalities: softmax-normalised gates (see [`FusionSpec::normalize_gates`]).
    pub normalize_gates: bool,
    /// Features out of the CNN of an image view.
    pub image_features: usize,
    /// Units of the LSTM of a token view (and width of its token embeddings).
    #[serde(default = "default_text_features")]
    pub text_features: usize,
    /// How the LSTM of a token view pools its states.
    #[serde(default)]
    pub text_pooling: crate::fusion::TextPooling,
    /// The registered method of `fusion: custom` (see [`crate::fusion::register`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// GMU: units of a hidden `tanh` layer in the gate network (0: the paper's linear gate).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gate_hidden: usize,
    /// GMU: each unit of that hidden layer reads one view only, so the gate can tell which view is broken.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gate_per_view: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_text_features() -> usize {
    64
}

impl ModelOptions {
    /// The paper's model of `fusion`: its maxout MLP head (dropout 0.5,
    /// max-norm 10), 128 hidden units, maxout experts with a gate per label.
    pub fn paper(fusion: FusionKind) -> Self {
        ModelOptions {
            fusion,
            head: HeadKind::Maxout,
            hidden: 128,
            bias: true,
            dropout: 0.5,
            max_norm: Some(10.0),
            experts: ExpertKind::Maxout,
            tied_gates: false,
            normalize_gates: false,
            image_features: 64,
            text_features: default_text_features(),
            text_pooling: crate::fusion::TextPooling::Mean,
            method: None,
            gate_hidden: 0,
            gate_per_view: false,
        }
    }

    /// The paper's model options (as [`paper`](Self::paper)) around the
    /// registered fusion method `method` (see [`crate::fusion::register`]).
    pub fn custom(method: &str) -> Self {
        ModelOptions { method: Some(method.to_string()), ..Self::paper(FusionKind::Custom) }
    }

    /// A classifier of the synthetic experiment with `hidden` units: the GMU
    /// classifier is a GMU with a linear head, the feed-forward net `concat`
    /// with a tanh head, logistic regression `concat` with a linear head.
    pub fn synthetic(kind: ModelKind, hidden: usize) -> Self {
        let (fusion, head) = match kind {
            ModelKind::Gmu => (FusionKind::Gmu, HeadKind::Linear),
            ModelKind::Ff => (FusionKind::Concat, HeadKind::Tanh),
            ModelKind::Logreg => (FusionKind::Concat, HeadKind::Linear),
        };
        ModelOptions {
            head,
            hidden: if kind == ModelKind::Logreg { 1 } else { hidden },
            dropout: 0.0,
            max_norm: None,
            ..Self::paper(fusion)
        }
    }

    /// Which synthetic-experiment classifier these options describe, if any.
    pub fn synthetic_kind(&self) -> Option<ModelKind> {
        match (self.fusion, self.head) {
            (FusionKind::Gmu, HeadKind::Linear) => Some(ModelKind::Gmu),
            (FusionKind::Concat, HeadKind::Tanh) => Some(ModelKind::Ff),
            (FusionKind::Concat, HeadKind::Linear) => Some(ModelKind::Logreg),
            _ => None,
        }
    }

    /// The model for views of widths `d_inputs` (with their `images`
    /// shapes, `None` for a feature view; the vocabulary of a token view in
    /// `tokens`), `n_outputs` classes or labels and `task`: a CNN in front of
    /// each image view, an LSTM in front of each token view.
    pub fn spec(
        &self,
        d_inputs: Vec<usize>,
        images: &[Option<[usize; 3]>],
        tokens: &[Option<usize>],
        n_outputs: usize,
        task: Task,
    ) -> FusionSpec {
        let mut spec = FusionSpec::new(self.fusion, d_inputs, self.hidden, n_outputs, task);
        spec.encoders = images
            .iter()
            .enumerate()
            .map(|(i, image)| match (*image, tokens.get(i).copied().flatten()) {
                (Some([channels, height, width]), _) => {
                    SubnetSpec::Cnn { channels, height, width, d_out: self.image_features }
                }
                (None, Some(vocab)) => SubnetSpec::Lstm {
                    vocab,
                    embed: self.text_features,
                    d_out: self.text_features,
                    pooling: self.text_pooling,
                },
                (None, None) => SubnetSpec::Identity,
            })
            .collect();
        spec.dropout = self.dropout;
        spec.experts = self.experts;
        spec.tied_gates = self.tied_gates;
        spec.normalize_gates = self.normalize_gates;
        spec.head = self.head;
        spec.bias = self.bias;
        spec.method = self.method.clone();
        // Only a GMU has a gate network; the other methods of a comparison ignore it.
        spec.gate_hidden = if self.fusion == FusionKind::Gmu { self.gate_hidden } else { 0 };
        spec.gate_per_view = self.fusion == FusionKind::Gmu && self.gate_per_view;
        spec
    }

    /// Checks what does not depend on the data; [`FusionSpec::validate`] checks the rest.
    pub fn validate(&self) -> Result<()> {
        crate::fusion::spec::check_options(self.fusion, self.head, self.bias, self.hidden, self.dropout)?;
        match (self.fusion, &self.method) {
            (FusionKind::Custom, Some(name)) => {
                crate::fusion::method::method(name)?;
            }
            (FusionKind::Custom, None) => {
                return Err(GmuError::invalid("fusion", "a custom fusion names its registered method"));
            }
            (kind, Some(name)) => {
                return Err(GmuError::invalid("fusion", format!("a {kind} model names no method, got '{name}'")));
            }
            (_, None) => {}
        }
        if let Some(m) = self.max_norm
            && !(m > 0.0 && m.is_finite())
        {
            return Err(GmuError::invalid("max_norm", format!("must be a positive number, got {m}")));
        }
        if self.image_features == 0 {
            return Err(GmuError::invalid("image_features", "must be at least 1, got 0"));
        }
        if self.text_features == 0 {
            return Err(GmuError::invalid("text_features", "must be at least 1, got 0"));
        }
        if self.gate_per_view && self.gate_hidden == 0 {
            return Err(GmuError::invalid(
                "gate_per_view",
                "per-view gate units are units of a hidden gate layer; give --gate-hidden N (N >= the views)",
            ));
        }
        if self.normalize_gates && self.fusion != FusionKind::Gmu {
            return Err(GmuError::invalid(
                "normalize_gates",
                format!("softmax gates are a GMU option, not one of {}", self.fusion),
            ));
        }
        Ok(())
    }
}

/// Adam's settings. ε defaults to 1e-8 (TensorFlow, PyTorch, optax); burn's
/// own default is 1e-5, so it is always set explicitly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamSettings {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// Denominator term.
    pub epsilon: f32,
}

impl AdamSettings {
    /// β = 0.9, 0.999, ε = 1e-8 at learning rate `lr`.
    pub fn with_lr(lr: f64) -> Self {
        AdamSettings { lr, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8 }
    }
}

/// How long training runs and which weights it keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Schedule {
    /// A fixed number of Adam steps from each of `restarts` initialisations;
    /// the one with the lowest final training loss is kept (never chosen on
    /// held-out data). The synthetic experiment's schedule; no dev split needed.
    Steps {
        /// Adam steps per initialisation.
        steps: usize,
        /// Minibatch size; `None` for full batch (the seed).
        batch_size: Option<usize>,
        /// Independent initialisations.
        restarts: usize,
    },
    /// Epochs over the shuffled training rows, stopping after `patience`
    /// epochs without a better dev macro-F1 and keeping the best epoch's weights
    /// (the paper's schedule).
    Epochs {
        /// Upper bound on epochs.
        max_epochs: usize,
        /// Epochs without a better dev macro-F1 before stopping.
        patience: usize,
        /// Minibatch size.
        batch_size: usize,
    },
}

impl Schedule {
    /// The minibatch size, `None` for full batch.
    pub fn batch_size(&self) -> Option<usize> {
        match *self {
            Schedule::Steps { batch_size, .. } => batch_size,
            Schedule::Epochs { batch_size, .. } => Some(batch_size),
        }
    }
}

/// Which epoch's weights an epochs schedule keeps (`--keep`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The epoch with the best dev macro-F1, with early stopping after
    /// `patience` epochs without a better one (the paper's schedule).
    #[default]
    Best,
    /// The last epoch: every epoch runs, no early stopping. For objectives that
    /// dev macro-F1 does not measure, such as the gate-supervision term: the
    /// gate learns after the task has (on mfeat fou + zer, dev F1 peaks at
    /// epochs 22-32 while the gate turns from epoch 40 on).
    Last,
}

impl Keep {
    /// Whether this is the default ([`Keep::Best`]); configs leave it out then.
    pub fn is_best(&self) -> bool {
        *self == Keep::Best
    }
}

/// How a corrupted view is corrupted in training (`--noise-kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseKind {
    /// Gaussian noise on the standardised inputs, σ drawn from the range.
    Gaussian,
    /// The view of another random training sample (a misaligned pair).
    Swap,
    /// The view at its training mean (zero after standardisation).
    Zero,
    /// One of the three, drawn uniformly per corrupted sample.
    #[default]
    Mixed,
}

/// Corrupted views in training (`--view-noise`): each training sample, with
/// probability `p`, gets one of its present views (drawn uniformly; never
/// when fewer than two of the model's views are present) corrupted as
/// `kind` says, fresh every epoch. The draws depend on the run's seed, the
/// epoch and the data row only, so every method of a comparison (and every
/// member of `avg-probs`) sees the same corruption.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewNoise {
    /// Share of the training samples corrupted each epoch (0: off).
    pub p: f64,
    /// What corruption.
    pub kind: NoiseKind,
    /// The range σ is drawn from, uniformly (Gaussian noise).
    pub sigma: (f32, f32),
    /// Weight of the gate-supervision term (0: none): for gated models, the
    /// batch loss gains `w · Σ −ln(1 − z)` over each corrupted row's gates
    /// `z` of its corrupted view (summed over the units), divided by the
    /// batch's rows, so the gate is taught to close on the view this run broke.
    /// With per-view gate units, only Gaussian noise counts (a unit that reads
    /// one view cannot tell a swapped or zeroed view from a clean one).
    /// Absent from configs written before it existed (0).
    #[serde(default, skip_serializing_if = "is_zero_weight")]
    pub gate_supervision: f32,
    /// With gate supervision, the weight of its other side: `w · Σ −ln z` over
    /// the gates of every present view that the row does not have corrupted in
    /// any way, divided by the batch's rows, so supervision does not close a
    /// view's gate on clean rows too (where a gate cannot tell its view's noise,
    /// the one-sided term lowers it everywhere). With the paper's two-view gate
    /// (`z`, `1 − z`) it pulls a clean row's gate towards 0.5. Absent from
    /// configs written before it existed (0: the one-sided term they trained with).
    #[serde(default, skip_serializing_if = "is_zero_weight")]
    pub gate_supervision_clean: f32,
}

fn is_zero_weight(w: &f32) -> bool {
    *w == 0.0
}

impl Default for ViewNoise {
    fn default() -> Self {
        ViewNoise {
            p: 0.0,
            kind: NoiseKind::Mixed,
            sigma: (0.5, 4.0),
            gate_supervision: 0.0,
            gate_supervision_clean: 0.0,
        }
    }
}

impl ViewNoise {
    /// Whether no sample is corrupted.
    pub fn is_off(&self) -> bool {
        self.p == 0.0
    }

    /// Whether training adds the gate-supervision term: view noise on and a
    /// weight above 0.
    pub fn supervises_gates(&self) -> bool {
        !self.is_off() && self.gate_supervision > 0.0
    }

    /// Checks the share and the σ range; names the flag at fault.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(GmuError::invalid("view_noise", format!("must be in [0, 1), got {}", self.p)));
        }
        let (lo, hi) = self.sigma;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            return Err(GmuError::invalid("noise_sigma", format!("expected LO,HI with 0 <= LO <= HI, got {lo},{hi}")));
        }
        for (field, w) in
            [("gate_supervision", self.gate_supervision), ("gate_supervision_clean", self.gate_supervision_clean)]
        {
            if !(w.is_finite() && w >= 0.0) {
                return Err(GmuError::invalid(field, format!("a weight >= 0 is expected, got {w}")));
            }
        }
        Ok(())
    }
}

/// Everything that decides a training run. Saved in the model directory's `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// The model.
    pub model: ModelOptions,
    /// The optimiser.
    pub optimizer: AdamSettings,
    /// Steps with restarts, or epochs with early stopping.
    pub schedule: Schedule,
    /// The loss; `None` for the task's own (softmax cross-entropy for one
    /// class per sample, a binary cross-entropy per label for multilabel).
    /// `sigmoid-bce` on single-label data is the seed post's sigmoid
    /// cross-entropy on one-hot targets (models with a linear or tanh head).
    pub loss: Option<LossKind>,
    /// Scaling of each feature view, fitted on the training rows (image
    /// views are mapped from [0, 1] to [−1, 1]; prescaled views are left as they are).
    pub scaling: Scaling,
    /// Multilabel decision threshold on each label's probability.
    pub threshold: f32,
    /// Fill the missing cells of a row that is only partly missing with the
    /// column's training mean (otherwise such a row is an error).
    pub impute: bool,
    /// Modality dropout: each training sample loses each view with this
    /// probability (never all of them; the missing-view rule of
    /// [`FusionNet::forward_present`](crate::fusion::FusionNet::forward_present)
    /// applies). 0 turns it off.
    pub modality_dropout: f64,
    /// Corrupted views in training (off by default; absent from older configs).
    #[serde(default, skip_serializing_if = "ViewNoise::is_off")]
    pub view_noise: ViewNoise,
    /// Which epoch's weights an epochs schedule keeps (best by default; absent from older configs).
    #[serde(default, skip_serializing_if = "Keep::is_best")]
    pub keep: Keep,
    /// Which engine runs the arithmetic ([`Engine::Auto`] picks by what the model and device support).
    pub engine: Engine,
    /// Seed of the initialisation, dropout, modality dropout and batch order.
    pub seed: u64,
}

impl TrainingConfig {
    /// What this run asks of a training engine ([`Engine::pick`]), given
    /// whether some training rows lack a view.
    pub fn run_needs(&self, missing: bool) -> RunNeeds {
        RunNeeds {
            missing,
            modality_dropout: self.modality_dropout,
            view_noise: !self.view_noise.is_off(),
            gate_supervision: self.view_noise.supervises_gates(),
            max_norm: self.model.max_norm.is_some(),
            loss: self.loss,
        }
    }

    /// The paper's recipe for `fusion`: its model ([`ModelOptions::paper`]),
    /// Adam at 1e-3, epochs of 64 with early stopping (100 at most, patience 10), standardised features.
    pub fn paper(fusion: FusionKind) -> Self {
        TrainingConfig {
            model: ModelOptions::paper(fusion),
            optimizer: AdamSettings::with_lr(1e-3),
            schedule: Schedule::Epochs { max_epochs: 100, patience: 10, batch_size: 64 },
            loss: None,
            scaling: Scaling::Standardize,
            threshold: 0.5,
            impute: false,
            modality_dropout: 0.0,
            view_noise: ViewNoise::default(),
            keep: Keep::Best,
            engine: Engine::Auto,
            seed: 0,
        }
    }

    /// Checks every number and combination that does not depend on the data; names the parameter at fault.
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
        match self.schedule {
            Schedule::Steps { steps, batch_size, restarts } => {
                if steps == 0 {
                    return Err(GmuError::invalid("steps", "at least one training step is needed"));
                }
                crate::budget::ensure(
                    "steps",
                    &format!("the loss log of {steps} steps"),
                    crate::budget::product(&[steps, 4]),
                )?;
                if batch_size == Some(0) {
                    return Err(GmuError::invalid("batch_size", "a batch needs at least one sample"));
                }
                if restarts == 0 {
                    return Err(GmuError::invalid("restarts", "at least one initialisation is needed"));
                }
            }
            Schedule::Epochs { max_epochs, patience, batch_size } => {
                if max_epochs == 0 {
                    return Err(GmuError::invalid("max_epochs", "must be at least 1"));
                }
                if patience == 0 {
                    return Err(GmuError::invalid("patience", "must be at least 1"));
                }
                if batch_size == 0 {
                    return Err(GmuError::invalid("batch_size", "must be at least 1"));
                }
            }
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(GmuError::invalid("threshold", format!("must be in (0, 1), got {}", self.threshold)));
        }
        if !(0.0..1.0).contains(&self.modality_dropout) {
            return Err(GmuError::invalid(
                "modality_dropout",
                format!("must be in [0, 1), got {}", self.modality_dropout),
            ));
        }
        self.view_noise.validate()?;
        if !self.view_noise.is_off() && !matches!(self.schedule, Schedule::Epochs { .. }) {
            return Err(GmuError::invalid(
                "view_noise",
                "corrupted views are drawn per epoch; this run trains in steps",
            ));
        }
        if self.keep == Keep::Last && !matches!(self.schedule, Schedule::Epochs { .. }) {
            return Err(GmuError::invalid("keep", "`last` chooses among epochs; this run trains in steps"));
        }
        if self.loss == Some(LossKind::SigmoidBce) && self.model.head == HeadKind::Maxout {
            return Err(GmuError::invalid("loss", "sigmoid-bce on one-hot targets needs a linear or tanh head"));
        }
        Ok(())
    }

    /// A short name for tables: `gmu`, `moe-maxout-untied`, `ff`, …
    pub fn label(&self) -> String {
        let m = &self.model;
        match m.fusion {
            FusionKind::Moe => format!(
                "moe-{}{}",
                match m.experts {
                    ExpertKind::Logistic => "logistic",
                    ExpertKind::Maxout => "maxout",
                },
                if m.tied_gates { "-tied" } else { "" }
            ),
            FusionKind::Custom => m.method.clone().unwrap_or_else(|| "custom".into()),
            _ => match m.synthetic_kind() {
                Some(ModelKind::Ff) => "ff".into(),
                Some(ModelKind::Logreg) => "logreg".into(),
                _ => m.fusion.to_string(),
            },
        }
    }

    /// The paper's random-search ranges: hidden ∈ {64, 128, 256, 512},
    /// lr log-uniform in [1e-3, 1e-1], dropout uniform in [0.3, 0.7],
    /// max-norm uniform in [5, 20]. Every other field is kept.
    pub fn sample(&self, rng: &mut impl Rng) -> TrainingConfig {
        let mut c = self.clone();
        c.model.hidden = [64, 128, 256, 512][rng.random_range(0..4)];
        c.optimizer.lr = 10f64.powf(rng.random_range(-3.0..-1.0));
        c.model.dropout = rng.random_range(0.3..0.7);
        c.model.max_norm = Some(rng.random_range(5.0..20.0));
        c
    }
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
    /// The training config of the synthetic experiment's classifier `kind` under this preset.
    pub fn config(self, kind: ModelKind, seed: u64) -> TrainingConfig {
        let hidden = if kind == ModelKind::Ff { 8 } else { 1 };
        let base = TrainingConfig {
            model: ModelOptions::synthetic(kind, hidden),
            optimizer: AdamSettings::with_lr(0.1),
            engine: Engine::Auto,
            seed,
            ..TrainingConfig::paper(FusionKind::Gmu)
        };
        match self {
            Preset::Seed => TrainingConfig {
                loss: Some(LossKind::SigmoidBce),
                schedule: Schedule::Steps { steps: 100, batch_size: None, restarts: 1 },
                scaling: Scaling::Center,
                ..base
            },
            Preset::Default => TrainingConfig {
                loss: Some(LossKind::SoftmaxCe),
                // Logistic regression is convex: one start finds its optimum.
                schedule: Schedule::Steps {
                    steps: 200,
                    batch_size: None,
                    restarts: if kind == ModelKind::Logreg { 1 } else { 10 },
                },
                scaling: Scaling::Standardize,
                ..base
            },
        }
    }
}

/// The options of the paper's epoch-trained models as a user gives them:
/// the flags of `gmu multiview` and `gmu mmimdb`, and the keyword arguments
/// of Python's `gmu.fit`, with the same names and defaults
/// (`multiview`'s; `mmimdb` changes `hidden` to 512 and `batch_size` to 128).
/// [`config`](Self::config) turns them into the validated [`TrainingConfig`]
/// both train with. An unknown name is an error when read from JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpochOptions {
    /// Fusion method.
    pub fusion: FusionKind,
    /// The classifier on the fused vector.
    pub head: HeadKind,
    /// Mixture of experts: expert kind.
    pub experts: ExpertKind,
    /// Mixture of experts: one gate for all labels.
    pub tied_gates: bool,
    /// GMU with K > 2 views: softmax-normalised gates.
    pub gate_softmax: bool,
    /// GMU: units of a hidden `tanh` layer in the gate network (0: linear, the paper's).
    pub gate_hidden: usize,
    /// GMU: each hidden gate unit reads one view only.
    pub gate_per_view: bool,
    /// Training engine.
    pub engine: Engine,
    /// Hidden width (GMU and maxout units).
    pub hidden: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Dropout after each maxout layer.
    pub dropout: f64,
    /// Max-norm limit on every weight column (0: none).
    pub max_norm: f32,
    /// Minibatch size.
    pub batch_size: usize,
    /// Multilabel decisions: a label is predicted at or above this probability.
    pub threshold: f32,
    /// Most epochs.
    pub epochs: usize,
    /// Early stopping: epochs without a better dev macro-F1.
    pub patience: usize,
    /// Each training sample loses each view with this probability (never all).
    pub modality_dropout: f64,
    /// Each training sample gets one view corrupted with this probability (see [`ViewNoise`]).
    pub view_noise: f64,
    /// How a corrupted view is corrupted.
    pub noise_kind: NoiseKind,
    /// The range of the Gaussian noise's σ, `[LO, HI]`.
    pub noise_sigma: [f32; 2],
    /// Weight of the term that teaches the gate to close on the corrupted view (with view noise).
    pub gate_supervision: f32,
    /// With gate supervision, the weight of the term that keeps a clean view's gate open.
    pub gate_supervision_clean: f32,
    /// Which epoch's weights to keep.
    pub keep: Keep,
    /// Fill the missing cells of partly missing rows with the training means.
    pub impute: bool,
    /// Seed of the initialisation, dropout and batch order.
    pub seed: u64,
}

impl Default for EpochOptions {
    fn default() -> Self {
        EpochOptions {
            fusion: FusionKind::Gmu,
            head: HeadKind::Maxout,
            experts: ExpertKind::Maxout,
            tied_gates: false,
            gate_softmax: false,
            gate_hidden: 0,
            gate_per_view: false,
            engine: Engine::Auto,
            hidden: 128,
            lr: 1e-3,
            dropout: 0.5,
            max_norm: 10.0,
            batch_size: 64,
            threshold: 0.5,
            epochs: 100,
            patience: 10,
            modality_dropout: 0.0,
            view_noise: 0.0,
            noise_kind: NoiseKind::Mixed,
            noise_sigma: [0.5, 4.0],
            gate_supervision: 0.0,
            gate_supervision_clean: 0.0,
            keep: Keep::Best,
            impute: false,
            seed: 0,
        }
    }
}

impl EpochOptions {
    /// The paper's recipe for [`fusion`](Self::fusion) with these options, validated.
    pub fn config(&self) -> Result<TrainingConfig> {
        let mut config = TrainingConfig::paper(self.fusion);
        let m = &mut config.model;
        (m.hidden, m.dropout, m.head) = (self.hidden, self.dropout, self.head);
        (m.experts, m.tied_gates, m.normalize_gates) = (self.experts, self.tied_gates, self.gate_softmax);
        (m.gate_hidden, m.gate_per_view) = (self.gate_hidden, self.gate_per_view);
        m.max_norm = (self.max_norm != 0.0).then_some(self.max_norm);
        config.optimizer.lr = self.lr;
        config.schedule =
            Schedule::Epochs { max_epochs: self.epochs, patience: self.patience, batch_size: self.batch_size };
        config.seed = self.seed;
        config.engine = self.engine;
        config.modality_dropout = self.modality_dropout;
        let [lo, hi] = self.noise_sigma;
        config.view_noise = ViewNoise {
            p: self.view_noise,
            kind: self.noise_kind,
            sigma: (lo, hi),
            gate_supervision: if self.view_noise > 0.0 { self.gate_supervision } else { 0.0 },
            gate_supervision_clean: if self.view_noise > 0.0 && self.gate_supervision > 0.0 {
                self.gate_supervision_clean
            } else {
                0.0
            },
        };
        config.impute = self.impute;
        config.threshold = self.threshold;
        config.keep = self.keep;
        config.validate()?;
        Ok(config)
    }
}

/// Changes to a preset's config, one per optional flag (`None` keeps the preset's value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    /// Hidden width (GMU units or FF hidden units; logistic regression has none).
    pub hidden: Option<usize>,
    /// Adam learning rate.
    pub lr: Option<f64>,
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
    /// `config` with every set field replaced. Steps, batch size and restarts
    /// apply to the steps schedule; on an epochs schedule the batch size does.
    pub fn apply(&self, mut config: TrainingConfig) -> TrainingConfig {
        if let Some(h) = self.hidden
            && config.model.synthetic_kind() != Some(ModelKind::Logreg)
        {
            config.model.hidden = h;
        }
        if let Some(lr) = self.lr {
            config.optimizer.lr = lr;
        }
        match &mut config.schedule {
            Schedule::Steps { steps, batch_size, restarts } => {
                *steps = self.steps.unwrap_or(*steps);
                *batch_size = self.batch_size.or(*batch_size);
                *restarts = self.restarts.unwrap_or(*restarts);
            }
            Schedule::Epochs { batch_size, .. } => *batch_size = self.batch_size.unwrap_or(*batch_size),
        }
        config.scaling = self.scaling.unwrap_or(config.scaling);
        config.loss = self.loss.or(config.loss);
        config.model.bias = self.bias.unwrap_or(config.model.bias);
        config.engine = self.engine.unwrap_or(config.engine);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_through_json_typed() {
        for config in [TrainingConfig::paper(FusionKind::Moe), Preset::Seed.config(ModelKind::Ff, 3)] {
            let text = serde_json::to_string(&config).unwrap();
            assert_eq!(serde_json::from_str::<TrainingConfig>(&text).unwrap(), config);
        }
        let text = serde_json::to_string(&Preset::Default.config(ModelKind::Gmu, 0).schedule).unwrap();
        assert_eq!(text, r#"{"kind":"steps","steps":200,"batch_size":null,"restarts":10}"#);
    }

    #[test]
    fn validation_names_the_parameter() {
        let bad = |f: &dyn Fn(&mut TrainingConfig)| {
            let mut c = TrainingConfig::paper(FusionKind::Gmu);
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(&|c| c.optimizer.lr = f64::NAN).contains("lr"));
        assert!(bad(&|c| c.model.max_norm = Some(f32::NAN)).contains("max_norm"));
        assert!(bad(&|c| c.model.max_norm = Some(-1.0)).contains("max_norm"));
        assert!(
            bad(&|c| c.schedule = Schedule::Epochs { max_epochs: 3, patience: 0, batch_size: 8 }).contains("patience")
        );
        assert!(
            bad(&|c| c.schedule = Schedule::Steps { steps: 3, batch_size: None, restarts: 0 }).contains("restarts")
        );
        assert!(bad(&|c| c.threshold = f32::NAN).contains("threshold"));
        assert!(bad(&|c| c.model.head = HeadKind::Tanh).contains("head"));
        assert!(
            bad(&|c| {
                c.model.fusion = FusionKind::Concat;
                c.model.normalize_gates = true;
            })
            .contains("normalize_gates")
        );
        assert!(bad(&|c| c.loss = Some(LossKind::SigmoidBce)).contains("loss"));
    }

    #[test]
    fn synthetic_presets_are_the_seed_and_the_robust_recipe() {
        let seed = Preset::Seed.config(ModelKind::Gmu, 1);
        assert_eq!(seed.schedule, Schedule::Steps { steps: 100, batch_size: None, restarts: 1 });
        assert_eq!((seed.model.fusion, seed.model.head, seed.model.hidden), (FusionKind::Gmu, HeadKind::Linear, 1));
        assert_eq!(seed.loss, Some(LossKind::SigmoidBce));
        assert_eq!(Preset::Default.config(ModelKind::Ff, 1).label(), "ff");
        assert_eq!(
            Preset::Default.config(ModelKind::Logreg, 1).schedule,
            Schedule::Steps { steps: 200, batch_size: None, restarts: 1 }
        );
        for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
            assert_eq!(ModelOptions::synthetic(kind, 4).synthetic_kind(), Some(kind));
            Preset::Default.config(kind, 0).validate().unwrap();
        }
    }

    #[test]
    fn search_samples_stay_in_the_papers_ranges() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let base = TrainingConfig::paper(FusionKind::Gmu);
        for _ in 0..50 {
            let c = base.sample(&mut rng);
            assert!([64, 128, 256, 512].contains(&c.model.hidden));
            assert!((1e-3..=1e-1).contains(&c.optimizer.lr));
            assert!((0.3..0.7).contains(&c.model.dropout));
            assert!((5.0..20.0).contains(&c.model.max_norm.unwrap()));
            assert_eq!(c.schedule, base.schedule);
        }
    }
}
