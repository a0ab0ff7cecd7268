//! Training any [`FusionSpec`] model on [`MultiviewData`] under one
//! [`TrainingConfig`]: the schedule (Adam steps with restarts, or epochs with
//! early stopping on the dev macro-F1, keeping the best checkpoint) runs on
//! the engine [`Engine::pick`] chooses; dropout and the max-norm constraint,
//! modality dropout, imputation of partly missing rows, late fusion
//! (`avg-probs`); it returns the one [`Model`] type. Prediction and
//! scoring live in [`predict`], which evaluation here goes
//! through; [`report`] reads the gates and the occlusion importance per
//! class; [`search()`] is the paper's random search.
//!
//! Single-label and multilabel tasks go through the same code: the targets
//! decide softmax + cross-entropy + argmax or sigmoids + binary cross-entropy
//! + a threshold.
//!
//! Layer 10 (see `ARCHITECTURE.md`): it owns the training loops and returns
//! [`Model`]s; only the experiments and the CLI sit above it.

mod checkpoint;
#[cfg(test)]
mod conformance;
mod member;
mod noise;
pub mod report;
mod rows;
pub mod search;
pub mod synthetic;

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;

use crate::config::{Schedule, TrainingConfig};
use crate::cpu::LossKind;
use crate::data::{MultiviewData, Scaler, Split, Targets, View};
use crate::engine::Engine;
use crate::error::{GmuError, Result};
use crate::fusion::{FusionKind, FusionNet, FusionSpec, Task};
use crate::predict::{self, Evaluation, MemberRef, Model, Prediction, score};
use crate::store::{EpochLog, FORMAT_VERSION, MemberConfig, ModelConfig, ViewSpec};
pub use member::{glorot, logits_loss};
pub use noise::supervision_caution;
pub use report::{GateReport, ImportanceReport};
use rows::{fit_scalers, impute_partial_rows, missing_rows};
pub use search::{Search, search, search_with};

/// One trained network and the data views it reads, before it becomes a member of a [`Model`].
struct Member {
    /// Indices into the data's views.
    modalities: Vec<usize>,
    spec: FusionSpec,
    scalers: Vec<Scaler>,
    /// The kept weights, on the inference device.
    net: FusionNet,
    engine: Engine,
    history: Vec<EpochLog>,
    best_epoch: usize,
    step_losses: Vec<f32>,
    restart_losses: Vec<f32>,
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

/// What a model directory records of each view of `data`.
pub(crate) fn view_specs(data: &MultiviewData) -> Vec<ViewSpec> {
    data.views
        .iter()
        .map(|v| ViewSpec { name: v.name.clone(), width: v.dim, encoder: v.encoder.clone(), tokens: v.tokens })
        .collect()
}

fn spec_for(data: &MultiviewData, modalities: &[usize], config: &TrainingConfig, kind: FusionKind) -> FusionSpec {
    let task = if data.targets.is_multilabel() { Task::Multilabel } else { Task::Multiclass };
    let d_inputs = modalities.iter().map(|&v| data.views[v].dim).collect();
    let images: Vec<_> = modalities.iter().map(|&v| data.views[v].image).collect();
    let tokens: Vec<_> = modalities.iter().map(|&v| data.views[v].token_vocab()).collect();
    let options = crate::config::ModelOptions { fusion: kind, ..config.model.clone() };
    options.spec(d_inputs, &images, &tokens, data.targets.width(), task)
}

/// Trains `config` on the views `modalities` of `data`: the schedule
/// decides the loop and which weights are kept, [`Engine::pick`] the engine.
/// `avg-probs` trains one single-modality `concat` model per view (each
/// with its own schedule) and averages their probabilities.
/// The returned nets live on `device`.
pub fn train(
    data: &MultiviewData,
    modalities: &[usize],
    split: &Split,
    config: &TrainingConfig,
    device: &Device,
) -> Result<Model> {
    train_with(data, modalities, split, config, None, device)
}

/// [`train`], checkpointing every epoch of the epochs schedule into
/// `checkpoint/member-<k>/` and resuming from what a killed run left there:
/// the result is the same, bit for bit, as an uninterrupted run's.
pub fn train_with(
    data: &MultiviewData,
    modalities: &[usize],
    split: &Split,
    config: &TrainingConfig,
    checkpoint: Option<&Path>,
    device: &Device,
) -> Result<Model> {
    train_observed(data, modalities, split, config, checkpoint, &|_, _, _| Ok(()), device)
}

/// Watches a training run: called after every epoch of the epochs schedule
/// with the member's index (0 for every method but `avg-probs`, which trains
/// one member per view), that epoch's log and where its time went. An error
/// it returns stops the training, and the run returns that error.
pub type EpochObserver<'a> = dyn Fn(usize, &EpochLog, &EpochTiming) -> Result<()> + Sync + 'a;

/// Where one epoch's wall time went on the training thread: not part of the
/// [`EpochLog`] a model keeps, since the same seed gives the same log but not
/// the same seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochTiming {
    /// The whole epoch: shuffling, the steps, the dev pass, and handing the
    /// checkpoint to its writer thread (the write itself overlaps the next epoch).
    pub seconds: f64,
    /// Inside the training steps, gathering and scaling each batch included.
    pub steps: f64,
    /// The dev pass that early stopping scores.
    pub dev: f64,
    /// Training rows the steps took.
    pub rows: usize,
}

/// [`train_with`], calling `observe` after every epoch (live progress for a
/// caller that is not a terminal, such as the Python package).
pub fn train_observed(
    data: &MultiviewData,
    modalities: &[usize],
    split: &Split,
    config: &TrainingConfig,
    checkpoint: Option<&Path>,
    observe: &EpochObserver<'_>,
    device: &Device,
) -> Result<Model> {
    config.validate()?;
    if modalities.is_empty() {
        return Err(GmuError::invalid("modalities", "no modality selected"));
    }
    if let Some(&v) = modalities.iter().find(|&&v| v >= data.views.len()) {
        return Err(GmuError::invalid("modalities", format!("view index {v} of {} views", data.views.len())));
    }
    if let Some((i, &v)) = modalities.iter().enumerate().find(|(i, v)| modalities[..*i].contains(v)) {
        return Err(GmuError::invalid(
            "modalities",
            format!("view '{}' is selected twice (position {})", data.views[v].name, i + 1),
        ));
    }
    data.validate(Path::new("data"))?;
    if let Targets::Classes { y, names } = &data.targets {
        let mut seen = vec![false; names.len()];
        split.train.iter().for_each(|&r| seen[y[r]] = true);
        if seen.iter().filter(|&&s| s).count() < 2 {
            let only = seen.iter().position(|&s| s).map_or("none", |c| names[c].as_str());
            return Err(GmuError::invalid(
                "data",
                format!("the training rows hold a single class ('{only}'); a classifier needs at least two"),
            ));
        }
    }
    if data.targets.is_multilabel() && config.loss == Some(LossKind::SoftmaxCe) {
        return Err(GmuError::invalid("loss", "softmax-ce needs one class per sample; the labels are multilabel"));
    }
    let filled;
    let data = if config.impute && data.views.iter().any(|v| v.values.iter().any(|x| x.is_nan())) {
        filled = impute_partial_rows(data, modalities, &split.train);
        &filled
    } else {
        data
    };
    data.check_trainable(Path::new("data"), modalities, false)?;
    let start = Instant::now();
    let groups: Vec<(Vec<usize>, FusionKind)> = match config.model.fusion {
        FusionKind::AvgProbs => modalities.iter().map(|&v| (vec![v], FusionKind::Concat)).collect(),
        kind => vec![(modalities.to_vec(), kind)],
    };
    if config.model.fusion == FusionKind::AvgProbs && modalities.len() < 2 {
        return Err(GmuError::invalid("fusion", "avg-probs averages at least 2 single-modality models"));
    }
    let mut members = Vec::new();
    for (k, (views, kind)) in groups.into_iter().enumerate() {
        let spec = spec_for(data, &views, config, kind);
        spec.validate()?;
        let rows = config.schedule.batch_size().unwrap_or(split.train.len()).min(split.train.len().max(1));
        crate::budget::ensure(
            "hidden",
            &format!("training a {kind} model of {} hidden units on batches of {rows}", spec.hidden),
            spec.memory_bound(rows),
        )?;
        let seed = config.seed.wrapping_add(k as u64);
        // burn's random state (initialisation, dropout masks) is global to the
        // backend: the whole member's training holds it, so every run is reproducible.
        let job =
            MemberJob { modalities: views, spec, seed, checkpoint: checkpoint.map(|c| c.join(format!("member-{k}"))) };
        let observe = |log: &EpochLog, timing: &EpochTiming| observe(k, log, timing);
        members.push(crate::fusion::random::exclusive(|| {
            train_one(data, split, config, job, modalities, &observe, device)
        })?);
    }
    let prior = label_prior(&data.targets, &split.train);
    let model = model(data, members, config, start.elapsed().as_secs_f64(), device).with_prior(prior);
    model.with_gate_reference(&data.views, &split.train)
}

/// The model of trained `members`: the views they read (in order of first
/// use), the outputs, each member with its training log, and the training
/// config, recorded under the config's [`label`](TrainingConfig::label).
fn model(data: &MultiviewData, members: Vec<Member>, config: &TrainingConfig, seconds: f64, device: &Device) -> Model {
    let mut used: Vec<usize> = Vec::new();
    for m in &members {
        for &v in &m.modalities {
            if !used.contains(&v) {
                used.push(v);
            }
        }
    }
    let views = view_specs(data);
    let task = members[0].spec.task;
    let (records, nets): (Vec<MemberConfig>, Vec<FusionNet>) = members
        .into_iter()
        .map(|m| {
            let record = MemberConfig {
                views: m.modalities.iter().map(|v| used.iter().position(|u| u == v).expect("collected")).collect(),
                spec: m.spec,
                scalers: m.scalers,
                engine: Some(m.engine),
                best_epoch: m.best_epoch,
                history: m.history,
                step_losses: m.step_losses,
                restart_losses: m.restart_losses,
            };
            (record, m.net)
        })
        .unzip();
    let record = ModelConfig {
        format_version: FORMAT_VERSION,
        gmu_version: env!("CARGO_PKG_VERSION").to_string(),
        method: config.label(),
        views: used.iter().map(|&v| views[v].clone()).collect(),
        task,
        outputs: data.targets.names().to_vec(),
        threshold: config.threshold,
        members: records,
        training: config.clone(),
        data: None,
        seconds,
        results: serde_json::Value::Null,
        weights_sha256: Vec::new(),
        gate_reference: None,
    };
    Model::new(record, nets, device)
}

/// One member to train: the data views it reads, its model, its seed and
/// where its epochs are checkpointed.
struct MemberJob {
    modalities: Vec<usize>,
    spec: FusionSpec,
    seed: u64,
    checkpoint: Option<std::path::PathBuf>,
}

/// Trains one member of a model; the returned net lives on `inference`.
fn train_one(
    data: &MultiviewData,
    split: &Split,
    config: &TrainingConfig,
    job: MemberJob,
    model_views: &[usize],
    observe: &(dyn Fn(&EpochLog, &EpochTiming) -> Result<()> + Sync),
    inference: &Device,
) -> Result<Member> {
    let MemberJob { modalities, spec, seed, checkpoint } = job;
    let device = inference.clone().autodiff();
    device.seed(seed);
    // Views missing in some rows: a row where this model sees none of its views is left out
    // of its training and of its early stopping.
    let missing: Vec<Vec<bool>> = modalities.iter().map(|&v| missing_rows(&data.views[v])).collect();
    let sees = |r: usize| missing.iter().any(|m| !m[r]);
    let train: Vec<usize> = split.train.iter().copied().filter(|&r| sees(r)).collect();
    let dev: Vec<usize> = split.dev.iter().copied().filter(|&r| sees(r)).collect();
    let names = || modalities.iter().map(|&v| data.views[v].name.as_str()).collect::<Vec<_>>().join("+");
    if train.len() < 2 {
        return Err(GmuError::invalid(
            "data",
            format!("view(s) {} are missing in almost every training row; nothing to train on", names()),
        ));
    }
    if dev.is_empty() && matches!(config.schedule, Schedule::Epochs { .. }) {
        return Err(GmuError::invalid(
            "data",
            format!("early stopping needs dev rows where view(s) {} are present, and there are none", names()),
        ));
    }
    let any_missing = missing.iter().any(|m| train.iter().any(|&r| m[r]));
    let scalers = fit_scalers(data, &modalities, &train, config.scaling);
    let engine = config.engine.pick(&spec, &config.run_needs(any_missing), inference)?;
    let problem = member::Problem {
        data,
        modalities: &modalities,
        scalers: &scalers,
        train: &train,
        dev: &dev,
        missing: &missing,
        any_missing,
        noise: (!config.view_noise.is_off()).then_some(noise::Scope {
            noise: config.view_noise,
            views: model_views,
            train: &split.train,
            seed: config.seed,
        }),
        corruption: Default::default(),
    };
    let run = member::Run { config, seed, checkpoint: checkpoint.as_deref(), observe, device: &device, inference };
    let out = member::train_member(&spec, engine, &problem, run)?;
    Ok(Member {
        modalities,
        spec,
        scalers,
        net: out.net,
        engine: out.engine,
        history: out.history,
        best_epoch: out.best_epoch,
        step_losses: out.step_losses,
        restart_losses: out.restart_losses,
    })
}

/// The dev scores of one member network during training: its data views
/// (`member.views` index `data.views`) on `rows`, every one of which shows it
/// at least one view.
fn evaluate_nets(
    data: &MultiviewData,
    member: MemberRef<'_>,
    rows: &[usize],
    threshold: f32,
    device: &Device,
) -> (Evaluation, Prediction) {
    let views: Vec<&View> = data.views.iter().collect();
    let task = if data.targets.is_multilabel() { Task::Multilabel } else { Task::Multiclass };
    let p = predict::run(&[member], &views, member.views, rows, task, false, device)
        .expect("training rows hold no partly missing row, and each shows the member a view");
    (score(&data.targets, rows, &p.probs, threshold), p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::member::modality_dropout;
    use super::*;
    use crate::fusion::{ExpertKind, HeadKind};
    use rand::Rng;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

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
            View { name: "a".into(), dim: 4, values: a, image: None, prescaled: false, encoder: None, tokens: None },
            View { name: "b".into(), dim: 4, values: b, image: None, prescaled: false, encoder: None, tokens: None },
        ];
        let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let targets = if multilabel {
            let ind: Vec<u8> =
                y.iter().flat_map(|&c| (0..3).map(move |j| u8::from(j == c || (c == 2 && j == 0)))).collect();
            Targets::Labels { y: ind, names }
        } else {
            Targets::Classes { y, names }
        };
        (MultiviewData { views, targets }, flags)
    }

    /// A small, fast epochs config of `kind`.
    pub(crate) fn quick(kind: FusionKind) -> TrainingConfig {
        let mut c = TrainingConfig::paper(kind);
        c.model.hidden = 16;
        c.model.dropout = 0.1;
        c.optimizer.lr = 0.01;
        c.schedule = Schedule::Epochs { max_epochs: 15, patience: 15, batch_size: 32 };
        c
    }

    /// `config` trained for exactly `n` epochs (patience `n`).
    pub(crate) fn epochs(mut config: TrainingConfig, n: usize) -> TrainingConfig {
        config.schedule =
            Schedule::Epochs { max_epochs: n, patience: n, batch_size: config.schedule.batch_size().unwrap_or(32) };
        config
    }

    /// A token view (WordPiece-style ids, 0 = padding) goes through an LSTM
    /// trained end to end with the GMU: the class is planted in which ids occur
    /// (at varying positions and lengths), the other view is noise.
    #[test]
    fn an_lstm_on_token_ids_learns_end_to_end_with_the_gmu() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 240;
        let (mut ids, mut noise, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let class = i % 3;
            let len = rng.random_range(2..=6usize);
            let mut row: Vec<f32> = (0..len).map(|_| rng.random_range(10..40) as f32).collect();
            let at = rng.random_range(0..len);
            row[at] = (1 + class) as f32; // ids 1, 2, 3 carry the class
            row.resize(8, 0.0);
            ids.extend(row);
            noise.extend((0..3).map(|_| rng.random_range(-1.0..1.0f32)));
            y.push(class);
        }
        let spec = crate::encoders::EncoderSpec::new(crate::encoders::EncoderKind::WordPiece).with_max_tokens(8);
        let views = vec![
            View {
                name: "tokens".into(),
                dim: 8,
                values: ids,
                image: None,
                prescaled: true,
                encoder: Some(spec),
                tokens: None,
            },
            View {
                name: "noise".into(),
                dim: 3,
                values: noise,
                image: None,
                prescaled: false,
                encoder: None,
                tokens: None,
            },
        ];
        let data =
            MultiviewData { views, targets: Targets::Classes { y, names: ["x", "y", "z"].map(String::from).to_vec() } };
        let split = data.split(0.2, 0.2, 0).unwrap();
        let mut config = quick(FusionKind::Gmu);
        config.model.text_features = 8;
        config.schedule = Schedule::Epochs { max_epochs: 30, patience: 30, batch_size: 16 };
        let trained = train(&data, &[0, 1], &split, &config, &dev()).unwrap();
        assert!(matches!(
            trained.config.members[0].spec.encoders[0],
            crate::fusion::SubnetSpec::Lstm { vocab: 30522, embed: 8, d_out: 8, .. }
        ));
        assert_eq!(trained.config.members[0].engine, Some(crate::engine::Engine::Burn));
        let test = trained.evaluate(&data, &split.test, false).unwrap().0;
        assert!(test.accuracy > 0.9, "LSTM + GMU on planted tokens: test accuracy {}", test.accuracy);
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
                let mut config = quick(kind);
                (config.model.experts, config.model.tied_gates) = (experts, tied);
                let trained = train(&data, &[0, 1], &split, &config, &dev()).unwrap();
                let h = &trained.config.members[0].history;
                assert!(h.last().unwrap().train_loss < 0.8 * h[0].train_loss, "{kind} multilabel={multilabel}: {h:?}");
                let test = trained.evaluate(&data, &split.test, false).unwrap().0;
                // Late fusion sees each view alone, and each view carries the class for half the rows.
                let floor = if kind == FusionKind::AvgProbs { 0.6 } else { 0.8 };
                assert!(test.f1.macro_ > floor, "{kind} ({experts:?}, tied {tied}) multilabel={multilabel}: {test:?}");
            }
        }
    }

    /// Two views `a`, `b` of 4 columns and 3 classes, each carrying the class
    /// with its `signals` strength on the class's column (noise in [-1, 1)).
    fn two_signals(n: usize, seed: u64, signals: [f32; 2]) -> MultiviewData {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let class = i % 3;
            for (v, signal) in [(&mut a, signals[0]), (&mut b, signals[1])] {
                for j in 0..4 {
                    v.push(rng.random_range(-1.0..1.0f32) + if j == class { signal } else { 0.0 });
                }
            }
            y.push(class);
        }
        let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        MultiviewData {
            views: vec![View::features("a", 4, a), View::features("b", 4, b)],
            targets: Targets::Classes { y, names },
        }
    }

    /// `--view-noise` changes training, is the same for the same seed, and is
    /// recorded in the model's config; a comparison's methods see the same draws.
    #[test]
    fn view_noise_is_seeded_recorded_and_shared_by_the_members() {
        let data = two_signals(300, 5, [3.0, 1.0]);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let base = epochs(quick(FusionKind::Gmu), 4);
        let noisy = TrainingConfig {
            view_noise: crate::config::ViewNoise { p: 0.5, sigma: (0.5, 4.0), ..Default::default() },
            ..base.clone()
        };
        let history =
            |c: &TrainingConfig| train(&data, &[0, 1], &split, c, &dev()).unwrap().config.members[0].history.clone();
        let (plain, a, b) = (history(&base), history(&noisy), history(&noisy));
        assert_eq!(a, b, "the same seed, the same corruption");
        assert_ne!(a, plain, "the noise changes what is trained on");
        let model = train(&data, &[0, 1], &split, &noisy, &dev()).unwrap();
        let json = serde_json::to_value(&model.config.training).unwrap();
        assert_eq!(json["view_noise"]["p"], 0.5);
        assert!(serde_json::to_value(&base).unwrap().get("view_noise").is_none(), "off: not written");
        // Every member and method draws from the run's seed and the model's views only.
        let scope =
            |views: &'static [usize]| noise::Scope { noise: noisy.view_noise, views, train: &split.train, seed: 0 };
        let all = |_: usize, _: usize| true;
        assert_eq!(noise::draw(&scope(&[0, 1]), 3, data.len(), all), noise::draw(&scope(&[0, 1]), 3, data.len(), all));
        // A view noise on a model of one view never corrupts (never all of its views).
        let concat = |c: &TrainingConfig| TrainingConfig {
            model: crate::config::ModelOptions { fusion: FusionKind::Concat, ..c.model.clone() },
            ..c.clone()
        };
        let single = train(&data, &[0], &split, &concat(&noisy), &dev()).unwrap();
        let single_plain = train(&data, &[0], &split, &concat(&base), &dev()).unwrap();
        assert_eq!(single.config.members[0].history, single_plain.config.members[0].history);
    }

    /// A GMU with a hidden gate layer trains on burn (the hand-written engines
    /// refuse it), records it, and saves and loads to the same predictions.
    #[test]
    fn a_gmu_with_a_hidden_gate_layer_trains_saves_and_loads() {
        let data = two_signals(300, 5, [3.0, 1.0]);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let mut config = epochs(quick(FusionKind::Gmu), 5);
        config.model.gate_hidden = 6;
        let model = train(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let member = &model.config.members[0];
        assert_eq!((member.engine, member.spec.gate_hidden), (Some(crate::engine::Engine::Burn), 6));
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let loaded = Model::load(dir.path(), &dev()).unwrap();
        let (a, b) =
            (model.evaluate(&data, &split.test, true).unwrap().1, loaded.evaluate(&data, &split.test, true).unwrap().1);
        assert_eq!(a, b);
        // A concatenation in the same comparison ignores the option.
        config.model.fusion = FusionKind::Concat;
        assert_eq!(train(&data, &[0, 1], &split, &config, &dev()).unwrap().config.members[0].spec.gate_hidden, 0);
    }

    /// The epoch checkpoint is written behind the training, on its own thread; a write that fails
    /// still stops the run with an error naming the file, not a run that ends without its checkpoint.
    #[test]
    fn a_checkpoint_write_that_fails_stops_the_run_naming_the_file() {
        let data = planted(120, false, 5);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let config = epochs(quick(FusionKind::Gmu), 3);
        let dir = tempfile::tempdir().unwrap();
        // A folder where epoch 1's flat state goes: no write may replace it.
        std::fs::create_dir_all(dir.path().join("member-0/current-1.flat")).unwrap();
        let err = train_with(&data, &[0, 1], &split, &config, Some(dir.path()), &dev()).unwrap_err().to_string();
        assert!(err.contains("current-1.flat"), "{err}");
        let model = train_with(&data, &[0, 1], &split, &config, None, &dev()).unwrap();
        assert_eq!(
            model.config.members[0].engine,
            Some(Engine::Maxout),
            "the check ran on a flat engine's background write"
        );
    }

    #[test]
    fn the_observer_sees_every_epoch_of_every_member_and_its_error_stops_the_run() {
        let data = planted(120, false, 1);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let config = epochs(quick(FusionKind::AvgProbs), 4);
        let seen = std::sync::Mutex::new(Vec::new());
        let observe = |member: usize, log: &EpochLog, timing: &EpochTiming| {
            seen.lock().unwrap().push((member, log.clone()));
            // Every training row in each epoch's steps (72 rows in batches of 32, 32, 8), and the
            // parts of the epoch inside its whole.
            assert_eq!(timing.rows, split.train.len());
            assert!(timing.steps > 0.0 && timing.dev > 0.0, "{timing:?}");
            assert!(timing.steps + timing.dev <= timing.seconds, "{timing:?}");
            Ok(())
        };
        let trained = train_observed(&data, &[0, 1], &split, &config, None, &observe, &dev()).unwrap();
        let seen = seen.into_inner().unwrap();
        let expected: Vec<(usize, EpochLog)> = (trained.config.members.iter().enumerate())
            .flat_map(|(k, m)| m.history.iter().map(move |log| (k, log.clone())))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(seen.iter().filter(|(k, _)| *k == 1).count(), trained.config.members[1].history.len());

        let stop = |_: usize, log: &EpochLog, _: &EpochTiming| {
            if log.epoch == 2 { Err(GmuError::invalid("observer", "stop at epoch 2")) } else { Ok(()) }
        };
        let err = train_observed(&data, &[0, 1], &split, &config, None, &stop, &dev()).unwrap_err();
        assert!(err.to_string().contains("stop at epoch 2"), "{err}");
    }

    #[test]
    fn same_seed_same_model_and_gates_follow_the_informative_view() {
        let (data, informative_a) = planted_with_flags(300, false, 2);
        let split = data.split(0.2, 0.2, 0).unwrap();
        // A narrow GMU (3 units for 3 classes) cannot give each view its own units, so it must gate.
        let mut config = epochs(quick(FusionKind::Gmu), 40);
        (config.model.dropout, config.model.hidden) = (0.0, 3);
        let a = train(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let b = train(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let (pa, pb) =
            (a.evaluate(&data, &split.test, false).unwrap().1, b.evaluate(&data, &split.test, false).unwrap().1);
        assert_eq!(pa.probs, pb.probs);
        assert_eq!(a.config.members[0].history, b.config.members[0].history);
        let gates = pa.gate_means.as_ref().unwrap();
        assert_eq!(gates.len(), split.test.len() * 2);
        // The gate of view a is larger, on average, where view a carries the class.
        let mean = |want: bool| {
            let g: Vec<f32> = split
                .test
                .iter()
                .enumerate()
                .filter(|(_, r)| informative_a[**r] == want)
                .map(|(i, _)| gates[2 * i])
                .collect();
            g.iter().sum::<f32>() / g.len() as f32
        };
        assert!(
            mean(true) > mean(false) + 0.05,
            "gate of a: {} where a informs, {} elsewhere",
            mean(true),
            mean(false)
        );
    }

    /// A gated model records its clean training gates (issue 22, item 3):
    /// `suspect_<view>` places a sample's gate among them. On the training rows
    /// it is uniform; it is higher where the view carries no signal (the gate
    /// turns from it); NaN where the view is missing; kept through save and load.
    #[test]
    fn suspicion_places_a_gate_among_the_clean_training_gates() {
        let (data, informative_a) = planted_with_flags(300, false, 2);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let mut config = epochs(quick(FusionKind::Gmu), 40);
        (config.model.dropout, config.model.hidden) = (0.0, 3);
        let model = train(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let reference = model.config.gate_reference.clone().expect("a gated model records its gates");
        assert_eq!(reference.rows, split.train.len());
        for name in ["a", "b"] {
            let q = &reference.quantiles[name];
            assert!(q.len() == 101 && q.windows(2).all(|w| w[0] <= w[1]), "{name}: {q:?}");
        }
        let views: Vec<&View> = data.views.iter().collect();
        let on_train = model.predict_rows(&views, &split.train, false).unwrap();
        let s = model.suspect(&on_train).unwrap();
        let mean_a = (0..split.train.len()).map(|i| s[2 * i]).sum::<f32>() / split.train.len() as f32;
        assert!((mean_a - 0.5).abs() < 0.02, "mean suspicion of a on its own training rows: {mean_a}");
        let on_test = model.predict_rows(&views, &split.test, false).unwrap();
        let s = model.suspect(&on_test).unwrap();
        let mean = |want: bool| {
            let v: Vec<f32> = split
                .test
                .iter()
                .enumerate()
                .filter(|(_, r)| informative_a[**r] == want)
                .map(|(i, _)| s[2 * i])
                .collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        assert!(mean(false) > mean(true) + 0.2, "suspect a: {} uninformative, {} informative", mean(false), mean(true));
        // a missing view has no suspicion
        let mut holed = data.views.clone();
        holed[1].values[..4].fill(f32::NAN);
        let refs: Vec<&View> = holed.iter().collect();
        let p = model.predict_rows(&refs, &[0, 1], false).unwrap();
        let s = model.suspect(&p).unwrap();
        assert!(s[1].is_nan() && s[0].is_finite() && s[3].is_finite());
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let back = Model::load(dir.path(), &dev()).unwrap();
        assert_eq!(back.config.gate_reference, Some(reference));
        assert_eq!(
            back.suspect(&p).unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            s.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
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
                let mut config = epochs(quick(kind), 2);
                (config.model.experts, config.model.tied_gates, config.model.head) = (experts, tied, head);
                let trained = train(&data, &[0, 1], &split, &config, &device).unwrap();
                let dir = tempfile::tempdir().unwrap();
                trained.save(dir.path()).unwrap();
                let loaded = crate::predict::Model::load(dir.path(), &device).unwrap();
                assert_eq!(loaded.config.outputs, data.targets.names());
                let views = loaded.select_views(&data.views).unwrap();
                let p = loaded.predict_rows(&views, &split.test, true).unwrap();
                let expected = trained.evaluate(&data, &split.test, false).unwrap().1;
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
        assert!(
            modality_dropout(10, 1, 0.5, None, &mut rng).is_none()
                && modality_dropout(10, 3, 0.0, None, &mut rng).is_none()
        );
        let mask = modality_dropout(20_000, 3, 0.3, None, &mut rng).unwrap();
        assert!(mask.chunks(3).all(|row| row.contains(&1.0)));
        let dropped = mask.iter().filter(|&&x| x == 0.0).count() as f64 / mask.len() as f64;
        // 0.3 minus the rows that would have lost all three (0.3³ = 2.7 %, one view restored each).
        assert!((dropped - (0.3 - 0.027 / 3.0)).abs() < 0.01, "{dropped}");
    }

    /// Both views carry the class, view b far more clearly; a GMU trained
    /// with modality dropout predicts far better than one trained without
    /// when view b is gone (mean over three training seeds, 120 test rows).
    #[test]
    fn modality_dropout_teaches_the_gmu_to_cope_with_a_missing_view() {
        // View b carries the class loudly, view a faintly: trained on both, a model leans on b.
        let data = two_signals(600, 11, [1.0, 3.0]);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let device = dev();
        let without_b = |p: f64| {
            (0..3)
                .map(|seed| {
                    let config = TrainingConfig { modality_dropout: p, seed, ..epochs(quick(FusionKind::Gmu), 20) };
                    let trained = train(&data, &[0, 1], &split, &config, &device).unwrap();
                    let mut gone = data.views[1].clone();
                    gone.values.fill(f32::NAN);
                    let views = [&data.views[0], &gone];
                    let p = trained.predict_views(&views, &split.test, false).unwrap();
                    score(&data.targets, &split.test, &p.probs, 0.5).accuracy
                })
                .sum::<f64>()
                / 3.0
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
        let gmu = train(&data, &[0, 1], &split, &quick(FusionKind::Gmu), &device).unwrap();
        let test = gmu.evaluate(&data, &split.test, false).unwrap().0;
        assert!(test.f1.macro_ > 0.75, "{test:?}");
        let single = train(&data, &[1], &split, &quick(FusionKind::Concat), &device).unwrap();
        let p = single.evaluate(&data, &split.test, false).unwrap().1;
        let blind = split.test.iter().position(|r| r % 4 == 1).unwrap();
        assert_eq!(p.probs[blind * 3..(blind + 1) * 3], single.prior.as_deref().unwrap()[..]);
        assert!(!p.present[blind]);
        let options = crate::experiments::comparison::CompareOptions {
            modalities: vec![1],
            methods: vec![quick(FusionKind::Concat)],
            single_modalities: false,
            trials: 1,
            save_to: None,
            data: None,
            missing_rates: vec![],
        };
        let err =
            crate::experiments::comparison::compare(&data, &split, &options, &device, &|_| {}).unwrap_err().to_string();
        assert!(err.contains("row 1: every compared view is missing"), "{err}");
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
        let err = train(&data, &[0, 1], &split, &quick(FusionKind::Concat), &dev()).unwrap_err().to_string();
        assert!(err.contains("view 'b', row 2, column 1: NaN"), "{err}");
    }
}
