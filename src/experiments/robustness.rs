//! Robustness to a corrupted modality, the paper's claim made testable: one
//! view of the test samples is corrupted (Gaussian noise of growing standard
//! deviation σ on its standardised inputs, or, for a growing share of the
//! samples, swapped with another sample's view or set to its training mean),
//! every trained model is scored again, the gated models' gate and share of
//! that view are followed, and each readout's power to flag the corrupted
//! samples is measured ([`Detection`]).
//!
//! The corruption is drawn once per view and level and shared by every model,
//! so the methods see exactly the same corrupted samples. A model with its own
//! scaler of the view gets `σ · scale_j · ε` added to raw column `j`, which is
//! `σ ε` on its standardised input, and its own training mean for `zero`. A
//! view that training leaves unscaled (prescaled, such as unit-length hashed
//! text) gets one spread for all its columns instead of `scale_j`, the root mean
//! square of their training standard deviations
//! ([`Scaler::noise_spread`](crate::data::Scaler::noise_spread)), so σ = 4 is as
//! loud against its signal as on a standardised view.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use rand::seq::SliceRandom;

pub use crate::config::NoiseKind;
use crate::data::{Targets, View};
use crate::error::{GmuError, Result};
use crate::predict::{Model, score};

/// One model's scores with one view corrupted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewCurve {
    /// The corrupted view.
    pub view: String,
    /// Test macro-F1 at each noise level.
    pub scores: Vec<f64>,
    /// Mean contribution share of the corrupted view at each level (gated models).
    pub gate_share: Option<Vec<f64>>,
    /// Mean raw gate of the corrupted view at each level (gated models).
    pub gate: Option<Vec<f64>>,
    /// Area under the score curve over the clean score times the level range:
    /// 1 when noise costs nothing (MultiBench's relative robustness, normalised).
    pub relative_robustness: f64,
    /// Gated models: how well each readout flags the corrupted samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
}

/// Every model's curves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodCurves {
    /// The method's name.
    pub method: String,
    /// One curve per view it was tested on.
    pub views: Vec<ViewCurve>,
}

/// What [`sweep`] measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustnessReport {
    /// The corruption.
    pub kind: NoiseKind,
    /// Noise standard deviations on the standardised inputs (Gaussian), or
    /// shares of the test samples corrupted (swap, zero).
    pub levels: Vec<f64>,
    /// The score reported (`macro_f1`).
    pub metric: String,
    /// The views corrupted, in order.
    pub views: Vec<String>,
    /// Per method, in the order given.
    pub methods: Vec<MethodCurves>,
}

impl RobustnessReport {
    /// The report as `robustness.json`: `{"levels", "metric", "methods":
    /// {method: {view: [score per level]}}, "gate_share": {method: {view:
    /// [share per level]}}, "relative_robustness": {method: {view: r}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut methods = serde_json::Map::new();
        let mut shares = serde_json::Map::new();
        let mut relative = serde_json::Map::new();
        let mut gates = serde_json::Map::new();
        let mut detection = serde_json::Map::new();
        for m in &self.methods {
            let per_view =
                |f: &dyn Fn(&ViewCurve) -> Option<serde_json::Value>| -> serde_json::Map<String, serde_json::Value> {
                    m.views.iter().filter_map(|c| f(c).map(|v| (c.view.clone(), v))).collect()
                };
            methods.insert(m.method.clone(), per_view(&|c| Some(floats(&c.scores))).into());
            let s = per_view(&|c| c.gate_share.as_ref().map(|g| floats(g)));
            if !s.is_empty() {
                shares.insert(m.method.clone(), s.into());
            }
            let g = per_view(&|c| c.gate.as_ref().map(|g| floats(g)));
            if !g.is_empty() {
                gates.insert(m.method.clone(), g.into());
            }
            relative.insert(m.method.clone(), per_view(&|c| Some(float(c.relative_robustness))).into());
            let d = per_view(&|c| {
                c.detection.map(|d| {
                    serde_json::json!({
                        "gate": float(d.gate), "share": float(d.share),
                        "importance": float(d.importance), "conflict": float(d.conflict),
                    })
                })
            });
            if !d.is_empty() {
                detection.insert(m.method.clone(), d.into());
            }
        }
        serde_json::json!({
            "kind": self.kind,
            "levels": self.levels,
            "metric": self.metric,
            "methods": methods,
            "gate_share": shares,
            "gate": gates,
            "relative_robustness": relative,
            "detection_auroc": detection,
        })
    }

    /// A Markdown table: one row per method and corrupted view, the score at
    /// each level and the relative robustness; the gated models' share of
    /// the corrupted view below it.
    pub fn table(&self) -> String {
        let level = |l: f64| {
            if self.kind == NoiseKind::Gaussian { format!("σ = {l}") } else { format!("{l:.0}%", l = l * 100.0) }
        };
        let mut out = String::from("| method | view corrupted |");
        for &l in &self.levels {
            out.push_str(&format!(" {} |", level(l)));
        }
        out.push_str(&format!(" relative robustness |\n|---|---|{}---|\n", "---|".repeat(self.levels.len())));
        for m in &self.methods {
            for c in &m.views {
                out.push_str(&format!("| {} | {} |", m.method, c.view));
                for s in &c.scores {
                    out.push_str(&format!(" {s:.4} |"));
                }
                out.push_str(&format!(" {:.3} |\n", c.relative_robustness));
            }
        }
        let gated: Vec<(&MethodCurves, &ViewCurve)> = self
            .methods
            .iter()
            .flat_map(|m| m.views.iter().map(move |c| (m, c)))
            .filter(|(_, c)| c.gate_share.is_some())
            .collect();
        if !gated.is_empty() {
            out.push_str("\nThe corrupted view in the gated models: mean contribution share / mean raw gate:\n\n| method | view corrupted |");
            for &l in &self.levels {
                out.push_str(&format!(" {} |", level(l)));
            }
            out.push_str(&format!("\n|---|---|{}\n", "---|".repeat(self.levels.len())));
            for (m, c) in gated {
                out.push_str(&format!("| {} | {} |", m.method, c.view));
                for (s, g) in c.gate_share.as_ref().expect("filtered").iter().zip(c.gate.as_deref().unwrap_or(&[])) {
                    out.push_str(&format!(" {s:.3} / {g:.3} |"));
                }
                out.push('\n');
            }
            out.push_str(
                "\nTelling corrupted samples from clean ones (half corrupted), AUROC of one minus each readout, and of the view's conflict with the others (0.5 is chance):\n\n| method | view corrupted | gate | share | importance | conflict |\n|---|---|---|---|---|---|\n",
            );
            for m in &self.methods {
                for c in &m.views {
                    if let Some(d) = c.detection {
                        out.push_str(&format!(
                            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                            m.method, c.view, d.gate, d.share, d.importance, d.conflict
                        ));
                    }
                }
            }
        }
        out
    }
}

fn float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn floats(xs: &[f64]) -> serde_json::Value {
    serde_json::Value::Array(xs.iter().map(|&x| float(x)).collect())
}

/// Area under `scores` over `levels` (trapezoids) divided by
/// `scores[0] · (last level − first level)`.
pub fn relative_robustness(levels: &[f64], scores: &[f64]) -> f64 {
    let span = levels.last().copied().unwrap_or(0.0) - levels.first().copied().unwrap_or(0.0);
    if span <= 0.0 || scores[0] <= 0.0 {
        return f64::NAN;
    }
    let area: f64 = levels.windows(2).zip(scores.windows(2)).map(|(l, s)| (l[1] - l[0]) * (s[0] + s[1]) / 2.0).sum();
    area / (scores[0] * span)
}

/// How well one readout of a gated model tells corrupted test samples from
/// clean ones when half of them are corrupted: the AUROC of one minus the
/// readout (0.5 is chance; below 0.5 the readout moves the other way).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The corrupted view's mean raw gate.
    pub gate: f64,
    /// Its contribution share.
    pub share: f64,
    /// Its occlusion importance.
    pub importance: f64,
    /// Its conflict with the other views (the AUROC of the conflict itself,
    /// not one minus it: a corrupted view disagrees more).
    pub conflict: f64,
}

/// `clean` (one view's test rows) with the rows marked in `chosen` corrupted
/// as `kind` says, in the raw units of a model whose scaler of the view is
/// `scaler`: Gaussian `σ ε` on the standardised inputs (`noise` holds ε), the
/// row of `partners[i]` (swap), or the training mean (zero).
fn corrupted(
    clean: &View,
    kind: NoiseKind,
    (sigma, noise): (f32, &[f32]),
    chosen: &[bool],
    partners: &[usize],
    scaler: &crate::data::Scaler,
) -> View {
    let mut out = clean.clone();
    let d = clean.dim;
    for (i, row) in out.values.chunks_mut(d).enumerate().filter(|(i, _)| chosen[*i]) {
        match kind {
            NoiseKind::Gaussian => scaler.add_noise(row, sigma, &noise[i * d..(i + 1) * d]),
            NoiseKind::Swap => row.copy_from_slice(clean.row(partners[i])),
            NoiseKind::Zero | NoiseKind::Mixed => row.copy_from_slice(&scaler.mean),
        }
    }
    out
}

/// Scores every model in `models` (name, predictor) on `rows` of `views`
/// with each view of `corrupt` corrupted as `kind` says at each of `levels`:
/// for [`NoiseKind::Gaussian`] the noise σ on every test sample, for `swap`
/// and `zero` the share of the test samples corrupted. `seed` draws the noise,
/// the samples and the swap partners, shared by every model. For gated models
/// it also measures [`Detection`] with half the samples corrupted (Gaussian:
/// at the largest σ). Every model must read its views from `views` by name.
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    models: &[(String, &Model)],
    views: &[View],
    targets: &Targets,
    rows: &[usize],
    corrupt: &[String],
    kind: NoiseKind,
    levels: &[f64],
    seed: u64,
) -> Result<RobustnessReport> {
    let shares = kind != NoiseKind::Gaussian;
    if kind == NoiseKind::Mixed {
        return Err(GmuError::invalid("kind", "a sweep corrupts with one kind: gaussian, swap or zero"));
    }
    if levels.len() < 2
        || levels.iter().any(|l| !(l.is_finite() && *l >= 0.0 && (!shares || *l <= 1.0)))
        || levels.windows(2).any(|w| w[1] <= w[0])
    {
        let what = if shares { "shares of the test samples in [0, 1]" } else { "noise levels ≥ 0" };
        return Err(GmuError::invalid("levels", format!("expected at least two increasing {what}, got {levels:?}")));
    }
    let sub: Vec<View> = views.iter().map(|v| v.select(rows)).collect();
    let n = rows.len();
    let local: Vec<usize> = (0..n).collect();
    let mut methods: Vec<MethodCurves> =
        models.iter().map(|(name, _)| MethodCurves { method: name.clone(), views: vec![] }).collect();
    for (vi, name) in corrupt.iter().enumerate() {
        let Some(at) = sub.iter().position(|v| &v.name == name) else {
            return Err(GmuError::invalid("views", format!("no view '{name}' in the data")));
        };
        let clean = &sub[at];
        // Which samples a share corrupts (a prefix of `order`) and whose view each one gets.
        let mut order = local.clone();
        order.shuffle(&mut StdRng::seed_from_u64(seed ^ ((vi as u64) << 32) ^ 0x0de7_ec75));
        let mut partners = vec![0; n];
        for (p, &i) in order.iter().enumerate() {
            partners[i] = order[(p + 1) % n];
        }
        let prefix = |count: usize| {
            let mut chosen = vec![false; n];
            order.iter().take(count).for_each(|&i| chosen[i] = true);
            chosen
        };
        let noise_at = |li: usize| -> Vec<f32> {
            let mut rng = StdRng::seed_from_u64(seed ^ ((vi as u64) << 32) ^ li as u64);
            (0..clean.values.len()).map(|_| StandardNormal.sample(&mut rng)).collect()
        };
        let mut per_model: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![(vec![], vec![], vec![]); models.len()];
        for (li, &level) in levels.iter().enumerate() {
            let noise = if shares { Vec::new() } else { noise_at(li) };
            let (sigma, chosen) =
                if shares { (0.0, prefix((level * n as f64).round() as usize)) } else { (level as f32, vec![true; n]) };
            for (m, (_, predictor)) in models.iter().enumerate() {
                let noisy = match predictor.scaler(name) {
                    Some(scaler) => corrupted(clean, kind, (sigma, &noise), &chosen, &partners, scaler),
                    None => clean.clone(),
                };
                let data: Vec<View> =
                    sub.iter().enumerate().map(|(k, v)| if k == at { noisy.clone() } else { v.clone() }).collect();
                let selected = predictor.select_views(&data)?;
                let p = predictor.predict_as_trained(&selected, &local, false)?;
                let eval = score(targets, rows, &p.probs, predictor.config.threshold);
                per_model[m].0.push(eval.f1.macro_);
                if let (Some(shares), Some(gates)) = (&p.shares, &p.gate_means)
                    && let Some(k) = predictor.config.views.iter().position(|v| &v.name == name)
                {
                    let kk = predictor.config.views.len();
                    let mean = |x: &[f32]| x.chunks(kk).map(|s| s[k] as f64).sum::<f64>() / n.max(1) as f64;
                    per_model[m].1.push(mean(shares));
                    per_model[m].2.push(mean(gates));
                }
            }
        }
        // Half the samples corrupted (Gaussian: at the largest σ), for the gated models' readouts.
        let half = prefix(n / 2);
        let strongest = if shares { Vec::new() } else { noise_at(levels.len() - 1) };
        let sigma = *levels.last().expect("checked above") as f32;
        for (m, (scores, shares, gates)) in per_model.into_iter().enumerate() {
            let predictor = models[m].1;
            let detection = match (predictor.scaler(name), predictor.config.views.iter().position(|v| &v.name == name))
            {
                (Some(scaler), Some(k)) if !shares.is_empty() => {
                    let noisy = corrupted(clean, kind, (sigma, &strongest), &half, &partners, scaler);
                    let data: Vec<View> =
                        sub.iter().enumerate().map(|(j, v)| if j == at { noisy.clone() } else { v.clone() }).collect();
                    let selected = predictor.select_views(&data)?;
                    let p = predictor.predict_as_trained(&selected, &local, true)?;
                    let kk = predictor.config.views.len();
                    let auc_of = |x: Option<&Vec<f32>>, sign: f64| {
                        let Some(x) = x else { return f64::NAN };
                        let suspicion = |want: bool| -> Vec<f64> {
                            (0..n).filter(|&i| half[i] == want).map(|i| sign * x[i * kk + k] as f64).collect()
                        };
                        crate::metrics::auroc(&suspicion(true), &suspicion(false))
                    };
                    // One minus a readout, as 1 − x ranks as −x does.
                    let auc = |x: Option<&Vec<f32>>| auc_of(x, -1.0);
                    Some(Detection {
                        gate: auc(p.gate_means.as_ref()),
                        share: auc(p.shares.as_ref()),
                        importance: auc(p.importance.as_ref()),
                        conflict: auc_of(p.conflict.as_ref(), 1.0),
                    })
                }
                _ => None,
            };
            let relative = relative_robustness(levels, &scores);
            let gate_share = (!shares.is_empty()).then_some(shares);
            let gate = (!gates.is_empty()).then_some(gates);
            methods[m].views.push(ViewCurve {
                view: name.clone(),
                scores,
                gate_share,
                gate,
                relative_robustness: relative,
                detection,
            });
        }
    }
    Ok(RobustnessReport { kind, levels: levels.to_vec(), metric: "macro_f1".into(), views: corrupt.to_vec(), methods })
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use rand::Rng;

    use super::*;
    use crate::config::{Schedule, TrainingConfig};
    use crate::data::MultiviewData;
    use crate::fusion::FusionKind;
    use crate::train::train;

    #[test]
    fn relative_robustness_is_one_without_loss_and_the_area_otherwise() {
        assert!((relative_robustness(&[0.0, 1.0, 2.0], &[0.8, 0.8, 0.8]) - 1.0).abs() < 1e-12);
        // Trapezoids: (0.8 + 0.4)/2 + (0.4 + 0.4)/2 = 1.0, over 0.8 · 2.
        assert!((relative_robustness(&[0.0, 1.0, 2.0], &[0.8, 0.4, 0.4]) - 1.0 / 1.6).abs() < 1e-12);
    }

    /// Trains a GMU and a concat model on `data` and loads them back.
    fn trained(data: &MultiviewData, split: &crate::data::Split, dir: &std::path::Path) -> Vec<(String, Model)> {
        let device = Device::default();
        [FusionKind::Gmu, FusionKind::Concat]
            .into_iter()
            .map(|kind| {
                let mut config = TrainingConfig::paper(kind);
                (config.model.hidden, config.model.dropout, config.optimizer.lr) = (8, 0.1, 0.01);
                config.schedule = Schedule::Epochs { max_epochs: 20, patience: 20, batch_size: 32 };
                let mut trained = train(data, &[0, 1], split, &config, &device).unwrap();
                let path = dir.join(kind.to_string());
                trained.config.method = kind.to_string();
                trained.save(&path).unwrap();
                (kind.to_string(), Model::load(&path, &device).unwrap())
            })
            .collect()
    }

    /// View `a` carries the class, view `b` is pure noise. Noise on `a`
    /// costs every model; noise on `b` costs the GMU little.
    #[test]
    fn noise_on_the_informative_view_costs_and_on_the_noise_view_does_not() {
        let mut rng = StdRng::seed_from_u64(4);
        let n = 300;
        let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let class = i % 3;
            for j in 0..4 {
                a.push(rng.random_range(-1.0..1.0f32) + if j == class { 2.0 } else { 0.0 });
                b.push(rng.random_range(-1.0..1.0f32));
            }
            y.push(class);
        }
        let data = MultiviewData {
            views: vec![View::features("a", 4, a), View::features("b", 4, b)],
            targets: Targets::Classes { y, names: ["x", "y", "z"].map(String::from).to_vec() },
        };
        let split = data.split(0.2, 0.2, 0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let predictors = trained(&data, &split, dir.path());
        let models: Vec<(String, &Model)> = predictors.iter().map(|(n, p)| (n.clone(), p)).collect();
        let levels = [0.0, 0.5, 1.0, 2.0, 4.0];
        let report = sweep(
            &models,
            &data.views,
            &data.targets,
            &split.test,
            &["a".into(), "b".into()],
            NoiseKind::Gaussian,
            &levels,
            0,
        )
        .unwrap();
        for m in &report.methods {
            let (on_a, on_b) = (&m.views[0], &m.views[1]);
            assert!(on_a.scores[4] < on_a.scores[0] - 0.2, "{}: noise on a: {:?}", m.method, on_a.scores);
            assert!(
                on_a.scores[4] < on_b.scores[4] - 0.1,
                "{}: noise on a {:?}, on b {:?}",
                m.method,
                on_a.scores,
                on_b.scores
            );
            assert!(on_a.relative_robustness < on_b.relative_robustness, "{m:?}");
        }
        // The GMU's gate shuts out the noise view: noising it costs the GMU little.
        let gmu_on_b = &report.methods[0].views[1].scores;
        assert!(gmu_on_b[4] > gmu_on_b[0] - 0.1, "GMU, noise on b: {gmu_on_b:?}");
        // Measured, not the paper's intuition: the GMU's share of the noised view does not
        // fall. Noise outside the training distribution saturates tanh(W_a x_a), so
        // |z_a ⊙ h_a| grows while the raw gate barely moves (README, robustness).
        let share = report.methods[0].views[0].gate_share.as_ref().unwrap();
        assert_eq!(share.len(), levels.len(), "{share:?}");
        // Issue 25: the behaviour the README reports, asserted (bounds alone could not fail).
        assert!(share[4] >= share[0], "the noised view's share fell: {share:?}");
        assert!(report.methods[1].views[0].gate_share.is_none());
        // Zeroing the informative view: share 0 is the clean score, every sample zeroed costs
        // every model, and the GMU's share of a zeroed view flags it (its transform is tanh(b)).
        let zero = sweep(
            &models,
            &data.views,
            &data.targets,
            &split.test,
            &["a".into()],
            NoiseKind::Zero,
            &[0.0, 0.5, 1.0],
            0,
        )
        .unwrap();
        for (z, g) in zero.methods.iter().zip(&report.methods) {
            assert_eq!(z.views[0].scores[0], g.views[0].scores[0], "{}", z.method);
            assert!(z.views[0].scores[2] < z.views[0].scores[0] - 0.2, "{}: {:?}", z.method, z.views[0].scores);
        }
        let d = zero.methods[0].views[0].detection.expect("the GMU is gated");
        assert!(d.share > 0.9 && d.importance > 0.6, "zeroed a: {d:?}");
        assert!(zero.methods[1].views[0].detection.is_none());
        let swap =
            sweep(&models, &data.views, &data.targets, &split.test, &["a".into()], NoiseKind::Swap, &[0.0, 1.0], 0)
                .unwrap();
        assert!(swap.methods.iter().all(|m| m.views[0].scores[1] < m.views[0].scores[0] - 0.2), "{swap:?}");
        assert!(
            sweep(&models, &data.views, &data.targets, &split.test, &["a".into()], NoiseKind::Zero, &[0.0, 2.0], 0)
                .is_err()
        );
        let json = report.to_json();
        assert_eq!(json["kind"], "gaussian");
        assert_eq!(json["methods"]["gmu"]["a"].as_array().unwrap().len(), 5);
        assert!(json["gate_share"]["concat"].is_null() && json["gate_share"]["gmu"]["b"].is_array());
        let conflict = json["detection_auroc"]["gmu"]["a"]["conflict"].as_f64().expect("a readout of gated models");
        assert!((0.0..=1.0).contains(&conflict), "{conflict}");
        assert!(report.table().contains("| gmu | a |"));
    }
}
