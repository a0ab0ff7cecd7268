//! The AVX512-BF16 side of [`super::Bf16Matrix`]'s products, for CPUs with
//! those instructions but no AMX (AMD Zen 4 and 5, Intel Cooper Lake): one
//! 32 × 32 block of sums in registers with `vdpbf16ps`, which reads `W`'s
//! tiles as they are (a 64-byte row of sixteen column pairs per pair of `k`).

use std::arch::x86_64::*;

use super::{Start, TN};

/// A 32 × 32 block of sums on AVX512-BF16: `block[i, j] (start) += Σ_p
/// a[i, 2p..2p + 2] · W[2p..2p + 2, j]` over `pairs` pairs of `k`, in
/// eight rows at a time (sixteen accumulators: two strips of sixteen columns),
/// each sum one chain of `vdpbf16ps` in the order of `p`; `a`'s rows `width`
/// apart in bf16, `strips` the two 16-column strips (a 64-byte row of pairs per `p`).
///
/// # Safety
/// AVX512-BF16 present; `a` holds 32 rows of at least `2 · pairs` values,
/// each strip `pairs` rows of 32, `block` 32 rows of 32 values `ld` apart
/// (and a [`Start::Bias`] 32 values).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
pub(super) unsafe fn block(
    start: Start,
    a: *const u16,
    width: usize,
    strips: [*const u16; 2],
    pairs: usize,
    block: *mut f32,
    ld: usize,
) {
    const ROWS: usize = 8;
    let bh = |v: __m512i| -> __m512bh {
        // SAFETY: both are 64 bytes of plain data.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    };
    // SAFETY: every read and write inside the extents the caller promises.
    unsafe {
        for group in (0..2 * TN).step_by(ROWS) {
            let mut sums = [[_mm512_setzero_ps(); 2]; ROWS];
            for (i, row) in sums.iter_mut().enumerate() {
                let c = block.add((group + i) * ld);
                *row = match start {
                    Start::Zero => *row,
                    Start::Bias(b) => [_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(TN))],
                    Start::Block => [_mm512_loadu_ps(c), _mm512_loadu_ps(c.add(TN))],
                };
            }
            let rows = a.add(group * width);
            for p in 0..pairs {
                let w = strips.map(|strip| bh(_mm512_loadu_si512(strip.add(p * 2 * TN).cast())));
                for (i, row) in sums.iter_mut().enumerate() {
                    let x = bh(_mm512_set1_epi32(rows.add(i * width + 2 * p).cast::<i32>().read_unaligned()));
                    row[0] = _mm512_dpbf16_ps(row[0], x, w[0]);
                    row[1] = _mm512_dpbf16_ps(row[1], x, w[1]);
                }
            }
            for (i, row) in sums.iter().enumerate() {
                let c = block.add((group + i) * ld);
                _mm512_storeu_ps(c, row[0]);
                _mm512_storeu_ps(c.add(TN), row[1]);
            }
        }
    }
}
