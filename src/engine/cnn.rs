//! The `cnn` engine: the picture CNNs of a model ([`SmallCnn`]) forward and
//! backward by hand ([`cpu::conv`](crate::cpu::conv)) while burn's autodiff
//! trains the rest (the fusion, the head, the mixtures of experts). Each step
//! the CNNs' features go to burn as leaves that collect the gradient, and the
//! CNNs' own gradients are registered for burn's optimiser beside the rest.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Gradients, Tensor, TensorData};

use super::choice::{Engine, RunNeeds, TrainEngine, on_cpu};
use crate::cpu::conv::{CnnEngine, CnnParams};
use crate::fusion::blocks::values;
use crate::fusion::{FusionNet, SmallCnn};

/// Hands `g` to burn's optimiser as the gradients of `cnn`'s parameters, as
/// tensors on `device` (the autodiff device's inner one).
pub fn register(g: CnnParams, cnn: &SmallCnn, grads: &mut GradientsParams, device: &Device) {
    let t1 = |v: Vec<f32>| {
        let n = v.len();
        Tensor::<1>::from_data(TensorData::new(v, [n]), device)
    };
    let [c1, c, ..] = cnn.conv_1.weight.dims();
    let [c2, ..] = cnn.conv_2.weight.dims();
    let [flat, d_out] = cnn.project.weight.dims();
    grads.register(
        cnn.conv_1.weight.id,
        Tensor::<4>::from_data(TensorData::new(g.conv_1_weight, [c1, c, 3, 3]), device),
    );
    grads.register(
        cnn.conv_2.weight.id,
        Tensor::<4>::from_data(TensorData::new(g.conv_2_weight, [c2, c1, 3, 3]), device),
    );
    grads.register(
        cnn.project.weight.id,
        Tensor::<2>::from_data(TensorData::new(g.project_weight, [flat, d_out]), device),
    );
    for (bias, g) in
        [(&cnn.conv_1.bias, g.conv_1_bias), (&cnn.conv_2.bias, g.conv_2_bias), (&cnn.project.bias, g.project_bias)]
    {
        if let Some(b) = bias {
            grads.register(b.id, t1(g));
        }
    }
}

/// The CNN encoders of a [`FusionNet`] on the engine while burn's autodiff
/// trains the rest (the `cnn` engine): each step the engine reads the CNNs'
/// current weights, computes their features, and hands them to burn as
/// leaves that collect the gradient; after burn's backward pass the engine
/// turns each leaf's gradient into the CNN's parameter gradients, which
/// burn's optimiser then applies with the rest.
#[derive(Debug)]
pub struct CnnFronts {
    engines: Vec<Option<CnnEngine>>,
    leaves: Vec<Option<Tensor<2>>>,
}

impl CnnFronts {
    /// One engine per CNN encoder of `net`.
    pub fn new(net: &FusionNet) -> CnnFronts {
        let engines: Vec<Option<CnnEngine>> = net
            .encoders
            .iter()
            .map(|e| e.as_ref().map(|cnn| CnnEngine::new(cnn.cpu_dims(), &cnn.cpu_params())))
            .collect();
        CnnFronts { leaves: vec![None; engines.len()], engines }
    }

    /// Each view as the fusion sees it (see [`FusionNet::encode`]): the CNN
    /// views through the engine, as leaves on `inputs`' autodiff device; the
    /// others through their burn encoder.
    ///
    /// # Shapes
    /// - `inputs[i]`: `[batch, d_i]`, missing views already zeroed ([`FusionNet::zero_missing`])
    pub fn encode(&mut self, net: &FusionNet, inputs: Vec<Tensor<2>>) -> Vec<Tensor<2>> {
        inputs
            .into_iter()
            .enumerate()
            .map(|(i, x)| match (&mut self.engines[i], &net.encoders[i]) {
                (Some(engine), Some(cnn)) => {
                    let (device, [batch, _]) = (x.device(), x.dims());
                    engine.load(&cnn.cpu_params());
                    let features = engine.forward(&values(x)).to_vec();
                    let leaf = Tensor::<2>::from_data(TensorData::new(features, [batch, engine.d_out()]), &device)
                        .require_grad();
                    self.leaves[i] = Some(leaf.clone());
                    leaf
                }
                _ => net.encode(i, x),
            })
            .collect()
    }

    /// The gradients of every parameter of `net` for the optimiser: burn's,
    /// from `grads`, and the CNNs', from the gradients of the features of the
    /// last [`encode`](Self::encode).
    pub fn gradients(&mut self, net: &FusionNet, mut grads: Gradients) -> GradientsParams {
        let mut params = GradientsParams::from_module(&mut grads, net);
        for ((engine, leaf), cnn) in self.engines.iter_mut().zip(&mut self.leaves).zip(&net.encoders) {
            if let (Some(engine), Some(leaf), Some(cnn)) = (engine, leaf.take(), cnn) {
                let Some(d_features) = leaf.grad_remove(&mut grads) else { continue };
                let device = d_features.device();
                register(engine.backward(&values(d_features)), cnn, &mut params, &device);
            }
        }
        params
    }
}

/// The cnn engine's account of what it trains (see [`TrainEngine`]): any
/// model with a picture CNN, on the CPU (the CNNs by hand, the rest on burn,
/// whose missing-view rules it keeps).
pub struct Cnn;

impl TrainEngine for Cnn {
    fn engine(&self) -> Engine {
        Engine::Cnn
    }

    fn supports(
        &self,
        spec: &crate::fusion::FusionSpec,
        _needs: &RunNeeds,
        device: &Device,
    ) -> std::result::Result<(), String> {
        on_cpu(device)?;
        if spec.encoders.iter().any(|e| matches!(e, crate::fusion::SubnetSpec::Cnn { .. })) {
            Ok(())
        } else {
            Err("it trains models with a CNN image encoder (the CNNs by hand, the rest on burn)".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{Distribution, Tensor, TensorData};

    use super::*;
    use crate::cpu::conv::INFER_BLOCK;
    use crate::device::cpu;
    use crate::fusion::blocks::ImageShape;

    fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * scale, "{what}[{i}]: engine {g}, burn {w} (scale {scale})");
        }
    }

    fn grad<const D: usize>(p: &Param<Tensor<D>>, grads: &burn::tensor::Gradients) -> Vec<f32> {
        values(p.val().grad(grads).expect("a gradient"))
    }

    /// Features and every parameter gradient against burn's autodiff, for
    /// batches that fill the last task or not, square and odd-sized images
    /// (whose pooling drops an edge), with biases moved off zero.
    #[test]
    fn features_and_every_gradient_match_burn() {
        // burn's random state is shared: draw from it under the lock (see fusion::random).
        crate::fusion::random::exclusive(|| {
            let device = cpu().autodiff();
            for (shape, batch) in [((3, 8, 8), 5), ((2, 10, 6), 4), ((1, 7, 9), 3)] {
                device.seed(11);
                let (c, h, w) = shape;
                let mut cnn = SmallCnn::new(ImageShape { channels: c, height: h, width: w }, 6, &device);
                for bias in [&mut cnn.conv_1.bias, &mut cnn.conv_2.bias, &mut cnn.project.bias] {
                    let b = bias.take().unwrap();
                    let n = b.dims()[0];
                    *bias = Some(Param::from_tensor(Tensor::random([n], Distribution::Uniform(-0.3, 0.3), &device)));
                }
                let x = Tensor::<2>::random([batch, c * h * w], Distribution::Uniform(-1.0, 1.0), &device);
                let r = Tensor::<2>::random([batch, 6], Distribution::Uniform(-1.0, 1.0), &device);
                let features = cnn.forward_burn(x.clone());
                let grads = (features.clone() * r.clone()).sum().backward();

                let mut engine = CnnEngine::new(cnn.cpu_dims(), &cnn.cpu_params());
                let got = engine.forward(&values(x)).to_vec();
                close("features", &got, &values(features), 1e-5);
                assert!(
                    got.iter().any(|v| *v > 0.0) && got.contains(&0.0),
                    "the ReLU is active somewhere and not everywhere"
                );
                let g = engine.backward(&values(r));
                close("conv_1 weight", &g.conv_1_weight, &grad(&cnn.conv_1.weight, &grads), 1e-4);
                close("conv_1 bias", &g.conv_1_bias, &grad(cnn.conv_1.bias.as_ref().unwrap(), &grads), 1e-4);
                close("conv_2 weight", &g.conv_2_weight, &grad(&cnn.conv_2.weight, &grads), 1e-4);
                close("conv_2 bias", &g.conv_2_bias, &grad(cnn.conv_2.bias.as_ref().unwrap(), &grads), 1e-4);
                close("project weight", &g.project_weight, &grad(&cnn.project.weight, &grads), 1e-4);
                close("project bias", &g.project_bias, &grad(cnn.project.bias.as_ref().unwrap(), &grads), 1e-4);
            }
        });
    }

    /// The features and gradients are the same bits on one thread and on
    /// four, and inference in blocks gives the training forward's features.
    #[test]
    fn results_do_not_depend_on_threads_or_blocks() {
        // burn's random state is shared: draw from it under the lock (see fusion::random).
        crate::fusion::random::exclusive(|| {
            let device = cpu();
            device.seed(3);
            let cnn = SmallCnn::new(ImageShape { channels: 3, height: 8, width: 8 }, 5, &device);
            let batch = INFER_BLOCK + 7;
            let x: Vec<f32> = (0..batch * 192).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.9).collect();
            let dy: Vec<f32> = (0..batch * 5).map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0).collect();
            let run = |threads: usize| {
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                    let mut engine = CnnEngine::new(cnn.cpu_dims(), &cnn.cpu_params());
                    let f = engine.forward(&x).to_vec();
                    (f, engine.backward(&dy), engine.infer(&x))
                })
            };
            let (one, four) = (run(1), run(4));
            assert_eq!(one, four);
            assert_eq!(one.0, one.2, "inference in blocks of {INFER_BLOCK} gives the same features");
            // And SmallCnn::forward on the plain CPU device runs the engine.
            let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [batch, 192]), &device);
            assert_eq!(values(cnn.forward(t)), one.0);
        });
    }
}
