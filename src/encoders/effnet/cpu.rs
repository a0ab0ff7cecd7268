//! EfficientNet-Lite on the CPU without burn: the same network as
//! [`EffnetLite`](super::tensor::EffnetLite), channels-last (`[h·w, c]` per
//! image), with its folded weights packed once.
//!
//! A 1×1 convolution channels-last is a matrix product `[h·w, c_in] ·
//! [c_in, c_out]`: the expand, project and head convolutions (nearly all of
//! the arithmetic) run on the packed GEMM kernel with the bias, ReLU6 and the
//! residual fused around it. The stem (3×3, stride 2, three input channels)
//! is an im2col and one product; the depthwise convolutions are direct loops
//! vectorised over the channels. Images run in parallel, each on one thread
//! at a time, with the products inside also split into bands when a thread is free.

use rayon::prelude::*;

use super::config::{fold, same_padding};
use crate::cpu::kernels::wide_variant;
use crate::cpu::packed::PackedMatrix;
use crate::encoders::spare::Spare;
use crate::encoders::weights::Weights;
use crate::error::{GmuError, Result};

/// A 1×1 convolution: `[c_in, c_out]` packed, bias `[c_out]`.
struct Pointwise {
    weight: PackedMatrix,
    bias: Vec<f32>,
}

impl Pointwise {
    fn load(w: &Weights, conv: &str, bn: &str) -> Result<Pointwise> {
        let (weight, bias, [out, inp, k, _]) = fold(w, conv, bn)?;
        if k != 1 {
            return Err(GmuError::data(w.path(), format!("'{conv}' has a {k}×{k} kernel, expected 1×1")));
        }
        Ok(Pointwise { weight: PackedMatrix::from_out_in(&weight, out, inp), bias })
    }

    fn channels(&self) -> usize {
        self.bias.len()
    }

    /// `x` `[rows, c_in]` → `out` `[rows, c_out]`: `x · W + b`, or with
    /// `residual` `out + b + x · W` (`out` holding the block's input), then
    /// ReLU6 if `relu6`.
    fn forward(&self, x: &[f32], out: &mut [f32], residual: bool, relu6: bool) {
        let finish: fn(&mut [f32]) = if relu6 { relu6_in_place } else { |_| {} };
        self.weight.affine_and(x, &self.bias, out, residual, finish);
    }

    /// Output values for `rows` rows.
    fn out_len(&self, x: &[f32]) -> usize {
        x.len() / self.weight.k() * self.channels()
    }
}

/// A depthwise convolution: weights `[k, k, c]` (channels innermost), bias `[c]`.
struct Depthwise {
    weight: Vec<f32>,
    bias: Vec<f32>,
    kernel: usize,
    stride: usize,
}

/// The stem: `[3·k·k, c_out]` packed (columns in PyTorch's `(c, ky, kx)` order).
struct Stem {
    weight: PackedMatrix,
    bias: Vec<f32>,
    kernel: usize,
    stride: usize,
}

struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    skip: bool,
}

/// EfficientNet-Lite with frozen, folded, packed weights, for the CPU.
pub struct CpuEffnet {
    stem: Stem,
    blocks: Vec<Block>,
    head: Pointwise,
    /// `_fc`: `[1280, classes]` row-major (`[in, out]`), bias `[classes]`.
    classifier: Option<(Vec<f32>, Vec<f32>)>,
    /// What [`set_precision`](Self::set_precision) gave (`F32` until called).
    precision: crate::cpu::amx::EncoderPrecision,
    /// Activation buffers of finished images, for the next ones (a 224 × 224 image needs about
    /// 10 MB; fresh pages for every layer of every image cost zeroing and page faults).
    spare: Spare<Buffers>,
}

/// One image's activations: the network's running value, two intermediates
/// (the expansion, the depthwise output) and the stem's patches. Each grows
/// to the largest layer it has held; every value a layer reads was written
/// by the layer before.
#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    expanded: Vec<f32>,
    z: Vec<f32>,
    patches: Vec<f32>,
}

/// The first `n` values of `buffer`, grown (with zeros) to hold them.
fn prefix(buffer: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buffer.len() < n {
        buffer.resize(n, 0.0);
    }
    &mut buffer[..n]
}

impl CpuEffnet {
    /// Builds the network from lukemelas-style tensors, as
    /// [`EffnetLite::from_weights`](super::tensor::EffnetLite::from_weights) does.
    pub fn from_weights(w: &Weights, strides: &[usize]) -> Result<CpuEffnet> {
        let n_blocks = (0..).take_while(|i| w.has(&format!("_blocks.{i}._depthwise_conv.weight"))).count();
        if n_blocks != strides.len() {
            return Err(GmuError::data(
                w.path(),
                format!("{n_blocks} blocks, expected {} (EfficientNet-Lite0)", strides.len()),
            ));
        }
        let (weight, bias, [out, inp, k, _]) = fold(w, "_conv_stem", "_bn0")?;
        let stem = Stem { weight: PackedMatrix::from_out_in(&weight, out, inp * k * k), bias, kernel: k, stride: 2 };
        let mut channels = out;
        let mut blocks = Vec::with_capacity(n_blocks);
        for (i, &stride) in strides.iter().enumerate() {
            let p = format!("_blocks.{i}");
            let expand = if w.has(&format!("{p}._expand_conv.weight")) {
                Some(Pointwise::load(w, &format!("{p}._expand_conv"), &format!("{p}._bn0"))?)
            } else {
                None
            };
            let (weight, bias, [c, per_group, k, _]) = fold(w, &format!("{p}._depthwise_conv"), &format!("{p}._bn1"))?;
            if per_group != 1 {
                return Err(GmuError::data(
                    w.path(),
                    format!("'{p}._depthwise_conv' has {per_group} inputs per group, expected 1 (depthwise)"),
                ));
            }
            // [c, 1, k, k] → [k, k, c]
            let mut channels_last = vec![0f32; weight.len()];
            for ch in 0..c {
                for tap in 0..k * k {
                    channels_last[tap * c + ch] = weight[ch * k * k + tap];
                }
            }
            let depthwise = Depthwise { weight: channels_last, bias, kernel: k, stride };
            let project = Pointwise::load(w, &format!("{p}._project_conv"), &format!("{p}._bn2"))?;
            let skip = stride == 1 && project.channels() == channels;
            channels = project.channels();
            blocks.push(Block { expand, depthwise, project, skip });
        }
        let head = Pointwise::load(w, "_conv_head", "_bn1")?;
        let classifier = match w.shape("_fc.weight") {
            Some(s) => {
                let classes = s[0];
                let fc = w.values("_fc.weight", &[classes, head.channels()])?;
                let mut in_out = vec![0f32; fc.len()];
                for o in 0..classes {
                    for i in 0..head.channels() {
                        in_out[i * classes + o] = fc[o * head.channels() + i];
                    }
                }
                Some((in_out, w.values("_fc.bias", &[classes])?.to_vec()))
            }
            None => None,
        };
        Ok(CpuEffnet {
            stem,
            blocks,
            head,
            classifier,
            precision: crate::cpu::amx::EncoderPrecision::F32,
            spare: Default::default(),
        })
    }

    /// Runs the pointwise convolutions and the stem in `precision` (bf16 on
    /// AMX where asked; see [`crate::cpu::amx`]); the depthwise
    /// convolutions and the classifier stay `f32`.
    pub fn set_precision(&mut self, precision: crate::cpu::amx::EncoderPrecision) {
        self.stem.weight.set_precision(precision);
        for block in &mut self.blocks {
            if let Some(expand) = &mut block.expand {
                expand.weight.set_precision(precision);
            }
            block.project.weight.set_precision(precision);
        }
        self.precision = self.head.weight.set_precision(precision);
    }

    /// The precision the pointwise convolutions run in.
    pub fn precision(&self) -> crate::cpu::amx::EncoderPrecision {
        self.precision
    }

    /// Width of the pooled features (1280).
    pub fn features(&self) -> usize {
        self.head.channels()
    }

    /// Pooled features `[images.len(), 1280]`, row-major, of images `[3, h, w]`
    /// each (normalised `(x − 127)/128`, channels first as [`preprocess`](crate::encoders::image::preprocess) gives them).
    pub fn forward(&self, images: &[Vec<f32>], h: usize, w: usize) -> Vec<f32> {
        images.par_iter().flat_map_iter(|image| self.image(image, h, w)).collect()
    }

    /// One image's pooled features.
    fn image(&self, image: &[f32], h: usize, w: usize) -> Vec<f32> {
        assert_eq!(image.len(), 3 * h * w, "an image of {} values is not [3, {h}, {w}]", image.len());
        let mut buffers = self.spare.take();
        let Buffers { x, expanded, z, patches } = &mut buffers;
        // `len`: how many values of `x` are the running value
        let (mut len, mut h, mut w) = self.stem(image, h, w, patches, x);
        for block in &self.blocks {
            let input = match &block.expand {
                Some(expand) => {
                    let out = prefix(expanded, expand.out_len(&x[..len]));
                    expand.forward(&x[..len], out, false, true);
                    &out[..]
                }
                None => &x[..len],
            };
            let (z_len, oh, ow) = block.depthwise.forward(input, h, w, z);
            let z = &z[..z_len];
            let out_len = block.project.out_len(z);
            if block.skip {
                // the residual in place: x ← x + b + z·W
                block.project.forward(z, &mut x[..out_len], true, false);
            } else {
                block.project.forward(z, prefix(expanded, out_len), false, false);
                std::mem::swap(x, expanded);
            }
            (len, h, w) = (out_len, oh, ow);
        }
        let head = prefix(expanded, self.head.out_len(&x[..len]));
        self.head.forward(&x[..len], head, false, true);
        let c = self.head.channels();
        let mut pooled = vec![0f32; c];
        for row in head.chunks_exact(c) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        let n = (h * w) as f32;
        pooled.iter_mut().for_each(|p| *p /= n);
        self.spare.give(buffers);
        pooled
    }

    /// Stem: im2col of the "SAME"-padded image `[3, h, w]` into `patches`, one
    /// product into `out`, ReLU6; returns the output's length, height and width.
    fn stem(
        &self,
        image: &[f32],
        h: usize,
        w: usize,
        patches: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> (usize, usize, usize) {
        let Stem { weight, bias, kernel: k, stride } = &self.stem;
        let ((oh, top, _), (ow, left, _)) = (same_padding(h, *k, *stride), same_padding(w, *k, *stride));
        let cols = weight.k();
        let patches = prefix(patches, oh * ow * cols);
        // every tap written: the image's value, or 0 in the padding
        for oy in 0..oh {
            for ox in 0..ow {
                let patch = &mut patches[(oy * ow + ox) * cols..][..cols];
                for c in 0..3 {
                    for ky in 0..*k {
                        let iy = (oy * stride + ky).checked_sub(top).filter(|&y| y < h);
                        for kx in 0..*k {
                            let ix = (ox * stride + kx).checked_sub(left).filter(|&x| x < w);
                            patch[c * k * k + ky * k + kx] = match (iy, ix) {
                                (Some(iy), Some(ix)) => image[c * h * w + iy * w + ix],
                                _ => 0.0,
                            };
                        }
                    }
                }
            }
        }
        let len = oh * ow * bias.len();
        weight.affine_and(patches, bias, prefix(out, len), false, relu6_in_place);
        (len, oh, ow)
    }

    /// ImageNet logits of one feature row, if the file has `_fc`.
    pub fn classify(&self, features: &[f32]) -> Option<Vec<f32>> {
        let (weight, bias) = self.classifier.as_ref()?;
        let classes = bias.len();
        let mut logits = bias.clone();
        for (i, f) in features.iter().enumerate() {
            logits.iter_mut().zip(&weight[i * classes..][..classes]).for_each(|(l, w)| *l += f * w);
        }
        Some(logits)
    }
}

impl Depthwise {
    /// `x` `[h·w, c]` → `out` `[oh·ow, c]`, "SAME" padding, ReLU6; returns
    /// the output's length, height and width.
    fn forward(&self, x: &[f32], h: usize, w: usize, out: &mut Vec<f32>) -> (usize, usize, usize) {
        let c = self.bias.len();
        let ((oh, top, _), (ow, left, _)) =
            (same_padding(h, self.kernel, self.stride), same_padding(w, self.kernel, self.stride));
        let len = oh * ow * c;
        let geometry = Geometry { h, w, c, kernel: self.kernel, stride: self.stride, top, left, ow };
        // rows of output in parallel when a thread is free (each row written whole)
        prefix(out, len)
            .par_chunks_mut(ow * c)
            .enumerate()
            .for_each(|(oy, row)| depthwise_row(x, &self.weight, &self.bias, &geometry, oy, row));
        (len, oh, ow)
    }
}

/// Shape of a depthwise convolution: input `[h, w, c]`, kernel, stride, the
/// "SAME" padding before the first row and column, output width.
struct Geometry {
    h: usize,
    w: usize,
    c: usize,
    kernel: usize,
    stride: usize,
    top: usize,
    left: usize,
    ow: usize,
}

/// One output row `oy` (`[ow, c]`) of a depthwise convolution, with bias and
/// ReLU6: on AVX2 with each pixel's channels held in registers across the
/// taps ([`depthwise_row_avx2`]), elsewhere [`depthwise_row_body`] vectorised by
/// the compiler. The same operations in the same order either way, so the same bits.
fn depthwise_row(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, oy: usize, row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::kernels::simd_level() == crate::cpu::kernels::SimdLevel::Avx2 {
        // SAFETY: `simd_level` checked the CPU for AVX2 and FMA.
        unsafe { depthwise_row_avx2(x, weight, bias, g, oy, row) };
        return;
    }
    depthwise_row_wide(x, weight, bias, g, oy, row);
}

wide_variant!(
    /// [`depthwise_row_body`] compiled for the CPU's vector width.
    fn depthwise_row_wide(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, oy: usize, row: &mut [f32]) = depthwise_row_body
);

#[inline(always)]
fn depthwise_row_body(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, oy: usize, row: &mut [f32]) {
    let (c, k) = (g.c, g.kernel);
    for ox in 0..g.ow {
        let out = &mut row[ox * c..][..c];
        out.copy_from_slice(bias);
        for ky in 0..k {
            let Some(iy) = (oy * g.stride + ky).checked_sub(g.top).filter(|&y| y < g.h) else { continue };
            for kx in 0..k {
                let Some(ix) = (ox * g.stride + kx).checked_sub(g.left).filter(|&x| x < g.w) else { continue };
                let input = &x[(iy * g.w + ix) * c..][..c];
                let taps = &weight[(ky * k + kx) * c..][..c];
                for ((o, v), t) in out.iter_mut().zip(input).zip(taps) {
                    *o += v * t;
                }
            }
        }
        for o in out.iter_mut() {
            *o = o.clamp(0.0, 6.0);
        }
    }
}

/// [`depthwise_row_body`] on AVX2: per output pixel, its channels in blocks of
/// 32, 16 and 8 accumulate in registers over the taps inside the image (the
/// body adds every tap into memory: three loads and a store per eight channels
/// and tap, here two loads), the last `c mod 8` one at a time. With stride 1,
/// two neighbouring pixels whose taps all lie inside the image run together,
/// 16 channels at a time ([`depthwise_pair_avx2`]): each tap's weights and
/// each input column are loaded once for both. Each channel still starts from
/// its bias and adds `input · tap` (a product, then a sum: no fused
/// multiply-add) in the same tap order, so the bits are the body's.
///
/// # Safety
/// AVX2 present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_row_avx2(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, oy: usize, row: &mut [f32]) {
    let (c, k, s) = (g.c, g.kernel, g.stride);
    assert!(x.len() >= g.h * g.w * c && weight.len() >= k * k * c && bias.len() >= c && row.len() >= g.ow * c);
    // the taps whose input lies inside the image: `pad − o·s ≤ tap < n + pad − o·s`
    let inside =
        |o: usize, pad: usize, n: usize| pad.saturating_sub(o * s).min(k)..(n + pad).saturating_sub(o * s).min(k);
    let ky = inside(oy, g.top, g.h);
    let whole = |o: usize| o < g.ow && inside(o, g.left, g.w).len() == k;
    let mut ox = 0;
    while ox < g.ow {
        if s == 1 && c >= 16 && whole(ox) && whole(ox + 1) {
            let mut j = 0;
            while j + 16 <= c {
                // SAFETY: stride 1, both pixels' taps inside the image (`whole`), `j + 16 ≤ c`;
                // the assert above bounds the slices by the geometry.
                unsafe { depthwise_pair_avx2::<2>(x, weight, bias, g, (ky.clone(), oy, ox), j, row) };
                j += 16;
            }
            for ox in [ox, ox + 1] {
                let taps = Taps { ky: ky.clone(), kx: 0..k, oy, ox };
                // SAFETY: as below.
                unsafe { depthwise_pixel_avx2(x, weight, bias, g, &taps, j, &mut row[ox * c..][..c]) };
            }
            ox += 2;
        } else {
            let taps = Taps { ky: ky.clone(), kx: inside(ox, g.left, g.w), oy, ox };
            // SAFETY: the taps inside the image (`inside`); the assert above bounds the slices.
            unsafe { depthwise_pixel_avx2(x, weight, bias, g, &taps, 0, &mut row[ox * c..][..c]) };
            ox += 1;
        }
    }
}

/// Channels `from..c` of one output pixel `out` `[c]`: blocks of 32, 16 and 8
/// in registers, then one at a time.
///
/// # Safety
/// AVX2 present; the taps inside the image; `x`, `weight`, `bias` as long as the geometry says.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_pixel_avx2(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    g: &Geometry,
    taps: &Taps,
    from: usize,
    out: &mut [f32],
) {
    let (c, k, s) = (g.c, g.kernel, g.stride);
    let mut j = from;
    // SAFETY (each block): as the caller promises, and `j + 8 V ≤ c`.
    while j + 32 <= c {
        unsafe { depthwise_block_avx2::<4>(x, weight, bias, g, taps, j, out) };
        j += 32;
    }
    if j + 16 <= c {
        unsafe { depthwise_block_avx2::<2>(x, weight, bias, g, taps, j, out) };
        j += 16;
    }
    if j + 8 <= c {
        unsafe { depthwise_block_avx2::<1>(x, weight, bias, g, taps, j, out) };
        j += 8;
    }
    for (j, o) in out.iter_mut().enumerate().skip(j) {
        let mut acc = bias[j];
        for ky in taps.ky.clone() {
            let iy = taps.oy * s + ky - g.top;
            for kx in taps.kx.clone() {
                let ix = taps.ox * s + kx - g.left;
                acc += x[(iy * g.w + ix) * c + j] * weight[(ky * k + kx) * c + j];
            }
        }
        *o = acc.clamp(0.0, 6.0);
    }
}

/// Channels `j..j + 8 V` of output pixels `ox` and `ox + 1` of row `oy`
/// (stride 1), in `2 V` registers: along each row of taps, the input column
/// that is the second pixel's tap `kx` is the first pixel's tap `kx + 1`, so
/// it is loaded once, and so is each tap's weight.
///
/// # Safety
/// AVX2 present; stride 1; every tap of both pixels inside the image along
/// `x` (rows `ky` inside it too); `j + 8 V ≤ c`; the slices as long as the geometry says.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_pair_avx2<const V: usize>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    g: &Geometry,
    (ky, oy, ox): (std::ops::Range<usize>, usize, usize),
    j: usize,
    row: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (c, k) = (g.c, g.kernel);
    // SAFETY: bounds as the caller promises.
    unsafe {
        let b = bias.as_ptr().add(j);
        let mut first: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(b.add(8 * v)));
        let mut second = first;
        for ky in ky {
            let iy = oy + ky - g.top;
            let input = x.as_ptr().add((iy * g.w + ox - g.left) * c + j);
            let taps = weight.as_ptr().add(ky * k * c + j);
            let mut here: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(input.add(8 * v)));
            for kx in 0..k {
                let next: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(input.add((kx + 1) * c + 8 * v)));
                for v in 0..V {
                    let tap = _mm256_loadu_ps(taps.add(kx * c + 8 * v));
                    first[v] = _mm256_add_ps(first[v], _mm256_mul_ps(here[v], tap));
                    second[v] = _mm256_add_ps(second[v], _mm256_mul_ps(next[v], tap));
                }
                here = next;
            }
        }
        let (out0, out1) = (row.as_mut_ptr().add(ox * c + j), row.as_mut_ptr().add((ox + 1) * c + j));
        for v in 0..V {
            _mm256_storeu_ps(out0.add(8 * v), relu6_avx2(first[v]));
            _mm256_storeu_ps(out1.add(8 * v), relu6_avx2(second[v]));
        }
    }
}

/// The taps of output pixel `(oy, ox)` whose input lies inside the image.
#[cfg(target_arch = "x86_64")]
struct Taps {
    ky: std::ops::Range<usize>,
    kx: std::ops::Range<usize>,
    oy: usize,
    ox: usize,
}

/// Channels `j..j + 8 V` of one output pixel, in `V` registers.
///
/// # Safety
/// AVX2 present; the taps inside the image, `j + 8 V ≤ c`, and `x`, `weight`,
/// `bias`, `out` as long as the geometry says.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_block_avx2<const V: usize>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    g: &Geometry,
    taps: &Taps,
    j: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (c, k, s) = (g.c, g.kernel, g.stride);
    // SAFETY: bounds as the caller promises.
    unsafe {
        let b = bias.as_ptr().add(j);
        let mut acc: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(b.add(8 * v)));
        for ky in taps.ky.clone() {
            let iy = taps.oy * s + ky - g.top;
            for kx in taps.kx.clone() {
                let ix = taps.ox * s + kx - g.left;
                let input = x.as_ptr().add((iy * g.w + ix) * c + j);
                let tap = weight.as_ptr().add((ky * k + kx) * c + j);
                for (v, a) in acc.iter_mut().enumerate() {
                    let product = _mm256_mul_ps(_mm256_loadu_ps(input.add(8 * v)), _mm256_loadu_ps(tap.add(8 * v)));
                    *a = _mm256_add_ps(*a, product);
                }
            }
        }
        let o = out.as_mut_ptr().add(j);
        for (v, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(o.add(8 * v), relu6_avx2(*a));
        }
    }
}

/// `min(6, max(0, a))` per lane, keeping a NaN and −0 as `f32::clamp` does: with
/// these operand orders, each of `max` and `min` returns its second operand where
/// either is NaN or the two are equal.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn relu6_avx2(a: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    _mm256_min_ps(_mm256_set1_ps(6.0), _mm256_max_ps(_mm256_setzero_ps(), a))
}

wide_variant!(
    /// `x ← min(max(x, 0), 6)`.
    fn relu6_in_place(x: &mut [f32]) = relu6_body
);

#[inline(always)]
fn relu6_body(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = v.clamp(0.0, 6.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::effnet::tests::{TINY_REFERENCE, tiny_effnet_weights, tiny_input};

    /// The tiny network against PyTorch's numbers: odd sizes (17×23) exercise
    /// the asymmetric padding of the stem and of a stride-2 5×5 depthwise
    /// convolution; block 0 has a skip.
    #[test]
    fn tiny_effnet_matches_pytorch() {
        let net = CpuEffnet::from_weights(&tiny_effnet_weights(), &[1, 2]).unwrap();
        let input = tiny_input();
        let images: Vec<Vec<f32>> = input.chunks(3 * 17 * 23).map(<[f32]>::to_vec).collect();
        let features = net.forward(&images, 17, 23);
        let want_f: Vec<f32> = TINY_REFERENCE.0.iter().flatten().copied().collect();
        let worst = features.iter().zip(&want_f).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert_eq!(features.len(), 2 * 16);
        assert!(worst < 1e-5, "features: max abs difference {worst}");
        for (r, want) in TINY_REFERENCE.1.iter().enumerate() {
            let logits = net.classify(&features[r * 16..(r + 1) * 16]).unwrap();
            let worst = logits.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "logits of image {r}: max abs difference {worst}");
        }
    }

    /// The AVX2 depthwise row gives the portable body's bits: channel counts
    /// that use every block width and the one-at-a-time rest, alone and after
    /// pairs of pixels (stride 1, odd and even numbers of inside pixels), 3×3
    /// and 5×5, strides 1 and 2 with "SAME" padding on every side, and a NaN
    /// kept by the ReLU6 as `f32::clamp` keeps it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn depthwise_avx2_gives_the_bodys_bits() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("SKIPPED: no AVX2 on this CPU");
            return;
        }
        let value = |i: usize, scale: f32| ((i * 2_654_435_761) % 1000) as f32 / 1000.0 * scale - scale / 2.0;
        let shapes = [
            (9, 7, 61, 3, 1),
            (8, 11, 44, 5, 2),
            (5, 5, 8, 3, 2),
            (6, 4, 3, 5, 1),
            (12, 11, 32, 5, 1),
            (7, 9, 24, 3, 1),
        ];
        for (h, w, c, kernel, stride) in shapes {
            let ((oh, top, _), (ow, left, _)) = (same_padding(h, kernel, stride), same_padding(w, kernel, stride));
            let g = Geometry { h, w, c, kernel, stride, top, left, ow };
            let mut x: Vec<f32> = (0..h * w * c).map(|i| value(i, 8.0)).collect();
            x[5] = f32::NAN;
            let weight: Vec<f32> = (0..kernel * kernel * c).map(|i| value(i + 7, 1.0)).collect();
            let bias: Vec<f32> = (0..c).map(|i| value(i + 3, 2.0)).collect();
            for oy in 0..oh {
                let (mut want, mut got) = (vec![1f32; ow * c], vec![2f32; ow * c]);
                depthwise_row_body(&x, &weight, &bias, &g, oy, &mut want);
                // SAFETY: AVX2 and FMA detected above.
                unsafe { depthwise_row_avx2(&x, &weight, &bias, &g, oy, &mut got) };
                let first = got.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits());
                assert_eq!(
                    first,
                    None,
                    "{h}x{w}x{c} k{kernel} s{stride}, row {oy}: {:?}",
                    first.map(|i| (got[i], want[i]))
                );
            }
        }
    }

    /// Activation buffers are kept between images: a small image after a large
    /// one (the buffers hold the large one's values past the small one's), then
    /// the large one again, give the bits of a network that has seen nothing.
    #[test]
    fn kept_buffers_do_not_leak_into_the_next_image() {
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let large: Vec<Vec<f32>> = tiny_input().chunks(3 * 17 * 23).map(<[f32]>::to_vec).collect();
        let small: Vec<Vec<f32>> = large.iter().map(|image| image[..3 * 9 * 11].to_vec()).collect();
        let fresh = || CpuEffnet::from_weights(&tiny_effnet_weights(), &[1, 2]).unwrap();
        let (want_large, want_small) = (bits(fresh().forward(&large, 17, 23)), bits(fresh().forward(&small, 9, 11)));
        let net = fresh();
        for _ in 0..2 {
            assert_eq!(bits(net.forward(&large, 17, 23)), want_large);
            assert_eq!(bits(net.forward(&small, 9, 11)), want_small);
        }
        assert!(net.spare.kept() > 0, "the buffers are kept");
    }
}
