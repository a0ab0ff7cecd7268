//! Conformance: every hand-written engine against burn's autodiff on the
//! same module, in one place. For each engine: the loss, every gradient, and a
//! short training trajectory (same initial weights, same batches, same Adam).
//! A new engine adds its three checks here.

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::dense::{DenseGmu, DenseWorkspace};
use super::native::Workspace;
use super::{Engine, LossKind};
use crate::config::{Preset, TrainingConfig};
use crate::fit::{fit, logits_loss};
use crate::fusion::network::FusionHead;
use crate::fusion::{FusionKind, FusionNet, HeadKind, Scores, Task};
use crate::model::{ModelKind, ModelSpec, linears};
use crate::train::train;

// The helpers are the engines' and fit's own test fixtures.
use super::dense::tests::{batch, spec};
use super::native::tests::{random_problem, specs};
use crate::fit::tests::{dev, planted, quick};
use crate::train::tests::{steps, toy};

/// Splits row-major `[n, d_v + d_t]` inputs into the two modality tensors.
fn split_inputs(x: &[f32], d_v: usize, d_t: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let d = d_v + d_t;
    let n = x.len() / d;
    let (mut xv, mut xt) = (Vec::with_capacity(n * d_v), Vec::with_capacity(n * d_t));
    for row in x.chunks_exact(d) {
        xv.extend_from_slice(&row[..d_v]);
        xt.extend_from_slice(&row[d_v..]);
    }
    (Tensor::from_data(TensorData::new(xv, [n, d_v]), device), Tensor::from_data(TensorData::new(xt, [n, d_t]), device))
}

/// The loss and its gradient by burn's autodiff (the loss in burn ops,
/// [`logits_loss`]), flattened in the order of [`ModelSpec::params`].
fn burn_loss_and_grad(model: &FusionNet, x: &[f32], y: &[u8], spec: &ModelSpec, kind: LossKind, device: &Device) -> (f32, Vec<f32>) {
    let (xv, xt) = split_inputs(x, spec.d_v, spec.d_t, device);
    let Scores::Logits(logits) = model.forward(&[xv, xt]).scores else { panic!("a linear or tanh head gives logits") };
    let onehot: Vec<f32> = y.iter().flat_map(|&c| (0..spec.n_classes).map(move |j| f32::from(j == c as usize))).collect();
    let loss = logits_loss(logits, Tensor::from_data(TensorData::new(onehot, [y.len(), spec.n_classes]), device), kind);
    let value = loss.clone().into_scalar::<f32>();
    let grads = loss.backward();
    let mut out = vec![];
    for layer in linears(model) {
        out.extend(layer.weight.val().grad(&grads).expect("weight grad").into_data().try_to_vec::<f32>().unwrap());
        if let Some(b) = &layer.bias {
            out.extend(b.val().grad(&grads).expect("bias grad").into_data().try_to_vec::<f32>().unwrap());
        }
    }
    (value, out)
}

    /// The native forward equals the burn module's forward for the same weights.
    #[test]
    fn forward_matches_the_burn_module() {
        let device = burn::tensor::Device::default();
        let mut rng = StdRng::seed_from_u64(5);
        for spec in specs() {
            let (net, x, _) = random_problem(&spec, &mut rng);
            let model = spec.to_net(&net.params, &device).unwrap();
            assert_eq!(crate::model::flat_params(&model), net.params);
            let n = x.len() / spec.d_in();
            let (xv, xt) = split_inputs(&x, spec.d_v, spec.d_t, &device);
            let out = model.forward(&[xv, xt]);
            let crate::fusion::Scores::Logits(logits) = out.scores else { panic!("logits") };
            let logits = logits.into_data().try_to_vec::<f32>().unwrap();
            let mut ws = Workspace::default();
            net.forward(&x, &mut ws);
            for (mine, theirs) in ws.logits().iter().zip(&logits) {
                assert!((mine - theirs).abs() < 1e-5, "{:?}", spec.kind);
            }
            if let Some(gates) = &out.gates {
                let z = gates.clone().into_data().try_to_vec::<f32>().unwrap();
                let h = spec.hidden;
                for r in 0..n {
                    for k in 0..h {
                        // burn's gates are [n, 2, H]: row 0 is z.
                        assert!((ws.gates()[r * h + k] - z[r * 2 * h + k]).abs() < 1e-6);
                    }
                }
            }
        }
    }

    /// The native gradient equals burn's autodiff gradient.
    #[test]
    fn gradients_match_burn_autodiff() {
        let device = burn::tensor::Device::default().autodiff();
        let mut rng = StdRng::seed_from_u64(9);
        for spec in specs() {
            for loss in [LossKind::SoftmaxCe, LossKind::SigmoidBce] {
                let (net, x, y) = random_problem(&spec, &mut rng);
                let rows: Vec<usize> = (0..y.len()).collect();
                let mut grad = vec![0.0; net.params.len()];
                let native_loss = net.loss_and_grad(&x, &y, &rows, loss, &mut grad, &mut Workspace::default());
                let model = spec.to_net(&net.params, &device).unwrap();
                let (burn_loss, burn_grad) = burn_loss_and_grad(&model, &x, &y, &spec, loss, &device);
                assert!((native_loss - burn_loss).abs() < 1e-5, "{native_loss} vs {burn_loss}");
                for (a, b) in grad.iter().zip(&burn_grad) {
                    assert!((a - b).abs() < 1e-5, "{:?} {loss:?}: {grad:?} vs {burn_grad:?}", spec.kind);
                }
            }
        }
    }

    /// The two engines follow the same trajectory from the same initialisation.
    #[test]
    fn native_and_burn_engines_agree_step_by_step() {
        let data = toy(3);
        for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
            let mut config = steps(Preset::Seed.config(kind, 4), 25, 1);
            config.engine = Engine::Native;
            let native = train(&config, &data, &Device::default()).unwrap();
            config.engine = Engine::Burn;
            let burn = train(&config, &data, &Device::default()).unwrap();
            assert_eq!((native.trained.members[0].engine, burn.trained.members[0].engine), (Engine::Native, Engine::Burn));
            for (a, b) in native.history().iter().zip(burn.history()) {
                assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{kind}: {:?} vs {:?}", native.history(), burn.history());
            }
            for (a, b) in native.net.params.iter().zip(&burn.net.params) {
                assert!((a - b).abs() < 1e-3, "{kind}");
            }
        }
    }

    /// The loss and every gradient equal burn's autodiff on the same module.
    #[test]
    fn loss_and_gradients_match_burn_autodiff() {
        for task in [Task::Multilabel, Task::Multiclass] {
            let device = Device::default().autodiff();
            let net = crate::fusion::random::exclusive(|| {
                device.seed(3);
                spec(task).init(&device).unwrap()
            });
            let dense = DenseGmu::from_net(&net).unwrap();
            let rows = 6;
            let (xv, xt, y) = batch(rows, task);
            let mut grad = vec![0.0; dense.len()];
            let loss = dense.loss_and_grad(&xv, &xt, &y, &mut grad, &mut DenseWorkspace::default());

            let t = |v: &[f32], cols: usize| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [v.len() / cols, cols]), &device);
            let out = net.forward(&[t(&xv, 5), t(&xt, 3)]);
            let burn_loss = net.loss(out.scores, t(&y, 3));
            let burn_value: f32 = burn_loss.clone().into_scalar();
            assert!((loss - burn_value).abs() < 1e-5, "{task:?}: {loss} vs {burn_value}");
            let grads = burn_loss.backward();
            // Write burn's gradients into a copy of the module and read them back in the dense layout.
            let FusionHead::GmuLinear(head) = &net.head else { panic!() };
            let g = |p: &burn::module::Param<Tensor<2>>| p.val().grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            let gb = |p: &Option<burn::module::Param<Tensor<1>>>| p.as_ref().unwrap().val().grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            let mut as_net = spec(task).init(&Device::default()).unwrap();
            {
                use burn::module::Param;
                let FusionHead::GmuLinear(h2) = &mut as_net.head else { panic!() };
                let d = Device::default();
                let w = |v: Vec<f32>, s: [usize; 2]| Param::from_tensor(Tensor::from_data(TensorData::new(v, s), &d));
                let b = |v: Vec<f32>| Some(Param::from_tensor(Tensor::from_data(TensorData::new(v.clone(), [v.len()]), &d)));
                h2.gmu.transforms[0].weight = w(g(&head.gmu.transforms[0].weight), [5, 4]);
                h2.gmu.transforms[1].weight = w(g(&head.gmu.transforms[1].weight), [3, 4]);
                h2.gmu.gate.weight = w(g(&head.gmu.gate.weight), [8, 4]);
                h2.output.weight = w(g(&head.output.weight), [4, 3]);
                h2.gmu.transforms[0].bias = b(gb(&head.gmu.transforms[0].bias));
                h2.gmu.transforms[1].bias = b(gb(&head.gmu.transforms[1].bias));
                h2.gmu.gate.bias = b(gb(&head.gmu.gate.bias));
                h2.output.bias = b(gb(&head.output.bias));
            }
            let expected = DenseGmu::from_net(&as_net).unwrap().params;
            for (i, (a, b)) in grad.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() < 1e-5, "{task:?}: gradient {i}: dense {a}, burn {b}");
            }
        }
    }

    /// The dense engine and burn train the linear-head GMU along the same
    /// trajectory: same initial weights, same batches, same Adam.
    #[test]
    fn dense_and_burn_engines_train_the_same_model() {
        for multilabel in [false, true] {
            let data = planted(200, multilabel, 4);
            let split = data.split(0.2, 0.2, 0).unwrap();
            let mut config = crate::fit::tests::epochs(quick(FusionKind::Gmu), 4);
            (config.model.head, config.engine) = (HeadKind::Linear, Engine::Dense);
            let dense = fit(&data, &[0, 1], &split, &config, &dev()).unwrap();
            let burn = fit(&data, &[0, 1], &split, &TrainingConfig { engine: Engine::Burn, ..config }, &dev()).unwrap();
            assert_eq!((dense.members[0].engine, burn.members[0].engine), (Engine::Dense, Engine::Burn));
            for (a, b) in dense.members[0].history.iter().zip(&burn.members[0].history) {
                assert!((a.train_loss - b.train_loss).abs() < 1e-4, "multilabel={multilabel}: {a:?} vs {b:?}");
            }
            let (pa, pb) = (dense.predict(&data, &split.test, &dev()), burn.predict(&data, &split.test, &dev()));
            let worst = pa.probs.iter().zip(&pb.probs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-3, "multilabel={multilabel}: probabilities differ by {worst}");
        }
    }

    /// The native engine trains the paper's schedule too (epochs, early
    /// stopping on dev macro-F1) along burn's trajectory.
    #[test]
    fn native_and_burn_engines_train_the_same_epochs() {
        let data = planted(200, false, 6);
        let split = data.split(0.2, 0.2, 0).unwrap();
        let mut config = crate::fit::tests::epochs(quick(FusionKind::Gmu), 4);
        (config.model.head, config.model.max_norm, config.engine) = (HeadKind::Linear, None, Engine::Native);
        let native = fit(&data, &[0, 1], &split, &config, &dev()).unwrap();
        let burn = fit(&data, &[0, 1], &split, &TrainingConfig { engine: Engine::Burn, ..config }, &dev()).unwrap();
        assert_eq!(native.members[0].engine, Engine::Native);
        for (a, b) in native.members[0].history.iter().zip(&burn.members[0].history) {
            assert!((a.train_loss - b.train_loss).abs() < 1e-4, "{a:?} vs {b:?}");
        }
        let (pa, pb) = (native.predict(&data, &split.test, &dev()), burn.predict(&data, &split.test, &dev()));
        let worst = pa.probs.iter().zip(&pb.probs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "probabilities differ by {worst}");
    }
