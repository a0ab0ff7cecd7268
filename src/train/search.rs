//! Random search over the paper's ranges ([`TrainingConfig::sample`]), model
//! selection on the dev macro-F1.

use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{EpochObserver, train_observed};
use crate::config::TrainingConfig;
use crate::data::{MultiviewData, Split};
use crate::error::{GmuError, Result};
use crate::predict::{Evaluation, Model};

/// Random search: `trials` configurations drawn by [`TrainingConfig::sample`]
/// (seeded by `base.seed`; one trial trains `base` as given), each trained
/// with [`train`](super::train); keeps the model with the best dev macro-F1.
pub fn search(
    data: &MultiviewData,
    modalities: &[usize],
    split: &Split,
    base: &TrainingConfig,
    trials: usize,
    device: &Device,
) -> Result<Search> {
    search_with(data, modalities, split, base, trials, Watch { checkpoint: None, observe: &|_, _, _| Ok(()) }, device)
}

/// Where a search's training reports: its checkpoint folder and its epochs' observer.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    /// Each trial checkpointed in `checkpoint/trial-<t>/` (see
    /// [`train_with`](super::train_with)): a killed search resumes, finished
    /// trials included. `None`: no checkpoints.
    pub checkpoint: Option<&'a std::path::Path>,
    /// Sees every epoch of every trial, in order.
    pub observe: &'a EpochObserver<'a>,
}

/// [`search`], checkpointed and observed as `watch` says.
pub fn search_with(
    data: &MultiviewData,
    modalities: &[usize],
    split: &Split,
    base: &TrainingConfig,
    trials: usize,
    watch: Watch<'_>,
    device: &Device,
) -> Result<Search> {
    let Watch { checkpoint, observe } = watch;
    if trials == 0 {
        return Err(GmuError::invalid("trials", "must be at least 1"));
    }
    let mut rng = StdRng::seed_from_u64(base.seed ^ 0x005E_A7C4);
    let mut best: Option<(Model, Evaluation)> = None;
    let mut log = Vec::new();
    for t in 0..trials {
        let config = if trials == 1 { base.clone() } else { base.sample(&mut rng) };
        let dir = checkpoint.map(|c| c.join(format!("trial-{t}")));
        let model = train_observed(data, modalities, split, &config, dir.as_deref(), observe, device)?;
        let dev = model.evaluate(data, &split.dev, false)?.0;
        log.push((config, dev.f1.macro_));
        if best.as_ref().is_none_or(|(_, b)| dev.f1.macro_ > b.f1.macro_) {
            best = Some((model, dev));
        }
    }
    let (model, dev) = best.expect("trials ≥ 1");
    Ok(Search { model, dev, trials: log })
}

/// What [`search`] returns.
#[derive(Debug)]
pub struct Search {
    /// The model with the best dev macro-F1.
    pub model: Model,
    /// Its dev scores.
    pub dev: Evaluation,
    /// Every trial's config and dev macro-F1, in order.
    pub trials: Vec<(TrainingConfig, f64)>,
}
