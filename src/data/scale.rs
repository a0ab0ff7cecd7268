//! Per-column input scaling, fitted on the training rows and saved with a
//! model so that prediction applies exactly what training applied.

use serde::{Deserialize, Serialize};

/// How inputs are scaled before training (the statistics come from the
/// training data and are saved with the model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scaling {
    /// Raw inputs.
    None,
    /// Subtract the mean of each column (the seed post).
    Center,
    /// Subtract the mean and divide by the standard deviation of each column.
    Standardize,
}

/// Each column's mean over the `n` rows of row-major `x` (`d` columns), in
/// f64. Row by row (the data's order in memory), each column's sum still
/// taken over the rows in order, so the figures are those of a
/// column-by-column pass, in one sweep instead of `d`.
fn column_means(x: &[f32], d: usize, n: f64) -> Vec<f64> {
    let mut sum = vec![0.0f64; d];
    for row in x.chunks_exact(d) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    sum.iter().map(|s| s / n).collect()
}

/// Each column's sum of squared deviations from `means` over the rows of
/// row-major `x`, in f64, summed as [`column_means`] sums.
fn column_squares(x: &[f32], means: &[f64]) -> Vec<f64> {
    let mut squares = vec![0.0f64; means.len()];
    for row in x.chunks_exact(means.len()) {
        for ((s, &v), m) in squares.iter_mut().zip(row).zip(means) {
            *s += (v as f64 - m).powi(2);
        }
    }
    squares
}

/// The smallest scale a scaler may hold (a standard deviation below it is
/// treated as a constant column): dividing a finite input by less could overflow.
pub const MIN_SCALE: f32 = 1e-30;

/// The largest scale or |mean| a scaler may hold.
pub const MAX_SCALE: f32 = 1e30;

/// Per-column affine scaling fitted on training data: `(x − mean) / scale`,
/// and the training mean of each raw column for imputing missing cells.
///
/// A loaded scaler is checked ([`check`](Scaler::check)): its scales lie in
/// [`MIN_SCALE`, `MAX_SCALE`] (a scale of 1e-45 turned ordinary inputs into
/// NaN); a non-finite probability that still arises is refused by
/// `Model::predict_rows`, naming the row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Column means (zeros for [`Scaling::None`]).
    pub mean: Vec<f32>,
    /// Column scales (ones unless [`Scaling::Standardize`]).
    pub scale: Vec<f32>,
    /// Training mean of each raw column, filled into missing cells of a row
    /// that is only partly missing when imputation is asked for (as
    /// scikit-learn's `SimpleImputer(strategy="mean")`). `None` in models
    /// that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impute: Option<Vec<f32>>,
    /// The raw-unit spread of each column that Gaussian corruption's σ
    /// multiplies ([`add_noise`](Scaler::add_noise)), where it is not `scale`:
    /// for a prescaled view (not standardised per column), the root mean
    /// square of its columns' standard deviations on the training rows, one
    /// unit for the whole view, so σ = 4 is as loud against its signal as on
    /// a standardised view. `None` (every other view, and models written
    /// before it was recorded): `scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_scale: Option<Vec<f32>>,
}

impl Scaler {
    /// Fits the scaler on row-major `x` with `d` columns.
    pub fn fit(x: &[f32], d: usize, scaling: Scaling) -> Self {
        let n = (x.len() / d).max(1) as f64;
        let mut mean = vec![0.0f32; d];
        let mut scale = vec![1.0f32; d];
        if scaling != Scaling::None {
            let means = column_means(x, d, n);
            if scaling == Scaling::Standardize {
                for (sc, s) in scale.iter_mut().zip(&column_squares(x, &means)) {
                    // A column that (nearly) never varies is left unscaled, as a constant one.
                    let sd = (s / n).sqrt() as f32;
                    *sc = if sd >= MIN_SCALE { sd } else { 1.0 };
                }
            }
            for (m, v) in mean.iter_mut().zip(&means) {
                *m = *v as f32;
            }
        }
        Scaler { mean, scale, impute: None, noise_scale: None }
    }

    /// This scaler with the noise unit of a prescaled view: row-major `raw`
    /// (`d` columns, every row present) has columns with standard deviations
    /// `sd_j`, and Gaussian corruption's σ multiplies `sqrt(mean_j sd_j²)` in
    /// every column ([`noise_scale`](Scaler::noise_scale)). A view that never
    /// varies keeps `scale`.
    pub fn with_view_noise_scale(mut self, raw: &[f32], d: usize) -> Self {
        let n = raw.len() / d;
        if n == 0 {
            return self;
        }
        let squares: f64 = column_squares(raw, &column_means(raw, d, n as f64)).iter().sum();
        let unit = (squares / (n * d) as f64).sqrt() as f32;
        if (MIN_SCALE..=MAX_SCALE).contains(&unit) {
            self.noise_scale = Some(vec![unit; d]);
        }
        self
    }

    /// The raw-unit spread that Gaussian corruption's σ multiplies in each
    /// column: [`noise_scale`](Scaler::noise_scale) where recorded, else `scale`.
    pub fn noise_spread(&self) -> &[f32] {
        self.noise_scale.as_deref().unwrap_or(&self.scale)
    }

    /// This scaler with the imputation means of row-major `raw` (`d`
    /// columns; NaN cells are skipped; a column with no value gets 0).
    pub fn with_impute_means(mut self, raw: &[f32], d: usize) -> Self {
        let (mut sum, mut count) = (vec![0.0f64; d], vec![0usize; d]);
        for row in raw.chunks_exact(d) {
            for (j, &x) in row.iter().enumerate() {
                if !x.is_nan() {
                    sum[j] += x as f64;
                    count[j] += 1;
                }
            }
        }
        self.impute =
            Some(sum.iter().zip(&count).map(|(s, &c)| if c > 0 { (s / c as f64) as f32 } else { 0.0 }).collect());
        self
    }

    /// Fills the NaN cells of every row of `x` (row-major) that is only partly
    /// missing with the imputation means; entirely missing rows stay NaN.
    /// Returns the number of cells filled, or `None` when there is something
    /// to fill and this scaler has no means.
    pub fn impute_partial_rows(&self, x: &mut [f32]) -> Option<usize> {
        let d = self.mean.len();
        let mut filled = 0;
        for row in x.chunks_exact_mut(d) {
            if row.iter().any(|v| v.is_nan()) && !row.iter().all(|v| v.is_nan()) {
                let means = self.impute.as_ref()?;
                for (v, m) in row.iter_mut().zip(means) {
                    if v.is_nan() {
                        *v = *m;
                        filled += 1;
                    }
                }
            }
        }
        Some(filled)
    }

    /// The scaler that leaves `d` columns as they are.
    pub fn identity(d: usize) -> Self {
        Scaler { mean: vec![0.0; d], scale: vec![1.0; d], impute: None, noise_scale: None }
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// The columns `range` of this scaler (one view of inputs scaled together).
    pub fn columns(&self, range: std::ops::Range<usize>) -> Self {
        let impute = self.impute.as_ref().map(|m| m[range.clone()].to_vec());
        let noise_scale = self.noise_scale.as_ref().map(|m| m[range.clone()].to_vec());
        Scaler { mean: self.mean[range.clone()].to_vec(), scale: self.scale[range].to_vec(), impute, noise_scale }
    }

    /// Checks a scaler read from a file: `d` columns, finite means, finite
    /// positive scales. The message names the first bad column.
    pub fn check(&self, d: usize) -> std::result::Result<(), String> {
        if self.mean.len() != d || self.scale.len() != d {
            return Err(format!("{} means and {} scales for {d} columns", self.mean.len(), self.scale.len()));
        }
        if let Some(j) = self.mean.iter().position(|m| !m.is_finite()) {
            return Err(format!("column {j}: mean {} is not finite", self.mean[j]));
        }
        if let Some(j) = self.mean.iter().position(|m| m.abs() > MAX_SCALE) {
            return Err(format!("column {j}: mean {} (expected a number within ±{MAX_SCALE:e})", self.mean[j]));
        }
        if let Some(j) = self.scale.iter().position(|s| !(MIN_SCALE..=MAX_SCALE).contains(s)) {
            return Err(format!(
                "column {j}: scale {:e} (expected a number in [{MIN_SCALE:e}, {MAX_SCALE:e}]; dividing by less overflows)",
                self.scale[j]
            ));
        }
        if let Some(m) = &self.impute
            && (m.len() != d || m.iter().any(|x| !x.is_finite()))
        {
            return Err(format!("{} imputation means for {d} columns, or one is not finite", m.len()));
        }
        if let Some(u) = &self.noise_scale
            && (u.len() != d || u.iter().any(|s| !(MIN_SCALE..=MAX_SCALE).contains(s)))
        {
            return Err(format!(
                "{} noise scales for {d} columns, or one outside [{MIN_SCALE:e}, {MAX_SCALE:e}]",
                u.len()
            ));
        }
        Ok(())
    }

    /// Adds `σ ε` on the standardised inputs to one raw `row`, in raw units:
    /// `σ · spread_j · ε_j` to column `j`, the spread being
    /// [`noise_spread`](Scaler::noise_spread) (`scale_j` for a standardised
    /// view): a corrupted view, for robustness sweeps and noise-aware training.
    pub fn add_noise(&self, row: &mut [f32], sigma: f32, eps: &[f32]) {
        for ((x, e), s) in row.iter_mut().zip(eps).zip(self.noise_spread()) {
            *x += sigma * s * e;
        }
    }

    /// Writes one raw `row` scaled into `out` (both `[d]`), a missing cell
    /// (NaN) as 0, the training mean: the same values as [`apply`](Self::apply)
    /// then zeroing NaNs, in one pass, for the training loop's batches.
    pub fn apply_row_into(&self, row: &[f32], out: &mut [f32]) {
        let d = self.mean.len();
        let (row, out) = (&row[..d], &mut out[..d]);
        for (((o, &x), m), s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.scale) {
            let v = (x - m) / s;
            *o = if v.is_nan() { 0.0 } else { v };
        }
    }

    /// Scales row-major `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        let d = self.mean.len();
        for row in x.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row into a buffer: `(x − mean) / scale` by hand, a NaN cell 0; the same bits as `apply`.
    #[test]
    fn a_row_scaled_into_a_buffer_matches_apply_and_zeroes_missing_cells() {
        let s = Scaler { mean: vec![1.0, -2.0, 0.5], scale: vec![2.0, 4.0, 3.0], impute: None, noise_scale: None };
        let row = [5.0, f32::NAN, 0.1];
        let mut out = [9.0; 3];
        s.apply_row_into(&row, &mut out);
        assert_eq!(out[..2], [2.0, 0.0]);
        let mut applied = row;
        s.apply(&mut applied);
        assert_eq!(out[2].to_bits(), applied[2].to_bits());
        assert_eq!(out[2], (0.1f32 - 0.5) / 3.0);
    }

    /// Means by hand: column 0 from (1, 3) = 2 (the NaN skipped), column 1 from (10, 20, 60) = 30.
    #[test]
    fn impute_fills_only_partly_missing_rows_with_training_means() {
        let train = [1.0, 10.0, f32::NAN, 20.0, 3.0, 60.0];
        let s = Scaler::identity(2).with_impute_means(&train, 2);
        assert_eq!(s.impute, Some(vec![2.0, 30.0]));
        let mut x = [f32::NAN, 5.0, f32::NAN, f32::NAN, 7.0, f32::NAN];
        assert_eq!(s.impute_partial_rows(&mut x), Some(2));
        assert_eq!(x[..2], [2.0, 5.0]);
        assert!(x[2].is_nan() && x[3].is_nan(), "an entirely missing row is a missing view, not imputed");
        assert_eq!(x[4..], [7.0, 30.0]);
        assert_eq!(Scaler::identity(2).impute_partial_rows(&mut [f32::NAN, 1.0]), None);
        assert_eq!(Scaler::identity(2).impute_partial_rows(&mut [0.0, 1.0]), Some(0));
    }

    #[test]
    fn scaler_standardizes_columns() {
        let x = vec![1.0, 10.0, 3.0, 30.0];
        let s = Scaler::fit(&x, 2, Scaling::Standardize);
        let mut y = x.clone();
        s.apply(&mut y);
        assert_eq!(y, vec![-1.0, -1.0, 1.0, 1.0]);
        assert_eq!(Scaler::fit(&x, 2, Scaling::Center).scale, vec![1.0, 1.0]);
        assert_eq!(s.columns(1..2), Scaler { mean: vec![20.0], scale: vec![10.0], impute: None, noise_scale: None });
    }

    /// The one-sweep fit gives the bits of the column-by-column definition (each column's sums over the
    /// rows in order, in f64), constant columns included.
    #[test]
    fn fit_equals_the_column_by_column_definition_bit_for_bit() {
        let (n, d) = (37, 9);
        let x: Vec<f32> =
            (0..n * d).map(|i| if i % d == 4 { 2.5 } else { ((i * 7919 % 1013) as f32 / 97.0).sin() * 30.0 }).collect();
        let fit = Scaler::fit(&x, d, Scaling::Standardize);
        for j in 0..d {
            let m = x.iter().skip(j).step_by(d).map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = x.iter().skip(j).step_by(d).map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
            let sd = var.sqrt() as f32;
            assert_eq!(fit.mean[j].to_bits(), (m as f32).to_bits(), "mean of column {j}");
            assert_eq!(fit.scale[j], if sd >= MIN_SCALE { sd } else { 1.0 }, "scale of column {j}");
        }
        assert_eq!(fit.scale[4], 1.0, "a constant column stays unscaled");
    }

    #[test]
    fn check_refuses_zero_negative_and_non_finite_scales() {
        assert!(Scaler::identity(2).check(2).is_ok());
        assert!(Scaler::identity(2).check(3).unwrap_err().contains("for 3 columns"));
        let bad = Scaler { mean: vec![0.0, 0.0], scale: vec![1.0, 0.0], impute: None, noise_scale: None };
        assert!(bad.check(2).unwrap_err().contains("column 1: scale 0"));
        let bad = Scaler { mean: vec![f32::NAN, 0.0], scale: vec![1.0, 1.0], impute: None, noise_scale: None };
        assert!(bad.check(2).unwrap_err().contains("column 0: mean NaN"));
        let bad = Scaler { noise_scale: Some(vec![0.1, 0.0]), ..Scaler::identity(2) };
        assert!(bad.check(2).unwrap_err().contains("noise scales"));
    }

    /// A prescaled view's noise unit by hand: columns (0, 0.2, 0, 0.2) and (0.1, 0.1, 0.1, 0.1) have
    /// standard deviations 0.1 and 0, so the unit is sqrt((0.01 + 0) / 2) = 0.0707…; a standardised
    /// view's corruption keeps its per-column scale; a view that never varies keeps `scale`.
    #[test]
    fn a_prescaled_views_noise_unit_is_its_columns_rms_spread() {
        let raw = [0.0, 0.1, 0.2, 0.1, 0.0, 0.1, 0.2, 0.1];
        let s = Scaler::identity(2).with_view_noise_scale(&raw, 2);
        let unit = (0.005f64).sqrt() as f32;
        assert!((s.noise_spread()[0] - unit).abs() < 1e-6 && s.noise_spread()[0] == s.noise_spread()[1]);
        assert_eq!(s.scale, vec![1.0, 1.0], "the model's inputs stay as they are");
        let mut row = [1.0, 1.0];
        s.add_noise(&mut row, 4.0, &[1.0, -0.5]);
        assert!((row[0] - (1.0 + 4.0 * unit)).abs() < 1e-6 && (row[1] - (1.0 - 2.0 * unit)).abs() < 1e-6);
        let fitted = Scaler::fit(&raw, 2, Scaling::Standardize);
        assert_eq!(fitted.noise_spread(), &fitted.scale[..]);
        assert_eq!(Scaler::identity(2).with_view_noise_scale(&[3.0, 3.0, 3.0, 3.0], 2).noise_scale, None);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Scaler>(&json).unwrap(), s, "recorded with the model");
        assert!(!serde_json::to_string(&fitted).unwrap().contains("noise_scale"), "absent where it is scale");
    }
}
