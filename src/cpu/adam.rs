//! Adam over a flat parameter vector, shared by the hand-written engines:
//! PyTorch's and burn's update, threaded over chunks for large models.

use rayon::prelude::*;

use super::kernels::wide_variant;

/// Adam, as burn and PyTorch write it: `p −= lr · m̂ / (√v̂ + ε)`. The same
/// arithmetic per element whatever the thread count, so training stays
/// deterministic across machines with different core counts.
#[derive(Clone, Debug)]
pub struct Adam {
    lr: f32,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

/// Parameters per parallel chunk; smaller models update on the calling thread.
const CHUNK: usize = 1 << 15;

impl Adam {
    /// Fresh state for `n` parameters.
    pub fn new(n: usize, lr: f32, beta_1: f32, beta_2: f32, epsilon: f32) -> Self {
        Adam { lr, beta_1, beta_2, epsilon, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// Fresh state with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8.
    pub fn with_defaults(n: usize, lr: f32) -> Self {
        Adam::new(n, lr, 0.9, 0.999, 1e-8)
    }

    /// The state a checkpoint keeps: the step count and both moments.
    pub fn state(&self) -> (i32, &[f32], &[f32]) {
        (self.t, &self.m, &self.v)
    }

    /// Restores a state [`state`](Self::state) gave (same length as this one's).
    pub fn restore(&mut self, t: i32, m: Vec<f32>, v: Vec<f32>) {
        assert!(m.len() == self.m.len() && v.len() == self.v.len(), "Adam state of the wrong size");
        (self.t, self.m, self.v) = (t, m, v);
    }

    /// One update of `params` with `grad`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        let (betas, factor, eps) = self.next_step();
        let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| update(p, g, m, v, betas, factor, eps);
        if params.len() <= CHUNK {
            update(params, grad, &mut self.m, &mut self.v);
        } else {
            params
                .par_chunks_mut(CHUNK)
                .zip(grad.par_chunks(CHUNK))
                .zip(self.m.par_chunks_mut(CHUNK).zip(self.v.par_chunks_mut(CHUNK)))
                .for_each(|((p, g), (m, v))| update(p, g, m, v));
        }
    }

    /// Counts a step and returns its constants for [`update`]: the betas, the
    /// step size with both bias corrections, and ε scaled to match.
    fn next_step(&mut self) -> ((f32, f32), f32, f32) {
        self.t += 1;
        let bc2 = (1.0 - self.beta_2.powi(self.t)).sqrt();
        let factor = self.lr * bc2 / (1.0 - self.beta_1.powi(self.t));
        ((self.beta_1, self.beta_2), factor, self.epsilon * bc2)
    }

    /// [`step`](Self::step) over `pieces` (consecutive ranges that cover
    /// `params` in order), in parallel, calling `then(i, piece)` on each updated
    /// piece while it is still in cache; returns what `then` returned, in the
    /// pieces' order. The same arithmetic per element as `step`, so the same bits.
    pub fn step_pieces<R: Send>(
        &mut self,
        params: &mut [f32],
        grad: &[f32],
        pieces: &[std::ops::Range<usize>],
        then: impl Fn(usize, &[f32]) -> R + Sync,
    ) -> Vec<R> {
        assert!(
            pieces.first().is_none_or(|p| p.start == 0)
                && pieces.windows(2).all(|w| w[0].end == w[1].start)
                && pieces.last().map_or(0, |p| p.end) == params.len()
                && grad.len() == params.len()
                && self.m.len() == params.len(),
            "pieces that cover the {} parameters in order",
            params.len()
        );
        let (betas, factor, eps) = self.next_step();
        let (mut p_rest, mut g_rest, mut m_rest, mut v_rest) =
            (params, grad, self.m.as_mut_slice(), self.v.as_mut_slice());
        let mut split = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let n = piece.len();
            let (p, p_tail) = std::mem::take(&mut p_rest).split_at_mut(n);
            let (g, g_tail) = g_rest.split_at(n);
            let (m, m_tail) = std::mem::take(&mut m_rest).split_at_mut(n);
            let (v, v_tail) = std::mem::take(&mut v_rest).split_at_mut(n);
            (p_rest, g_rest, m_rest, v_rest) = (p_tail, g_tail, m_tail, v_tail);
            split.push((p, g, m, v));
        }
        split
            .into_par_iter()
            .enumerate()
            .map(|(i, (p, g, m, v))| {
                update(p, g, m, v, betas, factor, eps);
                then(i, p)
            })
            .collect()
    }
}

wide_variant!(
    /// The update of one chunk, eight wide where the CPU has AVX2 (the same
    /// arithmetic, operation by operation, so the result is bit-identical).
    fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], betas: (f32, f32), factor: f32, eps: f32) = update_body
);

#[inline(always)]
fn update_body(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], (b1, b2): (f32, f32), factor: f32, eps: f32) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        p[i] -= factor * m[i] / (v[i].sqrt() + eps);
    }
}
