//! The synthetic experiment's models on the one stack: [`train`] turns the
//! synthetic data into two views (`v`, `t`) and trains a synthetic-experiment
//! classifier with [`train`](super::train) under its [`TrainingConfig`]
//! (usually a [`Preset`](crate::config::Preset): Adam steps with restarts),
//! then hands back the weights in the native engine's layout, which scores
//! the 1000×1000 maps fast. [`save`] writes the same model directory every
//! command writes; [`load`] reads one back for `eval` and `plot`.

use std::path::Path;

use burn::tensor::Device;

use super::{Trained, train as train_views};
use crate::config::TrainingConfig;
use crate::cpu::LossKind;
use crate::data::{Scaler, Split, SyntheticData};
use crate::engine::native::Network;
use crate::error::{GmuError, Result};
use crate::fusion::synthetic::{ModelSpec, flat_params};
use crate::store;

/// A trained synthetic-experiment model: the fit and its weights in the native layout.
#[derive(Debug)]
pub struct TrainedModel {
    /// What [`train`](super::train) returned (one member).
    pub trained: Trained,
    /// Input scaling over the joined inputs `[x_v, x_t]`, fitted on the training data.
    pub scaler: Scaler,
    /// The kept weights in the native engine.
    pub net: Network,
}

impl TrainedModel {
    /// The config it was trained with.
    pub fn config(&self) -> &TrainingConfig {
        &self.trained.config
    }

    /// The loss the probabilities are read with (the seed's sigmoid, or softmax).
    pub fn loss(&self) -> LossKind {
        self.trained.config.loss.unwrap_or(LossKind::SoftmaxCe)
    }

    /// Training loss before each step of the kept restart.
    pub fn history(&self) -> &[f32] {
        &self.trained.members[0].step_losses
    }

    /// Final training loss of every restart (the kept one is the smallest).
    pub fn restart_losses(&self) -> &[f32] {
        &self.trained.members[0].restart_losses
    }

    /// Wall time of the training, milliseconds.
    pub fn train_ms(&self) -> f64 {
        self.trained.seconds * 1e3
    }
}

/// The scaler of the joined inputs from one scaler per view.
fn joined_scaler(scalers: &[Scaler]) -> Scaler {
    Scaler {
        mean: scalers.iter().flat_map(|s| s.mean.iter().copied()).collect(),
        scale: scalers.iter().flat_map(|s| s.scale.iter().copied()).collect(),
        impute: scalers.iter().map(|s| s.impute.clone()).collect::<Option<Vec<Vec<f32>>>>().map(|m| m.concat()),
    }
}

/// Trains a synthetic-experiment classifier on every sample of `data` as
/// `config` says. Deterministic for a given seed and machine.
pub fn train(config: &TrainingConfig, data: &SyntheticData, device: &Device) -> Result<TrainedModel> {
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
    let trained = train_views(&data.to_multiview(), &[0, 1], &split, config, device)?;
    let member = &trained.members[0];
    let spec = ModelSpec::from_fusion(&member.spec).expect("a synthetic-experiment model");
    let net = Network::new(spec, flat_params(&member.net));
    Ok(TrainedModel { scaler: joined_scaler(&member.scalers), net, trained })
}

/// Saves the model directory (see [`store`](crate::store)) in `dir`.
pub fn save(model: &TrainedModel, dir: &Path) -> Result<()> {
    model.trained.save(dir, &model.config().label(), None, serde_json::Value::Null)
}

/// Loads a synthetic-experiment model directory (written by [`save`], or by
/// any command for a GMU → linear, FF or logistic-regression model on two
/// views): its training config, its scaler over the joined inputs
/// `[x_v, x_t]`, and the weights in the native engine.
pub fn load(dir: &Path, device: &Device) -> Result<(TrainingConfig, Scaler, Network)> {
    let (config, nets) = store::load(dir, device)?;
    let path = dir.join(store::CONFIG_FILE);
    let spec = (config.members.len() == 1).then(|| ModelSpec::from_fusion(&config.members[0].spec)).flatten();
    let Some(spec) = spec else {
        return Err(GmuError::Store {
            path,
            message: format!(
                "a {} model; this command takes the synthetic experiment's classifiers (use `gmu predict`)",
                config.method
            ),
        });
    };
    Ok((config.training, joined_scaler(&config.members[0].scalers), Network::new(spec, flat_params(&nets[0]))))
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::config::{Preset, Schedule};
    use crate::data::{Scaling, SyntheticConfig};
    use crate::engine::Engine;
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
        assert_eq!(a.net.params, b.net.params);
        assert_eq!(a.trained.members[0].engine, Engine::Native);
        let h = a.history();
        assert!(h.last().unwrap() < &(h[0] * 0.2), "{h:?}");
        assert_eq!(a.restart_losses().len(), 10);
        let best = a.restart_losses().iter().copied().fold(f32::INFINITY, f32::min);
        assert_eq!(
            a.net.loss(
                &{
                    let mut x = data.joined();
                    a.scaler.apply(&mut x);
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
        save(&model, dir.path()).unwrap();
        let (training, scaler, net) = load(dir.path(), &Device::default()).unwrap();
        assert_eq!(training, config);
        assert_eq!(scaler, model.scaler);
        assert_eq!(net.params, model.net.params);
        let saved = store::read_config(dir.path()).unwrap();
        assert_eq!(saved.members[0].step_losses, model.history());
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
            save(&model, dir.path()).unwrap();
            let predictor = crate::predict::Predictor::load(dir.path(), &device).unwrap();
            let views = data.to_multiview().views;
            let p = predictor.predict(&views).unwrap();
            let (prob, gate) = crate::experiments::synthetic::Predictor::from(&model).predict(&data.joined());
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
