//! Strided matrix products through the `gemm` crate (the kernel burn's flex
//! backend calls), for the hand-written engines and the picture CNN: no
//! transposed copy, no allocation, every core of rayon's pool.
//!
//! The crate picks its micro-kernel by the CPU (AVX-512, AVX2 + FMA or plain
//! Rust) and reads no setting; here the level is gmu's
//! [`simd_level`](super::kernels::simd_level), so `GMU_CPU=avx2|scalar`
//! reaches these products too. burn's own products (the `burn` engine) still
//! go through the crate's choice.

use super::kernels::{SimdLevel, simd_level};

/// The `gemm` crate's threading for rayon's current pool.
fn parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// `dst[m, n] (+)= lhs · rhs`, every matrix given as `(pointer, (row stride,
/// column stride))` (so a transpose is a swap of strides, never a copy).
///
/// # Safety
/// Each pointer must cover its matrix under its strides, and `dst` must not
/// overlap the inputs.
pub unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, (dst_rs, dst_cs)): (*mut f32, (usize, usize)),
    accumulate: bool,
    (lhs, (lhs_rs, lhs_cs)): (*const f32, (usize, usize)),
    (rhs, (rhs_rs, rhs_cs)): (*const f32, (usize, usize)),
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        matmul_at(
            simd_level(),
            (m, n, k),
            (dst, (dst_rs, dst_cs)),
            accumulate,
            (lhs, (lhs_rs, lhs_cs)),
            (rhs, (rhs_rs, rhs_cs)),
        )
    }
}

/// [`matmul`] with the crate's kernels for `level` (one the CPU has, or lower).
///
/// # Safety
/// As [`matmul`].
unsafe fn matmul_at(
    level: SimdLevel,
    (m, n, k): (usize, usize, usize),
    (dst, (dst_rs, dst_cs)): (*mut f32, (usize, usize)),
    accumulate: bool,
    (lhs, (lhs_rs, lhs_cs)): (*const f32, (usize, usize)),
    (rhs, (rhs_rs, rhs_cs)): (*const f32, (usize, usize)),
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    if level == SimdLevel::Avx512 {
        // SAFETY: forwarded from the caller; the crate dispatches to its AVX-512 kernels on this CPU.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                dst_cs as isize,
                dst_rs as isize,
                accumulate,
                lhs,
                lhs_cs as isize,
                lhs_rs as isize,
                rhs,
                rhs_cs as isize,
                rhs_rs as isize,
                alpha,
                1.0,
                false,
                false,
                false,
                parallelism(),
            )
        }
        return;
    }
    // A lower level asked for (or all the CPU has): the crate's kernels for it, called as `gemm::gemm`
    // calls them, after its one normalisation (the micro-kernels prefer a column-major destination, so
    // a row-major product is computed as its transpose: swap the operands and the strides).
    let (m, n, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs) = if dst_cs < dst_rs {
        (n, m, dst_rs, dst_cs, rhs, rhs_rs, rhs_cs, lhs, lhs_rs, lhs_cs)
    } else {
        (m, n, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs)
    };
    let (dst_cs, dst_rs, lhs_cs, lhs_rs, rhs_cs, rhs_rs) =
        (dst_cs as isize, dst_rs as isize, lhs_cs as isize, lhs_rs as isize, rhs_cs as isize, rhs_rs as isize);
    macro_rules! with_kernels {
        ($simd:expr, $kernels:path, $lanes:expr) => {{
            use $kernels as kernel;
            // SAFETY: forwarded from the caller; `$simd` exists on this CPU (checked by `try_new`).
            unsafe {
                gemm_common::gemm::gemm_basic_generic::<
                    _,
                    f32,
                    { $lanes },
                    { kernel::MR_DIV_N * $lanes },
                    { kernel::NR },
                    { kernel::MR_DIV_N },
                    { kernel::H_M },
                    { kernel::H_N },
                >(
                    $simd,
                    m,
                    n,
                    k,
                    dst,
                    dst_cs,
                    dst_rs,
                    accumulate,
                    lhs,
                    lhs_cs,
                    lhs_rs,
                    rhs,
                    rhs_cs,
                    rhs_rs,
                    alpha,
                    1.0,
                    false,
                    false,
                    false,
                    |a, b, c| a * b + c,
                    &kernel::UKR,
                    &kernel::H_UKR,
                    false,
                    parallelism(),
                )
            }
        }};
    }
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Avx2 {
        use gemm_common::simd::MixedSimd;
        if let Some(simd) = <gemm_common::simd::V3 as MixedSimd<f32, f32, f32, f32>>::try_new() {
            // The crate's AVX2 + FMA kernels: 8 lanes.
            with_kernels!(simd, gemm_f32::microkernel::fma::f32, 8);
            return;
        }
    }
    with_kernels!(gemm_common::simd::Scalar, gemm_f32::microkernel::scalar::f32, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lhs · rhs` in f64, row-major.
    fn reference(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| lhs[i * k + p] as f64 * rhs[p * n + j] as f64).sum::<f64>() as f32;
            }
        }
        out
    }

    /// Every layout the engines use (row-major destination, a transposed operand, accumulation,
    /// a column-major destination) gives the product, on ragged shapes, at every level this CPU has.
    #[test]
    fn strided_products_equal_the_reference_at_every_level() {
        let levels = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];
        for &level in levels.iter().filter(|&&l| l <= SimdLevel::detected()) {
            check_products(level);
        }
    }

    fn check_products(level: SimdLevel) {
        let matmul = |a, b, c, d, e| unsafe { matmul_at(level, a, b, c, d, e) };
        for &(m, n, k) in &[(1, 1, 1), (7, 13, 5), (33, 17, 64), (128, 76, 300)] {
            let lhs: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let rhs: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
            let want = reference(m, n, k, &lhs, &rhs);
            // Row-major everything.
            let mut out = vec![9.0; m * n];
            matmul((m, n, k), (out.as_mut_ptr(), (n, 1)), false, (lhs.as_ptr(), (k, 1)), (rhs.as_ptr(), (n, 1)));
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{level:?} {m}x{n}x{k}: {a} vs {b}");
            }
            // rhs given transposed (n × k row-major read with swapped strides), accumulating onto 1.
            let rhs_t: Vec<f32> = (0..n * k).map(|i| rhs[(i % k) * n + i / k]).collect();
            let mut out = vec![1.0; m * n];
            matmul((m, n, k), (out.as_mut_ptr(), (n, 1)), true, (lhs.as_ptr(), (k, 1)), (rhs_t.as_ptr(), (1, k)));
            for (a, b) in out.iter().zip(&want) {
                assert!(
                    (a - (b + 1.0)).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{level:?} {m}x{n}x{k} accumulated: {a} vs {b}"
                );
            }
            // Column-major destination.
            let mut out = vec![0.0; m * n];
            matmul((m, n, k), (out.as_mut_ptr(), (1, m)), false, (lhs.as_ptr(), (k, 1)), (rhs.as_ptr(), (n, 1)));
            for i in 0..m {
                for j in 0..n {
                    let (a, b) = (out[j * m + i], want[i * n + j]);
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{level:?} {m}x{n}x{k} column-major: {a} vs {b}");
                }
            }
        }
    }
}
