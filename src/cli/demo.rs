use std::path::PathBuf;

use anyhow::Result;
use gmu::config::Preset;
use gmu::engine::Engine;
use gmu::experiments::synthetic::{DemoOptions, run_demo};

/// Arguments of `gmu demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output directory for the figures, metrics.json and the trained models.
    #[arg(long, default_value = "gmu-demo")]
    out: PathBuf,
    /// Seed of the data, the initialisations and the fresh evaluation draw.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Mesh points per axis of the gate and prediction maps (2..=4000).
    #[arg(long, default_value_t = 1000)]
    resolution: usize,
    /// Training recipe: this project's robust default, or the seed post as written.
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    preset: Preset,
    /// Training engine: `auto` picks the fastest that can train the models (the native engine), or name one.
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    engine: Engine,
    /// Replace an existing --out (the run is built as `<out>.partial` and moved into place when
    /// complete; a non-empty --out is refused without this).
    #[arg(long)]
    force: bool,
    /// Samples in the fresh evaluation draw.
    #[arg(long, default_value_t = 10_000)]
    test_size: usize,
}

pub fn run(args: Args) -> Result<()> {
    let options = DemoOptions {
        seed: args.seed,
        resolution: args.resolution,
        preset: args.preset,
        engine: args.engine,
        test_size: args.test_size,
    };
    let staging = gmu::io::output::Staging::new(&args.out, "demo", args.force).map_err(super::flags)?;
    let report = run_demo(&options, staging.path(), &super::device(), &mut |line| super::stage(line))?;
    staging.finish()?;
    println!(
        "preset {}, seed {}, {} training samples, fresh draw of {}",
        report.preset, report.seed, report.n_train, report.n_test
    );
    println!(
        "{:<6} {:>9} {:>10} {:>10} {:>11} {:>10}",
        "model", "accuracy", "train acc", "corr(M,z)", "final loss", "train ms"
    );
    for (name, m) in [("GMU", &report.gmu), ("FF", &report.ff)] {
        let corr = m.corr_m_z.map_or("-".to_string(), |c| format!("{c:.4}"));
        println!(
            "{name:<6} {:>9.4} {:>10.4} {corr:>10} {:>11.4} {:>10.1}",
            m.accuracy, m.train_accuracy, m.final_loss, m.train_ms
        );
    }
    println!("mesh {0}×{0} scored in {1:.1} ms", report.resolution, report.mesh_ms);
    println!("wrote {}/{{gate_map.png, prediction_map.png, loss.png, metrics.json, gmu/, ff/}}", args.out.display());
    Ok(())
}
