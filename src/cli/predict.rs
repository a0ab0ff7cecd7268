use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gmu::data::stream::ViewStream;
use gmu::data::{DataSource, Split, Targets, View};
use gmu::fusion::Task;
use gmu::predict::{BATCH, Model, Prediction, score};

/// Arguments of `gmu predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model directory written by any training command (`demo`, `train`, `multiview`, `mmimdb`).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: super::DataArgs,
    /// Only these rows: the split the model was trained with (`train`, `dev`, `test`), or `all`.
    #[arg(long, value_enum, default_value_t = Part::All)]
    split: Part,
    /// Output file (CSV, or JSON lines with --json) [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write JSON lines (one object per row, the same fields as the CSV columns; `predicted` is a list).
    #[arg(long)]
    json: bool,
    /// Multilabel models: predict each row's N most probable labels (instead of those past the threshold).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    top_k: Option<u64>,
    /// Multilabel models: a row with no label past the threshold gets its most probable one.
    #[arg(long, conflicts_with = "top_k")]
    at_least_one: bool,
    /// A row that is only partly missing: `mean` fills each missing cell with the column's
    /// training mean saved with the model; without it such a row is an error.
    #[arg(long, value_enum)]
    impute: Option<super::Impute>,
    /// Raw text for the model's text view: a model trained on encoded views (`gmu encode`,
    /// `mmimdb --archive`) runs the encoder it recorded. Without --image, the image view is missing.
    #[arg(long)]
    text: Option<String>,
    /// An image file (JPEG, PNG) for the model's image view; without --text, the text view is missing.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Raw inputs from --files CSVs: pass this column of the first CSV that has it through to
    /// the output, as `id`, beside `row`.
    #[arg(long)]
    id_column: Option<String>,
    /// Raw inputs: write a row in which every view is missing (an empty text, an unreadable
    /// image) as a blank row instead of refusing the batch.
    #[arg(long)]
    skip_empty_rows: bool,
    /// Raw inputs from --files CSVs (one per view of a model with encoders): the column holding texts.
    #[arg(long, default_value = "plot")]
    text_column: String,
    /// Raw inputs from --files CSVs: the column holding image paths (relative to the CSV's folder).
    #[arg(long, default_value = "path")]
    image_column: String,
}

/// Which rows to predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Every row.
    All,
    /// The training rows.
    Train,
    /// The model-selection rows.
    Dev,
    /// The held-out rows.
    Test,
}

pub fn run(args: Args) -> Result<()> {
    if args.id_column.is_some() && (args.data.files.is_empty() || args.text.is_some() || args.image.is_some()) {
        bail!("invalid --id-column: it passes a column of raw-input --files CSVs through to the output");
    }
    if (args.top_k.is_some() || args.at_least_one)
        && gmu::store::read_config(&args.model).is_ok_and(|c| c.task != Task::Multilabel)
    {
        bail!(
            "invalid --top-k / --at-least-one: the model predicts one class per row (they apply to multilabel models)"
        );
    }
    if args.text.is_some() || args.image.is_some() || raw_files(&args)? {
        return run_raw(args);
    }
    let device = super::device();
    let predictor = Model::load(&args.model, &device)?;
    // No --data or --files: the data the model was trained on, as it records
    // it (the only way to name a raw archive's rows, `--split test` of an
    // `mmimdb --archive` model).
    let recorded = predictor.config.data.as_ref().map(|r| r.source.clone());
    let mut source = match recorded {
        Some(s) if args.data.data.is_none() && args.data.files.is_empty() => {
            super::stage(&format!("the model's training data: {}", s.name()));
            s
        }
        _ => args.data.source(None)?,
    };
    if let Some(out) = &args.out {
        refuse_overwriting_inputs(out, &args, &source)?;
    }
    let config = &predictor.config;
    // MM-IMDb's word sequences: as many tokens per plot as the model was trained on
    if let (
        DataSource::Mmimdb { text, max_tokens, .. },
        Some(DataSource::Mmimdb { text: trained, max_tokens: Some(t), .. }),
    ) = (&mut source, config.data.as_ref().map(|r| &r.source))
        && text == trained
    {
        *max_tokens = Some(*t);
    }
    let mut writer = Output::open(args.out.as_deref())?;
    let mut progress = Progress::new();
    let mut imputed = 0;
    let mut all_probs: Vec<f32> = Vec::new();
    let (rows, targets) = match (&source, args.split) {
        // View files are read a chunk at a time: memory stays flat however long they are.
        (DataSource::Files { files, labels, label_column, names }, Part::All) => {
            let mut streams: Vec<ViewStream> =
                files.iter().map(|f| ViewStream::open(f, label_column.as_deref())).collect::<gmu::Result<_>>()?;
            if !names.is_empty() {
                streams = streams.into_iter().zip(names).map(|(s, n)| s.renamed(n)).collect();
            }
            let given: Vec<(String, usize)> = streams.iter().map(|s| (s.name().to_string(), s.dim())).collect();
            if let Some(order) = super::views_by_order(&predictor.config, &given, files) {
                streams = streams.into_iter().zip(&order).map(|(s, n)| s.renamed(n)).collect();
            }
            if let Some(name) = label_column
                && !streams.iter().any(ViewStream::has_labels)
            {
                bail!(
                    "invalid --label-column: no column '{name}' in {}",
                    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                );
            }
            let mut label_strings: Vec<String> = Vec::new();
            let mut header: Option<Vec<String>> = None;
            let mut done = 0usize;
            loop {
                let chunks: Vec<(View, Option<Vec<String>>)> =
                    streams.iter_mut().map(|s| s.next_chunk(CHUNK)).collect::<gmu::Result<_>>()?;
                let n = chunks[0].0.len();
                if let Some((k, (v, _))) = chunks.iter().enumerate().find(|(_, (v, _))| v.len() != n) {
                    let (short, long) = if v.len() < n { (k, 0) } else { (0, k) };
                    bail!(
                        "{}: ends at row {}, while {} goes on",
                        streams[short].path().display(),
                        done + chunks[short].0.len(),
                        streams[long].path().display()
                    );
                }
                if n == 0 {
                    break;
                }
                let mut with_labels =
                    chunks.iter().zip(&streams).filter_map(|((_, l), s)| l.as_ref().map(|l| (l, s.path())));
                if let Some((first, first_path)) = with_labels.next() {
                    for (other, path) in with_labels {
                        if let Some(r) = (0..n).find(|&r| other[r].trim() != first[r].trim()) {
                            bail!(
                                "{}: row {}: label '{}' here, '{}' in {}",
                                path.display(),
                                done + r,
                                other[r],
                                first[r],
                                first_path.display()
                            );
                        }
                    }
                    label_strings.extend(first.iter().cloned());
                }
                let chunk_views: Vec<View> = chunks.into_iter().map(|(v, _)| v).collect();
                let views =
                    predictor.select_views(&chunk_views).map_err(super::flags).with_context(|| source.name())?;
                let header = header.get_or_insert_with(|| columns(&predictor, &views));
                if done == 0 && !args.json {
                    writer.line(&header.join(","))?;
                }
                let local: Vec<usize> = (0..n).collect();
                let p = predict_chunk(&predictor, &views, &local, args.impute.is_some(), &mut imputed)?;
                let global: Vec<usize> = (done..done + n).collect();
                write_rows(&mut writer, &predictor, header, &global, &p, &args, None)?;
                if labels.is_some() || label_column.is_some() {
                    all_probs.extend_from_slice(&p.probs);
                }
                done += n;
                progress.show(done, None);
            }
            let targets = match (labels, label_column) {
                (Some(path), _) => Some(gmu::data::multiview::read_label_file(path)?),
                (None, Some(_)) => {
                    let first = streams.iter().find(|s| s.has_labels()).expect("checked above");
                    Some(gmu::data::multiview::targets_from_strings(first.path(), &label_strings)?)
                }
                (None, None) => None,
            };
            if let Some(t) = &targets
                && t.len() != done
            {
                bail!(
                    "{}: {} labels for {done} rows",
                    labels.as_ref().map_or_else(String::new, |p| p.display().to_string()),
                    t.len()
                );
            }
            ((0..done).collect::<Vec<usize>>(), targets)
        }
        _ => {
            let mut loaded = source.load(&super::encoding_device())?;
            if let DataSource::Files { files, .. } = &source {
                super::name_views_by_order(&predictor.config, &mut loaded.views, files);
            }
            let views = predictor.select_views(&loaded.views).map_err(super::flags).with_context(|| source.name())?;
            let n = views[0].len();
            if let Some(v) = views.iter().find(|v| v.len() != n) {
                bail!("view '{}' has {} rows, view '{}' has {n}", v.name, v.len(), views[0].name);
            }
            let rows = select_rows(&args, &predictor, &source, loaded.split.as_ref(), loaded.targets.as_ref(), n)?;
            let header = columns(&predictor, &views);
            if !args.json {
                writer.line(&header.join(","))?;
            }
            for chunk in rows.chunks(CHUNK) {
                let p = predict_chunk(&predictor, &views, chunk, args.impute.is_some(), &mut imputed)?;
                write_rows(&mut writer, &predictor, &header, chunk, &p, &args, None)?;
                if loaded.targets.is_some() {
                    all_probs.extend_from_slice(&p.probs);
                }
                progress.show(all_probs.len().max(1), Some(rows.len()));
            }
            (rows, loaded.targets)
        }
    };
    progress.finish();
    writer.finish()?;
    if args.impute.is_some() {
        eprintln!("· imputed {imputed} missing cells with the training means");
    }
    let targets = targets.as_ref().map(|t| in_model_outputs(t, &config.outputs, config.task)).transpose()?;
    if let Some(targets) = &targets {
        let eval = score(targets, &rows, &all_probs, config.threshold);
        let line = match config.task {
            Task::Multiclass => format!(
                "{} on {} rows: accuracy {:.4}, macro-F1 {:.4}",
                config.method,
                rows.len(),
                eval.accuracy,
                eval.f1.macro_
            ),
            Task::Multilabel => format!(
                "{} on {} rows: F1 weighted {:.4}, samples {:.4}, micro {:.4}, macro {:.4}",
                config.method,
                rows.len(),
                eval.f1.weighted,
                eval.f1.samples.unwrap_or(f64::NAN),
                eval.f1.micro,
                eval.f1.macro_
            ),
        };
        // The predictions own standard output when no --out is given.
        if args.out.is_some() {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if let Some(out) = &args.out {
        println!("wrote {} rows to {}", rows.len(), out.display());
    }
    Ok(())
}

/// Whether --files are raw-input CSVs for a model whose views record encoders
/// (every file a `.csv` with the --text-column or --image-column).
fn raw_files(args: &Args) -> Result<bool> {
    if args.data.files.is_empty() || !args.data.files.iter().all(|f| f.extension().is_some_and(|e| e == "csv")) {
        return Ok(false);
    }
    // an unreadable model is reported by the normal path
    let Ok(config) = gmu::store::read_config(&args.model) else { return Ok(false) };
    if !config.views.iter().any(|v| v.encoder.is_some()) {
        return Ok(false);
    }
    for f in &args.data.files {
        if !csv_header(f)?.iter().any(|h| *h == args.text_column || *h == args.image_column) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The header row of a CSV (which must be a regular file).
fn csv_header(path: &Path) -> Result<Vec<String>> {
    let mut reader = csv::Reader::from_reader(gmu::io::open_regular(path)?);
    let header = reader.headers().with_context(|| path.display().to_string())?;
    Ok(header.iter().map(String::from).collect())
}

/// `predict` on raw text and images: encode with the model's recorded
/// encoders, then predict as on features. One sample (--text/--image) is
/// printed as a readable report; CSVs (--files) give the usual rows.
fn run_raw(args: Args) -> Result<()> {
    use gmu::encoders::{Modality, RawInput};
    let device = super::device();
    let predictor = Model::load(&args.model, &device)?;
    let config = &predictor.config;
    let modality = |i: usize| config.views[i].encoder.as_ref().map(|e| e.encoder.modality());
    if !config.views.iter().any(|v| v.encoder.is_some()) {
        bail!(
            "{}: the model's views ({}) were not made by a pretrained encoder, so it cannot read raw text or images; train it on `gmu encode` output or `gmu mmimdb --archive`",
            args.model.display(),
            config.views.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let single = args.text.is_some() || args.image.is_some();
    if let Some(labels) = &args.data.labels {
        bail!(
            "invalid --labels {}: predictions on raw text and images are not scored; encode the inputs (`gmu encode`) and run `gmu eval` on the features to score them",
            labels.display()
        );
    }
    if args.data.label_column.is_some() {
        bail!("invalid --label-column: predictions on raw text and images are not scored (see `gmu eval`)");
    }
    let mut owned_text: Vec<Vec<String>> = vec![Vec::new(); config.views.len()];
    let mut owned_paths: Vec<Vec<PathBuf>> = vec![Vec::new(); config.views.len()];
    if single {
        if !args.data.files.is_empty() {
            bail!("give --text/--image for one sample, or --files CSVs for many, not both");
        }
        let mut used = (false, false);
        for i in 0..config.views.len() {
            match modality(i) {
                Some(Modality::Text) if !used.0 => {
                    if let Some(t) = &args.text {
                        owned_text[i].push(t.clone());
                        used.0 = true;
                    }
                }
                Some(Modality::Image) if !used.1 => {
                    if let Some(p) = &args.image {
                        if !p.is_file() {
                            bail!("--image {}: no such file", p.display());
                        }
                        owned_paths[i].push(p.clone());
                        used.1 = true;
                    }
                }
                _ => {}
            }
        }
        if args.text.is_some() && !used.0 {
            bail!("--text: the model has no view made by a text encoder");
        }
        if args.image.is_some() && !used.1 {
            bail!("--image: the model has no view made by an image encoder");
        }
    } else {
        if args.data.files.len() != config.views.len() {
            bail!(
                "--files: {} CSVs for a model of {} views ({}), one per view in that order",
                args.data.files.len(),
                config.views.len(),
                config.views.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        for (i, f) in args.data.files.iter().enumerate() {
            match modality(i) {
                Some(Modality::Text) => owned_text[i] = super::encode::read_column(f, &args.text_column)?,
                Some(Modality::Image) => {
                    owned_paths[i] = super::encode::beside(f, &super::encode::read_column(f, &args.image_column)?)
                }
                None => bail!(
                    "view '{}' of the model records no encoder; raw CSVs need a model whose every view was encoded",
                    config.views[i].name
                ),
            }
        }
    }
    if let Some(out) = &args.out {
        let read: Vec<PathBuf> = args.data.files.iter().chain(owned_paths.iter().flatten()).cloned().collect();
        super::refuse_writing_over("--out", out, Some(&args.model), &read)?;
    }
    let inputs: Vec<Option<Vec<RawInput>>> = (0..config.views.len())
        .map(|i| {
            if !owned_text[i].is_empty() {
                Some(owned_text[i].iter().map(|t| RawInput::Text(t)).collect())
            } else if !owned_paths[i].is_empty() {
                Some(owned_paths[i].iter().map(|p| RawInput::Image(p)).collect())
            } else {
                None
            }
        })
        .collect();
    // Rows that show no view at all (empty texts, absent image files) are
    // found before anything is encoded.
    let n_rows = inputs.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let visibly_empty = |r: usize| {
        inputs.iter().all(|v| match v.as_ref().and_then(|v| v.get(r)) {
            None => true,
            Some(RawInput::Text(t)) => t.trim().is_empty(),
            Some(RawInput::Image(p)) => !p.is_file(),
            Some(RawInput::ImageBytes(b)) => b.is_empty(),
        })
    };
    let empty: Vec<usize> = (0..n_rows).filter(|&r| visibly_empty(r)).collect();
    if !empty.is_empty() && !args.skip_empty_rows && predictor.prior.is_none() {
        let why = |r: usize| {
            let parts: Vec<String> = inputs
                .iter()
                .zip(&config.views)
                .map(|(v, spec)| match v.as_ref().and_then(|v| v.get(r)) {
                    None => format!("{}: not given", spec.name),
                    Some(RawInput::Text(_)) => format!("{}: empty text", spec.name),
                    Some(RawInput::Image(p)) => format!("{}: no file {}", spec.name, p.display()),
                    Some(RawInput::ImageBytes(_)) => format!("{}: an empty image", spec.name),
                })
                .collect();
            format!("row {r}: every view is missing ({})", parts.join("; "))
        };
        let shown: Vec<String> = empty.iter().take(5).map(|&r| why(r)).collect();
        bail!(
            "{}{}; found before encoding: fix them, or pass --skip-empty-rows to write them as blank rows",
            shown.join("; "),
            if empty.len() > 5 { format!(" (and {} more rows)", empty.len() - 5) } else { String::new() }
        );
    }
    // Many rows: a bar per view with the rate and the time left.
    let mut bars = super::encode::bars(|view, total| format!("encoding {total} rows of view '{view}'"));
    let (views, missing) = predictor.encode_raw_with(&inputs, &mut |view, done, total| {
        // One sample (--text/--image) needs no bar.
        if total > 1 {
            bars(view, done, total);
        }
    })?;
    for (view, m) in &missing {
        eprintln!("· row {} ({}): {} → view '{view}' missing", m.row, m.input, m.reason);
    }
    let refs: Vec<&View> = views.iter().collect();
    let rows: Vec<usize> = (0..views[0].len()).collect();
    let blind: Vec<bool> = rows.iter().map(|&r| refs.iter().all(|v| v.row(r).iter().all(|x| x.is_nan()))).collect();
    let p = if args.skip_empty_rows && blind.contains(&true) {
        let seen: Vec<usize> = rows.iter().copied().filter(|&r| !blind[r]).collect();
        let p = predict_chunk(&predictor, &refs, &seen, args.impute.is_some(), &mut 0)?;
        eprintln!("· {} rows with no view written as blank rows (--skip-empty-rows)", rows.len() - seen.len());
        let blank = vec![f32::NAN; config.outputs.len()];
        p.with_blind_rows(&blind, &blank, refs.len(), predictor.nets().iter().any(|n| n.has_gates()), true)
    } else {
        predict_chunk(&predictor, &refs, &rows, args.impute.is_some(), &mut 0)?
    };
    if single && !args.json && args.out.is_none() {
        print_report(&predictor, &refs, &p);
        return Ok(());
    }
    let ids = match &args.id_column {
        Some(column) => {
            let has = |f: &PathBuf| csv_header(f).is_ok_and(|h| h.contains(column));
            let Some(file) = args.data.files.iter().find(|f| has(f)) else {
                bail!(
                    "invalid --id-column: no column '{column}' in {}",
                    args.data.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                );
            };
            Some(super::encode::read_column(file, column)?)
        }
        None => None,
    };
    let mut writer = Output::open(args.out.as_deref())?;
    let mut header = columns(&predictor, &refs);
    if ids.is_some() {
        header.insert(1, "id".to_string());
    }
    if !args.json {
        writer.line(&header.join(","))?;
    }
    write_rows(&mut writer, &predictor, &header, &rows, &p, &args, ids.as_deref())?;
    writer.finish()?;
    if let Some(out) = &args.out {
        println!("wrote {} rows to {}", rows.len(), out.display());
    }
    Ok(())
}

/// One sample as a person reads it: the outputs by probability (the decided
/// ones marked), then per view: present, gate, share, importance.
fn print_report(predictor: &Model, views: &[&View], p: &Prediction) {
    let names = &predictor.config.outputs;
    let decided = predictor.decide(&p.probs);
    let mut order: Vec<usize> = (0..p.width).collect();
    order.sort_by(|&a, &b| p.probs[b].total_cmp(&p.probs[a]));
    let chosen: Vec<&str> = order.iter().filter(|&&c| decided[c] == 1).map(|&c| names[c].as_str()).collect();
    match predictor.config.task {
        Task::Multilabel => println!(
            "predicted (threshold {}): {}",
            predictor.config.threshold,
            if chosen.is_empty() { "none".to_string() } else { chosen.join(", ") }
        ),
        Task::Multiclass => println!("predicted: {}", chosen.join(", ")),
    }
    for &c in order.iter().take(10) {
        let bar = "█".repeat((p.probs[c] * 20.0).round() as usize);
        println!("  {:<12} {:.3} {bar}{}", names[c], p.probs[c], if decided[c] == 1 { "  ✓" } else { "" });
    }
    let suspect = predictor.suspect(p);
    println!(
        "
{:<10} {:<8} {:>6} {:>6} {:>8} {:>10} {:>8}",
        "view", "present", "gate", "share", "suspect", "importance", "conflict"
    );
    for (j, v) in views.iter().enumerate() {
        let cell = |x: Option<&Vec<f32>>| match x {
            Some(x) if p.present[j] && x[j].is_finite() => format!("{:.3}", x[j]),
            _ => "-".to_string(),
        };
        println!(
            "{:<10} {:<8} {:>6} {:>6} {:>8} {:>10} {:>8}",
            v.name,
            if p.present[j] { "yes" } else { "missing" },
            cell(p.gate_means.as_ref()),
            cell(p.shares.as_ref()),
            cell(suspect.as_ref()),
            cell(p.importance.as_ref()),
            cell(p.conflict.as_ref())
        );
    }
}

/// Rows predicted per pass (and read per chunk from view files).
const CHUNK: usize = BATCH * 8;

/// Probabilities, gates, shares and importance of `rows` of `views`; with
/// `impute`, partly missing rows filled first (the count added to `imputed`).
fn predict_chunk(
    predictor: &Model,
    views: &[&View],
    rows: &[usize],
    impute: bool,
    imputed: &mut usize,
) -> Result<Prediction> {
    let (p, n) = predictor.predict_imputed(views, rows, true, impute).map_err(super::flags)?;
    *imputed += n;
    Ok(p)
}

/// A row counter on stderr, shown once a run takes more than a second.
struct Progress {
    start: Instant,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Progress { start: Instant::now(), shown: false }
    }

    fn show(&mut self, done: usize, total: Option<usize>) {
        if self.start.elapsed().as_secs_f64() > 1.0 {
            match total {
                Some(t) => eprint!("\r· predicted {done}/{t} rows"),
                None => eprint!("\r· predicted {done} rows"),
            }
            self.shown = true;
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// No command writes over one of its own inputs.
fn refuse_overwriting_inputs(out: &Path, args: &Args, source: &DataSource) -> Result<()> {
    if let Some(input) = super::overwritten_input(out, &args.model, source) {
        bail!("--out {} is an input of this command ({}); choose another output file", out.display(), input.display());
    }
    super::refuse_writing_over("--out", out, Some(&args.model), &[])
}

/// The rows to predict: all of them, or a split (the file's own, or the one
/// the model was trained with, made again from the recorded seed and shares).
fn select_rows(
    args: &Args,
    predictor: &Model,
    source: &DataSource,
    own: Option<&Split>,
    targets: Option<&Targets>,
    n: usize,
) -> Result<Vec<usize>> {
    if args.split == Part::All {
        return Ok((0..n).collect());
    }
    let split = match own {
        Some(split) => split.clone(),
        None => {
            let record = predictor.config.data.as_ref().filter(|r| &r.source == source).and_then(|r| r.split);
            let Some(record) = record else {
                bail!(
                    "--split: the model records no split for this data (it was trained on other data, or on all of it); use --split all"
                );
            };
            let Some(targets) = targets else {
                bail!("--split: the split is stratified by label and the data carry none")
            };
            let data = gmu::data::MultiviewData { views: vec![], targets: targets.clone() };
            data.split(record.dev, record.test, record.seed)?
        }
    };
    Ok(match args.split {
        Part::Train => split.train,
        Part::Dev => split.dev,
        Part::Test => split.test,
        Part::All => unreachable!("handled above"),
    })
}

/// The data's targets renumbered into the model's output order; a class or
/// label the model does not know is an error.
pub(super) fn in_model_outputs(targets: &Targets, outputs: &[String], task: Task) -> Result<Targets> {
    let index = |name: &String| {
        outputs
            .iter()
            .position(|o| o == name)
            .with_context(|| format!("label '{name}' is not one the model knows ({})", outputs.join(", ")))
    };
    match (targets, task) {
        (Targets::Classes { y, names }, Task::Multiclass) => {
            let map: Vec<usize> = names.iter().map(index).collect::<Result<_>>()?;
            Ok(Targets::Classes { y: y.iter().map(|&c| map[c]).collect(), names: outputs.to_vec() })
        }
        (Targets::Labels { y, names }, Task::Multilabel) => {
            let map: Vec<usize> = names.iter().map(index).collect::<Result<_>>()?;
            let mut out = vec![0u8; targets.len() * outputs.len()];
            for (r, row) in y.chunks(names.len()).enumerate() {
                for (j, &on) in row.iter().enumerate() {
                    out[r * outputs.len() + map[j]] = on;
                }
            }
            Ok(Targets::Labels { y: out, names: outputs.to_vec() })
        }
        _ => bail!(
            "the labels are {} but the model is {:?}",
            if targets.is_multilabel() { "multilabel" } else { "single-label" },
            task
        ),
    }
}

fn columns(predictor: &Model, views: &[&View]) -> Vec<String> {
    let mut cols = vec!["row".to_string(), "predicted".to_string()];
    cols.extend(predictor.config.outputs.iter().map(|o| format!("p_{o}")));
    let gated = predictor.nets().iter().any(|n| n.has_gates());
    let suspect = gated && predictor.config.gate_reference.is_some();
    for v in views {
        if gated {
            cols.push(format!("gate_{}", v.name));
            cols.push(format!("share_{}", v.name));
        }
        if suspect {
            cols.push(format!("suspect_{}", v.name));
        }
        cols.push(format!("importance_{}", v.name));
        if views.len() > 1 {
            cols.push(format!("conflict_{}", v.name));
        }
    }
    cols
}

/// The rows of `p` under `header`, decided as `args` says (threshold,
/// `--top-k`, `--at-least-one`), with an `id` cell after `row` from `ids`
/// (by row) where given.
fn write_rows(
    out: &mut Output,
    predictor: &Model,
    header: &[String],
    rows: &[usize],
    p: &Prediction,
    args: &Args,
    ids: Option<&[String]>,
) -> Result<()> {
    let json = args.json;
    let (c, k) = (p.width, p.n_views);
    let names = &predictor.config.outputs;
    let mut decided = predictor.decide(&p.probs);
    let suspect = predictor.suspect(p);
    let ranked = predictor.config.task == Task::Multilabel && (args.top_k.is_some() || args.at_least_one);
    for (row, probs) in decided.chunks_mut(c).zip(p.probs.chunks(c)) {
        // A blank row (--skip-empty-rows) decides nothing.
        if probs.iter().any(|x| x.is_nan()) {
            row.fill(0);
            continue;
        }
        if !ranked {
            continue;
        }
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        if let Some(top) = args.top_k {
            row.fill(0);
            order.iter().take(top as usize).for_each(|&j| row[j] = 1);
        } else if !row.contains(&1) {
            row[order[0]] = 1;
        }
    }
    for (i, &r) in rows.iter().enumerate() {
        let predicted: Vec<&str> = decided[i * c..(i + 1) * c]
            .iter()
            .zip(names)
            .filter(|(on, _)| **on == 1)
            .map(|(_, n)| n.as_str())
            .collect();
        let mut cells: Vec<Cell> = vec![Cell::Int(r)];
        if let Some(ids) = ids {
            cells.push(Cell::Text(ids.get(r).cloned().unwrap_or_default()));
        }
        cells.push(Cell::List(predicted.into_iter().map(String::from).collect()));
        cells.extend(p.probs[i * c..(i + 1) * c].iter().map(|&x| Cell::Num(x)));
        for j in 0..k {
            let name = &predictor.config.views[j].name;
            // A missing view has no gate, share or importance: blank (null in JSON), not 0.
            let present = p.present[i * k + j];
            let shown = |x: f32| Cell::Num(if present { x } else { f32::NAN });
            if let (Some(g), Some(s)) = (&p.gate_means, &p.shares) {
                cells.push(shown(g[i * k + j]));
                cells.push(shown(s[i * k + j]));
            }
            if header.iter().any(|h| h.strip_prefix("suspect_") == Some(name)) {
                cells.push(shown(suspect.as_ref().map_or(f32::NAN, |s| s[i * k + j])));
            }
            cells.push(shown(p.importance.as_ref().map_or(f32::NAN, |imp| imp[i * k + j])));
            if k > 1 {
                cells.push(shown(p.conflict.as_ref().map_or(f32::NAN, |x| x[i * k + j])));
            }
        }
        debug_assert_eq!(cells.len(), header.len());
        let line = if json {
            let object: serde_json::Map<String, serde_json::Value> =
                header.iter().cloned().zip(cells.iter().map(Cell::json)).collect();
            serde_json::Value::Object(object).to_string()
        } else {
            cells.iter().map(Cell::csv).collect::<Vec<_>>().join(",")
        };
        out.line(&line)?;
    }
    Ok(())
}

enum Cell {
    Int(usize),
    Text(String),
    /// Labels: joined by `|` in a CSV, a list in JSON.
    List(Vec<String>),
    Num(f32),
}

impl Cell {
    fn csv(&self) -> String {
        match self {
            Cell::Int(i) => i.to_string(),
            Cell::Text(t) if t.contains([',', '"', '\n']) => format!("\"{}\"", t.replace('"', "\"\"")),
            Cell::Text(t) => t.clone(),
            Cell::List(l) => {
                let t = l.join("|");
                if t.contains([',', '"', '\n']) { format!("\"{}\"", t.replace('"', "\"\"")) } else { t }
            }
            Cell::Num(x) if x.is_nan() => String::new(),
            Cell::Num(x) => format!("{x:.6}"),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Int(i) => (*i).into(),
            Cell::Text(t) => t.clone().into(),
            Cell::List(l) => l.clone().into(),
            Cell::Num(x) if x.is_nan() => serde_json::Value::Null,
            Cell::Num(x) => {
                serde_json::Number::from_f64(f64::from(*x)).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
    }
}

/// Standard output, or a file written atomically ([`gmu::error::AtomicFile`]:
/// renamed over the target at the end, nothing left by a failed run).
enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(gmu::error::AtomicFile),
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Self> {
        Ok(match path {
            None => Output::Stdout(std::io::BufWriter::new(std::io::stdout())),
            Some(path) => Output::File(gmu::error::AtomicFile::create(path)?),
        })
    }

    fn line(&mut self, line: &str) -> Result<()> {
        match self {
            Output::Stdout(w) => writeln!(w, "{line}")?,
            Output::File(file) => {
                writeln!(file, "{line}").with_context(|| format!("writing {}", file.target().display()))?
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush()?,
            Output::File(file) => file.commit()?,
        }
        Ok(())
    }
}
