//! EfficientNet-Lite on the CPU without burn: the same network as
//! [`EffnetLite`](super::tensor::EffnetLite), channels-last (`[h·w, c]` per
//! image), with its folded weights packed once.
//!
//! A 1×1 convolution channels-last is a matrix product `[h·w, c_in] ·
//! [c_in, c_out]`: the expand, project and head convolutions (nearly all of
//! the arithmetic) run on the packed GEMM kernel with the bias, ReLU6 and the
//! residual fused around it. The stem (3×3, stride 2, three input channels)
//! is an im2col and one product; the depthwise convolutions
//! ([`depthwise`]) hold each pixel's channels in registers across the taps. Images run in parallel, each on one thread
//! at a time, with the products inside also split into bands when a thread is free.

use rayon::prelude::*;

use super::config::{fold, same_padding};
use super::depthwise::{self, Geometry};
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
    precision: crate::cpu::bf16::EncoderPrecision,
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
            precision: crate::cpu::bf16::EncoderPrecision::F32,
            spare: Default::default(),
        })
    }

    /// Runs the pointwise convolutions and the stem in `precision` (bf16 on
    /// AMX or AVX512-BF16 where asked; see [`crate::cpu::bf16`]); the depthwise
    /// convolutions and the classifier stay `f32`.
    pub fn set_precision(&mut self, precision: crate::cpu::bf16::EncoderPrecision) {
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
    pub fn precision(&self) -> crate::cpu::bf16::EncoderPrecision {
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
            .for_each(|(oy, row)| depthwise::row(x, &self.weight, &self.bias, &geometry, oy, row));
        (len, oh, ow)
    }
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
