//! Training throughput at MM-IMDb's shape: the GMU classifier
//! (x_v 4096 + x_t 300 → GMU 512 → 23 sigmoid outputs, binary cross-entropy,
//! Adam, batch 128) on burn's CPU backend, and the full `gmu mmimdb` model
//! (GMU → maxout MLP with batch norm, dropout and max-norm), and the same
//! GMU classifier on the dense GEMM engine (`gmu::engine::dense`), and the
//! paper's models of Table 2 (GMU, concatenation, linear sum, each single
//! modality, all with the maxout MLP) on the maxout engine
//! (`gmu::engine::maxout`, `--only maxout`).
//!
//! `cargo bench --bench mmimdb -- --steps 30 --reps 5`; `bench/mmimdb.sh`
//! runs it beside the PyTorch reference (`bench/mmimdb_torch.py`). Prints one
//! JSON line per model: median samples/s over `reps` timed runs of `steps`
//! steps each (after 3 warm-up steps), and the quartiles.

use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Distribution, Tensor};
use gmu::cpu::Adam;
use gmu::engine::dense::{DenseGmu, DenseWorkspace};
use gmu::engine::maxout::{MaxoutNet, MaxoutWorkspace};
use gmu::fusion::{FusionKind, FusionSpec, Gmu, GmuConfig, HeadKind, MaxNorm, Task};

const D_V: usize = 4096;
const D_T: usize = 300;
const HIDDEN: usize = 512;
const LABELS: usize = 23;

#[derive(Module, Debug)]
struct GmuClassifier {
    gmu: Gmu,
    head: Linear,
}

fn bce(logits: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    let ones = y.ones_like();
    (y.clone() * log_sigmoid(logits.clone()) + (ones - y) * log_sigmoid(logits.neg())).mean().neg()
}

fn quartiles(mut t: Vec<f64>) -> (f64, f64, f64) {
    t.sort_by(f64::total_cmp);
    let q = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    (q(0.25), q(0.5), q(0.75))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (steps, reps, batch) = (arg("--steps", 30), arg("--reps", 5), arg("--batch", 128));
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let device = Device::default().autodiff();
    device.seed(0);
    // A pool of batches, so the timed loop does not build tensors.
    let batches: Vec<(Tensor<2>, Tensor<2>, Tensor<2>)> = (0..8)
        .map(|_| {
            (
                Tensor::random([batch, D_V], Distribution::Normal(0.0, 1.0), &device),
                Tensor::random([batch, D_T], Distribution::Normal(0.0, 1.0), &device),
                Tensor::random([batch, LABELS], Distribution::Bernoulli(0.1), &device),
            )
        })
        .collect();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());

    if only.as_deref().is_none_or(|o| o == "gmu") {
        let mut model = GmuClassifier {
            gmu: GmuConfig::new(vec![D_V, D_T], HIDDEN).init(&device),
            head: LinearConfig::new(HIDDEN, LABELS).init(&device),
        };
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let mut run = |n: usize| {
            for s in 0..n {
                let (xv, xt, y) = batches[s % batches.len()].clone();
                let logits = model.head.forward(model.gmu.forward(&[xv, xt]).fused);
                let loss = bce(logits, y);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(1e-3, model.clone(), grads);
            }
            // Wait for the last step's values, so lazy backends are timed in full.
            std::hint::black_box(model.head.bias.as_ref().unwrap().val().into_data());
        };
        report("gmu-burn", &threads, batch, steps, reps, &mut run);
    }
    if only.as_deref().is_none_or(|o| o == "dense") {
        // The same model on the dense GEMM engine (what `--head linear` trains).
        let mut spec = FusionSpec::new(FusionKind::Gmu, vec![D_V, D_T], HIDDEN, LABELS, Task::Multilabel);
        spec.head = HeadKind::Linear;
        let mut model = DenseGmu::from_net(&spec.init(&Device::default()).unwrap()).unwrap();
        let data: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = batches
            .iter()
            .map(|(xv, xt, y)| {
                let v = |t: &Tensor<2>| t.to_data().try_to_vec::<f32>().unwrap();
                (v(xv), v(xt), v(y))
            })
            .collect();
        let (mut grad, mut ws) = (vec![0.0; model.len()], DenseWorkspace::default());
        let mut adam = Adam::with_defaults(model.len(), 1e-3);
        let mut run = |n: usize| {
            for s in 0..n {
                let (xv, xt, y) = &data[s % data.len()];
                std::hint::black_box(model.loss_and_grad(xv, xt, y, &mut grad, &mut ws));
                adam.step(&mut model.params, &grad);
            }
        };
        report("gmu-dense", &threads, batch, steps, reps, &mut run);
    }
    if only.as_deref().is_none_or(|o| o == "fusion") {
        let spec = FusionSpec::new(FusionKind::Gmu, vec![D_V, D_T], HIDDEN, LABELS, Task::Multilabel);
        let mut model = spec.init(&device).unwrap();
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let mut run = |n: usize| {
            for s in 0..n {
                let (xv, xt, y) = batches[s % batches.len()].clone();
                let out = model.forward(&[xv, xt]);
                let loss = model.loss(out.scores, y);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(1e-3, model.clone(), grads);
                model = model.clone().map(&mut MaxNorm { limit: 10.0 });
            }
            std::hint::black_box(model.clone().map(&mut MaxNorm { limit: 10.0 }));
        };
        report("gmu-maxout-mlp-burn", &threads, batch, steps, reps, &mut run);
    }
    for (kind, name, views) in [
        (FusionKind::Gmu, "gmu-maxout-mlp", &[D_V, D_T][..]),
        (FusionKind::Concat, "concat-maxout-mlp", &[D_V, D_T][..]),
        (FusionKind::LinearSum, "linear-sum-maxout-mlp", &[D_V, D_T][..]),
        (FusionKind::Concat, "visual-maxout-mlp", &[D_V][..]),
        (FusionKind::Concat, "text-maxout-mlp", &[D_T][..]),
    ] {
        // The paper's models on the maxout engine (what `gmu mmimdb` trains by default):
        // dropout masks drawn, Adam, max-norm 10 after every step.
        let key = format!("{name}-engine");
        if !only.as_deref().is_none_or(|o| o == "maxout" || o == key) {
            continue;
        }
        let spec = FusionSpec::new(kind, views.to_vec(), HIDDEN, LABELS, Task::Multilabel);
        let mut model = MaxoutNet::from_net(&spec.init(&Device::default()).unwrap(), 0).unwrap().with_views(views);
        let data: Vec<(Vec<Vec<f32>>, Vec<f32>)> = batches
            .iter()
            .map(|(xv, xt, y)| {
                let v = |t: &Tensor<2>| t.to_data().try_to_vec::<f32>().unwrap();
                let x = match views {
                    [D_V, D_T] => vec![v(xv), v(xt)],
                    [D_V] => vec![v(xv)],
                    _ => vec![v(xt)],
                };
                (x, v(y))
            })
            .collect();
        let (mut grad, mut ws) = (vec![0.0; model.len()], MaxoutWorkspace::default());
        let mut adam = Adam::with_defaults(model.len(), 1e-3);
        let mut run = |n: usize| {
            for s in 0..n {
                let (x, y) = &data[s % data.len()];
                let x: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
                std::hint::black_box(model.loss_and_grad(&x, y, &mut grad, &mut ws));
                model.adam_step(&mut adam, &grad, Some(10.0));
            }
        };
        report(&key, &threads, batch, steps, reps, &mut run);
    }
    if only.as_deref() == Some("fusion-stages") {
        // Where a step of the paper's model goes on burn: forward + loss, backward, Adam, max-norm.
        // Each stage ends by reading a value back, so its work is done before the clock stops.
        let spec = FusionSpec::new(FusionKind::Gmu, vec![D_V, D_T], HIDDEN, LABELS, Task::Multilabel);
        let mut model = spec.init(&device).unwrap();
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let mut ms = [0f64; 5];
        let sync = |m: &gmu::fusion::FusionNet| std::hint::black_box(m.clone().map(&mut ReadBack));
        for s in 0..3 + steps * reps {
            let (xv, xt, y) = batches[s % batches.len()].clone();
            let t0 = Instant::now();
            let out = model.forward(&[xv, xt]);
            let loss = model.loss(out.scores, y);
            let _ = std::hint::black_box(loss.clone().into_data());
            let t1 = Instant::now();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let t2 = Instant::now();
            model = optim.step(1e-3, model.clone(), grads);
            sync(&model);
            let t3 = Instant::now();
            model = model.clone().map(&mut MaxNorm { limit: 10.0 });
            sync(&model);
            let t4 = Instant::now();
            sync(&model);
            let t5 = Instant::now();
            if s >= 3 {
                for (acc, d) in ms.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]) {
                    *acc += d.as_secs_f64() * 1e3 / (steps * reps) as f64;
                }
            }
        }
        println!(
            "{{\"impl\": \"gmu-maxout-mlp-burn-stages\", \"threads\": \"{threads}\", \"ms_per_step\": {{\"forward_and_loss\": {:.2}, \"backward\": {:.2}, \"adam\": {:.2}, \"max_norm\": {:.2}}}, \"read_back_ms\": {:.2}, \"note\": \"adam and max_norm each include one read-back\"}}",
            ms[0], ms[1], ms[2], ms[3], ms[4]
        );
    }
}

/// Reads every parameter back to the host (forces any pending work).
struct ReadBack;

impl burn::module::ModuleMapper for ReadBack {
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        let _ = std::hint::black_box(param.val().into_data());
        param
    }
}

/// Times `reps` runs of `steps` steps after 3 warm-up steps (on a GPU the
/// warm-up holds burn's kernel compilation and autotuning; its time is
/// printed as `warmup_s`) and prints one JSON line.
fn report(name: &str, threads: &str, batch: usize, steps: usize, reps: usize, run: &mut dyn FnMut(usize)) {
    let start = Instant::now();
    run(3);
    let warmup = start.elapsed().as_secs_f64();
    let mut rates = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        run(steps);
        rates.push((steps * batch) as f64 / start.elapsed().as_secs_f64());
    }
    let (q1, median, q3) = quartiles(rates);
    let device = format!("{:?}", Device::default());
    println!(
        "{{\"impl\": \"{name}\", \"threads\": \"{threads}\", \"device\": {device:?}, \"batch\": {batch}, \"samples_per_s\": {median:.0}, \"q1\": {q1:.0}, \"q3\": {q3:.0}, \"steps\": {steps}, \"reps\": {reps}, \"warmup_s\": {warmup:.2}}}"
    );
}
