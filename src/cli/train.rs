use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gmu::config::Schedule;
use gmu::cpu::LossKind;
use gmu::data::table::read_csv;
use gmu::data::{DataRecord, DataSource, SplitRecord};
use gmu::experiments::synthetic::NativeScorer;
use gmu::fusion::synthetic::ModelKind;
use gmu::train::synthetic;

/// Arguments of `gmu train`. Unset flags take the preset's values.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    data: super::DataArgs,
    /// Which classifier.
    #[arg(long, value_enum, default_value_t = ModelKind::Gmu)]
    model: ModelKind,
    /// Model directory to write (config.json and model-0.safetensors; built as `<out>.partial`
    /// and moved into place when complete; a non-empty one needs --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    force: bool,
    /// The two views to fuse, by name [default: `v,t` for a synthetic CSV, the data's views
    /// when there are two].
    #[arg(long, value_delimiter = ',')]
    modalities: Vec<String>,
    /// Share of the samples held out for the test score (data other than the synthetic CSV,
    /// which trains on every row; MM-IMDb keeps its own split).
    #[arg(long, default_value_t = 0.2)]
    test: f64,
    #[command(flatten)]
    recipe: super::RecipeArgs,
    /// A row with only some cells missing: `mean` fills them with the column's training mean
    /// (saved with the model, used by `predict --impute mean`); without it such a row is an error.
    #[arg(long, value_enum)]
    impute: Option<super::Impute>,
    /// Seed of the initialisation and batch order (and of the split, where this command makes one).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let source = args.data.source(None)?;
    super::check_writable(&args.out, "--out")?;
    gmu::io::output::Staging::check(&args.out, "train", args.force).map_err(super::flags)?;
    let config = args.recipe.overrides().apply(args.recipe.preset.config(args.model, args.seed));
    let device = super::device();
    let DataSource::Synthetic { path } = &source else {
        return train_on(&args, &source, config, &device);
    };
    if args.impute.is_some() {
        bail!("invalid --impute: the synthetic CSV has no missing cells to fill (it applies to other data)");
    }
    if !args.modalities.is_empty() && args.modalities != ["v", "t"] {
        bail!(
            "invalid --modalities: the synthetic CSV has the views v and t, got {:?} \
             (K > 2 GMUs train with `gmu multiview`; the layer is fusion::GmuConfig)",
            args.modalities.join(",")
        );
    }
    let data = read_csv(path)?;
    config.validate().map_err(super::flags)?;
    if let Schedule::Steps { steps, restarts, .. } = config.schedule {
        super::stage(&format!(
            "training {} on {} samples ({restarts} restarts × {steps} steps)",
            args.model,
            data.len()
        ));
    }
    let model = synthetic::train(&config, &data, &device).map_err(super::flags)?;
    let staging = gmu::io::output::Staging::new(&args.out, "train", args.force).map_err(super::flags)?;
    model.save(staging.path()).with_context(|| format!("saving the model to {}", args.out.display()))?;
    staging.finish()?;
    let eval = NativeScorer::new(&model)?.evaluate(&data);
    let member = &model.config.members[0];
    println!(
        "{}: final loss {:.4}, train accuracy {:.4}{}, {:.1} ms ({} engine)",
        args.model,
        member.step_losses.last().copied().unwrap_or(f32::NAN),
        eval.accuracy,
        eval.corr_m_z.map_or(String::new(), |c| format!(", corr(M,z) {c:.4}")),
        model.config.seconds * 1e3,
        member.engine.unwrap_or_default()
    );
    println!("wrote {}/{{config.json, model-0.safetensors}}", args.out.display());
    Ok(())
}

/// The synthetic experiment's classifier on any other labelled source: two of
/// its views, trained on the training rows, scored on the held-out ones.
fn train_on(
    args: &Args,
    source: &DataSource,
    mut config: gmu::config::TrainingConfig,
    device: &burn::tensor::Device,
) -> Result<()> {
    let loaded = source.load(&super::encoding_device())?;
    let own_split = loaded.split.clone();
    let data = loaded.labelled("train").map_err(super::flags)?;
    let names: Vec<String> = if args.modalities.is_empty() {
        data.views.iter().map(|v| v.name.clone()).collect()
    } else {
        args.modalities.clone()
    };
    if names.len() != 2 {
        let all: Vec<&str> = data.views.iter().map(|v| v.name.as_str()).collect();
        bail!(
            "invalid --modalities: the synthetic experiment's classifiers read two views; pick two of {}",
            all.join(", ")
        );
    }
    let modalities: Vec<usize> =
        names.iter().map(|n| data.view_index(n)).collect::<gmu::Result<_>>().map_err(super::flags)?;
    // The presets' softmax cross-entropy is for one class per sample; multilabel data take their own loss.
    if data.targets.is_multilabel() && args.recipe.loss.is_none() && config.loss == Some(LossKind::SoftmaxCe) {
        config.loss = None;
    }
    config.impute = args.impute == Some(super::Impute::Mean);
    if own_split.is_none() && args.test <= 0.0 {
        return Err(super::flags(gmu::GmuError::invalid(
            "test",
            format!("{} leaves no test rows; the scores are the test rows' (give a share above 0)", args.test),
        )));
    }
    let split = match &own_split {
        Some(split) => split.clone(),
        None => data.split(0.0, args.test, args.seed).map_err(super::flags)?,
    };
    super::stage(&format!(
        "training {} on {} of {} samples of {} ({})",
        args.model,
        split.train.len(),
        data.len(),
        source.name(),
        names.join("+")
    ));
    let mut model = gmu::train::train(&data, &modalities, &split, &config, device).map_err(super::flags)?;
    let (test, _) = model.evaluate(&data, &split.test, false)?;
    let record = DataRecord {
        source: source.clone(),
        split: own_split.is_none().then_some(SplitRecord { dev: 0.0, test: args.test, seed: args.seed }),
    };
    model.config.data = Some(record);
    model.config.results = serde_json::json!({ "test": test });
    let staging = gmu::io::output::Staging::new(&args.out, "train", args.force).map_err(super::flags)?;
    model.save(staging.path()).with_context(|| format!("saving the model to {}", args.out.display()))?;
    staging.finish()?;
    let member = &model.config.members[0];
    println!(
        "{}: final loss {:.4}; test ({} samples) accuracy {:.4}, macro-F1 {:.4}; {:.1} ms ({} engine)",
        args.model,
        member.step_losses.last().copied().unwrap_or(f32::NAN),
        split.test.len(),
        test.accuracy,
        test.f1.macro_,
        model.config.seconds * 1e3,
        member.engine.unwrap_or_default()
    );
    println!("wrote {}/{{config.json, model-0.safetensors}}", args.out.display());
    Ok(())
}
