//! Encoding throughput of the pretrained encoders (`gmu encode`'s work):
//! MiniLM on 256-token texts and EfficientNet-Lite0 on 224×224 images, batch
//! 32, on burn's CPU backend. Needs the encoders (`gmu encoders fetch`).
//!
//! `cargo bench --bench encode -- --batches 4 --reps 3 [--only minilm|effnet-lite0|peak]`; `bench/encode.sh`
//! runs it beside the PyTorch reference (`bench/encode_torch.py`) on the
//! same weights. Prints one JSON line per encoder: median items/s over `reps`
//! timed runs of `batches` batches (after one warm-up batch); MiniLM's line
//! also gives the GFLOP/s its items/s amount to (multiply-adds counted as two).
//! `--only peak` measures what the threads' cores can do at most in `f32`:
//! 16 independent chains of 512-bit fused multiply-adds per thread (12 of
//! 256-bit where the CPU lacks AVX-512), the ceiling any `f32` matrix product (gmu's,
//! oneDNN's) runs under.

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
    if only.as_deref() == Some("peak") {
        let gflops = median((0..reps.max(3)).map(|_| fma_peak(threads)).collect());
        println!("{{\"impl\": \"fma-peak\", \"threads\": {threads}, \"gflop_per_s\": {gflops:.1}}}");
    }
}

/// MiniLM's multiply-adds for one text of `t` tokens (all-MiniLM-L6-v2: 6
/// layers, width 384, feed-forward 1536): per layer the four `h × h`
/// projections and the two feed-forward products on every token, and the
/// attention's scores and weighted values (`t × t × h` each).
fn minilm_macs(t: f64) -> f64 {
    let (layers, h, f) = (6.0, 384.0, 1536.0);
    layers * (t * (4.0 * h * h + 2.0 * h * f) + 2.0 * t * t * h)
}

/// GFLOP/s of `threads` threads each running [`fma_chains`] at once.
fn fma_peak(threads: usize) -> f64 {
    const ROUNDS: usize = 20_000_000;
    let start = Instant::now();
    let per_thread: Vec<f64> = {
        use rayon::prelude::*;
        (0..threads).into_par_iter().map(|_| fma_chains(ROUNDS)).collect()
    };
    let seconds = start.elapsed().as_secs_f64();
    per_thread.iter().sum::<f64>() / seconds / 1e9
}

/// Runs independent chains of fused multiply-adds (16 of 512-bit registers, or
/// 12 of 256-bit, or 16 scalar ones) `rounds` times; returns
/// the floating-point operations done (each lane's multiply-add counted as two).
fn fma_chains(rounds: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { fma_chains_avx512(rounds) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { fma_chains_avx2(rounds) };
        }
    }
    let mut acc = [1.0f32; 16];
    for _ in 0..rounds {
        for a in &mut acc {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (rounds * 16 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(rounds: usize) -> f64 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); 16];
    for _ in 0..rounds {
        for a in &mut acc {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    std::hint::black_box(acc);
    (rounds * 16 * 16 * 2) as f64
}

/// Twelve chains here, not sixteen: AVX2 has sixteen ymm registers, and
/// sixteen accumulators beside the two constants spill to memory (measured
/// at half the peak on a Zen 3 core); twelve still cover the FMA latency
/// times the ports (4 × 2) of current x86 cores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(rounds: usize) -> f64 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); 12];
    // as many instructions as the AVX-512 loop's sixteen chains
    let rounds = rounds * 16 / 12;
    for _ in 0..rounds {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    std::hint::black_box(acc);
    (rounds * 12 * 8 * 2) as f64
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
    let items_per_s = median(times);
    println!(
        "{{\"impl\": \"{}\", \"encoder\": \"minilm\", \"tokens\": 256, \"batch\": {BATCH}, \"threads\": {threads}, \"items_per_s\": {items_per_s:.2}, \"gflop_per_s\": {:.1}}}",
        implementation(minilm.precision()),
        items_per_s * 2.0 * minilm_macs(256.0) / 1e9
    );
}

/// `gmu`, or `gmu-bf16` where the encoder runs in bf16 (`GMU_ENCODER_PRECISION=bf16` on AMX or AVX512-BF16).
fn implementation(precision: gmu::cpu::bf16::EncoderPrecision) -> &'static str {
    match precision {
        gmu::cpu::bf16::EncoderPrecision::F32 => "gmu",
        gmu::cpu::bf16::EncoderPrecision::Bf16 => "gmu-bf16",
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
