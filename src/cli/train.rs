use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gmu::data::table::read_csv;
use gmu::experiment::Predictor;
use gmu::model::ModelKind;
use gmu::native::LossKind;
use gmu::train::{self, Engine, Preset, Scaling};

/// Arguments of `gmu train`. Unset flags take the preset's values.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training CSV (`v0..,t0..,c[,m]`, as `gmu synth` writes).
    #[arg(long)]
    data: PathBuf,
    /// Which classifier.
    #[arg(long, value_enum, default_value_t = ModelKind::Gmu)]
    model: ModelKind,
    /// Directory for config.json and model.safetensors.
    #[arg(long)]
    out: PathBuf,
    /// The modalities to fuse, as the CSV's column prefixes (`v` = v0.., `t` = t0..).
    #[arg(long, value_delimiter = ',', default_value = "v,t")]
    modalities: Vec<String>,
    /// Recipe the other flags start from.
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    preset: Preset,
    /// Hidden width (GMU units or FF hidden units).
    #[arg(long)]
    hidden: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f32>,
    /// Adam steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Minibatch size (default: full batch).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Independent initialisations; the lowest final training loss is kept.
    #[arg(long)]
    restarts: Option<usize>,
    /// Input scaling.
    #[arg(long, value_enum)]
    scaling: Option<Scaling>,
    /// Loss.
    #[arg(long, value_enum)]
    loss: Option<LossKind>,
    /// Drop the bias terms (the paper's equations).
    #[arg(long)]
    no_bias: bool,
    /// Training engine.
    #[arg(long, value_enum)]
    engine: Option<Engine>,
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
    let mut config = args.preset.config(args.model, data.dim, args.seed);
    if let Some(h) = args.hidden {
        config.model.hidden = h;
    }
    if let Some(lr) = args.lr {
        config.optimizer.lr = lr;
    }
    config.steps = args.steps.unwrap_or(config.steps);
    config.batch_size = args.batch_size.or(config.batch_size);
    config.restarts = args.restarts.unwrap_or(config.restarts);
    config.scaling = args.scaling.unwrap_or(config.scaling);
    config.loss = args.loss.unwrap_or(config.loss);
    config.engine = args.engine.unwrap_or(config.engine);
    config.model.bias = !args.no_bias;
    config.validate()?;
    super::stage(&format!("training {} on {} samples ({} restarts × {} steps)", args.model, data.len(), config.restarts, config.steps));
    let model = train::train(&config, &data)?;
    train::save(&model, &args.out).with_context(|| format!("saving the model to {}", args.out.display()))?;
    let eval = Predictor::from(&model).evaluate(&data);
    println!(
        "{}: final loss {:.4}, train accuracy {:.4}{}, {:.1} ms",
        args.model,
        model.history.last().copied().unwrap_or(f32::NAN),
        eval.accuracy,
        eval.corr_m_z.map_or(String::new(), |c| format!(", corr(M,z) {c:.4}")),
        model.train_ms
    );
    println!("wrote {}/{{config.json, model.safetensors}}", args.out.display());
    Ok(())
}
