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
//! ```no_run
//! use gmu::experiment::{run_demo, DemoOptions};
//! let device = burn::tensor::Device::default();
//! let report = run_demo(&DemoOptions::default(), "gmu-demo".as_ref(), &device, &mut |line| eprintln!("{line}"))?;
//! assert!(report.gmu.accuracy > 0.99);
//! # Ok::<(), gmu::GmuError>(())
//! ```
//!
//! ## Layout
//! - [`fusion`]: the GMU layer (K ≥ 2 modalities, gates returned), the paper's building
//!   blocks, and every fusion method of its Table 2 behind [`fusion::FusionSpec`].
//! - [`config`]: the one [`config::TrainingConfig`] of every model (model, optimiser,
//!   schedule, engine, seed), its presets and the paper's random-search ranges.
//! - [`fit`]: training any model on any multi-view data under that config (Adam steps
//!   with restarts, or epochs with early stopping on dev macro-F1), gate reports, random
//!   search; [`comparison`]: every method on one data set, side by side.
//! - [`engine`]: the hand-written training engines beside burn's autodiff (`native` for the
//!   synthetic experiment's small models, `dense` for the plain GMU classifier at real sizes,
//!   `maxout` for the paper's maxout-MLP models, `cnn` for the picture CNN),
//!   with their shared kernels, loss and Adam, each tested against burn's autodiff, and
//!   [`engine::Engine::pick`], which chooses one for a model and a device.
//! - [`model`]: the synthetic experiment's classifiers as `FusionSpec`s, and their flat parameter layout.
//! - [`model_dir`]: the versioned model directory every training command writes;
//!   [`predict`]: `Predictor::load(dir, &device)?.predict(&views)`: probabilities, gates,
//!   contribution shares, occlusion importance, missing views.
//! - [`robustness`]: every model of a run re-scored with noise on one view.
//! - [`train`]: the synthetic experiment's models on that stack, in the native layout its maps use.
//! - [`data`]: the synthetic generator, multi-view files (CSV/NPY), MM-IMDb (HDF5 and raw
//!   archive), and the embedded mfeat and Twemoji sets.
//! - [`encoders`]: pretrained, frozen text and image encoders (MiniLM, GloVe, EfficientNet-Lite0)
//!   fetched from PyPI wheels, and `encode` to feature files with a sidecar naming the encoder.
//! - [`metrics`], [`plot`]: scores (F1 as scikit-learn computes it) and figures, free of tensor types.
//! - [`experiment`]: the demo and the paper's protocol.
#![warn(missing_docs)]

pub mod budget;
pub mod comparison;
pub mod config;
pub mod data;
pub mod device;
pub mod encoders;
pub mod engine;
pub mod error;
pub mod experiment;
pub mod fit;
pub mod fusion;
pub mod metrics;
pub mod model;
pub mod model_dir;
pub mod output;
pub mod plot;
pub mod predict;
pub mod robustness;
pub mod train;

pub use error::{GmuError, Result};
