//! The Gated Multimodal Unit (Arevalo et al., 2017, §3.1) as a burn module.
//!
//! For K modalities with inputs `x_i`:
//!
//! ```text
//! h_i = tanh(W_i x_i + b_i)                     one transform per modality
//! K = 2:  z = σ(W_z [x_1, x_2] + b_z),   h = z ⊙ h_1 + (1 − z) ⊙ h_2
//! K > 2:  z_i = σ(W_zi [x_1 … x_K] + b_zi), h = Σ_i z_i ⊙ h_i
//! ```
//!
//! The gates are returned with the fused vector, so the readout "which modality
//! did the model trust, per sample and per unit" comes out of the forward pass.
//!
//! **Bias.** The paper's equations have no bias terms; the seed post's
//! `tf.layers.dense` has them. `bias` defaults to `true` (the seed); set it to
//! `false` for the paper's exact form.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor};

use crate::error::GmuError;

/// Configuration of a [`Gmu`], built with [`GmuConfig::init`].
#[derive(Config, Debug)]
pub struct GmuConfig {
    /// Input width of each modality; its length is K (at least 2).
    pub d_inputs: Vec<usize>,
    /// Width H of every modality's hidden representation and of the fused output.
    pub d_hidden: usize,
    /// Bias terms in the transforms and the gate (the seed's `tf.layers.dense`);
    /// `false` gives the paper's bias-free equations.
    #[config(default = true)]
    pub bias: bool,
    /// For K > 2: normalise the K gates of each unit with a softmax so they sum
    /// to one, instead of K independent sigmoids (the paper). Ignored for K = 2,
    /// whose tied gates `z, 1 − z` always sum to one.
    #[config(default = false)]
    pub normalize_gates: bool,
    /// Units of a hidden `tanh` layer in the gate network (0: none, the paper's
    /// linear gate): `z = σ(W_z tanh(W_g [x_1..x_K] + b_g) + b_z)`. A linear gate
    /// cannot tell a view at its mean or full of noise from a clean one; this can.
    #[config(default = 0)]
    pub gate_hidden: usize,
    /// The hidden gate layer's units each read one view (unit `j` of G reads
    /// view `⌊j·K/G⌋`; the other weights are zero and stay zero), so the gate
    /// can tell *which* view is noisy or blank: units that read every view
    /// learn "something is wrong" but not where. Needs `gate_hidden ≥ K`.
    #[config(default = false)]
    pub gate_per_view: bool,
    /// Initializer of the weights (biases start at zero, as in TensorFlow).
    /// Glorot/Xavier uniform, TensorFlow's default for dense layers.
    #[config(default = "Initializer::XavierUniform { gain: 1.0 }")]
    pub initializer: Initializer,
}

/// The Gated Multimodal Unit. See the [module docs](self) for the equations.
#[derive(Module, Debug)]
pub struct Gmu {
    /// `h_i = tanh(W_i x_i + b_i)`: one `[d_i, H]` transform per modality.
    pub transforms: Vec<Linear>,
    /// The gate: `[Σ d_i, H]` for K = 2, `[Σ d_i, K·H]` for K > 2 (from the
    /// hidden layer's `G` units instead of `Σ d_i` where there is one).
    pub gate: Linear,
    /// Whether K > 2 gates are normalised with a softmax over modalities.
    pub normalize_gates: bool,
    /// The gate network's hidden `tanh` layer, `[Σ d_i, G]`, if it has one.
    pub gate_hidden: Option<Linear>,
    /// Whether each hidden gate unit reads one view only ([`GmuConfig::gate_per_view`]).
    pub gate_per_view: bool,
}

/// What [`Gmu::forward`] returns.
#[derive(Debug, Clone)]
pub struct GmuOutput {
    /// The fused representation `h`, `[batch, H]`.
    pub fused: Tensor<2>,
    /// The gate of every modality, `[batch, K, H]`. For K = 2 the second row is
    /// `1 − z`, so `gates[:, 0, :]` is the paper's `z`.
    pub gates: Tensor<3>,
    /// Each modality's representation `h_i = tanh(W_i x_i)`, `[batch, K, H]`:
    /// with the gates, `|z_i ⊙ h_i|` is what each modality put into `h`.
    pub hidden: Tensor<3>,
}

impl GmuConfig {
    /// Checks the configuration: K ≥ 2, every width ≥ 1.
    pub fn validate(&self) -> crate::Result<()> {
        if self.d_inputs.len() < 2 {
            return Err(GmuError::invalid(
                "modalities",
                format!("a GMU fuses at least 2 modalities, got K = {}", self.d_inputs.len()),
            ));
        }
        if let Some(i) = self.d_inputs.iter().position(|&d| d == 0) {
            return Err(GmuError::invalid("d_inputs", format!("modality {i} has input width 0")));
        }
        if self.d_hidden == 0 {
            return Err(GmuError::invalid("hidden", "the hidden width must be at least 1, got 0"));
        }
        if self.gate_per_view && self.gate_hidden < self.d_inputs.len() {
            return Err(GmuError::invalid(
                "gate_per_view",
                format!(
                    "per-view gate units need a hidden gate layer of at least one unit per view (--gate-hidden >= {}), got {}",
                    self.d_inputs.len(),
                    self.gate_hidden
                ),
            ));
        }
        Ok(())
    }

    /// Builds the layer on `device`, after [`validate`](Self::validate).
    pub fn try_init(&self, device: &Device) -> crate::Result<Gmu> {
        self.validate()?;
        let k = self.d_inputs.len();
        let linear = |d_in: usize, d_out: usize| {
            let mut layer = LinearConfig::new(d_in, d_out)
                .with_bias(self.bias)
                .with_initializer(self.initializer.clone())
                .init(device);
            if let Some(bias) = layer.bias.as_mut() {
                *bias = Param::from_tensor(Tensor::zeros([d_out], device));
            }
            layer
        };
        let transforms = self.d_inputs.iter().map(|&d| linear(d, self.d_hidden)).collect();
        let gate_width = if k == 2 { self.d_hidden } else { k * self.d_hidden };
        let d_all = self.d_inputs.iter().sum();
        let (gate_hidden, gate) = match self.gate_hidden {
            0 => (None, linear(d_all, gate_width)),
            g => (Some(linear(d_all, g)), linear(g, gate_width)),
        };
        let mut gate_hidden = gate_hidden;
        if self.gate_per_view
            && let Some(layer) = gate_hidden.as_mut()
        {
            let mask = view_blocks(&self.d_inputs, self.gate_hidden, device);
            // A fresh leaf from the values, as the autodiff device tracks parameters, not products.
            let blocked = (layer.weight.val() * mask).into_data();
            layer.weight = Param::from_tensor(Tensor::from_data(blocked, device));
        }
        Ok(Gmu {
            transforms,
            gate,
            normalize_gates: self.normalize_gates,
            gate_hidden,
            gate_per_view: self.gate_per_view,
        })
    }

    /// Builds the layer on `device`.
    ///
    /// # Panics
    /// On an invalid configuration; use [`try_init`](Self::try_init) to get an error instead.
    pub fn init(&self, device: &Device) -> Gmu {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Gmu {
    /// Number of modalities K.
    pub fn modalities(&self) -> usize {
        self.transforms.len()
    }

    /// Fuses one input per modality.
    ///
    /// # Shapes
    /// - `inputs[i]`: `[batch, d_i]`, K of them
    /// - output `fused`: `[batch, H]`
    /// - output `gates`: `[batch, K, H]`
    ///
    /// # Panics
    /// If the number of inputs is not K or a width does not match the config.
    pub fn forward(&self, inputs: &[Tensor<2>]) -> GmuOutput {
        let k = self.modalities();
        assert_eq!(inputs.len(), k, "the GMU was built for {k} modalities, got {} inputs", inputs.len());
        let [batch, _] = inputs[0].dims();
        let hidden: Vec<Tensor<2>> =
            self.transforms.iter().zip(inputs).map(|(layer, x)| layer.forward(x.clone()).tanh()).collect();
        let d_hidden = hidden[0].dims()[1];
        let all = Tensor::cat(inputs.to_vec(), 1);
        let gate_in = match &self.gate_hidden {
            Some(layer) if self.gate_per_view => {
                // The off-block weights are zero; the mask keeps their gradient zero too.
                let widths: Vec<usize> = self.transforms.iter().map(|t| t.weight.dims()[0]).collect();
                let weight = layer.weight.val();
                let mask = view_blocks(&widths, weight.dims()[1], &weight.device());
                let pre = all.matmul(weight * mask);
                match &layer.bias {
                    Some(b) => (pre + b.val().unsqueeze()).tanh(),
                    None => pre.tanh(),
                }
            }
            Some(layer) => layer.forward(all).tanh(),
            None => all,
        };
        let gate_logits = self.gate.forward(gate_in);
        if k == 2 {
            let z = sigmoid(gate_logits);
            let [h_1, h_2] = [hidden[0].clone(), hidden[1].clone()];
            // h = z⊙h_1 + (1−z)⊙h_2 = h_2 + z⊙(h_1 − h_2)
            let fused = h_2.clone() + z.clone() * (h_1 - h_2);
            let gates = Tensor::stack(vec![z.clone(), z.neg().add_scalar(1.0)], 1);
            return GmuOutput { fused, gates, hidden: Tensor::stack(hidden, 1) };
        }
        let gate_logits = gate_logits.reshape([batch, k, d_hidden]);
        let gates = if self.normalize_gates { softmax(gate_logits, 1) } else { sigmoid(gate_logits) };
        let stacked: Tensor<3> = Tensor::stack(hidden, 1);
        let fused = (gates.clone() * stacked.clone()).sum_dim(1).reshape([batch, d_hidden]);
        GmuOutput { fused, gates, hidden: stacked }
    }
}

/// The `[Σ d_i, units]` 0/1 mask of per-view gate units: unit `j` reads the
/// rows of view `⌊j·K/units⌋` only.
fn view_blocks(widths: &[usize], units: usize, device: &Device) -> Tensor<2> {
    let (k, rows) = (widths.len(), widths.iter().sum::<usize>());
    let mut mask = vec![0f32; rows * units];
    let mut row = 0;
    for (view, &width) in widths.iter().enumerate() {
        for r in row..row + width {
            for j in (0..units).filter(|j| j * k / units == view) {
                mask[r * units + j] = 1.0;
            }
        }
        row += width;
    }
    Tensor::from_data(burn::tensor::TensorData::new(mask, [rows, units]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_gate_layer_computes_z_from_tanh_of_the_joined_inputs() {
        let device = Device::default();
        let mut gmu = GmuConfig::new(vec![1, 1], 1).with_gate_hidden(2).init(&device);
        let set = |layer: &mut Linear, w: Vec<f32>, shape: [usize; 2], b: Vec<f32>| {
            layer.weight = Param::from_tensor(Tensor::from_data(burn::tensor::TensorData::new(w, shape), &device));
            let n = b.len();
            layer.bias = Some(Param::from_tensor(Tensor::from_data(burn::tensor::TensorData::new(b, [n]), &device)));
        };
        set(&mut gmu.transforms[0], vec![1.0], [1, 1], vec![0.0]);
        set(&mut gmu.transforms[1], vec![-1.0], [1, 1], vec![0.0]);
        // G = 2 hidden units: g = tanh([x_1, x_2] W_g + b_g), W_g = [[1, 0], [0, 2]], b_g = [0.5, 0].
        set(gmu.gate_hidden.as_mut().unwrap(), vec![1.0, 0.0, 0.0, 2.0], [2, 2], vec![0.5, 0.0]);
        // z = σ(g W_z + b_z), W_z = [[3], [-1]], b_z = [0.1].
        set(&mut gmu.gate, vec![3.0, -1.0], [2, 1], vec![0.1]);
        let (x1, x2) = (0.4f32, -0.3f32);
        let out = gmu.forward(&[
            Tensor::from_data(burn::tensor::TensorData::new(vec![x1], [1, 1]), &device),
            Tensor::from_data(burn::tensor::TensorData::new(vec![x2], [1, 1]), &device),
        ]);
        let (g1, g2) = ((x1 + 0.5).tanh(), (2.0 * x2).tanh());
        let z = 1.0 / (1.0 + (-(3.0 * g1 - g2 + 0.1)).exp());
        let h = z * x1.tanh() + (1.0 - z) * (-x2).tanh();
        let fused = out.fused.into_data().try_to_vec::<f32>().unwrap()[0];
        let gate = out.gates.into_data().try_to_vec::<f32>().unwrap()[0];
        assert!((gate - z).abs() < 1e-6 && (fused - h).abs() < 1e-6, "z {gate} vs {z}, h {fused} vs {h}");
    }
    use burn::tensor::TensorData;

    fn device() -> Device {
        Device::default()
    }

    fn set(layer: &mut Linear, weight: Vec<f32>, bias: Option<Vec<f32>>, device: &Device) {
        let [d_in, d_out] = layer.weight.dims();
        layer.weight = Param::from_data(TensorData::new(weight, [d_in, d_out]), device);
        if let Some(b) = bias {
            layer.bias = Some(Param::from_data(TensorData::new(b, [d_out]), device));
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// K = 2, d = (1, 1), H = 1, hand-set weights, with and without bias.
    #[test]
    fn two_modalities_match_hand_computation() {
        let device = device();
        for bias in [false, true] {
            let mut gmu = GmuConfig::new(vec![1, 1], 1).with_bias(bias).init(&device);
            let b = |v: f32| bias.then(|| vec![v]);
            set(&mut gmu.transforms[0], vec![0.5], b(0.1), &device);
            set(&mut gmu.transforms[1], vec![-1.0], b(-0.2), &device);
            set(&mut gmu.gate, vec![2.0, -1.0], b(0.3), &device);
            let x_v = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0], [2, 1]), &device);
            let x_t = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, 3.0], [2, 1]), &device);
            let out = gmu.forward(&[x_v, x_t]);
            let (bv, bt, bz) = if bias { (0.1, -0.2, 0.3) } else { (0.0, 0.0, 0.0) };
            let mut fused = vec![];
            let mut gates = vec![];
            for (xv, xt) in [(1.0f64, 0.5f64), (-2.0, 3.0)] {
                let hv = (0.5 * xv + bv).tanh();
                let ht = (bt - xt).tanh();
                let z = sig(2.0 * xv - xt + bz);
                fused.push(z * hv + (1.0 - z) * ht);
                gates.extend([z, 1.0 - z]);
            }
            assert_eq!(out.gates.dims(), [2, 2, 1]);
            close(&values(out.fused), &fused);
            close(&values(out.gates), &gates);
        }
    }

    /// The same case worked to numbers by hand, no formula shared with the code:
    /// x_v = 1, x_t = 0.5, no bias: h_v = tanh(0.5) = 0.462117, h_t = tanh(−0.5) = −0.462117,
    /// z = σ(1.5) = 0.817574, h = 0.817574·0.462117 + 0.182426·(−0.462117) = 0.293513.
    #[test]
    fn two_modalities_match_numbers_worked_by_hand() {
        let device = device();
        let mut gmu = GmuConfig::new(vec![1, 1], 1).with_bias(false).init(&device);
        set(&mut gmu.transforms[0], vec![0.5], None, &device);
        set(&mut gmu.transforms[1], vec![-1.0], None, &device);
        set(&mut gmu.gate, vec![2.0, -1.0], None, &device);
        let x_v = Tensor::<2>::from_data(TensorData::new(vec![1.0f32], [1, 1]), &device);
        let x_t = Tensor::<2>::from_data(TensorData::new(vec![0.5f32], [1, 1]), &device);
        let out = gmu.forward(&[x_v, x_t]);
        close(&values(out.fused), &[0.293513]);
        close(&values(out.gates), &[0.817574, 0.182426]);
    }

    /// K = 3 with widths (2, 1, 1), H = 2: independent sigmoid gates, and the softmax option.
    #[test]
    #[allow(clippy::needless_range_loop)] // indices mirror the maths
    fn three_modalities_match_hand_computation() {
        let device = device();
        for (bias, normalize) in [(false, false), (true, false), (true, true)] {
            let mut gmu =
                GmuConfig::new(vec![2, 1, 1], 2).with_bias(bias).with_normalize_gates(normalize).init(&device);
            let b = |v: Vec<f32>| bias.then_some(v);
            // W_1: [2, 2], W_2: [1, 2], W_3: [1, 2], W_z: [4, 6]
            set(&mut gmu.transforms[0], vec![0.1, 0.2, 0.3, 0.4], b(vec![0.0, 0.1]), &device);
            set(&mut gmu.transforms[1], vec![0.5, -0.5], b(vec![0.2, 0.0]), &device);
            set(&mut gmu.transforms[2], vec![-0.3, 0.7], b(vec![0.0, -0.1]), &device);
            let wz: Vec<f32> = (0..24).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
            let bz: Vec<f32> = (0..6).map(|i| i as f32 * 0.05).collect();
            set(&mut gmu.gate, wz.clone(), b(bz.clone()), &device);
            let x = [1.0f64, -1.0, 2.0, 0.5];
            let inputs = [
                Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -1.0], [1, 2]), &device),
                Tensor::<2>::from_data(TensorData::new(vec![2.0f32], [1, 1]), &device),
                Tensor::<2>::from_data(TensorData::new(vec![0.5f32], [1, 1]), &device),
            ];
            let out = gmu.forward(&inputs);
            assert_eq!(out.gates.dims(), [1, 3, 2]);
            let on = if bias { 1.0 } else { 0.0 };
            let h = [
                [(0.1 * x[0] + 0.3 * x[1] + 0.0 * on).tanh(), (0.2 * x[0] + 0.4 * x[1] + 0.1 * on).tanh()],
                [(0.5 * x[2] + 0.2 * on).tanh(), (-0.5 * x[2]).tanh()],
                [(-0.3 * x[3]).tanh(), (0.7 * x[3] - 0.1 * on).tanh()],
            ];
            let logit = |col: usize| (0..4).map(|r| wz[r * 6 + col] as f64 * x[r]).sum::<f64>() + bz[col] as f64 * on;
            let mut gates = [[0.0f64; 2]; 3];
            for unit in 0..2 {
                let l: Vec<f64> = (0..3).map(|m| logit(m * 2 + unit)).collect();
                for m in 0..3 {
                    gates[m][unit] =
                        if normalize { l[m].exp() / l.iter().map(|v| v.exp()).sum::<f64>() } else { sig(l[m]) };
                }
            }
            let fused: Vec<f64> = (0..2).map(|u| (0..3).map(|m| gates[m][u] * h[m][u]).sum()).collect();
            close(&values(out.fused), &fused);
            close(&values(out.gates), &gates.concat());
        }
    }

    /// burn's autodiff gradient through the K = 3 layer (sigmoid and softmax
    /// gates) against central finite differences, for every weight of every part.
    #[test]
    fn gradients_match_finite_differences_for_three_modalities() {
        use burn::tensor::Distribution;
        let device = Device::default().autodiff();
        for normalize in [false, true] {
            let (gmu, inputs) = crate::fusion::random::exclusive(|| {
                device.seed(3);
                let gmu = GmuConfig::new(vec![2, 3, 1], 2).with_normalize_gates(normalize).init(&device);
                // Read every weight now, under the lock (burn draws them on first read).
                let _ = gmu.gate.weight.val();
                gmu.transforms.iter().for_each(|t| drop(t.weight.val()));
                let inputs: Vec<Tensor<2>> = [2, 3, 1]
                    .iter()
                    .map(|&d| Tensor::random([4, d], Distribution::Uniform(-1.0, 1.0), &device))
                    .collect();
                (gmu, inputs)
            });
            // A loss that weighs every fused unit differently, so no gradient cancels by symmetry.
            let mix = Tensor::<2>::from_data(
                TensorData::new(vec![0.3f32, -0.7, 1.1, 0.5, -0.2, 0.9, 0.4, -1.3], [4, 2]),
                &device,
            );
            let loss_of = |g: &Gmu| (g.forward(&inputs).fused * mix.clone()).sum();
            let grads = loss_of(&gmu).backward();
            let layers = |g: &Gmu| -> Vec<Linear> { g.transforms.iter().cloned().chain([g.gate.clone()]).collect() };
            for (index, layer) in layers(&gmu).iter().enumerate() {
                let analytic = values(layer.weight.val().grad(&grads).unwrap());
                let weights = values(layer.weight.val());
                let [d_in, d_out] = layer.weight.dims();
                for i in 0..weights.len() {
                    let eps = 1e-2f32;
                    let shifted = |delta: f32| {
                        let mut w = weights.clone();
                        w[i] += delta;
                        let mut g = gmu.clone();
                        let target = if index < 3 { &mut g.transforms[index] } else { &mut g.gate };
                        target.weight = Param::from_data(TensorData::new(w, [d_in, d_out]), &device);
                        loss_of(&g).into_scalar::<f32>() as f64
                    };
                    let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
                    assert!(
                        (numeric - analytic[i] as f64).abs() < 2e-3 + 1e-2 * numeric.abs(),
                        "layer {index} weight {i} (softmax {normalize}): autodiff {} numeric {numeric}",
                        analytic[i]
                    );
                }
            }
        }
    }

    #[test]
    fn shapes_for_a_batch() {
        let device = device();
        let gmu = GmuConfig::new(vec![3, 5], 4).init(&device);
        let out = gmu.forward(&[Tensor::zeros([6, 3], &device), Tensor::ones([6, 5], &device)]);
        assert_eq!(out.fused.dims(), [6, 4]);
        assert_eq!(out.gates.dims(), [6, 2, 4]);
        // The visual gate is σ(W_z [x_v, x_t] + b) with the layer's own weights ([8, 4]):
        // here x_v = 0 and x_t = 1, so z_u = σ(Σ_{j ≥ 3} W[j][u] + b[u]); the text gate is 1 − z.
        let w = values(gmu.gate.weight.val());
        let b = gmu.gate.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; 4]);
        let g = values(out.gates);
        for u in 0..4 {
            let z = 1.0 / (1.0 + (-((3..8).map(|j| w[j * 4 + u]).sum::<f32>() + b[u])).exp());
            assert!((g[u] - z).abs() < 1e-6 && (g[4 + u] - (1.0 - z)).abs() < 1e-6, "unit {u}: {g:?} vs {z}");
        }
    }

    #[test]
    fn bad_configs_are_refused_with_the_field_named() {
        let err = GmuConfig::new(vec![3], 4).validate().unwrap_err().to_string();
        assert!(err.contains("K = 1"), "{err}");
        let err = GmuConfig::new(vec![3, 2], 0).validate().unwrap_err().to_string();
        assert!(err.contains("hidden"), "{err}");
    }
}
