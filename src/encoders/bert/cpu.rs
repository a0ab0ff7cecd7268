//! MiniLM's forward pass on the CPU without burn: the same BERT as
//! [`Bert`](super::tensor::Bert), with its weights as flat row-major `f32`, the
//! matrix products through the GEMM the dense engine uses, and the
//! element-wise work fused into one pass per step (bias + GELU; bias +
//! residual, then layer norm).
//!
//! Texts are not padded: the linear layers run on every token of the batch
//! at once (`[tokens, d]`), and attention runs per text and head on that
//! text's own tokens, so no time goes into padding and a row's embedding does
//! not depend on the other rows of its batch (beyond the GEMM's rounding). burn's module stays for other
//! devices and as the reference this one is tested against.
//!
//! A batch of several texts on several threads is cut into groups of whole
//! texts, one per thread, that run side by side ([`CpuBert::embed_ids`]):
//! each group's products and norms then split among threads only where one
//! finishes first, instead of every step of every layer waiting for the
//! slowest thread (BENCHMARKS.md: `gmu serve`'s plot + poster requests at
//! concurrency 8). Every row is computed the same way in any group, so the
//! bits do not change.

use rayon::prelude::*;

use super::config::BertConfig;
use crate::cpu::bf16::{Bf16Matrix, EncoderPrecision};
use crate::cpu::kernels::{exp_fused, lane_sum, prefetch_l2, wide_variant};
use crate::cpu::packed::PackedMatrix;
use crate::encoders::spare::Spare;
use crate::encoders::weights::Weights;
use crate::error::{GmuError, Result};

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One encoder layer; every weight matrix packed as `[in, out]`.
struct Layer {
    /// Query (pre-scaled by `1/√d_head`), key and value side by side: `[d, 3d]`; biases `[3d]`.
    qkv: PackedMatrix,
    qkv_bias: Vec<f32>,
    attention_out: PackedMatrix,
    attention_out_bias: Vec<f32>,
    attention_norm: Norm,
    /// `[d, ff]`.
    intermediate: PackedMatrix,
    intermediate_bias: Vec<f32>,
    /// `[ff, d]`.
    output: PackedMatrix,
    output_bias: Vec<f32>,
    output_norm: Norm,
}

/// A frozen BERT for the CPU.
pub struct CpuBert {
    /// `[vocab, d]`.
    word: Vec<f32>,
    /// `[max_positions, d]`.
    position: Vec<f32>,
    /// Token type 0, `[d]`.
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    eps: f32,
    hidden: usize,
    ff: usize,
    vocab: usize,
    max_positions: usize,
    /// What [`set_precision`](Self::set_precision) gave (`F32` until called).
    precision: EncoderPrecision,
    /// The forwards' buffers, kept between calls (a batch of 32 × 256 tokens needs about
    /// 75 MB): one per group of texts running at once.
    spare: Spare<Scratch>,
}

/// Buffers of one forward, every value overwritten before it is read.
#[derive(Default)]
struct Scratch {
    /// The hidden states, `[tokens, d]`.
    x: Vec<f32>,
    /// `[tokens, 3d]`.
    qkv: Vec<f32>,
    /// `[tokens, d]`.
    context: Vec<f32>,
    /// `[tokens, ff]`.
    inner: Vec<f32>,
    /// The same in bf16, `[tokens rounded up to 32, ff rounded up to 32]`, where the encoder runs in bf16.
    inner_bf16: Vec<u16>,
}

/// A pointer that rayon tasks writing disjoint parts of one buffer share.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: each task writes only its own rows and columns (see the callers).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so closures capture the `Send` wrapper, not its field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One attention task's buffers, reused by the tasks of a thread.
struct AttentionScratch {
    scores: Vec<f32>,
    inv_sums: Vec<f32>,
    /// The head's keys, transposed: `[d_head, len]`.
    keys: PackedMatrix,
    /// The head's values: `[len, d_head]`.
    values: PackedMatrix,
    /// The same two in bf16, where the encoder runs in bf16.
    keys_bf16: Bf16Matrix,
    values_bf16: Bf16Matrix,
    /// The softmax's numerators in bf16, `[len rounded up to 32, len rounded up to 32]`.
    probabilities: Vec<u16>,
}

impl Default for AttentionScratch {
    fn default() -> Self {
        AttentionScratch {
            scores: Vec::new(),
            inv_sums: Vec::new(),
            keys: PackedMatrix::empty(),
            values: PackedMatrix::empty(),
            keys_bf16: Bf16Matrix::empty(),
            values_bf16: Bf16Matrix::empty(),
            probabilities: Vec::new(),
        }
    }
}

/// Queries whose scores attention computes at once (a multiple of both kernels' rows).
const QUERY_BLOCK: usize = 48;

/// Rows of `[n, d]` handed to one rayon task by the element-wise passes.
const ROWS_PER_TASK: usize = 32;

impl CpuBert {
    /// Builds the encoder from Hugging Face BERT tensors, as [`Bert::from_weights`](super::tensor::Bert::from_weights) does.
    pub fn from_weights(w: &Weights, config: BertConfig) -> Result<CpuBert> {
        let word_shape = w.shape("embeddings.word_embeddings.weight").ok_or_else(|| {
            GmuError::data(w.path(), "no tensor 'embeddings.word_embeddings.weight': not a BERT checkpoint")
        })?;
        let [vocab, d] = word_shape[..] else {
            return Err(GmuError::data(w.path(), format!("word embeddings of shape {word_shape:?}")));
        };
        if d % config.heads != 0 {
            return Err(GmuError::data(
                w.path(),
                format!("hidden width {d} is not a multiple of {} heads", config.heads),
            ));
        }
        let max_positions = w.shape("embeddings.position_embeddings.weight").map_or(0, |s| s[0]);
        let get = |name: &str, shape: &[usize]| w.values(name, shape).map(<[f32]>::to_vec);
        let norm = |prefix: &str| -> Result<Norm> {
            Ok(Norm { gamma: get(&format!("{prefix}.weight"), &[d])?, beta: get(&format!("{prefix}.bias"), &[d])? })
        };
        let n_layers = (0..).take_while(|i| w.has(&format!("encoder.layer.{i}.attention.self.query.weight"))).count();
        if n_layers == 0 {
            return Err(GmuError::data(w.path(), "no encoder layers (encoder.layer.0.*)"));
        }
        let ff = w.shape("encoder.layer.0.intermediate.dense.weight").map_or(0, |s| s[0]);
        let scale = 1.0 / ((d / config.heads) as f32).sqrt();
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = format!("encoder.layer.{i}");
            let mut qkv = get(&format!("{p}.attention.self.query.weight"), &[d, d])?;
            let mut qkv_bias = get(&format!("{p}.attention.self.query.bias"), &[d])?;
            qkv.iter_mut().chain(qkv_bias.iter_mut()).for_each(|v| *v *= scale);
            for part in ["key", "value"] {
                qkv.extend_from_slice(w.values(&format!("{p}.attention.self.{part}.weight"), &[d, d])?);
                qkv_bias.extend_from_slice(w.values(&format!("{p}.attention.self.{part}.bias"), &[d])?);
            }
            let packed = |name: &str, n_out: usize, n_in: usize| -> Result<PackedMatrix> {
                Ok(PackedMatrix::from_out_in(w.values(&format!("{p}.{name}.weight"), &[n_out, n_in])?, n_out, n_in))
            };
            layers.push(Layer {
                qkv: PackedMatrix::from_out_in(&qkv, 3 * d, d),
                qkv_bias,
                attention_out: packed("attention.output.dense", d, d)?,
                attention_out_bias: get(&format!("{p}.attention.output.dense.bias"), &[d])?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: packed("intermediate.dense", ff, d)?,
                intermediate_bias: get(&format!("{p}.intermediate.dense.bias"), &[ff])?,
                output: packed("output.dense", d, ff)?,
                output_bias: get(&format!("{p}.output.dense.bias"), &[d])?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let token_types = w.shape("embeddings.token_type_embeddings.weight").map_or(0, |s| s[0]);
        Ok(CpuBert {
            word: get("embeddings.word_embeddings.weight", &[vocab, d])?,
            position: get("embeddings.position_embeddings.weight", &[max_positions, d])?,
            token_type: get("embeddings.token_type_embeddings.weight", &[token_types, d])?[..d].to_vec(),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            heads: config.heads,
            eps: config.layer_norm_eps as f32,
            hidden: d,
            ff,
            vocab,
            max_positions,
            precision: EncoderPrecision::F32,
            spare: Default::default(),
        })
    }

    /// Runs the four linear layers of every encoder layer in `precision`
    /// (bf16 only where a bf16 kernel runs; see [`crate::cpu::bf16`]); attention's
    /// products, the embeddings and the norms stay `f32`.
    pub fn set_precision(&mut self, precision: EncoderPrecision) {
        for layer in &mut self.layers {
            for m in [&mut layer.qkv, &mut layer.attention_out, &mut layer.intermediate, &mut layer.output] {
                self.precision = m.set_precision(precision);
            }
        }
    }

    /// The precision the linear layers run in.
    pub fn precision(&self) -> EncoderPrecision {
        self.precision
    }

    /// Hidden width (384 for MiniLM).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Most tokens a row may have (the position table's length).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Last hidden states of every token of `rows`, one row after another:
    /// `[Σ len, hidden]` (token type 0; each row attends to its own tokens only).
    pub fn forward(&self, rows: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.with_hidden(rows, <[f32]>::to_vec)
    }

    /// `read` of [`forward`](Self::forward)'s hidden states, left in this
    /// encoder's buffers (a batch's are tens of MB: a fresh allocation each call
    /// cost its page faults).
    fn with_hidden<T>(&self, rows: &[Vec<u32>], read: impl FnOnce(&[f32]) -> T) -> Result<T> {
        let mut scratch = self.spare.take();
        let result = self.forward_in(rows, &mut scratch).map(|n| read(&scratch.x[..n * self.hidden]));
        self.spare.give(scratch);
        result
    }

    /// The forward pass into `scratch.x` (its first `n · hidden` values, `n` returned).
    fn forward_in(&self, rows: &[Vec<u32>], scratch: &mut Scratch) -> Result<usize> {
        let d = self.hidden;
        for row in rows {
            if row.len() > self.max_positions {
                return Err(GmuError::invalid(
                    "tokens",
                    format!("a row of {} tokens; the model has {} positions", row.len(), self.max_positions),
                ));
            }
            if let Some(&id) = row.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(GmuError::invalid(
                    "tokens",
                    format!("token id {id} outside the vocabulary of {}", self.vocab),
                ));
            }
        }
        let starts: Vec<usize> = rows.iter().scan(0, |at, r| Some(std::mem::replace(at, *at + r.len()))).collect();
        let n: usize = rows.iter().map(Vec::len).sum();
        if n == 0 {
            return Ok(0);
        }
        let Scratch { x, qkv, context, inner, inner_bf16 } = scratch;
        x.resize(n * d, 0.0);
        // every value is written by the embeddings below
        let x = &mut x[..n * d];
        for (row, &start) in rows.iter().zip(&starts) {
            for (j, &id) in row.iter().enumerate() {
                let (word, pos) = (&self.word[id as usize * d..][..d], &self.position[j * d..][..d]);
                for (k, v) in x[(start + j) * d..][..d].iter_mut().enumerate() {
                    *v = word[k] + pos[k] + self.token_type[k];
                }
            }
        }
        self.layer_norm(x, &self.embedding_norm);
        // in bf16 the feed-forward's intermediate lives in `inner_bf16` only
        let ff = if self.precision == EncoderPrecision::Bf16 { 0 } else { self.ff };
        for (buffer, width) in [(&mut *qkv, 3 * d), (&mut *context, d), (&mut *inner, ff)] {
            buffer.resize(n * width, 0.0);
        }
        let (qkv, context, inner) = (&mut qkv[..n * 3 * d], &mut context[..n * d], &mut inner[..n * ff]);
        for layer in &self.layers {
            layer.qkv.affine(x, &layer.qkv_bias, qkv, false);
            self.attention(qkv, rows, &starts, context);
            // x ← LN(x + context W + b)
            layer.attention_out.affine(context, &layer.attention_out_bias, x, true);
            self.layer_norm(x, &layer.attention_norm);
            if let (Some(first), Some(second)) = (layer.intermediate.bf16(), layer.output.bf16()) {
                // x ← x + GELU(x W₁ + b₁) W₂ + b₂ with the intermediate written once, in bf16
                let width = second.a_width();
                inner_bf16.resize(n.div_ceil(32) * 32 * width, 0);
                first.affine_into_bf16(x, &layer.intermediate_bias, inner_bf16, width, true);
                second.affine_from_bf16(inner_bf16, n, &layer.output_bias, x, true);
            } else {
                layer.intermediate.affine_gelu(x, &layer.intermediate_bias, inner);
                layer.output.affine(inner, &layer.output_bias, x, true);
            }
            self.layer_norm(x, &layer.output_norm);
        }
        Ok(n)
    }

    /// Sentence embeddings `[rows.len(), hidden]`: the last hidden states
    /// mean-pooled over each row's tokens and L2-normalised (sentence-transformers'
    /// Pooling + Normalize); a row without tokens gives zeros.
    ///
    /// On several threads, the rows are cut into groups of whole texts, one per
    /// thread (at most one per text), which run side by side; the result is the
    /// same, bit for bit.
    pub fn embed_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<f32>> {
        let groups = text_groups(rows, rayon::current_num_threads());
        if groups.len() < 2 {
            return self.embed_group(rows);
        }
        let parts: Vec<Result<Vec<f32>>> = groups.into_par_iter().map(|range| self.embed_group(&rows[range])).collect();
        let mut out = Vec::with_capacity(rows.len() * self.hidden);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// [`embed_ids`](Self::embed_ids) of one group, in one forward.
    fn embed_group(&self, rows: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.with_hidden(rows, |hidden| self.pool(rows, hidden))
    }

    /// Each row's hidden states `hidden` `[Σ len, d]` mean-pooled and L2-normalised: `[rows.len(), d]`.
    fn pool(&self, rows: &[Vec<u32>], hidden: &[f32]) -> Vec<f32> {
        let d = self.hidden;
        let mut out = vec![0f32; rows.len() * d];
        let mut at = 0;
        for (r, row) in rows.iter().enumerate() {
            let mean = &mut out[r * d..][..d];
            for token in hidden[at * d..(at + row.len()) * d].chunks_exact(d) {
                mean.iter_mut().zip(token).for_each(|(m, v)| *m += v);
            }
            at += row.len();
            let count = (row.len() as f32).max(1e-9);
            mean.iter_mut().for_each(|m| *m /= count);
            let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
        }
        out
    }

    /// Per text and head: `softmax(q kᵀ) v` over that text's tokens (q is
    /// pre-scaled), written into the head's columns of `context` `[n, d]`.
    fn attention(&self, qkv: &[f32], rows: &[Vec<u32>], starts: &[usize], context: &mut [f32]) {
        let (d, heads) = (self.hidden, self.heads);
        let dh = d / heads;
        let out = Shared(context.as_mut_ptr());
        // attention's products in bf16 too where the linear layers are (as PyTorch's autocast does)
        let bf16 = self.precision == EncoderPrecision::Bf16;
        let tasks: Vec<(usize, usize)> =
            (0..rows.len()).filter(|&r| !rows[r].is_empty()).flat_map(|r| (0..heads).map(move |h| (r, h))).collect();
        // text `r`'s rows of qkv `[n, 3d]`, and the columns where head `h`'s q, k and v start
        let text = |r: usize| &qkv[starts[r] * 3 * d..(starts[r] + rows[r].len()) * 3 * d];
        let head = |h: usize| [h * dh, d + h * dh, 2 * d + h * dh];
        tasks.par_iter().enumerate().for_each_init(AttentionScratch::default, |scratch, (t, &(r, h))| {
            // the next task's q, k and v on their way to L2 while this one computes (the GEMM
            // left qkv in L3 or memory, and its rows are too far apart for the CPU's prefetcher)
            if let Some(&(r, h)) = tasks.get(t + 1) {
                for row in text(r).chunks_exact(3 * d) {
                    head(h).iter().for_each(|&c| prefetch_l2(&row[c..][..dh]));
                }
            }
            let (len, start) = (rows[r].len(), starts[r]);
            let AttentionScratch { scores, inv_sums, keys, values, keys_bf16, values_bf16, probabilities } = scratch;
            let (block, [q, k, v]) = (text(r), head(h));
            // SAFETY: the task writes only rows start..start+len, columns
            // h·dh..(h+1)·dh of context, which no other task writes.
            let context =
                unsafe { std::slice::from_raw_parts_mut(out.get().add(start * d + h * dh), (len - 1) * d + dh) };
            if bf16 {
                scores.resize(len * len, 0.0);
                inv_sums.resize(len, 0.0);
                keys_bf16.repack_columns(dh, len, |j| &block[j * 3 * d + k..][..dh]);
                keys_bf16.band(&block[q..], 3 * d, len, scores, len, false);
                values_bf16.repack_rows(len, dh, |i| &block[i * 3 * d + v..][..dh]);
                let width = values_bf16.a_width();
                // every row's columns past `len` must be zero (they meet the values' zero padding);
                // the rows past `len` only reach output rows that are never written
                probabilities.resize(len.div_ceil(32) * 32 * width, 0);
                probabilities.chunks_exact_mut(width).take(len).for_each(|row| row[len..].fill(0));
                softmax_numerators_bf16(scores, inv_sums, probabilities, width);
                values_bf16.band_bf16(probabilities, len, context, d, false);
                scale_rows(context, d, dh, inv_sums);
                return;
            }
            keys.repack_columns(dh, len, |j| &block[j * 3 * d + k..][..dh]);
            values.repack_rows(len, dh, |i| &block[i * 3 * d + v..][..dh]);
            // a block of queries at a time, its scores staying in L1 from the product to the next
            let queries = QUERY_BLOCK.min(len);
            scores.resize(queries * len, 0.0);
            inv_sums.resize(queries, 0.0);
            for i0 in (0..len).step_by(QUERY_BLOCK) {
                let r = QUERY_BLOCK.min(len - i0);
                let (scores, inv_sums) = (&mut scores[..r * len], &mut inv_sums[..r]);
                keys.matmul_strided(&block[i0 * 3 * d + q..], 3 * d, r, scores, len, false);
                softmax_numerators(scores, inv_sums);
                let context = &mut context[i0 * d..];
                values.matmul_strided(scores, len, r, context, d, false);
                scale_rows(context, d, dh, inv_sums);
            }
        });
    }

    /// Layer norm of every row of `x` `[n, d]`, in place.
    fn layer_norm(&self, x: &mut [f32], norm: &Norm) {
        par_rows(x, self.hidden, |row| layer_norm_row(row, &norm.gamma, &norm.beta, self.eps));
    }
}

wide_variant!(
    /// `row ← γ ⊙ (row − mean) / √(var + ε) + β`.
    fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) = layer_norm_body
);

#[inline(always)]
fn layer_norm_body(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = row.len() as f32;
    let mean = lane_sum(row.len(), |i| row[i]) / d;
    for v in row.iter_mut() {
        *v -= mean;
    }
    let inv = 1.0 / (lane_sum(row.len(), |i| row[i] * row[i]) / d + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = *v * inv * g + b;
    }
}

wide_variant!(
    /// For each of the `inv_sums.len()` rows of `scores` (as wide as `scores` allows): `row ← e^(row − max row)`
    /// and `inv_sum ← 1 / Σ row` (a softmax whose division waits for the
    /// `[len, d_head]` product instead of passing over `[len, len]` again).
    fn softmax_numerators(scores: &mut [f32], inv_sums: &mut [f32]) = softmax_numerators_body
);

#[inline(always)]
fn softmax_numerators_body(scores: &mut [f32], inv_sums: &mut [f32]) {
    let width = scores.len() / inv_sums.len().max(1);
    for (row, inv) in scores.chunks_exact_mut(width).zip(inv_sums.iter_mut()) {
        *inv = 1.0 / exp_shifted(row, exp_fused);
    }
}

/// `rows` cut into at most `groups` runs of whole texts with about as many
/// tokens each (a text's cost: its linear layers, linear in its tokens, and
/// its attention, quadratic but small at MiniLM's lengths); texts without
/// tokens cost nothing. Fewer groups where there are fewer texts.
fn text_groups(rows: &[Vec<u32>], groups: usize) -> Vec<std::ops::Range<usize>> {
    if rows.is_empty() {
        return Vec::new();
    }
    let groups = groups.min(rows.len());
    let total: usize = rows.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(groups);
    let (mut start, mut seen) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        seen += row.len();
        // close a group once its share of the tokens is reached, leaving a text for
        // every group still to come, or when only as many texts as those groups are left
        let (left, after) = (groups - out.len() - 1, rows.len() - (i + 1));
        if left > 0 && after >= left && (seen * groups >= total * (out.len() + 1) || after == left) {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    // never empty: a group closes only with a text left for every later one
    out.push(start..rows.len());
    out
}

/// Row `i` of `context` (rows `d` apart, `dh` columns) times `inv_sums[i]`.
fn scale_rows(context: &mut [f32], d: usize, dh: usize, inv_sums: &[f32]) {
    for (i, inv) in inv_sums.iter().enumerate() {
        context[i * d..][..dh].iter_mut().for_each(|c| *c *= inv);
    }
}

/// Runs `f` on every `width`-wide row of `x`, rows split among rayon's threads.
fn par_rows(x: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync) {
    x.par_chunks_mut(width * ROWS_PER_TASK).for_each(|chunk| chunk.chunks_exact_mut(width).for_each(&f));
}

wide_variant!(
    /// [`softmax_numerators`] with the numerators also written to `out` in
    /// bf16, rows `width` apart (the left operand of the product by the values).
    fn softmax_numerators_bf16(scores: &mut [f32], inv_sums: &mut [f32], out: &mut [u16], width: usize) = softmax_numerators_bf16_body
);

#[inline(always)]
fn softmax_numerators_bf16_body(scores: &mut [f32], inv_sums: &mut [f32], out: &mut [u16], width: usize) {
    let len = inv_sums.len();
    for ((row, inv), out) in scores.chunks_exact_mut(len).zip(inv_sums.iter_mut()).zip(out.chunks_exact_mut(width)) {
        *inv = 1.0 / exp_shifted(row, exp_for_bf16);
        for (o, v) in out.iter_mut().zip(row.iter()) {
            *o = crate::cpu::bf16::to_bf16(*v);
        }
    }
}

/// `e^x` for `x ≤ 0` to about 4e-5 relative error (range reduction and a
/// degree-4 polynomial with fused multiply-adds): enough for numerators that
/// are rounded to bf16 (2⁻⁹) next. Only the AVX-512 variant runs (bf16 needs
/// AVX-512), where `mul_add` is one instruction.
#[inline(always)]
fn exp_for_bf16(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let shifted = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
    let n = shifted - MAGIC;
    let n_int = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = n.mul_add(-std::f32::consts::LN_2, x);
    let p = r.mul_add(1.0 / 24.0, 1.0 / 6.0);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r, 1.0);
    let p = p.mul_add(r, 1.0);
    p * f32::from_bits(((n_int + 127) as u32) << 23)
}

/// Independent lanes of the softmax's max and sum: one zmm register (two ymm).
const LANES: usize = 16;

/// `row ← e^(row − max row)` with `exp` (inlined: [`exp_fused`](crate::cpu::kernels::exp_fused)
/// or, for bf16 numerators, [`exp_for_bf16`]), returning the new row's sum
/// (softmax before its division).
#[inline(always)]
fn exp_shifted(row: &mut [f32], exp: impl Fn(f32) -> f32) -> f32 {
    let max = lanes_max(row);
    let mut acc = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *v = exp(*v - max);
            *a += *v;
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// `max x` in [`LANES`] lanes (`-∞` for an empty row).
#[inline(always)]
fn lanes_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a = if v > *a { v } else { *a });
    }
    acc.into_iter().chain(chunks.remainder().iter().copied()).fold(f32::NEG_INFINITY, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::bert::tensor::Bert;
    use crate::encoders::bert::tests::{TINY_IDS, tiny_bert_weights};
    use burn::tensor::Device;

    /// The flat forward equals burn's module on the tiny BERT, row by row,
    /// in one mixed-length batch and alone.
    #[test]
    fn equals_the_burn_module_on_the_tiny_bert() {
        let w = tiny_bert_weights();
        let config = BertConfig { heads: 2, layer_norm_eps: 1e-12 };
        let device = Device::default();
        let burn = Bert::from_weights(&w, config, &device).unwrap();
        let flat = CpuBert::from_weights(&w, config).unwrap();
        let rows: Vec<Vec<u32>> = TINY_IDS.iter().map(|r| r.to_vec()).collect();
        let want = burn.embed_ids(&rows, &device);
        let got = flat.embed_ids(&rows).unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "max abs difference to burn {worst}");
        for (r, row) in rows.iter().enumerate() {
            let alone = flat.embed_ids(std::slice::from_ref(row)).unwrap();
            let moved = alone.iter().zip(&got[r * 8..(r + 1) * 8]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(moved < 1e-6, "row {r} alone moved by {moved}");
        }
        // unit vectors
        for row in got.chunks(8) {
            assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    /// Attention against softmax(q kᵀ) v in `f64`, on texts longer than a block
    /// of queries (a ragged last block) and shorter, each head in its own columns.
    #[test]
    fn attention_equals_the_naive_softmax_over_query_blocks() {
        let flat = CpuBert::from_weights(&tiny_bert_weights(), BertConfig { heads: 2, layer_norm_eps: 1e-12 }).unwrap();
        let (d, dh) = (8, 4);
        let lens = [2 * QUERY_BLOCK + 5, 7, QUERY_BLOCK + 1];
        let rows: Vec<Vec<u32>> = lens.iter().map(|&n| vec![1; n]).collect();
        let starts: Vec<usize> = lens.iter().scan(0, |at, n| Some(std::mem::replace(at, *at + n))).collect();
        let n: usize = lens.iter().sum();
        let qkv: Vec<f32> = (0..n * 3 * d).map(|i| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 2.0).collect();
        let mut context = vec![f32::NAN; n * d];
        flat.attention(&qkv, &rows, &starts, &mut context);
        let at = |t: usize, c: usize| qkv[t * 3 * d + c] as f64;
        let mut worst = 0f64;
        for (&len, &start) in lens.iter().zip(&starts) {
            for h in 0..2 {
                for i in start..start + len {
                    let scores: Vec<f64> = (start..start + len)
                        .map(|j| (0..dh).map(|c| at(i, h * dh + c) * at(j, d + h * dh + c)).sum())
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..dh {
                        let want: f64 = (0..len).map(|j| e[j] / sum * at(start + j, 2 * d + h * dh + c)).sum();
                        worst = worst.max((context[i * d + h * dh + c] as f64 - want).abs());
                    }
                }
            }
        }
        assert!(worst < 1e-5, "max abs difference {worst}");
    }

    /// Groups of whole texts, about equal in tokens, one text at least each.
    #[test]
    fn text_groups_cut_whole_texts_by_tokens() {
        let rows = |lens: &[usize]| lens.iter().map(|&n| vec![1u32; n]).collect::<Vec<_>>();
        assert_eq!(text_groups(&rows(&[128; 8]), 2), vec![0..4, 4..8]);
        assert_eq!(text_groups(&rows(&[500, 10, 10]), 2), vec![0..1, 1..3]);
        assert_eq!(text_groups(&rows(&[10, 10, 500]), 2), vec![0..2, 2..3]);
        assert_eq!(text_groups(&rows(&[5, 5, 5]), 3), vec![0..1, 1..2, 2..3]);
        // fewer texts than threads; one text; none
        assert_eq!(text_groups(&rows(&[7, 9]), 16), vec![0..1, 1..2]);
        assert_eq!(text_groups(&rows(&[7]), 4), vec![0..1]);
        assert_eq!(text_groups(&rows(&[]), 4), Vec::<std::ops::Range<usize>>::new());
        // a group's share reached early still leaves a text for every later group
        assert_eq!(text_groups(&rows(&[900, 1, 1, 1]), 3), vec![0..1, 1..2, 2..4]);
    }

    /// The groups that run side by side on several threads give the bits one
    /// forward on one thread gives; an error in any group is the batch's error.
    #[test]
    fn groups_on_several_threads_give_the_same_bits() {
        let flat = CpuBert::from_weights(&tiny_bert_weights(), BertConfig { heads: 2, layer_norm_eps: 1e-12 }).unwrap();
        let mut rows: Vec<Vec<u32>> = TINY_IDS.iter().map(|r| r.to_vec()).collect();
        rows.push(vec![]);
        rows.extend(TINY_IDS.iter().rev().map(|r| r.to_vec()));
        let on = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let one = on(1).install(|| flat.embed_ids(&rows)).unwrap();
        for threads in [2, 3, 16] {
            let many = on(threads).install(|| flat.embed_ids(&rows)).unwrap();
            assert!(one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits()), "{threads} threads");
            assert_eq!(many.len(), one.len());
        }
        rows.push(vec![1, 50, 2]);
        let err = on(3).install(|| flat.embed_ids(&rows)).unwrap_err().to_string();
        assert!(err.contains("token id 50"), "{err}");
    }

    #[test]
    fn refuses_ids_and_lengths_the_model_cannot_take() {
        let flat = CpuBert::from_weights(&tiny_bert_weights(), BertConfig { heads: 2, layer_norm_eps: 1e-12 }).unwrap();
        let err = flat.embed_ids(&[vec![1, 50, 2]]).unwrap_err().to_string();
        assert!(err.contains("token id 50") && err.contains("vocabulary of 50"), "{err}");
        let err = flat.embed_ids(&[vec![1; 17]]).unwrap_err().to_string();
        assert!(err.contains("17 tokens") && err.contains("16 positions"), "{err}");
        assert_eq!(flat.embed_ids(&[vec![]]).unwrap(), vec![0.0; 8]);
    }
}
