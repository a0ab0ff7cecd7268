//! Metrics on plain slices (no tensors).
//!
//! Layer 1 (see `ARCHITECTURE.md`): it owns the scores and imports only [`error`](crate::error).

/// Share of positions where `predicted == truth`.
///
/// # Panics
/// If the slices differ in length or are empty.
pub fn accuracy(predicted: &[u8], truth: &[u8]) -> f64 {
    assert_eq!(predicted.len(), truth.len(), "accuracy: {} predictions for {} labels", predicted.len(), truth.len());
    assert!(!truth.is_empty(), "accuracy of nothing");
    predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64
}

/// Pearson correlation of two series; `None` when either is constant: the
/// correlation is undefined there (the caller decides what that means).
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "pearson: series of different lengths");
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Wins, ties and losses of `a` against `b` over paired scores, with a
/// tolerance under which two scores count as a tie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// `a > b + tol`.
    pub wins: usize,
    /// `|a − b| ≤ tol`.
    pub ties: usize,
    /// `a < b − tol`.
    pub losses: usize,
}

impl Tally {
    /// Counts one comparison.
    pub fn add(&mut self, a: f64, b: f64, tol: f64) {
        if a > b + tol {
            self.wins += 1;
        } else if a < b - tol {
            self.losses += 1;
        } else {
            self.ties += 1;
        }
    }
}

/// The four F1 averages of the paper (and scikit-learn), and the per-label F1.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct F1Scores {
    /// F1 of the pooled counts over every (sample, label) cell.
    pub micro: f64,
    /// Unweighted mean of the per-label F1 (labels with no true and no
    /// predicted sample count as 0, as in scikit-learn).
    pub macro_: f64,
    /// Per-label F1 weighted by each label's number of true samples.
    pub weighted: f64,
    /// Mean over samples of each sample's F1 (a sample with no true and no
    /// predicted label counts as 0). Multilabel only; `None` for single-label tasks.
    pub samples: Option<f64>,
    /// F1 of each label (multilabel) or class, in label order.
    pub per_label: Vec<f64>,
    /// True samples per label.
    pub support: Vec<usize>,
}

/// `2·tp / (2·tp + fp + fn)`, and 0 where nothing was true or predicted:
/// scikit-learn's F1 with its default `zero_division`.
fn f1(tp: usize, fp: usize, fn_: usize) -> f64 {
    let denominator = 2 * tp + fp + fn_;
    if denominator == 0 { 0.0 } else { (2 * tp) as f64 / denominator as f64 }
}

/// Multilabel F1 exactly as scikit-learn's `precision_recall_fscore_support`
/// computes it on indicator matrices (`average` = micro, macro, weighted,
/// samples), with its zero-division rules: a label with no positives and no
/// predictions scores 0 and still counts in the macro mean; a sample with no
/// true and no predicted label scores 0; a weighted average over zero
/// support is 0.
///
/// `truth` and `predicted` are row-major `[n, labels]` 0/1 matrices.
///
/// # Panics
/// If the lengths do not match `labels`, or `labels` is 0.
pub fn multilabel_f1(truth: &[u8], predicted: &[u8], labels: usize) -> F1Scores {
    assert!(labels > 0, "multilabel_f1 over no labels");
    assert_eq!(
        truth.len(),
        predicted.len(),
        "multilabel_f1: {} predictions for {} truths",
        predicted.len(),
        truth.len()
    );
    assert_eq!(truth.len() % labels, 0, "multilabel_f1: {} values is not a multiple of {labels} labels", truth.len());
    let n = truth.len() / labels;
    let (mut tp, mut fp, mut fn_) = (vec![0usize; labels], vec![0usize; labels], vec![0usize; labels]);
    let mut samples = 0.0;
    for i in 0..n {
        let (t, p) = (&truth[i * labels..(i + 1) * labels], &predicted[i * labels..(i + 1) * labels]);
        let (mut s_tp, mut s_fp, mut s_fn) = (0, 0, 0);
        for j in 0..labels {
            match (t[j] != 0, p[j] != 0) {
                (true, true) => {
                    tp[j] += 1;
                    s_tp += 1;
                }
                (false, true) => {
                    fp[j] += 1;
                    s_fp += 1;
                }
                (true, false) => {
                    fn_[j] += 1;
                    s_fn += 1;
                }
                (false, false) => {}
            }
        }
        samples += f1(s_tp, s_fp, s_fn);
    }
    let mut scores = averages(&tp, &fp, &fn_);
    scores.samples = Some(if n == 0 { 0.0 } else { samples / n as f64 });
    scores
}

/// Single-label (multiclass) F1 as scikit-learn computes it on label
/// vectors: the classes are those present in `truth` or `predicted`
/// (`per_label` still has one entry per class in `0..classes`, 0 for the
/// absent ones), micro F1 equals accuracy, and `samples` is `None`.
///
/// # Panics
/// If the lengths differ or a label is `>= classes`.
pub fn multiclass_f1(truth: &[usize], predicted: &[usize], classes: usize) -> F1Scores {
    assert_eq!(
        truth.len(),
        predicted.len(),
        "multiclass_f1: {} predictions for {} truths",
        predicted.len(),
        truth.len()
    );
    let (mut tp, mut fp, mut fn_) = (vec![0usize; classes], vec![0usize; classes], vec![0usize; classes]);
    for (&t, &p) in truth.iter().zip(predicted) {
        assert!(t < classes && p < classes, "multiclass_f1: label {t} or {p} out of 0..{classes}");
        if t == p {
            tp[t] += 1;
        } else {
            fn_[t] += 1;
            fp[p] += 1;
        }
    }
    let present: Vec<usize> = (0..classes).filter(|&c| tp[c] + fp[c] + fn_[c] > 0).collect();
    let pick = |v: &[usize]| present.iter().map(|&c| v[c]).collect::<Vec<_>>();
    let mut scores = averages(&pick(&tp), &pick(&fp), &pick(&fn_));
    let mut per_label = vec![0.0; classes];
    let mut support = vec![0; classes];
    for (k, &c) in present.iter().enumerate() {
        per_label[c] = scores.per_label[k];
        support[c] = scores.support[k];
    }
    scores.per_label = per_label;
    scores.support = support;
    scores
}

fn averages(tp: &[usize], fp: &[usize], fn_: &[usize]) -> F1Scores {
    let per_label: Vec<f64> = (0..tp.len()).map(|j| f1(tp[j], fp[j], fn_[j])).collect();
    let support: Vec<usize> = (0..tp.len()).map(|j| tp[j] + fn_[j]).collect();
    let total_support: usize = support.iter().sum();
    let sum = |v: &[usize]| v.iter().sum::<usize>();
    F1Scores {
        micro: f1(sum(tp), sum(fp), sum(fn_)),
        macro_: if per_label.is_empty() { 0.0 } else { per_label.iter().sum::<f64>() / per_label.len() as f64 },
        weighted: if total_support == 0 {
            0.0
        } else {
            per_label.iter().zip(&support).map(|(f, &s)| f * s as f64).sum::<f64>() / total_support as f64
        },
        samples: None,
        per_label,
        support,
    }
}

/// The area under the ROC curve of a score that should be higher on
/// `positive` samples than on `negative` ones: the probability that a random
/// positive outscores a random negative, ties counting half (Mann–Whitney U
/// over the product of the sizes). 0.5 is chance; NaN without samples of
/// either kind or with a NaN score.
pub fn auroc(positive: &[f64], negative: &[f64]) -> f64 {
    if positive.is_empty() || negative.is_empty() || positive.iter().chain(negative).any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> =
        positive.iter().map(|&x| (x, true)).chain(negative.iter().map(|&x| (x, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' ranks (1-based), tied scores sharing their mean rank.
    let (mut rank_sum, mut i) = (0.0f64, 0);
    while i < all.len() {
        let j = (i..all.len()).find(|&j| all[j].0 != all[i].0).unwrap_or(all.len());
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * all[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    let (p, n) = (positive.len() as f64, negative.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_by_hand() {
        // Positives {3, 5}, negatives {1, 3, 4}: pairs won 5>1, 5>3, 5>4, 3>1, tie 3=3 (half): 4.5 of 6.
        assert!((auroc(&[3.0, 5.0], &[1.0, 3.0, 4.0]) - 0.75).abs() < 1e-12);
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), 1.0);
        assert_eq!(auroc(&[0.0], &[1.0, 2.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), 0.5);
        assert!(auroc(&[], &[1.0]).is_nan() && auroc(&[f64::NAN], &[1.0]).is_nan());
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn flat(rows: &[[u8; 4]]) -> Vec<u8> {
        rows.iter().flatten().copied().collect()
    }

    #[test]
    fn multilabel_f1_hand_worked_edge_cases() {
        // Label 2 is never true, label 3 never true nor predicted; sample 3
        // has no predicted label, sample 4 neither a true nor a predicted one.
        let truth = flat(&[[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]);
        let pred = flat(&[[1, 0, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
        let s = multilabel_f1(&truth, &pred, 4);
        // label 0: tp 1, fn 2 → 2/4; label 1: tp 2 → 1; label 2: fp 2 → 0; label 3: 0/0 → 0
        assert_eq!(s.per_label, vec![0.5, 1.0, 0.0, 0.0]);
        assert_eq!(s.support, vec![3, 2, 0, 0]);
        // pooled: tp 3, fp 2, fn 2 → 6/10
        assert!(close(s.micro, 0.6));
        assert!(close(s.macro_, 1.5 / 4.0));
        // (3·0.5 + 2·1) / 5
        assert!(close(s.weighted, 0.7));
        // samples: 2/3, 2/3, 2/3, 0, 0 → 2/5
        assert!(close(s.samples.unwrap(), 0.4));
    }

    /// Numbers printed by `tests/reference/f1_sklearn.py` (scikit-learn 1.9.1).
    #[test]
    fn multilabel_f1_matches_scikit_learn() {
        let truth: Vec<u8> = [
            [0, 0, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [1, 0, 0, 1, 0],
            [0, 1, 0, 1, 0],
            [1, 0, 0, 1, 0],
            [0, 1, 1, 1, 0],
            [0, 0, 0, 0, 1],
            [1, 0, 0, 1, 1],
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 0],
            [1, 1, 0, 1, 0],
            [1, 0, 0, 0, 0],
        ]
        .concat();
        let pred: Vec<u8> = [
            [0, 0, 0, 0, 0],
            [1, 0, 1, 1, 0],
            [0, 1, 0, 0, 1],
            [0, 1, 1, 1, 0],
            [0, 0, 0, 0, 1],
            [1, 0, 1, 0, 0],
            [0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0],
            [1, 0, 0, 1, 1],
            [0, 0, 1, 0, 0],
            [0, 1, 0, 1, 0],
            [1, 0, 0, 0, 0],
        ]
        .concat();
        let s = multilabel_f1(&truth, &pred, 5);
        assert!(close(s.micro, 0.4888888889), "{}", s.micro);
        assert!(close(s.macro_, 0.4730158730), "{}", s.macro_);
        assert!(close(s.weighted, 0.5015873016), "{}", s.weighted);
        assert!(close(s.samples.unwrap(), 0.45), "{:?}", s.samples);
        for (a, b) in s.per_label.iter().zip([0.2222222222, 0.5714285714, 0.6666666667, 0.5714285714, 0.3333333333]) {
            assert!(close(*a, b), "{a} vs {b}");
        }
    }

    /// Same script: accuracy 0.625, macro F1 0.4916666667 (class 4 absent
    /// from both vectors, so not averaged).
    #[test]
    fn multiclass_f1_matches_scikit_learn() {
        let (t, p) = ([0, 0, 1, 1, 2, 2, 3, 0], [0, 1, 1, 1, 2, 0, 2, 0]);
        let s = multiclass_f1(&t, &p, 5);
        assert!(close(s.macro_, 0.4916666667), "{}", s.macro_);
        assert!(close(s.micro, 0.625));
        assert_eq!(s.samples, None);
        assert_eq!(s.per_label[4], 0.0);
        assert_eq!(s.support, vec![3, 2, 2, 1, 0]);
    }

    #[test]
    fn accuracy_on_a_hand_worked_case() {
        assert_eq!(accuracy(&[1, 0, 1, 1, 0, 0], &[1, 1, 1, 0, 0, 0]), 4.0 / 6.0);
    }

    #[test]
    fn pearson_on_hand_worked_cases() {
        // a = (1, 2, 3), b = (2, 4, 7): means 2 and 13/3; cov = 5, var_a = 2, var_b = 38/3
        // r = 5 / sqrt(2 · 38/3) = 0.993399
        let r = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]).unwrap();
        assert!((r - 0.993399).abs() < 1e-6, "{r}");
        assert_eq!(pearson(&[0.0, 1.0, 0.0, 1.0], &[1.0, 0.0, 1.0, 0.0]), Some(-1.0));
        // A constant series has no correlation: undefined, not 0.
        assert_eq!(pearson(&[1.0, 1.0], &[0.0, 1.0]), None);
    }

    #[test]
    fn tally_counts_with_tolerance() {
        let mut t = Tally::default();
        t.add(0.99, 0.5, 1e-3);
        t.add(0.5, 0.5005, 1e-3);
        t.add(0.4, 0.9, 1e-3);
        assert_eq!(t, Tally { wins: 1, ties: 1, losses: 1 });
    }
}
