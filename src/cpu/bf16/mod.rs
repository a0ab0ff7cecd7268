//! Frozen weight matrices in bfloat16, for the pretrained encoders' big
//! products when `GMU_ENCODER_PRECISION=bf16` asks for it: on Intel AMX, or
//! with AVX512-BF16's dot products where the CPU has those but no AMX (AMD
//! Zen 4 and 5, Intel Cooper Lake).
//!
//! AMX (Sapphire Rapids and later) multiplies 16 × 32 bf16 tiles by 32 × 16
//! ones into 16 × 16 `f32` accumulators, about four times the `f32` rate of
//! the AVX-512 kernel in [`packed`](super::packed) on one core of the build
//! machine (450–500 against 110–130 GFLOP/s on MiniLM's shapes).
//! AVX512-BF16's `vdpbf16ps` adds sixteen pairs of bf16 products into
//! sixteen `f32` sums, twice the multiply-adds of an `f32` FMA of the same
//! width. The price is the inputs' precision: both operands are rounded to
//! bf16 (8 bits of mantissa, round to nearest even); products and sums stay
//! `f32`. So this is an opt-in for inference with frozen weights, never the
//! default and never training (see `BENCHMARKS.md` for what it does to
//! MiniLM's embeddings and a model's probabilities). The two kernels sum in
//! different orders, so their bits differ (both within `f32` summation error
//! of the rounded operands' exact product).
//!
//! Layout: the weight `W` `[k, n]` is cut into tiles of 32 rows of `k` by 16
//! columns, each stored as AMX's `B` operand wants it (16 rows of 16 pairs
//! `(W[2r, j], W[2r + 1, j])`, 1 KiB), the tiles of one 16-column strip
//! contiguous over `k`: a strip is a run of 64-byte rows of pairs, which is
//! also the operand `vdpbf16ps` takes. `k` and `n` are padded with zeros to
//! whole tiles. A call converts its rows of `x` to bf16 into a per-thread
//! buffer (zero padded the same way) and computes 32 × 32 blocks of `out`.
//! A row's result never depends on the other rows of the call (each output
//! is the same chain over `k` wherever its row sits), so the server's
//! batching gives the same bits as one row at a time.
//!
//! The AMX instructions are written with `asm!` (the AMX intrinsics are not
//! stable Rust); Linux hands a process the AMX register state only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), made once by [`bf16_kernel`].

mod amx;
mod dot;

use std::cell::RefCell;

use rayon::prelude::*;

use super::kernels::{SimdLevel, simd_level};

/// Rows of `k` per tile (pairs of bf16 in a 64-byte tile row).
const TK: usize = 32;
/// Columns (and rows of `x`) per tile.
const TN: usize = 16;
/// Rows of `x` per rayon task: two blocks of 32.
const BAND: usize = 64;

/// The precision the pretrained encoders' big products run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderPrecision {
    /// `f32` throughout (the default; what the encoders are checked against PyTorch with).
    F32,
    /// bf16 operands with `f32` sums on AMX, where the CPU has it.
    Bf16,
}

impl EncoderPrecision {
    /// `GMU_ENCODER_PRECISION` read: `None` when unset, an error naming the value when it is neither `f32` nor `bf16`.
    pub fn from_env() -> Result<Option<EncoderPrecision>, String> {
        match std::env::var("GMU_ENCODER_PRECISION") {
            Err(_) => Ok(None),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "f32" | "" => Ok(Some(EncoderPrecision::F32)),
                "bf16" => Ok(Some(EncoderPrecision::Bf16)),
                _ => Err(format!(
                    "GMU_ENCODER_PRECISION='{v}': expected f32 or bf16 (the pretrained encoders' products; bf16 needs AMX or AVX512-BF16)"
                )),
            },
        }
    }
}

/// The precision the encoders use in this process: bf16 only where
/// `GMU_ENCODER_PRECISION=bf16` asks and a [`bf16_kernel`] can run, `f32`
/// otherwise (an unknown value is refused by the binary before any work, ignored here).
pub fn encoder_precision() -> EncoderPrecision {
    static PRECISION: std::sync::OnceLock<EncoderPrecision> = std::sync::OnceLock::new();
    *PRECISION.get_or_init(|| match EncoderPrecision::from_env() {
        Ok(Some(EncoderPrecision::Bf16)) if bf16_kernel().is_some() => EncoderPrecision::Bf16,
        Ok(Some(EncoderPrecision::Bf16)) => {
            eprintln!(
                "note: GMU_ENCODER_PRECISION=bf16 needs AMX-BF16 or AVX512-BF16 (and no lower GMU_CPU); the encoders run in f32"
            );
            EncoderPrecision::F32
        }
        _ => EncoderPrecision::F32,
    })
}

/// The instructions a bf16 product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX-512 registers (`vdpbf16ps`), where the CPU has AVX512-BF16 but no AMX.
    Avx512,
}

impl Bf16Kernel {
    /// The kernel's name in messages: `AMX` or `AVX512-BF16`.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Amx => "AMX",
            Bf16Kernel::Avx512 => "AVX512-BF16",
        }
    }
}

/// The bf16 kernel this CPU runs: AMX where the CPU has AMX-TILE and
/// AMX-BF16 and Linux grants the tile state, else AVX512-BF16 where the CPU
/// has it; either only at the AVX-512 level (`GMU_CPU` below it turns bf16
/// off). `None`: no bf16 kernel.
pub fn bf16_kernel() -> Option<Bf16Kernel> {
    available_kernels().first().copied()
}

/// Every bf16 kernel this CPU can run, the preferred first (the tests run
/// each), checked once per process.
pub fn available_kernels() -> &'static [Bf16Kernel] {
    static KERNELS: std::sync::OnceLock<Vec<Bf16Kernel>> = std::sync::OnceLock::new();
    KERNELS.get_or_init(|| {
        let mut kernels = Vec::new();
        if simd_level() != SimdLevel::Avx512 {
            return kernels;
        }
        if amx::detect() {
            kernels.push(Bf16Kernel::Amx);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            kernels.push(Bf16Kernel::Avx512);
        }
        kernels
    })
}

/// Panics unless this process can run `kernel`.
fn assert_available(kernel: Bf16Kernel) {
    assert!(
        available_kernels().contains(&kernel),
        "the bf16 kernel {kernel:?} does not run on this CPU (checked by bf16_kernel)"
    );
}

/// `x` rounded to bf16 (round to nearest even), as its 16 bits.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// The `f32` a bf16 stands for.
#[inline(always)]
pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `W` `[k, n]` in bf16, in AMX `B` tiles.
#[derive(Debug)]
pub struct Bf16Matrix {
    k: usize,
    n: usize,
    /// Tiles of `k` (each [`TK`] rows).
    k_tiles: usize,
    /// Strips of [`TN`] columns, rounded up to an even count (blocks of 32 columns).
    n_strips: usize,
    /// The tiles start at `data[offset]`, on a 64-byte boundary.
    data: Vec<u16>,
    offset: usize,
    /// What its products run on ([`bf16_kernel`] when made).
    kernel: Option<Bf16Kernel>,
}

impl Bf16Matrix {
    /// `W` `[k, n]` with `w(i, j)` its element at row `i`, column `j`.
    pub fn new(k: usize, n: usize, w: impl Fn(usize, usize) -> f32) -> Bf16Matrix {
        let mut matrix = Bf16Matrix::empty();
        matrix.repack(k, n, w);
        matrix
    }

    /// A `[0, 0]` matrix, to be filled by [`repack`](Self::repack).
    pub fn empty() -> Bf16Matrix {
        Bf16Matrix { k: 0, n: 0, k_tiles: 0, n_strips: 0, data: Vec::new(), offset: 0, kernel: bf16_kernel() }
    }

    /// Packs `W` `[k, n]` (`w(i, j)` its element at row `i`, column `j`) into
    /// this matrix's memory (reused from one small product to the next:
    /// attention's keys and values per text and head).
    pub fn repack(&mut self, k: usize, n: usize, w: impl Fn(usize, usize) -> f32) {
        let tiles = self.reset(k, n);
        let k_tiles = k.div_ceil(TK);
        for j in 0..n {
            let strip = &mut tiles[(j / TN) * k_tiles * TK * TN..][..k_tiles * TK * TN];
            let column = (j % TN) * 2;
            for i in 0..k {
                // tile i / TK of the strip; in it, row (i % TK) / 2, pair element i % 2
                strip[(i / TK) * TK * TN + (i % TK) / 2 * 2 * TN + column + i % 2] = to_bf16(w(i, j));
            }
        }
    }

    /// [`repack`](Self::repack) from `W`'s rows (`row(i)`: at least `n` values).
    pub fn repack_rows<'a>(&mut self, k: usize, n: usize, row: impl Fn(usize) -> &'a [f32]) {
        let tiles = self.reset(k, n);
        let k_tiles = k.div_ceil(TK);
        for i in (0..k).step_by(2) {
            let (first, second) = (&row(i)[..n], if i + 1 < k { Some(&row(i + 1)[..n]) } else { None });
            let at = (i / TK) * TK * TN + (i % TK) / 2 * 2 * TN;
            for (s, chunk) in first.chunks(TN).enumerate() {
                let pairs = &mut tiles[s * k_tiles * TK * TN + at..][..2 * TN];
                for (p, v) in pairs.chunks_exact_mut(2).zip(chunk) {
                    p[0] = to_bf16(*v);
                }
                if let Some(second) = second {
                    for (p, v) in pairs.chunks_exact_mut(2).zip(&second[s * TN..]) {
                        p[1] = to_bf16(*v);
                    }
                }
            }
        }
    }

    /// [`repack`](Self::repack) from `W`'s columns (`column(j)`: at least `k` values).
    pub fn repack_columns<'a>(&mut self, k: usize, n: usize, column: impl Fn(usize) -> &'a [f32]) {
        let tiles = self.reset(k, n);
        let k_tiles = k.div_ceil(TK);
        let mut pairs = vec![0u16; k_tiles * TK];
        for j in 0..n {
            // the column in bf16, zero padded to whole tiles, then scattered a pair at a time
            for (p, v) in pairs.iter_mut().zip(&column(j)[..k]) {
                *p = to_bf16(*v);
            }
            let strip = &mut tiles[(j / TN) * k_tiles * TK * TN..][..k_tiles * TK * TN];
            let at = (j % TN) * 2;
            for (rows, pair) in strip.chunks_exact_mut(2 * TN).zip(pairs.chunks_exact(2)) {
                rows[at..at + 2].copy_from_slice(pair);
            }
        }
    }

    /// Sizes the matrix for `W` `[k, n]`, zeroed; returns its tiles.
    fn reset(&mut self, k: usize, n: usize) -> &mut [u16] {
        let k_tiles = k.div_ceil(TK);
        let n_strips = n.div_ceil(2 * TN) * 2;
        let len = k_tiles * n_strips * TK * TN;
        self.data.clear();
        self.data.resize(len + 32, 0);
        let offset = self.data.as_ptr().align_offset(64).min(32);
        (self.k, self.n, self.k_tiles, self.n_strips, self.offset) = (k, n, k_tiles, n_strips, offset);
        &mut self.data[offset..][..len]
    }

    /// Rows of `W`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `W`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The kernel its products run on.
    ///
    /// # Panics
    /// Where no bf16 kernel runs on this CPU.
    fn kernel(&self) -> Bf16Kernel {
        let kernel = self.kernel.expect("no bf16 kernel runs on this CPU (checked by bf16_kernel)");
        assert_available(kernel);
        kernel
    }

    /// The same matrix on another kernel this CPU runs (the tests compare them).
    #[cfg(test)]
    fn on(mut self, kernel: Bf16Kernel) -> Bf16Matrix {
        self.kernel = Some(kernel);
        self
    }

    fn tiles(&self) -> &[u16] {
        &self.data[self.offset..][..self.k_tiles * self.n_strips * TK * TN]
    }

    /// `out[m, n] += x[m, k] · W`, both row-major and contiguous; rows split
    /// among rayon's threads in bands of 64.
    ///
    /// # Panics
    /// Where the lengths do not fit `W`, or where no bf16 kernel runs ([`bf16_kernel`]).
    pub fn matmul_acc(&self, x: &[f32], out: &mut [f32]) {
        self.fused(x, out, Epilogue { bias: None, accumulate: true, gelu: false });
    }

    /// A layer in one pass over `out`: `out = f(x · W + b)`, or with
    /// `accumulate` `out = f(out + b + x · W)` (`out` holding a residual), `f`
    /// GELU where `gelu` asks, the identity otherwise; `x` `[m, k]`, `bias`
    /// `[n]`, `out` `[m, n]`, row-major. Each 32 × 32 block starts from the
    /// residual plus the bias, takes the products and goes through GELU while
    /// it is in L1, so `out` is read and written once.
    ///
    /// # Panics
    /// Where the lengths do not fit `W`, or where no bf16 kernel runs ([`bf16_kernel`]).
    pub fn affine(&self, x: &[f32], bias: &[f32], out: &mut [f32], accumulate: bool, gelu: bool) {
        assert_eq!(bias.len(), self.n, "a bias of {} values for W [{}, {}]", bias.len(), self.k, self.n);
        self.fused(x, out, Epilogue { bias: Some(bias), accumulate, gelu });
    }

    /// [`affine`](Self::affine) without a residual, its result written in
    /// bf16 as the next product's left operand: `out` holds `m` rows rounded
    /// up to 32 of `width` values (at least `n`); only the first `n` of each of
    /// the `m` rows are written (the columns past `n` must hold zeros: they meet
    /// the next matrix's zero padding, and a NaN there would spread), so a product by a matrix of
    /// [`a_width`](Self::a_width) `width` can read it ([`affine_from_bf16`](Self::affine_from_bf16)).
    ///
    /// # Panics
    /// Where the lengths do not fit, or where no bf16 kernel runs ([`bf16_kernel`]).
    pub fn affine_into_bf16(&self, x: &[f32], bias: &[f32], out: &mut [u16], width: usize, gelu: bool) {
        let (k, n, kernel) = (self.k, self.n, self.kernel());
        assert_eq!(bias.len(), n, "a bias of {} values for W [{k}, {n}]", bias.len());
        assert!(k > 0 && x.len().is_multiple_of(k) && width >= n, "x of {} values for W [{k}, {n}]", x.len());
        let m = x.len() / k;
        assert!(out.len() >= m.div_ceil(2 * TN) * 2 * TN * width, "out too short for {m} rows of {width}");
        let epilogue = Epilogue { bias: Some(bias), accumulate: false, gelu };
        out.par_chunks_mut(BAND * width).zip(x.par_chunks(BAND * k)).for_each(|(out, x)| {
            let r = x.len() / k;
            self.with_converted(x, k, r, |a| {
                // SAFETY: the kernel runs here (`kernel`); `out` covers this band's rows (asserted above).
                unsafe { self.block_rows(kernel, a, r, Target::Bf16 { out: out.as_mut_ptr(), width }, epilogue) };
            });
        });
    }

    /// [`affine`](Self::affine) with `x` already in bf16: `a` holds `rows`
    /// rows rounded up to 32 of [`a_width`](Self::a_width) values, as
    /// [`affine_into_bf16`](Self::affine_into_bf16) writes them.
    ///
    /// # Panics
    /// Where the lengths do not fit, or where no bf16 kernel runs ([`bf16_kernel`]).
    pub fn affine_from_bf16(&self, a: &[u16], rows: usize, bias: &[f32], out: &mut [f32], accumulate: bool) {
        let (n, width, kernel) = (self.n, self.a_width(), self.kernel());
        assert_eq!(bias.len(), n, "a bias of {} values for W [{}, {n}]", bias.len(), self.k);
        assert!(
            out.len() == rows * n && a.len() >= rows.div_ceil(2 * TN) * 2 * TN * width,
            "a or out do not fit [{rows}, {}] x [{}, {n}]",
            self.k,
            self.k
        );
        let epilogue = Epilogue { bias: Some(bias), accumulate, gelu: false };
        out.par_chunks_mut(BAND * n).zip(a.par_chunks(BAND * width)).for_each(|(out, a)| {
            let r = out.len() / n;
            // SAFETY: the kernel runs here (`kernel`); `a` covers the band's rows rounded up to 32
            // (bands start at multiples of 64; the whole is rounded up to 32, asserted).
            unsafe { self.block_rows(kernel, a, r, Target::F32 { out: out.as_mut_ptr(), ldc: n }, epilogue) };
        });
    }

    fn fused(&self, x: &[f32], out: &mut [f32], epilogue: Epilogue<'_>) {
        let (k, n) = (self.k, self.n);
        assert_whole_rows(x, out, k, n);
        out.par_chunks_mut(BAND * n)
            .zip(x.par_chunks(BAND * k))
            .for_each(|(out, x)| self.band_with(x, k, x.len() / k, out, n, epilogue));
    }

    /// `out[rows, n] (+)= x[rows, k] · W` on the calling thread, with `x`'s
    /// rows `lda` apart and `out`'s `ldc` apart; `accumulate: false`
    /// overwrites `out`'s `n` columns.
    ///
    /// # Panics
    /// Where `x` or `out` is too short, or where no bf16 kernel runs ([`bf16_kernel`]).
    pub fn band(&self, x: &[f32], lda: usize, rows: usize, out: &mut [f32], ldc: usize, accumulate: bool) {
        self.band_with(x, lda, rows, out, ldc, Epilogue { bias: None, accumulate, gelu: false });
    }

    /// Width of a row of the bf16 left operand [`band_bf16`](Self::band_bf16) takes: `k` rounded up to 32.
    pub fn a_width(&self) -> usize {
        self.k_tiles * TK
    }

    /// [`band`](Self::band) with `x` already in bf16: `a` holds `rows` rows
    /// of [`a_width`](Self::a_width) values (zero past `k`), then zero rows up
    /// to a multiple of 32 (attention's probabilities, written in bf16 by the softmax).
    ///
    /// # Panics
    /// Where `a` or `out` is too short, or where no bf16 kernel runs ([`bf16_kernel`]).
    pub fn band_bf16(&self, a: &[u16], rows: usize, out: &mut [f32], ldc: usize, accumulate: bool) {
        if rows == 0 {
            return;
        }
        let (width, kernel) = (self.a_width(), self.kernel());
        assert!(
            a.len() >= rows.div_ceil(2 * TN) * 2 * TN * width
                && ldc >= self.n
                && out.len() >= (rows - 1) * ldc + self.n,
            "a or out too short for [{rows}, {}] x [{}, {}]",
            self.k,
            self.k,
            self.n
        );
        for start in (0..rows).step_by(BAND) {
            let r = BAND.min(rows - start);
            let epilogue = Epilogue { bias: None, accumulate, gelu: false };
            // SAFETY: the kernel runs here (`kernel`); `a` covers the band's rows rounded up to 32 (asserted).
            let target = Target::F32 { out: out[start * ldc..].as_mut_ptr(), ldc };
            unsafe { self.block_rows(kernel, &a[start * width..], r, target, epilogue) };
        }
    }

    fn band_with(&self, x: &[f32], lda: usize, rows: usize, out: &mut [f32], ldc: usize, epilogue: Epilogue<'_>) {
        let (k, n) = (self.k, self.n);
        if rows == 0 {
            return;
        }
        let kernel = self.kernel();
        assert!(
            ldc >= n && x.len() >= (rows - 1) * lda + k && out.len() >= (rows - 1) * ldc + n,
            "x or out too short for [{rows}, {k}] x [{k}, {n}]"
        );
        for start in (0..rows).step_by(BAND) {
            let r = BAND.min(rows - start);
            let target = Target::F32 { out: out[start * ldc..].as_mut_ptr(), ldc };
            self.with_converted(&x[start * lda..], lda, r, |a| {
                // SAFETY: the kernel runs here (`kernel`; either implies AVX-512); `a` holds `r` rows
                // rounded up to 32 of `k_tiles · 32` values; `out` covers `r` rows of `n` values `ldc` apart (asserted).
                unsafe { self.block_rows(kernel, a, r, target, epilogue) };
            });
        }
    }

    /// Runs `f` on `r` rows of `x` (`lda` apart) in bf16, in this thread's
    /// buffer: each row `k_tiles · 32` wide and zero padded, `r` rounded up to
    /// 32 rows, from a 64-byte boundary.
    fn with_converted<R>(&self, x: &[f32], lda: usize, r: usize, f: impl FnOnce(&[u16]) -> R) -> R {
        thread_local! {
            static BUFFER: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
        }
        BUFFER.with_borrow_mut(|buffer| {
            let width = self.k_tiles * TK;
            let len = r.div_ceil(2 * TN) * 2 * TN * width;
            buffer.clear();
            buffer.resize(len + 32, 0);
            let offset = buffer.as_ptr().align_offset(64).min(32);
            let a = &mut buffer[offset..][..len];
            for (i, row) in a.chunks_exact_mut(width).take(r).enumerate() {
                convert_row(&x[i * lda..][..self.k], &mut row[..self.k]);
            }
            f(a)
        })
    }

    /// 32 × 32 blocks of `out` over `r` rows of `a` (rounded up to 32), each
    /// through a block in L1 (`spill`): the start value (residual, bias), the
    /// products on `kernel`, then GELU where asked, then into `out`. Every block
    /// takes the same path, so an output is the same chain wherever its row sits.
    ///
    /// # Safety
    /// `kernel` runs on this CPU (and so AVX-512; AMX granted); `a` as
    /// [`with_converted`](Self::with_converted) gives it; `out` covers `r` rows of `n` values `ldc` apart.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn block_rows(&self, kernel: Bf16Kernel, a: &[u16], r: usize, target: Target, epilogue: Epilogue<'_>) {
        #[repr(C, align(64))]
        struct Spill([f32; 4 * TN * TN]);
        const W: usize = 2 * TN;
        let width = self.k_tiles * TK;
        let tiles = self.tiles();
        let mut spill = Spill([0f32; 4 * TN * TN]);
        let Epilogue { bias, accumulate, gelu } = epilogue;
        // a residual is only read from an f32 target
        let (out, ldc) = match target {
            Target::F32 { out, ldc } => (out, ldc),
            Target::Bf16 { .. } => {
                assert!(!accumulate, "a bf16 target holds no residual");
                (std::ptr::null_mut(), 0)
            }
        };
        // SAFETY: a block reads 32 rows of `a` (rows rounded up to 32, `width` a whole number
        // of tiles) and two strips of `tiles`, and reads and writes 32 rows of `block` (`out`
        // only when the block is whole, else `spill`); `out` is otherwise read and written only
        // at the `rows × cols` valid places of a block.
        unsafe {
            if kernel == Bf16Kernel::Amx {
                amx::configure();
            }
            for rb in (0..r).step_by(W) {
                for sb in (0..self.n_strips).step_by(2) {
                    let c0 = sb * TN;
                    let rows = (r - rb).min(W);
                    let cols = self.n.saturating_sub(c0).min(W);
                    if cols == 0 {
                        break;
                    }
                    let c = out.wrapping_add(rb * ldc + c0);
                    let bias = bias.map(|b| &b[c0..c0 + cols]);
                    // A whole block without GELU and without both a residual and a bias goes
                    // straight between `out` and the kernel (the bias row as every row's start);
                    // the others through `spill`. Both start every output
                    // from the same value, so both give the same bits.
                    let direct = rows == W
                        && cols == W
                        && !gelu
                        && !(accumulate && bias.is_some())
                        && matches!(target, Target::F32 { .. });
                    let (block, ld) = if direct { (c, ldc) } else { (spill.0.as_mut_ptr(), W) };
                    if !direct {
                        // the start value of each output: residual (or 0) plus bias (or 0)
                        for i in 0..W {
                            let row = &mut spill.0[i * W..][..W];
                            if i >= rows {
                                row.fill(0.0);
                                continue;
                            }
                            let o = std::slice::from_raw_parts(c.add(i * ldc), cols);
                            match (accumulate, bias) {
                                (true, Some(b)) => {
                                    row.iter_mut().zip(o.iter().zip(b)).for_each(|(s, (o, b))| *s = o + b)
                                }
                                (true, None) => row[..cols].copy_from_slice(o),
                                (false, Some(b)) => row[..cols].copy_from_slice(b),
                                (false, None) => row[..cols].fill(0.0),
                            }
                            row[cols..].fill(0.0);
                        }
                    }
                    let a0 = a.as_ptr().add(rb * width);
                    let b0 = tiles.as_ptr().add(sb * self.k_tiles * TK * TN);
                    let b1 = b0.add(self.k_tiles * TK * TN);
                    let start = match (direct, accumulate, bias) {
                        (true, false, Some(b)) => Start::Bias(b.as_ptr()),
                        (true, false, None) => Start::Zero,
                        _ => Start::Block,
                    };
                    // SAFETY: the kernel runs here (the caller); `a0` holds 32 rows of `width`, the
                    // strips `b0` and `b1` `k_tiles` tiles each, `block` 32 rows `ld` apart.
                    match kernel {
                        Bf16Kernel::Amx => amx::block(start, a0, width, [b0, b1], self.k_tiles, block, ld),
                        Bf16Kernel::Avx512 => dot::block(start, a0, width, [b0, b1], self.k.div_ceil(2), block, ld),
                    }
                    if direct {
                        continue;
                    }
                    for i in 0..rows {
                        let row = &mut spill.0[i * W..][..cols];
                        if gelu {
                            row.iter_mut().for_each(|v| *v = super::kernels::gelu(*v));
                        }
                        match target {
                            Target::F32 { .. } => {
                                std::slice::from_raw_parts_mut(c.add(i * ldc), cols).copy_from_slice(row)
                            }
                            Target::Bf16 { out, width } => {
                                let o = std::slice::from_raw_parts_mut(out.add((rb + i) * width + c0), cols);
                                o.iter_mut().zip(row.iter()).for_each(|(o, v)| *o = to_bf16(*v));
                            }
                        }
                    }
                }
            }
            if kernel == Bf16Kernel::Amx {
                amx::release();
            }
        }
    }
}

/// Where a product's blocks go.
#[derive(Clone, Copy)]
enum Target {
    /// `f32` rows `ldc` apart.
    F32 { out: *mut f32, ldc: usize },
    /// bf16 rows `width` apart (the next product's left operand); only the valid columns are written.
    Bf16 { out: *mut u16, width: usize },
}

/// Where the sums of a 32 × 32 block start.
#[derive(Clone, Copy)]
enum Start {
    /// At zero.
    Zero,
    /// At the bias row (32 values), in every row.
    Bias(*const f32),
    /// At the block's own values (a residual plus bias, or the spill's start values).
    Block,
}

/// What a product does around the tiles: the start value (`out`'s residual
/// where `accumulate`, plus `bias`) and GELU after.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    bias: Option<&'a [f32]>,
    accumulate: bool,
    gelu: bool,
}

/// A row of `f32` to bf16, vectorised where the CPU allows.
fn convert_row(x: &[f32], out: &mut [u16]) {
    #[inline(always)]
    fn body(x: &[f32], out: &mut [u16]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = to_bf16(*v);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
        fn wide(x: &[f32], out: &mut [u16]) {
            body(x, out)
        }
        if simd_level() == SimdLevel::Avx512 {
            // SAFETY: the CPU has AVX-512 F/BW/VL (`simd_level`).
            return unsafe { wide(x, out) };
        }
    }
    body(x, out)
}

/// Panics unless `x` holds whole rows of `k` values and `out` as many rows of
/// `n`: the shapes of `out[m, n] (+)= x[m, k] · W` (here and in [`packed`](super::packed)).
pub(super) fn assert_whole_rows(x: &[f32], out: &[f32], k: usize, n: usize) {
    assert!(
        k > 0 && x.len().is_multiple_of(k) && out.len() == x.len() / k * n,
        "x of {} values and out of {} for W [{k}, {n}]",
        x.len(),
        out.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0).collect()
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1.0)
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: ties go to 1 + 2⁻⁶
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        // just above a tie rounds up
        assert_eq!(from_bf16(to_bf16(f32::from_bits(0x3f80_8001))), 1.0 + 1.0 / 128.0);
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
    }

    /// The kernels this CPU runs, each reported where it is missing.
    fn kernels(what: &str) -> Vec<Bf16Kernel> {
        let kernels = available_kernels();
        if !kernels.contains(&Bf16Kernel::Amx) {
            crate::cpu::testing::skipped(&format!("{what} on AMX"), "this CPU has no AMX-BF16");
        }
        if !kernels.contains(&Bf16Kernel::Avx512) {
            crate::cpu::testing::skipped(&format!("{what} on AVX512-BF16"), "this CPU has no AVX512-BF16");
        }
        kernels.to_vec()
    }

    /// The product on each kernel equals the product of the bf16-rounded
    /// operands computed in `f64` (to `f32` summation error), on ragged
    /// shapes, strided and overwriting, and a row's result does not depend on its batch.
    #[test]
    fn equals_the_product_of_the_rounded_operands() {
        for kernel in kernels("the bf16 product's check") {
            for &(m, k, n) in &[(1, 1, 1), (5, 3, 17), (33, 40, 32), (70, 300, 48), (64, 384, 1152), (97, 1536, 40)] {
                rounded_product_on(kernel, m, k, n);
            }
        }
    }

    fn rounded_product_on(kernel: Bf16Kernel, m: usize, k: usize, n: usize) {
        let x = values(m * k, 1);
        let w = values(k * n, 2);
        let start = values(m * n, 3);
        let matrix = Bf16Matrix::new(k, n, |i, j| w[i * n + j]).on(kernel);
        assert_eq!((matrix.k(), matrix.n()), (k, n));
        let mut out = start.clone();
        matrix.matmul_acc(&x, &mut out);
        let mut worst = 0f64;
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|l| from_bf16(to_bf16(x[i * k + l])) as f64 * from_bf16(to_bf16(w[l * n + j])) as f64)
                    .sum();
                worst = worst.max((out[i * n + j] as f64 - start[i * n + j] as f64 - want).abs());
            }
        }
        assert!(worst < 1e-5 * k as f64, "{kernel:?} [{m}, {k}] x [{k}, {n}]: max abs error {worst}");
        // one row at a time, overwriting, from a strided x into a strided out: the same bits
        let (lda, ldc) = (k + 3, n + 5);
        for i in [0, m / 2, m - 1] {
            let mut wide_x = vec![9.0f32; lda];
            wide_x[..k].copy_from_slice(&x[i * k..][..k]);
            let mut row = vec![7.0f32; ldc];
            row[..n].copy_from_slice(&start[i * n..][..n]);
            matrix.band(&wide_x, lda, 1, &mut row, ldc, true);
            assert!(
                row[..n].iter().zip(&out[i * n..][..n]).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{kernel:?}: row {i} alone differs from row {i} in the batch"
            );
            assert!(row[n..].iter().all(|v| *v == 7.0), "columns past n changed");
            let mut fresh = vec![7.0f32; ldc];
            matrix.band(&wide_x, lda, 1, &mut fresh, ldc, false);
            for j in 0..n {
                let product = out[i * n + j] - start[i * n + j];
                assert!((fresh[j] - product).abs() <= 1e-5 * product.abs().max(1.0), "row {i} col {j}");
            }
        }
    }

    /// `affine`: bias, residual and GELU around the product, on shapes with
    /// whole and edge blocks; every combination against the rounded
    /// operands' product in `f64`, and one row alone the same bits as in its batch.
    #[test]
    fn affine_adds_bias_and_residual_and_applies_gelu() {
        for (kernel, &(m, k, n)) in kernels("the bf16 affine's check")
            .into_iter()
            .flat_map(|kernel| [(64, 64, 64), (45, 70, 50)].iter().map(move |shape| (kernel, shape)))
        {
            let (x, w, bias, start) = (values(m * k, 4), values(k * n, 5), values(n, 6), values(m * n, 7));
            let matrix = Bf16Matrix::new(k, n, |i, j| w[i * n + j]).on(kernel);
            for (accumulate, gelu) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut out = start.clone();
                matrix.affine(&x, &bias, &mut out, accumulate, gelu);
                for i in 0..m {
                    for j in 0..n {
                        let product: f64 = (0..k)
                            .map(|l| from_bf16(to_bf16(x[i * k + l])) as f64 * from_bf16(to_bf16(w[l * n + j])) as f64)
                            .sum();
                        let residual = if accumulate { start[i * n + j] as f64 } else { 0.0 };
                        let pre = residual + bias[j] as f64 + product;
                        let want = if gelu { super::super::kernels::gelu(pre as f32) as f64 } else { pre };
                        let got = out[i * n + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{kernel:?} [{m}, {k}, {n}] {accumulate} {gelu} at [{i}, {j}]: {got} vs {want}"
                        );
                    }
                }
                let i = m / 3;
                let mut row = start[i * n..][..n].to_vec();
                matrix.affine(&x[i * k..][..k], &bias, &mut row, accumulate, gelu);
                assert!(
                    row.iter().zip(&out[i * n..][..n]).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "[{m}, {k}, {n}] {accumulate} {gelu}: row {i} alone differs from its batch"
                );
            }
        }
    }

    /// The three ways to pack give the same tiles, on ragged shapes.
    #[test]
    fn packings_by_rows_and_by_columns_equal_the_generic_one() {
        for &(k, n) in &[(1, 1), (3, 17), (32, 256), (77, 40), (256, 32)] {
            let w = values(k * n, 8);
            let generic = Bf16Matrix::new(k, n, |i, j| w[i * n + j]);
            let mut rows = Bf16Matrix::empty();
            rows.repack_rows(k, n, |i| &w[i * n..][..n]);
            let wt: Vec<f32> = (0..n * k).map(|x| w[(x % k) * n + x / k]).collect();
            let mut columns = Bf16Matrix::empty();
            columns.repack_columns(k, n, |j| &wt[j * k..][..k]);
            assert_eq!(generic.tiles(), rows.tiles(), "[{k}, {n}] by rows");
            assert_eq!(generic.tiles(), columns.tiles(), "[{k}, {n}] by columns");
        }
    }

    /// A feed-forward pair through bf16 in between (`affine_into_bf16` with
    /// GELU, then `affine_from_bf16` on a residual) equals the same two
    /// layers through `f32` with the intermediate rounded to bf16.
    #[test]
    fn a_bf16_intermediate_equals_the_rounded_f32_one() {
        for (kernel, &(m, d, ff)) in kernels("the bf16 intermediate's check")
            .into_iter()
            .flat_map(|kernel| [(70, 40, 96), (64, 64, 64), (5, 33, 50)].iter().map(move |shape| (kernel, shape)))
        {
            let (x, w1, b1, w2, b2, residual) =
                (values(m * d, 1), values(d * ff, 2), values(ff, 3), values(ff * d, 4), values(d, 5), values(m * d, 6));
            let (first, second) = (
                Bf16Matrix::new(d, ff, |i, j| w1[i * ff + j]).on(kernel),
                Bf16Matrix::new(ff, d, |i, j| w2[i * d + j]).on(kernel),
            );
            let width = second.a_width();
            let mut inner16 = vec![0u16; m.div_ceil(32) * 32 * width];
            first.affine_into_bf16(&x, &b1, &mut inner16, width, true);
            let mut fused = residual.clone();
            second.affine_from_bf16(&inner16, m, &b2, &mut fused, true);
            let mut inner = vec![0f32; m * ff];
            first.affine(&x, &b1, &mut inner, false, true);
            assert!(
                (0..m).all(|i| (0..ff).all(|j| inner16[i * width + j] == to_bf16(inner[i * ff + j]))),
                "[{m}, {d}, {ff}]: the bf16 intermediate is not the f32 one rounded"
            );
            assert!(
                inner16.iter().enumerate().all(|(p, v)| *v == 0 || (p / width < m && p % width < ff)),
                "padding written"
            );
            let rounded: Vec<f32> = inner.iter().map(|v| from_bf16(to_bf16(*v))).collect();
            let mut unfused = residual.clone();
            second.affine(&rounded, &b2, &mut unfused, true, false);
            assert!(fused.iter().zip(&unfused).all(|(a, b)| a.to_bits() == b.to_bits()), "[{m}, {d}, {ff}]");
        }
    }
}
