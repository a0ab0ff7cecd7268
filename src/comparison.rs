//! Every fusion method of the paper on one data set, side by side: the
//! single-modality models, then GMU, linear sum, concatenation, average of
//! probabilities and the four mixtures of experts (the paper's Table 2), each
//! selected by dev macro-F1 (early stopping, and optionally a random search),
//! scored on the test split, with a gate report where the method has gates.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{MultiviewData, Split};
use crate::error::{GmuError, Result, write_atomic};
use crate::fit::{Evaluation, FitConfig, GateReport, search};
use crate::fusion::{ExpertKind, FusionKind};

/// One row of a comparison.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodResult {
    /// Method name (`gmu`, `moe-logistic-tied`, `single:pix`, …).
    pub method: String,
    /// Views it reads.
    pub views: Vec<String>,
    /// The hyper-parameters of the selected model.
    pub config: FitConfig,
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
}

/// The fusion configurations of the paper's Table 2, from `base`: GMU,
/// linear sum, concatenation, average of probabilities, and mixtures of
/// maxout or logistic experts with untied and tied gates.
pub fn paper_methods(base: &FitConfig) -> Vec<FitConfig> {
    let with = |fusion, experts, tied_gates| FitConfig { fusion, experts, tied_gates, ..base.clone() };
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

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// The views fused (indices into the data).
    pub modalities: Vec<usize>,
    /// The fusion configurations; [`paper_methods`] by default.
    pub methods: Vec<FitConfig>,
    /// Also train one single-modality model per view.
    pub single_modalities: bool,
    /// Random-search trials per method (1: the base configuration as given).
    pub trials: usize,
    /// Where to save each method's config and weights (`<dir>/<method>/`).
    pub save_to: Option<PathBuf>,
}

/// Trains and scores every method; `progress` gets each finished row.
pub fn compare(
    data: &MultiviewData,
    split: &Split,
    options: &CompareOptions,
    mut progress: impl FnMut(&MethodResult),
) -> Result<Vec<MethodResult>> {
    let mut jobs: Vec<(String, Vec<usize>, FitConfig)> = Vec::new();
    if options.single_modalities {
        let base = options.methods.first().cloned().unwrap_or_default();
        for &v in &options.modalities {
            let config = FitConfig { fusion: FusionKind::Concat, ..base.clone() };
            jobs.push((format!("single:{}", data.views[v].name), vec![v], config));
        }
    }
    for config in &options.methods {
        jobs.push((config.label(), options.modalities.clone(), config.clone()));
    }
    let mut results = Vec::new();
    for (method, views, config) in jobs {
        let (trained, _) = search(data, &views, split, &config, options.trials, |_, _, _| {})?;
        let (dev, _) = trained.evaluate(data, &split.dev);
        let (test, predictions) = trained.evaluate(data, &split.test);
        let view_names: Vec<String> = views.iter().map(|&v| data.views[v].name.clone()).collect();
        let gates = predictions
            .gate_means
            .as_ref()
            .zip(predictions.shares.as_ref())
            .map(|(g, s)| GateReport::new(&data.targets, &split.test, g, s, view_names.clone()));
        let result = MethodResult {
            method: method.clone(),
            views: view_names,
            config: trained.config.clone(),
            dev,
            test,
            best_epoch: trained.members[0].best_epoch,
            seconds: trained.seconds,
            gates,
        };
        if let Some(dir) = &options.save_to {
            let json = serde_json::to_value(&result).expect("result serialises");
            trained.save(&dir.join(method.replace(':', "-")), &json)?;
        }
        progress(&result);
        results.push(result);
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

/// Writes `results.json` and `table.md` into `dir`.
pub fn write_results(dir: &Path, results: &[MethodResult], table_md: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| GmuError::io(dir, e))?;
    write_atomic(&dir.join("results.json"), serde_json::to_string_pretty(results).expect("json").as_bytes())?;
    write_atomic(&dir.join("table.md"), table_md.as_bytes())
}
