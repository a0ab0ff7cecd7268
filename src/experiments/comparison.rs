//! Every fusion method of the paper on one data set, side by side: the
//! single-modality models, then GMU, linear sum, concatenation, average of
//! probabilities and the four mixtures of experts (the paper's Table 2), each
//! selected by dev macro-F1 (early stopping, and optionally a random search),
//! scored on the test split, with a gate report where the method has gates.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use burn::tensor::Device;

use crate::data::{DataRecord, MultiviewData, Split};
use crate::error::{GmuError, Result, write_atomic};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::TrainingConfig;
use crate::data::View;
use crate::fusion::{ExpertKind, FusionKind};
use crate::predict::{Evaluation, Model, score};
use crate::store::EpochLog;
use crate::train::search::Watch;
use crate::train::{EpochTiming, GateReport, ImportanceReport, label_prior, search_with};

/// One row of a comparison.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodResult {
    /// Method name (`gmu`, `moe-logistic-tied`, `single:pix`, …).
    pub method: String,
    /// Views it reads.
    pub views: Vec<String>,
    /// The hyper-parameters of the selected model.
    pub config: TrainingConfig,
    /// Scores on the dev split (selection).
    pub dev: Evaluation,
    /// Scores on the test split.
    pub test: Evaluation,
    /// Epoch kept by early stopping (first member).
    pub best_epoch: usize,
    /// Training wall time, seconds (all trials).
    pub seconds: f64,
    /// Per-class gate shares on the test split (GMU, mixtures of experts).
    pub gates: Option<GateReport>,
    /// Per-class occlusion importance of each view on the test split (methods with 2+ views).
    #[serde(default)]
    pub importance: Option<ImportanceReport>,
    /// Test scores with each view missing in a growing share of the samples.
    #[serde(default)]
    pub missing: Vec<MissingCurve>,
}

/// A method's test scores when one view is missing in a share of the test
/// samples (the same samples for every method: a seeded shuffle per view,
/// each rate's missing samples a superset of the smaller rates').
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MissingCurve {
    /// The view made missing.
    pub view: String,
    /// Shares of test samples without it.
    pub rates: Vec<f64>,
    /// Accuracy (subset accuracy for multilabel) at each rate; NaN where the
    /// method reads that view alone and so cannot predict without it.
    pub accuracy: Vec<f64>,
    /// Macro-F1 at each rate (NaN as above).
    pub macro_f1: Vec<f64>,
}

/// The order in which `n` scored rows lose view `view` in the missing-view
/// sweep: at rate r the first `round(r · n)` of it are missing. It depends on
/// the seed, the view and the number of rows only, never on the method, so
/// every method is scored on the same samples.
pub fn missing_order(n: usize, view: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed ^ (0x5EED_0000 + view as u64)));
    order
}

/// Scores `model` on `rows` with each view of `set` missing in each share
/// `rates` of the rows (see [`MissingCurve`] and [`missing_order`]); `seed` picks the rows.
pub fn missing_view_curves(
    model: &Model,
    data: &MultiviewData,
    rows: &[usize],
    set: &[usize],
    rates: &[f64],
    seed: u64,
) -> Result<Vec<MissingCurve>> {
    let reads: Vec<&str> = model.config.views.iter().map(|v| v.name.as_str()).collect();
    // The rows scored, as views of their own: a view copied per rate is then test-sized.
    let sub: Vec<View> = data.views.iter().map(|w| w.select(rows)).collect();
    let local: Vec<usize> = (0..rows.len()).collect();
    let mut curves = Vec::new();
    for &v in set {
        let order = missing_order(rows.len(), v, seed);
        let (mut accuracy, mut macro_f1) = (Vec::new(), Vec::new());
        for &rate in rates {
            let n_missing = (rate * rows.len() as f64).round() as usize;
            let alone = reads.iter().all(|&r| r == data.views[v].name);
            if n_missing > 0 && alone {
                accuracy.push(f64::NAN);
                macro_f1.push(f64::NAN);
                continue;
            }
            let mut view = sub[v].clone();
            for &i in &order[..n_missing] {
                view.values[i * view.dim..(i + 1) * view.dim].fill(f32::NAN);
            }
            let views: Vec<&View> = sub.iter().enumerate().map(|(k, w)| if k == v { &view } else { w }).collect();
            let p = model.predict_views(&views, &local, false)?;
            let eval = score(&data.targets, rows, &p.probs, model.config.threshold);
            accuracy.push(eval.accuracy);
            macro_f1.push(eval.f1.macro_);
        }
        curves.push(MissingCurve { view: data.views[v].name.clone(), rates: rates.to_vec(), accuracy, macro_f1 });
    }
    Ok(curves)
}

/// The missing-view curves of every method as a Markdown table: one row per
/// method and view, one column per rate; macro-F1.
pub fn missing_table(results: &[MethodResult]) -> String {
    let Some(rates) = results.iter().find_map(|r| r.missing.first().map(|c| c.rates.clone())) else {
        return String::new();
    };
    let mut out = String::from("| method | view missing |");
    for r in &rates {
        out.push_str(&format!(" {:.0} % |", r * 100.0));
    }
    out.push_str(&format!("\n|---|---|{}\n", "---|".repeat(rates.len())));
    for res in results {
        for c in &res.missing {
            out.push_str(&format!("| {} | {} |", res.method, c.view));
            for x in &c.macro_f1 {
                out.push_str(&if x.is_nan() { " – |".to_string() } else { format!(" {x:.4} |") });
            }
            out.push('\n');
        }
    }
    out
}

/// The fusion configurations of the paper's Table 2, from `base`: GMU,
/// linear sum, concatenation, average of probabilities, and mixtures of
/// maxout or logistic experts with untied and tied gates. The head and the
/// softmax gates of `base` are the GMU's; every other method has the paper's
/// maxout MLP.
pub fn paper_methods(base: &TrainingConfig) -> Vec<TrainingConfig> {
    let with = |fusion, experts, tied_gates| with_fusion(base, fusion, experts, tied_gates);
    vec![
        with(FusionKind::Gmu, ExpertKind::Maxout, false),
        with(FusionKind::LinearSum, ExpertKind::Maxout, false),
        with(FusionKind::Concat, ExpertKind::Maxout, false),
        with(FusionKind::AvgProbs, ExpertKind::Maxout, false),
        with(FusionKind::Moe, ExpertKind::Maxout, false),
        with(FusionKind::Moe, ExpertKind::Maxout, true),
        with(FusionKind::Moe, ExpertKind::Logistic, false),
        with(FusionKind::Moe, ExpertKind::Logistic, true),
    ]
}

/// `base` as a `fusion` model with these experts; GMU-only options (the
/// head, softmax gates) reset for the other methods.
fn with_fusion(base: &TrainingConfig, fusion: FusionKind, experts: ExpertKind, tied_gates: bool) -> TrainingConfig {
    let mut c = base.clone();
    (c.model.fusion, c.model.experts, c.model.tied_gates) = (fusion, experts, tied_gates);
    if fusion != FusionKind::Gmu {
        c.model.head = crate::fusion::HeadKind::Maxout;
        c.model.normalize_gates = false;
    }
    c
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// The views fused (indices into the data).
    pub modalities: Vec<usize>,
    /// The fusion configurations; [`paper_methods`] by default.
    pub methods: Vec<TrainingConfig>,
    /// Also train one single-modality model per view; `avg-probs` then
    /// averages these selected models instead of training its own.
    pub single_modalities: bool,
    /// Random-search trials per method (1: the base configuration as given).
    pub trials: usize,
    /// Where to save each method's model directory (`<dir>/<method>/`).
    pub save_to: Option<PathBuf>,
    /// The data's source, recorded in each saved model so that it can be read again.
    pub data: Option<DataRecord>,
    /// Score every method with each view missing in these shares of the test
    /// samples (empty: skip); see [`missing_view_curves`].
    pub missing_rates: Vec<f64>,
}

/// What [`compare`] tells its caller as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// An epoch of a method ended.
    Epoch {
        /// The method's label, as in the results.
        method: &'a str,
        /// Its member: 0 but for `avg-probs`, which trains one per view.
        member: usize,
        /// The epoch's loss and dev score.
        log: &'a EpochLog,
        /// Where the epoch's time went.
        timing: &'a EpochTiming,
    },
    /// A method is trained and scored.
    Method(&'a MethodResult),
}

/// Trains and scores every method; `progress` sees each epoch and each finished row.
pub fn compare(
    data: &MultiviewData,
    split: &Split,
    options: &CompareOptions,
    device: &Device,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Vec<MethodResult>> {
    // A sample must have at least one of the compared views (partly missing rows are
    // checked by each fit, after any imputation).
    let missing_all =
        (0..data.len()).find(|&r| options.modalities.iter().all(|&v| data.views[v].row(r).iter().all(|x| x.is_nan())));
    if let Some(r) = missing_all {
        return Err(GmuError::data("data", format!("row {r}: every compared view is missing")));
    }
    let mut jobs: Vec<(String, Vec<usize>, TrainingConfig)> = Vec::new();
    if options.single_modalities {
        let base = options.methods.first().cloned().unwrap_or_else(|| TrainingConfig::paper(FusionKind::Gmu));
        for &v in &options.modalities {
            let config = with_fusion(&base, FusionKind::Concat, base.model.experts, base.model.tied_gates);
            jobs.push((format!("single:{}", data.views[v].name), vec![v], config));
        }
    }
    for config in &options.methods {
        jobs.push((config.label(), options.modalities.clone(), config.clone()));
    }
    let mut results = Vec::new();
    // The selected single-modality models, by view: `avg-probs` averages these (the
    // paper's late fusion of the best single-modality models) when they were trained.
    let mut singles: Vec<(usize, Model)> = Vec::new();
    for (method, views, config) in jobs {
        // Where this method's model directory and its epoch checkpoints go (`single:a` → `single-a`).
        let saved = options
            .save_to
            .as_ref()
            .map(|d| (d.join(method.replace(':', "-")), d.join(format!("{}.checkpoint", method.replace(':', "-")))));
        let reuse = config.model.fusion == FusionKind::AvgProbs
            && options.modalities.iter().all(|v| singles.iter().any(|(s, _)| s == v));
        let (mut model, dev) = if reuse {
            let parts: Vec<Model> = options
                .modalities
                .iter()
                .map(|v| singles.iter().find(|(s, _)| s == v).expect("checked").1.clone())
                .collect();
            let model = Model::late_fusion(parts, config.clone());
            let dev = model.evaluate(data, &split.dev, false)?.0;
            (model, dev)
        } else if let Some((dir, _)) = &saved
            && dir.join(crate::store::CONFIG_FILE).exists()
        {
            // Resuming a killed run: this method finished and was saved whole.
            let model = Model::load(dir, device)?.with_prior(label_prior(&data.targets, &split.train));
            let dev = model.evaluate(data, &split.dev, false)?.0;
            (model, dev)
        } else {
            let checkpoint = saved.as_ref().map(|(_, c)| c.as_path());
            let observe = |member: usize, log: &EpochLog, timing: &EpochTiming| {
                progress(Progress::Epoch { method: &method, member, log, timing });
                Ok(())
            };
            let watch = Watch { checkpoint, observe: &observe };
            let found = search_with(data, &views, split, &config, options.trials, watch, device)?;
            (found.model, found.dev)
        };
        let importance = views.len() > 1 || config.model.fusion == FusionKind::AvgProbs;
        let (test, predictions) = model.evaluate(data, &split.test, importance)?;
        let view_names: Vec<String> = views.iter().map(|&v| data.views[v].name.clone()).collect();
        let gates = predictions
            .gate_means
            .as_ref()
            .zip(predictions.shares.as_ref())
            .map(|(g, s)| GateReport::new(&data.targets, &split.test, g, s, view_names.clone()));
        let importance = predictions
            .importance
            .as_ref()
            .map(|imp| ImportanceReport::new(&data.targets, &split.test, imp, view_names.clone()));
        let missing = if options.missing_rates.is_empty() {
            Vec::new()
        } else {
            let seed = options.methods.first().map_or(0, |m| m.seed);
            missing_view_curves(&model, data, &split.test, &options.modalities, &options.missing_rates, seed)?
        };
        let result = MethodResult {
            method: method.clone(),
            views: view_names,
            config: model.config.training.clone(),
            dev,
            test,
            best_epoch: model.config.members[0].best_epoch,
            seconds: model.config.seconds,
            gates,
            importance,
            missing,
        };
        if let Some((dir, checkpoint)) = &saved {
            let json = serde_json::to_value(&result).expect("result serialises");
            model.config.method = method.clone();
            model.config.data = options.data.clone();
            model.config.results = json;
            model.save(dir)?;
            // The method is saved whole: its epoch checkpoints are no longer needed.
            if checkpoint.exists() {
                std::fs::remove_dir_all(checkpoint).map_err(|e| GmuError::io(checkpoint, e))?;
            }
        }
        progress(Progress::Method(&result));
        results.push(result);
        if method.starts_with("single:") {
            singles.push((views[0], model));
        }
    }
    Ok(results)
}

/// The results as a Markdown table: test accuracy and macro-F1 for
/// single-label tasks; weighted, samples, micro and macro F1 (the paper's
/// columns) for multilabel ones. `reference` adds a column of published
/// numbers per method, where known.
pub fn table(results: &[MethodResult], multilabel: bool, reference: &dyn Fn(&str) -> Option<String>) -> String {
    let has_ref = results.iter().any(|r| reference(&r.method).is_some());
    let mut out = String::new();
    if multilabel {
        out.push_str("| method | views | weighted F1 | samples F1 | micro F1 | macro F1 |");
    } else {
        out.push_str("| method | views | accuracy | macro F1 |");
    }
    out.push_str(if has_ref { " paper (w / s / mi / ma) | epoch | seconds |\n" } else { " epoch | seconds |\n" });
    let cols = if multilabel { 6 } else { 4 } + usize::from(has_ref) + 2;
    out.push_str(&format!("|{}\n", "---|".repeat(cols)));
    for r in results {
        let t = &r.test;
        out.push_str(&format!("| {} | {} |", r.method, r.views.join("+")));
        if multilabel {
            out.push_str(&format!(
                " {:.3} | {:.3} | {:.3} | {:.3} |",
                t.f1.weighted,
                t.f1.samples.unwrap_or(f64::NAN),
                t.f1.micro,
                t.f1.macro_
            ));
        } else {
            out.push_str(&format!(" {:.4} | {:.4} |", t.accuracy, t.f1.macro_));
        }
        if has_ref {
            out.push_str(&format!(" {} |", reference(&r.method).unwrap_or_default()));
        }
        out.push_str(&format!(" {} | {:.1} |\n", r.best_epoch, r.seconds));
    }
    out
}

/// One row per class or label (`names`): its test support and each
/// method's test F1 (the paper's Table 3 for MM-IMDb's genres).
pub fn per_label_table(results: &[MethodResult], names: &[String]) -> String {
    let mut out = String::from("| label | test samples |");
    for r in results {
        out.push_str(&format!(" {} |", r.method));
    }
    out.push_str(&format!("\n|{}\n", "---|".repeat(results.len() + 2)));
    let Some(first) = results.first() else { return out };
    for (g, name) in names.iter().enumerate() {
        out.push_str(&format!("| {name} | {} |", first.test.f1.support.get(g).copied().unwrap_or(0)));
        for r in results {
            out.push_str(&format!(" {:.3} |", r.test.f1.per_label.get(g).copied().unwrap_or(f64::NAN)));
        }
        out.push('\n');
    }
    out
}

/// Writes `results.json` and `table.md` into `dir`.
pub fn write_results(dir: &Path, results: &[MethodResult], table_md: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| GmuError::io(dir, e))?;
    write_atomic(&dir.join("results.json"), serde_json::to_string_pretty(results).expect("json").as_bytes())?;
    write_atomic(&dir.join("table.md"), table_md.as_bytes())
}

/// Mean and sample standard deviation.
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

/// One method's test scores over repeated runs (other seeds: other splits,
/// initialisations and batch orders).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodSummary {
    /// Method name.
    pub method: String,
    /// Views it reads.
    pub views: Vec<String>,
    /// Number of runs.
    pub runs: usize,
    /// Accuracy (subset accuracy for multilabel): mean and standard deviation.
    pub accuracy: (f64, f64),
    /// Macro F1: mean and standard deviation.
    pub macro_f1: (f64, f64),
    /// Micro F1: mean and standard deviation.
    pub micro_f1: (f64, f64),
    /// Weighted F1: mean and standard deviation.
    pub weighted_f1: (f64, f64),
    /// Samples F1 (multilabel): mean and standard deviation.
    pub samples_f1: Option<(f64, f64)>,
    /// Runs in which this method had the best test macro F1 (ties shared).
    pub wins: f64,
}

/// Summarises `runs` (one `compare` result per seed, same methods in the same order).
pub fn summarize(runs: &[Vec<MethodResult>]) -> Vec<MethodSummary> {
    let Some(first) = runs.first() else { return vec![] };
    let mut wins = vec![0.0; first.len()];
    for run in runs {
        let best = run.iter().map(|r| r.test.f1.macro_).fold(f64::NEG_INFINITY, f64::max);
        let winners: Vec<usize> = (0..run.len()).filter(|&i| run[i].test.f1.macro_ >= best - 1e-12).collect();
        for &i in &winners {
            wins[i] += 1.0 / winners.len() as f64;
        }
    }
    first
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let col =
                |f: &dyn Fn(&MethodResult) -> f64| mean_sd(&runs.iter().map(|run| f(&run[i])).collect::<Vec<_>>());
            MethodSummary {
                method: r.method.clone(),
                views: r.views.clone(),
                runs: runs.len(),
                accuracy: col(&|m| m.test.accuracy),
                macro_f1: col(&|m| m.test.f1.macro_),
                micro_f1: col(&|m| m.test.f1.micro),
                weighted_f1: col(&|m| m.test.f1.weighted),
                samples_f1: r.test.f1.samples.map(|_| col(&|m| m.test.f1.samples.unwrap_or(f64::NAN))),
                wins: wins[i],
            }
        })
        .collect()
}

/// The summaries as a Markdown table (mean ± standard deviation over runs).
pub fn summary_table(summaries: &[MethodSummary]) -> String {
    let multilabel = summaries.iter().any(|s| s.samples_f1.is_some());
    let runs = summaries.first().map_or(0, |s| s.runs);
    let pm = |(m, sd): (f64, f64)| format!("{m:.4} ± {sd:.4}");
    let mut out = if multilabel {
        format!(
            "| method | views | weighted F1 | samples F1 | micro F1 | macro F1 | best in (of {runs}) |\n|---|---|---|---|---|---|---|\n"
        )
    } else {
        format!("| method | views | accuracy | macro F1 | best in (of {runs}) |\n|---|---|---|---|---|\n")
    };
    for s in summaries {
        let scores = if multilabel {
            format!(
                "{} | {} | {} | {}",
                pm(s.weighted_f1),
                pm(s.samples_f1.unwrap_or((f64::NAN, 0.0))),
                pm(s.micro_f1),
                pm(s.macro_f1)
            )
        } else {
            format!("{} | {}", pm(s.accuracy), pm(s.macro_f1))
        };
        // Shared wins are fractions; whole ones print as counts.
        let wins = if s.wins.fract() == 0.0 { format!("{:.0}", s.wins) } else { format!("{:.1}", s.wins) };
        out.push_str(&format!("| {} | {} | {scores} | {wins} |\n", s.method, s.views.join("+")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::F1Scores;

    fn result(method: &str, acc: f64, macro_: f64) -> MethodResult {
        let f1 = F1Scores { macro_, micro: acc, weighted: macro_, ..F1Scores::default() };
        let eval = Evaluation { f1, accuracy: acc };
        MethodResult {
            method: method.into(),
            views: vec!["a".into()],
            config: TrainingConfig::paper(FusionKind::Gmu),
            dev: eval.clone(),
            test: eval,
            best_epoch: 1,
            seconds: 0.0,
            gates: None,
            importance: None,
            missing: vec![],
        }
    }

    /// `avg-probs` after the single views is their average: its test
    /// accuracy is that of the mean of the two single models' probabilities.
    #[test]
    fn avg_probs_reuses_the_selected_single_models() {
        use crate::data::{Targets, View};
        let n = 120;
        let view = |k: f32| View {
            name: format!("v{k}"),
            dim: 2,
            values: (0..n * 2)
                .map(|i| ((i as f32) * k).sin() + if i % 2 == 0 { ((i / 2) % 3) as f32 } else { 0.0 })
                .collect(),
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        let data = MultiviewData {
            views: vec![view(0.3), view(0.7)],
            targets: Targets::Classes {
                y: (0..n).map(|i| i % 3).collect(),
                names: vec!["a".into(), "b".into(), "c".into()],
            },
        };
        let split = data.split(0.2, 0.2, 0).unwrap();
        let mut base = crate::train::tests::epochs(TrainingConfig::paper(FusionKind::AvgProbs), 3);
        base.model.hidden = 8;
        let options = CompareOptions {
            modalities: vec![0, 1],
            methods: vec![base.clone()],
            single_modalities: true,
            trials: 1,
            save_to: None,
            data: None,
            missing_rates: vec![],
        };
        let device = Device::default();
        let results = compare(&data, &split, &options, &device, &|_| {}).unwrap();
        assert_eq!(
            results.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
            ["single:v0.3", "single:v0.7", "avg-probs"]
        );
        // Rebuild the two single models and average them by hand.
        let single = |v: usize| {
            crate::train::train(
                &data,
                &[v],
                &split,
                &with_fusion(&base, FusionKind::Concat, base.model.experts, false),
                &device,
            )
            .unwrap()
        };
        let (a, b) = (
            single(0).evaluate(&data, &split.test, false).unwrap().1.probs,
            single(1).evaluate(&data, &split.test, false).unwrap().1.probs,
        );
        let mean: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        let expected = crate::predict::score(&data.targets, &split.test, &mean, 0.5);
        assert_eq!(results[2].test, expected);
    }

    /// Rate 0 is the plain test score; a single-view model cannot predict
    /// without its view; the fused model's score falls as its rows go missing.
    #[test]
    fn missing_view_curves_score_each_view_and_rate() {
        use crate::data::{Targets, View};
        let n = 150;
        // View 0 carries the class clearly, view 1 faintly: without view 0 the score must fall.
        let planted = |k: usize| View {
            name: format!("v{k}"),
            dim: 3,
            values: (0..n * 3)
                .map(|i| {
                    let signal = if k == 0 { 2.0 } else { 0.25 };
                    (if i % 3 == (i / 3) % 3 { signal } else { 0.0 }) + ((i * (7 + k)) % 11) as f32 / 11.0
                })
                .collect(),
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        let data = MultiviewData {
            views: vec![planted(0), planted(1)],
            targets: Targets::Classes {
                y: (0..n).map(|i| i % 3).collect(),
                names: vec!["a".into(), "b".into(), "c".into()],
            },
        };
        let split = data.split(0.2, 0.2, 0).unwrap();
        let device = Device::default();
        let mut config = crate::train::tests::epochs(TrainingConfig::paper(FusionKind::Concat), 5);
        (config.model.hidden, config.optimizer.lr, config.model.dropout) = (8, 0.01, 0.0);
        let fused = crate::train::train(&data, &[0, 1], &split, &config, &device).unwrap();
        let rates = [0.0, 0.5, 1.0];
        let curves = missing_view_curves(&fused, &data, &split.test, &[0, 1], &rates, 0).unwrap();
        let clean = fused.evaluate(&data, &split.test, false).unwrap().0;
        assert_eq!(curves.len(), 2);
        assert_eq!(curves[0].accuracy[0], clean.accuracy);
        // The score falls as view 0 goes missing from more of the rows (issue 25: was only "finite").
        let f1 = &curves[0].macro_f1;
        assert!(f1[0] > 0.85 && f1[1] < f1[0] - 0.1 && f1[2] < f1[1] - 0.1, "{curves:?}");
        let single = crate::train::train(&data, &[0], &split, &config, &device).unwrap();
        let curves = missing_view_curves(&single, &data, &split.test, &[0, 1], &rates, 0).unwrap();
        assert!(curves[0].accuracy[1].is_nan() && curves[0].accuracy[2].is_nan(), "{curves:?}");
        assert_eq!(curves[1].accuracy, vec![curves[1].accuracy[0]; 3], "a view it does not read changes nothing");
        let md = missing_table(&[MethodResult { missing: curves, ..result("single:v0", 0.0, 0.0) }]);
        assert!(md.contains("| single:v0 | v0 |") && md.contains(" – |"), "{md}");
    }

    /// Issue 25, item 5: `compare` blanks the same samples for every method,
    /// whatever each method's own seed: each method's curve is recomputed by
    /// hand from its saved model with the rows of [`missing_order`] under the
    /// first method's seed, and the orders are nested (a larger rate's rows
    /// include a smaller one's).
    #[test]
    fn every_method_loses_the_same_samples() {
        use crate::data::{Targets, View};
        let n = 150;
        let view = |k: usize| View {
            name: format!("v{k}"),
            dim: 3,
            values: (0..n * 3)
                .map(|i| if i % 3 == (i / 3) % 3 { 1.0 } else { 0.0 } + ((i * (7 + k)) % 11) as f32 / 5.0)
                .collect(),
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        let data = MultiviewData {
            views: vec![view(0), view(1)],
            targets: Targets::Classes {
                y: (0..n).map(|i| i % 3).collect(),
                names: vec!["a".into(), "b".into(), "c".into()],
            },
        };
        let split = data.split(0.2, 0.2, 0).unwrap();
        let method = |fusion: FusionKind, seed: u64| {
            let mut c = crate::train::tests::epochs(TrainingConfig::paper(fusion), 3);
            (c.model.hidden, c.seed) = (8, seed);
            c
        };
        let dir = tempfile::tempdir().unwrap();
        let rates = vec![0.0, 0.3, 0.6, 1.0];
        let options = CompareOptions {
            modalities: vec![0, 1],
            methods: vec![
                method(FusionKind::Gmu, 11),
                method(FusionKind::Concat, 12),
                method(FusionKind::LinearSum, 13),
            ],
            single_modalities: false,
            trials: 1,
            save_to: Some(dir.path().to_path_buf()),
            data: None,
            missing_rates: rates.clone(),
        };
        let device = Device::default();
        let results = compare(&data, &split, &options, &device, &|_| {}).unwrap();
        assert_eq!(results.len(), 3);
        let rows = &split.test;
        let local: Vec<usize> = (0..rows.len()).collect();
        for r in &results {
            let model = Model::load(&dir.path().join(&r.method), &device).unwrap();
            let sub: Vec<View> = data.views.iter().map(|w| w.select(rows)).collect();
            for (v, curve) in r.missing.iter().enumerate() {
                let order = missing_order(rows.len(), v, 11);
                for (k, &rate) in rates.iter().enumerate() {
                    let mut blanked = sub[v].clone();
                    for &i in &order[..(rate * rows.len() as f64).round() as usize] {
                        blanked.values[i * 3..(i + 1) * 3].fill(f32::NAN);
                    }
                    let views: Vec<&View> = (0..2).map(|w| if w == v { &blanked } else { &sub[w] }).collect();
                    let p = model.predict_views(&views, &local, false).unwrap();
                    let expected = score(&data.targets, rows, &p.probs, model.config.threshold);
                    assert_eq!(curve.macro_f1[k], expected.f1.macro_, "{} without {} at {rate}", r.method, curve.view);
                    assert_eq!(curve.accuracy[k], expected.accuracy, "{} without {} at {rate}", r.method, curve.view);
                }
            }
        }
        // Another seed picks other rows; the same seed the same ones.
        assert_ne!(missing_order(30, 0, 11), missing_order(30, 0, 12));
        assert_ne!(missing_order(30, 0, 11), missing_order(30, 1, 11));
        assert_eq!(missing_order(30, 0, 11), missing_order(30, 0, 11));
    }

    #[test]
    fn summaries_average_runs_and_count_wins() {
        let runs = vec![
            vec![result("gmu", 0.9, 0.8), result("concat", 0.8, 0.7)],
            vec![result("gmu", 0.7, 0.6), result("concat", 0.8, 0.6)],
        ];
        let s = summarize(&runs);
        assert!((s[0].accuracy.0 - 0.8).abs() < 1e-12);
        // sample sd of (0.9, 0.7) = 0.1414
        assert!((s[0].accuracy.1 - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!((s[0].wins, s[1].wins), (1.5, 0.5));
        let table = summary_table(&s);
        assert!(table.contains("| gmu | a | 0.8000 ± 0.1414 | 0.7000 ± 0.1414 | 1.5 |"), "{table}");
    }
}
