//! # gmu: Gated Multimodal Units for information fusion
//!
//! A Rust implementation of the Gated Multimodal Unit of Arevalo, Solorio,
//! Montes-y-Gómez and González, *Gated Multimodal Units for Information
//! Fusion* (ICLR 2017 workshop, arXiv:1702.01992), built on burn 0.22:
//!
//! ```text
//! h_i = tanh(W_i x_i)      z = σ(W_z [x_1, x_2])      h = z ⊙ h_1 + (1 − z) ⊙ h_2
//! ```
//!
//! ## Quickstart
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use gmu::fusion::GmuConfig;
//!
//! let device = Device::default();
//! // Two modalities of widths 4096 (image) and 300 (text), 64 hidden units.
//! let gmu = GmuConfig::new(vec![4096, 300], 64).init(&device);
//! let out = gmu.forward(&[Tensor::zeros([8, 4096], &device), Tensor::zeros([8, 300], &device)]);
//! assert_eq!(out.fused.dims(), [8, 64]);
//! assert_eq!(out.gates.dims(), [8, 2, 64]); // per sample, per modality, per unit
//! ```
//!
//! The synthetic experiment of the paper and of the seed post, end to end:
//!
//! ```
//! use gmu::experiments::synthetic::{run_demo, DemoOptions};
//! let device = burn::tensor::Device::default();
//! let out = tempfile::tempdir().unwrap(); // `gmu demo` writes its maps and models here
//! let options = DemoOptions { resolution: 60, test_size: 2000, ..DemoOptions::default() };
//! let report = run_demo(&options, out.path(), &device, &mut |line| eprintln!("{line}"))?;
//! assert!(report.gmu.accuracy > 0.99);
//! # Ok::<(), gmu::GmuError>(())
//! ```
//!
//! ## Layout
//! Layers, bottom to top; a module imports only from its own layer or below
//! (`tests/layers.rs` fails on an import that climbs or closes a circle, and
//! `ARCHITECTURE.md` gives one paragraph a layer and the recipes for extending gmu):
//! - [`error`]; [`metrics`] (F1 as scikit-learn computes it) and [`budget`] (memory checks);
//! - [`io`] (NPY files, output folders), [`cpu`] (kernels, GEMMs, the picture CNN's
//!   convolutions, losses, Adam), [`device`] (`--device`), [`plot`] (figures) — no model;
//! - [`fusion`]: the GMU layer (K ≥ 2 modalities, gates returned), the paper's building
//!   blocks, and every fusion method of its Table 2 behind [`fusion::FusionSpec`];
//! - [`encoders`]: pretrained, frozen text and image encoders (MiniLM, GloVe,
//!   EfficientNet-Lite0) fetched from PyPI wheels, and `encode` to feature files;
//! - [`data`]: the synthetic generator, multi-view files (CSV/NPY), MM-IMDb (HDF5 and raw
//!   archive), the embedded mfeat and Twemoji sets;
//! - [`engine`]: the hand-written training engines beside burn's autodiff, and
//!   [`engine::Engine::pick`], which chooses one for a model, a run and a device;
//! - [`config`]: the one [`config::TrainingConfig`] of every model, its presets and the
//!   paper's random-search ranges;
//! - [`store`]: the versioned model directory every training command writes;
//! - [`predict`]: a trained model on new data: probabilities, gates, contribution shares,
//!   occlusion importance, missing views;
//! - [`train`]: training any model on any multi-view data under that config (Adam steps
//!   with restarts, or epochs with early stopping on dev macro-F1), gate reports, random
//!   search, and the synthetic experiment's models;
//! - [`experiments`]: the demo and the paper's protocol, every method side by side, the
//!   robustness sweep.
#![warn(missing_docs)]

pub mod budget;
pub mod config;
pub mod cpu;
pub mod data;
pub mod device;
pub mod encoders;
pub mod engine;
pub mod error;
pub mod experiments;
pub mod export;
pub mod fusion;
pub mod io;
pub mod metrics;
pub mod plot;
pub mod predict;
pub mod serve;
pub mod store;
pub mod train;

pub use error::{GmuError, Result};
