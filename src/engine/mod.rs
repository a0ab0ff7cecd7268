//! The training engines. Every engine trains a model that burn's
//! [`FusionNet`](crate::fusion::FusionNet) defines, reads its initial weights from it or
//! from the same flat layout, and its results load back into it, so saving,
//! prediction and gate reports stay on the one model; each is tested against
//! burn's autodiff (loss, every gradient, a short training trajectory).
//!
//! | engine | trains | picked |
//! |---|---|---|
//! | burn's autodiff | every model, any backend | for everything the others do not take |
//! | [`native`] | the synthetic experiment's small models (GMU, feed-forward, logistic regression) | by the synthetic presets (`--engine burn` overrides) |
//! | [`dense`] | the plain GMU classifier (`--fusion gmu --head linear`, two feature views) at real sizes | automatically by `fit` (`--engine burn` overrides) |
//!
//! Why two hand-written engines: on the toy (a few dozen parameters) burn's
//! time goes into per-operation dispatch (`native` is 10–20× faster); at
//! MM-IMDb's size it goes into an unfused Adam and bookkeeping around four
//! large matrix products (`dense` is about 2× faster, level with PyTorch).
//! `BENCHMARKS.md` has the figures. They share [`kernels`] and [`adam`].

pub mod adam;
#[cfg(test)]
mod conformance;
pub mod dense;
pub mod kernels;
pub mod native;

pub use adam::Adam;
