//! Metrics on plain slices (no tensors).

/// Share of positions where `predicted == truth`.
///
/// # Panics
/// If the slices differ in length or are empty.
pub fn accuracy(predicted: &[u8], truth: &[u8]) -> f64 {
    assert_eq!(predicted.len(), truth.len(), "accuracy: {} predictions for {} labels", predicted.len(), truth.len());
    assert!(!truth.is_empty(), "accuracy of nothing");
    predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64
}

/// Pearson correlation of two series; `0.0` when either is constant (no
/// linear relation can be measured), so a collapsed gate reads as "no
/// correlation" rather than NaN.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "pearson: series of different lengths");
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    if va <= 0.0 || vb <= 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_on_a_hand_worked_case() {
        assert_eq!(accuracy(&[1, 0, 1, 1, 0, 0], &[1, 1, 1, 0, 0, 0]), 4.0 / 6.0);
    }

    #[test]
    fn pearson_on_hand_worked_cases() {
        // a = (1, 2, 3), b = (2, 4, 7): means 2 and 13/3; cov = 5, var_a = 2, var_b = 38/3
        // r = 5 / sqrt(2 · 38/3) = 0.993399
        let r = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]);
        assert!((r - 0.993399).abs() < 1e-6, "{r}");
        assert_eq!(pearson(&[0.0, 1.0, 0.0, 1.0], &[1.0, 0.0, 1.0, 0.0]), -1.0);
        assert_eq!(pearson(&[1.0, 1.0], &[0.0, 1.0]), 0.0);
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
