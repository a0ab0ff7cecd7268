use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gmu::data::table::read_csv;
use gmu::experiment::Predictor;
use gmu::model::ModelKind;
use gmu::train;

/// Arguments of `gmu train`. Unset flags take the preset's values.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training CSV (`v0..,t0..,c[,m]`, as `gmu synth` writes).
    #[arg(long)]
    data: PathBuf,
    /// Which classifier.
    #[arg(long, value_enum, default_value_t = ModelKind::Gmu)]
    model: ModelKind,
    /// Model directory to write (config.json and model-0.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// The modalities to fuse, as the CSV's column prefixes (`v` = v0.., `t` = t0..).
    #[arg(long, value_delimiter = ',', default_value = "v,t")]
    modalities: Vec<String>,
    #[command(flatten)]
    recipe: super::RecipeArgs,
    /// Seed of the initialisation and batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    if args.modalities.len() < 2 && args.model == ModelKind::Gmu {
        bail!("invalid --modalities: a GMU fuses at least 2 modalities, got K = {}", args.modalities.len());
    }
    if args.modalities != ["v", "t"] {
        bail!(
            "invalid --modalities: this command trains two-modality models on `v` and `t` columns, got {:?} \
             (K > 2 GMUs are available in the library as fusion::GmuConfig)",
            args.modalities.join(",")
        );
    }
    let data = read_csv(&args.data)?;
    let config = args.recipe.overrides().apply(args.recipe.preset.config(args.model, args.seed));
    if let gmu::config::Schedule::Steps { steps, restarts, .. } = config.schedule {
        super::stage(&format!("training {} on {} samples ({restarts} restarts × {steps} steps)", args.model, data.len()));
    }
    let device = super::device();
    let model = train::train(&config, &data, &device)?;
    train::save(&model, &args.out).with_context(|| format!("saving the model to {}", args.out.display()))?;
    let eval = Predictor::from(&model).evaluate(&data);
    println!(
        "{}: final loss {:.4}, train accuracy {:.4}{}, {:.1} ms",
        args.model,
        model.history().last().copied().unwrap_or(f32::NAN),
        eval.accuracy,
        eval.corr_m_z.map_or(String::new(), |c| format!(", corr(M,z) {c:.4}")),
        model.train_ms()
    );
    println!("wrote {}/{{config.json, model-0.safetensors}}", args.out.display());
    Ok(())
}
