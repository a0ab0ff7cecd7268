use std::path::PathBuf;

use anyhow::{Result, bail};
use gmu::data::table::read_csv;
use gmu::experiment::{Predictor, mesh};
use gmu::model::ModelKind;
use gmu::plot::{Colormap, MeshMap, mesh_map};
use gmu::train;

/// Arguments of `gmu plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model directory written by `gmu train` or `gmu demo`.
    #[arg(long)]
    model: PathBuf,
    /// CSV whose points are drawn and whose range the mesh covers (scalar modalities only).
    #[arg(long)]
    data: PathBuf,
    /// Output directory for gate_map.png (GMU only) and prediction_map.png.
    #[arg(long)]
    out: PathBuf,
    /// Mesh points per axis (2..=4000).
    #[arg(long, default_value_t = 1000)]
    resolution: usize,
}

pub fn run(args: Args) -> Result<()> {
    if !(2..=4000).contains(&args.resolution) {
        bail!("invalid --resolution: expected 2..=4000 mesh points per axis, got {}", args.resolution);
    }
    let (saved, net) = train::load(&args.model)?;
    let data = read_csv(&args.data)?;
    if data.dim != 1 || net.spec().d_v != 1 {
        bail!("{}: maps are drawn over two scalar modalities; this file has dimension {}", args.data.display(), data.dim);
    }
    let kind = net.spec().kind;
    let predictor = Predictor { net, scaler: saved.scaler, loss: saved.training.loss };
    let (x_range, y_range, points) = mesh(&data, args.resolution);
    let (prob, gate) = predictor.predict(&points);
    std::fs::create_dir_all(&args.out)?;
    let dots: Vec<(f32, f32, u8)> = (0..data.len()).map(|i| (data.x_v[i], data.x_t[i], data.c[i])).collect();
    let map = MeshMap {
        title: "prediction P(C = 1)",
        values: &prob,
        resolution: args.resolution,
        x_range,
        y_range,
        x_label: "visual modality x_v",
        y_label: "textual modality x_t",
        points: &dots,
        colormap: Colormap::BlueWhiteRed,
        bar_labels: ["C = 0", "C = 1"],
    };
    mesh_map(&args.out.join("prediction_map.png"), &map)?;
    if kind == ModelKind::Gmu {
        let gate_map = MeshMap {
            title: "which modality the GMU attends (gate z)",
            values: &gate,
            colormap: Colormap::Gray,
            bar_labels: ["x_t is important", "x_v is important"],
            ..map
        };
        mesh_map(&args.out.join("gate_map.png"), &gate_map)?;
    }
    println!("wrote {}/prediction_map.png{}", args.out.display(), if kind == ModelKind::Gmu { " and gate_map.png" } else { "" });
    Ok(())
}
