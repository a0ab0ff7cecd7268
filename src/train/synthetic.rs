//! The synthetic experiment's models on the one stack: [`train`] turns the
//! synthetic data into two views (`v`, `t`) and trains a synthetic-experiment
//! classifier (GMU → linear, concat → tanh → linear, logistic regression)
//! with [`train`](super::train) under its [`TrainingConfig`] (usually a
//! [`Preset`](crate::config::Preset): Adam steps with restarts). The result is
//! the one [`Model`] type, saved and loaded as every model is; the maps score
//! it in the native engine's layout
//! (`experiments::synthetic::NativeScorer`).

use burn::tensor::Device;

use super::train as train_views;
use crate::config::TrainingConfig;
use crate::data::{Split, SyntheticData};
use crate::error::{GmuError, Result};
use crate::predict::Model;

/// Trains a synthetic-experiment classifier on every sample of `data` as
/// `config` says. Deterministic for a given seed and machine.
pub fn train(config: &TrainingConfig, data: &SyntheticData, device: &Device) -> Result<Model> {
    if config.model.synthetic_kind().is_none() {
        return Err(GmuError::invalid(
            "model",
            "the synthetic experiment trains gmu (linear head), ff (concat, tanh head) or logreg (concat, linear head)",
        ));
    }
    if data.is_empty() {
        return Err(GmuError::invalid("data", "no training samples"));
    }
    let split = Split { train: (0..data.len()).collect(), dev: vec![], test: vec![] };
    train_views(&data.to_multiview(), &[0, 1], &split, config, device)
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::config::{Preset, Schedule};
    use crate::cpu::LossKind;
    use crate::data::{Scaling, SyntheticConfig};
    use crate::fusion::synthetic::ModelKind;

    pub(crate) fn toy(seed: u64) -> SyntheticData {
        SyntheticConfig::default().generate(&mut StdRng::seed_from_u64(seed)).unwrap()
    }

    /// `config` with `steps` steps and `restarts` restarts, full batch.
    pub(crate) fn steps(mut config: TrainingConfig, steps: usize, restarts: usize) -> TrainingConfig {
        config.schedule = Schedule::Steps { steps, batch_size: None, restarts };
        config
    }

    #[test]
    fn a_diverging_loss_is_reported() {
        let data = toy(1);
        let mut config = Preset::Seed.config(ModelKind::Logreg, 0);
        config.scaling = Scaling::None;
        config.optimizer.lr = 3e38;
        config.loss = Some(LossKind::SoftmaxCe);
        let err = train(&config, &data, &Device::default()).unwrap_err().to_string();
        assert!(err.contains("non-finite"), "{err}");
    }

    /// A model the synthetic experiment does not train is refused by name.
    #[test]
    fn other_models_are_refused() {
        let config = crate::config::TrainingConfig::paper(crate::fusion::FusionKind::Gmu);
        let err = train(&config, &toy(1), &Device::default()).unwrap_err().to_string();
        assert!(err.contains("synthetic experiment trains gmu"), "{err}");
    }
}
