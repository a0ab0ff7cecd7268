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

pub mod cnn;
pub mod dense;
pub mod maxout;
pub mod native;

pub use crate::cpu::LossKind;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result};
use crate::fusion::synthetic::ModelSpec;
use crate::fusion::{FusionKind, FusionSpec, HeadKind, SubnetSpec};

/// Which engine trains a model (`--engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The fastest engine that can train the model (see [`Engine::pick`]).
    #[default]
    Auto,
    /// The hand-differentiated engine for the synthetic experiment's small models ([`native`]).
    Native,
    /// The GEMM engine for the plain GMU classifier ([`dense`]).
    Dense,
    /// The engine for the paper's maxout-MLP models ([`maxout`]).
    Maxout,
    /// burn's autodiff with the image CNNs by hand ([`cnn`]): models with a CNN encoder.
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

/// Above this many parameters [`Engine::Auto`] prefers the GEMM engine to the
/// native one: the native engine's scalar loops win on the toy (a few dozen
/// parameters, see `BENCHMARKS.md`), the GEMM's blocked kernels on anything wide.
pub const NATIVE_MAX_PARAMS: usize = 20_000;

/// What a training run asks of an engine beyond the model itself: read off
/// the training config (`config::TrainingConfig::run_needs`)
/// and the data, so this layer needs neither.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunNeeds {
    /// Some training rows lack a view.
    pub missing: bool,
    /// The probability of dropping a view in training (0 = off).
    pub modality_dropout: f64,
    /// A max-norm constraint on the weights is on.
    pub max_norm: bool,
    /// A loss other than the task's own was asked for.
    pub loss: Option<LossKind>,
}

impl Engine {
    /// The engine that trains `spec` for a run with `needs` on `device`.
    /// `needs.missing` says whether some training rows lack a view (the
    /// native and dense engines have no missing-view rule; the maxout engine
    /// has burn's). [`Engine::Auto`] gives the native engine
    /// for a small synthetic-experiment model, the dense engine for a plain GMU
    /// classifier, the maxout engine for the paper's GMU, concatenation and
    /// linear-sum models, the cnn engine for any model with a picture CNN, and
    /// burn for everything else; an explicit engine is
    /// returned as it is, or refused with the reason it cannot train the model.
    pub fn pick(self, spec: &FusionSpec, needs: &RunNeeds, device: &Device) -> Result<Engine> {
        let on_cpu = if crate::device::is_cpu(device) {
            Ok(())
        } else {
            Err(format!("it runs on the CPU, and the device is {device:?}"))
        };
        // The native and dense engines want every view; the maxout engine has burn's missing-view rule.
        let common = on_cpu.clone().and_then(|()| {
            if needs.missing {
                Err("it has no missing-view rule, and some training rows lack a view".to_string())
            } else if needs.modality_dropout > 0.0 {
                Err("it has no missing-view rule, and modality dropout is on".to_string())
            } else {
                Ok(())
            }
        });
        let identity = spec.encoders.iter().all(|e| *e == SubnetSpec::Identity);
        let features = spec.d_inputs.len() == 2 && identity;
        let native = common.clone().and_then(|()| {
            let synthetic = ModelSpec::from_fusion(spec).ok_or_else(|| {
                "it trains GMU → linear, concat → tanh → linear and logistic regression on two feature views, one class per sample".to_string()
            })?;
            if needs.max_norm {
                return Err("it has no max-norm constraint".into());
            }
            Ok(synthetic.n_params())
        });
        let task_loss = spec.task.loss();
        let maxout = on_cpu.clone().and_then(|()| {
            let front = match spec.kind {
                FusionKind::Gmu => spec.d_inputs.len() == 2,
                FusionKind::Concat | FusionKind::AvgProbs | FusionKind::LinearSum => true,
                FusionKind::Moe | FusionKind::Custom => false,
            };
            if !(front && spec.head == HeadKind::Maxout && identity) {
                Err("it trains the GMU (two views), concatenation and linear sum with the maxout MLP, on feature views"
                    .to_string())
            } else if needs.loss.is_some_and(|l| l != task_loss) {
                Err("it trains the task's own loss".into())
            } else {
                Ok(())
            }
        });
        let cnn = on_cpu.clone().and_then(|()| {
            if spec.encoders.iter().any(|e| matches!(e, SubnetSpec::Cnn { .. })) {
                Ok(())
            } else {
                Err("it trains models with a CNN image encoder (the CNNs by hand, the rest on burn)".to_string())
            }
        });
        let dense = common.and_then(|()| {
            if !(spec.kind == FusionKind::Gmu && spec.head == HeadKind::Linear && features) {
                Err("it trains the GMU with a linear head on two feature views".to_string())
            } else if !spec.bias {
                Err("it needs the bias terms".into())
            } else if needs.loss.is_some_and(|l| l != task_loss) {
                Err("it trains the task's own loss".into())
            } else {
                Ok(())
            }
        });
        let refuse = |engine: Engine, why: String| {
            GmuError::invalid("engine", format!("the {engine} engine cannot train this {} model: {why}", spec.kind))
        };
        match self {
            Engine::Auto => Ok(match (native, dense, maxout) {
                (Ok(n), _, _) if n <= NATIVE_MAX_PARAMS => Engine::Native,
                (_, Ok(()), _) => Engine::Dense,
                (Ok(_), Err(_), _) => Engine::Native,
                (_, _, Ok(())) => Engine::Maxout,
                _ if cnn.is_ok() => Engine::Cnn,
                _ => Engine::Burn,
            }),
            Engine::Native => native.map(|_| Engine::Native).map_err(|why| refuse(Engine::Native, why)),
            Engine::Dense => dense.map(|()| Engine::Dense).map_err(|why| refuse(Engine::Dense, why)),
            Engine::Maxout => maxout.map(|()| Engine::Maxout).map_err(|why| refuse(Engine::Maxout, why)),
            Engine::Cnn => cnn.map(|()| Engine::Cnn).map_err(|why| refuse(Engine::Cnn, why)),
            Engine::Burn => Ok(Engine::Burn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelOptions, Preset, TrainingConfig};
    use crate::fusion::Task;
    use crate::fusion::synthetic::ModelKind;

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
