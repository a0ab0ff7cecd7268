use std::path::PathBuf;

use anyhow::Result;
use gmu::data::table::read_csv;
use gmu::experiment::{Predictor, draw_maps};

/// Arguments of `gmu plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    input: super::ModelAndData,
    /// Output directory for gate_map.png (GMU only) and prediction_map.png.
    #[arg(long)]
    out: PathBuf,
    /// Mesh points per axis (2..=4000).
    #[arg(long, default_value_t = 1000)]
    resolution: usize,
}

pub fn run(args: Args) -> Result<()> {
    let predictor = Predictor::load(&args.input.model, &super::device())?;
    let data = read_csv(&args.input.data)?;
    predictor.check_inputs(&data, &args.input.data)?;
    draw_maps(&predictor, &data, args.resolution, &args.out)?;
    println!("wrote the maps to {}", args.out.display());
    Ok(())
}
