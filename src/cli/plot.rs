use std::path::PathBuf;

use anyhow::{Result, bail};
use gmu::data::DataSource;
use gmu::data::table::read_csv;
use gmu::experiments::synthetic::{NativeScorer, draw_maps};

/// Arguments of `gmu plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    input: super::ModelAndData,
    /// Output directory for gate_map.png (GMU only) and prediction_map.png (built as
    /// `<out>.partial`, moved into place when complete; a non-empty one needs --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    force: bool,
    /// Mesh points per axis (2..=4000).
    #[arg(long, default_value_t = 1000)]
    resolution: usize,
}

pub fn run(args: Args) -> Result<()> {
    let source = args.input.data.source(None)?;
    let DataSource::Synthetic { path } = &source else {
        bail!(
            "invalid --data: plot draws the gate and prediction maps over the synthetic data's two inputs \
             (a CSV of v0,t0,c); for {} the per-sample gates come from `gmu predict` and the per-class \
             charts from `gmu multiview`",
            source.name()
        );
    };
    let predictor = NativeScorer::load(&args.input.model, &super::device())?;
    let data = read_csv(path)?;
    predictor.check_inputs(&data, path)?;
    let staging = gmu::io::output::Staging::new(&args.out, "plot", args.force).map_err(super::flags)?;
    draw_maps(&predictor, &data, args.resolution, staging.path())?;
    println!("wrote the maps to {}", staging.finish()?.display());
    Ok(())
}
