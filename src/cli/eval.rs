use std::path::PathBuf;

use anyhow::Result;
use gmu::data::table::read_csv;
use gmu::experiment::Predictor;

/// Arguments of `gmu eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    input: super::ModelAndData,
    /// Also write one line per sample (`p_c1,z,predicted,c`) to this CSV.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Print the scores as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let predictor = Predictor::load(&args.input.model, &super::device())?;
    let data = read_csv(&args.input.data)?;
    predictor.check_inputs(&data, &args.input.data)?;
    let kind = predictor.net.spec().kind;
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
        print!("{kind}: accuracy {:.4} on {} samples", eval.accuracy, data.len());
        match eval.corr_m_z {
            Some(c) => println!(", corr(M,z) {c:.4}"),
            None => println!(),
        }
    }
    Ok(())
}
