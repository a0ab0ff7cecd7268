//! The paper's building blocks: maxout layers (2 pieces), the maxout-MLP
//! classifier that sits on every fused vector
//! (`BN → maxout → dropout → BN → maxout → dropout → BN → linear`), the
//! max-norm weight constraint, and a small CNN encoder for images.

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::cpu::conv::{CnnDims, CnnEngine, CnnParams};

/// A tensor's values, row-major.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 values")
}

/// A maxout layer: `pieces` linear maps of the input, and the element-wise
/// maximum over them (Goodfellow et al., 2013).
#[derive(Module, Debug)]
pub struct Maxout {
    /// `[d_in, d_out · pieces]`; output unit `j`'s pieces are columns `j·pieces ..`.
    pub linear: Linear,
    /// Pieces per unit (the paper: 2).
    pub pieces: usize,
}

impl Maxout {
    /// Builds a maxout layer with Glorot-uniform weights and zero biases.
    pub fn new(d_in: usize, d_out: usize, pieces: usize, device: &Device) -> Self {
        Maxout { linear: LinearConfig::new(d_in, d_out * pieces).init(device), pieces }
    }

    /// # Shapes
    /// - input: `[batch, d_in]`
    /// - output: `[batch, d_out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, _] = x.dims();
        let y = self.linear.forward(x);
        let width = y.dims()[1] / self.pieces;
        y.reshape([batch, width, self.pieces]).max_dim(2).reshape([batch, width])
    }
}

/// Configuration of a [`MaxoutMlp`].
#[derive(Config, Debug)]
pub struct MaxoutMlpConfig {
    /// Input width.
    pub d_in: usize,
    /// Width of both maxout layers.
    pub hidden: usize,
    /// Output width (labels or classes).
    pub d_out: usize,
    /// Dropout probability after each maxout layer.
    #[config(default = 0.5)]
    pub dropout: f64,
    /// Pieces per maxout unit.
    #[config(default = 2)]
    pub pieces: usize,
}

/// The paper's classifier: `BN → maxout → dropout → BN → maxout → dropout → BN → linear`.
#[derive(Module, Debug)]
pub struct MaxoutMlp {
    /// Batch norm of the input.
    pub norm_in: BatchNorm,
    /// First maxout layer.
    pub maxout_1: Maxout,
    /// Batch norm after the first maxout.
    pub norm_1: BatchNorm,
    /// Second maxout layer.
    pub maxout_2: Maxout,
    /// Batch norm after the second maxout.
    pub norm_2: BatchNorm,
    /// The output layer (logits).
    pub output: Linear,
    /// Dropout after each maxout (active only on an autodiff device).
    pub dropout: Dropout,
}

impl MaxoutMlpConfig {
    /// Builds the classifier.
    pub fn init(&self, device: &Device) -> MaxoutMlp {
        MaxoutMlp {
            norm_in: BatchNormConfig::new(self.d_in).init(device),
            maxout_1: Maxout::new(self.d_in, self.hidden, self.pieces, device),
            norm_1: BatchNormConfig::new(self.hidden).init(device),
            maxout_2: Maxout::new(self.hidden, self.hidden, self.pieces, device),
            norm_2: BatchNormConfig::new(self.hidden).init(device),
            output: LinearConfig::new(self.hidden, self.d_out).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl MaxoutMlp {
    /// # Shapes
    /// - input: `[batch, d_in]`
    /// - output (logits): `[batch, d_out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.dropout.forward(self.maxout_1.forward(self.norm_in.forward(x)));
        let x = self.dropout.forward(self.maxout_2.forward(self.norm_1.forward(x)));
        self.output.forward(self.norm_2.forward(x))
    }
}

/// Rescales every column of every 2-D weight (one column per output unit of
/// a `[d_in, d_out]` linear map) whose L2 norm exceeds `limit` down to
/// `limit`: the max-norm constraint of Srebro & Shraibman, applied after each
/// optimiser step as the paper does. Biases, batch-norm parameters and
/// convolution kernels are left alone.
pub struct MaxNorm {
    /// The largest allowed column norm.
    pub limit: f32,
}

impl ModuleMapper for MaxNorm {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D != 2 {
            return param;
        }
        let limit = self.limit;
        param.map(|weight| {
            let require_grad = weight.is_require_grad();
            let weight = weight.detach();
            let norms = weight.clone().powi_scalar(2).sum_dim(0).sqrt();
            let scale = norms.clamp_min(limit).recip().mul_scalar(limit);
            let clipped = weight.clone() * scale;
            // A fresh leaf: the optimiser tracks parameters, not results of operations.
            let leaf = Tensor::from_data(clipped.into_data(), &weight.device());
            if require_grad { leaf.require_grad() } else { leaf }
        })
    }
}

/// Shape of an image modality stored flat as `[channels · height · width]`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub struct ImageShape {
    /// Channels.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// A small CNN that turns a flat image into a feature vector, trained end to
/// end with the rest of the model: two `3×3 conv (same) → ReLU → 2×2 max pool`
/// stages (16 and 32 channels), then a linear map and ReLU to `d_out`.
#[derive(Module, Debug)]
pub struct SmallCnn {
    /// First convolution.
    pub conv_1: Conv2d,
    /// Second convolution.
    pub conv_2: Conv2d,
    /// 2×2 max pooling.
    pub pool: MaxPool2d,
    /// Flattened feature map → `d_out`.
    pub project: Linear,
    /// Channels, height, width of the input.
    pub shape: [usize; 3],
}

impl SmallCnn {
    /// Builds the encoder for images of `shape`, with `d_out` output features.
    pub fn new(shape: ImageShape, d_out: usize, device: &Device) -> Self {
        let conv = |c_in: usize, c_out: usize| {
            Conv2dConfig::new([c_in, c_out], [3, 3]).with_padding(PaddingConfig2d::Same).init(device)
        };
        let flat = 32 * (shape.height / 4) * (shape.width / 4);
        SmallCnn {
            conv_1: conv(shape.channels, 16),
            conv_2: conv(16, 32),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            project: LinearConfig::new(flat, d_out).init(device),
            shape: [shape.channels, shape.height, shape.width],
        }
    }

    /// # Shapes
    /// - input: `[batch, channels · height · width]` (channel-major, as stored)
    /// - output: `[batch, d_out]`
    ///
    /// On a plain CPU device (inference) this runs the hand-written engine
    /// ([`cpu::conv`](crate::cpu::conv)), which computes the same function; on any
    /// other device (an autodiff one included) it runs
    /// [`forward_burn`](Self::forward_burn).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let device = x.device();
        // A plain (not autodiff) CPU device: the hand-written CNN.
        if crate::device::is_cpu(&device) && !format!("{device:?}").contains("Autodiff") {
            let [batch, _] = x.dims();
            let mut engine = CnnEngine::new(self.cpu_dims(), &self.cpu_params());
            let features = engine.infer(&values(x));
            return Tensor::from_data(TensorData::new(features, [batch, engine.d_out()]), &device);
        }
        self.forward_burn(x)
    }

    /// The sizes the CPU CNN ([`cpu::conv`](crate::cpu::conv)) needs.
    pub fn cpu_dims(&self) -> CnnDims {
        let [c, h, w] = self.shape;
        let [c1, ..] = self.conv_1.weight.dims();
        let [c2, ..] = self.conv_2.weight.dims();
        let [_, d_out] = self.project.weight.dims();
        CnnDims { c, h, w, c1, c2, d_out }
    }

    /// The current weights as the CPU CNN reads them (burn's layouts; an absent bias is zeros).
    pub fn cpu_params(&self) -> CnnParams {
        let dims = self.cpu_dims();
        let bias = |b: &Option<Param<Tensor<1>>>, n: usize| b.as_ref().map_or(vec![0.0; n], |b| values(b.val()));
        CnnParams {
            conv_1_weight: values(self.conv_1.weight.val()),
            conv_1_bias: bias(&self.conv_1.bias, dims.c1),
            conv_2_weight: values(self.conv_2.weight.val()),
            conv_2_bias: bias(&self.conv_2.bias, dims.c2),
            project_weight: values(self.project.weight.val()),
            project_bias: bias(&self.project.bias, dims.d_out),
        }
    }

    /// [`forward`](Self::forward) in burn's operations, on any device.
    ///
    /// # Shapes
    /// - input: `[batch, channels · height · width]` (channel-major, as stored)
    /// - output: `[batch, d_out]`
    pub fn forward_burn(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, _] = x.dims();
        let [c, h, w] = self.shape;
        let x = x.reshape([batch, c, h, w]);
        let x = self.pool.forward(relu(self.conv_1.forward(x)));
        let x = self.pool.forward(relu(self.conv_2.forward(x)));
        let [_, c2, h2, w2] = x.dims();
        relu(self.project.forward(x.reshape([batch, c2 * h2 * w2])))
    }
}

/// How [`TextLstm`] turns its per-token states into one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TextPooling {
    /// The mean of the states at the non-padding tokens.
    #[default]
    Mean,
    /// The state at the last non-padding token.
    Last,
}

/// The trainable text sub-network the post suggests ("LSTM for a textual
/// modality"): token ids → embedding → LSTM → the mean (or last) state over
/// the non-padding tokens. Id 0 is padding; a row of padding only gives zeros.
#[derive(Module, Debug)]
pub struct TextLstm {
    /// Token embeddings `[vocab, embed]`.
    pub embedding: burn::nn::Embedding,
    /// One LSTM layer, batch first.
    pub lstm: burn::nn::Lstm,
    /// Whether to keep the last state instead of the mean.
    pub last: bool,
}

impl TextLstm {
    /// An LSTM over a vocabulary of `vocab` ids (0 = padding), `embed`-wide
    /// embeddings and `d_out` hidden units.
    pub fn new(vocab: usize, embed: usize, d_out: usize, pooling: TextPooling, device: &Device) -> Self {
        TextLstm {
            embedding: burn::nn::EmbeddingConfig::new(vocab, embed).init(device),
            lstm: burn::nn::LstmConfig::new(embed, d_out, true).with_batch_first(true).init(device),
            last: pooling == TextPooling::Last,
        }
    }

    /// # Shapes
    /// - input: `[batch, tokens]`, token ids stored as floats (0 = padding, at the end)
    /// - output: `[batch, d_out]`
    pub fn forward(&self, ids: Tensor<2>) -> Tensor<2> {
        let [batch, tokens] = ids.dims();
        let mask = ids.clone().greater_elem(0.5).float(); // [batch, tokens]
        let states = self.lstm.forward(self.embedding.forward(ids.int()), None).0; // [batch, tokens, d_out]
        let weights = if self.last {
            // 1 at the last non-padding token: m_t · (1 − m_{t+1})
            let next = Tensor::cat(vec![mask.clone().narrow(1, 1, tokens - 1), mask.zeros_like().narrow(1, 0, 1)], 1);
            mask.clone() * (next.neg() + 1.0)
        } else {
            let counts = mask.clone().sum_dim(1).clamp_min(1.0);
            mask / counts
        };
        (states * weights.reshape([batch, tokens, 1])).sum_dim(1).squeeze_dim::<2>(1)
    }
}

#[cfg(test)]
mod text_lstm_tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::{TextLstm, TextPooling};

    fn ids(rows: &[&[f32]]) -> Tensor<2> {
        let t = rows[0].len();
        Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), t]), &Device::default())
    }

    /// Padding does not change a row's vector (mean and last), a row of
    /// padding only gives zeros, and the mean is the mean of the per-token states.
    #[test]
    fn padding_is_ignored_and_pooling_is_what_it_says() {
        let device = Device::default();
        for pooling in [TextPooling::Mean, TextPooling::Last] {
            let lstm = TextLstm::new(20, 4, 3, pooling, &device);
            let short = lstm.forward(ids(&[&[5.0, 7.0, 9.0]])).into_data().try_to_vec::<f32>().unwrap();
            let padded =
                lstm.forward(ids(&[&[5.0, 7.0, 9.0, 0.0, 0.0], &[0.0; 5]])).into_data().try_to_vec::<f32>().unwrap();
            for j in 0..3 {
                assert!((short[j] - padded[j]).abs() < 1e-6, "{pooling:?}: {short:?} vs {padded:?}");
                assert_eq!(padded[3 + j], 0.0, "a row of padding gives zeros");
            }
            let states = lstm
                .lstm
                .forward(lstm.embedding.forward(ids(&[&[5.0, 7.0, 9.0]]).int()), None)
                .0
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            for j in 0..3 {
                let want = match pooling {
                    TextPooling::Mean => (states[j] + states[3 + j] + states[6 + j]) / 3.0,
                    TextPooling::Last => states[6 + j],
                };
                assert!((short[j] - want).abs() < 1e-6, "{pooling:?} unit {j}: {} vs {want}", short[j]);
            }
        }
    }
}
