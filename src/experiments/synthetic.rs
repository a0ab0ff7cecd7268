//! The synthetic experiment end to end: the seed post's demo (train GMU and
//! FF, evaluate on a fresh draw, draw the maps) and the paper's protocol
//! (§5.1: GMU against logistic regression over many seeds).

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::config::{Overrides, Preset, Schedule};
use crate::cpu::LossKind;
use crate::data::Scaler;
use crate::data::{SyntheticConfig, SyntheticData};
use crate::engine::Engine;
use crate::engine::native::{Network, Workspace};
use crate::error::{GmuError, Result, write_atomic};
use crate::fusion::synthetic::ModelKind;
use crate::fusion::synthetic::{ModelSpec, flat_params};
use crate::metrics::{Tally, accuracy, pearson};
use crate::plot::{self, Colormap, MeshMap};
use crate::predict::Model;
use crate::store;
use crate::train::synthetic;

/// A synthetic-experiment [`Model`] in the native engine's layout: it scores
/// raw (unscaled) inputs fast, a million mesh points for the maps in
/// milliseconds. Built from a model ([`NativeScorer::new`]) or a model
/// directory ([`NativeScorer::load`]); not a model type of its own.
#[derive(Clone, Debug)]
pub struct NativeScorer {
    /// The weights.
    pub net: Network,
    /// The scaling fitted at training time, over the joined inputs `[x_v, x_t]`.
    pub scaler: Scaler,
    /// The loss it was trained with (decides how P(C = 1) is read from the logits).
    pub loss: LossKind,
}

/// Accuracy and corr(M, z) of a synthetic-experiment model on a data set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyntheticScores {
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Pearson correlation between `M` and the visual gate `z` (GMU with `M` known only).
    pub corr_m_z: Option<f64>,
}

/// The scaler of the joined inputs from one scaler per view.
fn joined_scaler(scalers: &[Scaler]) -> Scaler {
    Scaler {
        mean: scalers.iter().flat_map(|s| s.mean.iter().copied()).collect(),
        scale: scalers.iter().flat_map(|s| s.scale.iter().copied()).collect(),
        impute: scalers.iter().map(|s| s.impute.clone()).collect::<Option<Vec<Vec<f32>>>>().map(|m| m.concat()),
        noise_scale: scalers
            .iter()
            .any(|s| s.noise_scale.is_some())
            .then(|| scalers.iter().flat_map(|s| s.noise_spread().iter().copied()).collect()),
    }
}

impl NativeScorer {
    /// `model` in the native layout, if it is one of the synthetic experiment's
    /// classifiers (GMU → linear, FF, logistic regression on two views).
    pub fn new(model: &Model) -> Result<Self> {
        Self::build(model).ok_or_else(|| GmuError::invalid("model", Self::refusal(model)))
    }

    /// Loads a model directory written by any command for a GMU → linear, FF or
    /// logistic-regression model on two views (the weights are read through
    /// `device`, then scored by the native engine).
    pub fn load(dir: &Path, device: &burn::tensor::Device) -> Result<Self> {
        let model = Model::load(dir, device)?;
        Self::build(&model)
            .ok_or_else(|| GmuError::Store { path: dir.join(store::CONFIG_FILE), message: Self::refusal(&model) })
    }

    fn build(model: &Model) -> Option<Self> {
        let member = (model.config.members.len() == 1).then(|| &model.config.members[0])?;
        let spec = ModelSpec::from_fusion(&member.spec)?;
        Some(NativeScorer {
            net: Network::new(spec, flat_params(&model.nets()[0])),
            scaler: joined_scaler(&member.scalers),
            loss: model.config.training.loss.unwrap_or(LossKind::SoftmaxCe),
        })
    }

    fn refusal(model: &Model) -> String {
        format!(
            "a {} model; this command takes the synthetic experiment's classifiers (use `gmu predict`)",
            model.config.method
        )
    }

    /// Checks that `data` has the input widths this model was trained on.
    pub fn check_inputs(&self, data: &SyntheticData, path: &Path) -> Result<()> {
        let spec = self.net.spec();
        if spec.d_v != data.dim || spec.d_t != data.dim {
            return Err(GmuError::data(
                path,
                format!(
                    "the model expects {} + {} inputs, the file has {} + {}",
                    spec.d_v, spec.d_t, data.dim, data.dim
                ),
            ));
        }
        Ok(())
    }

    /// P(C = 1) and the mean visual gate for every sample of raw row-major `[n, d_v + d_t]` inputs.
    pub fn predict(&self, raw: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = raw.len() / self.net.spec().d_in();
        let (mut prob, mut gate) = (vec![0.0; n], vec![0.0; n]);
        self.net.predict(raw, Some(&self.scaler), self.loss, &mut prob, &mut gate);
        (prob, gate)
    }

    /// Accuracy and corr(M, z) on `data`.
    pub fn evaluate(&self, data: &SyntheticData) -> SyntheticScores {
        let mut x = data.joined();
        self.scaler.apply(&mut x);
        let mut ws = Workspace::default();
        let predicted = self.net.classify(&x, &mut ws);
        let corr_m_z = match (&data.m, self.net.spec().kind) {
            (Some(m), ModelKind::Gmu) => {
                // The visual gate of each sample, averaged over the H units.
                let h = self.net.spec().hidden;
                let z: Vec<f64> =
                    ws.gates().chunks_exact(h).map(|z| z.iter().map(|&v| v as f64).sum::<f64>() / h as f64).collect();
                let m: Vec<f64> = m.iter().map(|&v| v as f64).collect();
                // Undefined (None, `null` in JSON) where M or z is constant.
                pearson(&m, &z)
            }
            _ => None,
        };
        SyntheticScores { accuracy: accuracy(&predicted, &data.c), corr_m_z }
    }
}

/// Mesh points per axis the maps accept.
const RESOLUTIONS: std::ops::RangeInclusive<usize> = 2..=4000;

fn check_resolution(resolution: usize) -> Result<()> {
    if RESOLUTIONS.contains(&resolution) {
        return Ok(());
    }
    Err(GmuError::invalid(
        "resolution",
        format!("expected {}..={} mesh points per axis, got {resolution}", RESOLUTIONS.start(), RESOLUTIONS.end()),
    ))
}

/// Scores `predictor` on a `resolution²` mesh over the range of `data` (two
/// scalar modalities) and draws `prediction_map.png`, plus `gate_map.png` for a
/// GMU, into `out` with the data's points on top. Returns the scoring time in ms.
pub fn draw_maps(predictor: &NativeScorer, data: &SyntheticData, resolution: usize, out: &Path) -> Result<f64> {
    check_resolution(resolution)?;
    if data.dim != 1 || predictor.net.spec().d_v != 1 {
        return Err(GmuError::invalid(
            "data",
            format!("maps are drawn over two scalar modalities; the data has dimension {}", data.dim),
        ));
    }
    let (x_range, y_range, points) = mesh(data, resolution);
    let start = Instant::now();
    let (prob, gate) = predictor.predict(&points);
    let score_ms = start.elapsed().as_secs_f64() * 1e3;
    std::fs::create_dir_all(out).map_err(|e| GmuError::io(out, e))?;
    let dots: Vec<(f32, f32, u8)> = (0..data.len()).map(|i| (data.x_v[i], data.x_t[i], data.c[i])).collect();
    let kind = predictor.net.spec().kind;
    let prediction = MeshMap {
        title: &format!("{} prediction P(C = 1)", kind.to_string().to_uppercase()),
        values: &prob,
        resolution,
        x_range,
        y_range,
        x_label: "visual modality x_v",
        y_label: "textual modality x_t",
        points: &dots,
        colormap: Colormap::BlueWhiteRed,
        bar_labels: ["C = 0", "C = 1"],
    };
    plot::mesh_map(&out.join("prediction_map.png"), &prediction)?;
    if kind == ModelKind::Gmu {
        let gates = MeshMap {
            title: "Which modality the GMU attends (gate z)",
            values: &gate,
            colormap: Colormap::Gray,
            bar_labels: ["x_t is important", "x_v is important"],
            ..prediction
        };
        plot::mesh_map(&out.join("gate_map.png"), &gates)?;
    }
    Ok(score_ms)
}

/// The fresh evaluation draw of a run: same distribution, an independent stream.
pub fn fresh_draw(config: &SyntheticConfig, seed: u64, n: usize) -> Result<SyntheticData> {
    let fresh = SyntheticConfig { n, balanced: false, ..config.clone() };
    fresh.generate(&mut StdRng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15))
}

/// Options of [`run_demo`].
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Seed of the data, the initialisations and the fresh draw.
    pub seed: u64,
    /// Mesh points per axis of the maps.
    pub resolution: usize,
    /// Training recipe.
    pub preset: Preset,
    /// Training engine.
    pub engine: Engine,
    /// Size of the fresh evaluation draw.
    pub test_size: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { seed: 7, resolution: 1000, preset: Preset::Default, engine: Engine::Auto, test_size: 10_000 }
    }
}

/// One model's line in `metrics.json`.
#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    /// Accuracy on the fresh draw.
    pub accuracy: f64,
    /// Accuracy on the training data.
    pub train_accuracy: f64,
    /// corr(M, z) on the fresh draw (GMU only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corr_m_z: Option<f64>,
    /// Training loss at the end.
    pub final_loss: f32,
    /// Final training loss of each restart.
    pub restart_losses: Vec<f32>,
    /// Wall time of the training steps alone (all restarts), ms.
    pub train_ms: f64,
    /// Number of parameters.
    pub n_params: usize,
}

/// What `metrics.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// The run's seed.
    pub seed: u64,
    /// The preset's name.
    pub preset: String,
    /// The engine that trained.
    pub engine: Engine,
    /// Training samples.
    pub n_train: usize,
    /// Fresh evaluation samples.
    pub n_test: usize,
    /// The GMU classifier.
    pub gmu: ModelReport,
    /// The feed-forward baseline.
    pub ff: ModelReport,
    /// Mesh points per axis.
    pub resolution: usize,
    /// Wall time to score the GMU on the whole mesh (inputs built beforehand), ms.
    pub mesh_ms: f64,
}

/// A `resolution × resolution` mesh over the ranges of the data's two (scalar)
/// inputs, row-major from the bottom row: `(x_v, x_t)` pairs.
pub fn mesh(data: &SyntheticData, resolution: usize) -> ((f32, f32), (f32, f32), Vec<f32>) {
    let range = |x: &[f32]| x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (xr, yr) = (range(&data.x_v), range(&data.x_t));
    let step = |(lo, hi): (f32, f32), k: usize| lo + (hi - lo) * k as f32 / (resolution - 1) as f32;
    let mut points = Vec::with_capacity(resolution * resolution * 2);
    for j in 0..resolution {
        let y = step(yr, j);
        for i in 0..resolution {
            points.push(step(xr, i));
            points.push(y);
        }
    }
    (xr, yr, points)
}

fn report(model: &Model, train_data: &SyntheticData, test: &SyntheticData) -> Result<ModelReport> {
    let scorer = NativeScorer::new(model)?;
    let eval = scorer.evaluate(test);
    let restart_losses = &model.config.members[0].restart_losses;
    Ok(ModelReport {
        accuracy: eval.accuracy,
        train_accuracy: scorer.evaluate(train_data).accuracy,
        corr_m_z: eval.corr_m_z,
        final_loss: restart_losses.iter().copied().fold(f32::INFINITY, f32::min),
        restart_losses: restart_losses.clone(),
        train_ms: model.config.seconds * 1e3,
        n_params: scorer.net.spec().n_params(),
    })
}

/// Runs the seed post's experiment and writes `gate_map.png`,
/// `prediction_map.png`, `loss.png`, `metrics.json` and the two trained
/// models (`gmu/`, `ff/`: model directories, `config.json` + `model-0.safetensors`) into `out`.
/// `progress` receives a line per stage.
pub fn run_demo(
    options: &DemoOptions,
    out: &Path,
    device: &burn::tensor::Device,
    progress: &mut dyn FnMut(&str),
) -> Result<DemoReport> {
    // Checked before training, not only when the maps are drawn.
    check_resolution(options.resolution)?;
    if options.test_size == 0 {
        return Err(GmuError::invalid("test_size", "the fresh draw needs at least one sample"));
    }
    crate::budget::ensure(
        "test_size",
        &format!("a fresh draw of {} samples", options.test_size),
        crate::budget::product(&[options.test_size, 2, 4, 2]),
    )?;
    std::fs::create_dir_all(out).map_err(|e| GmuError::io(out, e))?;
    let data_config = SyntheticConfig::default();
    let data = data_config.generate(&mut StdRng::seed_from_u64(options.seed))?;
    let test = fresh_draw(&data_config, options.seed, options.test_size)?;

    let mut trained = vec![];
    for kind in [ModelKind::Gmu, ModelKind::Ff] {
        let mut config = options.preset.config(kind, options.seed);
        config.engine = options.engine;
        if let Schedule::Steps { steps, restarts, .. } = config.schedule {
            progress(&format!("training {kind} ({restarts} restarts × {steps} Adam steps, engine {})", config.engine));
        }
        let model = synthetic::train(&config, &data, device)?;
        model.save(&out.join(kind.to_string()))?;
        trained.push(model);
    }
    let (gmu, ff) = (&trained[0], &trained[1]);

    progress(&format!("scoring the {0}×{0} mesh and drawing the figures", options.resolution));
    let mesh_ms = draw_maps(&NativeScorer::new(gmu)?, &data, options.resolution, out)?;
    let history = |m: &Model| m.config.members[0].step_losses.clone();
    plot::loss_curves(&out.join("loss.png"), "Training loss", &[("GMU", &history(gmu)), ("FF", &history(ff))])?;

    let report = DemoReport {
        seed: options.seed,
        preset: options.preset.to_string(),
        engine: gmu.config.members[0].engine.unwrap_or_default(),
        n_train: data.len(),
        n_test: test.len(),
        gmu: report(gmu, &data, &test)?,
        ff: report(ff, &data, &test)?,
        resolution: options.resolution,
        mesh_ms,
    };
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    write_atomic(&out.join("metrics.json"), json.as_bytes())?;
    Ok(report)
}

/// Which data the protocol draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// The paper's §5.1: inputs in R², exactly 200 samples per class.
    Paper,
    /// The seed post's data: scalar inputs, 400 samples, C ~ Bern(0.5).
    Seed,
}

impl Setting {
    /// The generator of this setting.
    pub fn data_config(self) -> SyntheticConfig {
        match self {
            Setting::Paper => SyntheticConfig { n: 400, balanced: true, dim: 2, ..Default::default() },
            Setting::Seed => SyntheticConfig::default(),
        }
    }
}

/// One seed's outcome in the protocol.
#[derive(Clone, Debug, Serialize)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// GMU accuracy on the fresh draw.
    pub gmu_accuracy: f64,
    /// Logistic-regression accuracy on the fresh draw.
    pub logreg_accuracy: f64,
    /// corr(M, z) of the GMU on the fresh draw.
    pub corr_m_z: f64,
}

/// Summary of a protocol run.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolReport {
    /// The data setting.
    pub setting: Setting,
    /// The training preset.
    pub preset: String,
    /// Changes to the preset.
    pub overrides: Overrides,
    /// Number of seeds.
    pub seeds: usize,
    /// GMU against logistic regression on fresh-draw accuracy.
    pub gmu_vs_logreg: Tally,
    /// Tolerance under which two accuracies tie.
    pub tie_tolerance: f64,
    /// Mean accuracies.
    pub mean_gmu_accuracy: f64,
    /// Mean accuracies.
    pub mean_logreg_accuracy: f64,
    /// Mean, minimum and median of corr(M, z).
    pub corr_m_z_mean: f64,
    /// See `corr_m_z_mean`.
    pub corr_m_z_min: f64,
    /// See `corr_m_z_mean`.
    pub corr_m_z_median: f64,
    /// Seeds where the GMU reached accuracy ≥ 0.99 and corr(M, z) ≥ 0.95.
    pub robust_seeds: usize,
    /// Wall time of the whole protocol, seconds.
    pub wall_s: f64,
    /// Every seed's outcome.
    pub outcomes: Vec<SeedOutcome>,
}

/// Options of [`run_protocol`].
#[derive(Clone, Debug)]
pub struct ProtocolOptions {
    /// Number of seeds (0, 1, …, seeds − 1).
    pub seeds: usize,
    /// Data setting.
    pub setting: Setting,
    /// Training recipe.
    pub preset: Preset,
    /// Changes to the recipe (both models).
    pub overrides: Overrides,
    /// Fresh evaluation samples per seed.
    pub test_size: usize,
    /// Accuracy difference under which GMU and LR tie.
    pub tie_tolerance: f64,
    /// Worker threads (0: all cores).
    pub threads: usize,
}

fn one_seed(options: &ProtocolOptions, seed: u64, device: &burn::tensor::Device) -> Result<SeedOutcome> {
    let data_config = options.setting.data_config();
    let data = data_config.generate(&mut StdRng::seed_from_u64(seed))?;
    let test = fresh_draw(&data_config, seed, options.test_size)?;
    let config = |kind| options.overrides.apply(options.preset.config(kind, seed));
    let gmu = synthetic::train(&config(ModelKind::Gmu), &data, device)?;
    let logreg = synthetic::train(&config(ModelKind::Logreg), &data, device)?;
    let g = NativeScorer::new(&gmu)?.evaluate(&test);
    let l = NativeScorer::new(&logreg)?.evaluate(&test);
    Ok(SeedOutcome { seed, gmu_accuracy: g.accuracy, logreg_accuracy: l.accuracy, corr_m_z: g.corr_m_z.unwrap_or(0.0) }) // a collapsed (constant) gate counts as no correlation
}

/// The paper's protocol: for each seed, draw data, train a GMU and a logistic
/// regression, score both on a fresh draw; tally wins, ties and losses and
/// summarise corr(M, z). Seeds run in parallel; the result does not depend
/// on the number of threads.
/// `device` is used where the recipe picks the burn engine.
pub fn run_protocol(
    options: &ProtocolOptions,
    device: &burn::tensor::Device,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ProtocolReport> {
    if options.seeds == 0 {
        return Err(GmuError::invalid("seeds", "at least one seed is needed"));
    }
    if options.test_size == 0 {
        return Err(GmuError::invalid("test_size", "the fresh draw needs at least one sample"));
    }
    use crate::budget::{ensure, product};
    let dim = options.setting.data_config().dim;
    let threads_max = std::thread::available_parallelism().map_or(1, |t| t.get()).max(options.threads);
    ensure(
        "test_size",
        &format!("fresh draws of {} samples", options.test_size),
        product(&[options.test_size, dim, 2, 4, threads_max]),
    )?;
    ensure("seeds", &format!("the outcomes of {} seeds", options.seeds), product(&[options.seeds, 64]))?;
    if !(options.tie_tolerance >= 0.0 && options.tie_tolerance < 1.0) {
        return Err(GmuError::invalid(
            "tie_tolerance",
            format!("an accuracy difference in [0, 1) is expected, got {}", options.tie_tolerance),
        ));
    }
    let start = Instant::now();
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        t => t,
    };
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<SeedOutcome>>>> = Mutex::new((0..options.seeds).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(options.seeds) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= options.seeds {
                        break;
                    }
                    let outcome = one_seed(options, i as u64, device);
                    results.lock().expect("no worker panics")[i] = Some(outcome);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, options.seeds);
                }
            });
        }
    });
    let outcomes: Vec<SeedOutcome> = results
        .into_inner()
        .expect("no worker panics")
        .into_iter()
        .map(|r| r.expect("every seed ran"))
        .collect::<Result<_>>()?;
    let mut tally = Tally::default();
    for o in &outcomes {
        tally.add(o.gmu_accuracy, o.logreg_accuracy, options.tie_tolerance);
    }
    let n = outcomes.len() as f64;
    let mut corr: Vec<f64> = outcomes.iter().map(|o| o.corr_m_z).collect();
    corr.sort_by(f64::total_cmp);
    Ok(ProtocolReport {
        setting: options.setting,
        preset: options.preset.to_string(),
        overrides: options.overrides.clone(),
        seeds: outcomes.len(),
        gmu_vs_logreg: tally,
        tie_tolerance: options.tie_tolerance,
        mean_gmu_accuracy: outcomes.iter().map(|o| o.gmu_accuracy).sum::<f64>() / n,
        mean_logreg_accuracy: outcomes.iter().map(|o| o.logreg_accuracy).sum::<f64>() / n,
        corr_m_z_mean: corr.iter().sum::<f64>() / n,
        corr_m_z_min: corr[0],
        corr_m_z_median: corr[corr.len() / 2],
        robust_seeds: outcomes.iter().filter(|o| o.gmu_accuracy >= 0.99 && o.corr_m_z >= 0.95).count(),
        wall_s: start.elapsed().as_secs_f64(),
        outcomes,
    })
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::config::Preset;
    use crate::data::SyntheticConfig;
    use crate::engine::Engine;
    use crate::train::synthetic::tests::{steps, toy};
    use crate::train::synthetic::train;

    #[test]
    fn same_seed_same_model_and_loss_falls() {
        let data = toy(1);
        let config = Preset::Default.config(ModelKind::Gmu, 9);
        let a = train(&config, &data, &Device::default()).unwrap();
        let b = train(&config, &data, &Device::default()).unwrap();
        let (sa, sb) = (NativeScorer::new(&a).unwrap(), NativeScorer::new(&b).unwrap());
        assert_eq!(sa.net.params, sb.net.params);
        let member = &a.config.members[0];
        assert_eq!(member.engine, Some(Engine::Native));
        let h = &member.step_losses;
        assert!(h.last().unwrap() < &(h[0] * 0.2), "{h:?}");
        assert_eq!(member.restart_losses.len(), 10);
        let best = member.restart_losses.iter().copied().fold(f32::INFINITY, f32::min);
        assert_eq!(
            sa.net.loss(
                &{
                    let mut x = data.joined();
                    sa.scaler.apply(&mut x);
                    x
                },
                &data.c,
                LossKind::SoftmaxCe
            ),
            best
        );
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let config = steps(Preset::Default.config(ModelKind::Gmu, 1), 5, 10);
        let data = SyntheticConfig { dim: 2, ..Default::default() }.generate(&mut StdRng::seed_from_u64(2)).unwrap();
        let model = train(&config, &data, &Device::default()).unwrap();
        model.save(dir.path()).unwrap();
        let loaded = Model::load(dir.path(), &Device::default()).unwrap();
        assert_eq!(loaded.config.training, config);
        let (ours, theirs) = (NativeScorer::new(&model).unwrap(), NativeScorer::new(&loaded).unwrap());
        assert_eq!(ours.scaler, theirs.scaler);
        assert_eq!(ours.net.params, theirs.net.params);
        let saved = crate::store::read_config(dir.path()).unwrap();
        assert_eq!(saved.members[0].step_losses, model.config.members[0].step_losses);
        assert_eq!(saved.members[0].restart_losses.len(), 10);
    }

    /// The synthetic models load as fusion models too and predict what the
    /// native engine computes: P(C = 1) = softmax of the logits, and the gate.
    #[test]
    fn synthetic_models_predict_through_the_model_directory() {
        let device = Device::default();
        let data = toy(5);
        for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
            let config = steps(Preset::Default.config(kind, 2), 30, 2);
            let model = train(&config, &data, &device).unwrap();
            let dir = tempfile::tempdir().unwrap();
            model.save(dir.path()).unwrap();
            let loaded = Model::load(dir.path(), &device).unwrap();
            let views = data.to_multiview().views;
            let p = loaded.predict(&views).unwrap();
            let (prob, gate) = NativeScorer::new(&model).unwrap().predict(&data.joined());
            for i in 0..data.len() {
                assert!(
                    (p.probs[2 * i + 1] - prob[i]).abs() < 1e-5,
                    "{kind} row {i}: {} vs {}",
                    p.probs[2 * i + 1],
                    prob[i]
                );
                if kind == ModelKind::Gmu {
                    assert!((p.gate_means.as_ref().unwrap()[2 * i] - gate[i]).abs() < 1e-5);
                }
            }
        }
    }
}
