//! The small image CNN every image view trains (the model layer's `SmallCnn`: two `3×3 conv
//! (same) → ReLU → 2×2 max pool` stages, then linear → ReLU), forward and
//! backward by hand on the CPU, channels-last.
//!
//! burn runs the same network as NCHW convolutions with layout copies,
//! per-element loops and a separate ReLU and pooling pass around each
//! product (`BENCHMARKS.md`, the Twemoji CNN). Here:
//! - **Forward.** Each map is stored channels-last as *row triplets*: for
//!   every pixel column `x` of a padded row `i`, the three rows `i − 1, i,
//!   i + 1` one after the other (`[h, w + 2, 3, c]`). The 3×3 patch of output
//!   pixel `(i, j)` is then `9·c` contiguous values, and the patch of
//!   `(i, j + 1)` starts `3·c` further on, so a convolution is one product of
//!   overlapping rows against the packed weights ([`packed`](super::packed)),
//!   with no patch matrix (`im2col`, 3× larger) written. ReLU and pooling are
//!   one pass that keeps which of the four inputs won.
//! - **Backward.** After a 2×2 max pool only one pixel in four (its window's
//!   winner, where the pooled value is positive) has a gradient, so the
//!   backward pass works on those alone: per winner, its weight gradient is
//!   one row of `9·c` values (`g · patch`) and its input gradient one row
//!   `g · W_o` added onto the triplets' gradient, which is then folded back
//!   onto the map. That is a quarter of the dense products' arithmetic, and
//!   the dense gradient of the convolution's output is never formed. The
//!   first convolution's input is data and needs no gradient.
//!
//! The batch is cut into tasks of [`IMAGES_PER_TASK`] images that run the
//! whole pipeline on one thread with their buffers in cache; each task's
//! weight gradients are summed in task order, so the result does not depend
//! on the number of threads. The weights are read from (and the gradients
//! given back in) burn's own layouts ([`CnnParams`]), so the burn module
//! stays the model: the `cnn` engine hands the gradients to burn's
//! optimiser, and its tests check the features and every gradient against
//! burn's autodiff. This file knows no tensor type: plain `f32` slices in
//! and out.

use rayon::prelude::*;

use super::gemm::matmul;
use super::packed::PackedMatrix;

/// Images per rayon task: the task's row triplets (about 40 KB and 55 KB per
/// 3×32×32 image) and maps stay in the core's L2 while it runs both stages.
pub const IMAGES_PER_TASK: usize = 2;

/// Images per pass of [`CnnEngine::infer`], which bounds its memory.
pub const INFER_BLOCK: usize = 64;

/// The sizes of one picture CNN: input channels, height and width, the two
/// convolutions' channels, and the features out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CnnDims {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Channels of the first convolution.
    pub c1: usize,
    /// Channels of the second convolution.
    pub c2: usize,
    /// Features out.
    pub d_out: usize,
}

impl CnnDims {
    /// Values per image.
    pub fn image(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Height and width after the first pooling.
    pub fn half(&self) -> (usize, usize) {
        (self.h / 2, self.w / 2)
    }
    /// Height and width after the second pooling.
    pub fn quarter(&self) -> (usize, usize) {
        (self.h / 2 / 2, self.w / 2 / 2)
    }
    /// Width of the flattened second map.
    pub fn flat(&self) -> usize {
        let (h4, w4) = self.quarter();
        h4 * w4 * self.c2
    }
}

/// The weights as the engine multiplies them.
#[derive(Debug)]
struct Weights {
    /// `[9·c, c1]`, rows in patch order `(v, u, channel)`.
    conv_1: PackedMatrix,
    bias_1: Vec<f32>,
    /// `[9·c1, c2]`, rows in patch order.
    conv_2: PackedMatrix,
    /// The same weights as `[c2, 9·c1]`, one output channel per row, for the input gradient.
    conv_2_rows: Vec<f32>,
    bias_2: Vec<f32>,
    /// `[flat, d_out]`, rows in channels-last order `(i, j, channel)`.
    project: Vec<f32>,
    bias_3: Vec<f32>,
}

/// One task's images and buffers.
#[derive(Default, Debug)]
struct Chunk {
    /// Row triplets of the input, `[n, h, w + 2, 3, c]`.
    rows_1: Vec<f32>,
    /// First convolution's output `[n, h, w + 2, c1]` (the last two pixels of each row unused).
    conv_1: Vec<f32>,
    /// Which of the four inputs won each pooled value.
    arg_1: Vec<u8>,
    /// `[n, h/2, w/2, c1]` after ReLU and pooling.
    pooled_1: Vec<f32>,
    /// Row triplets of the pooled map, `[n, h/2, w/2 + 2, 3, c1]`.
    rows_2: Vec<f32>,
    /// Second convolution's output `[n, h/2, w/2 + 2, c2]`.
    conv_2: Vec<f32>,
    arg_2: Vec<u8>,
    /// Gradient of `rows_2`.
    d_rows_2: Vec<f32>,
    /// Gradient of the pooled map.
    d_pooled_1: Vec<f32>,
    /// This task's share of the weight gradients, engine layouts.
    g_conv_1: Vec<f32>,
    g_bias_1: Vec<f32>,
    g_conv_2: Vec<f32>,
    g_bias_2: Vec<f32>,
}

/// The picture CNN's parameters, or their gradients, in burn's layouts (the
/// model layer's `SmallCnn` reads its tensors into one and registers one as
/// its gradients).
#[derive(Clone, Debug, PartialEq)]
pub struct CnnParams {
    /// `[c1, c, 3, 3]`.
    pub conv_1_weight: Vec<f32>,
    /// `[c1]`.
    pub conv_1_bias: Vec<f32>,
    /// `[c2, c1, 3, 3]`.
    pub conv_2_weight: Vec<f32>,
    /// `[c2]`.
    pub conv_2_bias: Vec<f32>,
    /// `[flat, d_out]`, rows channel-major as burn flattens the map.
    pub project_weight: Vec<f32>,
    /// `[d_out]`.
    pub project_bias: Vec<f32>,
}

/// The picture CNN on the CPU: its weights, and the activations of the last
/// [`forward`](Self::forward) for [`backward`](Self::backward).
#[derive(Debug)]
pub struct CnnEngine {
    dims: CnnDims,
    weights: Weights,
    chunks: Vec<Chunk>,
    batch: usize,
    /// `[batch, flat]`, channels-last.
    pooled_2: Vec<f32>,
    /// `[batch, d_out]` after the ReLU.
    features: Vec<f32>,
    d_project: Vec<f32>,
    d_pooled_2: Vec<f32>,
}

/// burn's `[c_out, c_in, 3, 3]` (index `u, v`) as `[c_out, (v, u, c_in)]`, the patch order of row triplets.
fn conv_to_patches(w: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..c_out {
        for ci in 0..c_in {
            for (u, v) in (0..3).flat_map(|u| (0..3).map(move |v| (u, v))) {
                out[o * 9 * c_in + (v * 3 + u) * c_in + ci] = w[(o * c_in + ci) * 9 + u * 3 + v];
            }
        }
    }
    out
}

/// `[c_out, (v, u, c_in)]` back to burn's `[c_out, c_in, 3, 3]`.
fn patches_to_conv(g: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut out = vec![0.0; g.len()];
    for o in 0..c_out {
        for ci in 0..c_in {
            for (u, v) in (0..3).flat_map(|u| (0..3).map(move |v| (u, v))) {
                out[(o * c_in + ci) * 9 + u * 3 + v] = g[o * 9 * c_in + (v * 3 + u) * c_in + ci];
            }
        }
    }
    out
}

/// The row of burn's flattened map (channel-major) for each channels-last row.
fn flat_rows(dims: &CnnDims) -> impl Iterator<Item = usize> {
    let (h4, w4) = dims.quarter();
    let c2 = dims.c2;
    (0..h4 * w4).flat_map(move |ij| (0..c2).map(move |ci| ci * h4 * w4 + ij))
}

impl Weights {
    fn read(p: &CnnParams, dims: &CnnDims) -> Weights {
        let w1 = conv_to_patches(&p.conv_1_weight, dims.c1, dims.c);
        let w2 = conv_to_patches(&p.conv_2_weight, dims.c2, dims.c1);
        let w3 = &p.project_weight;
        let d_out = dims.d_out;
        let project = flat_rows(dims).flat_map(|r| w3[r * d_out..][..d_out].iter().copied()).collect();
        let (k1, k2) = (9 * dims.c, 9 * dims.c1);
        let mut conv_1 = PackedMatrix::empty();
        conv_1.repack_columns(k1, dims.c1, |o| &w1[o * k1..][..k1]);
        let mut conv_2 = PackedMatrix::empty();
        conv_2.repack_columns(k2, dims.c2, |o| &w2[o * k2..][..k2]);
        Weights {
            conv_1,
            bias_1: p.conv_1_bias.clone(),
            conv_2,
            conv_2_rows: w2,
            bias_2: p.conv_2_bias.clone(),
            project,
            bias_3: p.project_bias.clone(),
        }
    }
}

impl CnnEngine {
    /// The engine for a CNN of `dims` with the weights `params`.
    pub fn new(dims: CnnDims, params: &CnnParams) -> CnnEngine {
        assert_eq!(
            params.project_weight.len(),
            dims.flat() * dims.d_out,
            "the projection takes the flattened second map"
        );
        CnnEngine {
            weights: Weights::read(params, &dims),
            dims,
            chunks: Vec::new(),
            batch: 0,
            pooled_2: Vec::new(),
            features: Vec::new(),
            d_project: Vec::new(),
            d_pooled_2: Vec::new(),
        }
    }

    /// Reads the weights again (after an optimiser step).
    pub fn load(&mut self, params: &CnnParams) {
        self.weights = Weights::read(params, &self.dims);
    }

    /// Features out, per image.
    pub fn d_out(&self) -> usize {
        self.dims.d_out
    }

    /// The features of a batch, keeping what [`backward`](Self::backward) needs.
    ///
    /// # Shapes
    /// - `x`: `[batch, c · h · w]`, each image channel-major as stored
    /// - output: `[batch, d_out]`
    pub fn forward(&mut self, x: &[f32]) -> &[f32] {
        let d = self.dims;
        let image = d.image();
        assert!(x.len().is_multiple_of(image), "{} values are not whole {}×{}×{} images", x.len(), d.c, d.h, d.w);
        let batch = x.len() / image;
        self.batch = batch;
        let tasks = batch.div_ceil(IMAGES_PER_TASK);
        if self.chunks.len() < tasks {
            self.chunks.resize_with(tasks, Chunk::default);
        }
        let flat = d.flat();
        self.pooled_2.resize(batch * flat, 0.0);
        let weights = &self.weights;
        self.chunks[..tasks]
            .par_iter_mut()
            .zip(x.par_chunks(IMAGES_PER_TASK * image))
            .zip(self.pooled_2.par_chunks_mut(IMAGES_PER_TASK * flat))
            .for_each(|((chunk, x), pooled_2)| forward_chunk(&d, weights, x, chunk, pooled_2));
        let features = &mut self.features;
        features.resize(batch * d.d_out, 0.0);
        for row in features.chunks_exact_mut(d.d_out) {
            row.copy_from_slice(&weights.bias_3);
        }
        // SAFETY: features [batch, d_out], pooled_2 [batch, flat], project [flat, d_out], all row-major.
        unsafe {
            matmul(
                (batch, d.d_out, flat),
                (features.as_mut_ptr(), (d.d_out, 1)),
                true,
                (self.pooled_2.as_ptr(), (flat, 1)),
                (weights.project.as_ptr(), (d.d_out, 1)),
            )
        };
        features.iter_mut().for_each(|v| *v = v.max(0.0));
        &self.features
    }

    /// The gradients of every parameter, given the loss's gradient with
    /// respect to the features of the last [`forward`](Self::forward).
    ///
    /// # Shapes
    /// - `d_features`: `[batch, d_out]`
    pub fn backward(&mut self, d_features: &[f32]) -> CnnParams {
        let d = self.dims;
        let (batch, flat, d_out) = (self.batch, d.flat(), d.d_out);
        assert_eq!(d_features.len(), batch * d_out, "the gradient of {batch} × {d_out} features");
        self.d_project.clear();
        self.d_project.extend(d_features.iter().zip(&self.features).map(|(g, f)| if *f > 0.0 { *g } else { 0.0 }));
        let dz = &self.d_project;
        let mut project_bias = vec![0.0; d_out];
        for row in dz.chunks_exact(d_out) {
            project_bias.iter_mut().zip(row).for_each(|(b, g)| *b += g);
        }
        let mut g_project = vec![0.0; flat * d_out];
        self.d_pooled_2.resize(batch * flat, 0.0);
        // SAFETY: g_project [flat, d_out] = pooled_2ᵀ · dz; d_pooled_2 [batch, flat] = dz · projectᵀ.
        unsafe {
            matmul(
                (flat, d_out, batch),
                (g_project.as_mut_ptr(), (d_out, 1)),
                false,
                (self.pooled_2.as_ptr(), (1, flat)),
                (dz.as_ptr(), (d_out, 1)),
            );
            matmul(
                (batch, flat, d_out),
                (self.d_pooled_2.as_mut_ptr(), (flat, 1)),
                false,
                (dz.as_ptr(), (d_out, 1)),
                (self.weights.project.as_ptr(), (1, d_out)),
            );
        }
        let tasks = batch.div_ceil(IMAGES_PER_TASK);
        let weights = &self.weights;
        self.chunks[..tasks]
            .par_iter_mut()
            .zip(self.d_pooled_2.par_chunks(IMAGES_PER_TASK * flat))
            .zip(self.pooled_2.par_chunks(IMAGES_PER_TASK * flat))
            .for_each(|((chunk, d_pooled_2), pooled_2)| backward_chunk(&d, weights, chunk, d_pooled_2, pooled_2));
        // The tasks' shares, summed in task order.
        let (k1, k2) = (9 * d.c, 9 * d.c1);
        let (mut conv_1, mut bias_1, mut conv_2, mut bias_2) =
            (vec![0.0; d.c1 * k1], vec![0.0; d.c1], vec![0.0; d.c2 * k2], vec![0.0; d.c2]);
        for chunk in &self.chunks[..tasks] {
            for (sum, part) in [
                (&mut conv_1, &chunk.g_conv_1),
                (&mut bias_1, &chunk.g_bias_1),
                (&mut conv_2, &chunk.g_conv_2),
                (&mut bias_2, &chunk.g_bias_2),
            ] {
                sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
            }
        }
        let mut project_weight = vec![0.0; flat * d_out];
        for (row, r) in flat_rows(&d).enumerate() {
            project_weight[r * d_out..][..d_out].copy_from_slice(&g_project[row * d_out..][..d_out]);
        }
        CnnParams {
            conv_1_weight: patches_to_conv(&conv_1, d.c1, d.c),
            conv_1_bias: bias_1,
            conv_2_weight: patches_to_conv(&conv_2, d.c2, d.c1),
            conv_2_bias: bias_2,
            project_weight,
            project_bias,
        }
    }

    /// The features of any number of images, 64 at a time (which bounds the memory it takes).
    ///
    /// # Shapes
    /// - `x`: `[batch, c · h · w]`; output: `[batch, d_out]`
    pub fn infer(&mut self, x: &[f32]) -> Vec<f32> {
        let image = self.dims.image();
        let mut out = Vec::with_capacity(x.len() / image * self.dims.d_out);
        for block in x.chunks(INFER_BLOCK * image) {
            out.extend_from_slice(self.forward(block));
        }
        out
    }
}

/// One task's images through both stages; the pooled second map goes to `pooled_2`.
fn forward_chunk(d: &CnnDims, weights: &Weights, x: &[f32], chunk: &mut Chunk, pooled_2: &mut [f32]) {
    let n = x.len() / d.image();
    let (h, w, c) = (d.h, d.w, d.c);
    let (h2, w2) = d.half();
    let len_1 = n * h * (w + 2) * 3 * c;
    chunk.rows_1.resize(len_1 + TAIL, 0.0);
    for (img, rows) in x.chunks_exact(d.image()).zip(chunk.rows_1.chunks_exact_mut(h * (w + 2) * 3 * c)) {
        triplets(h, w, c, rows, |ci, y, x| img[(ci * h + y) * w + x]);
    }
    conv(&chunk.rows_1[..len_1], c, &weights.conv_1, &weights.bias_1, &mut chunk.conv_1);
    chunk.pooled_1.resize(n * h2 * w2 * d.c1, 0.0);
    relu_pool(&chunk.conv_1, n, h, w, d.c1, &mut chunk.pooled_1, &mut chunk.arg_1);
    let c1 = d.c1;
    let len_2 = n * h2 * (w2 + 2) * 3 * c1;
    chunk.rows_2.resize(len_2 + TAIL, 0.0);
    for (map, rows) in
        chunk.pooled_1.chunks_exact(h2 * w2 * c1).zip(chunk.rows_2.chunks_exact_mut(h2 * (w2 + 2) * 3 * c1))
    {
        triplets(h2, w2, c1, rows, |ci, y, x| map[(y * w2 + x) * c1 + ci]);
    }
    conv(&chunk.rows_2[..len_2], c1, &weights.conv_2, &weights.bias_2, &mut chunk.conv_2);
    relu_pool(&chunk.conv_2, n, h2, w2, d.c2, pooled_2, &mut chunk.arg_2);
}

/// One task's backward pass from the gradient of its pooled second map to
/// its share of the convolutions' weight gradients, winner by winner.
fn backward_chunk(d: &CnnDims, weights: &Weights, chunk: &mut Chunk, d_pooled_2: &[f32], pooled_2: &[f32]) {
    let n = pooled_2.len() / d.flat();
    let (h2, w2) = d.half();
    let (c, c1, c2) = (d.c, d.c1, d.c2);
    let zeroed = |v: &mut Vec<f32>, len: usize| {
        v.clear();
        v.resize(len, 0.0);
    };
    // Second stage: each winner's weight gradient, and its input gradient onto the triplets.
    let stage_2 = Stage { h: h2, w: w2, c_in: c1, c_out: c2 };
    assert_eq!(stage_2.stride(), 9 * c1, "the input gradient's rows are the weights' own");
    zeroed(&mut chunk.g_conv_2, c2 * 9 * c1);
    zeroed(&mut chunk.g_bias_2, c2);
    zeroed(&mut chunk.d_rows_2, chunk.rows_2.len());
    stage_backward(
        stage_2,
        Saved { n, d_pooled: d_pooled_2, pooled: pooled_2, arg: &chunk.arg_2, rows: &chunk.rows_2 },
        &mut chunk.g_conv_2,
        &mut chunk.g_bias_2,
        Some((&weights.conv_2_rows, &mut chunk.d_rows_2)),
    );
    // The triplets' gradient folded back onto the pooled map: each pixel is in three triplets.
    zeroed(&mut chunk.d_pooled_1, n * h2 * w2 * c1);
    for (d_map, d_rows) in
        chunk.d_pooled_1.chunks_exact_mut(h2 * w2 * c1).zip(chunk.d_rows_2.chunks_exact(h2 * (w2 + 2) * 3 * c1))
    {
        fold(h2, w2, c1, d_rows, d_map);
    }
    // First stage: each winner's weight gradient (the input is data).
    let stage_1 = Stage { h: d.h, w: d.w, c_in: c, c_out: c1 };
    let stride = stage_1.stride();
    zeroed(&mut chunk.g_conv_1, c1 * stride);
    zeroed(&mut chunk.g_bias_1, c1);
    stage_backward(
        stage_1,
        Saved { n, d_pooled: &chunk.d_pooled_1, pooled: &chunk.pooled_1, arg: &chunk.arg_1, rows: &chunk.rows_1 },
        &mut chunk.g_conv_1,
        &mut chunk.g_bias_1,
        None,
    );
    // Rows of `stride` values back to rows of 9·c (the extra values were the next patch's).
    for o in 0..c1 {
        chunk.g_conv_1.copy_within(o * stride..o * stride + 9 * c, o * 9 * c);
    }
    chunk.g_conv_1.truncate(c1 * 9 * c);
}

/// A convolution stage's sizes: its input map `[h, w, c_in]`, its output channels.
#[derive(Clone, Copy)]
struct Stage {
    h: usize,
    w: usize,
    c_in: usize,
    c_out: usize,
}

/// Room after each buffer of row triplets, so that a patch read as
/// [`Stage::stride`] values (more than its `9·c`) stays inside it; what the
/// room holds only reaches the dropped entries.
const TAIL: usize = 8;

impl Stage {
    /// The length of a patch as the backward loops read it: `9·c_in`,
    /// rounded up to 16 or 32 for one or three input channels (the first
    /// stage, which takes no input gradient). The extra values read belong
    /// to the next patch, and their weight-gradient entries are dropped.
    fn stride(&self) -> usize {
        match 9 * self.c_in {
            9 => 16,
            27 => 32,
            k => k,
        }
    }
}

/// What a stage's backward pass reads for its `n` images: the gradient of its
/// pooled output, the pooled output, which of the four inputs won each window,
/// and the stage's row triplets.
struct Saved<'a> {
    n: usize,
    d_pooled: &'a [f32],
    pooled: &'a [f32],
    arg: &'a [u8],
    rows: &'a [f32],
}

super::kernels::wide_variant!(
    /// The backward pass of one stage (`3×3 conv → ReLU → 2×2 max pool`) for
    /// `n` images, given the gradient of its pooled output: for each pooled
    /// value that is positive, its window's winner gets the gradient `g`, so
    /// `g_bias[o] += g`, `g_conv[o] += g · patch`, and with `input` (the
    /// weights as rows, the triplets' gradient) `d_rows[patch] += g · W_o`.
    /// The gradients stay arguments of their own (not fields of a struct), so
    /// the compiler knows they alias nothing and vectorises the loops that add to them.
    fn stage_backward(
        stage: Stage,
        saved: Saved<'_>,
        g_conv: &mut [f32],
        g_bias: &mut [f32],
        input: Option<(&[f32], &mut [f32])>,
    ) = stage_backward_body
);

#[inline(always)]
fn stage_backward_body(
    stage: Stage,
    saved: Saved<'_>,
    g_conv: &mut [f32],
    g_bias: &mut [f32],
    input: Option<(&[f32], &mut [f32])>,
) {
    // The loops' length as a constant where it is one of these, so that they
    // compile to whole vectors (the first stage's 9·c is padded to a multiple of 8).
    match stage.stride() {
        16 => winners::<16>(stage, saved, g_conv, g_bias, input),
        32 => winners::<32>(stage, saved, g_conv, g_bias, input),
        144 => winners::<144>(stage, saved, g_conv, g_bias, input),
        _ => winners::<0>(stage, saved, g_conv, g_bias, input),
    }
}

/// [`stage_backward`]'s loops over the winners, with rows of `K` values (`K = 0`: of `stage.stride()`).
#[inline(always)]
fn winners<const K: usize>(
    stage: Stage,
    saved: Saved<'_>,
    g_conv: &mut [f32],
    g_bias: &mut [f32],
    mut input: Option<(&[f32], &mut [f32])>,
) {
    let Saved { n, d_pooled, pooled, arg, rows } = saved;
    let Stage { h, w, c_in, c_out } = stage;
    let (h2, w2) = (h / 2, w / 2);
    let k = if K == 0 { stage.stride() } else { K };
    let mut at = 0;
    for b in 0..n {
        for i in 0..h2 {
            for j in 0..w2 {
                for o in 0..c_out {
                    let g = d_pooled[at + o];
                    if pooled[at + o] <= 0.0 || g == 0.0 {
                        continue;
                    }
                    let q = arg[at + o] as usize;
                    let pixel = (b * h + 2 * i + q / 2) * (w + 2) + 2 * j + q % 2;
                    g_bias[o] += g;
                    let patch = &rows[pixel * 3 * c_in..][..k];
                    let g_row = &mut g_conv[o * k..][..k];
                    for t in 0..k {
                        g_row[t] += g * patch[t];
                    }
                    if let Some((weights, d_rows)) = input.as_mut() {
                        let w_row = &weights[o * k..][..k];
                        let d_patch = &mut d_rows[pixel * 3 * c_in..][..k];
                        for t in 0..k {
                            d_patch[t] += g * w_row[t];
                        }
                    }
                }
                at += c_out;
            }
        }
    }
}

/// Row triplets of an `h × w` map with `c` channels given by
/// `value(channel, y, x)`: `rows[i, x', u, ch] = map[ch, i + u − 1, x' − 1]`,
/// zero outside the map (the convolution's padding).
#[inline(always)]
fn triplets(h: usize, w: usize, c: usize, rows: &mut [f32], value: impl Fn(usize, usize, usize) -> f32) {
    for i in 0..h {
        for xp in 0..w + 2 {
            for u in 0..3 {
                let (y, x) = ((i + u).wrapping_sub(1), xp.wrapping_sub(1));
                let dst = &mut rows[((i * (w + 2) + xp) * 3 + u) * c..][..c];
                if y < h && x < w {
                    for (ch, v) in dst.iter_mut().enumerate() {
                        *v = value(ch, y, x);
                    }
                } else {
                    dst.fill(0.0);
                }
            }
        }
    }
}

/// The gradient of [`triplets`]: each map pixel's gradient is the sum over
/// the three triplets that hold it.
fn fold(h: usize, w: usize, c: usize, d_rows: &[f32], d_map: &mut [f32]) {
    for y in 0..h {
        for x in 0..w {
            let dst = &mut d_map[(y * w + x) * c..][..c];
            for u in 0..3 {
                let i = (y + 1).wrapping_sub(u);
                if i < h {
                    let src = &d_rows[((i * (w + 2) + x + 1) * 3 + u) * c..][..c];
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
            }
        }
    }
}

/// `out = conv(map) + b` on the calling thread, from the map's row triplets
/// `[n, h, w + 2, 3, c]`: one product over all `n·h·(w + 2)` pixel slots,
/// each reading the `9·c` values from its own slot on (the rows overlap), so
/// the last two slots of every row are computed from the next row's data
/// and left unused.
fn conv(rows: &[f32], c: usize, weights: &PackedMatrix, bias: &[f32], out: &mut Vec<f32>) {
    let c_out = weights.n();
    let slots = rows.len() / (3 * c);
    out.resize(slots * c_out, 0.0);
    for row in out.chunks_exact_mut(c_out) {
        row.copy_from_slice(bias);
    }
    // The last two slots would read past the end; they are unused.
    weights.matmul_strided(rows, 3 * c, slots - 2, out, c_out, true);
}

/// ReLU then 2×2 max pooling (stride 2, odd edges dropped) of a
/// convolution's output `[n, h, w + 2, c]` (see [`conv`]) into `out`
/// `[n, h/2, w/2, c]`, with the winner of each window (0 top-left, 1
/// top-right, 2 bottom-left, 3 bottom-right).
fn relu_pool(map: &[f32], n: usize, h: usize, w: usize, c: usize, out: &mut [f32], arg: &mut Vec<u8>) {
    let (h2, w2, pitch) = (h / 2, w / 2, w + 2);
    arg.resize(n * h2 * w2 * c, 0);
    let mut at = 0;
    for b in 0..n {
        for i in 0..h2 {
            for j in 0..w2 {
                let top = ((b * h + 2 * i) * pitch + 2 * j) * c;
                let corners = [top, top + c, top + pitch * c, top + pitch * c + c];
                for ch in 0..c {
                    let (mut best, mut which) = (map[corners[0] + ch], 0u8);
                    for (q, &corner) in corners.iter().enumerate().skip(1) {
                        let v = map[corner + ch];
                        if v > best {
                            (best, which) = (v, q as u8);
                        }
                    }
                    out[at + ch] = best.max(0.0);
                    arg[at + ch] = which;
                }
                at += c;
            }
        }
    }
}
