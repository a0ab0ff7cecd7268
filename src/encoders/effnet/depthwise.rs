//! The depthwise convolutions of EfficientNet-Lite on the CPU, channels-last,
//! with bias and ReLU6: one output row at a time ([`row`]).
//!
//! On every CPU with AVX2 (AVX-512 ones included) each output pixel's
//! channels accumulate in 256-bit registers across the taps inside the image
//! ([`row_avx2`]); elsewhere the portable body ([`row_body`]) adds every tap
//! into the output in memory. Both start each channel from its bias and add
//! `input · tap` (a product, then a sum: no fused multiply-add) in the same
//! tap order, so they give the same bits.
//!
//! On an AVX-512 CPU (AMD Zen 5) the AVX2 loop took 2.1–2.5 ms for the
//! depthwise work of one 224 × 224 image against 3.2–3.8 ms for the body
//! compiled for AVX-512; the same loop on 512-bit registers (pairs of 16, 32
//! or 64 channels) took 2.3–2.5 ms, no faster, so there is one loop.

use crate::cpu::kernels::{SimdLevel, simd_level};

/// Shape of a depthwise convolution: input `[h, w, c]`, kernel, stride, the
/// "SAME" padding before the first row and column, output width.
pub(super) struct Geometry {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub top: usize,
    pub left: usize,
    pub ow: usize,
}

/// One output row `oy` (`row`: `[ow, c]`) of the depthwise convolution of
/// `x` `[h·w, c]` with `weight` `[k·k, c]` and `bias` `[c]`, then ReLU6: in
/// AVX2 registers wherever [`simd_level`] is AVX2 or above, the portable body
/// elsewhere; the same bits on both.
pub(super) fn row(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, oy: usize, row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_level() >= SimdLevel::Avx2 {
        // SAFETY: `simd_level` checked the CPU for AVX2 and FMA.
        return unsafe { row_avx2(x, weight, bias, g, oy, row) };
    }
    row_body(x, weight, bias, g, oy, row);
}

/// The portable row: every tap of every pixel added into the output in memory.
fn row_body(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, oy: usize, row: &mut [f32]) {
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

/// The taps of output pixel `(oy, ox)` whose input lies inside the image.
#[cfg(target_arch = "x86_64")]
struct Taps {
    ky: std::ops::Range<usize>,
    kx: std::ops::Range<usize>,
    oy: usize,
    ox: usize,
}

/// [`row_body`] on AVX2: per output pixel, its channels in blocks of
/// 32, 16 and 8 accumulate in registers over the taps inside the image (the
/// body adds every tap into memory: three loads and a store per eight channels
/// and tap, here two loads), the last `c mod 8` one at a time. With stride 1,
/// two neighbouring pixels whose taps all lie inside the image run together,
/// 16 channels at a time ([`pair_avx2`]): each tap's weights and
/// each input column are loaded once for both. Each channel still starts from
/// its bias and adds `input · tap` (a product, then a sum: no fused
/// multiply-add) in the same tap order, so the bits are the body's.
///
/// # Safety
/// AVX2 present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, oy: usize, row: &mut [f32]) {
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
                unsafe { pair_avx2::<2>(x, weight, bias, g, (ky.clone(), oy, ox), j, row) };
                j += 16;
            }
            for ox in [ox, ox + 1] {
                let taps = Taps { ky: ky.clone(), kx: 0..k, oy, ox };
                // SAFETY: as below.
                unsafe { pixel_avx2(x, weight, bias, g, &taps, j, &mut row[ox * c..][..c]) };
            }
            ox += 2;
        } else {
            let taps = Taps { ky: ky.clone(), kx: inside(ox, g.left, g.w), oy, ox };
            // SAFETY: the taps inside the image (`inside`); the assert above bounds the slices.
            unsafe { pixel_avx2(x, weight, bias, g, &taps, 0, &mut row[ox * c..][..c]) };
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
unsafe fn pixel_avx2(x: &[f32], weight: &[f32], bias: &[f32], g: &Geometry, taps: &Taps, from: usize, out: &mut [f32]) {
    let (c, k, s) = (g.c, g.kernel, g.stride);
    let mut j = from;
    // SAFETY (each block): as the caller promises, and `j + 8 V ≤ c`.
    while j + 32 <= c {
        unsafe { block_avx2::<4>(x, weight, bias, g, taps, j, out) };
        j += 32;
    }
    if j + 16 <= c {
        unsafe { block_avx2::<2>(x, weight, bias, g, taps, j, out) };
        j += 16;
    }
    if j + 8 <= c {
        unsafe { block_avx2::<1>(x, weight, bias, g, taps, j, out) };
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
unsafe fn pair_avx2<const V: usize>(
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

/// Channels `j..j + 8 V` of one output pixel, in `V` registers.
///
/// # Safety
/// AVX2 present; the taps inside the image, `j + 8 V ≤ c`, and `x`, `weight`,
/// `bias`, `out` as long as the geometry says.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const V: usize>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::effnet::config::same_padding;

    /// The AVX2 row gives the portable body's bits: channel counts that use
    /// every block width and the one-at-a-time rest, alone and after pairs of
    /// pixels (stride 1, odd and even numbers of inside pixels), 3×3 and 5×5,
    /// strides 1 and 2 with "SAME" padding on every side, and a NaN kept by
    /// the ReLU6 as `f32::clamp` keeps it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_row_gives_the_bodys_bits() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            crate::cpu::testing::skipped("the AVX2 depthwise row's check", "this CPU has no AVX2");
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
            (10, 9, 77, 5, 1),
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
                row_body(&x, &weight, &bias, &g, oy, &mut want);
                // SAFETY: AVX2 and FMA detected above.
                unsafe { row_avx2(&x, &weight, &bias, &g, oy, &mut got) };
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
}
