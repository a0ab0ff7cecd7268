//! The choice of a training engine, as data and as a contract: [`Engine`]
//! (`--engine`), what a run asks of an engine ([`RunNeeds`]), and
//! [`TrainEngine`], which each hand-written engine implements to say what it
//! trains. `Engine::pick` (in the parent module) asks each engine in turn.
//! Imports the model layer's specs and the device check, nothing of the engines.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::cpu::{Adam, LossKind};
use crate::fusion::{FusionKind, FusionNet, FusionSpec};

/// Which engine trains a model (`--engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The fastest engine that can train the model (see `Engine::pick`).
    #[default]
    Auto,
    /// The hand-differentiated engine for the synthetic experiment's small models (`native`).
    Native,
    /// The GEMM engine for the plain GMU classifier (`dense`).
    Dense,
    /// The engine for the paper's maxout-MLP models (`maxout`).
    Maxout,
    /// burn's autodiff with the image CNNs by hand (`cnn`): models with a CNN encoder.
    Cnn,
    /// burn's autodiff: every model, every backend.
    Burn,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Auto => "auto",
            Engine::Native => "native",
            Engine::Dense => "dense",
            Engine::Maxout => "maxout",
            Engine::Cnn => "cnn",
            Engine::Burn => "burn",
        })
    }
}

/// What a training run asks of an engine beyond the model itself: read off
/// the training config (`config::TrainingConfig::run_needs`)
/// and the data, so this layer needs neither.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunNeeds {
    /// Some training rows lack a view.
    pub missing: bool,
    /// The probability of dropping a view in training (0 = off).
    pub modality_dropout: f64,
    /// Views are corrupted in training (`--view-noise`): every step needs its batch fresh.
    pub view_noise: bool,
    /// The gate is taught to close on the corrupted view (`--gate-supervision`):
    /// a loss term on the gates beside the task's.
    pub gate_supervision: bool,
    /// A max-norm constraint on the weights is on.
    pub max_norm: bool,
    /// A loss other than the task's own was asked for.
    pub loss: Option<LossKind>,
}

/// A hand-written engine's account of what it trains. `Engine::pick` asks
/// every engine of the registry (`ENGINES`, in the parent module) in order:
/// with `--engine auto` the first that supports and prefers the model, else
/// the first that supports it, else burn's autodiff, which trains everything.
pub trait TrainEngine: Sync {
    /// Its `--engine` value.
    fn engine(&self) -> Engine;

    /// `Ok` where it can train `spec` for a run with `needs` on `device`;
    /// otherwise the reason, which an explicit `--engine` reports.
    fn supports(&self, spec: &FusionSpec, needs: &RunNeeds, device: &Device) -> Result<(), String>;

    /// Whether `--engine auto` should take it for `spec` ahead of engines it
    /// would otherwise yield to (the native engine: only for small models).
    fn prefers(&self, spec: &FusionSpec) -> bool {
        let _ = spec;
        true
    }

    /// Starts training `model` (on the autodiff device) of `spec` on
    /// `batches` with Adam over its flat weights (`adam(n)` for `n` of them)
    /// and the run's `loss`, where the engine runs its own
    /// steps; `None` for one whose steps run on burn's autodiff (the cnn engine
    /// hands burn its CNNs' gradients instead).
    fn start(
        &self,
        spec: &FusionSpec,
        model: FusionNet,
        batches: &dyn Batches,
        adam: &dyn Fn(usize) -> Adam,
        loss: Option<LossKind>,
    ) -> Option<crate::error::Result<Box<dyn FlatTraining>>> {
        let _ = (spec, model, batches, adam, loss);
        None
    }
}

/// The training rows of one member as a hand-written engine reads them; the
/// training layer implements it over its data, scalers and split.
pub trait Batches {
    /// How many training rows there are (positions run over `0..len`).
    fn len(&self) -> usize;
    /// True without training rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Width of each view the member reads.
    fn widths(&self) -> Vec<usize>;
    /// Each view of the training rows at `positions`, scaled, a missing row
    /// zero (`[rows, d_i]` each), and their 0/1 targets `[rows, C]`.
    fn batch(&self, positions: &[usize]) -> (Vec<Vec<f32>>, Vec<f32>) {
        let (mut views, mut y) = (Vec::new(), Vec::new());
        self.batch_into(positions, &mut views, &mut y);
        (views, y)
    }
    /// [`batch`](Self::batch) into buffers a training loop reuses from step to
    /// step (resized to the batch; their old values are overwritten).
    fn batch_into(&self, positions: &[usize], views: &mut Vec<Vec<f32>>, y: &mut Vec<f32>);
    /// The class of every training row, where each row has one.
    fn classes(&self) -> Option<Vec<u8>>;
}

/// One member's weights under training on a hand-written engine: its flat
/// weights and Adam, and the workspaces its steps reuse.
pub trait FlatTraining {
    /// One Adam step on the training rows at `positions` with the `[rows, K]`
    /// presence mask `present` and the max-norm `limit`; returns the batch
    /// loss. A non-finite loss leaves the weights as they were.
    fn step(
        &mut self,
        batches: &dyn Batches,
        positions: &[usize],
        present: Option<Vec<f32>>,
        limit: Option<f32>,
    ) -> f32;
    /// The mean loss over every training row where the engine computes it
    /// itself in evaluation mode; `None`: the training layer computes it on
    /// the [`snapshot`](Self::snapshot) with burn.
    fn training_loss(&self, batches: &dyn Batches) -> Option<f32>;
    /// The flat weights and Adam (for checkpoints).
    fn flat(&mut self) -> (&mut Vec<f32>, &mut Adam);
    /// The running statistics, where the engine keeps them.
    fn running(&mut self) -> Option<&mut Vec<f32>> {
        None
    }
    /// Reseeds the engine's own randomness (dropout masks), where it has any.
    fn reseed(&mut self, seed: u64) {
        let _ = seed;
    }
    /// The current weights as an inference model on `inference`.
    fn snapshot(&self, inference: &Device) -> FusionNet;
    /// The training itself, for an engine's own functions that read its state (the maxout
    /// engine's weights packed for inference without the snapshot's tensors).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The hand-written engines run on the CPU: `Ok` there, the reason elsewhere.
pub fn on_cpu(device: &Device) -> Result<(), String> {
    if crate::device::is_cpu(device) {
        Ok(())
    } else {
        Err(format!("it runs on the CPU, and the device is {device:?}"))
    }
}

/// For engines without a missing-view rule: `Ok` when every training row has
/// every view and modality dropout is off.
pub fn every_view(needs: &RunNeeds) -> Result<(), String> {
    if needs.missing {
        Err("it has no missing-view rule, and some training rows lack a view".to_string())
    } else if needs.modality_dropout > 0.0 {
        Err("it has no missing-view rule, and modality dropout is on".to_string())
    } else {
        Ok(())
    }
}

/// For engines that train a task's own loss only.
pub fn own_loss(spec: &FusionSpec, needs: &RunNeeds) -> Result<(), String> {
    match needs.loss {
        Some(l) if l != spec.task.loss() => Err("it trains the task's own loss".into()),
        _ if needs.gate_supervision && matches!(spec.kind, FusionKind::Gmu | FusionKind::Moe) => {
            Err("it trains the task's own loss, without a term on the gates (--gate-supervision)".into())
        }
        _ => Ok(()),
    }
}
