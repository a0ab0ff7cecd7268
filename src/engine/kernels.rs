//! The scalar kernels the hand-written engines share: branch-free `exp`,
//! `ln`, `sigmoid` and `tanh` (so the loops over them vectorise), a lane-split
//! sum, and the run-time check for the AVX2 + FMA build of the hot loops.

/// `e^x` in `f32` by range reduction and a degree-6 polynomial (Cephes'
/// `expf`), within 2 ulp of the true value; branch-free, so loops over it
/// vectorise. glibc's `tanhf` goes through `expm1f`, which was 40 % of the
/// training time before this.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by the 1.5·2²³ trick: `f32::round` is a libm call on baseline x86-64.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Natural logarithm of a positive normal `f32` (Cephes' `logf`), relative
/// error below 1e-7 for the values a loss sees; branch-free.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m · 2^e with m in [√½, √2).
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // [0.5, 1)
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= i32::from(small);
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_4e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333e-1;
    y *= m * z;
    let ef = e as f32;
    y += -2.121_944_4e-4 * ef;
    y += -0.5 * z;
    m + y + 0.693_359_4 * ef
}

/// The logistic function.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = 1 − 2 / (e^{2x} + 1)`, absolute error below 3e-7.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// `Σ_{r < n} term(r)` accumulated in eight independent lanes, so a long sum
/// is not one chain of dependent additions (and vectorises where `term` does).
#[inline(always)]
pub(crate) fn lane_sum(n: usize, term: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let full = n / 8 * 8;
    for base in (0..full).step_by(8) {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += term(base + j);
        }
    }
    let tail: f32 = (full..n).map(&term).sum();
    acc.iter().sum::<f32>() + tail
}

/// Whether this CPU has AVX2 and FMA (checked once; `GMU_NO_AVX2=1` turns the wide path off).
#[cfg(target_arch = "x86_64")]
pub(crate) fn wide_simd() -> bool {
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(|| {
        std::env::var_os("GMU_NO_AVX2").is_none()
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    })
}
