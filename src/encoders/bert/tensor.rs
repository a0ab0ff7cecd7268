//! all-MiniLM-L6-v2 as burn code: a BERT encoder (Hugging Face tensor names),
//! mean pooling over the attention mask and L2 normalisation, as
//! sentence-transformers computes it; any device. The weights are frozen:
//! plain tensors on the inference device, no `Param`s.

use burn::tensor::activation::gelu;
use burn::tensor::module::{attention, embedding, layer_norm};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::config::BertConfig;
use crate::encoders::weights::Weights;
use crate::error::{GmuError, Result};

struct Norm {
    gamma: Tensor<1>,
    beta: Tensor<1>,
}

struct Layer {
    /// Query, key and value fused: `[d, 3d]`, and their biases `[3d]`.
    qkv: Tensor<2>,
    qkv_bias: Tensor<1>,
    attention_out: Tensor<2>,
    attention_out_bias: Tensor<1>,
    attention_norm: Norm,
    intermediate: Tensor<2>,
    intermediate_bias: Tensor<1>,
    output: Tensor<2>,
    output_bias: Tensor<1>,
    output_norm: Norm,
}

/// A BERT encoder with frozen weights.
pub struct Bert {
    word: Tensor<2>,
    position: Tensor<2>,
    token_type: Tensor<1>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    config: BertConfig,
    hidden: usize,
    pub(crate) max_positions: usize,
}

impl Bert {
    /// Builds the encoder from Hugging Face BERT tensors
    /// (`embeddings.word_embeddings.weight`, `encoder.layer.N.attention.self.query.weight`, …);
    /// widths and depth come from the shapes.
    pub fn from_weights(w: &Weights, config: BertConfig, device: &Device) -> Result<Bert> {
        let word_shape = w.shape("embeddings.word_embeddings.weight").ok_or_else(|| {
            GmuError::data(w.path(), "no tensor 'embeddings.word_embeddings.weight': not a BERT checkpoint")
        })?;
        let [vocab, d] = word_shape[..] else {
            return Err(GmuError::data(w.path(), format!("word embeddings of shape {word_shape:?}")));
        };
        if d % config.heads != 0 {
            return Err(GmuError::data(
                w.path(),
                format!("hidden width {d} is not a multiple of {} heads", config.heads),
            ));
        }
        let max_positions = w.shape("embeddings.position_embeddings.weight").map_or(0, |s| s[0]);
        let norm = |prefix: &str| -> Result<Norm> {
            Ok(Norm {
                gamma: w.tensor(&format!("{prefix}.weight"), [d], device)?,
                beta: w.tensor(&format!("{prefix}.bias"), [d], device)?,
            })
        };
        let n_layers = (0..).take_while(|i| w.has(&format!("encoder.layer.{i}.attention.self.query.weight"))).count();
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = format!("encoder.layer.{i}");
            let ff = w.shape(&format!("{p}.intermediate.dense.weight")).map_or(0, |s| s[0]);
            let q = w.linear(&format!("{p}.attention.self.query.weight"), d, d, device)?;
            let k = w.linear(&format!("{p}.attention.self.key.weight"), d, d, device)?;
            let v = w.linear(&format!("{p}.attention.self.value.weight"), d, d, device)?;
            let bias = |name: &str, n: usize| w.tensor::<1>(&format!("{p}.{name}.bias"), [n], device);
            layers.push(Layer {
                qkv: Tensor::cat(vec![q, k, v], 1),
                qkv_bias: Tensor::cat(
                    vec![
                        bias("attention.self.query", d)?,
                        bias("attention.self.key", d)?,
                        bias("attention.self.value", d)?,
                    ],
                    0,
                ),
                attention_out: w.linear(&format!("{p}.attention.output.dense.weight"), d, d, device)?,
                attention_out_bias: bias("attention.output.dense", d)?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: w.linear(&format!("{p}.intermediate.dense.weight"), d, ff, device)?,
                intermediate_bias: bias("intermediate.dense", ff)?,
                output: w.linear(&format!("{p}.output.dense.weight"), ff, d, device)?,
                output_bias: bias("output.dense", d)?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        if layers.is_empty() {
            return Err(GmuError::data(w.path(), "no encoder layers (encoder.layer.0.*)"));
        }
        Ok(Bert {
            word: w.tensor("embeddings.word_embeddings.weight", [vocab, d], device)?,
            position: w.tensor("embeddings.position_embeddings.weight", [max_positions, d], device)?,
            token_type: w
                .tensor::<2>(
                    "embeddings.token_type_embeddings.weight",
                    [w.shape("embeddings.token_type_embeddings.weight").map_or(0, |s| s[0]), d],
                    device,
                )?
                .narrow(0, 0, 1)
                .reshape([d]),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            config,
            hidden: d,
            max_positions,
        })
    }

    /// Hidden width (384 for MiniLM).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Last hidden states `[batch, tokens, hidden]` of `ids` `[batch, tokens]`
    /// (token type 0 everywhere), attending only where `mask` `[batch, tokens]` is 1.
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let d = self.hidden;
        let heads = self.config.heads;
        let dh = d / heads;
        let eps = self.config.layer_norm_eps;
        let norm = |x: Tensor<3>, n: &Norm| layer_norm(x, n.gamma.clone(), Some(n.beta.clone()), eps);
        let x = embedding(self.word.clone(), ids)
            + self.position.clone().narrow(0, 0, t).unsqueeze_dim::<3>(0)
            + self.token_type.clone().unsqueeze_dims::<3>(&[0, 1]);
        let mut x = norm(x, &self.embedding_norm);
        // key mask: true where a key is padding (burn's attention masks those out)
        let padded = mask.lower_elem(0.5).reshape([b, 1, 1, t]).expand([b, heads, t, t]);
        for layer in &self.layers {
            let qkv =
                x.clone().reshape([b * t, d]).matmul(layer.qkv.clone()) + layer.qkv_bias.clone().unsqueeze_dim::<2>(0);
            let split = |i: usize| qkv.clone().narrow(1, i * d, d).reshape([b, t, heads, dh]).swap_dims(1, 2);
            let (q, k, v) = (split(0), split(1), split(2));
            // softmax(q kᵀ / √d_head + mask) v, fused (no [b, h, t, t] score tensor on flex)
            let context =
                attention(q, k, v, Some(padded.clone()), None, Default::default()).swap_dims(1, 2).reshape([b * t, d]);
            let attended =
                context.matmul(layer.attention_out.clone()) + layer.attention_out_bias.clone().unsqueeze_dim::<2>(0);
            x = norm(attended.reshape([b, t, d]) + x, &layer.attention_norm);
            let inner = gelu(
                x.clone().reshape([b * t, d]).matmul(layer.intermediate.clone())
                    + layer.intermediate_bias.clone().unsqueeze_dim::<2>(0),
            );
            let out = inner.matmul(layer.output.clone()) + layer.output_bias.clone().unsqueeze_dim::<2>(0);
            x = norm(out.reshape([b, t, d]) + x, &layer.output_norm);
        }
        x
    }

    /// Sentence embeddings `[batch, hidden]`: the hidden states mean-pooled
    /// over `mask` and L2-normalised (sentence-transformers' Pooling + Normalize).
    pub fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<2> {
        let hidden = self.forward(ids, mask.clone());
        let m = mask.unsqueeze_dim::<3>(2);
        let summed = (hidden * m.clone()).sum_dim(1).squeeze_dim::<2>(1);
        let counts = m.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1e-9);
        let mean = summed / counts;
        let norms = mean.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        mean / norms
    }

    /// Embeds already tokenized rows (each at most the model's positions),
    /// padding them to the longest: `[rows.len(), hidden]`, row-major.
    pub fn embed_ids(&self, rows: &[Vec<u32>], device: &Device) -> Vec<f32> {
        if rows.is_empty() {
            return Vec::new();
        }
        let t = rows.iter().map(Vec::len).max().unwrap_or(1).clamp(1, self.max_positions);
        let mut ids = vec![0i64; rows.len() * t];
        let mut mask = vec![0f32; rows.len() * t];
        for (r, row) in rows.iter().enumerate() {
            for (j, &id) in row.iter().take(t).enumerate() {
                ids[r * t + j] = id as i64;
                mask[r * t + j] = 1.0;
            }
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows.len(), t]), device);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [rows.len(), t]), device);
        self.embed(ids, mask).into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 embeddings")
    }
}
