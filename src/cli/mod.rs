//! One module per subcommand; this file holds the command enum and the error
//! handling shared by all of them.
//!
//! The top of the crate (see `ARCHITECTURE.md`): the only place that knows flag
//! names and picks the device; everything it runs is in the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod encode;
mod encoders;
mod eval;
mod export;
mod mmimdb;
mod multiview;
mod plot;
mod predict;
mod protocol;
mod robustness;
mod serve;
mod synth;
mod train;

/// Gated Multimodal Units: layer, synthetic experiment and baselines.
#[derive(Parser, Debug)]
#[command(name = "gmu", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Device to run on: the CPU (gmu's own engines where they apply, burn elsewhere) or a GPU
    /// through wgpu (a build with `--features wgpu`; every model then trains on burn).
    #[arg(long, global = true, value_enum, default_value_t = gmu::device::DeviceKind::Cpu)]
    device: gmu::device::DeviceKind,
}

/// The device `--device` chose, set once at start.
static DEVICE: std::sync::OnceLock<burn::tensor::Device> = std::sync::OnceLock::new();

#[derive(Subcommand, Debug)]
enum Command {
    /// The seed post's experiment end to end: data, GMU and FF training, maps, metrics.
    Demo(demo::Args),
    /// Write a CSV of synthetic two-modality data.
    Synth(synth::Args),
    /// Train a GMU, feed-forward or logistic-regression classifier on a CSV.
    Train(train::Args),
    /// Score a trained model on a CSV (accuracy, corr(M, z)).
    Eval(eval::Args),
    /// Draw the gate map and prediction map of a trained model over a CSV's range.
    Plot(plot::Args),
    /// The paper's protocol: GMU against logistic regression over many seeds.
    Protocol(protocol::Args),
    /// Every fusion method of the paper on real multi-view data (mfeat, Twemoji or your files).
    Multiview(multiview::Args),
    /// Run a trained model on new data: probabilities, gates, each view's share and importance.
    Predict(predict::Args),
    /// Score every model of a multiview/mmimdb run with Gaussian noise on one view at a time.
    Robustness(robustness::Args),
    /// The paper's MM-IMDb experiment: Table 2, Table 3 and Fig. 8 from multimodal_imdb.hdf5.
    Mmimdb(mmimdb::Args),
    /// Fetch (`fetch`) or show (`list`) the pretrained text and image encoders.
    Encoders(encoders::Args),
    /// Encode a CSV column of texts or image paths into a feature file (.npy) with a pretrained encoder.
    Encode(encode::Args),
    /// Write a trained model in another format: ONNX, for onnxruntime and other runtimes.
    Export(export::Args),
    /// Serve trained models over HTTP: the Open Inference Protocol (KServe v2) and a web page.
    Serve(serve::Args),
}

/// Parses the arguments, runs the subcommand, prints any error on one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = gmu::cpu::kernels::simd_level_from_env().and(gmu::cpu::bf16::EncoderPrecision::from_env()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match cli.device.device() {
        Ok(device) => {
            let _ = DEVICE.set(device);
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e.into()));
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Protocol(args) => protocol::run(args),
        Command::Multiview(args) => multiview::run(args),
        Command::Mmimdb(args) => mmimdb::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Robustness(args) => robustness::run(args),
        Command::Encoders(args) => encoders::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Export(args) => export::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The training recipe flags shared by `train` and `protocol`: a preset and
/// optional changes to it.
#[derive(clap::Args, Debug, Clone)]
pub struct RecipeArgs {
    /// Recipe the other flags start from: this project's robust default, or the seed post as written.
    #[arg(long, value_enum, default_value_t = gmu::config::Preset::Default)]
    pub preset: gmu::config::Preset,
    /// Hidden width (GMU units or FF hidden units).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Adam steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Minibatch size (default: full batch).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Independent initialisations; the one with the lowest final training loss is kept.
    #[arg(long)]
    pub restarts: Option<usize>,
    /// Input scaling.
    #[arg(long, value_enum)]
    pub scaling: Option<gmu::data::Scaling>,
    /// Loss.
    #[arg(long, value_enum)]
    pub loss: Option<gmu::engine::native::LossKind>,
    /// Drop the bias terms (the paper's bias-free equations).
    #[arg(long)]
    pub no_bias: bool,
    /// Training engine: `auto` picks the fastest that can train the model (native here), or name one.
    #[arg(long, value_enum)]
    pub engine: Option<gmu::engine::Engine>,
}

impl RecipeArgs {
    /// The flags as library overrides.
    pub fn overrides(&self) -> gmu::config::Overrides {
        gmu::config::Overrides {
            hidden: self.hidden,
            lr: self.lr,
            steps: self.steps,
            batch_size: self.batch_size,
            restarts: self.restarts,
            scaling: self.scaling,
            loss: self.loss,
            bias: self.no_bias.then_some(false),
            engine: self.engine,
        }
    }
}

/// Imputation of partly missing rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Impute {
    /// The column's training mean (scikit-learn's `SimpleImputer(strategy="mean")`).
    Mean,
}

/// The training flags shared by `multiview` and `mmimdb`; the two commands
/// differ only in their default hidden width and batch size.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainingArgs {
    /// Classifier on the GMU's fused vector: the paper's maxout MLP, or one linear layer
    /// (the plain GMU classifier; trained by the fast dense GEMM engine).
    #[arg(long, value_enum, default_value_t = gmu::fusion::HeadKind::Maxout)]
    pub head: gmu::fusion::HeadKind,
    /// Training engine: `auto` picks the fastest that can train each model (the dense GEMM engine
    /// for GMU with --head linear, the maxout engine for the paper's maxout-MLP models on feature
    /// views, the cnn engine for models with a picture CNN, burn's autodiff for the mixtures of
    /// experts on feature views and LSTM encoders), or name one.
    #[arg(long, value_enum, default_value_t = gmu::engine::Engine::Auto)]
    pub engine: gmu::engine::Engine,
    /// Hidden width (GMU and maxout units) [default: 128 for multiview, 512 for mmimdb].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Dropout after each maxout layer.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Max-norm limit on every weight column (0: none).
    #[arg(long, default_value_t = 10.0)]
    pub max_norm: f32,
    /// Minibatch size [default: 64 for multiview, 128 for mmimdb].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Multilabel tasks: a label is predicted when its probability reaches this threshold.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Most epochs per model.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Early stopping: epochs without a better dev macro-F1.
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Which epoch's weights to keep: `best`, the best dev macro-F1 (early stopping after
    /// --patience epochs without a better one), or `last`, after all --epochs (no early
    /// stopping; for --gate-supervision, whose gate learns after dev macro-F1 has peaked).
    #[arg(long, value_enum, default_value_t = gmu::config::Keep::Best)]
    pub keep: gmu::config::Keep,
    /// Random-search trials per method over the paper's ranges (1: the flags as given).
    #[arg(long, default_value_t = 1)]
    pub trials: usize,
    /// GMU: a hidden tanh layer of N units in the gate network (0: the paper's linear gate), so
    /// the gate can tell a corrupted view (at its mean, noisy, swapped) from a clean one.
    #[arg(long, default_value_t = 0)]
    pub gate_hidden: usize,
    /// GMU: each unit of the hidden gate layer reads one view only (needs --gate-hidden N with N at
    /// least the number of views), so the gate can tell which view is noisy or blank.
    #[arg(long)]
    pub gate_per_view: bool,
    /// Modality dropout: each training sample loses each view with this probability (never all),
    /// so the model learns to predict with views missing.
    #[arg(long, default_value_t = 0.0)]
    pub modality_dropout: f64,
    /// Corrupted views: each training sample, with this probability, gets one of its views
    /// (drawn uniformly; never its only one) corrupted as --noise-kind says, fresh every epoch and
    /// the same for every method, so the gate can learn to turn away from a broken view. The noise
    /// regularises as dropout does: on a small data set, try a lower --dropout with it.
    #[arg(long, default_value_t = 0.0)]
    pub view_noise: f64,
    /// How --view-noise corrupts a view: Gaussian noise on the standardised inputs, swapped with
    /// another training sample's view, zero (the training mean), or one of the three per sample.
    #[arg(long, value_enum, default_value_t = gmu::config::NoiseKind::Mixed)]
    pub noise_kind: gmu::config::NoiseKind,
    /// The range the Gaussian noise's σ is drawn from, uniformly: LO,HI. σ is in standard
    /// deviations of each column, or, on a view that training leaves unscaled (Twemoji's unit-length
    /// hashed names), of the view's columns taken together (their root mean square).
    #[arg(long, value_delimiter = ',', default_values_t = [0.5f32, 4.0])]
    pub noise_sigma: Vec<f32>,
    /// With --view-noise, the weight of a loss term that teaches a gated model's gate to close on
    /// the view a training sample had corrupted (−ln(1 − z) of that view's gates, summed over the
    /// units; 0: off, the gate is left to the task loss alone). With --gate-per-view, only views
    /// under Gaussian noise count: a swapped or zeroed view looks clean to a unit that reads one
    /// view. The gate learns after the task: use --keep last. Trained by burn's autodiff.
    #[arg(long, default_value_t = 0.0)]
    pub gate_supervision: f32,
    /// With --gate-supervision, the weight of its other side: −ln z of the gates of the views a
    /// training sample has clean (0: none). Without it, a view whose noise its gate cannot tell
    /// (Twemoji's hashed names) has its gate closed on every row, and sigmoid gates over more than
    /// two views all close; with it they stay open on clean rows. It also pulls the two-view gate
    /// (z, 1 − z) of a clean row towards 0.5. Try 0.1, with --gate-supervision 0.1 on Twemoji.
    #[arg(long, default_value_t = 0.0)]
    pub gate_supervision_clean: f32,
    /// How to treat a row that is only partly missing (empty or NaN cells): `mean` fills each
    /// missing cell with the column's training mean; without it such a row is an error.
    #[arg(long, value_enum)]
    pub impute: Option<Impute>,
    /// Seed of the initialisation, dropout and batch order (and of the split, where the command makes one).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl TrainingArgs {
    /// The flags as a validated [`TrainingConfig`](gmu::config::TrainingConfig) of
    /// the paper's model, with the command's own defaults for the hidden width and
    /// the batch size.
    pub fn config(&self, hidden: usize, batch_size: usize) -> gmu::Result<gmu::config::TrainingConfig> {
        gmu::config::EpochOptions {
            head: self.head,
            engine: self.engine,
            hidden: self.hidden.unwrap_or(hidden),
            lr: self.lr,
            dropout: self.dropout,
            max_norm: self.max_norm,
            batch_size: self.batch_size.unwrap_or(batch_size),
            threshold: self.threshold,
            epochs: self.epochs,
            patience: self.patience,
            modality_dropout: self.modality_dropout,
            gate_hidden: self.gate_hidden,
            gate_per_view: self.gate_per_view,
            view_noise: self.view_noise,
            gate_supervision: self.gate_supervision,
            gate_supervision_clean: self.gate_supervision_clean,
            keep: self.keep,
            noise_kind: self.noise_kind,
            noise_sigma: match self.noise_sigma[..] {
                [lo, hi] => [lo, hi],
                _ => return Err(gmu::GmuError::invalid("noise_sigma", "expected two numbers, LO,HI (e.g. 0.5,4)")),
            },
            impute: self.impute == Some(Impute::Mean),
            seed: self.seed,
            ..gmu::config::EpochOptions::default()
        }
        .config()
    }
}

/// Where the data come from (`multiview`, `predict`): a named data set, a
/// file, or one file per view with their labels.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Data: `mfeat` (embedded: six views of 2000 handwritten digits), `twemoji` (embedded:
    /// a 32×32 picture and a hashed name, 9 categories), `files` (`--files`, with `--labels` or
    /// `--label-column`), a synthetic CSV (`v0..,t0..,c`), or MM-IMDb's `.hdf5` (its own split)
    /// [default: files when --files is given; multiview: mfeat].
    #[arg(long)]
    pub data: Option<String>,
    /// One CSV (header row) or NPY file per view, comma-separated; a view is named after its
    /// file's stem. An empty or all-NaN row marks that sample's view as missing.
    #[arg(long, value_delimiter = ',')]
    pub files: Vec<PathBuf>,
    /// With `--files`: a label file (one column of labels or `|`-separated label sets, a
    /// multi-hot CSV, or an NPY array).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// With `--files`: the column of the view files that holds the label (`last` for the last one).
    #[arg(long)]
    pub label_column: Option<String>,
}

impl DataArgs {
    /// The data source the flags name; `default` when neither `--data` nor `--files` is given.
    pub fn source(&self, default: Option<&str>) -> anyhow::Result<gmu::data::DataSource> {
        let data = match (&self.data, self.files.is_empty(), default) {
            (Some(d), _, _) => d.clone(),
            (None, false, _) => "files".into(),
            (None, true, Some(d)) => d.into(),
            (None, true, None) => {
                anyhow::bail!("give the data: --files VIEW1,VIEW2,... or --data mfeat|twemoji|FILE.csv|FILE.hdf5")
            }
        };
        gmu::data::DataSource::parse(&data, self.files.clone(), self.labels.clone(), self.label_column.clone())
            .map_err(flags)
    }
}

/// A trained model and the data to apply it to (`eval`, `plot`).
#[derive(clap::Args, Debug)]
pub struct ModelAndData {
    /// A model directory (`eval`: any command's; `plot`: a synthetic-experiment classifier's).
    #[arg(long)]
    pub model: std::path::PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

/// The device every command runs on (`--device`; the CPU backend this
/// binary was built with by default). The library never picks one itself.
pub fn device() -> burn::tensor::Device {
    DEVICE.get().cloned().unwrap_or_else(gmu::device::cpu)
}

/// The device raw inputs are encoded on when a data source is read (MM-IMDb's
/// archive, Twemoji's names through a pretrained encoder): the CPU, where
/// gmu's encoders run fastest (`BENCHMARKS.md`), whatever `--device` says.
pub fn encoding_device() -> burn::tensor::Device {
    gmu::device::cpu()
}

/// The flag that sets the library's parameter `name` (`hidden` → `--hidden`).
fn flag(name: &str) -> String {
    match name {
        "max_epochs" => "--epochs".into(),
        "dev/test" => "--dev/--test".into(),
        "view_paths" => "--files".into(),
        "d_inputs" => "--modalities".into(),
        // The data's views, not a flag.
        "views" | "weights" | "panels" | "shares" | "encoders" | "classes" => name.into(),
        other if other.starts_with("--") => other.into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// A library error, with an invalid parameter shown as the CLI flag that sets it:
/// `invalid hidden: …` becomes `invalid --hidden: …`.
pub fn flags(e: gmu::GmuError) -> anyhow::Error {
    match e {
        gmu::GmuError::InvalidParameter { name, message } => anyhow::anyhow!("invalid {}: {message}", flag(name)),
        other => other.into(),
    }
}

/// The error as one line, `{:#}` style (each context, then the cause), with
/// the library's parameter names shown as the flags that set them.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<gmu::GmuError>() {
            Some(gmu::GmuError::InvalidParameter { name, message }) => format!("invalid {}: {message}", flag(name)),
            _ => cause.to_string(),
        };
        // A cause its parent already printed (an I/O error inside a file error) is said once.
        if parts.last().is_some_and(|p| p.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ").lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Fails now, before any work, when `path` (a file or folder a command will
/// write) cannot be written: the nearest existing folder on its way gets a
/// probe file, created and removed at once, so nothing is left behind.
fn check_writable(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    let mut at = path;
    let dir = loop {
        if at.is_dir() {
            break at;
        }
        if at.exists() {
            if at != path {
                anyhow::bail!(
                    "invalid {flag}: cannot write {}: {} is a file, not a folder",
                    path.display(),
                    at.display()
                );
            }
            // An existing file: written over (atomically) in its folder.
            at = at.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            continue;
        }
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break std::path::Path::new("."),
        }
    };
    let probe = dir.join(format!(".gmu-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => {
            anyhow::bail!("invalid {flag}: cannot write {} ({} is not writable: {e})", path.display(), dir.display())
        }
    }
}

/// The input a command reads that writing `out` would overwrite: the model
/// directory's `config.json` or a file the data source reads.
fn overwritten_input(
    out: &std::path::Path,
    model: &std::path::Path,
    source: &gmu::data::DataSource,
) -> Option<std::path::PathBuf> {
    std::iter::once(model.join(gmu::store::CONFIG_FILE)).chain(source.paths()).find(|i| gmu::error::same_file(out, i))
}

/// A flag's parser that accepts (and lists in `--help`) only the encoders of
/// `modality`: a text flag never offers an image encoder.
fn encoder_of(
    modality: gmu::encoders::Modality,
) -> impl clap::builder::TypedValueParser<Value = gmu::encoders::EncoderKind> {
    use clap::ValueEnum;
    let kinds: Vec<gmu::encoders::EncoderKind> = gmu::encoders::EncoderKind::value_variants()
        .iter()
        .copied()
        .filter(|k| k.modality() == modality && k.to_possible_value().is_some())
        .collect();
    let values: Vec<clap::builder::PossibleValue> = kinds.iter().filter_map(|k| k.to_possible_value()).collect();
    clap::builder::TypedValueParser::map(clap::builder::PossibleValuesParser::new(values), |name: String| {
        gmu::encoders::EncoderKind::from_str(&name, false).expect("a listed value")
    })
}

/// Refuses an output (`flag`) that is one of the files the command reads
/// (`inputs`) or lies inside the model directory it loads: no command writes
/// over its own inputs or its model.
fn refuse_writing_over(
    flag: &str,
    out: &std::path::Path,
    model: Option<&std::path::Path>,
    inputs: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    if let Some(input) = inputs.iter().find(|i| gmu::error::same_file(out, i)) {
        anyhow::bail!(
            "invalid {flag} {}: it is an input of this command ({}); choose another output file",
            out.display(),
            input.display()
        );
    }
    if let Some(model) = model
        && gmu::error::resolved(out).starts_with(gmu::error::resolved(model))
    {
        anyhow::bail!(
            "invalid {flag} {}: it is inside the model directory {}; choose another output file",
            out.display(),
            model.display()
        );
    }
    Ok(())
}

/// Where none of the given views (name, width) is one the model reads by
/// name, but there are as many as the model's and their widths match its
/// views' in order, the model's names in that order (so `new_a.csv,new_b.csv`
/// feed a model trained on `a.csv,b.csv`); each pairing is printed. `None`
/// where the names match (or cannot be paired).
fn views_by_order(
    model: &gmu::store::ModelConfig,
    given: &[(String, usize)],
    files: &[std::path::PathBuf],
) -> Option<Vec<String>> {
    let wanted = &model.views;
    let any_named = given.iter().any(|(n, _)| wanted.iter().any(|w| &w.name == n));
    let fits = given.len() == wanted.len() && given.iter().zip(wanted).all(|((_, d), w)| *d == w.width);
    if any_named || !fits {
        return None;
    }
    for ((_, _), (w, f)) in given.iter().zip(wanted.iter().zip(files)) {
        stage(&format!("view '{}' ← {} (by order: no file is named after a view of the model)", w.name, f.display()));
    }
    Some(wanted.iter().map(|w| w.name.clone()).collect())
}

/// [`views_by_order`] on loaded views: renames them in place.
fn name_views_by_order(model: &gmu::store::ModelConfig, views: &mut [gmu::data::View], files: &[std::path::PathBuf]) {
    let given: Vec<(String, usize)> = views.iter().map(|v| (v.name.clone(), v.dim)).collect();
    if let Some(order) = views_by_order(model, &given, files) {
        for (v, n) in views.iter_mut().zip(order) {
            v.name = n;
        }
    }
}

/// The output folder of a long run: started afresh, or (`resume`) continued
/// from what a killed run of the same flags left. The flags are recorded
/// without `--resume` and `--force`, which do not change the result.
fn staging(
    target: &std::path::Path,
    command: &str,
    force: bool,
    resume: bool,
) -> gmu::Result<gmu::io::output::Staging> {
    let args: Vec<String> = std::env::args().skip(2).filter(|a| a != "--resume" && a != "--force").collect();
    if resume {
        gmu::io::output::Staging::resume(target, command, force, &args)
    } else {
        gmu::io::output::Staging::start(target, command, force, &args)
    }
}

/// Where `path`, written under a run's `<out>.partial`, will be once the run
/// is complete: what a printed path should say (the partial folder is gone by then).
fn final_path(staging: &gmu::io::output::Staging, path: &std::path::Path) -> std::path::PathBuf {
    path.strip_prefix(staging.path()).map_or_else(|_| path.to_path_buf(), |rest| staging.target().join(rest))
}

/// A stage line on stderr (progress for anything that takes a while).
fn stage(line: &str) {
    eprintln!("· {line}");
}

/// A comparison's progress on stderr (what [`compare`](gmu::experiments::comparison::compare)
/// reports): each epoch redrawn in place on a terminal; elsewhere one line per epoch that took a
/// second or more (MM-IMDb's take seconds; a run of many short epochs logs only its results).
/// Each finished method goes to `done`.
fn comparison_progress<'a>(
    done: impl Fn(&gmu::experiments::comparison::MethodResult) + Sync + 'a,
) -> impl Fn(gmu::experiments::comparison::Progress<'_>) + Sync + 'a {
    use gmu::experiments::comparison::Progress;
    let tty = std::io::stderr().is_terminal();
    move |progress| match progress {
        Progress::Epoch { method, member, log, timing } => {
            let line = epoch_line(method, member, log, timing);
            if tty {
                eprint!("\r\x1b[K· {line}");
            } else if timing.seconds >= 1.0 {
                eprintln!("· {line}");
            }
        }
        Progress::Method(result) => {
            if tty {
                eprint!("\r\x1b[K");
            }
            done(result);
        }
    }
}

/// One epoch's line: its loss and dev score, and where its time went (the training steps'
/// rate beside the whole epoch's: `bench/mmimdb_epoch.sh` reads both from here).
fn epoch_line(method: &str, member: usize, log: &gmu::store::EpochLog, t: &gmu::train::EpochTiming) -> String {
    let who = if member == 0 { method.to_string() } else { format!("{method} member {member}") };
    format!(
        "{who:<18} epoch {:>3}  loss {:.4}  dev macro-F1 {:.4}  {:.3} s ({:.0} samples/s): steps {:.3} s ({:.0} samples/s), dev pass {:.3} s, other {:.3} s",
        log.epoch,
        log.train_loss,
        log.dev_macro_f1,
        t.seconds,
        t.rows as f64 / t.seconds,
        t.steps,
        t.rows as f64 / t.steps,
        t.dev,
        (t.seconds - t.steps - t.dev).max(0.0),
    )
}

/// A counter on stderr: redrawn in place on a terminal, every tenth otherwise.
fn counter(label: &'static str) -> impl Fn(usize, usize) + Sync {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            eprint!("\r· {label} {done}/{total}");
            if done == total {
                eprintln!();
            }
        } else if done == total || done % (total / 10).max(1) == 0 {
            eprintln!("· {label} {done}/{total}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The epoch line by hand: 15,552 rows in 5 s is 3,110 samples/s, in the 4.5 s of steps
    /// 3,456; the 0.2 s left is the rest. `bench/mmimdb_epoch.sh` parses this shape.
    #[test]
    fn an_epoch_line_gives_both_rates_and_where_the_time_went() {
        let log = gmu::store::EpochLog { epoch: 3, train_loss: 0.23456, dev_macro_f1: 0.41204 };
        let t = gmu::train::EpochTiming { seconds: 5.0, steps: 4.5, dev: 0.3, rows: 15552 };
        assert_eq!(
            epoch_line("gmu", 0, &log, &t),
            "gmu                epoch   3  loss 0.2346  dev macro-F1 0.4120  5.000 s (3110 samples/s): \
             steps 4.500 s (3456 samples/s), dev pass 0.300 s, other 0.200 s"
        );
        assert!(epoch_line("avg-probs", 1, &log, &t).starts_with("avg-probs member 1 epoch   3"));
    }
}
