//! The CPU kernels every hand-written engine and encoder shares: SIMD
//! element-wise functions with run-time dispatch ([`kernels`]), the packed
//! GEMM ([`packed`]; in bf16 on AMX or AVX512-BF16, [`bf16`], where asked) and strided products through the `gemm` crate
//! ([`gemm`]), the picture CNN's convolutions ([`conv`]), the losses
//! ([`loss`]) and Adam ([`adam`]).
//!
//! This layer works on plain `f32` slices. It owns no model and imports
//! nothing of gmu but [`error`](crate::error): no burn tensors, no data, no
//! engine.

pub mod adam;
pub mod bf16;
pub mod conv;
pub mod gemm;
pub mod kernels;
pub mod loss;
pub mod packed;

pub use adam::Adam;
pub use loss::LossKind;

#[cfg(test)]
pub(crate) mod testing {
    //! What the tests of this layer and the layers above share when a check cannot run here.

    /// Says, past the test harness's capture (so it shows even for a test
    /// that passes), that a check was skipped and why, and counts it in
    /// `$GMU_SKIPPED` (a file, one line per skip) when that is set.
    pub fn skipped(what: &str, why: &str) {
        use std::io::Write;
        let line = format!("SKIPPED {what}: {why}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        if let Ok(path) = std::env::var("GMU_SKIPPED")
            && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// Whether no bf16 kernel runs on this CPU (then `what` is reported [`skipped`]).
    pub fn skipped_without_bf16(what: &str) -> bool {
        if super::bf16::bf16_kernel().is_some() {
            return false;
        }
        skipped(what, "this CPU has neither AMX-BF16 nor AVX512-BF16");
        true
    }
}
