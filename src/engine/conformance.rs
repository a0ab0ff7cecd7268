//! Conformance: every hand-written engine against burn's autodiff on the
//! same module, in one place. For each engine: the loss, every gradient, and a
//! short training trajectory (same initial weights, same batches, same Adam).
//! A new engine adds its three checks here.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dense::{DenseGmu, DenseWorkspace};
use super::native::{LossKind, Network, Workspace};
use crate::data::{MultiviewData, SyntheticConfig, SyntheticData, Targets, View};
use crate::fit::{FitConfig, FitEngine, fit};
use crate::fusion::network::FusionHead;
use crate::fusion::{FusionKind, FusionSpec, HeadKind, Task};
use crate::model::{ModelKind, ModelSpec};
use crate::train::{Engine, Preset, train};

// ---- the native engine (synthetic models) ----

fn specs() -> Vec<ModelSpec> {
    let mut out = vec![];
    for kind in [ModelKind::Gmu, ModelKind::Ff, ModelKind::Logreg] {
        for bias in [true, false] {
            out.push(ModelSpec { kind, d_v: 2, d_t: 3, hidden: 3, bias, n_classes: 2 });
        }
    }
    out
}

fn random_problem(spec: &ModelSpec, rng: &mut StdRng) -> (Network, Vec<f32>, Vec<u8>) {
    let params = (0..spec.n_params()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let x = (0..7 * spec.d_in()).map(|_| rng.random_range(-2.0..2.0)).collect();
    let y = (0..7).map(|_| rng.random_range(0..2)).collect();
    (Network::new(spec.clone(), params), x, y)
}

fn toy(seed: u64) -> SyntheticData {
    SyntheticConfig::default().generate(&mut StdRng::seed_from_u64(seed)).unwrap()
}

// ---- the dense engine (plain GMU classifier) ----

fn spec(task: Task) -> FusionSpec {
    let mut s = FusionSpec::new(FusionKind::Gmu, vec![5, 3], 4, 3, task);
    s.head = HeadKind::Linear;
    s
}

fn batch(rows: usize, task: Task) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let f = |i: usize, k: f32| (i as f32 * 0.37 + k).sin() * 1.5;
    let xv: Vec<f32> = (0..rows * 5).map(|i| f(i, 0.1)).collect();
    let xt: Vec<f32> = (0..rows * 3).map(|i| f(i, 2.0)).collect();
    let y: Vec<f32> = match task {
        Task::Multilabel => (0..rows * 3).map(|i| ((i * 7) % 3 == 0) as u8 as f32).collect(),
        Task::Multiclass => (0..rows).flat_map(|r| (0..3).map(move |c| (c == r % 3) as u8 as f32)).collect(),
    };
    (xv, xt, y)
}

fn dev() -> Device {
    Device::default()
}

/// Two views; the class is readable from view 0 for half the rows and from view 1 for the others.
fn planted(n: usize, multilabel: bool, seed: u64) -> MultiviewData {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let class = i % 3;
        let informative_a = rng.random_bool(0.5);
        for v in [&mut a, &mut b] {
            for _ in 0..4 {
                v.push(rng.random_range(-1.0..1.0f32));
            }
        }
        let target = if informative_a { &mut a } else { &mut b };
        let at = target.len() - 4 + class;
        target[at] += 3.0;
        y.push(class);
    }
    let views = vec![
        View { name: "a".into(), dim: 4, values: a, image: None, prescaled: false },
        View { name: "b".into(), dim: 4, values: b, image: None, prescaled: false },
    ];
    let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
    let targets = if multilabel {
        let ind: Vec<u8> = y.iter().flat_map(|&c| (0..3).map(move |j| u8::from(j == c || (c == 2 && j == 0)))).collect();
        Targets::Labels { y: ind, names }
    } else {
        Targets::Classes { y, names }
    };
    MultiviewData { views, targets }
}

fn quick(kind: FusionKind) -> FitConfig {
    FitConfig { fusion: kind, hidden: 16, dropout: 0.1, lr: 0.01, max_epochs: 15, patience: 15, batch_size: 32, ..FitConfig::default() }
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
            let (xv, xt) = crate::train::split_inputs(&x, spec.d_v, spec.d_t, &device);
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
                let (burn_loss, burn_grad) = crate::train::burn_loss_and_grad(&model, &x, &y, &spec, loss, &device);
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
            let mut config = Preset::Seed.config(kind, 1, 4);
            config.steps = 25;
            let native = train(&config, &data, &Device::default()).unwrap();
            config.engine = Engine::Burn;
            let burn = train(&config, &data, &Device::default()).unwrap();
            for (a, b) in native.history.iter().zip(&burn.history) {
                assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{kind}: {:?} vs {:?}", native.history, burn.history);
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
            let config = FitConfig { head: HeadKind::Linear, max_epochs: 4, patience: 4, ..quick(FusionKind::Gmu) };
            let dense = fit(&data, &[0, 1], &split, &config, &dev()).unwrap();
            let burn = fit(&data, &[0, 1], &split, &FitConfig { engine: FitEngine::Burn, ..config }, &dev()).unwrap();
            for (a, b) in dense.members[0].history.iter().zip(&burn.members[0].history) {
                assert!((a.train_loss - b.train_loss).abs() < 1e-4, "multilabel={multilabel}: {a:?} vs {b:?}");
            }
            let (pa, pb) = (dense.predict(&data, &split.test, &dev()), burn.predict(&data, &split.test, &dev()));
            let worst = pa.probs.iter().zip(&pb.probs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-3, "multilabel={multilabel}: probabilities differ by {worst}");
        }
    }
