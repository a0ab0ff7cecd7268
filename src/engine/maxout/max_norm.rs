//! Max-norm for the maxout engine: every weight column (one per output
//! unit) kept within a limit after each step, in burn's arithmetic, and the
//! optimiser step that sums the columns' squares during Adam's pass
//! ([`MaxoutNet::adam_step`]).

use std::ops::Range;

use rayon::prelude::*;

use super::Front;
use super::MaxoutNet;
use super::ops::{LinearAt, ROWS_PER_TASK, block_squares, column_scales, scales_of_blocks};
use crate::cpu::Adam;

impl MaxoutNet {
    /// Rescales every weight column (one per output unit of a `[d_in, d_out]`
    /// weight) whose L2 norm exceeds `limit` down to `limit`, in burn's
    /// arithmetic ([`MaxNorm`](crate::fusion::MaxNorm)). Biases and batch-norm parameters are left alone.
    pub fn max_norm(&mut self, limit: f32) {
        for at in self.max_normed() {
            let scales = column_scales(&self.params[at.weight..at.weight + at.d_in * at.d_out], at.d_out, limit);
            self.rescale(at, &scales);
        }
    }

    /// One optimiser step: `adam` with `grad`, then with `max_norm` every
    /// weight column kept within it: `adam.step` then [`max_norm`](Self::max_norm).
    /// A model of `FUSED_FROM` (2 M) parameters or more (too large for the caches)
    /// has each block of a constrained weight's squares summed right after the
    /// block's update, while it is in cache, instead of reading every weight
    /// again (on MM-IMDb's shape 18 MB a step); the same bits either way.
    pub fn adam_step(&mut self, adam: &mut Adam, grad: &[f32], max_norm: Option<f32>) {
        match max_norm {
            None => adam.step(&mut self.params, grad),
            Some(limit) if self.params.len() >= FUSED_FROM => self.adam_step_fused(adam, grad, limit),
            Some(limit) => {
                adam.step(&mut self.params, grad);
                self.max_norm(limit);
            }
        }
    }

    /// [`adam_step`](Self::adam_step) with the squares summed piece by piece.
    fn adam_step_fused(&mut self, adam: &mut Adam, grad: &[f32], limit: f32) {
        let plan = self.max_norm_plan();
        let block_of = &plan.block_of;
        let squares = adam.step_pieces(&mut self.params, grad, &plan.pieces, |i, piece| {
            block_of[i].map(|b| block_squares(piece, b.d_out))
        });
        self.max_norm_from(limit, &plan, &squares);
    }

    /// The weights [`max_norm`](Self::max_norm) keeps within the limit.
    fn max_normed(&self) -> Vec<LinearAt> {
        let mut weights = vec![];
        match &self.front {
            Front::Gmu { transforms, gate } => weights.extend([transforms[0], transforms[1], *gate]),
            Front::Concat => {}
            Front::LinearSum { projections, .. } => weights.extend(projections.iter().copied()),
        }
        weights.extend([self.mlp.maxout_1, self.mlp.maxout_2, self.mlp.output]);
        weights
    }

    /// Multiplies each column of the weight at `at` by its scale, unless every scale is 1.
    fn rescale(&mut self, at: LinearAt, scales: &[f32]) {
        if scales.iter().any(|&s| s != 1.0) {
            let w = &mut self.params[at.weight..at.weight + at.d_in * at.d_out];
            w.par_chunks_mut(at.d_out * ROWS_PER_TASK).for_each(|rows| {
                for row in rows.chunks_exact_mut(at.d_out) {
                    row.iter_mut().zip(scales).for_each(|(x, s)| *x *= s);
                }
            });
        }
    }

    /// Where Adam's pieces fall so that [`max_norm`](Self::max_norm)'s blocks
    /// of squares can be summed as each piece is updated (see [`MaxNormPlan`]).
    fn max_norm_plan(&self) -> MaxNormPlan {
        // every block of every max-normed weight: (start, end, index over all blocks)
        let (mut blocks, mut weights) = (vec![], vec![]);
        for at in self.max_normed() {
            let (start, end, rows) = (at.weight, at.weight + at.d_in * at.d_out, at.d_out * ROWS_PER_TASK);
            let first = blocks.len();
            for s in (start..end).step_by(rows) {
                blocks.push((s, end.min(s + rows), Block { index: blocks.len(), d_out: at.d_out }));
            }
            weights.push((at, first..blocks.len()));
        }
        blocks.sort_unstable_by_key(|b| b.0);
        let mut plan = MaxNormPlan { pieces: vec![], block_of: vec![], weights };
        let mut at = 0;
        for (start, end, block) in blocks {
            assert!(start >= at, "max-normed weights overlap");
            plan.plain(at, start);
            plan.pieces.push(start..end);
            plan.block_of.push(Some(block));
            at = end;
        }
        plan.plain(at, self.params.len());
        plan
    }

    /// [`max_norm`](Self::max_norm) from the blocks' sums of squares that the
    /// pieces of `plan` returned (`squares[i]` for piece `i`, `Some` for a block).
    fn max_norm_from(&mut self, limit: f32, plan: &MaxNormPlan, squares: &[Option<Vec<f32>>]) {
        let mut blocks: Vec<&[f32]> = vec![&[]; plan.blocks()];
        for (block, squares) in plan.block_of.iter().zip(squares) {
            if let (Some(b), Some(squares)) = (block, squares) {
                blocks[b.index] = squares;
            }
        }
        assert!(blocks.iter().all(|b| !b.is_empty()), "every block's squares");
        for (at, range) in &plan.weights {
            let scales = scales_of_blocks(blocks[range.clone()].iter().copied(), at.d_out, limit);
            self.rescale(*at, &scales);
        }
    }
}

/// The fewest parameters for which [`MaxoutNet::adam_step`] sums the
/// max-norm's squares during Adam's pass: below it the weights stay in cache
/// between the two passes, and Adam's plain chunks balance the threads better
/// than blocks of whole rows (the text-only model, 0.85 M, was 4 % slower on 2
/// threads fused; the paper's GMU, 4.5 M, 2–5 % faster).
pub const FUSED_FROM: usize = 1 << 21;

/// Parameters per plain piece of a [`MaxNormPlan`] (biases, batch norms, unconstrained weights).
const PLAIN_PIECE: usize = 1 << 15;

/// Adam's pieces for a step with max-norm: every block of [`ROWS_PER_TASK`]
/// rows of a max-normed weight is a piece of its own (so its squares are
/// summed right after its update, as [`column_scales`] sums them), the
/// parameters between them are cut into plain pieces.
struct MaxNormPlan {
    /// Consecutive ranges covering the parameters.
    pieces: Vec<Range<usize>>,
    /// For each piece, the block it is, if any.
    block_of: Vec<Option<Block>>,
    /// Each max-normed weight and the range of block indices that cover it, in row order.
    weights: Vec<(LinearAt, Range<usize>)>,
}

/// A block of a max-normed weight: its index over every weight's blocks, and the weight's columns.
#[derive(Clone, Copy, Debug)]
struct Block {
    index: usize,
    d_out: usize,
}

impl MaxNormPlan {
    /// Blocks over every weight.
    fn blocks(&self) -> usize {
        self.weights.last().map_or(0, |(_, r)| r.end)
    }

    /// Plain pieces over `from..to`.
    fn plain(&mut self, from: usize, to: usize) {
        for s in (from..to).step_by(PLAIN_PIECE) {
            self.pieces.push(s..to.min(s + PLAIN_PIECE));
            self.block_of.push(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::{FusionKind, FusionSpec, Task};

    /// The fused step with max-norm is `Adam::step` then `max_norm`, bit for bit:
    /// views wider than a block of rows (600 and 300 against 256), weights
    /// large enough that some columns are rescaled and some not, three steps,
    /// every fusion the engine trains.
    #[test]
    fn the_fused_step_equals_adam_then_max_norm_bit_for_bit() {
        for kind in [FusionKind::Gmu, FusionKind::Concat, FusionKind::LinearSum] {
            let spec = FusionSpec::new(kind, vec![600, 300], 8, 5, Task::Multilabel);
            let mut net = MaxoutNet::from_net(&spec.init(&burn::tensor::Device::default()).unwrap(), 0)
                .unwrap()
                .with_views(&[600, 300]);
            for (i, p) in net.params.iter_mut().enumerate() {
                *p = ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * if i % 3 == 0 { 0.9 } else { 0.05 };
            }
            let (mut fused, mut apart) = (net.clone(), net.clone());
            let (mut adam_fused, mut adam_apart) =
                (Adam::with_defaults(net.len(), 0.05), Adam::with_defaults(net.len(), 0.05));
            let grad = |step: usize| -> Vec<f32> {
                (0..net.len()).map(|i| ((i * 31 + step * 17) % 97) as f32 / 97.0 - 0.45).collect()
            };
            for step in 0..3 {
                let grad = grad(step);
                fused.adam_step_fused(&mut adam_fused, &grad, 1.0);
                adam_apart.step(&mut apart.params, &grad);
                apart.max_norm(1.0);
            }
            let differ = fused.params.iter().zip(&apart.params).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "{kind:?}: {differ} parameters differ");
            let mut unconstrained = net.clone();
            let mut adam = Adam::with_defaults(net.len(), 0.05);
            for step in 0..3 {
                unconstrained.adam_step(&mut adam, &grad(step), None);
            }
            assert_ne!(unconstrained.params, fused.params, "{kind:?}: the limit bit");
        }
    }
}
