//! Training any [`FusionSpec`] model on [`MultiviewData`]: minibatch Adam with
//! dropout and the max-norm constraint, modality dropout, imputation of partly
//! missing rows, early stopping on the dev split's macro-F1 (keeping the best
//! checkpoint), late fusion (`avg-probs`), gate and occlusion-importance
//! reports, the model directory of a trained model, and the random search
//! over the paper's hyper-parameter ranges. Prediction and scoring live in
//! [`predict`](crate::predict), which evaluation here goes through.
//!
//! Single-label and multilabel tasks go through the same code: the targets
//! decide softmax + cross-entropy + argmax or sigmoids + binary cross-entropy
//! + a threshold.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::{DataRecord, MultiviewData, Scaler, Scaling, Split, Targets, View};
use crate::engine::Adam;
use crate::engine::dense::{DenseGmu, DenseWorkspace};
use crate::error::{GmuError, Result};
use crate::fusion::{EncoderSpec, ExpertKind, FusionKind, FusionNet, FusionSpec, HeadKind, MaxNorm, Task};
use crate::model_dir::{self, FORMAT_VERSION, MemberConfig, ModelConfig, TrainingRecord, ViewSpec};
pub use crate::predict::{Evaluation, Prediction, score};
use crate::predict::{self, MemberRef};

/// Hyper-parameters of one training run (saved as `config.json` beside the weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Fusion method.
    pub fusion: FusionKind,
    /// Hidden width (GMU units, maxout units).
    pub hidden: usize,
    /// Dropout probability in the maxout MLPs.
    pub dropout: f64,
    /// Max-norm limit on every weight column; `None` for no constraint.
    pub max_norm: Option<f32>,
    /// Adam learning rate (β = 0.9, 0.999; ε = 1e-8).
    pub lr: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Upper bound on epochs.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better dev macro-F1.
    pub patience: usize,
    /// Multilabel decision threshold on each label's probability.
    pub threshold: f32,
    /// Mixture of experts: expert kind.
    pub experts: ExpertKind,
    /// Mixture of experts: one gate for all labels.
    pub tied_gates: bool,
    /// GMU with K > 2 modalities: softmax-normalised gates (see [`FusionSpec::normalize_gates`]).
    #[serde(default)]
    pub normalize_gates: bool,
    /// The classifier on the fused vector (GMU only; the others use the maxout MLP).
    #[serde(default)]
    pub head: HeadKind,
    /// Training engine.
    #[serde(default)]
    pub engine: FitEngine,
    /// Fill the missing cells of a row that is only partly missing with the
    /// column's training mean (otherwise such a row is an error).
    #[serde(default)]
    pub impute: bool,
    /// Modality dropout: each training sample loses each view with this
    /// probability (never all of them; the missing-view rule of
    /// [`FusionNet::forward_present`] applies), so the model learns to cope
    /// with missing views. 0 turns it off.
    #[serde(default)]
    pub modality_dropout: f64,
    /// Features out of the CNN of an image view.
    pub image_features: usize,
    /// Seed of the initialisation, dropout and batch order.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            fusion: FusionKind::Gmu,
            hidden: 128,
            dropout: 0.5,
            max_norm: Some(10.0),
            lr: 1e-3,
            batch_size: 64,
            max_epochs: 100,
            patience: 10,
            threshold: 0.5,
            experts: ExpertKind::Maxout,
            tied_gates: false,
            normalize_gates: false,
            head: HeadKind::Maxout,
            engine: FitEngine::Auto,
            modality_dropout: 0.0,
            impute: false,
            image_features: 64,
            seed: 0,
        }
    }
}

impl FitConfig {
    /// Checks the numbers; names the flag at fault.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(GmuError::invalid("lr", format!("must be a positive number, got {}", self.lr)));
        }
        if self.hidden == 0 {
            return Err(GmuError::invalid("hidden", "must be at least 1, got 0"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(GmuError::invalid("dropout", format!("must be in [0, 1), got {}", self.dropout)));
        }
        if self.batch_size == 0 {
            return Err(GmuError::invalid("batch_size", "must be at least 1"));
        }
        if self.max_epochs == 0 {
            return Err(GmuError::invalid("max_epochs", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.threshold) || self.threshold == 0.0 {
            return Err(GmuError::invalid("threshold", format!("must be in (0, 1), got {}", self.threshold)));
        }
        if let Some(m) = self.max_norm
            && !(m > 0.0 && m.is_finite())
        {
            return Err(GmuError::invalid("max_norm", format!("must be positive, got {m}")));
        }
        if !(0.0..1.0).contains(&self.modality_dropout) {
            return Err(GmuError::invalid("modality_dropout", format!("must be in [0, 1), got {}", self.modality_dropout)));
        }
        Ok(())
    }

    /// A short name for tables: `gmu`, `moe-maxout-untied`, …
    pub fn label(&self) -> String {
        match self.fusion {
            FusionKind::Moe => format!(
                "moe-{}{}",
                match self.experts {
                    ExpertKind::Logistic => "logistic",
                    ExpertKind::Maxout => "maxout",
                },
                if self.tied_gates { "-tied" } else { "" }
            ),
            other => other.to_string(),
        }
    }
}

/// Which engine trains a model (CLI `--engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FitEngine {
    /// The dense GEMM engine ([`crate::engine::dense`]) where it applies (`--fusion gmu --head linear`,
    /// two feature modalities), burn's autodiff otherwise.
    #[default]
    Auto,
    /// burn's autodiff for every model.
    Burn,
}

/// One trained network and the views it reads.
#[derive(Clone, Debug)]
pub struct Member {
    /// Indices into the data's views.
    pub modalities: Vec<usize>,
    /// The model's shape.
    pub spec: FusionSpec,
    /// Input scaling of each view it reads (fitted on the training rows).
    pub scalers: Vec<Scaler>,
    /// The best checkpoint (by dev macro-F1), on the inference device.
    pub net: FusionNet,
    /// Per-epoch log.
    pub history: Vec<EpochLog>,
    /// The epoch whose checkpoint was kept (1-based).
    pub best_epoch: usize,
}

/// One line of the training log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean minibatch loss over the epoch.
    pub train_loss: f64,
    /// Macro-F1 on the dev split after the epoch.
    pub dev_macro_f1: f64,
}

/// A trained model: one member, or one per modality for `avg-probs`.
#[derive(Debug)]
pub struct Trained {
    /// The run's hyper-parameters.
    pub config: FitConfig,
    /// Names of the views, in the order of the data.
    pub view_names: Vec<String>,
    /// Widths of the views, in the order of the data.
    pub view_widths: Vec<usize>,
    /// Class or label names.
    pub outputs: Vec<String>,
    /// The training rows' label frequencies: what this model predicts, in
    /// evaluation, for a sample in which every view it reads is missing.
    pub prior: Vec<f32>,
    /// The networks; their probabilities are averaged.
    pub members: Vec<Member>,
    /// Wall time of the training, seconds.
    pub seconds: f64,
}

/// Gathers `rows` of view `v`, scaled; a missing row (all NaN) becomes zeros,
/// its training mean, as the missing-view rule of concat and linear sum says.
fn gather(data: &MultiviewData, v: usize, rows: &[usize], scaler: &Scaler) -> Vec<f32> {
    let view = &data.views[v];
    let mut out = Vec::with_capacity(rows.len() * view.dim);
    for &r in rows {
        out.extend_from_slice(view.row(r));
    }
    scaler.apply(&mut out);
    out.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = 0.0);
    out
}

/// Which rows of `view` are missing (every cell NaN).
fn missing_rows(view: &View) -> Vec<bool> {
    (0..view.len()).map(|r| view.row(r).iter().all(|x| x.is_nan())).collect()
}

/// The training rows' label frequencies (class shares, or each label's rate):
/// what a model predicts for a sample in which it sees none of its views.
pub fn label_prior(targets: &Targets, rows: &[usize]) -> Vec<f32> {
    let mut prior = vec![0.0f32; targets.width()];
    for &r in rows {
        for (p, on) in prior.iter_mut().zip(targets.indicator_row(r)) {
            *p += f32::from(on);
        }
    }
    prior.iter_mut().for_each(|p| *p /= rows.len().max(1) as f32);
    prior
}

fn tensor(values: Vec<f32>, cols: usize, device: &Device) -> Tensor<2> {
    let rows = values.len() / cols;
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

fn targets_tensor(targets: &Targets, rows: &[usize], device: &Device) -> Tensor<2> {
    let values: Vec<f32> = rows.iter().flat_map(|&r| targets.indicator_row(r)).map(f32::from).collect();
    tensor(values, targets.width(), device)
}

/// `data` with every partly missing row of the views `modalities` filled with
/// the view's column means over the observed training cells.
fn impute_partial_rows(data: &MultiviewData, modalities: &[usize], train: &[usize]) -> MultiviewData {
    let mut out = data.clone();
    for &v in modalities {
        let view = &data.views[v];
        let raw = gather(data, v, train, &Scaler::identity(view.dim));
        let means = Scaler::identity(view.dim).with_impute_means(&raw, view.dim);
        means.impute_partial_rows(&mut out.views[v].values).expect("means were computed");
    }
    out
}

/// Fits each view's scaler on the training rows: standardised features;
/// images (already in [0, 1]) are centred on 0.5 and doubled so every pixel keeps its
/// place in the picture's range; prescaled views are left as they are.
fn fit_scalers(data: &MultiviewData, modalities: &[usize], train: &[usize]) -> Vec<Scaler> {
    modalities
        .iter()
        .map(|&v| {
            let view = &data.views[v];
            // Statistics of the rows where the view is present.
            let present: Vec<usize> = train.iter().copied().filter(|&r| !view.row(r).iter().all(|x| x.is_nan())).collect();
            let raw = gather(data, v, &present, &Scaler::identity(view.dim));
            let scaler = if view.image.is_some() {
                Scaler { mean: vec![0.5; view.dim], scale: vec![0.5; view.dim], impute: None }
            } else if view.prescaled {
                Scaler::identity(view.dim)
            } else {
                Scaler::fit(&raw, view.dim, Scaling::Standardize)
            };
            scaler.with_impute_means(&raw, view.dim)
        })
        .collect()
}

fn spec_for(data: &MultiviewData, modalities: &[usize], config: &FitConfig, kind: FusionKind) -> FusionSpec {
    let task = if data.targets.is_multilabel() { Task::Multilabel } else { Task::Multiclass };
    let d_inputs = modalities.iter().map(|&v| data.views[v].dim).collect();
    let mut spec = FusionSpec::new(kind, d_inputs, config.hidden, data.targets.width(), task);
    spec.encoders = modalities
        .iter()
        .map(|&v| match data.views[v].image {
            Some([channels, height, width]) => EncoderSpec::Cnn { channels, height, width, d_out: config.image_features },
            None => EncoderSpec::Identity,
        })
        .collect();
    spec.dropout = config.dropout;
    spec.experts = config.experts;
    spec.tied_gates = config.tied_gates;
    spec.normalize_gates = config.normalize_gates;
    if kind == FusionKind::Gmu {
        spec.head = config.head;
    }
    spec
}

/// Trains `config.fusion` on the views `modalities` of `data`, selecting the
/// epoch by dev macro-F1. `avg-probs` trains one single-modality model per
/// view (each with its own early stopping) and averages their probabilities.
/// `progress` receives one line per finished member.
/// Training runs on `device` with autodiff; the returned nets live on `device`.
pub fn fit(data: &MultiviewData, modalities: &[usize], split: &Split, config: &FitConfig, device: &Device) -> Result<Trained> {
    config.validate()?;
    if modalities.is_empty() {
        return Err(GmuError::invalid("modalities", "no modality selected"));
    }
    data.validate(Path::new("data"))?;
    let filled;
    let data = if config.impute && data.views.iter().any(|v| v.values.iter().any(|x| x.is_nan())) {
        filled = impute_partial_rows(data, modalities, &split.train);
        &filled
    } else {
        data
    };
    data.check_trainable(Path::new("data"), modalities, false)?;
    let start = Instant::now();
    let groups: Vec<(Vec<usize>, FusionKind)> = match config.fusion {
        FusionKind::AvgProbs => modalities.iter().map(|&v| (vec![v], FusionKind::Concat)).collect(),
        kind => vec![(modalities.to_vec(), kind)],
    };
    if config.fusion == FusionKind::AvgProbs && modalities.len() < 2 {
        return Err(GmuError::invalid("fusion", "avg-probs averages at least 2 single-modality models"));
    }
    let mut members = Vec::new();
    for (k, (views, kind)) in groups.into_iter().enumerate() {
        let spec = spec_for(data, &views, config, kind);
        spec.validate()?;
        members.push(fit_member(data, views, spec, split, config, config.seed.wrapping_add(k as u64), device)?);
    }
    Ok(Trained {
        config: config.clone(),
        view_names: data.views.iter().map(|v| v.name.clone()).collect(),
        view_widths: data.views.iter().map(|v| v.dim).collect(),
        outputs: data.targets.names().to_vec(),
        prior: label_prior(&data.targets, &split.train),
        members,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn fit_member(
    data: &MultiviewData,
    modalities: Vec<usize>,
    spec: FusionSpec,
    split: &Split,
    config: &FitConfig,
    seed: u64,
    inference: &Device,
) -> Result<Member> {
    // burn's random state (initialisation, dropout masks) is global to the
    // backend: the whole fit holds it, so every run is reproducible.
    crate::fusion::random::exclusive(|| fit_member_exclusive(data, modalities, spec, split, config, seed, inference))
}

fn fit_member_exclusive(
    data: &MultiviewData,
    modalities: Vec<usize>,
    spec: FusionSpec,
    split: &Split,
    config: &FitConfig,
    seed: u64,
    inference: &Device,
) -> Result<Member> {
    let device = inference.clone().autodiff();
    device.seed(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    // Views missing in some rows: a row where this model sees none of its views is left out
    // of its training and of its early stopping.
    let missing: Vec<Vec<bool>> = modalities.iter().map(|&v| missing_rows(&data.views[v])).collect();
    let sees = |r: usize| missing.iter().any(|m| !m[r]);
    let train: Vec<usize> = split.train.iter().copied().filter(|&r| sees(r)).collect();
    let dev_rows: Vec<usize> = split.dev.iter().copied().filter(|&r| sees(r)).collect();
    if train.len() < 2 || dev_rows.is_empty() {
        let names: Vec<&str> = modalities.iter().map(|&v| data.views[v].name.as_str()).collect();
        return Err(GmuError::invalid(
            "data",
            format!("view(s) {} are missing in almost every training or dev row; nothing to train on", names.join("+")),
        ));
    }
    let any_missing = missing.iter().any(|m| train.iter().any(|&r| m[r]));
    let scalers = fit_scalers(data, &modalities, &train);
    let model = spec.init(&device)?;
    // The dense engine where it applies (it refuses every other model), burn otherwise.
    // The dense engine has no missing-view rule, so modality dropout and missing views train on burn.
    let dense = if config.engine == FitEngine::Auto && config.modality_dropout == 0.0 && !any_missing {
        DenseGmu::from_net(&model).ok()
    } else {
        None
    };
    let mut trainer = match dense {
        Some(dense) => Trainer::Dense {
            grad: vec![0.0; dense.len()],
            adam: Adam::with_defaults(dense.len(), config.lr as f32),
            ws: DenseWorkspace::default(),
            template: model.valid(),
            dense,
        },
        None => Trainer::Burn { model, optim: Box::new(AdamConfig::new().with_epsilon(1e-8).init()) },
    };
    let mut best: Option<(f64, FusionNet, usize)> = None;
    let mut history = Vec::new();
    let mut order = train.clone();
    let mut since_best = 0;
    for epoch in 1..=config.max_epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut batches) = (0.0f64, 0usize);
        for rows in order.chunks(config.batch_size) {
            // A batch of one has no batch statistics; fold it into the next epoch.
            if rows.len() < 2 {
                continue;
            }
            let presence: Option<Vec<f32>> = any_missing
                .then(|| rows.iter().flat_map(|&r| missing.iter().map(move |m| if m[r] { 0.0 } else { 1.0 })).collect());
            let present = modality_dropout(rows.len(), modalities.len(), config.modality_dropout, presence, &mut rng);
            let value = trainer.step(data, &modalities, &scalers, rows, present, config, &device);
            if !value.is_finite() {
                return Err(GmuError::NonFinite(format!(
                    "{} training loss is {value} at epoch {epoch}; lower the learning rate or check the data",
                    spec.kind
                )));
            }
            loss_sum += value as f64;
            batches += 1;
        }
        let valid = trainer.snapshot();
        let dev = evaluate_nets(data, &[(&modalities, &scalers, &valid)], &dev_rows, config.threshold, inference).0;
        history.push(EpochLog { epoch, train_loss: loss_sum / batches.max(1) as f64, dev_macro_f1: dev.f1.macro_ });
        if best.as_ref().is_none_or(|(score, _, _)| dev.f1.macro_ > *score) {
            best = Some((dev.f1.macro_, valid, epoch));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= config.patience {
                break;
            }
        }
    }
    let (_, net, best_epoch) = best.expect("at least one epoch");
    Ok(Member { modalities, spec, scalers, net, history, best_epoch })
}

/// The `[rows, K]` presence mask of a training batch: the views present in
/// the data (`presence`, `None` when all are), each dropped with probability
/// `p` (modality dropout); where a row would lose every present view, one of
/// them, drawn at random, is kept. `None` when every view stays present.
fn modality_dropout(rows: usize, k: usize, p: f64, presence: Option<Vec<f32>>, rng: &mut StdRng) -> Option<Vec<f32>> {
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

/// The training loop's engine: burn's autodiff for every model, or the dense
/// GEMM engine for the plain two-modality GMU classifier. One lives per fit,
/// so the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Trainer {
    Burn { model: FusionNet, optim: Box<burn::optim::ModuleOptimizer> },
    Dense { dense: DenseGmu, adam: Adam, grad: Vec<f32>, ws: DenseWorkspace, template: FusionNet },
}

impl Trainer {
    /// One Adam step on `rows`; returns the batch loss.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        data: &MultiviewData,
        modalities: &[usize],
        scalers: &[Scaler],
        rows: &[usize],
        present: Option<Vec<f32>>,
        config: &FitConfig,
        device: &Device,
    ) -> f32 {
        match self {
            Trainer::Burn { model, optim } => {
                let inputs: Vec<Tensor<2>> = modalities
                    .iter()
                    .zip(scalers)
                    .map(|(&v, s)| tensor(gather(data, v, rows, s), data.views[v].dim, device))
                    .collect();
                let mask = present.map(|p| Tensor::from_data(TensorData::new(p, [rows.len(), modalities.len()]), device));
                let out = model.forward_present(&inputs, mask.as_ref());
                let loss = model.loss(out.scores, targets_tensor(&data.targets, rows, device));
                let value: f32 = loss.clone().into_scalar();
                if value.is_finite() {
                    let grads = GradientsParams::from_grads(loss.backward(), &*model);
                    let mut next = optim.step(config.lr, model.clone(), grads);
                    if let Some(limit) = config.max_norm {
                        next = next.map(&mut MaxNorm { limit });
                    }
                    *model = next;
                }
                value
            }
            Trainer::Dense { dense, adam, grad, ws, .. } => {
                let xv = gather(data, modalities[0], rows, &scalers[0]);
                let xt = gather(data, modalities[1], rows, &scalers[1]);
                let y: Vec<f32> = rows.iter().flat_map(|&r| data.targets.indicator_row(r)).map(f32::from).collect();
                let value = dense.loss_and_grad(&xv, &xt, &y, grad, ws);
                if value.is_finite() {
                    adam.step(&mut dense.params, grad);
                    if let Some(limit) = config.max_norm {
                        dense.max_norm(limit);
                    }
                }
                value
            }
        }
    }

    /// The current weights as an inference model.
    fn snapshot(&self) -> FusionNet {
        match self {
            Trainer::Burn { model, .. } => model.valid(),
            Trainer::Dense { dense, template, .. } => dense.write_into(template.clone()),
        }
    }
}

/// Probabilities and gates of `nets` (each with the data views it reads and
/// their scalers) on `rows`, averaged over the nets; with `importance`, each
/// view's occlusion importance too.
fn predict_nets(
    data: &MultiviewData,
    nets: &[(&Vec<usize>, &Vec<Scaler>, &FusionNet)],
    rows: &[usize],
    importance: bool,
    prior: Option<&[f32]>,
    device: &Device,
) -> Prediction {
    let views: Vec<&View> = data.views.iter().collect();
    let task = if data.targets.is_multilabel() { Task::Multilabel } else { Task::Multiclass };
    // Training data hold no partly missing row (checked), and a row the model cannot see
    // gets the prior (or was filtered out where there is none), so this cannot fail.
    predict_views(nets, &views, rows, task, importance, prior, device).expect("checked training data")
}

/// As [`predict_nets`] on views given one by one (some rows may be missing).
fn predict_views(
    nets: &[(&Vec<usize>, &Vec<Scaler>, &FusionNet)],
    views: &[&View],
    rows: &[usize],
    task: Task,
    importance: bool,
    prior: Option<&[f32]>,
    device: &Device,
) -> Result<Prediction> {
    let mut model_views: Vec<usize> = Vec::new();
    for (views, _, _) in nets {
        for &v in views.iter() {
            if !model_views.contains(&v) {
                model_views.push(v);
            }
        }
    }
    let members: Vec<MemberRef<'_>> = nets.iter().map(|(views, scalers, net)| MemberRef { views, scalers, net }).collect();
    let blind: Vec<bool> = rows.iter().map(|&r| model_views.iter().all(|&v| views[v].row(r).iter().all(|x| x.is_nan()))).collect();
    let Some(prior) = prior.filter(|_| blind.contains(&true)) else {
        return predict::run(&members, views, &model_views, rows, task, importance, device);
    };
    // Rows where the model sees none of its views get the training label frequencies.
    let visible: Vec<usize> = rows.iter().zip(&blind).filter(|(_, b)| !**b).map(|(&r, _)| r).collect();
    let seen = predict::run(&members, views, &model_views, &visible, task, importance, device)?;
    let (k, c) = (model_views.len(), prior.len());
    let mut out = Prediction { width: c, n_views: k, ..Prediction::default() };
    let mut i = 0;
    for &b in &blind {
        let nan = || std::iter::repeat_n(f32::NAN, k);
        if b {
            out.probs.extend_from_slice(prior);
            out.present.extend(std::iter::repeat_n(false, k));
            for (mine, theirs) in [(&mut out.gate_means, &seen.gate_means), (&mut out.shares, &seen.shares), (&mut out.importance, &seen.importance)] {
                if theirs.is_some() || visible.is_empty() && importance {
                    mine.get_or_insert_with(Vec::new).extend(nan());
                }
            }
        } else {
            out.probs.extend_from_slice(&seen.probs[i * c..(i + 1) * c]);
            out.present.extend_from_slice(&seen.present[i * k..(i + 1) * k]);
            for (mine, theirs) in [(&mut out.gate_means, &seen.gate_means), (&mut out.shares, &seen.shares), (&mut out.importance, &seen.importance)] {
                if let Some(t) = theirs {
                    mine.get_or_insert_with(Vec::new).extend_from_slice(&t[i * k..(i + 1) * k]);
                }
            }
            i += 1;
        }
    }
    Ok(out)
}

fn evaluate_nets(
    data: &MultiviewData,
    nets: &[(&Vec<usize>, &Vec<Scaler>, &FusionNet)],
    rows: &[usize],
    threshold: f32,
    device: &Device,
) -> (Evaluation, Prediction) {
    let p = predict_nets(data, nets, rows, false, None, device);
    (score(&data.targets, rows, &p.probs, threshold), p)
}

impl Trained {
    /// Probabilities and gates on `rows` of `data`.
    pub fn predict(&self, data: &MultiviewData, rows: &[usize], device: &Device) -> Prediction {
        let nets: Vec<_> = self.members.iter().map(|m| (&m.modalities, &m.scalers, &m.net)).collect();
        predict_nets(data, &nets, rows, false, Some(&self.prior), device)
    }

    /// Probabilities on `rows` of `views` (the training data's views, in the
    /// same order, possibly with rows missing: all-NaN rows).
    pub fn predict_views(&self, views: &[&View], rows: &[usize], task: Task, device: &Device) -> Result<Prediction> {
        let nets: Vec<_> = self.members.iter().map(|m| (&m.modalities, &m.scalers, &m.net)).collect();
        predict_views(&nets, views, rows, task, false, Some(&self.prior), device)
    }

    /// Metrics and predictions on `rows`, with each view's occlusion importance.
    pub fn evaluate_with_importance(&self, data: &MultiviewData, rows: &[usize], device: &Device) -> (Evaluation, Prediction) {
        let nets: Vec<_> = self.members.iter().map(|m| (&m.modalities, &m.scalers, &m.net)).collect();
        let p = predict_nets(data, &nets, rows, true, Some(&self.prior), device);
        (score(&data.targets, rows, &p.probs, self.config.threshold), p)
    }

    /// Metrics and predictions on `rows`.
    pub fn evaluate(&self, data: &MultiviewData, rows: &[usize], device: &Device) -> (Evaluation, Prediction) {
        let nets: Vec<_> = self.members.iter().map(|m| (&m.modalities, &m.scalers, &m.net)).collect();
        let p = predict_nets(data, &nets, rows, false, Some(&self.prior), device);
        (score(&data.targets, rows, &p.probs, self.config.threshold), p)
    }

    /// The model directory's config: the views the members read (in order of
    /// first use), the outputs, each member, the training config, `data`
    /// (where the data can be read again) and `results`.
    pub fn model_config(&self, method: &str, data: Option<DataRecord>, results: serde_json::Value) -> ModelConfig {
        let mut used: Vec<usize> = Vec::new();
        for m in &self.members {
            for &v in &m.modalities {
                if !used.contains(&v) {
                    used.push(v);
                }
            }
        }
        let members = self
            .members
            .iter()
            .map(|m| MemberConfig {
                views: m.modalities.iter().map(|v| used.iter().position(|u| u == v).expect("collected")).collect(),
                spec: m.spec.clone(),
                scalers: m.scalers.clone(),
                best_epoch: m.best_epoch,
                history: m.history.clone(),
            })
            .collect();
        let first = &self.members[0].spec;
        ModelConfig {
            format_version: FORMAT_VERSION,
            gmu_version: env!("CARGO_PKG_VERSION").to_string(),
            method: method.to_string(),
            views: used.iter().map(|&v| ViewSpec { name: self.view_names[v].clone(), width: self.view_widths[v] }).collect(),
            task: first.task,
            outputs: self.outputs.clone(),
            threshold: self.config.threshold,
            members,
            training: TrainingRecord::Epochs { config: self.config.clone() },
            data,
            seconds: self.seconds,
            results,
        }
    }

    /// Writes the model directory (see [`model_dir`](crate::model_dir)) into `dir`.
    pub fn save(&self, dir: &Path, method: &str, data: Option<DataRecord>, results: serde_json::Value) -> Result<()> {
        let nets: Vec<&FusionNet> = self.members.iter().map(|m| &m.net).collect();
        model_dir::save(dir, &self.model_config(method, data, results), &nets)
    }
}

/// Per class (or label), where the gates sent each sample: the share of
/// samples whose largest contribution came from each modality (the paper's
/// Fig. 8), each modality's mean contribution share, and its mean raw gate.
/// A row of a multilabel set counts for every label it carries.
///
/// The contribution share (`Σ_units |z_k ⊙ h_k|` over the total, for a GMU)
/// is the readout to trust: a raw gate near 0.5 on a unit where one
/// modality's `h_k` is near 0 still lets the other decide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Modality names.
    pub modalities: Vec<String>,
    /// Class or label names.
    pub classes: Vec<String>,
    /// `favoured[c][k]`: share of class-`c` samples whose largest contribution is modality `k`'s.
    pub favoured: Vec<Vec<f64>>,
    /// `share[c][k]`: mean contribution share of modality `k` over class-`c` samples.
    pub share: Vec<Vec<f64>>,
    /// `gate[c][k]`: mean raw gate of modality `k` over class-`c` samples.
    pub gate: Vec<Vec<f64>>,
    /// Samples per class.
    pub counts: Vec<usize>,
}

impl GateReport {
    /// Builds the report from per-row mean gates and contribution shares
    /// (both `[rows, K]`) of `rows`.
    pub fn new(targets: &Targets, rows: &[usize], gate_means: &[f32], shares: &[f32], modalities: Vec<String>) -> Self {
        let k = modalities.len();
        let c = targets.width();
        let zeros = || vec![vec![0.0; k]; c];
        let (mut favoured, mut share, mut gate, mut counts) = (zeros(), zeros(), zeros(), vec![0usize; c]);
        for (i, &r) in rows.iter().enumerate() {
            let (g, s) = (&gate_means[i * k..(i + 1) * k], &shares[i * k..(i + 1) * k]);
            // A sample the model could not see (every view missing) has no gate.
            if s.iter().any(|x| x.is_nan()) {
                continue;
            }
            let top = s.iter().enumerate().fold(0, |b, (j, &x)| if x > s[b] { j } else { b });
            for (class, &on) in targets.indicator_row(r).iter().enumerate() {
                if on == 1 {
                    counts[class] += 1;
                    favoured[class][top] += 1.0;
                    for j in 0..k {
                        share[class][j] += s[j] as f64;
                        gate[class][j] += g[j] as f64;
                    }
                }
            }
        }
        for class in 0..c {
            let n = counts[class].max(1) as f64;
            for table in [&mut favoured, &mut share, &mut gate] {
                table[class].iter_mut().for_each(|x| *x /= n);
            }
        }
        GateReport { modalities, classes: targets.names().to_vec(), favoured, share, gate, counts }
    }
}

/// Per class (or label), which view the model needed: the share of samples
/// whose largest occlusion importance is each view's (see
/// [`predict`](crate::predict)), and each view's mean importance. Unlike the
/// contribution share, this does not depend on how wide or loud a view is:
/// it asks how much the prediction falls without it. Every method with two
/// or more views has one. A row of a multilabel set counts for every label it carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportanceReport {
    /// Modality names.
    pub modalities: Vec<String>,
    /// Class or label names.
    pub classes: Vec<String>,
    /// `needed[c][k]`: share of class-`c` samples whose most important view is `k`.
    pub needed: Vec<Vec<f64>>,
    /// `mean[c][k]`: mean occlusion importance of view `k` over class-`c` samples.
    pub mean: Vec<Vec<f64>>,
    /// Samples per class.
    pub counts: Vec<usize>,
}

impl ImportanceReport {
    /// Builds the report from per-row importances (`[rows, K]`; NaN where undefined) of `rows`.
    pub fn new(targets: &Targets, rows: &[usize], importance: &[f32], modalities: Vec<String>) -> Self {
        let k = modalities.len();
        let c = targets.width();
        let (mut needed, mut mean, mut counts) = (vec![vec![0.0; k]; c], vec![vec![0.0; k]; c], vec![0usize; c]);
        for (i, &r) in rows.iter().enumerate() {
            let imp = &importance[i * k..(i + 1) * k];
            if imp.iter().all(|x| x.is_nan()) {
                continue;
            }
            let top = imp.iter().enumerate().fold(0, |b, (j, &x)| if x > imp[b] || imp[b].is_nan() { j } else { b });
            for (class, &on) in targets.indicator_row(r).iter().enumerate() {
                if on == 1 {
                    counts[class] += 1;
                    needed[class][top] += 1.0;
                    for j in 0..k {
                        mean[class][j] += if imp[j].is_nan() { 0.0 } else { imp[j] as f64 };
                    }
                }
            }
        }
        for class in 0..c {
            let n = counts[class].max(1) as f64;
            needed[class].iter_mut().chain(mean[class].iter_mut()).for_each(|x| *x /= n);
        }
        ImportanceReport { modalities, classes: targets.names().to_vec(), needed, mean, counts }
    }
}

/// The paper's random-search ranges: hidden ∈ {64, 128, 256, 512},
/// lr log-uniform in [1e-3, 1e-1], dropout uniform in [0.3, 0.7], max-norm
/// uniform in [5, 20]. Every other field is kept from `base`.
pub fn sample_config(base: &FitConfig, rng: &mut impl Rng) -> FitConfig {
    let mut c = base.clone();
    c.hidden = [64, 128, 256, 512][rng.random_range(0..4)];
    c.lr = 10f64.powf(rng.random_range(-3.0..-1.0));
    c.dropout = rng.random_range(0.3..0.7);
    c.max_norm = Some(rng.random_range(5.0..20.0));
    c
}

/// Random search: `trials` configurations drawn by [`sample_config`] (seeded
/// by `base.seed`; one trial trains `base` as given), each trained with
/// [`fit`]; keeps the model with the best dev macro-F1.
pub fn search(
    data: &MultiviewData,
    modalities: &[usize],
    split: &Split,
    base: &FitConfig,
    trials: usize,
    device: &Device,
) -> Result<Search> {
    if trials == 0 {
        return Err(GmuError::invalid("trials", "must be at least 1"));
    }
    let mut rng = StdRng::seed_from_u64(base.seed ^ 0x005E_A7C4);
    let mut best: Option<(Trained, Evaluation)> = None;
    let mut log = Vec::new();
    for _ in 0..trials {
        let config = if trials == 1 { base.clone() } else { sample_config(base, &mut rng) };
        let trained = fit(data, modalities, split, &config, device)?;
        let dev = trained.evaluate(data, &split.dev, device).0;
        log.push((config, dev.f1.macro_));
        if best.as_ref().is_none_or(|(_, b)| dev.f1.macro_ > b.f1.macro_) {
            best = Some((trained, dev));
        }
    }
    let (trained, dev) = best.expect("trials ≥ 1");
    Ok(Search { trained, dev, trials: log })
}

/// What [`search`] returns.
#[derive(Debug)]
pub struct Search {
    /// The model with the best dev macro-F1.
    pub trained: Trained,
    /// Its dev scores.
    pub dev: Evaluation,
    /// Every trial's config and dev macro-F1, in order.
    pub trials: Vec<(FitConfig, f64)>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn dev() -> Device {
        Device::default()
    }

    /// Two views; the class is readable from view 0 for half the rows and
    /// from view 1 for the other half (the other view is noise there).
    pub(crate) fn planted(n: usize, multilabel: bool, seed: u64) -> MultiviewData {
        planted_with_flags(n, multilabel, seed).0
    }

    /// Also returns, per row, whether view `a` is the informative one.
    fn planted_with_flags(n: usize, multilabel: bool, seed: u64) -> (MultiviewData, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut a, mut b, mut y, mut flags) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let class = i % 3;
            let informative_a = rng.random_bool(0.5);
            flags.push(informative_a);
            for v in [&mut a, &mut b] {
                for _ in 0..4 {
                    v.push(rng.random_range(-1.0..1.0f32));
                }
            }
            let target = if informative_a { &mut a } else { &mut b };
            let at = target.len() - 4 + class;
            target[at] += 3.0;
            y.push(class);
        }
        let views = vec![
            View { name: "a".into(), dim: 4, values: a, image: None, prescaled: false },
            View { name: "b".into(), dim: 4, values: b, image: None, prescaled: false },
        ];
        let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let targets = if multilabel {
            let ind: Vec<u8> = y.iter().flat_map(|&c| (0..3).map(move |j| u8::from(j == c || (c == 2 && j == 0)))).collect();
            Targets::Labels { y: ind, names }
        } else {
            Targets::Classes { y, names }
        };
        (MultiviewData { views, targets }, flags)
    }

    pub(crate) fn quick(kind: FusionKind) -> FitConfig {
        FitConfig { fusion: kind, hidden: 16, dropout: 0.1, lr: 0.01, max_epochs: 15, patience: 15, batch_size: 32, ..FitConfig::default() }
    }

    #[test]
    fn every_method_learns_a_planted_problem_and_loss_falls() {
        for multilabel in [false, true] {
            let data = planted(300, multilabel, 1);
            let split = data.split(0.2, 0.2, 0).unwrap();
            for (kind, experts, tied) in [
                (FusionKind::Gmu, ExpertKind::Maxout, false),
                (FusionKind::Concat, ExpertKind::Maxout, false),
                (FusionKind::LinearSum, ExpertKind::Maxout, false),
                (FusionKind::AvgProbs, ExpertKind::Maxout, false),
                (FusionKind::Moe, ExpertKind::Maxout, false),
                (FusionKind::Moe, ExpertKind::Logistic, true),
            ] {
                let config = FitConfig { experts, tied_gates: tied, ..quick(kind) };
                let trained = fit(&data, &[0, 1], &split, &config, &dev()).unwrap();
                let h = &trained.members[0].history;
                assert!(h.last().unwrap().train_loss < 0.8 * h[0].train_loss, "{kind} multilabel={multilabel}: {h:?}");
                let test = trained.evaluate(&data, &split.test, &dev()).0;
                // Late fusion sees each view alone, and each view carries the class for half the rows.
                let floor = if kind == FusionKind::AvgProbs { 0.6 } else { 0.8 };
                assert!(test.f1.macro_ > floor, "{kind} ({experts:?}, tied {tied}) multilabel={multilabel}: {test:?}");
            }
        }
    }

    #[test]
    fn same_seed_same_model_and_gates_follow_the_informative_view() {
        let (data, informative_a) = planted_with_flags(300, false, 2);
        let split = data.split(0.2, 0.2, 0).unwrap();
        // A narrow GMU (3 units for 3 classes) cannot give each view its own units, so it must gate.
        let config = FitConfig { max_epochs: 40, patience: 40, dropout: 0.0, hidden: 3, ..quick(FusionKind::Gmu) };
        let a = fit(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let b = fit(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let (pa, pb) = (a.predict(&data, &split.test, &dev()), b.predict(&data, &split.test, &dev()));
        assert_eq!(pa.probs, pb.probs);
        assert_eq!(a.members[0].history, b.members[0].history);
        let gates = pa.gate_means.as_ref().unwrap();
        assert_eq!(gates.len(), split.test.len() * 2);
        // The gate of view a is larger, on average, where view a carries the class.
        let mean = |want: bool| {
            let g: Vec<f32> = split.test.iter().enumerate().filter(|(_, r)| informative_a[**r] == want).map(|(i, _)| gates[2 * i]).collect();
            g.iter().sum::<f32>() / g.len() as f32
        };
        assert!(mean(true) > mean(false) + 0.05, "gate of a: {} where a informs, {} elsewhere", mean(true), mean(false));
    }

    /// Every method, single-label and multilabel: the model directory loads
    /// back and predicts exactly the probabilities the training process computed.
    #[test]
    fn save_load_predict_round_trip_for_every_method() {
        let device = dev();
        for multilabel in [false, true] {
            let data = planted(120, multilabel, 7);
            let split = data.split(0.2, 0.2, 0).unwrap();
            for (kind, experts, tied, head) in [
                (FusionKind::Gmu, ExpertKind::Maxout, false, HeadKind::Maxout),
                (FusionKind::Gmu, ExpertKind::Maxout, false, HeadKind::Linear),
                (FusionKind::Concat, ExpertKind::Maxout, false, HeadKind::Maxout),
                (FusionKind::LinearSum, ExpertKind::Maxout, false, HeadKind::Maxout),
                (FusionKind::AvgProbs, ExpertKind::Maxout, false, HeadKind::Maxout),
                (FusionKind::Moe, ExpertKind::Maxout, false, HeadKind::Maxout),
                (FusionKind::Moe, ExpertKind::Logistic, true, HeadKind::Maxout),
            ] {
                let config = FitConfig { experts, tied_gates: tied, head, max_epochs: 2, patience: 2, ..quick(kind) };
                let trained = fit(&data, &[0, 1], &split, &config, &device).unwrap();
                let dir = tempfile::tempdir().unwrap();
                trained.save(dir.path(), &config.label(), None, serde_json::Value::Null).unwrap();
                let loaded = crate::predict::Predictor::load(dir.path(), &device).unwrap();
                assert_eq!(loaded.config.outputs, data.targets.names());
                let views = loaded.select_views(&data.views).unwrap();
                let p = loaded.predict_rows(&views, &split.test, true).unwrap();
                let expected = trained.predict(&data, &split.test, &device);
                assert_eq!(p.probs, expected.probs, "{kind} {head:?} multilabel={multilabel}");
                assert_eq!(p.gate_means, expected.gate_means, "{kind}");
                let imp = p.importance.unwrap();
                assert_eq!(imp.len(), split.test.len() * 2);
                assert!(imp.iter().all(|x| x.is_finite()), "{kind}: {imp:?}");
            }
        }
    }

    #[test]
    fn modality_dropout_never_drops_every_view_and_drops_about_p() {
        let mut rng = StdRng::seed_from_u64(3);
        assert!(modality_dropout(10, 1, 0.5, None, &mut rng).is_none() && modality_dropout(10, 3, 0.0, None, &mut rng).is_none());
        let mask = modality_dropout(20_000, 3, 0.3, None, &mut rng).unwrap();
        assert!(mask.chunks(3).all(|row| row.contains(&1.0)));
        let dropped = mask.iter().filter(|&&x| x == 0.0).count() as f64 / mask.len() as f64;
        // 0.3 minus the rows that would have lost all three (0.3³ = 2.7 %, one view restored each).
        assert!((dropped - (0.3 - 0.027 / 3.0)).abs() < 0.01, "{dropped}");
    }

    /// Both views carry the class, view b far more clearly; a GMU trained
    /// with modality dropout predicts far better than one trained without
    /// when view b is gone.
    #[test]
    fn modality_dropout_teaches_the_gmu_to_cope_with_a_missing_view() {
        let mut rng = StdRng::seed_from_u64(11);
        let n = 300;
        let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let class = i % 3;
            // View b carries the class loudly, view a faintly: trained on both, a model leans on b.
            for (v, signal) in [(&mut a, 1.0f32), (&mut b, 3.0)] {
                for j in 0..4 {
                    v.push(rng.random_range(-1.0..1.0f32) + if j == class { signal } else { 0.0 });
                }
            }
            y.push(class);
        }
        let view = |name: &str, values| View { name: name.into(), dim: 4, values, image: None, prescaled: false };
        let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let data = MultiviewData { views: vec![view("a", a), view("b", b)], targets: Targets::Classes { y, names } };
        let split = data.split(0.2, 0.2, 0).unwrap();
        let device = dev();
        let without_b = |p: f64| {
            let config = FitConfig { modality_dropout: p, max_epochs: 20, patience: 20, ..quick(FusionKind::Gmu) };
            let trained = fit(&data, &[0, 1], &split, &config, &device).unwrap();
            let mut gone = data.views[1].clone();
            gone.values.fill(f32::NAN);
            let views = [&data.views[0], &gone];
            let p = trained.predict_views(&views, &split.test, Task::Multiclass, &device).unwrap();
            score(&data.targets, &split.test, &p.probs, 0.5).accuracy
        };
        let (plain, dropout) = (without_b(0.0), without_b(0.5));
        assert!(dropout > plain + 0.05 && dropout > 0.6, "with view b gone: {dropout} (dropout) vs {plain} (none)");
    }

    /// Training data with view b missing in a quarter of the rows: the GMU
    /// trains through its missing-view rule; the single model of b trains on
    /// its rows and scores the rows it cannot see with the label frequencies;
    /// a row without any view is refused.
    #[test]
    fn training_data_with_a_view_missing_in_some_rows() {
        let mut data = planted(300, false, 5);
        for r in (0..300).filter(|r| r % 4 == 1) {
            data.views[1].values[r * 4..(r + 1) * 4].fill(f32::NAN);
        }
        let split = data.split(0.2, 0.2, 0).unwrap();
        let device = dev();
        let gmu = fit(&data, &[0, 1], &split, &quick(FusionKind::Gmu), &device).unwrap();
        let test = gmu.evaluate(&data, &split.test, &device).0;
        assert!(test.f1.macro_ > 0.75, "{test:?}");
        let single = fit(&data, &[1], &split, &quick(FusionKind::Concat), &device).unwrap();
        let p = single.predict(&data, &split.test, &device);
        let blind = split.test.iter().position(|r| r % 4 == 1).unwrap();
        assert_eq!(p.probs[blind * 3..(blind + 1) * 3], single.prior[..]);
        assert!(!p.present[blind]);
        let options = crate::comparison::CompareOptions {
            modalities: vec![1],
            methods: vec![quick(FusionKind::Concat)],
            single_modalities: false,
            trials: 1,
            save_to: None,
            data: None,
            missing_rates: vec![],
        };
        let err = crate::comparison::compare(&data, &split, &options, &device, |_| {}).unwrap_err().to_string();
        assert!(err.contains("row 1: every compared view is missing"), "{err}");
    }

    #[test]
    fn random_search_draws_from_the_paper_ranges() {
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..200 {
            let c = sample_config(&FitConfig::default(), &mut rng);
            assert!([64, 128, 256, 512].contains(&c.hidden));
            assert!((1e-3..=1e-1).contains(&c.lr));
            assert!((0.3..=0.7).contains(&c.dropout));
            assert!((5.0..=20.0).contains(&c.max_norm.unwrap()));
        }
    }

    #[test]
    fn gate_report_counts_shares_per_class() {
        let targets = Targets::Classes { y: vec![0, 0, 1, 1], names: vec!["p".into(), "q".into()] };
        let gates = [0.5; 8];
        let shares = [0.9, 0.1, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4];
        let r = GateReport::new(&targets, &[0, 1, 2, 3], &gates, &shares, vec!["a".into(), "b".into()]);
        assert_eq!(r.favoured, vec![vec![1.0, 0.0], vec![0.5, 0.5]]);
        assert!((r.share[0][0] - 0.8).abs() < 1e-6 && (r.share[1][1] - 0.6).abs() < 1e-6);
        assert_eq!(r.gate, vec![vec![0.5; 2]; 2]);
        assert_eq!(r.counts, vec![2, 2]);
    }

    #[test]
    fn non_finite_inputs_are_refused_before_training() {
        let mut data = planted(60, false, 3);
        data.views[1].values[9] = f32::NAN;
        let split = data.split(0.2, 0.2, 0).unwrap();
        let err = fit(&data, &[0, 1], &split, &quick(FusionKind::Concat), &dev()).unwrap_err().to_string();
        assert!(err.contains("view 'b', row 2, column 1: NaN"), "{err}");
    }
}
