use std::path::PathBuf;

use anyhow::Result;
use gmu::data::SyntheticConfig;
use gmu::data::table::write_csv;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Arguments of `gmu synth`; the defaults are the seed post's values.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// CSV file to write (`v0..,t0..,c,m`).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of samples.
    #[arg(long, default_value_t = 400)]
    n: usize,
    /// Exactly n/2 samples per class instead of C ~ Bern(p_c).
    #[arg(long)]
    balanced: bool,
    /// Dimension of each modality.
    #[arg(long, default_value_t = 1)]
    dim: usize,
    /// P(C = 1).
    #[arg(long, default_value_t = 0.5)]
    p_c: f64,
    /// P(M = 1): how often the visual modality is the informative one.
    #[arg(long, default_value_t = 0.5)]
    p_m: f64,
    /// Visual means of class 0 and class 1.
    #[arg(long, num_args = 2, value_names = ["C0", "C1"], default_values_t = [1.0, 8.0])]
    mu_v: Vec<f64>,
    /// Visual noise mean.
    #[arg(long, default_value_t = 17.0)]
    mu_v_noise: f64,
    /// Textual means of class 0 and class 1.
    #[arg(long, num_args = 2, value_names = ["C0", "C1"], default_values_t = [13.0, 19.0])]
    mu_t: Vec<f64>,
    /// Textual noise mean.
    #[arg(long, default_value_t = 10.0)]
    mu_t_noise: f64,
    /// Standard deviation of every Gaussian.
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
}

pub fn run(args: Args) -> Result<()> {
    super::check_writable(&args.out, "--out")?;
    let config = SyntheticConfig {
        n: args.n,
        balanced: args.balanced,
        dim: args.dim,
        p_c: args.p_c,
        p_m: args.p_m,
        mu_v: [args.mu_v[0], args.mu_v[1]],
        mu_v_noise: args.mu_v_noise,
        mu_t: [args.mu_t[0], args.mu_t[1]],
        mu_t_noise: args.mu_t_noise,
        sigma: args.sigma,
    };
    let data = config.generate(&mut StdRng::seed_from_u64(args.seed))?;
    write_csv(&args.out, &data)?;
    println!("wrote {} samples (dim {}) to {}", data.len(), data.dim, args.out.display());
    Ok(())
}
