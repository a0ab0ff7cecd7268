//! Training speed of the small image CNN that every Twemoji method trains
//! (`SmallCnn`: two `3×3 conv (same) → ReLU → 2×2 max pool` stages, 16 and 32
//! channels, then linear → ReLU to 64 features), with a linear classifier to
//! 9 classes, softmax cross-entropy, Adam, batch 64 of 3×32×32 images; and
//! where a step's time goes (forward + loss, backward, Adam).
//!
//! The model is the `FusionNet` gmu trains for a single picture view with a
//! linear head (`concat`, `--head linear`), and a step is the trainer's:
//! `--engine cnn` (what `auto` picks on the CPU) runs the CNN by hand and the
//! head on burn's autodiff, `--engine burn` runs everything on burn.
//!
//! `cargo bench --bench cnn -- --engine cnn --steps 30 --reps 5`;
//! `bench/cnn.sh` runs both engines beside the same model in PyTorch
//! (`bench/cnn_torch.py`). Prints one JSON line: median samples/s over `reps`
//! runs of `steps` steps (after 3 warm-up steps), and the mean milliseconds
//! per stage.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Distribution, Int, Tensor};
use gmu::engine::cnn::CnnFronts;
use gmu::fusion::{FusionKind, FusionSpec, HeadKind, SubnetSpec, Task};

const BATCH: usize = 64;
const CLASSES: usize = 9;
const FEATURES: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let number = |name: &str, default: usize| arg(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (steps, reps) = (number("--steps", 30), number("--reps", 5));
    let engine = arg("--engine").unwrap_or_else(|| "cnn".into());
    assert!(engine == "cnn" || engine == "burn", "--engine cnn|burn");
    let device = gmu::device::cpu().autodiff();
    let mut spec = FusionSpec::new(FusionKind::Concat, vec![3 * 32 * 32], FEATURES, CLASSES, Task::Multiclass);
    spec.encoders = vec![SubnetSpec::Cnn { channels: 3, height: 32, width: 32, d_out: FEATURES }];
    spec.head = HeadKind::Linear;
    let mut model = gmu::fusion::random::exclusive(|| {
        device.seed(0);
        spec.init(&device).unwrap()
    });
    let mut fronts = (engine == "cnn").then(|| CnnFronts::new(&model));
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let batches: Vec<(Tensor<2>, Tensor<2>)> = (0..8)
        .map(|k| {
            let x = Tensor::random([BATCH, 3 * 32 * 32], Distribution::Uniform(-1.0, 1.0), &device);
            let labels: Vec<i64> = (0..BATCH).map(|i| ((i * 7 + k) % CLASSES) as i64).collect();
            let y = Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(labels, [BATCH]), &device)
                .one_hot(CLASSES)
                .float();
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
            let out = match &mut fronts {
                Some(f) => model.forward_encoded(f.encode(&model, vec![x]), None),
                None => model.forward(&[x]),
            };
            let loss = model.loss(out.scores, y);
            let _ = std::hint::black_box(loss.clone().into_data());
            let t1 = Instant::now();
            let grads = match &mut fronts {
                Some(f) => f.gradients(&model, loss.backward()),
                None => GradientsParams::from_grads(loss.backward(), &model),
            };
            let t2 = Instant::now();
            model = optim.step(1e-3, model.clone(), grads);
            let _ = std::hint::black_box(model.encoders[0].as_ref().unwrap().project.weight.val().into_data());
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
        "{{\"impl\": \"gmu-cnn-{engine}\", \"threads\": \"{threads}\", \"batch\": {BATCH}, \"samples_per_s\": {:.0}, \"ms_per_step\": {{\"forward_and_loss\": {:.2}, \"backward\": {:.2}, \"adam\": {:.2}}}}}",
        rates[rates.len() / 2],
        stages[0],
        stages[1],
        stages[2]
    );
}
