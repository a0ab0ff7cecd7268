//! What the trained gates and the occlusion importance say per class or
//! label: the paper's Fig. 8 and its occlusion counterpart.

use serde::{Deserialize, Serialize};

use crate::data::Targets;

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
