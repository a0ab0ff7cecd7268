use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use gmu::predict::Model;
use gmu::serve::{Batching, Limits, Options};

/// Arguments of `gmu serve`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Routes: GET / (the page), GET /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME, \
/v2/models/NAME/ready, POST /v2/models/NAME/infer (JSON, or the binary tensor data extension), GET /metrics. \
Each view is an input named as the view: FP32 [rows, width] for features, BYTES [rows] for a text or an image \
(JPEG or PNG bytes; base64 when sent as a JSON string). Outputs: probabilities, predicted, and per view gate_, \
share_, suspect_, importance_, conflict_ and present_ (the numbers `gmu predict` writes). SIGTERM or ctrl-c \
finishes the requests in flight, then stops. GMU_ENCODER_PRECISION=bf16 runs the pretrained encoders' products in \
bf16 on AMX (Intel Sapphire Rapids or later; about 2x the requests per second of a plot+poster model) or with \
AVX512-BF16 (AMD Zen 4 and 5, Intel Cooper Lake), answers within about 1e-3 of f32's.")]
pub struct Args {
    /// A model directory written by any training command; repeat for several models.
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// Each model's name in the URLs, in --model order [default: the directory's name].
    #[arg(long)]
    name: Vec<String>,
    /// Address to listen on. Loopback by default; another address (0.0.0.0:8080) exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Most rows in one forward pass: concurrent requests are batched up to it (their plots and posters
    /// through the encoders together too, up to 32 a pass).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_batch: u64,
    /// How long a request waits for others to batch with (0: take what is queued, never wait).
    #[arg(long, default_value_t = 0)]
    max_delay_ms: u64,
    /// Requests that may wait per model; past it the server answers 503 with Retry-After.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_queue: u64,
    /// Largest request body, in MiB (413 past it).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_body_mb: u64,
    /// Most rows in one request (413 past it).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    max_rows: u64,
    /// Longest text (a plot), in bytes.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
    max_text_bytes: u64,
    /// Largest image, in megapixels (width × height).
    #[arg(long, default_value_t = 40.0)]
    max_megapixels: f64,
    /// Largest image aspect ratio (longer side over shorter).
    #[arg(long, default_value_t = 20.0)]
    max_aspect: f64,
    /// Time to encode one request's texts and images, in ms.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    decode_timeout_ms: u64,
    /// Time for a whole request, in ms (503 past it).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    /// Threads: the HTTP runtime's and the forward passes' [default: every core].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: Option<u64>,
    /// A feature row that is only partly missing: `mean` fills each missing cell with the
    /// column's training mean saved with the model; without it such a row is refused.
    #[arg(long, value_enum)]
    impute: Option<super::Impute>,
}

pub fn run(args: Args) -> Result<()> {
    if !args.name.is_empty() && args.name.len() != args.model.len() {
        bail!(
            "--name: {} names for {} models; give one per --model, in order, or none",
            args.name.len(),
            args.model.len()
        );
    }
    if !(args.max_megapixels > 0.0 && args.max_megapixels.is_finite()) {
        bail!("invalid --max-megapixels {}: expected a positive number", args.max_megapixels);
    }
    if !(args.max_aspect >= 1.0 && args.max_aspect.is_finite()) {
        bail!("invalid --max-aspect {}: expected a number of at least 1", args.max_aspect);
    }
    let threads = match args.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if args.threads.is_some() {
        // The forward passes' pool; the first use fixes it, so set it before any model runs.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    let device = super::device();
    let mut models = Vec::with_capacity(args.model.len());
    for (i, dir) in args.model.iter().enumerate() {
        let name = match args.name.get(i) {
            Some(n) => n.clone(),
            None => dir
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "model".to_string()),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            bail!(
                "invalid model name '{name}' (from --name or {}): use letters, digits, '-', '_' and '.'",
                dir.display()
            );
        }
        if models.iter().any(|(n, _): &(String, Model)| *n == name) {
            bail!("two models are named '{name}'; give each a --name");
        }
        let model = Model::load(dir, &device)?;
        super::stage(&format!("model '{name}': {} from {}", model.config.method, dir.display()));
        models.push((name, model));
    }
    if gmu::cpu::bf16::encoder_precision() == gmu::cpu::bf16::EncoderPrecision::Bf16 {
        let kernel = gmu::cpu::bf16::bf16_kernel().map_or("?", |k| k.name());
        super::stage(&format!(
            "encoders: bf16 on {kernel} (GMU_ENCODER_PRECISION=bf16; answers differ from f32 by about 1e-3)"
        ));
    }
    let options = Options {
        addr: args.addr,
        batching: Batching {
            max_batch: args.max_batch as usize,
            max_delay: Duration::from_millis(args.max_delay_ms),
            max_queue: args.max_queue as usize,
        },
        limits: Limits {
            max_body: (args.max_body_mb as usize) << 20,
            max_rows: args.max_rows as usize,
            max_text: args.max_text_bytes as usize,
            max_pixels: (args.max_megapixels * 1e6) as u64,
            max_aspect: args.max_aspect,
            decode_timeout: Duration::from_millis(args.decode_timeout_ms),
            timeout: Duration::from_millis(args.timeout_ms),
        },
        threads,
        impute: args.impute.is_some(),
    };
    gmu::serve::serve(models, options, |addr| {
        eprintln!("· listening on http://{addr} (the page at /, the protocol under /v2, metrics at /metrics)");
    })?;
    Ok(())
}
