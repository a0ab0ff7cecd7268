//! A frozen weight matrix packed once for a 6×16 AVX2 + FMA kernel (a 12×32
//! AVX-512 one where the CPU has it), and the product `out[m, n] += x[m, k] · W[k, n]` on it.
//!
//! Inference with fixed weights (the pretrained encoders) multiplies the same
//! matrices again and again: packing them at load time, in the order the
//! kernel reads them, takes the packing out of every call, and a kernel that
//! broadcasts the activations straight from their rows needs no packing of
//! the other side either. The `gemm` crate packs both sides on every call and
//! reached 55–63 GFLOP/s on one core of the build machine (AVX2, 95 GFLOP/s
//! peak); this kernel reaches more (see `BENCHMARKS.md`, MiniLM).
//!
//! Layout: the `k` rows are cut into blocks of [`KC`]; within a block, the
//! `n` columns into panels of [`NR`] = 16 (the last one zero-padded), each
//! stored `[kc][16]` contiguously, so the kernel reads a panel as one stream.
//! The kernel keeps a 6 × 16 tile of `out` in twelve ymm registers over a
//! block and adds it to `out` at the end; the AVX-512 kernel a 12 × 32 tile
//! (two panels) in 24 zmm registers. Rows of `out` are split among rayon's
//! threads in bands of [`MC`].
//!
//! Every kernel computes each output as the same chain of fused
//! multiply-adds over `k` (from zero within a block, then added to `out`),
//! so the AVX2 and AVX-512 kernels give the same bits, and a row's result
//! never depends on the other rows of the call (the flat inference pass and
//! the server's batching rely on it; both are tested).

use rayon::prelude::*;

use super::bf16::{Bf16Matrix, EncoderPrecision, assert_whole_rows};
use super::kernels::{SimdLevel, gelu_slice, simd_level};

/// Columns of a panel: two ymm registers.
pub const NR: usize = 16;
/// Rows of the register tile.
pub const MR: usize = 6;
/// Rows of `W` per block: a panel (`KC × 16` floats, 16 KiB) stays in L1 while a band's rows pass over it.
pub const KC: usize = 256;
/// Rows of `x` per band: one rayon task, whose `MC × KC` activations stay in L2.
pub const MC: usize = 72;
/// Rows of the AVX-512 register tile (two panels wide).
pub const MR_512: usize = 12;
/// How many steps of `k` ahead the AVX-512 tile prefetches its panels (one cache line
/// per panel and step): 8–24 measured alike on MiniLM, 0 about 7 % slower.
const PREFETCH: usize = 12;

/// `W` `[k, n]`, packed.
#[derive(Debug)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    /// `n` rounded up to whole panels.
    n_padded: usize,
    /// The packed values start at `data[offset]`, on a 64-byte boundary, so
    /// the kernel's 32-byte loads never straddle a cache line.
    data: Vec<f32>,
    offset: usize,
    /// The same matrix in bf16 (AMX or AVX512-BF16), where [`set_precision`](Self::set_precision) asked for it
    /// (the `f32` copy is then dropped and every product runs on this one).
    bf16: Option<Box<Bf16Matrix>>,
}

impl PackedMatrix {
    /// Packs `W = wᵀ` for `w` stored `[n, k]` row-major (a PyTorch `Linear`
    /// weight, `[out, in]`), so that [`matmul_acc`](Self::matmul_acc) computes `x · wᵀ`.
    pub fn from_out_in(w: &[f32], n: usize, k: usize) -> PackedMatrix {
        assert_eq!(w.len(), n * k, "weight of {} values is not [{n}, {k}]", w.len());
        let mut packed = PackedMatrix::empty();
        packed.repack_columns(k, n, |j| &w[j * k..][..k]);
        packed
    }

    /// Packs `W` stored `[k, n]` row-major.
    pub fn from_in_out(w: &[f32], k: usize, n: usize) -> PackedMatrix {
        assert_eq!(w.len(), n * k, "weight of {} values is not [{k}, {n}]", w.len());
        let mut packed = PackedMatrix::empty();
        packed.repack_rows(k, n, |i| &w[i * n..][..n]);
        packed
    }

    /// A `[0, 0]` matrix, to be filled by [`repack_rows`](Self::repack_rows) or
    /// [`repack_columns`](Self::repack_columns).
    pub fn empty() -> PackedMatrix {
        PackedMatrix { k: 0, n: 0, n_padded: 0, data: Vec::new(), offset: 0, bf16: None }
    }

    fn reset(&mut self, k: usize, n: usize) {
        self.bf16 = None;
        self.n_padded = n.div_ceil(NR) * NR;
        (self.k, self.n) = (k, n);
        let len = k * self.n_padded;
        self.data.clear();
        self.data.resize(len + 16, 0.0);
        self.offset = self.data.as_ptr().align_offset(64).min(16);
    }

    /// The packed values.
    fn packed(&self) -> &[f32] {
        &self.data[self.offset..][..self.k * self.n_padded]
    }

    fn packed_mut(&mut self) -> &mut [f32] {
        let len = self.k * self.n_padded;
        &mut self.data[self.offset..][..len]
    }

    /// Packs `W` `[k, n]` given by its rows (`row(i)`: at least `n` values),
    /// into this matrix's memory (reused from one small product to the next).
    pub fn repack_rows<'a>(&mut self, k: usize, n: usize, row: impl Fn(usize) -> &'a [f32]) {
        self.reset(k, n);
        let n_padded = self.n_padded;
        let data = self.packed_mut();
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let block = &mut data[k0 * n_padded..][..kc * n_padded];
            for kk in 0..kc {
                let src = &row(k0 + kk)[..n];
                let mut chunks = src.chunks_exact(NR);
                for (p, src) in (&mut chunks).enumerate() {
                    // a whole panel's row as one array: an inline copy, not a call to `memcpy`
                    let dst: &mut [f32; NR] = (&mut block[p * kc * NR + kk * NR..][..NR]).try_into().unwrap();
                    *dst = src.try_into().unwrap();
                }
                let tail = chunks.remainder();
                if !tail.is_empty() {
                    block[(n / NR) * kc * NR + kk * NR..][..tail.len()].copy_from_slice(tail);
                }
            }
        }
    }

    /// Packs `W` `[k, n]` given by its columns (`column(j)`: at least `k`
    /// values; the rows of `Wᵀ`), into this matrix's memory: a transposition,
    /// in blocks of 16 × 16 in registers where the CPU has AVX-512.
    pub fn repack_columns<'a>(&mut self, k: usize, n: usize, column: impl Fn(usize) -> &'a [f32]) {
        self.reset(k, n);
        let n_padded = self.n_padded;
        let data = self.packed_mut();
        for p in 0..n_padded / NR {
            // the panel's columns, none past `n` (the padding stays zero)
            let columns: [&[f32]; NR] = std::array::from_fn(|jj| match p * NR + jj {
                j if j < n => &column(j)[..k],
                _ => &[],
            });
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let panel = &mut data[k0 * n_padded + p * kc * NR..][..kc * NR];
                #[cfg(target_arch = "x86_64")]
                if simd_level() == SimdLevel::Avx512 {
                    // SAFETY: the CPU has AVX-512 F (`simd_level`).
                    unsafe { transpose_into_panel(&columns, k0, panel) };
                    continue;
                }
                for (jj, column) in columns.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
                    for (kk, v) in column[k0..k0 + kc].iter().enumerate() {
                        panel[kk * NR + jj] = *v;
                    }
                }
            }
        }
    }

    /// Runs this matrix's products in `precision`: with
    /// [`EncoderPrecision::Bf16`], where a [`bf16_kernel`](super::bf16::bf16_kernel)
    /// runs, `W` is rounded to bf16 and its `f32` copy dropped; otherwise it
    /// stays as it is. For frozen weights only. Returns the precision it now runs in.
    pub fn set_precision(&mut self, precision: EncoderPrecision) -> EncoderPrecision {
        if self.bf16.is_some() {
            return EncoderPrecision::Bf16;
        }
        if precision == EncoderPrecision::Bf16 && super::bf16::bf16_kernel().is_some() && self.k > 0 {
            let (n_padded, packed) = (self.n_padded, self.packed());
            // element (i, j) in the f32 layout: block of `KC` rows, panel of `NR` columns
            let bf16 = Bf16Matrix::new(self.k, self.n, |i, j| {
                let (k0, kk) = (i / KC * KC, i % KC);
                let kc = KC.min(self.k - k0);
                packed[k0 * n_padded + (j / NR) * kc * NR + kk * NR + j % NR]
            });
            self.bf16 = Some(Box::new(bf16));
            self.data = Vec::new();
            self.offset = 0;
            return EncoderPrecision::Bf16;
        }
        EncoderPrecision::F32
    }

    /// The bf16 matrix, where [`set_precision`](Self::set_precision) made one
    /// (for callers that fuse products through bf16, as MiniLM's feed-forward does).
    pub fn bf16(&self) -> Option<&Bf16Matrix> {
        self.bf16.as_deref()
    }

    /// Rows of `W` (the inner dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `W` (the output width).
    pub fn n(&self) -> usize {
        self.n
    }

    /// `out[m, n] += x[m, k] · W`, both row-major and contiguous; rows split
    /// among rayon's threads in bands of [`MC`].
    pub fn matmul_acc(&self, x: &[f32], out: &mut [f32]) {
        if let Some(bf16) = &self.bf16 {
            return bf16.matmul_acc(x, out);
        }
        self.for_each_band(x, out, Start::Add, |_| {});
    }

    /// A layer: `out = x · W + b`, or with `accumulate` `out += x · W + b`
    /// (`out` holding a residual); `x` `[m, k]`, `bias` `[n]`, `out` `[m, n]`,
    /// row-major. Split among rayon's threads in bands of [`MC`] rows; each
    /// band takes its bias and then its product while its rows of `out` are
    /// still in cache (a whole-matrix bias pass first would send a large
    /// `out` to memory and back).
    pub fn affine(&self, x: &[f32], bias: &[f32], out: &mut [f32], accumulate: bool) {
        if let Some(bf16) = &self.bf16 {
            return bf16.affine(x, bias, out, accumulate, false);
        }
        self.affine_then(x, bias, out, accumulate, |_| {});
    }

    /// `out = GELU(x · W + b)` (a transformer's feed-forward layer); in bf16
    /// in one pass over `out` (see [`Bf16Matrix::affine`]), in `f32` as
    /// [`affine`](Self::affine) with GELU over each band as soon as it is done.
    pub fn affine_gelu(&self, x: &[f32], bias: &[f32], out: &mut [f32]) {
        if let Some(bf16) = &self.bf16 {
            return bf16.affine(x, bias, out, false, true);
        }
        self.affine_then(x, bias, out, false, gelu_slice);
    }

    /// [`affine`](Self::affine), then `finish` (an activation) over the result:
    /// in `f32` over each band of `out` as soon as it is done, while it is in
    /// cache; in bf16 over the whole of `out` after the product.
    pub fn affine_and(&self, x: &[f32], bias: &[f32], out: &mut [f32], accumulate: bool, finish: fn(&mut [f32])) {
        if let Some(bf16) = &self.bf16 {
            bf16.affine(x, bias, out, accumulate, false);
            return finish(out);
        }
        self.affine_then(x, bias, out, accumulate, finish);
    }

    /// [`affine`](Self::affine) in `f32`, then `finish` over each band of `out`
    /// while the band is still in cache.
    fn affine_then(&self, x: &[f32], bias: &[f32], out: &mut [f32], accumulate: bool, finish: fn(&mut [f32])) {
        let n = self.n;
        assert_eq!(bias.len(), n, "a bias of {} values for W [{}, {n}]", bias.len(), self.k);
        // with a residual: (out + b) + x·W, the bias added as the first block of `k` stores
        let start = if accumulate { Start::AddBias(bias) } else { Start::Bias(bias) };
        self.for_each_band(x, out, start, finish);
    }

    /// `out[m, n] (+)= x[m, k] · W` in `f32` (the first block of `k` as `start`
    /// says), rows split among rayon's threads in bands of [`MC`]; each band of
    /// `out` goes through `after` just after its product, while it is in cache.
    fn for_each_band(&self, x: &[f32], out: &mut [f32], start: Start<'_>, after: impl Fn(&mut [f32]) + Send + Sync) {
        let (k, n) = (self.k, self.n);
        assert_whole_rows(x, out, k, n);
        let level = simd_level();
        out.par_chunks_mut(MC * n).zip(x.par_chunks(MC * k)).for_each(|(out, x)| {
            self.band(Band { x, lda: k, rows: x.len() / k, out: &mut *out, ldc: n }, start, level);
            after(out);
        });
    }

    /// `out[rows, n] (+)= x[rows, k] · W` on the calling thread, with `x`'s
    /// rows `lda` apart and `out`'s `ldc` apart (a head's columns of a wider
    /// matrix); `accumulate: false` overwrites `out`'s `n` columns. `x`'s rows
    /// may overlap (`lda < k`: the row triplets of [`cnn`](super::cnn)); they are only read.
    pub fn matmul_strided(&self, x: &[f32], lda: usize, rows: usize, out: &mut [f32], ldc: usize, accumulate: bool) {
        let (k, n) = (self.k, self.n);
        if rows == 0 {
            return;
        }
        assert!(
            ldc >= n && x.len() >= (rows - 1) * lda + k && out.len() >= (rows - 1) * ldc + n,
            "x or out too short for [{rows}, {k}] x [{k}, {n}]"
        );
        if let Some(bf16) = &self.bf16 {
            return bf16.band(x, lda, rows, out, ldc, accumulate);
        }
        let start = if accumulate { Start::Add } else { Start::Overwrite };
        self.band(Band { x, lda, rows, out, ldc }, start, simd_level());
    }

    /// One band of rows, on the calling thread, with the kernels of `level`.
    fn band(&self, band: Band<'_>, start: Start<'_>, level: SimdLevel) {
        #[cfg(target_arch = "x86_64")]
        if level == SimdLevel::Avx512 {
            self.band_avx512(band, start);
            return;
        }
        let wide = level >= SimdLevel::Avx2;
        let Band { x, lda, rows, out, ldc } = band;
        let (k, n) = (self.k, self.n);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let (add, bias) = start.at_block(k0);
            for p in 0..self.n_padded / NR {
                let panel = &self.packed()[k0 * self.n_padded + p * kc * NR..][..kc * NR];
                let cols = NR.min(n - p * NR);
                let bias = bias.map(|b| &b[p * NR..][..cols]);
                for i in (0..rows).step_by(MR) {
                    let r = MR.min(rows - i);
                    let a = &x[i * lda + k0..];
                    let c = &mut out[i * ldc + p * NR..];
                    Tile { a, lda, panel, kc, c, ldc, cols, add, bias }.run(r, wide);
                }
            }
        }
    }

    /// [`band`](Self::band) on the AVX-512 kernel: tiles of up to 12 rows by two panels.
    ///
    /// Per block of `k`, each tile's rows of `x` (12 × [`KC`] values, 12 KiB) stay in L1
    /// while the tile passes over every panel of the block, which streams from L2 (the
    /// kernel prefetches it). The other order, a pair of panels (32 KiB) held in L1
    /// while the band's rows pass over it, left too little of L1's 48 KiB for the rows:
    /// 8–12 % slower on MiniLM's `[8192, 384] · [384, 1152]` and `[384, 1536]` (BENCHMARKS.md).
    #[cfg(target_arch = "x86_64")]
    fn band_avx512(&self, band: Band<'_>, start: Start<'_>) {
        let Band { x, lda, rows, out, ldc } = band;
        let (k, n) = (self.k, self.n);
        let panels = self.n_padded / NR;
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let (add, bias) = start.at_block(k0);
            for i in (0..rows).step_by(MR_512) {
                let r = MR_512.min(rows - i);
                assert!(x.len() >= i * lda + (r - 1) * lda + k0 + kc, "x covers the tile");
                let a = x[i * lda + k0..].as_ptr();
                for p in (0..panels).step_by(2) {
                    let two = p + 1 < panels;
                    let block = &self.packed()[k0 * self.n_padded + p * kc * NR..][..kc * NR * (1 + usize::from(two))];
                    // the last panel's valid columns (every other panel of the tile is whole)
                    let last = NR.min(n - (p + usize::from(two)) * NR);
                    assert!(out.len() >= (i + r - 1) * ldc + (p + usize::from(two)) * NR + last, "out covers the tile");
                    let (b, c) = (block.as_ptr(), out[i * ldc + p * NR..].as_mut_ptr());
                    // the bias of these columns: as many values as `c`'s row has (`n` ≥ 16 (P − 1) + last)
                    let bias = bias.map_or(std::ptr::null(), |bias| bias[p * NR..].as_ptr());
                    macro_rules! go {
                        ($($r:literal)*) => {
                            match (r, two) {
                                $(
                                    ($r, true) => tile_avx512::<$r, 2>(a, lda, b, kc, c, ldc, last, (add, bias)),
                                    ($r, false) => tile_avx512::<$r, 1>(a, lda, b, kc, c, ldc, last, (add, bias)),
                                )*
                                _ => unreachable!("1 to 12 rows"),
                            }
                        };
                    }
                    // SAFETY: the CPU has AVX-512 F/BW/VL and FMA (`simd_level`); the asserts bound every access.
                    unsafe { go!(1 2 3 4 5 6 7 8 9 10 11 12) };
                }
            }
        }
    }
}

/// Rows `k0..k0 + kc` of 16 columns (each empty, or at least `k0 + kc` values)
/// written into `panel` `[kc][16]`: 16 × 16 blocks loaded a column per register
/// and transposed in registers (an empty column gives zeros).
///
/// # Safety
/// AVX-512 F present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_into_panel(columns: &[&[f32]; NR], k0: usize, panel: &mut [f32]) {
    use std::arch::x86_64::*;
    let kc = panel.len() / NR;
    for t0 in (0..kc).step_by(NR) {
        let rows = NR.min(kc - t0);
        let mask: __mmask16 = if rows == NR { 0xffff } else { (1 << rows) - 1 };
        // SAFETY: each load reads `rows` values of a column that has them (the mask
        // suppresses the rest); each store writes one of `panel`'s `kc` rows.
        unsafe {
            let r: [__m512; NR] = std::array::from_fn(|jj| match columns[jj] {
                [] => _mm512_setzero_ps(),
                column => _mm512_maskz_loadu_ps(mask, column[k0 + t0..][..rows].as_ptr()),
            });
            for (tt, row) in transpose16(r).iter().enumerate().take(rows) {
                _mm512_storeu_ps(panel[(t0 + tt) * NR..][..NR].as_mut_ptr(), *row);
            }
        }
    }
}

/// The transpose of a 16 × 16 block held a row per register: pairs of rows
/// interleaved by 32 and 64 bits within 128-bit lanes, then the lanes
/// exchanged twice.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [std::arch::x86_64::__m512; NR]) -> [std::arch::x86_64::__m512; NR] {
    use std::arch::x86_64::*;
    // rows a..p; within each 128-bit lane: t[2i] = a0 b0 a1 b1, t[2i+1] = a2 b2 a3 b3 (for rows 2i, 2i+1)
    let t: [__m512; NR] = std::array::from_fn(|i| {
        let (x, y) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 { _mm512_unpacklo_ps(x, y) } else { _mm512_unpackhi_ps(x, y) }
    });
    // u[4g + c] holds element c of each lane of rows 4g..4g+4 (c = 0..4)
    let u: [__m512; NR] = std::array::from_fn(|i| {
        let (g, c) = (i / 4, i % 4);
        let (x, y) = (_mm512_castps_pd(t[4 * g + c / 2]), _mm512_castps_pd(t[4 * g + 2 + c / 2]));
        _mm512_castpd_ps(if c % 2 == 0 { _mm512_unpacklo_pd(x, y) } else { _mm512_unpackhi_pd(x, y) })
    });
    // v[i], i = 4h + c: lanes (0, 2) (h = 0) or (1, 3) (h = 1) of groups 0 and 1 (i < 8) or 2 and 3
    let v: [__m512; NR] = std::array::from_fn(|i| {
        let (half, h, c) = (i / 8, (i / 4) % 2, i % 4);
        let (x, y) = (u[8 * half + c], u[8 * half + 4 + c]);
        if h == 0 { _mm512_shuffle_f32x4::<0x88>(x, y) } else { _mm512_shuffle_f32x4::<0xdd>(x, y) }
    });
    // column j: lane j / 4 of every group, element j % 4
    std::array::from_fn(|j| {
        let (c, h) = (j % 4, (j / 4) % 2);
        let (x, y) = (v[4 * h + c], v[8 + 4 * h + c]);
        if j < 8 { _mm512_shuffle_f32x4::<0x88>(x, y) } else { _mm512_shuffle_f32x4::<0xdd>(x, y) }
    })
}

/// What the first block of `k` does with `out` (the later blocks add to it).
#[derive(Clone, Copy)]
enum Start<'a> {
    /// `out += x·W`.
    Add,
    /// `out = x·W`.
    Overwrite,
    /// `out = x·W + b`, `b` `[n]` added to every row.
    Bias(&'a [f32]),
    /// `out = (out + b) + x·W`: a residual, the bias, then the product.
    AddBias(&'a [f32]),
}

impl<'a> Start<'a> {
    /// What the block of `k` starting at row `k0` does as it stores: whether it adds to
    /// `out`, and the bias it adds (only the first block starts as `self` says; the
    /// later ones add to what the earlier left).
    fn at_block(self, k0: usize) -> (bool, Option<&'a [f32]>) {
        match self {
            _ if k0 > 0 => (true, None),
            Start::Add => (true, None),
            Start::Overwrite => (false, None),
            Start::Bias(bias) => (false, Some(bias)),
            Start::AddBias(bias) => (true, Some(bias)),
        }
    }
}

/// Rows of `x` times `W` into rows of `out`: `rows` rows, `lda` and `ldc` values apart.
struct Band<'a> {
    x: &'a [f32],
    lda: usize,
    rows: usize,
    out: &'a mut [f32],
    ldc: usize,
}

/// One register tile: `c[r, cols] += a[r, kc] · panel[kc, cols]`, with
/// `a`'s rows `lda` apart and `c`'s `ldc` apart; `r ≤ 6`, `cols ≤ 16`;
/// `add: false` writes `c = …`; `bias` (`cols` values), where given, is added
/// first: `(c + b) + a·W`, or `b + a·W` where `add` is false (the same bits as
/// `b` written into `c` first and the product added to it).
struct Tile<'a> {
    a: &'a [f32],
    lda: usize,
    panel: &'a [f32],
    kc: usize,
    c: &'a mut [f32],
    ldc: usize,
    cols: usize,
    add: bool,
    bias: Option<&'a [f32]>,
}

impl Tile<'_> {
    /// Runs the tile of `r` rows on the AVX2 kernel (`wide`) or the portable one.
    #[inline(always)]
    fn run(self, r: usize, wide: bool) {
        let Tile { a, lda, panel, kc, c, ldc, cols, add, bias } = self;
        assert!(r <= MR && cols <= NR && panel.len() >= kc * NR);
        assert!(a.len() >= (r - 1) * lda + kc && c.len() >= (r - 1) * ldc + cols);
        assert!(bias.is_none_or(|b| b.len() >= cols), "a bias for every column");
        // The kernels take their operands as plain arguments (in registers), `cols`, `add` and the bias as one triple.
        let (a, b, c) = (a.as_ptr(), panel.as_ptr(), c.as_mut_ptr());
        let bias = bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
        macro_rules! dispatch {
            ($f:ident) => {
                match r {
                    1 => $f::<1>(a, lda, b, kc, c, ldc, (cols, add, bias)),
                    2 => $f::<2>(a, lda, b, kc, c, ldc, (cols, add, bias)),
                    3 => $f::<3>(a, lda, b, kc, c, ldc, (cols, add, bias)),
                    4 => $f::<4>(a, lda, b, kc, c, ldc, (cols, add, bias)),
                    5 => $f::<5>(a, lda, b, kc, c, ldc, (cols, add, bias)),
                    _ => $f::<6>(a, lda, b, kc, c, ldc, (cols, add, bias)),
                }
            };
        }
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the CPU has AVX2 and FMA (`wide_kernel`); the asserts above bound every access.
            unsafe { dispatch!(tile_avx2) };
            return;
        }
        let _ = wide;
        // SAFETY: the asserts above bound every access.
        unsafe { dispatch!(tile_portable) };
    }
}

/// The AVX2 + FMA register tile: per step of `k`, two loads of the panel,
/// `R` broadcasts of `a` and `2R` fused multiply-adds.
///
/// # Safety
/// AVX2 and FMA present; `a` covers `R` rows of `kc` values `lda` apart,
/// `b` `kc × 16` values, `c` `R` rows of `cols` values `ldc` apart, `bias`
/// (unless null) `cols` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    (cols, add, bias): (usize, bool, *const f32),
) {
    use std::arch::x86_64::*;
    // SAFETY: bounds as the caller promises.
    unsafe {
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        for kk in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(kk * NR));
            let b1 = _mm256_loadu_ps(b.add(kk * NR + 8));
            for r in 0..R {
                let av = _mm256_broadcast_ss(&*a.add(r * lda + kk));
                lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
            }
        }
        for r in 0..R {
            let row = c.add(r * ldc);
            if cols == NR && add && !bias.is_null() {
                let (b0, b1) = (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)));
                _mm256_storeu_ps(row, _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(row), b0), lo[r]));
                _mm256_storeu_ps(row.add(8), _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(row.add(8)), b1), hi[r]));
            } else if cols == NR && add {
                _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), lo[r]));
                _mm256_storeu_ps(row.add(8), _mm256_add_ps(_mm256_loadu_ps(row.add(8)), hi[r]));
            } else if cols == NR && !bias.is_null() {
                _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(bias), lo[r]));
                _mm256_storeu_ps(row.add(8), _mm256_add_ps(_mm256_loadu_ps(bias.add(8)), hi[r]));
            } else if cols == NR {
                _mm256_storeu_ps(row, lo[r]);
                _mm256_storeu_ps(row.add(8), hi[r]);
            } else {
                let mut tmp = [0f32; NR];
                _mm256_storeu_ps(tmp.as_mut_ptr(), lo[r]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), hi[r]);
                for (j, t) in tmp.iter().enumerate().take(cols) {
                    *row.add(j) = match (add, bias.is_null()) {
                        (true, false) => (*row.add(j) + *bias.add(j)) + t,
                        (true, true) => *row.add(j) + t,
                        (false, false) => *bias.add(j) + t,
                        (false, true) => *t,
                    };
                }
            }
        }
    }
}

/// The AVX-512 register tile: `R` rows by `P` panels (16 columns each; the
/// second panel follows the first in `b`), per step of `k` `P` loads, `R`
/// broadcasts and `R · P` fused multiply-adds; the same chain per output as
/// [`tile_avx2`], so the same bits. `last` is the last panel's valid columns.
///
/// # Safety
/// AVX-512 F/BW/VL and FMA present; `a` covers `R` rows of `kc` values `lda`
/// apart, `b` `P · kc × 16` values, `c` `R` rows of `16 (P − 1) + last` values `ldc` apart,
/// `bias` (unless null) `16 (P − 1) + last` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx512<const R: usize, const P: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    last: usize,
    (add, bias): (bool, *const f32),
) {
    use std::arch::x86_64::*;
    // SAFETY: bounds as the caller promises.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        // one step of `k`: row `r`'s value of `a` at `$at`
        macro_rules! step {
            ($kk:expr, |$r:ident| $at:expr) => {
                let mut w = [_mm512_setzero_ps(); P];
                for (q, w) in w.iter_mut().enumerate() {
                    *w = _mm512_loadu_ps(b.add(q * kc * NR + $kk * NR));
                }
                for ($r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*$at);
                    for q in 0..P {
                        acc[q] = _mm512_fmadd_ps(av, w[q], acc[q]);
                    }
                }
            };
        }
        // four steps at a time: each row's address is computed once per four broadcasts
        // (+4 % on MiniLM; the same chain of FMAs, so the same bits)
        let whole = kc - kc % 4;
        for k4 in (0..whole).step_by(4) {
            let rows: [*const f32; R] = std::array::from_fn(|r| a.add(r * lda + k4));
            // the panels' rows PREFETCH steps ahead (past the block's end: the next panels or block)
            for q in 0..P {
                for u in 0..4 {
                    _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(q * kc * NR + (k4 + PREFETCH + u) * NR).cast());
                }
            }
            for u in 0..4 {
                step!(k4 + u, |r| rows[r].add(u));
            }
        }
        for kk in whole..kc {
            step!(kk, |r| a.add(r * lda + kk));
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, acc) in acc.iter().enumerate() {
                let row = c.add(r * ldc + q * NR);
                let width = if q == P - 1 { last } else { NR };
                // the panel's valid columns, a mask of `width` ones
                let mask: __mmask16 = if width >= NR { 0xffff } else { (1u16 << width) - 1 };
                let value = if add && !bias.is_null() {
                    let start =
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row), _mm512_maskz_loadu_ps(mask, bias.add(q * NR)));
                    _mm512_add_ps(start, *acc)
                } else if add {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row), *acc)
                } else if !bias.is_null() {
                    _mm512_add_ps(*acc, _mm512_maskz_loadu_ps(mask, bias.add(q * NR)))
                } else {
                    *acc
                };
                _mm512_mask_storeu_ps(row, mask, value);
            }
        }
    }
}

/// The same tile in plain Rust, for CPUs without AVX2 (and as the test's second opinion).
///
/// # Safety
/// As for [`tile_avx2`], less the CPU features.
unsafe fn tile_portable<const R: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    (cols, add, bias): (usize, bool, *const f32),
) {
    let mut acc = [[0f32; NR]; R];
    // SAFETY: bounds as the caller promises.
    unsafe {
        for kk in 0..kc {
            let panel = std::slice::from_raw_parts(b.add(kk * NR), NR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = *a.add(r * lda + kk);
                acc.iter_mut().zip(panel).for_each(|(s, w)| *s += av * w);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, s) in acc.iter().enumerate().take(cols) {
                let c = c.add(r * ldc + j);
                *c = match (add, bias.is_null()) {
                    (true, false) => (*c + *bias.add(j)) + s,
                    (true, true) => *c + s,
                    (false, false) => *bias.add(j) + s,
                    (false, true) => *s,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w_in_out: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| x[i * k + l] as f64 * w_in_out[l * n + j] as f64).sum();
            }
        }
        out
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0).collect()
    }

    /// Every shape edge: rows not a multiple of 6, 12 or a band, columns not a
    /// multiple of 16 or 32, `k` over several blocks with a short last one; the
    /// product added to what `out` held; every kernel the CPU has (the scalar
    /// one always), and both packings.
    #[test]
    fn equals_the_naive_product_on_ragged_shapes() {
        let shapes = [
            (1, 1, 1),
            (5, 3, 17),
            (7, 300, 16),
            (73, 600, 40),
            (150, 256, 33),
            (6, 513, 48),
            (25, 70, 80),
            (13, 9, 31),
        ];
        for &(m, k, n) in &shapes {
            let x = values(m * k, 1);
            let w = values(k * n, 2);
            let w_out_in: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
            let start = values(m * n, 3);
            let want = naive(&x, &w, m, k, n);
            for packed in [PackedMatrix::from_in_out(&w, k, n), PackedMatrix::from_out_in(&w_out_in, n, k)] {
                assert_eq!((packed.k(), packed.n()), (k, n));
                let mut fused: Vec<Vec<f32>> = Vec::new();
                for level in [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512] {
                    if level > SimdLevel::detected() {
                        continue;
                    }
                    let mut out = start.clone();
                    for (out, x) in out.chunks_mut(MC * n).zip(x.chunks(MC * k)) {
                        packed.band(Band { x, lda: k, rows: x.len() / k, out, ldc: n }, Start::Add, level);
                    }
                    let worst = out
                        .iter()
                        .zip(&want)
                        .zip(&start)
                        .map(|((o, w), s)| (*o as f64 - *s as f64 - w).abs())
                        .fold(0f64, f64::max);
                    assert!(
                        worst < 1e-4 * (k as f64).sqrt(),
                        "[{m}, {k}] x [{k}, {n}] {level:?}: max abs error {worst}"
                    );
                    if level >= SimdLevel::Avx2 {
                        fused.push(out);
                    }
                }
                // The AVX2 and AVX-512 kernels run the same chain of fused multiply-adds per output.
                if let [avx2, avx512] = &fused[..] {
                    assert!(
                        avx2.iter().zip(avx512).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "[{m}, {k}] x [{k}, {n}]"
                    );
                }
                // A bias, added as the first block of `k` stores: on every kernel the very bits
                // of the bias written into `out` first and the product added to it.
                let bias = values(n, 4);
                let with_bias: Vec<Vec<u32>> = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512]
                    .into_iter()
                    .filter(|&level| level <= SimdLevel::detected())
                    .map(|level| {
                        let (mut out, mut added) = (start.clone(), bias.repeat(m));
                        for ((out, added), x) in
                            out.chunks_mut(MC * n).zip(added.chunks_mut(MC * n)).zip(x.chunks(MC * k))
                        {
                            packed.band(Band { x, lda: k, rows: x.len() / k, out, ldc: n }, Start::Bias(&bias), level);
                            packed.band(Band { x, lda: k, rows: x.len() / k, out: added, ldc: n }, Start::Add, level);
                        }
                        for (i, o) in out.iter().enumerate() {
                            let err = (*o as f64 - bias[i % n] as f64 - want[i]).abs();
                            assert!(err < 1e-4 * (k as f64).sqrt(), "[{m}, {k}] x [{k}, {n}] + b {level:?}: {err}");
                            assert_eq!(
                                o.to_bits(),
                                added[i].to_bits(),
                                "[{m}, {k}] x [{k}, {n}] + b {level:?}, value {i}"
                            );
                        }
                        // a residual too: (out + b) + x·W, as the bias added to `out` first
                        let (mut residual, mut added) = (start.clone(), start.clone());
                        added.iter_mut().enumerate().for_each(|(i, v)| *v += bias[i % n]);
                        for ((residual, added), x) in
                            residual.chunks_mut(MC * n).zip(added.chunks_mut(MC * n)).zip(x.chunks(MC * k))
                        {
                            let rows = x.len() / k;
                            packed.band(Band { x, lda: k, rows, out: residual, ldc: n }, Start::AddBias(&bias), level);
                            packed.band(Band { x, lda: k, rows, out: added, ldc: n }, Start::Add, level);
                        }
                        for (i, (r, a)) in residual.iter().zip(&added).enumerate() {
                            assert_eq!(
                                r.to_bits(),
                                a.to_bits(),
                                "[{m}, {k}] x [{k}, {n}] + b + c {level:?}, value {i}"
                            );
                        }
                        out.iter().chain(&residual).map(|v| v.to_bits()).collect()
                    })
                    .skip(1)
                    .collect();
                if let [avx2, avx512] = &with_bias[..] {
                    assert_eq!(avx2, avx512, "[{m}, {k}] x [{k}, {n}] + b");
                }
                let mut threaded = start.clone();
                packed.matmul_acc(&x, &mut threaded);
                let worst = threaded
                    .iter()
                    .zip(&want)
                    .zip(&start)
                    .map(|((o, w), s)| (*o as f64 - *s as f64 - w).abs())
                    .fold(0f64, f64::max);
                assert!(worst < 1e-4 * (k as f64).sqrt());
            }
        }
    }

    /// Packing by columns (a transposition: in 16 × 16 blocks in registers on
    /// AVX-512) lays out exactly what packing by rows does, padding included,
    /// over ragged `k` (several blocks, a short last one) and `n`.
    #[test]
    fn both_packings_lay_out_the_same_values() {
        for &(k, n) in &[(1, 1), (5, 3), (16, 16), (17, 33), (300, 40), (513, 7), (32, 256)] {
            let w = values(k * n, 11);
            let w_out_in: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
            let (rows, columns) = (PackedMatrix::from_in_out(&w, k, n), PackedMatrix::from_out_in(&w_out_in, n, k));
            assert!(rows.packed().iter().zip(columns.packed()).all(|(a, b)| a.to_bits() == b.to_bits()), "[{k}, {n}]");
            // a repack into used memory leaves no stale values in the padding
            let mut reused = PackedMatrix::from_in_out(&values(600 * 48, 12), 600, 48);
            reused.repack_columns(k, n, |j| &w_out_in[j * k..][..k]);
            assert_eq!(reused.packed(), rows.packed(), "[{k}, {n}] reused");
        }
    }

    /// `affine`: the bias added to every row, over what `out` held or in its place.
    #[test]
    fn affine_adds_the_bias_to_every_row() {
        let (m, k, n) = (80, 20, 18);
        let (x, w, bias, start) = (values(m * k, 7), values(k * n, 8), values(n, 9), values(m * n, 10));
        let want = naive(&x, &w, m, k, n);
        let packed = PackedMatrix::from_in_out(&w, k, n);
        for accumulate in [false, true] {
            let mut out = start.clone();
            packed.affine(&x, &bias, &mut out, accumulate);
            for (i, got) in out.iter().enumerate() {
                let residual = if accumulate { start[i] as f64 } else { 0.0 };
                assert!(
                    (*got as f64 - residual - bias[i % n] as f64 - want[i]).abs() < 1e-4,
                    "[{}, {}] accumulate={accumulate}",
                    i / n,
                    i % n
                );
            }
        }
    }

    /// Strided rows in and out, overwriting: `x` is the middle `k` columns of a
    /// wider matrix, `out` the middle `n` columns of another; the columns
    /// around them stay as they were.
    #[test]
    fn strided_product_overwrites_only_its_columns() {
        for &(m, k, n) in &[(7, 32, 20), (13, 300, 32)] {
            let (lda, ldc) = (k + 5, n + 9);
            let wide_x = values(m * lda, 4);
            let x: Vec<f32> = (0..m * k).map(|i| wide_x[(i / k) * lda + 2 + i % k]).collect();
            let w = values(k * n, 5);
            let want = naive(&x, &w, m, k, n);
            let mut repacked = PackedMatrix::from_in_out(&[1.0], 1, 1);
            repacked.repack_rows(k, n, |row| &w[row * n..]);
            let start = values(m * ldc, 6);
            let mut out = start.clone();
            repacked.matmul_strided(&wide_x[2..], lda, m, &mut out[4..], ldc, false);
            for i in 0..m {
                for j in 0..ldc {
                    let got = out[i * ldc + j] as f64;
                    if (4..4 + n).contains(&j) {
                        assert!((got - want[i * n + j - 4]).abs() < 1e-4 * (k as f64).sqrt(), "[{i}, {j}]");
                    } else {
                        assert_eq!(got, start[i * ldc + j] as f64, "[{i}, {j}] outside the product changed");
                    }
                }
            }
        }
    }
}
