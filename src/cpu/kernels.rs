//! The scalar kernels the hand-written engines share: branch-free `exp`,
//! `ln`, `sigmoid` and `tanh` (so the loops over them vectorise), a lane-split
//! sum, `erf` and GELU, and the run-time check (and `wide_variant!`) for
//! the AVX2 + FMA build of the hot loops.

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
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    // The integer n sits in the low mantissa bits of `shifted`: read it there
    // (integer lanes) instead of `n as i32`, whose saturating conversion
    // does not vectorise.
    let n_int = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((n_int + 127) as u32) << 23)
}

/// [`exp`] with fused multiply-adds: the same range reduction and
/// polynomial, each step one rounding instead of two, within 2 ulp too. In
/// the AVX2 and AVX-512 builds of a loop (`wide_variant!`) each `mul_add` is
/// one instruction, so this costs about half of [`exp`]; the scalar build
/// calls `fmaf`, whose result is the same bits. For the encoders' softmax and
/// GELU only: the training engines keep [`exp`], whose bits their figures
/// were made with.
#[inline(always)]
pub fn exp_fused(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
    let n = shifted - MAGIC;
    let n_int = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let p = 1.987_569_1e-4_f32.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 5e-1);
    let e_r = p.mul_add(r * r, r) + 1.0;
    e_r * f32::from_bits(((n_int + 127) as u32) << 23)
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

/// Asks the CPU to bring every cache line of `values` into L2 (a hint: it
/// neither waits nor faults; nothing on CPUs other than x86-64).
#[inline]
pub fn prefetch_l2(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in values.chunks(16) {
        // SAFETY: a prefetch reads nothing the program sees and cannot fault; SSE is in every x86-64.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// The instruction sets the CPU kernels run with, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain Rust, any CPU.
    Scalar,
    /// AVX2 and FMA (x86-64 since 2013).
    Avx2,
    /// AVX-512 F, BW and VL with FMA (x86-64 servers since 2017): the packed GEMM's 12 × 32 tile.
    Avx512,
}

impl SimdLevel {
    /// The level named by `GMU_CPU`: `avx512`, `avx2` or `scalar`.
    pub fn parse(name: &str) -> Option<SimdLevel> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Some(SimdLevel::Avx512),
            "avx2" => Some(SimdLevel::Avx2),
            "scalar" => Some(SimdLevel::Scalar),
            _ => None,
        }
    }

    /// The best level this CPU has.
    pub fn detected() -> SimdLevel {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                if has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                    return SimdLevel::Avx512;
                }
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Scalar
    }
}

/// The level the kernels run at, chosen once: the best the CPU has, or a
/// lower one where `GMU_CPU=avx2|scalar` asks (`GMU_NO_AVX2=1` is `scalar`);
/// a level the CPU lacks is never used. An unknown `GMU_CPU` is refused by
/// the binary before any work ([`simd_level_from_env`]); here it is ignored.
pub fn simd_level() -> SimdLevel {
    static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let asked = simd_level_from_env().ok().flatten();
        let asked = if std::env::var_os("GMU_NO_AVX2").is_some() { Some(SimdLevel::Scalar) } else { asked };
        let detected = SimdLevel::detected();
        asked.map_or(detected, |a| a.min(detected))
    })
}

/// `GMU_CPU` read: `None` when unset, an error naming the value when it is not a level.
pub fn simd_level_from_env() -> Result<Option<SimdLevel>, String> {
    match std::env::var("GMU_CPU") {
        Err(_) => Ok(None),
        Ok(v) => SimdLevel::parse(&v)
            .map(Some)
            .ok_or_else(|| format!("GMU_CPU={v}: expected avx512, avx2 or scalar (a lower level than the CPU's)")),
    }
}

/// Whether the AVX2 + FMA (or better) kernels run.
#[cfg(target_arch = "x86_64")]
pub(crate) fn wide_simd() -> bool {
    simd_level() >= SimdLevel::Avx2
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7
/// before rounding), branch-free, with fused multiply-adds ([`exp_fused`]).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let poly = 1.061_405_4f32.mul_add(t, -1.453_152_1);
    let poly = poly.mul_add(t, 1.421_413_8);
    let poly = poly.mul_add(t, -0.284_496_72);
    let poly = poly.mul_add(t, 0.254_829_6) * t;
    (-poly).mul_add(exp_fused(-a * a), 1.0).copysign(x)
}

/// The exact (erf) GELU, `x · Φ(x)`, as BERT uses it.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `wide_variant!(pub fn name(a: A, b: B) -> R = body);` defines `name`,
/// which runs `body(a, b)` compiled for AVX-512 or AVX2 + FMA as
/// [`simd_level`] says (so its loops vectorise sixteen or eight wide), the
/// baseline build elsewhere. `body`
/// must be `#[inline(always)]` and should loop without closures, so that all
/// of it is compiled inside the AVX2 function.
macro_rules! wide_variant {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            match $crate::cpu::kernels::simd_level() {
                $crate::cpu::kernels::SimdLevel::Avx512 => {
                    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                    fn wide512($($arg: $ty),*) $(-> $ret)? {
                        $body($($arg),*)
                    }
                    // SAFETY: `simd_level` checked the CPU for AVX-512 F/BW/VL, AVX2 and FMA.
                    return unsafe { wide512($($arg),*) };
                }
                $crate::cpu::kernels::SimdLevel::Avx2 => {
                    #[target_feature(enable = "avx2,fma")]
                    fn wide($($arg: $ty),*) $(-> $ret)? {
                        $body($($arg),*)
                    }
                    // SAFETY: `simd_level` checked the CPU for AVX2 and FMA.
                    return unsafe { wide($($arg),*) };
                }
                $crate::cpu::kernels::SimdLevel::Scalar => {}
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use wide_variant;

wide_variant!(
    /// GELU of every value of `values`, in place.
    pub fn gelu_slice(values: &mut [f32]) = gelu_slice_body
);

#[inline(always)]
fn gelu_slice_body(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = gelu(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (accurate to ~1e-12 for |x| ≤ 4).
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_gelu_match_the_series() {
        let mut worst = 0f64;
        for i in -400..=400 {
            let x = i as f64 / 100.0;
            worst = worst.max((erf(x as f32) as f64 - erf_series(x)).abs());
        }
        assert!(worst < 3e-7, "erf max abs error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(9.0) - 1.0).abs() < 1e-7 && (erf(-9.0) + 1.0).abs() < 1e-7);
        // GELU(1) = Φ(1) = 0.841344746…, GELU(-1) = -(1 - Φ(1))
        assert!((gelu(1.0) - 0.841_344_7).abs() < 2e-7);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 2e-7);
        assert!((gelu(-20.0)).abs() < 1e-7 && (gelu(20.0) - 20.0).abs() < 1e-5);
    }

    #[test]
    fn exp_is_within_two_ulp() {
        for i in -870..=880 {
            let x = i as f32 / 10.0;
            let want = (x as f64).exp();
            for (name, got) in [("exp", exp(x)), ("exp_fused", exp_fused(x))] {
                assert!(((got as f64 - want) / want).abs() < 3e-7, "{name}({x}) = {got}, want {want}");
            }
        }
        // finer, over the softmax's range (x − max ≤ 0)
        for i in -200_000..=0 {
            let x = i as f32 / 10_000.0;
            let (got, want) = (exp_fused(x), (x as f64).exp());
            assert!(((got as f64 - want) / want).abs() < 3e-7, "exp_fused({x}) = {got}, want {want}");
        }
    }
}
