//! EfficientNet-Lite0 as burn code, any device: the folded convolutions
//! (see [`fold`]) with ReLU6, and the head's features averaged over space.

use burn::tensor::activation::relu6;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use super::config::{fold, same_padding};
use crate::encoders::weights::Weights;
use crate::error::{GmuError, Result};

/// A convolution with its batch norm folded in.
struct Conv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    kernel: usize,
    stride: usize,
    groups: usize,
}

impl Conv {
    /// `conv` followed by `bn`, folded (see [`fold`]).
    fn folded(w: &Weights, conv: &str, bn: &str, stride: usize, depthwise: bool, device: &Device) -> Result<Conv> {
        let (folded, bias, shape) = fold(w, conv, bn)?;
        let groups = if depthwise { shape[0] } else { 1 };
        Ok(Conv {
            weight: Tensor::from_data(TensorData::new(folded, shape), device),
            bias: Tensor::from_data(TensorData::new(bias, [shape[0]]), device),
            kernel: shape[2],
            stride,
            groups,
        })
    }

    /// `x` `[n, c, h, w]` → `[n, out, ⌈h/s⌉, ⌈w/s⌉]` with "SAME" padding.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let pad = |size: usize| {
            let (_, before, after) = same_padding(size, self.kernel, self.stride);
            (before, after)
        };
        let options = ConvOptions::new_with_padding([self.stride; 2], [pad(h), pad(w)], [1, 1], self.groups);
        conv2d(x, self.weight.clone(), Some(self.bias.clone()), options)
    }
}

struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    skip: bool,
}

/// EfficientNet-Lite with frozen, folded weights.
pub struct EffnetLite {
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
    classifier: Option<(Tensor<2>, Tensor<1>)>,
    features: usize,
}

impl EffnetLite {
    /// Builds the network from lukemelas-style tensors; `strides` gives each
    /// block's stride (the only thing the shapes do not say).
    pub fn from_weights(w: &Weights, strides: &[usize], device: &Device) -> Result<EffnetLite> {
        let n_blocks = (0..).take_while(|i| w.has(&format!("_blocks.{i}._depthwise_conv.weight"))).count();
        if n_blocks != strides.len() {
            return Err(GmuError::data(
                w.path(),
                format!("{n_blocks} blocks, expected {} (EfficientNet-Lite0)", strides.len()),
            ));
        }
        let stem = Conv::folded(w, "_conv_stem", "_bn0", 2, false, device)?;
        let mut blocks = Vec::with_capacity(n_blocks);
        let mut channels = stem.weight.dims()[0];
        for (i, &stride) in strides.iter().enumerate() {
            let p = format!("_blocks.{i}");
            let expand = if w.has(&format!("{p}._expand_conv.weight")) {
                Some(Conv::folded(w, &format!("{p}._expand_conv"), &format!("{p}._bn0"), 1, false, device)?)
            } else {
                None
            };
            let depthwise =
                Conv::folded(w, &format!("{p}._depthwise_conv"), &format!("{p}._bn1"), stride, true, device)?;
            let project = Conv::folded(w, &format!("{p}._project_conv"), &format!("{p}._bn2"), 1, false, device)?;
            let out = project.weight.dims()[0];
            blocks.push(Block { expand, depthwise, project, skip: stride == 1 && out == channels });
            channels = out;
        }
        let head = Conv::folded(w, "_conv_head", "_bn1", 1, false, device)?;
        let features = head.weight.dims()[0];
        let classifier = match w.shape("_fc.weight") {
            Some(s) => Some((w.linear("_fc.weight", features, s[0], device)?, w.tensor("_fc.bias", [s[0]], device)?)),
            None => None,
        };
        Ok(EffnetLite { stem, blocks, head, classifier, features })
    }

    /// Width of the pooled features (1280).
    pub fn features(&self) -> usize {
        self.features
    }

    /// Pooled features `[n, 1280]` of images `[n, 3, h, w]` (normalised `(x − 127)/128`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu6(self.stem.forward(x));
        for block in &self.blocks {
            let input = x.clone();
            if let Some(expand) = &block.expand {
                x = relu6(expand.forward(x));
            }
            x = relu6(block.depthwise.forward(x));
            x = block.project.forward(x);
            if block.skip {
                x = x + input;
            }
        }
        let x = relu6(self.head.forward(x));
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }

    /// ImageNet logits `[n, 1000]` from pooled features, if the file has `_fc`.
    pub fn classify(&self, features: Tensor<2>) -> Option<Tensor<2>> {
        self.classifier.as_ref().map(|(w, b)| features.matmul(w.clone()) + b.clone().unsqueeze_dim::<2>(0))
    }
}
