//! The synthetic two-modality data set of the GMU paper (§5.1) and of the seed post.
//!
//! The generative model: a class `C ~ Bern(p_c)` and a switch `M ~ Bern(p_m)`.
//! When `M = 1` the visual input is informative, `x_v ~ N(μ_v^C, σ)`, and the
//! textual one is noise, `x_t ~ N(μ̂_t, σ)`; when `M = 0` it is the other way round.
//! Each modality lives in `R^d`; every coordinate gets the same mean.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result};

/// Parameters of the generator; the defaults are the seed post's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Number of samples.
    pub n: usize,
    /// Draw exactly `n / 2` samples of each class (the paper's "200 per class")
    /// instead of `C ~ Bern(p_c)`.
    pub balanced: bool,
    /// Dimension `d` of each modality.
    pub dim: usize,
    /// `P(C = 1)`.
    pub p_c: f64,
    /// `P(M = 1)`, the probability that the visual modality is the informative one.
    pub p_m: f64,
    /// Visual means for class 0 and class 1.
    pub mu_v: [f64; 2],
    /// Visual noise mean `μ̂_v`.
    pub mu_v_noise: f64,
    /// Textual means for class 0 and class 1.
    pub mu_t: [f64; 2],
    /// Textual noise mean `μ̂_t`.
    pub mu_t_noise: f64,
    /// Standard deviation of every Gaussian.
    pub sigma: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            n: 400,
            balanced: false,
            dim: 1,
            p_c: 0.5,
            p_m: 0.5,
            mu_v: [1.0, 8.0],
            mu_v_noise: 17.0,
            mu_t: [13.0, 19.0],
            mu_t_noise: 10.0,
            sigma: 1.0,
        }
    }
}

/// A drawn data set. Inputs are row-major `[n, dim]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticData {
    /// Dimension of each modality.
    pub dim: usize,
    /// Visual inputs, `[n, dim]`.
    pub x_v: Vec<f32>,
    /// Textual inputs, `[n, dim]`.
    pub x_t: Vec<f32>,
    /// Class of each sample (0 or 1).
    pub c: Vec<u8>,
    /// Which modality is informative: 1 = visual, 0 = textual. `None` when
    /// unknown (data read from a file without an `m` column).
    pub m: Option<Vec<u8>>,
}

impl SyntheticConfig {
    /// Checks every parameter, naming the first one out of its domain.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 {
            return Err(GmuError::invalid("n", "the number of samples must be at least 1"));
        }
        if self.dim == 0 {
            return Err(GmuError::invalid("dim", "the input dimension must be at least 1"));
        }
        use crate::budget::{ensure, product};
        ensure("dim", &format!("one sample of 2 × {} inputs", self.dim), product(&[self.dim, 2, 4]))?;
        ensure(
            "n",
            &format!("{} samples of 2 × {} inputs", self.n, self.dim),
            product(&[self.n, self.dim, 2, 4]).and_then(|b| b.checked_add(self.n as u64 * 2)),
        )?;
        for (name, p) in [("p_c", self.p_c), ("p_m", self.p_m)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(GmuError::invalid(name, format!("a probability in [0, 1] is expected, got {p}")));
            }
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(GmuError::invalid("sigma", format!("a finite value > 0 is expected, got {}", self.sigma)));
        }
        let means = [self.mu_v[0], self.mu_v[1], self.mu_v_noise, self.mu_t[0], self.mu_t[1], self.mu_t_noise];
        if means.iter().any(|m| !m.is_finite()) {
            return Err(GmuError::invalid("mu", "every mean must be finite"));
        }
        // Samples are stored as 32-bit floats: a mean (or a spread) near f32's limit would write infinities.
        let limit = f32::MAX as f64 / 4.0;
        for (name, values) in [
            ("mu_v", &self.mu_v[..]),
            ("mu_v_noise", &[self.mu_v_noise][..]),
            ("mu_t", &self.mu_t[..]),
            ("mu_t_noise", &[self.mu_t_noise][..]),
            ("sigma", &[self.sigma][..]),
        ] {
            if let Some(v) = values.iter().find(|v| v.abs() > limit) {
                return Err(GmuError::invalid(
                    name,
                    format!("{v} is beyond what 32-bit samples hold (|value| ≤ {limit:.1e})"),
                ));
            }
        }
        if self.balanced && self.n % 2 == 1 {
            return Err(GmuError::invalid(
                "n",
                format!("a balanced draw has as many samples of each class; {} is odd", self.n),
            ));
        }
        Ok(())
    }

    /// Draws a data set. The caller seeds `rng`; the same seed gives the same data.
    pub fn generate(&self, rng: &mut impl Rng) -> Result<SyntheticData> {
        self.validate()?;
        let (n, d) = (self.n, self.dim);
        let noise = Normal::new(0.0f64, self.sigma).expect("sigma validated");
        let c: Vec<u8> = if self.balanced {
            let mut c: Vec<u8> = (0..n).map(|i| u8::from(i >= n / 2)).collect();
            // Fisher-Yates, so the order carries no information.
            for i in (1..n).rev() {
                c.swap(i, rng.random_range(0..=i));
            }
            c
        } else {
            (0..n).map(|_| u8::from(rng.random_bool(self.p_c))).collect()
        };
        let m: Vec<u8> = (0..n).map(|_| u8::from(rng.random_bool(self.p_m))).collect();
        let mut x_v = Vec::with_capacity(n * d);
        let mut x_t = Vec::with_capacity(n * d);
        for i in 0..n {
            let class = c[i] as usize;
            let (mean_v, mean_t) =
                if m[i] == 1 { (self.mu_v[class], self.mu_t_noise) } else { (self.mu_v_noise, self.mu_t[class]) };
            for _ in 0..d {
                x_v.push((mean_v + noise.sample(rng)) as f32);
            }
            for _ in 0..d {
                x_t.push((mean_t + noise.sample(rng)) as f32);
            }
        }
        Ok(SyntheticData { dim: d, x_v, x_t, c, m: Some(m) })
    }
}

impl SyntheticData {
    /// The same samples as multi-view data: views `v` and `t`, classes `0` and `1`.
    pub fn to_multiview(&self) -> crate::data::MultiviewData {
        let view = |name: &str, values: &Vec<f32>| crate::data::View {
            name: name.into(),
            dim: self.dim,
            values: values.clone(),
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        crate::data::MultiviewData {
            views: vec![view("v", &self.x_v), view("t", &self.x_t)],
            targets: crate::data::Targets::Classes {
                y: self.c.iter().map(|&c| c as usize).collect(),
                names: vec!["0".into(), "1".into()],
            },
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.c.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.c.is_empty()
    }

    /// Inputs of both modalities side by side, row-major `[n, 2 * dim]`
    /// (visual first): the layout the models consume.
    pub fn joined(&self) -> Vec<f32> {
        let d = self.dim;
        let mut out = Vec::with_capacity(self.len() * 2 * d);
        for i in 0..self.len() {
            out.extend_from_slice(&self.x_v[i * d..(i + 1) * d]);
            out.extend_from_slice(&self.x_t[i * d..(i + 1) * d]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn proportions_and_cluster_means_match_the_parameters() {
        let config = SyntheticConfig { n: 200_000, dim: 2, p_c: 0.3, p_m: 0.7, ..Default::default() };
        let data = config.generate(&mut StdRng::seed_from_u64(1)).unwrap();
        let n = data.len() as f64;
        let share_c = data.c.iter().map(|&c| c as f64).sum::<f64>() / n;
        let m = data.m.as_ref().unwrap();
        let share_m = m.iter().map(|&m| m as f64).sum::<f64>() / n;
        assert!((share_c - 0.3).abs() < 0.005, "P(C=1) = {share_c}");
        assert!((share_m - 0.7).abs() < 0.005, "P(M=1) = {share_m}");
        // Mean of every (modality, M, C) cluster, per coordinate.
        for coord in 0..2 {
            for class in 0..2u8 {
                for switch in 0..2u8 {
                    let rows: Vec<usize> = (0..data.len()).filter(|&i| data.c[i] == class && m[i] == switch).collect();
                    let mean =
                        |x: &[f32]| rows.iter().map(|&i| x[i * 2 + coord] as f64).sum::<f64>() / rows.len() as f64;
                    let (want_v, want_t) = if switch == 1 {
                        (config.mu_v[class as usize], config.mu_t_noise)
                    } else {
                        (config.mu_v_noise, config.mu_t[class as usize])
                    };
                    assert!((mean(&data.x_v) - want_v).abs() < 0.03, "x_v mean for C={class} M={switch}");
                    assert!((mean(&data.x_t) - want_t).abs() < 0.03, "x_t mean for C={class} M={switch}");
                }
            }
        }
        // Unit variance around the cluster mean.
        let rows: Vec<usize> = (0..data.len()).filter(|&i| data.c[i] == 0 && m[i] == 1).collect();
        let var = rows.iter().map(|&i| (data.x_v[i * 2] as f64 - 1.0).powi(2)).sum::<f64>() / rows.len() as f64;
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let config = SyntheticConfig::default();
        let a = config.generate(&mut StdRng::seed_from_u64(7)).unwrap();
        let b = config.generate(&mut StdRng::seed_from_u64(7)).unwrap();
        let c = config.generate(&mut StdRng::seed_from_u64(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn balanced_draw_has_exactly_half_of_each_class() {
        let config = SyntheticConfig { n: 400, balanced: true, ..Default::default() };
        let data = config.generate(&mut StdRng::seed_from_u64(3)).unwrap();
        assert_eq!(data.c.iter().filter(|&&c| c == 1).count(), 200);
        assert_ne!(&data.c[..200], &[0u8; 200][..], "classes must be shuffled");
    }

    #[test]
    fn joined_puts_visual_first() {
        let data =
            SyntheticData { dim: 2, x_v: vec![1., 2., 3., 4.], x_t: vec![5., 6., 7., 8.], c: vec![0, 1], m: None };
        assert_eq!(data.joined(), vec![1., 2., 5., 6., 3., 4., 7., 8.]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = SyntheticConfig { p_m: 1.5, ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("invalid p_m"), "{err}");
        let err = SyntheticConfig { dim: 0, ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("invalid dim"), "{err}");
    }
}
