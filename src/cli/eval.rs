use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gmu::data::DataSource;
use gmu::data::table::read_csv;
use gmu::experiments::synthetic::NativeScorer;

/// Arguments of `gmu eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    input: super::ModelAndData,
    /// Also write one line per sample (`p_c1,z,predicted,c`) to this CSV (synthetic data;
    /// `gmu predict` writes per-sample output for every source).
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Print the scores as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let source = args.input.data.source(None)?;
    if let Some(out) = &args.predictions
        && let Some(input) = super::overwritten_input(out, &args.input.model, &source)
    {
        bail!("invalid --predictions: {} is the input data ({}); choose another file", out.display(), input.display());
    }
    let DataSource::Synthetic { path } = &source else {
        return eval_any(&args, &source);
    };
    let predictor = NativeScorer::load(&args.input.model, &super::device())?;
    let data = read_csv(path)?;
    predictor.check_inputs(&data, path)?;
    let kind = predictor.net.spec().kind;
    let eval = predictor.evaluate(&data);
    if let Some(out) = &args.predictions {
        let (prob, gate) = predictor.predict(&data.joined());
        let mut text = String::from("p_c1,z,predicted,c\n");
        for i in 0..data.len() {
            text.push_str(&format!("{},{},{},{}\n", prob[i], gate[i], u8::from(prob[i] > 0.5), data.c[i]));
        }
        gmu::error::write_atomic(out, text.as_bytes())?;
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

/// Any model on any labelled source: the scores `predict` prints, on every row.
fn eval_any(args: &Args, source: &DataSource) -> Result<()> {
    if args.predictions.is_some() {
        bail!(
            "invalid --predictions: per-sample output for {} comes from `gmu predict --model ... --out FILE`",
            source.name()
        );
    }
    let predictor = gmu::predict::Model::load(&args.input.model, &super::device())?;
    let mut data = source.load(&super::encoding_device())?.labelled("eval").map_err(super::flags)?;
    if let DataSource::Files { files, .. } = source {
        super::name_views_by_order(&predictor.config, &mut data.views, files);
    }
    let views = predictor.select_views(&data.views).map_err(super::flags).with_context(|| source.name())?;
    let rows: Vec<usize> = (0..data.len()).collect();
    // The labels are matched to the model's outputs by name: a label file with
    // fewer classes, or in another order, scores right; an unknown one is an error.
    let targets = super::predict::in_model_outputs(&data.targets, &predictor.config.outputs, predictor.config.task)
        .with_context(|| format!("the labels of {}", source.name()))?;
    let p = predictor.predict_as_trained(&views, &rows, false)?;
    let eval = gmu::predict::score(&targets, &rows, &p.probs, predictor.config.threshold);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&eval)?);
    } else {
        println!(
            "{}: accuracy {:.4}, macro-F1 {:.4}, micro-F1 {:.4} on {} samples of {}",
            predictor.config.method,
            eval.accuracy,
            eval.f1.macro_,
            eval.f1.micro,
            rows.len(),
            source.name()
        );
    }
    Ok(())
}
