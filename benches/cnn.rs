//! Training speed of the small image CNN that every Twemoji method trains
//! (`SmallCnn`: two `3×3 conv (same) → ReLU → 2×2 max pool` stages, 16 and 32
//! channels, then linear → ReLU to 64 features), with a linear classifier to
//! 9 classes, softmax cross-entropy, Adam, batch 64 of 3×32×32 images, on
//! burn's CPU backend; and where a step's time goes (forward + loss,
//! backward, Adam).
//!
//! `cargo bench --bench cnn -- --steps 30 --reps 5`; `bench/cnn.sh` runs it
//! beside the same model in PyTorch (`bench/cnn_torch.py`). Prints one JSON
//! line: median samples/s over `reps` runs of `steps` steps (after 3 warm-up
//! steps), and the mean milliseconds per stage.

use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Int, Tensor};
use gmu::fusion::SmallCnn;
use gmu::fusion::blocks::ImageShape;

const BATCH: usize = 64;
const CLASSES: usize = 9;
const FEATURES: usize = 64;

#[derive(Module, Debug)]
struct CnnClassifier {
    cnn: SmallCnn,
    head: Linear,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (steps, reps) = (arg("--steps", 30), arg("--reps", 5));
    let device = Device::default().autodiff();
    device.seed(0);
    let shape = ImageShape { channels: 3, height: 32, width: 32 };
    let mut model = CnnClassifier { cnn: SmallCnn::new(shape, FEATURES, &device), head: LinearConfig::new(FEATURES, CLASSES).init(&device) };
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let batches: Vec<(Tensor<2>, Tensor<2>)> = (0..8)
        .map(|k| {
            let x = Tensor::random([BATCH, 3 * 32 * 32], Distribution::Uniform(-1.0, 1.0), &device);
            let labels: Vec<i64> = (0..BATCH).map(|i| ((i * 7 + k) % CLASSES) as i64).collect();
            let y = Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(labels, [BATCH]), &device).one_hot(CLASSES).float();
            (x, y)
        })
        .collect();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    let mut stages = [0f64; 3];
    let mut rates = Vec::new();
    for rep in 0..=reps {
        let start = Instant::now();
        let n = if rep == 0 { 3 } else { steps };
        for s in 0..n {
            let (x, y) = batches[s % batches.len()].clone();
            let t0 = Instant::now();
            let logits = model.head.forward(model.cnn.forward(x));
            let loss = (log_softmax(logits, 1) * y).sum().div_scalar(BATCH as f32).neg();
            let _ = std::hint::black_box(loss.clone().into_data());
            let t1 = Instant::now();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let t2 = Instant::now();
            model = optim.step(1e-3, model.clone(), grads);
            let _ = std::hint::black_box(model.head.bias.as_ref().unwrap().val().into_data());
            let t3 = Instant::now();
            if rep > 0 {
                for (acc, d) in stages.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                    *acc += d.as_secs_f64() * 1e3 / (steps * reps) as f64;
                }
            }
        }
        if rep > 0 {
            rates.push((n * BATCH) as f64 / start.elapsed().as_secs_f64());
        }
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{{\"impl\": \"gmu-cnn-burn\", \"threads\": \"{threads}\", \"batch\": {BATCH}, \"samples_per_s\": {:.0}, \"ms_per_step\": {{\"forward_and_loss\": {:.2}, \"backward\": {:.2}, \"adam\": {:.2}}}}}",
        rates[rates.len() / 2],
        stages[0],
        stages[1],
        stages[2]
    );
}
