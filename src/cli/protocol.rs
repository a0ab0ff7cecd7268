use std::path::PathBuf;

use anyhow::Result;
use gmu::experiments::synthetic::{ProtocolOptions, Setting, run_protocol};

/// Arguments of `gmu protocol`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of seeds (data sets); seeds 0..N.
    #[arg(long, default_value_t = 1000)]
    seeds: usize,
    /// Data: the paper's (R², 200 per class) or the seed post's (scalars, n = 400).
    #[arg(long, value_enum, default_value_t = Setting::Paper)]
    setting: Setting,
    #[command(flatten)]
    recipe: super::RecipeArgs,
    /// Fresh evaluation samples per seed.
    #[arg(long, default_value_t = 10_000)]
    test_size: usize,
    /// Accuracy difference under which GMU and LR tie.
    #[arg(long, default_value_t = 0.0)]
    tie_tolerance: f64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also write the full report, every seed included, as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(path) = &args.out {
        super::check_writable(path, "--out")?;
    }
    let options = ProtocolOptions {
        seeds: args.seeds,
        setting: args.setting,
        preset: args.recipe.preset,
        overrides: args.recipe.overrides(),
        test_size: args.test_size,
        tie_tolerance: args.tie_tolerance,
        threads: args.threads,
    };
    let report = run_protocol(&options, &super::device(), &super::counter("seeds"))?;
    let t = report.gmu_vs_logreg;
    println!(
        "setting {:?}, preset {}, {} seeds, fresh draws of {}",
        report.setting, report.preset, report.seeds, args.test_size
    );
    println!("GMU vs logistic regression: {} wins, {} ties, {} losses", t.wins, t.ties, t.losses);
    println!(
        "mean accuracy: GMU {:.4}, logistic regression {:.4}",
        report.mean_gmu_accuracy, report.mean_logreg_accuracy
    );
    println!(
        "corr(M, z): mean {:.4}, median {:.4}, min {:.4}",
        report.corr_m_z_mean, report.corr_m_z_median, report.corr_m_z_min
    );
    println!("seeds with accuracy >= 0.99 and corr(M,z) >= 0.95: {} of {}", report.robust_seeds, report.seeds);
    println!("wall time {:.1} s", report.wall_s);
    if let Some(path) = &args.out {
        gmu::error::write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
