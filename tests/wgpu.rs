//! The `wgpu` feature against the CPU backend: the same model (the paper's
//! GMU → maxout MLP, with the same weights) gives the same predictions and
//! trains along the same losses on a wgpu device as on the CPU, and the CLI
//! trains and predicts with `--device wgpu`. CI runs it on Mesa's software
//! Vulkan (lavapipe):
//!
//! ```sh
//! apt-get install mesa-vulkan-drivers
//! cargo test --release --features wgpu --test wgpu
//! ```
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use gmu::device::{DeviceKind, cpu};
use gmu::fusion::{FusionKind, FusionNet, FusionSpec, MaxNorm, Scores, Task};

/// Tolerances: float32 on two backends whose reductions and transcendental
/// functions are ordered and approximated differently.
const PROB_TOL: f32 = 1e-4;
const LOSS_TOL: f32 = 1e-4;

fn wgpu() -> Device {
    DeviceKind::Wgpu.device().expect("built with the wgpu feature")
}

/// The paper's GMU model on views of widths 6 and 4, 3 labels, dropout off
/// (so both devices compute one function), initialised on the CPU from a
/// seed (on its autodiff device with `trainable`).
fn model(kind: FusionKind, trainable: bool) -> FusionNet {
    let device = if trainable { cpu().autodiff() } else { cpu() };
    let mut spec = FusionSpec::new(kind, vec![6, 4], 8, 3, Task::Multilabel);
    spec.dropout = 0.0;
    gmu::fusion::random::exclusive(|| {
        device.seed(5);
        spec.init(&device).unwrap()
    })
}

fn batch(rows: usize, step: usize, device: &Device) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let f = |i: usize, k: f32| ((i + 13 * step) as f32 * 0.37 + k).sin() * 1.5;
    let t = |v: Vec<f32>, cols: usize| Tensor::from_data(TensorData::new(v, [rows, cols]), device);
    let y = (0..rows * 3).map(|i| ((i * 7 + step) % 3 == 0) as u8 as f32).collect();
    (t((0..rows * 6).map(|i| f(i, 0.1)).collect(), 6), t((0..rows * 4).map(|i| f(i, 2.0)).collect(), 4), t(y, 3))
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// The largest difference between two lists of values.
fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_same_model_predicts_and_trains_alike_on_wgpu_and_the_cpu() {
    let (cpu_dev, gpu_dev) = (cpu(), wgpu());
    assert!(!gmu::device::is_cpu(&gpu_dev), "a wgpu device goes to burn, not the CPU engines");
    for kind in [FusionKind::Gmu, FusionKind::Concat, FusionKind::LinearSum] {
        // Two independent copies of one initialisation, one moved to the GPU.
        let (on_cpu, on_gpu) = (model(kind, false), model(kind, false).to_device(&gpu_dev));
        let probs = |net: &FusionNet, device: &Device| {
            let (xv, xt, _) = batch(9, 0, device);
            let out = net.forward(&[xv, xt]);
            let Scores::Logits(logits) = out.scores else { unreachable!() };
            values(net.probabilities(Scores::Logits(logits)))
        };
        let d = worst(&probs(&on_cpu, &cpu_dev), &probs(&on_gpu, &gpu_dev));
        assert!(d < PROB_TOL, "{kind}: probabilities differ by {d}");

        // Five Adam steps with max-norm on one batch, on each device's autodiff: the same losses.
        let train = |net: FusionNet, device: &Device| -> (Vec<f32>, FusionNet) {
            let device = device.clone().autodiff();
            let mut net = net.fork(&device);
            assert!(net.num_params() > 0);
            let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
            let mut losses = vec![];
            for _ in 0..5 {
                let (xv, xt, y) = batch(8, 1, &device);
                let loss = net.loss(net.forward(&[xv, xt]).scores, y);
                losses.push(loss.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap()[0]);
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(0.01, net, grads).map(&mut MaxNorm { limit: 2.0 });
            }
            (losses, net.valid())
        };
        let (cpu_losses, cpu_net) = train(model(kind, true), &cpu_dev);
        let (gpu_losses, gpu_net) = train(model(kind, true), &gpu_dev);
        let d = worst(&cpu_losses, &gpu_losses);
        assert!(d < LOSS_TOL, "{kind}: losses {cpu_losses:?} vs {gpu_losses:?}");
        assert!(cpu_losses[4] < cpu_losses[0], "{kind}: training lowers the loss: {cpu_losses:?}");
        let d = worst(&probs(&cpu_net, &cpu_dev), &probs(&gpu_net, &gpu_dev));
        assert!(d < 10.0 * PROB_TOL, "{kind}: probabilities after training differ by {d}");
    }
}

#[test]
fn the_cli_trains_and_predicts_on_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let gmu = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gmu")).args(args).output().unwrap();
        assert!(out.status.success(), "gmu {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gmu(&["synth", "--out", &p("data.csv"), "--n", "400", "--seed", "3"]);
    gmu(&[
        "--device",
        "wgpu",
        "train",
        "--data",
        &p("data.csv"),
        "--model",
        "gmu",
        "--out",
        &p("model"),
        "--steps",
        "40",
        "--seed",
        "4",
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("model/config.json")).unwrap()).unwrap();
    assert_eq!(config["members"][0]["engine"], "burn", "a wgpu device trains on burn");
    let scores = gmu(&[
        "--device",
        "wgpu",
        "eval",
        "--model",
        &p("model"),
        "--data",
        &p("data.csv"),
        "--json",
        "--predictions",
        &p("pred.csv"),
    ]);
    let scores: serde_json::Value = serde_json::from_str(&scores).unwrap();
    assert!(scores["accuracy"].as_f64().unwrap() > 0.5, "{scores}");
    let preds = std::fs::read_to_string(dir.path().join("pred.csv")).unwrap();
    assert_eq!(preds.lines().count(), 401, "a header and one row per sample");
}
