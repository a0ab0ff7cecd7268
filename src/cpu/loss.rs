//! The one flat loss of the hand-written engines: the mean loss of a batch of
//! logits and its gradient with respect to them, for softmax cross-entropy
//! and for sigmoid cross-entropy. burn's side is
//! `fusion::FusionNet::loss`; the conformance tests
//! hold the two together.

use serde::{Deserialize, Serialize};

use super::kernels::{exp, ln, sigmoid};

/// Training loss over the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Softmax cross-entropy over the classes.
    SoftmaxCe,
    /// Sigmoid cross-entropy on 0/1 targets (one-hot for single-label data),
    /// averaged over samples and outputs: the seed's
    /// `tf.losses.sigmoid_cross_entropy`, and the multilabel loss.
    SigmoidBce,
}

impl LossKind {
    /// P(class 1) from the logits of one sample: softmax for [`LossKind::SoftmaxCe`],
    /// the sigmoid of the class-1 logit for [`LossKind::SigmoidBce`] (as the seed plots it).
    #[inline]
    pub fn prob_class1(self, logits: &[f32]) -> f32 {
        match self {
            LossKind::SoftmaxCe if logits.len() == 2 => sigmoid(logits[1] - logits[0]),
            LossKind::SoftmaxCe => {
                let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let sum: f32 = logits.iter().map(|&l| exp(l - max)).sum();
                exp(logits[1] - max) / sum
            }
            LossKind::SigmoidBce => sigmoid(logits[1]),
        }
    }
}

/// Mean loss of the batch `logits` (`[rows, classes]`, row-major) against
/// `targets` (same shape, 0/1; one-hot rows for softmax), with dL/dlogits
/// written into `delta` (same shape). `terms` is scratch space (one loss term
/// per element, summed afterwards, so each loop is one pass over contiguous
/// buffers that vectorises).
///
/// Softmax cross-entropy is averaged over the rows; sigmoid cross-entropy
/// over rows and classes.
#[inline(always)]
pub fn loss_and_delta(
    kind: LossKind,
    logits: &[f32],
    targets: &[f32],
    classes: usize,
    delta: &mut [f32],
    terms: &mut Vec<f32>,
) -> f32 {
    let c = classes;
    assert_eq!(logits.len(), targets.len(), "logits and targets differ in shape");
    assert_eq!(logits.len(), delta.len(), "delta is not the logits' shape");
    let m = logits.len() / c;
    let scale = 1.0 / m as f32;
    match kind {
        LossKind::SoftmaxCe if c == 2 => {
            // Two classes: with d = o₁ − o₀ and t the target of class 1, CE = softplus(d) − t·d,
            // dL/do₁ = σ(d) − t = −dL/do₀.
            terms.resize(m, 0.0);
            for (((o, g), t), term) in
                logits.chunks_exact(2).zip(delta.chunks_exact_mut(2)).zip(targets.chunks_exact(2)).zip(terms.iter_mut())
            {
                let (d, t) = (o[1] - o[0], t[1]);
                let e = exp(-d.abs());
                *term = d.max(0.0) + ln(1.0 + e) - t * d;
                let p = if d >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
                g[1] = (p - t) * scale;
                g[0] = -g[1];
            }
        }
        LossKind::SoftmaxCe => {
            terms.resize(m, 0.0);
            for (((o, g), t), term) in
                logits.chunks_exact(c).zip(delta.chunks_exact_mut(c)).zip(targets.chunks_exact(c)).zip(terms.iter_mut())
            {
                let max = o.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let mut sum = 0.0;
                for (gi, &oi) in g.iter_mut().zip(o) {
                    *gi = exp(oi - max);
                    sum += *gi;
                }
                // log-sum-exp minus the target's logit (Σ t·o is the target's logit for a one-hot row).
                let lse = max + ln(sum);
                *term = t.iter().zip(o).map(|(&tj, &oj)| tj * (lse - oj)).sum();
                for (gi, &tj) in g.iter_mut().zip(t) {
                    *gi = (*gi / sum - tj) * scale;
                }
            }
        }
        LossKind::SigmoidBce => {
            let inv_c = 1.0 / c as f32;
            let per = scale * inv_c;
            terms.resize(m * c, 0.0);
            for (((&o, g), &t), term) in logits.iter().zip(delta.iter_mut()).zip(targets).zip(terms.iter_mut()) {
                let e = exp(-o.abs());
                *term = (o.max(0.0) - o * t + ln(1.0 + e)) * inv_c;
                let s = if o >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
                *g = (s - t) * per;
            }
        }
    }
    (terms.iter().map(|&t| t as f64).sum::<f64>() / m as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every branch against the loss written out by hand, and the gradient against central differences.
    #[test]
    fn loss_matches_hand_values_and_finite_differences() {
        let logits = [0.3f32, -1.2, 2.0, 0.5, 0.1, -0.4];
        let cases: [(LossKind, usize, [f32; 6], f64); 3] = [
            // rows (0.3, −1.2) target 0, (2.0, 0.5) target 1, (0.1, −0.4) target 0.
            (LossKind::SoftmaxCe, 2, [1.0, 0.0, 0.0, 1.0, 1.0, 0.0], {
                let ce = |o: [f64; 2], t: usize| (o[0].exp() + o[1].exp()).ln() - o[t];
                (ce([0.3, -1.2], 0) + ce([2.0, 0.5], 1) + ce([0.1, -0.4], 0)) / 3.0
            }),
            // rows (0.3, −1.2, 2.0) target 2, (0.5, 0.1, −0.4) target 0.
            (LossKind::SoftmaxCe, 3, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0], {
                let ce = |o: [f64; 3], t: usize| o.iter().map(|x| x.exp()).sum::<f64>().ln() - o[t];
                (ce([0.3, -1.2, 2.0], 2) + ce([0.5, 0.1, -0.4], 0)) / 2.0
            }),
            (LossKind::SigmoidBce, 3, [1.0, 0.0, 1.0, 0.0, 0.0, 1.0], {
                let t = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
                logits
                    .iter()
                    .zip(t)
                    .map(|(&o, t)| {
                        let p = 1.0 / (1.0 + (-(o as f64)).exp());
                        -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                    })
                    .sum::<f64>()
                    / 6.0
            }),
        ];
        for (kind, c, targets, expected) in cases {
            let (mut delta, mut terms) = ([0.0f32; 6], Vec::new());
            let loss = loss_and_delta(kind, &logits, &targets, c, &mut delta, &mut terms);
            assert!((loss as f64 - expected).abs() < 1e-5, "{kind:?}/{c}: {loss} vs {expected}");
            for i in 0..6 {
                let h = 1e-2f32;
                let at = |x: f32| {
                    let mut l = logits;
                    l[i] = x;
                    loss_and_delta(kind, &l, &targets, c, &mut [0.0; 6], &mut Vec::new()) as f64
                };
                let numeric = (at(logits[i] + h) - at(logits[i] - h)) / (2.0 * h as f64);
                assert!((numeric - delta[i] as f64).abs() < 1e-3, "{kind:?}/{c} d{i}: {numeric} vs {}", delta[i]);
            }
        }
    }
}
