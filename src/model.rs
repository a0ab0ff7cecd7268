//! The classifiers of the synthetic experiment, as burn modules: a GMU
//! classifier (GMU → linear → logits), a plain feed-forward net on the
//! concatenated inputs, and logistic regression. [`ModelSpec`] describes any of
//! them and fixes the parameter layout shared with the [`native`](crate::native) engine.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result};
use crate::fusion::{Gmu, GmuConfig};

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
            return Err(GmuError::invalid("--hidden", "the hidden width must be at least 1, got 0"));
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

    /// Builds the burn module holding the flat parameter vector `values`
    /// (in the order of [`params`](Self::params)).
    pub fn to_burn(&self, values: &[f32], device: &Device) -> Result<Classifier> {
        self.validate()?;
        if values.len() != self.n_params() {
            return Err(GmuError::invalid("weights", format!("{} values for {} parameters", values.len(), self.n_params())));
        }
        let mut offset = 0;
        let mut tensors = vec![];
        for p in self.params() {
            tensors.push(TensorData::new(values[offset..offset + p.len()].to_vec(), p.shape.clone()));
            offset += p.len();
        }
        let mut tensors = tensors.into_iter();
        let mut linear = |d_in: usize, d_out: usize| {
            let mut layer = LinearConfig::new(d_in, d_out).with_bias(self.bias).init(device);
            layer.weight = Param::from_data(tensors.next().expect("layout"), device);
            if self.bias {
                layer.bias = Some(Param::from_data(tensors.next().expect("layout"), device));
            }
            layer
        };
        let (h, c) = (self.hidden, self.n_classes);
        Ok(match self.kind {
            ModelKind::Gmu => {
                let mut gmu = GmuConfig::new(vec![self.d_v, self.d_t], h).with_bias(self.bias).try_init(device)?;
                gmu.transforms = vec![linear(self.d_v, h), linear(self.d_t, h)];
                gmu.gate = linear(self.d_in(), h);
                Classifier::Gmu(GmuClassifier { gmu, head: linear(h, c) })
            }
            ModelKind::Ff => Classifier::Ff(FeedForward { hidden: linear(self.d_in(), h), head: linear(h, c) }),
            ModelKind::Logreg => Classifier::Logreg(LogisticRegression { head: linear(self.d_in(), c) }),
        })
    }
}

/// GMU → linear head.
#[derive(Module, Debug)]
pub struct GmuClassifier {
    /// The fusion layer.
    pub gmu: Gmu,
    /// `[H, classes]` output layer.
    pub head: Linear,
}

/// Linear → tanh → linear on the concatenated inputs.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `[d_v + d_t, H]` hidden layer.
    pub hidden: Linear,
    /// `[H, classes]` output layer.
    pub head: Linear,
}

/// One linear layer on the concatenated inputs.
#[derive(Module, Debug)]
pub struct LogisticRegression {
    /// `[d_v + d_t, classes]` output layer.
    pub head: Linear,
}

/// Any of the three classifiers.
#[derive(Module, Debug)]
pub enum Classifier {
    /// See [`GmuClassifier`].
    Gmu(GmuClassifier),
    /// See [`FeedForward`].
    Ff(FeedForward),
    /// See [`LogisticRegression`].
    Logreg(LogisticRegression),
}

/// What [`Classifier::forward`] returns.
#[derive(Debug, Clone)]
pub struct ClassifierOutput {
    /// Class scores, `[batch, classes]`.
    pub logits: Tensor<2>,
    /// The GMU's gates `[batch, 2, H]`; `None` for models without gates.
    pub gates: Option<Tensor<3>>,
}

impl Classifier {
    /// Scores a batch.
    ///
    /// # Shapes
    /// - `x_v`: `[batch, d_v]`, `x_t`: `[batch, d_t]`
    /// - output `logits`: `[batch, classes]`; `gates`: `[batch, 2, H]` (GMU only)
    pub fn forward(&self, x_v: Tensor<2>, x_t: Tensor<2>) -> ClassifierOutput {
        match self {
            Classifier::Gmu(m) => {
                let out = m.gmu.forward(&[x_v, x_t]);
                ClassifierOutput { logits: m.head.forward(out.fused), gates: Some(out.gates) }
            }
            Classifier::Ff(m) => {
                let x = Tensor::cat(vec![x_v, x_t], 1);
                ClassifierOutput { logits: m.head.forward(m.hidden.forward(x).tanh()), gates: None }
            }
            Classifier::Logreg(m) => {
                ClassifierOutput { logits: m.head.forward(Tensor::cat(vec![x_v, x_t], 1)), gates: None }
            }
        }
    }

    /// The parameters as one flat vector, in the order of [`ModelSpec::params`].
    pub fn flat_params(&self) -> Vec<f32> {
        let layers: Vec<&Linear> = match self {
            Classifier::Gmu(m) => vec![&m.gmu.transforms[0], &m.gmu.transforms[1], &m.gmu.gate, &m.head],
            Classifier::Ff(m) => vec![&m.hidden, &m.head],
            Classifier::Logreg(m) => vec![&m.head],
        };
        let mut out = vec![];
        for layer in layers {
            out.extend(layer.weight.val().into_data().try_to_vec::<f32>().expect("f32 weights"));
            if let Some(b) = &layer.bias {
                out.extend(b.val().into_data().try_to_vec::<f32>().expect("f32 weights"));
            }
        }
        out
    }
}
