//! A trained [`FusionNet`] as an ONNX graph: one node per operation of its
//! forward pass on a plain (inference) device, its weights as initializers.
//! Every builder method appends nodes and returns the name of the value it
//! made; shapes in the doc comments are per batch of `N` rows.

use burn::nn::{BatchNorm, Linear};
use burn::tensor::Tensor;

use super::proto::{AttributeProto, FLOAT, INT64, NodeProto, TensorProto};
use crate::error::{GmuError, Result};
use crate::fusion::blocks::values;
use crate::fusion::network::{Expert, FusionHead, MoeHead};
use crate::fusion::{FusionNet, Gmu, Maxout, MaxoutMlp};

/// The nodes and initializers of a graph under construction.
#[derive(Default)]
pub struct GraphBuilder {
    /// The operators, in an order where every input is made before it is read.
    pub nodes: Vec<NodeProto>,
    /// The constants (weights, scaler statistics, shapes).
    pub initializers: Vec<TensorProto>,
    count: usize,
}

/// What one network's graph gives: its probabilities `[N, C]` and, for a
/// gated model, its gates `[N, K, G]`.
pub struct NetOutputs {
    /// Probabilities: softmax or sigmoid of the logits, or a mixture's own.
    pub probs: String,
    /// The gate values, as `FusionNet::forward` returns them.
    pub gates: Option<String>,
}

impl GraphBuilder {
    fn fresh(&mut self, hint: &str) -> String {
        self.count += 1;
        format!("{hint}_{}", self.count)
    }

    /// A float constant of shape `dims`.
    pub fn constant(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        assert_eq!(dims.iter().product::<usize>(), data.len(), "{hint}: {dims:?} for {} values", data.len());
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.clone(),
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        });
        name
    }

    /// A 1-D int64 constant (shapes and axes).
    pub fn ints(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: INT64,
            name: name.clone(),
            raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        });
        name
    }

    /// One node of `op` on `inputs` with `attributes`; returns its one output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        let output = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: format!("{output}_node"),
            op_type: op.into(),
            attribute: attributes,
        });
        output
    }

    /// `Identity`, its output named `name` (a graph output).
    pub fn rename(&mut self, x: &str, name: &str) {
        self.nodes.push(NodeProto {
            input: vec![x.into()],
            output: vec![name.into()],
            name: format!("{name}_node"),
            op_type: "Identity".into(),
            attribute: vec![],
        });
    }

    /// `(x − mean) / scale`, column by column: a view's saved scaler, as
    /// `Scaler::apply` computes it. `x`: `[N, d]`.
    pub fn scale(&mut self, x: &str, mean: &[f32], scale: &[f32]) -> String {
        if mean.iter().all(|&m| m == 0.0) && scale.iter().all(|&s| s == 1.0) {
            return x.to_string();
        }
        let m = self.constant("scaler_mean", &[mean.len()], mean);
        let s = self.constant("scaler_scale", &[scale.len()], scale);
        let centred = self.node("Sub", &[x, &m], vec![]);
        self.node("Div", &[&centred, &s], vec![])
    }

    /// `x W + b`. `x`: `[N, d_in]` → `[N, d_out]`.
    pub fn linear(&mut self, x: &str, layer: &Linear) -> String {
        let w = layer.weight.val();
        let dims = w.dims();
        let w = self.constant("weight", &dims, &values(w));
        let y = self.node("MatMul", &[x, &w], vec![]);
        match &layer.bias {
            Some(b) => {
                let b = self.constant("bias", &[dims[1]], &values(b.val()));
                self.node("Add", &[&y, &b], vec![])
            }
            None => y,
        }
    }

    /// Batch norm with the running statistics (inference). `[N, d]` → `[N, d]`.
    pub fn batch_norm(&mut self, x: &str, norm: &BatchNorm) -> String {
        let column = |t: Tensor<1>| values(t);
        let gamma = column(norm.gamma.val());
        let d = gamma.len();
        let gamma = self.constant("bn_gamma", &[d], &gamma);
        let beta = self.constant("bn_beta", &[d], &column(norm.beta.val()));
        let mean = self.constant("bn_mean", &[d], &column(norm.running_mean.value()));
        let var = self.constant("bn_var", &[d], &column(norm.running_var.value()));
        let eps = AttributeProto::float("epsilon", norm.epsilon as f32);
        self.node("BatchNormalization", &[x, &gamma, &beta, &mean, &var], vec![eps])
    }

    /// The maximum over each unit's `pieces` linear maps. `[N, d_in]` → `[N, d_out]`.
    pub fn maxout(&mut self, x: &str, layer: &Maxout) -> String {
        let y = self.linear(x, &layer.linear);
        let width = layer.linear.weight.dims()[1] / layer.pieces;
        let shape = self.ints("shape", &[-1, width as i64, layer.pieces as i64]);
        let pieces = self.node("Reshape", &[&y, &shape], vec![]);
        let axes = vec![AttributeProto::ints("axes", vec![2]), AttributeProto::int("keepdims", 0)];
        self.node("ReduceMax", &[&pieces], axes)
    }

    /// The paper's classifier at inference (dropout is the identity):
    /// `BN → maxout → BN → maxout → BN → linear`. `[N, d]` → logits `[N, C]`.
    pub fn maxout_mlp(&mut self, x: &str, mlp: &MaxoutMlp) -> String {
        let x = self.batch_norm(x, &mlp.norm_in);
        let x = self.maxout(&x, &mlp.maxout_1);
        let x = self.batch_norm(&x, &mlp.norm_1);
        let x = self.maxout(&x, &mlp.maxout_2);
        let x = self.batch_norm(&x, &mlp.norm_2);
        self.linear(&x, &mlp.output)
    }

    /// `[N, d_1] … [N, d_K]` side by side: `[N, Σ d]` (one input as it is).
    fn concat(&mut self, xs: &[String]) -> String {
        if xs.len() == 1 {
            return xs[0].clone();
        }
        let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
        self.node("Concat", &refs, vec![AttributeProto::int("axis", 1)])
    }

    /// `[N, …]` tensors stacked on a new axis `axis`.
    fn stack(&mut self, xs: &[String], axis: i64) -> String {
        let at = self.ints("axes", &[axis]);
        let lifted: Vec<String> = xs.iter().map(|x| self.node("Unsqueeze", &[x, &at], vec![])).collect();
        let refs: Vec<&str> = lifted.iter().map(String::as_str).collect();
        self.node("Concat", &refs, vec![AttributeProto::int("axis", axis)])
    }

    fn reduce_sum(&mut self, x: &str, axis: i64, keepdims: bool) -> String {
        let axes = self.ints("axes", &[axis]);
        self.node("ReduceSum", &[x, &axes], vec![AttributeProto::int("keepdims", i64::from(keepdims))])
    }

    fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let shape = self.ints("shape", shape);
        self.node("Reshape", &[x, &shape], vec![])
    }

    /// The GMU: `h_i = tanh(W_i x_i)`, gates from the concatenated inputs.
    /// Returns the fused vector `[N, H]` and the gates `[N, K, H]` (for two
    /// views `z` and `1 − z`, as `Gmu::forward`).
    pub fn gmu(&mut self, xs: &[String], gmu: &Gmu) -> (String, String) {
        let k = xs.len();
        let hidden: Vec<String> = xs
            .iter()
            .zip(&gmu.transforms)
            .map(|(x, layer)| {
                let a = self.linear(x, layer);
                self.node("Tanh", &[&a], vec![])
            })
            .collect();
        let h = gmu.transforms[0].weight.dims()[1] as i64;
        let all = self.concat(xs);
        let gate_in = match &gmu.gate_hidden {
            Some(layer) => {
                let pre = self.linear(&all, layer);
                self.node("Tanh", &[&pre], vec![])
            }
            None => all,
        };
        let logits = self.linear(&gate_in, &gmu.gate);
        if k == 2 {
            let z = self.node("Sigmoid", &[&logits], vec![]);
            let one = self.constant("one", &[], &[1.0]);
            let not_z = self.node("Sub", &[&one, &z], vec![]);
            // h = h_2 + z ⊙ (h_1 − h_2), as Gmu::forward computes it.
            let diff = self.node("Sub", &[&hidden[0], &hidden[1]], vec![]);
            let gated = self.node("Mul", &[&z, &diff], vec![]);
            let fused = self.node("Add", &[&hidden[1], &gated], vec![]);
            let gates = self.stack(&[z, not_z], 1);
            return (fused, gates);
        }
        let logits = self.reshape(&logits, &[-1, k as i64, h]);
        let gates = if gmu.normalize_gates {
            self.node("Softmax", &[&logits], vec![AttributeProto::int("axis", 1)])
        } else {
            self.node("Sigmoid", &[&logits], vec![])
        };
        let stacked = self.stack(&hidden, 1);
        let weighted = self.node("Mul", &[&gates, &stacked], vec![]);
        (self.reduce_sum(&weighted, 1, false), gates)
    }

    fn activate(&mut self, logits: &str, multilabel: bool) -> String {
        if multilabel {
            self.node("Sigmoid", &[logits], vec![])
        } else {
            self.node("Softmax", &[logits], vec![AttributeProto::int("axis", 1)])
        }
    }

    /// A mixture of experts: each expert's probabilities `[N, C]` weighted by
    /// a softmax gate over the experts (one per label when untied), as
    /// `FusionNet`'s mixture computes them. Returns probabilities `[N, C]` and
    /// gates `[N, K, 1]` (tied) or `[N, K, C]` (untied).
    fn mixture(&mut self, xs: &[String], head: &MoeHead, multilabel: bool) -> (String, String) {
        let k = xs.len() as i64;
        let probs: Vec<String> = head
            .experts
            .iter()
            .zip(xs)
            .map(|(expert, x)| {
                let logits = match expert {
                    Expert::Logistic(l) => self.linear(x, l),
                    Expert::Maxout(m) => self.maxout_mlp(x, m),
                };
                self.activate(&logits, multilabel)
            })
            .collect();
        let c = match &head.experts[0] {
            Expert::Logistic(l) => l.weight.dims()[1],
            Expert::Maxout(m) => m.output.weight.dims()[1],
        } as i64;
        let expert_probs = self.stack(&probs, 2); // [N, C, K]
        let all = self.concat(xs);
        let logits = self.linear(&all, &head.gate);
        let (mixed, gates) = if head.tied {
            let g = self.node("Softmax", &[&logits], vec![AttributeProto::int("axis", 1)]); // [N, K]
            let lifted = self.reshape(&g, &[-1, 1, k]);
            let weighted = self.node("Mul", &[&expert_probs, &lifted], vec![]);
            (self.reduce_sum(&weighted, 2, false), self.reshape(&g, &[-1, k, 1]))
        } else {
            let per_label = self.reshape(&logits, &[-1, c, k]);
            let g = self.node("Softmax", &[&per_label], vec![AttributeProto::int("axis", 2)]); // [N, C, K]
            let weighted = self.node("Mul", &[&expert_probs, &g], vec![]);
            let gates = self.node("Transpose", &[&g], vec![AttributeProto::ints("perm", vec![0, 2, 1])]);
            (self.reduce_sum(&weighted, 2, false), gates)
        };
        let mixed = if !multilabel && !head.tied {
            let total = self.reduce_sum(&mixed, 1, true);
            self.node("Div", &[&mixed, &total], vec![])
        } else {
            mixed
        };
        (mixed, gates)
    }

    /// One network on its (scaled) inputs `xs[i]`: `[N, d_i]`. Models with a
    /// trainable picture CNN or text LSTM, and methods registered from outside
    /// the crate, are refused (their layers have no ONNX form here yet).
    pub fn net(&mut self, xs: &[String], net: &FusionNet, view_names: &[&str]) -> Result<NetOutputs> {
        for (i, name) in view_names.iter().enumerate() {
            if net.encoders[i].is_some() || net.texts[i].is_some() {
                return Err(GmuError::invalid(
                    "model",
                    format!(
                        "view '{name}' goes through a trainable {} inside the model; ONNX export covers models on \
                         feature views (encode pictures or texts with `gmu encode` and train on the features)",
                        if net.encoders[i].is_some() { "picture CNN" } else { "text LSTM" }
                    ),
                ));
            }
        }
        let m = net.multilabel;
        let (logits, gates) = match &net.head {
            FusionHead::Gmu(head) => {
                let (fused, gates) = self.gmu(xs, &head.gmu);
                (self.maxout_mlp(&fused, &head.mlp), Some(gates))
            }
            FusionHead::GmuLinear(head) => {
                let (fused, gates) = self.gmu(xs, &head.gmu);
                (self.linear(&fused, &head.output), Some(gates))
            }
            FusionHead::Concat(mlp) => {
                let x = self.concat(xs);
                (self.maxout_mlp(&x, mlp), None)
            }
            FusionHead::Linear(layer) => {
                let x = self.concat(xs);
                (self.linear(&x, layer), None)
            }
            FusionHead::Tanh(head) => {
                let x = self.concat(xs);
                let a = self.linear(&x, &head.hidden);
                let t = self.node("Tanh", &[&a], vec![]);
                (self.linear(&t, &head.output), None)
            }
            FusionHead::LinearSum(head) => {
                let parts: Vec<String> = xs
                    .iter()
                    .zip(head.norms.iter().zip(&head.projections))
                    .map(|(x, (norm, proj))| {
                        let n = self.batch_norm(x, norm);
                        self.maxout(&n, proj)
                    })
                    .collect();
                let sum = parts.into_iter().reduce(|a, b| self.node("Add", &[&a, &b], vec![])).expect("a view");
                (self.maxout_mlp(&sum, &head.mlp), None)
            }
            FusionHead::Moe(head) => {
                let (probs, gates) = self.mixture(xs, head, m);
                return Ok(NetOutputs { probs, gates: Some(gates) });
            }
            FusionHead::Custom(head) => {
                return Err(GmuError::invalid(
                    "model",
                    format!(
                        "fusion method '{}' is registered from outside gmu; ONNX export covers gmu's own methods",
                        head.method.0.name()
                    ),
                ));
            }
        };
        Ok(NetOutputs { probs: self.activate(&logits, m), gates })
    }
}
