use std::path::PathBuf;

use anyhow::Result;
use gmu::data::table::read_csv;
use gmu::experiment::Predictor;
use gmu::train;

/// Arguments of `gmu eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model directory written by `gmu train` or `gmu demo`.
    #[arg(long)]
    model: PathBuf,
    /// CSV to score (`v0..,t0..,c[,m]`).
    #[arg(long)]
    data: PathBuf,
    /// Also write one line per sample (`p_c1,z,predicted,c`) to this CSV.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Print the scores as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (saved, net) = train::load(&args.model)?;
    let data = read_csv(&args.data)?;
    let spec = net.spec().clone();
    if spec.d_v != data.dim || spec.d_t != data.dim {
        anyhow::bail!("{}: the model expects {} + {} inputs, the file has {} + {}", args.data.display(), spec.d_v, spec.d_t, data.dim, data.dim);
    }
    let predictor = Predictor { net, scaler: saved.scaler, loss: saved.training.loss };
    let eval = predictor.evaluate(&data);
    if let Some(path) = &args.predictions {
        let (prob, gate) = predictor.predict(&data.joined());
        let mut out = String::from("p_c1,z,predicted,c\n");
        for i in 0..data.len() {
            out.push_str(&format!("{},{},{},{}\n", prob[i], gate[i], u8::from(prob[i] > 0.5), data.c[i]));
        }
        gmu::error::write_atomic(path, out.as_bytes())?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&eval)?);
    } else {
        print!("{}: accuracy {:.4} on {} samples", spec.kind, eval.accuracy, data.len());
        match eval.corr_m_z {
            Some(c) => println!(", corr(M,z) {c:.4}"),
            None => println!(),
        }
    }
    Ok(())
}
