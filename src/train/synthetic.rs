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
    use crate::engine::Engine;
    use crate::experiments::synthetic::NativeScorer;
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
    fn same_seed_same_model_and_loss_falls() {
        let data = toy(1);
        let config = Preset::Default.config(ModelKind::Gmu, 9);
        let a = train(&config, &data, &Device::default()).unwrap();
        let b = train(&config, &data, &Device::default()).unwrap();
        let (sa, sb) = (NativeScorer::new(&a).unwrap(), NativeScorer::new(&b).unwrap());
        assert_eq!(sa.net.params, sb.net.params);
        let member = &a.config.members[0];
        assert_eq!(member.engine, Some(Engine::Native));
        let h = &member.step_losses;
        assert!(h.last().unwrap() < &(h[0] * 0.2), "{h:?}");
        assert_eq!(member.restart_losses.len(), 10);
        let best = member.restart_losses.iter().copied().fold(f32::INFINITY, f32::min);
        assert_eq!(
            sa.net.loss(
                &{
                    let mut x = data.joined();
                    sa.scaler.apply(&mut x);
                    x
                },
                &data.c,
                LossKind::SoftmaxCe
            ),
            best
        );
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let config = steps(Preset::Default.config(ModelKind::Gmu, 1), 5, 10);
        let data = SyntheticConfig { dim: 2, ..Default::default() }.generate(&mut StdRng::seed_from_u64(2)).unwrap();
        let model = train(&config, &data, &Device::default()).unwrap();
        model.save(dir.path()).unwrap();
        let loaded = Model::load(dir.path(), &Device::default()).unwrap();
        assert_eq!(loaded.config.training, config);
        let (ours, theirs) = (NativeScorer::new(&model).unwrap(), NativeScorer::new(&loaded).unwrap());
        assert_eq!(ours.scaler, theirs.scaler);
        assert_eq!(ours.net.params, theirs.net.params);
        let saved = crate::store::read_config(dir.path()).unwrap();
        assert_eq!(saved.members[0].step_losses, model.config.members[0].step_losses);
        assert_eq!(saved.members[0].restart_losses.len(), 10);
    }

    /// The synthetic models load as fusion models too and predict what the
    /// native engine computes: P(C = 1) = softmax of the logits, and the gate.
    #[test]
    fn synthetic_models_predict_through_the_model_directory() {
        let device = Device::default();
        let data = toy(5);
        for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
            let config = steps(Preset::Default.config(kind, 2), 30, 2);
            let model = train(&config, &data, &device).unwrap();
            let dir = tempfile::tempdir().unwrap();
            model.save(dir.path()).unwrap();
            let loaded = Model::load(dir.path(), &device).unwrap();
            let views = data.to_multiview().views;
            let p = loaded.predict(&views).unwrap();
            let (prob, gate) = NativeScorer::new(&model).unwrap().predict(&data.joined());
            for i in 0..data.len() {
                assert!(
                    (p.probs[2 * i + 1] - prob[i]).abs() < 1e-5,
                    "{kind} row {i}: {} vs {}",
                    p.probs[2 * i + 1],
                    prob[i]
                );
                if kind == ModelKind::Gmu {
                    assert!((p.gate_means.as_ref().unwrap()[2 * i] - gate[i]).abs() < 1e-5);
                }
            }
        }
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
