//! The seed's toy, timed: 100 full-batch Adam steps of the GMU classifier
//! (hidden 1, n = 400, lr 0.1) on each engine, and the 1000×1000 mesh.
//!
//! `cargo bench --bench toy` (add `-- --reps N`); `bench/run.sh` runs it beside
//! the Python references. Prints one JSON line per measurement: median and
//! quartiles of `reps` runs, in milliseconds.

use std::time::Instant;

use gmu::config::{Preset, TrainingConfig};
use gmu::cpu::Adam;
use gmu::data::Scaler;
use gmu::data::SyntheticConfig;
use gmu::engine::Engine;
use gmu::engine::native::{Network, Workspace};
use gmu::experiments::synthetic::{NativeScorer, mesh};
use gmu::fusion::synthetic::ModelKind;
use gmu::fusion::synthetic::ModelSpec;
use gmu::train::glorot;
use gmu::train::synthetic;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn quartiles(mut t: Vec<f64>) -> (f64, f64, f64) {
    t.sort_by(f64::total_cmp);
    let q = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    (q(0.25), q(0.5), q(0.75))
}

fn report(name: &str, times: Vec<f64>) {
    let reps = times.len();
    let (q1, median, q3) = quartiles(times);
    println!(
        "{{\"impl\": \"{name}\", \"median_ms\": {median:.3}, \"q1_ms\": {q1:.3}, \"q3_ms\": {q3:.3}, \"reps\": {reps}}}"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let data = SyntheticConfig::default().generate(&mut StdRng::seed_from_u64(41)).unwrap();
    let config = Preset::Seed.config(ModelKind::Gmu, 41);
    let spec = ModelSpec { kind: ModelKind::Gmu, d_v: 1, d_t: 1, hidden: 1, bias: true, n_classes: 2 };
    let mut x = data.joined();
    let scaler = Scaler::fit(&x, 2, config.scaling);
    scaler.apply(&mut x);
    let init = glorot(&spec, &mut StdRng::seed_from_u64(0));
    let steps = 100;

    // The engine's loop alone (what the JAX and TensorFlow scripts time: the jitted loop).
    let mut native_last = f32::NAN;
    if only.as_deref().is_none_or(|o| "gmu-native".starts_with(o)) {
        let mut times = vec![];
        for rep in 0..reps + 2 {
            let start = Instant::now();
            let mut net = Network::new(spec.clone(), init.clone());
            let o = &config.optimizer;
            let mut adam = Adam::new(net.params.len(), o.lr as f32, o.beta_1, o.beta_2, o.epsilon);
            let (mut grad, mut ws) = (vec![0.0; net.params.len()], Workspace::default());
            let rows: Vec<usize> = (0..data.len()).collect();
            for _ in 0..steps {
                native_last = net.loss_and_grad(&x, &data.c, &rows, gmu::cpu::LossKind::SigmoidBce, &mut grad, &mut ws);
                adam.step(&mut net.params, &grad);
            }
            std::hint::black_box(&net.params);
            if rep >= 2 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        report("gmu-native 100 steps", times);
    }

    // What a user runs: `synthetic::train` (data to views, scaling, initialisation, the loop,
    // the kept weights back in the model), seed preset, on each engine `auto` can pick here.
    for engine in [Engine::Native, Engine::Burn] {
        let name = match engine {
            Engine::Burn if cfg!(feature = "wgpu") => "gmu-burn-wgpu",
            Engine::Burn if cfg!(feature = "ndarray") && !cfg!(feature = "flex") => "gmu-burn-ndarray",
            Engine::Burn => "gmu-burn-flex",
            _ => "gmu-native",
        };
        if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
            continue;
        }
        let config = TrainingConfig { engine, ..config.clone() };
        let device = burn::tensor::Device::default();
        let mut times = vec![];
        for rep in 0..reps + 2 {
            let start = Instant::now();
            let model = synthetic::train(&config, &data, &device).unwrap();
            std::hint::black_box(model.nets());
            if rep >= 2 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        report(&format!("{name} train call, 100 steps"), times);
    }

    // The dense GEMM engine on the same toy model (seed preset: sigmoid cross-entropy on one-hot
    // targets is its multilabel BCE), to see whether the native engine still earns its place.
    if only.as_deref().is_none_or(|o| "gmu-dense".starts_with(o)) {
        use gmu::cpu::Adam;
        use gmu::engine::dense::{DenseGmu, DenseWorkspace};
        let device = burn::tensor::Device::default();
        let net = spec.to_net(&init, &device).unwrap();
        let (xv, xt): (Vec<f32>, Vec<f32>) =
            (x.iter().step_by(2).copied().collect(), x.iter().skip(1).step_by(2).copied().collect());
        let y: Vec<f32> = data.c.iter().flat_map(|&c| [f32::from(c == 0), f32::from(c == 1)]).collect();
        let mut times = vec![];
        let mut last = 0.0;
        for rep in 0..reps + 2 {
            let mut dense = DenseGmu::from_net(&net).unwrap();
            dense.task = gmu::fusion::Task::Multilabel;
            let mut adam = Adam::new(dense.len(), config.optimizer.lr as f32, 0.9, 0.999, config.optimizer.epsilon);
            let (mut grad, mut ws) = (vec![0.0; dense.len()], DenseWorkspace::default());
            let start = Instant::now();
            for _ in 0..steps {
                last = dense.loss_and_grad(&xv, &xt, &y, &mut grad, &mut ws);
                adam.step(&mut dense.params, &grad);
            }
            std::hint::black_box(&dense.params);
            if rep >= 2 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        report(&format!("gmu-dense 100 steps (loss before the last step {last:.5})"), times);
        println!("{{\"impl\": \"gmu-native loss before the last step\", \"loss\": {native_last:.5}}}");
    }

    if only.as_deref().is_none_or(|o| o == "burn-ops") {
        burn_overhead(reps);
    }

    if only.as_deref().is_none_or(|o| o == "mesh") {
        let model = synthetic::train(&Preset::Seed.config(ModelKind::Gmu, 41), &data, &burn::tensor::Device::default())
            .unwrap();
        let predictor = NativeScorer::new(&model).unwrap();
        let (mut build, mut times) = (vec![], vec![]);
        for rep in 0..reps.min(10) + 1 {
            let start = Instant::now();
            let (_, _, points) = mesh(&data, 1000);
            let built = Instant::now();
            let out = predictor.predict(&points);
            std::hint::black_box(out);
            if rep >= 1 {
                build.push((built - start).as_secs_f64() * 1e3);
                times.push(built.elapsed().as_secs_f64() * 1e3);
            }
        }
        report("mesh 1000x1000 build inputs", build);
        report("gmu-native mesh 1000x1000 score", times);
    }
}

/// Where burn's time goes on the toy: one elementwise op on a `[400, 1]`
/// tensor, one forward pass, and forward + backward, without the optimiser.
fn burn_overhead(reps: usize) {
    use burn::tensor::{Device, Tensor, TensorData};
    let label = if cfg!(feature = "ndarray") && !cfg!(feature = "flex") { "burn-ndarray" } else { "burn-flex" };
    let data = SyntheticConfig::default().generate(&mut StdRng::seed_from_u64(41)).unwrap();
    let spec = ModelSpec { kind: ModelKind::Gmu, d_v: 1, d_t: 1, hidden: 1, bias: true, n_classes: 2 };
    let params = glorot(&spec, &mut StdRng::seed_from_u64(0));
    for autodiff in [false, true] {
        let device = if autodiff { Device::default().autodiff() } else { Device::default() };
        let a = Tensor::<2>::from_data(TensorData::new(data.x_v.clone(), [400, 1]), &device);
        let b = Tensor::<2>::from_data(TensorData::new(data.x_t.clone(), [400, 1]), &device);
        let mut times = vec![];
        for _ in 0..reps {
            let start = Instant::now();
            let mut c = a.clone();
            for _ in 0..1000 {
                c = c + b.clone();
            }
            std::hint::black_box(c.into_data());
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        // 1000 ops: milliseconds per 1000 ops = microseconds per op.
        report(&format!("{label} one add on [400,1], us/op{}", if autodiff { " (autodiff)" } else { "" }), times);
    }
    let device = Device::default().autodiff();
    let model = spec.to_net(&params, &device).unwrap();
    let xv = Tensor::<2>::from_data(TensorData::new(data.x_v.clone(), [400, 1]), &device);
    let xt = Tensor::<2>::from_data(TensorData::new(data.x_t.clone(), [400, 1]), &device);
    let (mut fwd, mut both) = (vec![], vec![]);
    for _ in 0..reps {
        let start = Instant::now();
        let gmu::fusion::Scores::Logits(logits) = model.forward(&[xv.clone(), xt.clone()]).scores else {
            unreachable!("logits")
        };
        let value = logits.clone().sum().into_scalar::<f32>();
        let mid = Instant::now();
        let grads = logits.sum().backward();
        std::hint::black_box((value, grads));
        fwd.push((mid - start).as_secs_f64() * 1e3);
        both.push(start.elapsed().as_secs_f64() * 1e3);
    }
    report(&format!("{label} GMU forward, ms"), fwd);
    report(&format!("{label} GMU forward+backward, ms"), both);
}
