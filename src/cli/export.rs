use std::path::PathBuf;

use anyhow::{Result, bail};
use gmu::predict::Model;

/// The formats `gmu export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ONNX (opset 17): one input per view, named as the view; outputs
    /// `probabilities` and, for gated models, `gates`.
    Onnx,
}

/// Arguments of `gmu export`.
#[derive(clap::Args, Debug)]
#[command(after_help = "The graph takes raw features (the model's scaling is inside it) and assumes every view is \
present: missing views, imputation, contribution shares and occlusion importance stay with `gmu predict`. \
Feature-view models of every built-in fusion method export; avg-probs exports its members and the mean of their \
probabilities. Models with a trainable picture CNN or text LSTM do not export yet.")]
pub struct Args {
    /// The model directory (from any training command).
    #[arg(long)]
    model: PathBuf,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Onnx)]
    format: Format,
    /// The file to write (e.g. model.onnx); written whole or not at all.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    if gmu::error::resolved(&args.out).starts_with(gmu::error::resolved(&args.model)) {
        bail!("invalid --out: {} is inside the model directory; write the export elsewhere", args.out.display());
    }
    let model = Model::load(&args.model, &super::device())?;
    match args.format {
        Format::Onnx => gmu::export::write_onnx(&model, &args.out)?,
    }
    let c = &model.config;
    let inputs: Vec<String> = c.views.iter().map(|v| format!("{} [batch, {}]", v.name, v.width)).collect();
    let gated = c.members.len() == 1 && model.nets()[0].has_gates();
    println!(
        "wrote {} (ONNX opset {}, {}): inputs {}; outputs probabilities [batch, {}]{}",
        args.out.display(),
        gmu::export::OPSET,
        c.method,
        inputs.join(", "),
        c.outputs.len(),
        if gated { format!(", gates [batch, {}, ·]", c.views.len()) } else { String::new() }
    );
    Ok(())
}
