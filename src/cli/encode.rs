use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gmu::encoders::encode::encode_to_npy;
use gmu::encoders::{Encoder, EncoderKind, EncoderSpec, Modality, RawInput};

/// Arguments of `gmu encode`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "images"])))]
pub struct Args {
    /// A CSV whose --column holds texts (plots, names).
    #[arg(long)]
    text: Option<PathBuf>,
    /// A CSV whose --column holds image paths (relative paths are taken from the CSV's folder).
    #[arg(long)]
    images: Option<PathBuf>,
    /// The CSV column to encode.
    #[arg(long)]
    column: String,
    /// Encoder [default: minilm for --text, effnet-lite0 for --images].
    #[arg(long, value_enum)]
    encoder: Option<EncoderKind>,
    /// Output features: a .npy of [rows, dim] float32 (NaN rows where an input gives none),
    /// with a sidecar <out>.json naming the encoder and the missing rows.
    #[arg(long)]
    out: PathBuf,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = gmu::encoders::encode::BATCH)]
    batch_size: usize,
    /// MiniLM: tokens kept per text, [CLS] and [SEP] included (sentence-transformers: 256; at most 512).
    #[arg(long, default_value_t = gmu::encoders::bert::DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Replace an existing --out.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (csv, modality) = match (&args.text, &args.images) {
        (Some(p), None) => (p.clone(), Modality::Text),
        (None, Some(p)) => (p.clone(), Modality::Image),
        _ => bail!("give one of --text or --images"),
    };
    let kind = args.encoder.unwrap_or(EncoderKind::default_for(modality));
    if kind.modality() != modality {
        bail!(
            "--encoder {kind} encodes {:?} inputs, but --{} was given",
            kind.modality(),
            if modality == Modality::Text { "text" } else { "images" }
        );
    }
    if args.out.extension().is_none_or(|e| e != "npy") {
        bail!("--out {}: expected a .npy file name", args.out.display());
    }
    if args.out.exists() && !args.force {
        bail!("--out {} exists; pass --force to replace it", args.out.display());
    }
    let cells = read_column(&csv, &args.column)?;
    let paths = match modality {
        Modality::Text => Vec::new(),
        Modality::Image => beside(&csv, &cells),
    };
    // Neither the features nor their sidecar may land on a file this run reads.
    let read: Vec<PathBuf> = std::iter::once(csv.clone()).chain(paths.iter().cloned()).collect();
    super::refuse_writing_over("--out", &args.out, None, &read)?;
    let sidecar = gmu::encoders::encode::sidecar_path(&args.out);
    super::refuse_writing_over("--out (its sidecar)", &sidecar, None, &read)?;
    let inputs: Vec<RawInput> = match modality {
        Modality::Text => cells.iter().map(|c| RawInput::Text(c)).collect(),
        Modality::Image => paths.iter().map(|p| RawInput::Image(p)).collect(),
    };
    let spec = EncoderSpec::new(kind).with_max_tokens(args.max_tokens);
    let device = super::device();
    super::stage(&format!("loading {kind}"));
    let encoder = Encoder::load(&spec, &device)?;
    super::stage(&format!(
        "encoding {} rows of {} column '{}' with {kind} (batch {})",
        inputs.len(),
        csv.display(),
        args.column,
        args.batch_size
    ));
    let mut bar = Bar::new("encoded");
    let started = Instant::now();
    let encoded = encode_to_npy(
        &encoder,
        &spec,
        &inputs,
        args.batch_size,
        &args.out,
        Some(format!("{} column {}", csv.display(), args.column)),
        &mut |d, t| bar.show(d, t),
    )
    .with_context(|| format!("encoding {}", csv.display()))?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    for m in encoded.missing.iter().take(20) {
        eprintln!("· row {} ({}): {} → written as a missing row (NaN)", m.row, m.input, m.reason);
    }
    if encoded.missing.len() > 20 {
        eprintln!(
            "· … and {} more missing rows (all listed in {})",
            encoded.missing.len() - 20,
            gmu::encoders::encode::sidecar_path(&args.out).display()
        );
    }
    if let Some((known, unknown)) = encoded.words_known_unknown {
        println!(
            "GloVe vocabulary: {known} words found, {unknown} out of vocabulary ({:.1} %)",
            100.0 * unknown as f64 / (known + unknown).max(1) as f64
        );
    }
    println!(
        "wrote {} ({} rows × {}, {} missing) and {} in {seconds:.1} s ({:.1} rows/s)",
        args.out.display(),
        encoded.rows,
        encoder.dim(),
        encoded.missing.len(),
        gmu::encoders::encode::sidecar_path(&args.out).display(),
        encoded.rows as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// The cells of one column of a CSV with a header row.
pub fn read_column(path: &Path, column: &str) -> Result<Vec<String>> {
    let file = gmu::io::open_regular(path)?;
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let headers = reader.headers().with_context(|| format!("{}: reading the header row", path.display()))?.clone();
    let Some(index) = headers.iter().position(|h| h == column) else {
        bail!("{}: no column '{column}' (columns: {})", path.display(), headers.iter().collect::<Vec<_>>().join(", "));
    };
    let mut cells = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: data row {}", path.display(), i + 1))?;
        cells.push(record.get(index).unwrap_or_default().to_string());
    }
    if cells.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    let long = cells.iter().filter(|c| c.len() > gmu::encoders::text::MAX_TEXT_BYTES).count();
    if long > 0 {
        super::stage(&format!(
            "{}: {long} cells of column '{column}' are longer than {} bytes; a text encoder reads their first {} bytes",
            path.display(),
            gmu::encoders::text::MAX_TEXT_BYTES,
            gmu::encoders::text::MAX_TEXT_BYTES
        ));
    }
    Ok(cells)
}

/// Paths from a CSV's cells: relative ones are taken from the CSV's folder.
pub fn beside(csv: &Path, cells: &[String]) -> Vec<PathBuf> {
    let base = csv.parent().unwrap_or(Path::new(""));
    cells.iter().map(|c| if Path::new(c).is_absolute() { PathBuf::from(c) } else { base.join(c) }).collect()
}

/// Progress over several labelled runs (views, kinds of input): a stage line
/// (`heading(label, total)`) when the label changes, then a [`Bar`] for it.
pub fn bars(heading: impl Fn(&str, usize) -> String) -> impl FnMut(&str, usize, usize) {
    let mut bar: Option<(String, Bar)> = None;
    move |label, done, total| {
        if bar.as_ref().is_none_or(|(l, _)| l != label) {
            super::stage(&heading(label, total));
            bar = Some((label.to_string(), Bar::new("encoded")));
        }
        let (_, b) = bar.as_mut().expect("set above");
        b.show(done, total);
        if done == total {
            b.finish();
        }
    }
}

/// A progress bar on stderr with the rate and the time left: redrawn in place
/// on a terminal, a line per tenth otherwise.
pub struct Bar {
    label: &'static str,
    start: Instant,
    tty: bool,
    last_tenth: usize,
}

impl Bar {
    pub fn new(label: &'static str) -> Self {
        Bar { label, start: Instant::now(), tty: std::io::stderr().is_terminal(), last_tenth: 0 }
    }

    pub fn show(&mut self, done: usize, total: usize) {
        if done == 0 {
            self.start = Instant::now();
            return;
        }
        let secs = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let left = (total - done) as f64 / rate.max(1e-9);
        let line = format!("· {} {done}/{total} rows, {rate:.1} rows/s, {:.0} s left", self.label, left);
        if self.tty {
            eprint!("\r{line}   ");
        } else {
            let tenth = done * 10 / total.max(1);
            if tenth > self.last_tenth || done == total {
                self.last_tenth = tenth;
                eprintln!("{line}");
            }
        }
    }

    pub fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
