//! Every fusion method of the paper's Table 2 under one interface:
//! [`FusionSpec`] says which method, on which input widths, for which task;
//! [`FusionSpec::init`] builds a [`FusionNet`]; [`FusionNet::forward`] takes
//! one tensor per modality and returns the scores and, where the method has
//! gates (GMU, mixture of experts), the gate values.
//!
//! | kind | model |
//! |---|---|
//! | `gmu` | optional per-modality encoder → GMU (K ≥ 2) → maxout MLP |
//! | `concat` | the maxout MLP on the concatenated inputs (one modality: a single-modality model) |
//! | `linear-sum` | each modality → BN → maxout projection; summed; → maxout MLP |
//! | `avg-probs` | one single-modality model per modality, probabilities averaged (late fusion: one member per view, trained by `train`) |
//! | `moe` | one expert per modality (logistic or maxout MLP), a softmax gate over the experts from the concatenated inputs, tied (one for all labels) or untied (one per label) |
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use gmu::fusion::{FusionKind, FusionSpec, Task};
//!
//! let device = Device::default();
//! // Text 300-wide and poster 4096-wide, 23 genres, multilabel; GMU of 64 units → maxout MLP.
//! let net = FusionSpec::new(FusionKind::Gmu, vec![300, 4096], 64, 23, Task::Multilabel).init(&device).unwrap();
//! let out = net.forward(&[Tensor::zeros([8, 300], &device), Tensor::zeros([8, 4096], &device)]);
//! let probs = net.probabilities(out.scores); // [8, 23]
//! assert_eq!(probs.dims(), [8, 23]);
//! assert_eq!(out.gates.unwrap().dims(), [8, 2, 64]); // z per modality and unit
//! ```

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid, softmax};
use burn::tensor::{Device, Tensor};

use super::blocks::{ImageShape, Maxout, MaxoutMlp, MaxoutMlpConfig, SmallCnn, TextLstm};
use super::gmu::{Gmu, GmuConfig};
use super::method::CustomHead;
use super::spec::{ExpertKind, FusionKind, FusionSpec, HeadKind, SubnetSpec, Task};
use crate::error::Result;

impl FusionSpec {
    /// Builds the model on `device`, after [`validate`](Self::validate). The
    /// initial weights come from burn's random state (seed it with
    /// `device.seed(..)` inside [`super::random::exclusive`] for reproducible weights).
    pub fn init(&self, device: &Device) -> Result<FusionNet> {
        self.validate()?;
        super::random::exclusive(|| self.init_unchecked(device))
    }

    fn init_unchecked(&self, device: &Device) -> Result<FusionNet> {
        let widths = self.fused_inputs();
        let mlp = |d_in: usize, d_out: usize| {
            MaxoutMlpConfig::new(d_in, self.hidden, d_out).with_dropout(self.dropout).init(device)
        };
        let encoders = self
            .encoders
            .iter()
            .map(|e| match *e {
                SubnetSpec::Cnn { channels, height, width, d_out } => {
                    Some(SmallCnn::new(ImageShape { channels, height, width }, d_out, device))
                }
                SubnetSpec::Identity | SubnetSpec::Lstm { .. } => None,
            })
            .collect();
        let texts = self
            .encoders
            .iter()
            .map(|e| match *e {
                SubnetSpec::Lstm { vocab, embed, d_out, pooling } => {
                    Some(TextLstm::new(vocab, embed, d_out, pooling, device))
                }
                _ => None,
            })
            .collect();
        let c = self.n_outputs;
        // burn's default weights and zero biases (as the GMU layer and TensorFlow's dense layers).
        let linear = |d_in: usize, d_out: usize| {
            let mut layer = LinearConfig::new(d_in, d_out).with_bias(self.bias).init(device);
            if self.bias {
                layer.bias = Some(burn::module::Param::from_tensor(Tensor::zeros([d_out], device)));
            }
            layer
        };
        let head = match self.kind {
            FusionKind::Gmu => {
                let gmu = GmuConfig::new(widths.clone(), self.hidden)
                    .with_normalize_gates(self.normalize_gates)
                    .with_gate_hidden(self.gate_hidden)
                    .with_gate_per_view(self.gate_per_view)
                    .with_bias(self.bias)
                    .try_init(device)?;
                match self.head {
                    HeadKind::Linear => FusionHead::GmuLinear(GmuLinearHead { gmu, output: linear(self.hidden, c) }),
                    _ => FusionHead::Gmu(GmuHead { gmu, mlp: mlp(self.hidden, c) }),
                }
            }
            FusionKind::Concat | FusionKind::AvgProbs => {
                let d: usize = widths.iter().sum();
                match self.head {
                    HeadKind::Maxout => FusionHead::Concat(mlp(d, c)),
                    HeadKind::Linear => FusionHead::Linear(linear(d, c)),
                    HeadKind::Tanh => {
                        FusionHead::Tanh(TanhHead { hidden: linear(d, self.hidden), output: linear(self.hidden, c) })
                    }
                }
            }
            FusionKind::LinearSum => FusionHead::LinearSum(LinearSumHead {
                norms: widths.iter().map(|&d| BatchNormConfig::new(d).init(device)).collect(),
                projections: widths.iter().map(|&d| Maxout::new(d, self.hidden, 2, device)).collect(),
                mlp: mlp(self.hidden, c),
            }),
            FusionKind::Moe => FusionHead::Moe(MoeHead {
                experts: widths
                    .iter()
                    .map(|&d| match self.experts {
                        ExpertKind::Logistic => Expert::Logistic(LinearConfig::new(d, c).init(device)),
                        ExpertKind::Maxout => Expert::Maxout(mlp(d, c)),
                    })
                    .collect(),
                gate: LinearConfig::new(
                    widths.iter().sum(),
                    if self.tied_gates { widths.len() } else { widths.len() * c },
                )
                .init(device),
                tied: self.tied_gates,
            }),
            FusionKind::Custom => {
                let method = super::method::method(self.method.as_deref().unwrap_or_default())?;
                let layers = method.0.layers(&widths, self.hidden).into_iter().map(|(i, o)| linear(i, o)).collect();
                let d = method.0.fused_width(&widths, self.hidden);
                let (mlp, output) = match self.head {
                    HeadKind::Linear => (None, Some(linear(d, c))),
                    _ => (Some(mlp(d, c)), None),
                };
                FusionHead::Custom(CustomHead { layers, mlp, output, method })
            }
        };
        let net = FusionNet { encoders, texts, head, multilabel: self.task == Task::Multilabel };
        // burn draws a parameter's initial values when it is first read; read
        // them all now, in module order, so the weights depend on the seed
        // alone and not on which engine or code path touches them first.
        net.visit(&mut Materialize);
        Ok(net)
    }
}

/// Reads every float parameter once (see [`FusionSpec::init`]).
struct Materialize;

impl burn::module::ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// A fusion model: per-modality encoders, then the fusion head.
#[derive(Module, Debug)]
pub struct FusionNet {
    /// One optional image encoder per modality (`None`: the features go in as they are).
    pub encoders: Vec<Option<SmallCnn>>,
    /// One optional text encoder per modality (an LSTM over token ids). A field of its
    /// own beside `encoders`, so the saved names of existing CNN weights stay as they were.
    pub texts: Vec<Option<TextLstm>>,
    /// The fusion and classifier.
    pub head: FusionHead,
    /// Sigmoid outputs (multilabel) instead of a softmax.
    pub multilabel: bool,
}

/// The part of a [`FusionNet`] after the encoders.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum FusionHead {
    /// GMU → maxout MLP.
    Gmu(GmuHead),
    /// GMU → linear: the plain GMU classifier.
    GmuLinear(GmuLinearHead),
    /// Maxout MLP on the concatenation.
    Concat(MaxoutMlp),
    /// One linear layer on the concatenation (logistic regression).
    Linear(Linear),
    /// Linear → tanh → linear on the concatenation (feed-forward net).
    Tanh(TanhHead),
    /// Per-modality BN + maxout, summed, → maxout MLP.
    LinearSum(LinearSumHead),
    /// Mixture of experts.
    Moe(MoeHead),
    /// A method registered from outside the crate, then its classifier.
    Custom(CustomHead),
}

/// GMU then the maxout MLP.
#[derive(Module, Debug)]
pub struct GmuHead {
    /// The fusion layer.
    pub gmu: Gmu,
    /// The classifier on the fused vector.
    pub mlp: MaxoutMlp,
}

/// GMU then one linear layer.
#[derive(Module, Debug)]
pub struct GmuLinearHead {
    /// The fusion layer.
    pub gmu: Gmu,
    /// `[H, C]` logits.
    pub output: Linear,
}

/// A feed-forward net with one tanh hidden layer.
#[derive(Module, Debug)]
pub struct TanhHead {
    /// `[Σ d, H]` hidden layer.
    pub hidden: Linear,
    /// `[H, C]` logits.
    pub output: Linear,
}

/// Linear sum of per-modality maxout projections.
#[derive(Module, Debug)]
pub struct LinearSumHead {
    /// Batch norm of each modality.
    pub norms: Vec<BatchNorm>,
    /// Maxout projection of each modality to the hidden width.
    pub projections: Vec<Maxout>,
    /// The classifier on the sum.
    pub mlp: MaxoutMlp,
}

/// One expert of a mixture.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Expert {
    /// Logistic regression.
    Logistic(Linear),
    /// Maxout MLP.
    Maxout(MaxoutMlp),
}

/// Mixture of experts: one expert per modality, a softmax gate over experts.
#[derive(Module, Debug)]
pub struct MoeHead {
    /// One expert per modality.
    pub experts: Vec<Expert>,
    /// Gate logits from the concatenated inputs: `[Σ d, K]` tied, `[Σ d, C·K]` untied.
    pub gate: Linear,
    /// One gate for all outputs.
    pub tied: bool,
}

/// The model's output scores: logits for most methods, probabilities where
/// the model mixes probabilities (mixture of experts).
#[derive(Clone, Debug)]
pub enum Scores {
    /// Pre-activation scores `[batch, C]`.
    Logits(Tensor<2>),
    /// Probabilities `[batch, C]` (already through sigmoid or softmax).
    Probs(Tensor<2>),
}

/// What [`FusionNet::forward`] returns.
#[derive(Clone, Debug)]
pub struct FusionOutput {
    /// Scores, `[batch, C]`.
    pub scores: Scores,
    /// Gate values where the method has gates, `[batch, K, G]`: the GMU's
    /// `G = H` units; a tied mixture's `G = 1`; an untied mixture's `G = C`
    /// (one gate per label). Each `[b, :, g]` is the weight of each modality.
    pub gates: Option<Tensor<3>>,
    /// What each modality put into the fusion, `[batch, K, G]`, non-negative:
    /// `|z_i ⊙ h_i|` per GMU unit; the mixture weights for a mixture of experts.
    /// Its share per modality says which modality the model relied on,
    /// whatever the scale of each `h_i`.
    pub contributions: Option<Tensor<3>>,
}

const PROB_FLOOR: f32 = 1e-7;

/// A GMU, then `classify` on the fused vector: logits, gates and each
/// modality's contribution `|z_i ⊙ h_i|`. With `present`, the missing views'
/// gates are zeroed and the remaining ones rescaled so that each unit keeps
/// its total gate (see [`FusionNet::forward_present`]).
fn gated(
    gmu: &Gmu,
    encoded: &[Tensor<2>],
    present: Option<&Tensor<2>>,
    classify: impl FnOnce(Tensor<2>) -> Tensor<2>,
) -> FusionOutput {
    let out = gmu.forward(encoded);
    let (fused, gates) = match present {
        None => (out.fused, out.gates),
        Some(mask) => {
            let [batch, k, h] = out.gates.dims();
            let mask3 = mask.clone().reshape([batch, k, 1]);
            let kept = out.gates.clone() * mask3.clone();
            let total = out.gates.sum_dim(1);
            let kept_sum = kept.clone().sum_dim(1);
            let rescaled = kept * (total.clone() / kept_sum.clone().clamp_min(1e-12));
            // A unit whose present views' gates all underflowed to 0 (a
            // saturated sigmoid: z = 1 in f32, so 1 − z = 0) gives its total
            // to the present views in equal parts, rather than staying 0.
            let n_present = mask.clone().sum_dim(1).clamp_min(1.0).reshape([batch, 1, 1]);
            let even = mask3 * (total / n_present);
            let underflow = kept_sum.lower_equal_elem(1e-12).repeat_dim(1, k);
            let gates = rescaled.mask_where(underflow, even);
            let fused = (gates.clone() * out.hidden.clone()).sum_dim(1).reshape([batch, h]);
            (fused, gates)
        }
    };
    let contributions = (gates.clone() * out.hidden).abs();
    FusionOutput { scores: Scores::Logits(classify(fused)), gates: Some(gates), contributions: Some(contributions) }
}

/// Weights over K modalities (`[batch, K]`, or `[batch, C, K]` per output)
/// restricted to the present ones and renormalised to sum to one.
fn renormalise_over_present<const D: usize>(weights: Tensor<D>, present: &Tensor<2>) -> Tensor<D> {
    let dims = weights.dims();
    let mut mask_dims = [1; D];
    mask_dims[0] = dims[0];
    mask_dims[D - 1] = dims[D - 1];
    let kept = weights * present.clone().reshape(mask_dims);
    kept.clone() / kept.sum_dim(D - 1).clamp_min(1e-12)
}

impl FusionNet {
    /// Runs the model. Dropout and batch statistics are used on an autodiff
    /// device (training); on a plain device the model is deterministic.
    ///
    /// # Shapes
    /// - `inputs[i]`: `[batch, d_i]`, one per modality
    /// - output `scores`: `[batch, C]`
    /// - output `gates`: `[batch, K, G]` (GMU and mixture of experts)
    pub fn forward(&self, inputs: &[Tensor<2>]) -> FusionOutput {
        self.forward_present(inputs, None)
    }

    /// Runs the model with some views missing. `present[b, i]` is 1 where
    /// sample `b` has view `i` and 0 where it is missing; `None` means every
    /// view is present (exactly [`forward`](Self::forward)). The rule for a
    /// missing view, per method:
    /// - **GMU**: the view's term `z_i ⊙ h_i` is left out and the present
    ///   views' gates are rescaled so that each unit keeps its total gate
    ///   (`z'_i = z_i · Σ_all z / Σ_present z`). With two views the gates
    ///   `z, 1 − z` sum to one, so the present view gets gate 1; the same holds
    ///   for softmax gates. The gate's own input sees the view as zero.
    /// - **concat, linear sum**: the view's (standardised) input is zero, its
    ///   training mean.
    /// - **mixture of experts**: the gate is renormalised over the present experts.
    /// - **avg-probs** is a set of single-view models; its members are averaged
    ///   over the present views (see `predict`).
    ///
    /// Every sample needs at least one present view; the caller checks that.
    ///
    /// # Shapes
    /// - `inputs[i]`: `[batch, d_i]`; `present`: `[batch, K]`
    /// - outputs as in [`forward`](Self::forward)
    pub fn forward_present(&self, inputs: &[Tensor<2>], present: Option<&Tensor<2>>) -> FusionOutput {
        let encoded =
            self.zero_missing(inputs, present).into_iter().enumerate().map(|(i, x)| self.encode(i, x)).collect();
        self.forward_encoded(encoded, present)
    }

    /// The inputs with each missing view's rows set to zero (every input as
    /// it is without `present`): what the encoders see.
    ///
    /// # Shapes
    /// - `inputs[i]`: `[batch, d_i]`; `present`: `[batch, K]`
    pub fn zero_missing(&self, inputs: &[Tensor<2>], present: Option<&Tensor<2>>) -> Vec<Tensor<2>> {
        assert_eq!(inputs.len(), self.encoders.len(), "{} inputs for {} modalities", inputs.len(), self.encoders.len());
        match present {
            None => inputs.to_vec(),
            Some(mask) => {
                let [batch, _] = mask.dims();
                inputs
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x.clone() * mask.clone().narrow(1, i, 1).reshape([batch, 1]))
                    .collect()
            }
        }
    }

    /// Modality `i` through its encoder (its CNN or LSTM; as it is without one).
    ///
    /// # Shapes
    /// - `x`: `[batch, d_i]`; output: `[batch, d'_i]` (the encoder's width)
    pub fn encode(&self, i: usize, x: Tensor<2>) -> Tensor<2> {
        match (&self.encoders[i], &self.texts[i]) {
            (Some(cnn), _) => cnn.forward(x),
            (None, Some(lstm)) => lstm.forward(x),
            (None, None) => x,
        }
    }

    /// The fusion and classifier on the encoded views: the rest of
    /// [`forward_present`](Self::forward_present) after [`zero_missing`](Self::zero_missing)
    /// and [`encode`](Self::encode).
    ///
    /// # Shapes
    /// - `encoded[i]`: `[batch, d'_i]`; `present`: `[batch, K]`
    /// - outputs as in [`forward`](Self::forward)
    pub fn forward_encoded(&self, encoded: Vec<Tensor<2>>, present: Option<&Tensor<2>>) -> FusionOutput {
        let plain =
            |scores: Tensor<2>| FusionOutput { scores: Scores::Logits(scores), gates: None, contributions: None };
        match &self.head {
            FusionHead::Gmu(head) => gated(&head.gmu, &encoded, present, |h| head.mlp.forward(h)),
            FusionHead::GmuLinear(head) => gated(&head.gmu, &encoded, present, |h| head.output.forward(h)),
            FusionHead::Concat(mlp) => plain(mlp.forward(Tensor::cat(encoded, 1))),
            FusionHead::Linear(layer) => plain(layer.forward(Tensor::cat(encoded, 1))),
            FusionHead::Tanh(head) => plain(head.output.forward(head.hidden.forward(Tensor::cat(encoded, 1)).tanh())),
            FusionHead::LinearSum(head) => {
                let sum = encoded
                    .into_iter()
                    .zip(head.norms.iter().zip(&head.projections))
                    .map(|(x, (norm, proj))| proj.forward(norm.forward(x)))
                    .reduce(|a, b| a + b)
                    .expect("at least one modality");
                plain(head.mlp.forward(sum))
            }
            FusionHead::Moe(head) => self.mixture(head, encoded, present),
            FusionHead::Custom(head) => {
                let (logits, fused) = head.forward(&encoded);
                FusionOutput { scores: Scores::Logits(logits), gates: fused.gates, contributions: fused.contributions }
            }
        }
    }

    fn mixture(&self, head: &MoeHead, encoded: Vec<Tensor<2>>, present: Option<&Tensor<2>>) -> FusionOutput {
        let k = head.experts.len();
        let [batch, _] = encoded[0].dims();
        // Each expert's probabilities, stacked: [batch, C, K].
        let probs: Vec<Tensor<2>> = head
            .experts
            .iter()
            .zip(&encoded)
            .map(|(expert, x)| {
                let logits = match expert {
                    Expert::Logistic(l) => l.forward(x.clone()),
                    Expert::Maxout(m) => m.forward(x.clone()),
                };
                self.activate(logits)
            })
            .collect();
        let c = probs[0].dims()[1];
        let expert_probs: Tensor<3> = Tensor::stack(probs, 2);
        let gate_logits = head.gate.forward(Tensor::cat(encoded, 1));
        let (mixed, gates) = if head.tied {
            let mut g = softmax(gate_logits, 1); // [batch, K]
            if let Some(mask) = present {
                g = renormalise_over_present(g, mask);
            }
            let mixed = (expert_probs * g.clone().reshape([batch, 1, k])).sum_dim(2).reshape([batch, c]);
            (mixed, g.reshape([batch, k, 1]))
        } else {
            let mut g = softmax(gate_logits.reshape([batch, c, k]), 2); // [batch, C, K]
            if let Some(mask) = present {
                g = renormalise_over_present(g, mask);
            }
            let mixed = (expert_probs * g.clone()).sum_dim(2).reshape([batch, c]);
            (mixed, g.swap_dims(1, 2))
        };
        // Untied gates mix each class separately, so a softmax mixture needs renormalising.
        let mixed = if !self.multilabel && !head.tied { mixed.clone() / mixed.sum_dim(1) } else { mixed };
        FusionOutput { scores: Scores::Probs(mixed), gates: Some(gates.clone()), contributions: Some(gates) }
    }

    /// Whether the model has gates (GMU, mixture of experts).
    pub fn has_gates(&self) -> bool {
        matches!(self.head, FusionHead::Gmu(_) | FusionHead::GmuLinear(_) | FusionHead::Moe(_))
    }

    fn activate(&self, logits: Tensor<2>) -> Tensor<2> {
        if self.multilabel { sigmoid(logits) } else { softmax(logits, 1) }
    }

    /// Probabilities `[batch, C]`: sigmoid (multilabel) or softmax of the logits,
    /// or the mixture's probabilities as they are.
    pub fn probabilities(&self, scores: Scores) -> Tensor<2> {
        match scores {
            Scores::Logits(l) => self.activate(l),
            Scores::Probs(p) => p,
        }
    }

    /// Mean training loss: binary cross-entropy over samples and labels
    /// (multilabel) or cross-entropy over samples (single label), computed
    /// from logits where the model has them (stable) and from probabilities
    /// clamped to `[1e-7, 1 − 1e-7]` otherwise.
    ///
    /// # Shapes
    /// - `targets`: `[batch, C]`, 0/1 (one-hot for single-label tasks)
    pub fn loss(&self, scores: Scores, targets: Tensor<2>) -> Tensor<1> {
        let [batch, c] = targets.dims();
        let (log_p, log_not_p) = match scores {
            Scores::Logits(l) if self.multilabel => (log_sigmoid(l.clone()), log_sigmoid(l.neg())),
            Scores::Logits(l) => (log_softmax(l, 1), Tensor::zeros([batch, c], &targets.device())),
            Scores::Probs(p) => {
                let p = p.clamp(PROB_FLOOR, 1.0 - PROB_FLOOR);
                (p.clone().log(), p.neg().add_scalar(1.0).log())
            }
        };
        if self.multilabel {
            let ones = targets.ones_like();
            (targets.clone() * log_p + (ones - targets) * log_not_p).mean().neg()
        } else {
            (targets * log_p).sum().div_scalar(batch as f32).neg()
        }
    }
}

#[cfg(test)]
mod tests;
