//! The AMX side of [`super::Bf16Matrix`]'s products: whether the CPU has
//! AMX and Linux grants it, and one 32 × 32 block of sums in four tiles.
//! Written with `asm!`: the AMX intrinsics are not stable Rust.

use std::arch::asm;

use super::{Start, TK, TN};

/// Whether the CPU has AMX-TILE and AMX-BF16 and Linux grants this process
/// the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(super) fn detect() -> bool {
    // CPUID leaf 7, sub-leaf 0: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
    // CPUID leaf 7 exists on every CPU with AVX-512 (checked by the caller).
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
        return false;
    }
    // arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18): 0 when granted.
    let ret: i64;
    // SAFETY: a plain system call; it reads no memory of ours.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") 158i64 => ret,
            in("rdi") 0x1023i64,
            in("rsi") 18i64,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub(super) fn detect() -> bool {
    false
}

/// Loads the tile configuration the blocks use (palette 1; eight tiles of 16
/// rows by 64 bytes). Once per call of [`super::Bf16Matrix`]'s products,
/// before the blocks; [`release`] after them.
///
/// # Safety
/// AMX granted ([`detect`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub(super) unsafe fn configure() {
    #[repr(C, align(64))]
    struct Config([u8; 64]);
    let mut config = Config([0; 64]);
    config.0[0] = 1;
    for t in 0..8 {
        config.0[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
        config.0[48 + t] = 16;
    }
    // SAFETY: AMX granted (the caller); the configuration is 64 aligned bytes.
    unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack)) };
}

/// Gives back the tile state [`configure`] took.
///
/// # Safety
/// AMX granted, after [`configure`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub(super) unsafe fn release() {
    // SAFETY: as the caller promises.
    unsafe { asm!("tilerelease", options(nostack)) };
}

/// A 32 × 32 block of sums in four accumulator tiles: `block[i, j] (start) +=
/// a[i, ..] · W[.., j]` over `k_tiles` tiles of 32 rows of `k`; `a`'s rows
/// `width` apart in bf16, `strips` the two 16-column strips of `W`'s tiles.
///
/// # Safety
/// AMX granted and [`configure`]d; `a` holds 32 rows of `k_tiles · 32`
/// values, each strip `k_tiles` tiles, `block` 32 rows of 32 values `ld`
/// apart (and a [`Start::Bias`] 32 values).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub(super) unsafe fn block(
    start: Start,
    a: *const u16,
    width: usize,
    [b0, b1]: [*const u16; 2],
    k_tiles: usize,
    block: *mut f32,
    ld: usize,
) {
    // SAFETY: every tile load reads 16 rows of 64 bytes inside the extents the caller promises.
    unsafe {
        match start {
            // the bias row loaded with stride 0 into every row of a tile
            Start::Bias(b) => asm!(
                "tileloadd tmm0, [{b0} + {zero}*1]",
                "tileloadd tmm1, [{b1} + {zero}*1]",
                "tileloadd tmm2, [{b0} + {zero}*1]",
                "tileloadd tmm3, [{b1} + {zero}*1]",
                b0 = in(reg) b, b1 = in(reg) b.add(TN), zero = in(reg) 0usize,
                options(nostack),
            ),
            Start::Zero => {
                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack))
            }
            // a residual in `out`, or the start values in a spill block
            Start::Block => asm!(
                "tileloadd tmm0, [{c0} + {s}*1]",
                "tileloadd tmm1, [{c1} + {s}*1]",
                "tileloadd tmm2, [{c2} + {s}*1]",
                "tileloadd tmm3, [{c3} + {s}*1]",
                c0 = in(reg) block, c1 = in(reg) block.add(TN), c2 = in(reg) block.add(TN * ld),
                c3 = in(reg) block.add(TN * ld + TN), s = in(reg) ld * 4, options(nostack),
            ),
        }
        let (a0, a1) = (a, a.add(TN * width));
        for kt in 0..k_tiles {
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0.add(kt * TK), a1 = in(reg) a1.add(kt * TK),
                b0 = in(reg) b0.add(kt * TK * TN), b1 = in(reg) b1.add(kt * TK * TN),
                sa = in(reg) width * 2, sb = in(reg) 64usize, options(nostack),
            );
        }
        asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c3} + {s}*1], tmm3",
            c0 = in(reg) block, c1 = in(reg) block.add(TN), c2 = in(reg) block.add(TN * ld),
            c3 = in(reg) block.add(TN * ld + TN), s = in(reg) ld * 4, options(nostack),
        );
    }
}
