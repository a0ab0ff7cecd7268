//! Encoding throughput of the pretrained encoders (`gmu encode`'s work):
//! MiniLM on 256-token texts and EfficientNet-Lite0 on 224×224 images, batch
//! 32, on burn's CPU backend. Needs the encoders (`gmu encoders fetch`).
//!
//! `cargo bench --bench encode -- --batches 4 --reps 3 [--only minilm|effnet-lite0]`; `bench/encode.sh`
//! runs it beside the PyTorch reference (`bench/encode_torch.py`) on the
//! same weights. Prints one JSON line per encoder: median items/s over `reps`
//! timed runs of `batches` batches (after one warm-up batch).

use std::time::Instant;

use burn::tensor::Device;
use gmu::encoders::{Encoder, EncoderKind, EncoderSpec, RawInput};

const BATCH: usize = 32;

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let (batches, reps) = (arg("--batches", 3), arg("--reps", 3));
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let device = Device::default();
    let threads = rayon::current_num_threads();
    if run("minilm") {
        minilm_bench(&device, batches, reps, threads);
    }
    if run("effnet-lite0") {
        effnet_bench(&device, batches, reps, threads);
    }
}

fn minilm_bench(device: &Device, batches: usize, reps: usize, threads: usize) {
    // 32 plots of well over 256 word pieces each: every row is truncated to 256 tokens.
    let words = [
        "the", "young", "wizard", "travels", "across", "a", "dark", "kingdom", "to", "save", "his", "friends", "from",
        "an", "ancient", "curse",
    ];
    let texts: Vec<String> = (0..BATCH)
        .map(|i| (0..320).map(|k| words[(i * 7 + k * 3) % words.len()]).collect::<Vec<_>>().join(" "))
        .collect();
    let minilm = Encoder::load(&EncoderSpec::new(EncoderKind::MiniLm), device).expect("gmu encoders fetch minilm");
    let inputs: Vec<RawInput> = texts.iter().map(|t| RawInput::Text(t)).collect();
    minilm.encode(&inputs).unwrap();
    let times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batches {
                std::hint::black_box(minilm.encode(&inputs).unwrap());
            }
            (batches * BATCH) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "{{\"impl\": \"{}\", \"encoder\": \"minilm\", \"tokens\": 256, \"batch\": {BATCH}, \"threads\": {threads}, \"items_per_s\": {:.2}}}",
        implementation(minilm.precision()),
        median(times)
    );
}

/// `gmu`, or `gmu-bf16` where the encoder runs in bf16 (`GMU_ENCODER_PRECISION=bf16` with AMX).
fn implementation(precision: gmu::cpu::amx::EncoderPrecision) -> &'static str {
    match precision {
        gmu::cpu::amx::EncoderPrecision::F32 => "gmu",
        gmu::cpu::amx::EncoderPrecision::Bf16 => "gmu-bf16",
    }
}

fn effnet_bench(device: &Device, batches: usize, reps: usize, threads: usize) {
    let Encoder::EffnetLite0(effnet) =
        Encoder::load(&EncoderSpec::new(EncoderKind::EffnetLite0), device).expect("gmu encoders fetch effnet-lite0")
    else {
        unreachable!()
    };
    let images: Vec<Vec<f32>> = (0..BATCH)
        .map(|i| (0..3 * 224 * 224).map(|k| ((k * 31 + i * 7) % 255) as f32 / 128.0 - 1.0).collect())
        .collect();
    effnet.encode_pixels(&images);
    let times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batches {
                std::hint::black_box(effnet.encode_pixels(&images));
            }
            (batches * BATCH) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "{{\"impl\": \"{}\", \"encoder\": \"effnet-lite0\", \"size\": 224, \"batch\": {BATCH}, \"threads\": {threads}, \"items_per_s\": {:.2}}}",
        implementation(effnet.precision()),
        median(times)
    );
}
