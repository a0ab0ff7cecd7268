//! Fusion layers: how the representations of several modalities become one.

pub mod gmu;

pub use gmu::{Gmu, GmuConfig, GmuOutput};
