//! Which device gmu runs on (`--device`): burn's CPU backend this build has
//! (flex by default, ndarray with `--features ndarray`), or with the `wgpu`
//! Cargo feature a GPU through wgpu (Vulkan, Metal, DX12; on a machine
//! without a GPU, Mesa's software Vulkan `lavapipe` runs it on the CPU).
//!
//! The library never picks a device itself: every entry point takes one.
//! On the CPU the hand-written engines and encoders run where they can
//! (`engine::Engine::pick`); on any other device
//! everything runs on burn.
//!
//! Layer 2 (see `ARCHITECTURE.md`): it owns the device kinds and imports only [`error`](crate::error).

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

#[cfg(not(feature = "wgpu"))]
use crate::error::GmuError;
use crate::error::Result;

/// A kind of device (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// burn's CPU backend, with gmu's own engines where they apply.
    #[default]
    Cpu,
    /// The default wgpu adapter (needs a build with `--features wgpu`).
    Wgpu,
}

impl DeviceKind {
    /// The device of this kind, or an error saying how to get it.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceKind::Cpu => Ok(cpu()),
            DeviceKind::Wgpu => wgpu(),
        }
    }
}

/// The CPU device of the backend this build has, whatever else is compiled
/// in (with the `wgpu` feature, burn's own default is the GPU).
pub fn cpu() -> Device {
    #[cfg(feature = "flex")]
    return Device::from(burn::backend::FlexDevice);
    #[cfg(all(feature = "ndarray", not(feature = "flex")))]
    return Device::from(burn::backend::NdArrayDevice::default());
    #[allow(unreachable_code)]
    Device::default()
}

/// True for a device of one of burn's CPU backends, whose memory the
/// hand-written engines and encoders share.
pub fn is_cpu(device: &Device) -> bool {
    let name = format!("{device:?}");
    ["Flex", "NdArray"].iter().any(|backend| name.contains(backend))
}

/// The default wgpu adapter.
#[cfg(feature = "wgpu")]
pub fn wgpu() -> Result<Device> {
    Ok(Device::from(burn::backend::WgpuDevice::default()))
}

/// Without the `wgpu` feature: an error that says how to build it.
#[cfg(not(feature = "wgpu"))]
pub fn wgpu() -> Result<Device> {
    Err(GmuError::invalid(
        "device",
        "this gmu was built without the `wgpu` feature; build it with `cargo build --release --features wgpu`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_device_is_one_the_engines_take() {
        assert!(is_cpu(&DeviceKind::Cpu.device().unwrap()));
        #[cfg(not(feature = "wgpu"))]
        assert!(DeviceKind::Wgpu.device().unwrap_err().to_string().contains("--features wgpu"));
    }
}
