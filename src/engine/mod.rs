//! The training engines. Every engine trains a model that burn's
//! [`FusionNet`](crate::fusion::FusionNet) defines, reads its initial weights from it or
//! from the same flat layout, and its results load back into it, so saving,
//! prediction and gate reports stay on the one model; each is tested against
//! burn's autodiff (loss, every gradient, a short training trajectory).
//!
//! | engine | trains | picked |
//! |---|---|---|
//! | burn's autodiff | every model, any backend | for everything the others do not take |
//! | [`native`] | the synthetic experiment's small models (GMU → linear, concat → tanh → linear, logistic regression; two feature views, one class per sample) | automatically up to [`NATIVE_MAX_PARAMS`] parameters |
//! | [`dense`] | the plain GMU classifier (GMU → linear, two feature views, single-label or multilabel) at real sizes | automatically above that |
//! | [`maxout`] | the paper's models: GMU (two views), concatenation (and so the single-modality models and the members of `avg-probs`) and linear sum, each with the maxout MLP, on feature views | automatically for those |
//! | [`cnn`] | any model with a CNN image encoder: the CNNs by hand, the rest on burn's autodiff | automatically for those |
//!
//! [`Engine::pick`] makes the choice for `train::train` from what
//! the model, the data and the device need: the hand-written engines run on
//! the CPU; `native` and `dense` want every view present and no modality
//! dropout, `maxout` has burn's missing-view rule, `cnn` leaves that rule
//! to burn (a missing picture is zero before its CNN); an explicit
//! engine (`--engine`) overrides, and one that cannot train the model is an
//! error naming why.
//!
//! Why hand-written engines: on the toy (a few dozen parameters) burn's
//! time goes into per-operation dispatch (`native` is 10–20× faster); at
//! MM-IMDb's size it goes into an unfused Adam, element-wise operations and
//! bookkeeping around a few large matrix products (`dense` and `maxout` are
//! about 2× faster than burn, see `BENCHMARKS.md` for the figures against
//! PyTorch); in the picture CNN it goes into layout copies and per-element
//! loops around small convolutions (`cnn` is 4–5× faster). They share
//! the kernels, loss, Adam and GEMMs of [`cpu`](crate::cpu).
//!
//! Layer 6 (see `ARCHITECTURE.md`): it owns the choice of engine and the engines;
//! it imports the model layer, the CPU kernels and the data types, never the
//! training config (a run's needs arrive as [`RunNeeds`]), the store or training.

pub mod choice;
pub mod cnn;
pub mod dense;
pub mod maxout;
pub mod native;

pub use crate::cpu::LossKind;

pub use choice::{Batches, Engine, FlatTraining, RunNeeds, TrainEngine};

use burn::tensor::Device;

use crate::error::{GmuError, Result};
use crate::fusion::FusionSpec;

/// The hand-written engines, in `--engine auto`'s order of preference; a new
/// engine is its file and one line here.
pub const ENGINES: [&dyn TrainEngine; 4] = [&native::Native, &dense::Dense, &maxout::Maxout, &cnn::Cnn];

impl Engine {
    /// The engine that trains `spec` for a run with `needs` on `device`.
    /// [`Engine::Auto`] asks every engine of [`ENGINES`] what it
    /// [supports](TrainEngine::supports): the first that supports and
    /// [prefers](TrainEngine::prefers) the model, else the first that supports
    /// it, else burn's autodiff (every model, every device). So the native
    /// engine takes a small synthetic-experiment model, the dense engine a plain
    /// GMU classifier, the maxout engine the paper's GMU, concatenation and
    /// linear-sum models, the cnn engine any model with a picture CNN. An
    /// explicit engine is returned as it is, or refused with its own reason.
    pub fn pick(self, spec: &FusionSpec, needs: &RunNeeds, device: &Device) -> Result<Engine> {
        let supported: Vec<&dyn TrainEngine> =
            ENGINES.iter().copied().filter(|e| e.supports(spec, needs, device).is_ok()).collect();
        match self {
            Engine::Auto => Ok(supported
                .iter()
                .find(|e| e.prefers(spec))
                .or_else(|| supported.first())
                .map_or(Engine::Burn, |e| e.engine())),
            Engine::Burn => Ok(Engine::Burn),
            explicit => {
                let engine =
                    ENGINES.iter().find(|e| e.engine() == explicit).expect("every engine but burn is registered");
                engine.supports(spec, needs, device).map(|()| explicit).map_err(|why| {
                    GmuError::invalid(
                        "engine",
                        format!("the {explicit} engine cannot train this {} model: {why}", spec.kind),
                    )
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelOptions, Preset, TrainingConfig};
    use crate::fusion::Task;
    use crate::fusion::synthetic::ModelKind;
    use crate::fusion::{FusionKind, SubnetSpec};

    fn spec(options: &ModelOptions, widths: [usize; 2], task: Task) -> FusionSpec {
        options.spec(widths.to_vec(), &[None, None], &[None, None], 3, task)
    }

    #[test]
    fn auto_picks_by_model_size_task_and_missing_views() {
        let device = Device::default();
        assert!(crate::device::is_cpu(&device));
        let toy = Preset::Default.config(ModelKind::Gmu, 0);
        let small = spec(&toy.model, [1, 1], Task::Multiclass);
        assert_eq!(Engine::Auto.pick(&small, &toy.run_needs(false), &device).unwrap(), Engine::Native);
        // Wide: the GEMM engine; multilabel: the native engine cannot, the dense one can.
        let wide = spec(&ModelOptions { hidden: 512, ..toy.model.clone() }, [4096, 300], Task::Multiclass);
        assert_eq!(Engine::Auto.pick(&wide, &toy.run_needs(false), &device).unwrap(), Engine::Dense);
        let task_loss = TrainingConfig { loss: None, ..toy.clone() };
        assert_eq!(
            Engine::Auto
                .pick(&spec(&toy.model, [1, 1], Task::Multilabel), &task_loss.run_needs(false), &device)
                .unwrap(),
            Engine::Dense
        );
        assert_eq!(
            Engine::Auto.pick(&spec(&toy.model, [1, 1], Task::Multilabel), &toy.run_needs(false), &device).unwrap(),
            Engine::Burn
        );
        // Missing views: burn. The paper's maxout models: the maxout engine, except the mixture of experts.
        assert_eq!(Engine::Auto.pick(&small, &toy.run_needs(true), &device).unwrap(), Engine::Burn);
        for kind in [FusionKind::Gmu, FusionKind::Concat, FusionKind::LinearSum, FusionKind::AvgProbs] {
            let paper = TrainingConfig::paper(kind);
            assert_eq!(
                Engine::Auto
                    .pick(&spec(&paper.model, [4, 4], Task::Multilabel), &paper.run_needs(false), &device)
                    .unwrap(),
                Engine::Maxout
            );
            // Missing views and modality dropout too: the engine has burn's missing-view rule.
            assert_eq!(
                Engine::Auto
                    .pick(&spec(&paper.model, [4, 4], Task::Multilabel), &paper.run_needs(true), &device)
                    .unwrap(),
                Engine::Maxout
            );
            // Gate supervision: a term on the gates, which only burn's autodiff adds; a method without gates keeps its engine.
            let mut supervised = paper.clone();
            supervised.view_noise = crate::config::ViewNoise { p: 0.3, gate_supervision: 1.0, ..Default::default() };
            let picked = Engine::Auto
                .pick(&spec(&paper.model, [4, 4], Task::Multilabel), &supervised.run_needs(false), &device)
                .unwrap();
            assert_eq!(picked, if kind == FusionKind::Gmu { Engine::Burn } else { Engine::Maxout }, "{kind}");
            let dropping = TrainingConfig { modality_dropout: 0.3, ..paper.clone() };
            assert_eq!(
                Engine::Auto
                    .pick(&spec(&paper.model, [4, 4], Task::Multilabel), &dropping.run_needs(false), &device)
                    .unwrap(),
                Engine::Maxout
            );
        }
        let moe = TrainingConfig::paper(FusionKind::Moe);
        assert_eq!(
            Engine::Auto.pick(&spec(&moe.model, [4, 4], Task::Multiclass), &moe.run_needs(false), &device).unwrap(),
            Engine::Burn
        );
        // The feed-forward net: native only.
        let ff = Preset::Default.config(ModelKind::Ff, 0);
        assert_eq!(
            Engine::Auto.pick(&spec(&ff.model, [1, 1], Task::Multiclass), &ff.run_needs(false), &device).unwrap(),
            Engine::Native
        );
    }

    /// A model with a picture CNN: `auto` picks the cnn engine for every
    /// fusion (missing views and modality dropout included), `--engine burn`
    /// stays burn, and naming the cnn engine for a model without a CNN is refused.
    #[test]
    fn a_model_with_a_cnn_gets_the_cnn_engine() {
        let device = Device::default();
        for kind in FusionKind::ALL {
            let config = TrainingConfig { modality_dropout: 0.3, ..TrainingConfig::paper(kind) };
            let mut with_cnn = spec(&config.model, [48, 4], Task::Multiclass);
            with_cnn.encoders[0] = SubnetSpec::Cnn { channels: 3, height: 4, width: 4, d_out: 8 };
            for missing in [false, true] {
                assert_eq!(
                    Engine::Auto.pick(&with_cnn, &config.run_needs(missing), &device).unwrap(),
                    Engine::Cnn,
                    "{kind}"
                );
            }
            assert_eq!(Engine::Cnn.pick(&with_cnn, &config.run_needs(false), &device).unwrap(), Engine::Cnn);
            assert_eq!(Engine::Burn.pick(&with_cnn, &config.run_needs(false), &device).unwrap(), Engine::Burn);
        }
        let paper = TrainingConfig::paper(FusionKind::Gmu);
        let err = Engine::Cnn
            .pick(&spec(&paper.model, [4, 4], Task::Multiclass), &paper.run_needs(false), &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cnn engine cannot train this gmu model") && err.contains("CNN image encoder"), "{err}");
    }

    #[test]
    fn an_explicit_engine_that_cannot_train_the_model_is_refused_with_the_reason() {
        let device = Device::default();
        let paper = TrainingConfig::paper(FusionKind::Concat);
        let maxout = spec(&paper.model, [4, 4], Task::Multiclass);
        let err = Engine::Dense.pick(&maxout, &paper.run_needs(false), &device).unwrap_err().to_string();
        assert!(err.contains("dense engine cannot train this concat model") && err.contains("linear head"), "{err}");
        let err = Engine::Native.pick(&maxout, &paper.run_needs(false), &device).unwrap_err().to_string();
        assert!(err.contains("native engine") && err.contains("logistic regression"), "{err}");
        let moe = TrainingConfig::paper(FusionKind::Moe);
        let err = Engine::Maxout
            .pick(&spec(&moe.model, [4, 4], Task::Multiclass), &moe.run_needs(false), &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("maxout engine cannot train this moe model") && err.contains("linear sum"), "{err}");
        let toy = Preset::Seed.config(ModelKind::Gmu, 0);
        let err = Engine::Dense
            .pick(&spec(&toy.model, [1, 1], Task::Multiclass), &toy.run_needs(false), &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("task's own loss"), "{err}");
        let err = Engine::Native
            .pick(&spec(&toy.model, [1, 1], Task::Multiclass), &toy.run_needs(true), &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing-view rule"), "{err}");
        assert_eq!(Engine::Burn.pick(&maxout, &paper.run_needs(true), &device).unwrap(), Engine::Burn);
    }
}
