//! The CPU kernels every hand-written engine and encoder shares: SIMD
//! element-wise functions with run-time dispatch ([`kernels`]), the packed
//! GEMM ([`packed`]; in bf16 on AMX, [`amx`], where asked) and strided products through the `gemm` crate
//! ([`gemm`]), the picture CNN's convolutions ([`conv`]), the losses
//! ([`loss`]) and Adam ([`adam`]).
//!
//! This layer works on plain `f32` slices. It owns no model and imports
//! nothing of gmu but [`error`](crate::error): no burn tensors, no data, no
//! engine.

pub mod adam;
pub mod amx;
pub mod conv;
pub mod gemm;
pub mod kernels;
pub mod loss;
pub mod packed;

pub use adam::Adam;
pub use loss::LossKind;
