//! The classifiers of the synthetic experiment: a GMU classifier (GMU →
//! linear → logits), a plain feed-forward net on the concatenated inputs, and
//! logistic regression. [`ModelSpec`] describes any of them with the flat
//! parameter layout of the `engine::native` engine; the models
//! themselves are [`FusionNet`]s ([`ModelSpec::fusion_spec`]), the one model
//! definition of the crate.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result};
use crate::fusion::network::FusionHead;
use crate::fusion::{FusionKind, FusionNet, FusionSpec, HeadKind, Task};

/// Which classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// GMU over the two modalities, then a linear layer to the logits.
    Gmu,
    /// Feed-forward net on the concatenated inputs: linear → tanh → linear.
    Ff,
    /// Logistic regression on the concatenated inputs.
    Logreg,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Gmu => "gmu",
            ModelKind::Ff => "ff",
            ModelKind::Logreg => "logreg",
        })
    }
}

/// Shape of a two-modality classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Which classifier.
    pub kind: ModelKind,
    /// Width of the visual input `x_v`.
    pub d_v: usize,
    /// Width of the textual input `x_t`.
    pub d_t: usize,
    /// Hidden width (GMU units, or FF hidden units; unused by logistic regression).
    pub hidden: usize,
    /// Bias terms in every layer.
    pub bias: bool,
    /// Number of classes (output logits).
    pub n_classes: usize,
}

/// One parameter tensor: its name in the saved weights and its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamShape {
    /// Path of the tensor in the module (`gmu.gate.weight`).
    pub name: &'static str,
    /// `[d_in, d_out]` for a weight, `[d_out]` for a bias.
    pub shape: Vec<usize>,
}

impl ParamShape {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a tensor with no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fan-in and fan-out, for Glorot initialisation (weights only).
    pub fn fans(&self) -> Option<(usize, usize)> {
        (self.shape.len() == 2).then(|| (self.shape[0], self.shape[1]))
    }
}

impl ModelSpec {
    /// Checks every width; names the flag at fault.
    pub fn validate(&self) -> Result<()> {
        if self.d_v == 0 || self.d_t == 0 {
            return Err(GmuError::invalid("dim", "each modality needs at least one input"));
        }
        if self.kind != ModelKind::Logreg && self.hidden == 0 {
            return Err(GmuError::invalid("hidden", "the hidden width must be at least 1, got 0"));
        }
        if self.n_classes < 2 {
            return Err(GmuError::invalid("classes", format!("at least 2 classes are needed, got {}", self.n_classes)));
        }
        Ok(())
    }

    /// Input width of the concatenated inputs.
    pub fn d_in(&self) -> usize {
        self.d_v + self.d_t
    }

    /// Every parameter tensor in a fixed order: weight then bias, layer by layer.
    pub fn params(&self) -> Vec<ParamShape> {
        let (h, c) = (self.hidden, self.n_classes);
        let layers: Vec<(&'static str, &'static str, usize, usize)> = match self.kind {
            ModelKind::Gmu => vec![
                ("gmu.transforms.0.weight", "gmu.transforms.0.bias", self.d_v, h),
                ("gmu.transforms.1.weight", "gmu.transforms.1.bias", self.d_t, h),
                ("gmu.gate.weight", "gmu.gate.bias", self.d_in(), h),
                ("head.weight", "head.bias", h, c),
            ],
            ModelKind::Ff => vec![("hidden.weight", "hidden.bias", self.d_in(), h), ("head.weight", "head.bias", h, c)],
            ModelKind::Logreg => vec![("head.weight", "head.bias", self.d_in(), c)],
        };
        let mut out = vec![];
        for (weight, bias, d_in, d_out) in layers {
            out.push(ParamShape { name: weight, shape: vec![d_in, d_out] });
            if self.bias {
                out.push(ParamShape { name: bias, shape: vec![d_out] });
            }
        }
        out
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        self.params().iter().map(ParamShape::len).sum()
    }

    /// The same model as a [`FusionSpec`]: the GMU classifier is a GMU with a
    /// linear head, the feed-forward net is `concat` with a tanh head, and
    /// logistic regression is `concat` with a linear head. One model
    /// definition serves both stacks; this is how a synthetic model is saved,
    /// loaded and predicted with.
    pub fn fusion_spec(&self) -> FusionSpec {
        let (kind, head) = match self.kind {
            ModelKind::Gmu => (FusionKind::Gmu, HeadKind::Linear),
            ModelKind::Ff => (FusionKind::Concat, HeadKind::Tanh),
            ModelKind::Logreg => (FusionKind::Concat, HeadKind::Linear),
        };
        let mut spec =
            FusionSpec::new(kind, vec![self.d_v, self.d_t], self.hidden.max(1), self.n_classes, Task::Multiclass);
        spec.head = head;
        spec.bias = self.bias;
        spec.dropout = 0.0;
        spec
    }

    /// The synthetic-experiment classifier `spec` describes, if it is one:
    /// GMU → linear, concat → tanh → linear or concat → linear, on two
    /// feature views, one class per sample.
    pub fn from_fusion(spec: &FusionSpec) -> Option<ModelSpec> {
        let kind = match (spec.kind, spec.head) {
            (FusionKind::Gmu, HeadKind::Linear) => ModelKind::Gmu,
            (FusionKind::Concat, HeadKind::Tanh) => ModelKind::Ff,
            (FusionKind::Concat, HeadKind::Linear) => ModelKind::Logreg,
            _ => return None,
        };
        let features = spec.encoders.iter().all(|e| *e == crate::fusion::SubnetSpec::Identity) && spec.gate_hidden == 0;
        let &[d_v, d_t] = &spec.d_inputs[..] else { return None };
        (features && spec.task == Task::Multiclass).then_some(ModelSpec {
            kind,
            d_v,
            d_t,
            hidden: spec.hidden,
            bias: spec.bias,
            n_classes: spec.n_outputs,
        })
    }

    /// Builds the model holding the flat parameter vector `values` (in the
    /// order of [`params`](Self::params)) on `device`.
    pub fn to_net(&self, values: &[f32], device: &Device) -> Result<FusionNet> {
        self.validate()?;
        if values.len() != self.n_params() {
            return Err(GmuError::invalid(
                "weights",
                format!("{} values for {} parameters", values.len(), self.n_params()),
            ));
        }
        let mut net = self.fusion_spec().init(device)?;
        let mut offset = 0;
        let mut take = |shape: [usize; 2]| {
            let n = shape.iter().product::<usize>();
            offset += n;
            values[offset - n..offset].to_vec()
        };
        for layer in linears_mut(&mut net) {
            let [d_in, d_out] = layer.weight.dims();
            layer.weight = Param::from_data(TensorData::new(take([d_in, d_out]), [d_in, d_out]), device);
            if layer.bias.is_some() {
                layer.bias = Some(Param::from_data(TensorData::new(take([d_out, 1]), [d_out]), device));
            }
        }
        Ok(net)
    }
}

/// The linear layers of a synthetic-experiment model, in the order of
/// [`ModelSpec::params`] (GMU: visual transform, textual transform, gate,
/// head; FF: hidden, head; logistic regression: head).
///
/// # Panics
/// On a net whose head is not one of the three (see [`ModelSpec::fusion_spec`]).
pub fn linears(net: &FusionNet) -> Vec<&Linear> {
    match &net.head {
        FusionHead::GmuLinear(h) => vec![&h.gmu.transforms[0], &h.gmu.transforms[1], &h.gmu.gate, &h.output],
        FusionHead::Tanh(h) => vec![&h.hidden, &h.output],
        FusionHead::Linear(l) => vec![l],
        _ => panic!("not a synthetic-experiment model"),
    }
}

fn linears_mut(net: &mut FusionNet) -> Vec<&mut Linear> {
    match &mut net.head {
        FusionHead::GmuLinear(h) => {
            let [v, t] = &mut h.gmu.transforms[..] else { panic!("two modalities") };
            vec![v, t, &mut h.gmu.gate, &mut h.output]
        }
        FusionHead::Tanh(h) => vec![&mut h.hidden, &mut h.output],
        FusionHead::Linear(l) => vec![l],
        _ => panic!("not a synthetic-experiment model"),
    }
}

/// The parameters of a synthetic-experiment model as one flat vector, in the
/// order of [`ModelSpec::params`].
pub fn flat_params(net: &FusionNet) -> Vec<f32> {
    let mut out = vec![];
    for layer in linears(net) {
        out.extend(layer.weight.val().into_data().try_to_vec::<f32>().expect("f32 weights"));
        if let Some(b) = &layer.bias {
            out.extend(b.val().into_data().try_to_vec::<f32>().expect("f32 weights"));
        }
    }
    out
}
