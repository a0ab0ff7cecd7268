//! Strided matrix products through the `gemm` crate (the kernel burn's flex
//! backend calls), for the hand-written engines and the picture CNN: no
//! transposed copy, no allocation, every core of rayon's pool.

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
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism(),
        )
    }
}
