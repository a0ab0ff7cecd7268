//! What a model is, as data: the fusion method ([`FusionKind`]), the head,
//! the task, each view's own sub-network ([`SubnetSpec`]), and the whole
//! [`FusionSpec`] with its validation and memory bound. Serialised into every
//! model directory; [`network`](super::network) builds a [`FusionNet`](super::FusionNet) from it.

use serde::{Deserialize, Serialize};

use super::blocks::TextPooling;
use crate::cpu::LossKind;
use crate::error::{GmuError, Result};

/// How the modalities are fused (CLI `--fusion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FusionKind {
    /// Gated Multimodal Unit, then the maxout MLP.
    Gmu,
    /// Maxout MLP on the concatenated inputs; with one modality, a single-modality model.
    Concat,
    /// Per-modality BN + maxout projections, summed, then the maxout MLP.
    LinearSum,
    /// Late fusion: the single-modality models' probabilities averaged.
    AvgProbs,
    /// Mixture of experts, one expert per modality.
    Moe,
    /// A method registered from outside the crate ([`register`](super::register)),
    /// named by [`FusionSpec::method`]. Not a `--fusion` value of the CLI.
    #[value(skip)]
    Custom,
}

impl FusionKind {
    /// Every kind, in the order of the paper's table.
    pub const ALL: [FusionKind; 5] =
        [FusionKind::Gmu, FusionKind::LinearSum, FusionKind::Concat, FusionKind::AvgProbs, FusionKind::Moe];
}

impl std::fmt::Display for FusionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FusionKind::Gmu => "gmu",
            FusionKind::Concat => "concat",
            FusionKind::LinearSum => "linear-sum",
            FusionKind::AvgProbs => "avg-probs",
            FusionKind::Moe => "moe",
            FusionKind::Custom => "custom",
        })
    }
}

/// The experts of a mixture of experts (CLI `--experts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExpertKind {
    /// Logistic regression on the expert's modality.
    Logistic,
    /// The maxout MLP on the expert's modality.
    Maxout,
}

/// The classifier on the fused vector (CLI `--head`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// The paper's `BN → maxout → dropout → BN → maxout → dropout → BN → linear`.
    #[default]
    Maxout,
    /// One linear layer: for a GMU the plain GMU classifier (GMU → logits), which
    /// the GEMM engine (`engine::dense`) trains fast at real sizes; for
    /// `concat`, logistic regression on the concatenated inputs.
    Linear,
    /// `concat` only: linear → tanh → linear, the synthetic experiment's
    /// feed-forward net (`hidden` tanh units).
    Tanh,
}

/// Single-label (softmax) or multilabel (independent sigmoids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// One class per sample: softmax, cross-entropy, accuracy and macro-F1.
    Multiclass,
    /// Any set of labels per sample: sigmoid, binary cross-entropy, thresholded.
    Multilabel,
}

impl Task {
    /// The task's own loss: sigmoid cross-entropy for multilabel, softmax cross-entropy otherwise.
    pub fn loss(self) -> LossKind {
        match self {
            Task::Multilabel => LossKind::SigmoidBce,
            Task::Multiclass => LossKind::SoftmaxCe,
        }
    }
}

/// A modality's own trainable sub-network in front of the fusion (the paper's
/// modality-specific sub-networks). Not to be confused with a pretrained, frozen
/// encoder (`encoders::EncoderSpec`), which makes a view's
/// features before the model sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubnetSpec {
    /// The features go in as they are.
    Identity,
    /// A [`SmallCnn`] on an image stored flat, with `d_out` output features.
    Cnn {
        /// Image channels.
        channels: usize,
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
        /// Features out of the CNN.
        d_out: usize,
    },
    /// A [`TextLstm`] over token ids (a view of `d_in` ids, 0 = padding), with `d_out` units.
    Lstm {
        /// Size of the vocabulary (ids `0..vocab`).
        vocab: usize,
        /// Width of the token embeddings.
        embed: usize,
        /// LSTM units: the features the fusion sees.
        d_out: usize,
        /// Mean or last state.
        pooling: TextPooling,
    },
}

impl SubnetSpec {
    /// Width of what the fusion sees for an input of width `d_in`.
    pub fn d_out(&self, d_in: usize) -> usize {
        match *self {
            SubnetSpec::Identity => d_in,
            SubnetSpec::Cnn { d_out, .. } | SubnetSpec::Lstm { d_out, .. } => d_out,
        }
    }
}

/// Everything that fixes a fusion model's shape (saved beside its weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusionSpec {
    /// The fusion method. [`FusionKind::AvgProbs`] is built as one
    /// [`FusionKind::Concat`] model per modality; trained by `train`.
    pub kind: FusionKind,
    /// Input width of each modality the model sees.
    pub d_inputs: Vec<usize>,
    /// Encoder of each modality (same length as `d_inputs`).
    pub encoders: Vec<SubnetSpec>,
    /// Hidden width: GMU units, maxout units, linear-sum projection width.
    pub hidden: usize,
    /// Number of labels (multilabel) or classes.
    pub n_outputs: usize,
    /// Softmax or sigmoids.
    pub task: Task,
    /// Dropout probability in the maxout MLPs.
    pub dropout: f64,
    /// Experts of a mixture of experts.
    pub experts: ExpertKind,
    /// Mixture of experts: one gate for all labels (`true`) or one per label.
    pub tied_gates: bool,
    /// GMU with K > 2: a softmax over the modalities of each unit's gates
    /// (they sum to 1, so each gate is that modality's share), instead of the
    /// paper's K independent sigmoids. No effect for K = 2.
    #[serde(default)]
    pub normalize_gates: bool,
    /// The classifier on the fused vector.
    #[serde(default)]
    pub head: HeadKind,
    /// Bias terms in the GMU and in a linear or tanh head (the seed's
    /// `tf.layers.dense`); `false` gives the paper's bias-free equations.
    /// The maxout MLP always has biases.
    #[serde(default = "default_true")]
    pub bias: bool,
    /// The registered method of a [`FusionKind::Custom`] model (see [`register`](super::register)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// GMU: units of the gate network's hidden `tanh` layer (0: the paper's linear gate).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gate_hidden: usize,
    /// GMU: each hidden gate unit reads one view (see [`GmuConfig::gate_per_view`](super::gmu::GmuConfig)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gate_per_view: bool,
}

fn default_true() -> bool {
    true
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The checks every model shares, whatever its inputs: the head is one
/// `kind` takes, the maxout MLP keeps its biases, a hidden width, a dropout
/// probability. [`FusionSpec::validate`] and
/// `config::ModelOptions::validate` both use it.
pub(crate) fn check_options(kind: FusionKind, head: HeadKind, bias: bool, hidden: usize, dropout: f64) -> Result<()> {
    if hidden == 0 {
        return Err(GmuError::invalid("hidden", "must be at least 1, got 0"));
    }
    match (head, kind) {
        (HeadKind::Maxout, _)
        | (HeadKind::Linear, FusionKind::Gmu | FusionKind::Concat | FusionKind::Custom)
        | (HeadKind::Tanh, FusionKind::Concat) => {}
        (head, kind) => {
            return Err(GmuError::invalid(
                "head",
                format!("the {head:?} head is not available for {kind}").to_lowercase(),
            ));
        }
    }
    if !bias && head == HeadKind::Maxout {
        return Err(GmuError::invalid(
            "bias",
            "the maxout MLP always has biases; bias = false needs a linear or tanh head",
        ));
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(GmuError::invalid("dropout", format!("must be in [0, 1), got {dropout}")));
    }
    Ok(())
}

impl FusionSpec {
    /// A spec with the paper's defaults (dropout 0.5, maxout experts, untied
    /// gates) and identity encoders.
    pub fn new(kind: FusionKind, d_inputs: Vec<usize>, hidden: usize, n_outputs: usize, task: Task) -> Self {
        let encoders = vec![SubnetSpec::Identity; d_inputs.len()];
        FusionSpec {
            kind,
            d_inputs,
            encoders,
            hidden,
            n_outputs,
            task,
            dropout: 0.5,
            experts: ExpertKind::Maxout,
            tied_gates: false,
            normalize_gates: false,
            head: HeadKind::Maxout,
            bias: true,
            method: None,
            gate_hidden: 0,
            gate_per_view: false,
        }
    }

    /// A spec of the registered method `method` (see [`register`](super::register)),
    /// with the paper's defaults as [`new`](Self::new) gives them.
    pub fn custom(method: &str, d_inputs: Vec<usize>, hidden: usize, n_outputs: usize, task: Task) -> Self {
        FusionSpec {
            method: Some(method.to_string()),
            ..FusionSpec::new(FusionKind::Custom, d_inputs, hidden, n_outputs, task)
        }
    }

    /// An upper bound on the bytes training this model needs for a batch of
    /// `rows`: every parameter four times (weights, gradient, Adam's two
    /// moments) plus the activations, `None` beyond 2^64. Computed with
    /// checked arithmetic before anything is built, for
    /// [`budget::ensure`](crate::budget::ensure).
    pub fn memory_bound(&self, rows: usize) -> Option<u64> {
        use crate::budget::{product, sum};
        let (h, c, k) = (self.hidden as u64, self.n_outputs as u64, self.d_inputs.len() as u64);
        let inputs = self
            .encoders
            .iter()
            .zip(&self.d_inputs)
            .try_fold(0u64, |acc, (e, &d)| acc.checked_add(e.d_out(d) as u64))?;
        // Per hidden unit: two pieces from every input (GMU transform and gate, maxout, experts),
        // the maxout MLP's two hidden layers and the output.
        let deep = self.head == HeadKind::Maxout || matches!(self.kind, FusionKind::LinearSum | FusionKind::Moe);
        let hidden_layers = if deep { h.checked_mul(4)? } else { 0 };
        let per_unit = sum(&[inputs.checked_mul(2), Some(hidden_layers), Some(c)])?.checked_mul(k.max(1) + 1)?;
        let params = h.checked_mul(per_unit)?;
        let activations = product(&[rows, self.hidden, 16])?.checked_add(product(&[rows, inputs as usize])?)?;
        // The sub-networks: an LSTM's embedding table and gates, a CNN's input
        // and layers (parameters with Adam's two moments and a gradient: ×4).
        let subnets = self.encoders.iter().try_fold(0u64, |acc, e| {
            let bytes = match *e {
                SubnetSpec::Identity => Some(0),
                SubnetSpec::Cnn { channels, height, width, d_out } => {
                    sum(&[product(&[rows, channels, height, width, 4 * 8]), product(&[d_out, 4096, 16])])
                }
                SubnetSpec::Lstm { vocab, embed, d_out, .. } => {
                    sum(&[product(&[vocab, embed, 16]), product(&[embed.saturating_add(d_out), d_out, 4 * 16])])
                }
            };
            acc.checked_add(bytes?)
        })?;
        sum(&[params.checked_mul(16), activations.checked_mul(4), Some(subnets)])
    }

    /// Checks the spec; names the parameter at fault.
    pub fn validate(&self) -> Result<()> {
        let k = self.d_inputs.len();
        if k == 0 {
            return Err(GmuError::invalid("modalities", "no modality selected"));
        }
        if self.encoders.len() != k {
            return Err(GmuError::invalid("encoders", format!("{} encoders for {k} modalities", self.encoders.len())));
        }
        if let Some(i) = self.d_inputs.iter().position(|&d| d == 0) {
            return Err(GmuError::invalid("modalities", format!("modality {i} has width 0")));
        }
        let needs_two = matches!(self.kind, FusionKind::Gmu | FusionKind::LinearSum | FusionKind::Moe);
        if needs_two && k < 2 {
            return Err(GmuError::invalid(
                "fusion",
                format!("{} fuses at least 2 modalities, got {k}; a single-modality model is concat", self.kind),
            ));
        }
        check_options(self.kind, self.head, self.bias, self.hidden, self.dropout)?;
        match (self.kind, &self.method) {
            (FusionKind::Custom, Some(name)) => {
                super::method::method(name)?;
            }
            (FusionKind::Custom, None) => {
                return Err(GmuError::invalid("fusion", "a custom fusion names its registered method"));
            }
            (kind, Some(name)) => {
                return Err(GmuError::invalid("fusion", format!("a {kind} model names no method, got '{name}'")));
            }
            (_, None) => {}
        }
        if self.n_outputs == 0 {
            return Err(GmuError::invalid("labels", "the task has no label"));
        }
        for e in &self.encoders {
            if let SubnetSpec::Cnn { height, width, d_out, .. } = *e
                && (height < 4 || width < 4 || d_out == 0)
            {
                return Err(GmuError::invalid("encoders", "a CNN encoder needs images of at least 4×4 and d_out ≥ 1"));
            }
            if let SubnetSpec::Lstm { vocab, embed, d_out, .. } = *e
                && (vocab < 2 || embed == 0 || d_out == 0)
            {
                return Err(GmuError::invalid(
                    "encoders",
                    "an LSTM encoder needs a vocabulary of at least 2 ids, embed ≥ 1 and d_out ≥ 1",
                ));
            }
        }
        Ok(())
    }

    /// Widths the fusion sees, after the encoders.
    pub fn fused_inputs(&self) -> Vec<usize> {
        self.d_inputs.iter().zip(&self.encoders).map(|(&d, e)| e.d_out(d)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, item 14: a vocabulary of millions of words is budgeted (the
    /// LSTM's embedding table and Adam's state), not met by an allocation that
    /// fails mid-training; a width of 2^64 − 1 is `None`, never an overflow.
    #[test]
    fn the_memory_bound_counts_the_sub_networks() {
        let mut spec = FusionSpec::new(FusionKind::Gmu, vec![24, 8], 16, 23, Task::Multilabel);
        let plain = spec.memory_bound(32).unwrap();
        spec.encoders[0] = SubnetSpec::Lstm { vocab: 1 << 24, embed: 64, d_out: 32, pooling: TextPooling::Mean };
        spec.d_inputs = vec![24, 8];
        let lstm = spec.memory_bound(32).unwrap();
        assert!(lstm - plain >= (1u64 << 24) * 64 * 16, "{plain} → {lstm}");
        spec.hidden = usize::MAX;
        assert_eq!(spec.memory_bound(32), None);
    }
}
