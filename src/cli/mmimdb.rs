use std::path::PathBuf;

use anyhow::{Result, bail};
use gmu::config::TrainingConfig;
use gmu::data::mmimdb::{PAPER_TABLE_2, TextView, missing_text_note, read_archive_with, read_hdf5_text};
use gmu::experiments::comparison::{CompareOptions, compare, paper_methods, table, write_results};
use gmu::fusion::FusionKind;

use super::stage;

/// Arguments of `gmu mmimdb`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The preprocessed `multimodal_imdb.hdf5` (features, vgg_features, genres, split).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Instead: the raw `mmimdb/` folder (split.json, dataset/<id>.json + .jpeg). Its plots and
    /// posters are encoded once with the pretrained encoders (cached in <archive>/.gmu-features,
    /// keyed by encoder and contents) and the same table is trained on them.
    #[arg(long, conflicts_with = "data")]
    archive: Option<PathBuf>,
    /// --archive: the text encoder of the plots (only text encoders are offered).
    #[arg(long, default_value = "minilm", value_parser = super::encoder_of(gmu::encoders::Modality::Text))]
    text_encoder: gmu::encoders::EncoderKind,
    /// --archive: the image encoder of the posters (only image encoders are offered).
    #[arg(long, default_value = "effnet-lite0", value_parser = super::encoder_of(gmu::encoders::Modality::Image))]
    image_encoder: gmu::encoders::EncoderKind,
    /// --archive: the genres to predict, comma-separated [default: the archive's own; the real
    /// MM-IMDb archive gives the paper's 23]. Other genres are dropped and counted.
    #[arg(long, value_delimiter = ',', requires = "archive")]
    genres: Vec<String>,
    /// --archive: leave out movies with no plot, no poster or no genre, as the paper's pipeline
    /// did [default: keep them, with the plot or the poster a missing view].
    #[arg(long, requires = "archive")]
    drop_incomplete: bool,
    /// --data: the file's dataset that is the text view: `features` (mean word2vec, the paper's
    /// Table 2), `word-grams` or `three-grams` (n-gram features), or `sequences` (the plot's word
    /// indices, read by a trainable LSTM trained with the fusion, as in the paper's Table 1).
    #[arg(long, value_enum, default_value_t = TextView::Features, conflicts_with = "archive")]
    text_view: TextView,
    /// Tokens kept per plot: MiniLM's or the LSTM's WordPiece ids with --archive, the word
    /// indices of `--text-view sequences` with --data.
    #[arg(long, default_value_t = gmu::encoders::bert::DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Fusion methods to run (repeatable; default: every row of the paper's Table 2).
    #[arg(long, value_enum)]
    fusion: Vec<FusionKind>,
    /// Skip the text-only and visual-only models.
    #[arg(long)]
    no_single: bool,
    /// Also score every method with each modality missing in these shares of the test movies
    /// (comma-separated, e.g. 0,0.25,0.5,0.75,1): a table and missing.png.
    #[arg(long, value_delimiter = ',')]
    missing_rates: Vec<f64>,
    #[command(flatten)]
    training: super::TrainingArgs,
    /// Output folder. Built as `<out>.partial` and moved into place when the run is complete;
    /// an existing non-empty folder is refused unless --force.
    #[arg(long, default_value = "runs/mmimdb")]
    out: PathBuf,
    /// Replace an existing --out (whole, once this run is complete).
    #[arg(long)]
    force: bool,
    /// Continue the run a kill interrupted (same flags): every epoch is checkpointed in
    /// `<out>.partial`, and the resumed run ends with the same bits as an uninterrupted one.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: Args) -> Result<()> {
    super::check_writable(&args.out, "--out")?;
    let (data, split, source) = match (&args.data, &args.archive) {
        (Some(path), _) => {
            stage(&format!("reading {}", path.display()));
            let m = read_hdf5_text(path, args.text_view, args.max_tokens)?;
            if m.nan_text_rows > 0 {
                println!("{}", missing_text_note(args.text_view, m.nan_text_rows));
            }
            let max_tokens = (args.text_view == TextView::Sequences).then_some(args.max_tokens);
            (m.data, m.split, gmu::data::DataSource::Mmimdb { path: path.clone(), text: args.text_view, max_tokens })
        }
        (None, Some(root)) => encode_archive(&args, root)?,
        (None, None) => bail!("give --data multimodal_imdb.hdf5 or --archive mmimdb/"),
    };
    let text = match data.views[0].token_vocab() {
        Some(vocab) => format!("text {} tokens of a {vocab}-token vocabulary (read by an LSTM)", data.views[0].dim),
        None => format!("text {}", data.views[0].dim),
    };
    println!(
        "{}: {} movies, {} genres; {text} + visual {} features; train {} / dev {} / test {}",
        source.name(),
        data.len(),
        data.targets.width(),
        data.views[1].dim,
        split.train.len(),
        split.dev.len(),
        split.test.len()
    );
    let m = Loaded { data, split };
    let base = args.training.config(512, 128)?;
    let methods: Vec<TrainingConfig> = paper_methods(&base)
        .into_iter()
        .filter(|c| args.fusion.is_empty() || args.fusion.contains(&c.model.fusion))
        .collect();
    if methods.is_empty() && args.no_single {
        bail!("nothing to run: --no-single and no --fusion method left");
    }
    let staging = super::staging(&args.out, "mmimdb", args.force, args.resume).map_err(super::flags)?;
    let out = staging.path().to_path_buf();
    let options = CompareOptions {
        modalities: vec![0, 1],
        methods,
        single_modalities: !args.no_single,
        trials: args.training.trials,
        save_to: Some(out.clone()),
        data: Some(gmu::data::DataRecord { source, split: None }),
        missing_rates: args.missing_rates.clone(),
    };
    let progress = super::comparison_progress(|r| {
        stage(&format!(
            "{:<18} test F1 weighted {:.3} samples {:.3} micro {:.3} macro {:.3} (epoch {}, {:.0} s)",
            r.method,
            r.test.f1.weighted,
            r.test.f1.samples.unwrap_or(f64::NAN),
            r.test.f1.micro,
            r.test.f1.macro_,
            r.best_epoch,
            r.seconds
        ))
    });
    let results = compare(&m.data, &m.split, &options, &super::device(), &progress)?;
    let reference = |method: &str| {
        PAPER_TABLE_2
            .iter()
            .find(|(k, _)| *k == method)
            .map(|(_, v)| format!("{:.3} / {:.3} / {:.3} / {:.3}", v[0], v[1], v[2], v[3]))
    };
    let table_2 = table(&results, true, &reference);
    let table_3 = gmu::experiments::comparison::per_label_table(&results, m.data.targets.names());
    println!(
        "\n## Table 2: test F1 (threshold {})\n\n{table_2}\n## Table 3: per-genre test F1\n\n{table_3}",
        args.training.threshold
    );
    if let Some(g) = results.iter().find(|r| r.method == "gmu").and_then(|r| r.gates.as_ref()) {
        let path = out.join("gates-per-genre.png");
        gmu::plot::stacked_shares(
            &path,
            "MM-IMDb test set: GMU, share of movies by the modality that contributed most (Fig. 8)",
            "share of movies",
            &g.classes,
            &g.modalities,
            &g.favoured,
        )?;
        println!("Fig. 8 (gate per genre): {}", super::final_path(&staging, &path).display());
    }
    if let Some(imp) = results.iter().find(|r| r.method == "gmu").and_then(|r| r.importance.as_ref()) {
        let path = out.join("importance-per-genre.png");
        gmu::plot::stacked_shares(
            &path,
            "MM-IMDb test set: GMU, share of movies by the modality whose removal costs the most",
            "share of movies (occlusion importance)",
            &imp.classes,
            &imp.modalities,
            &imp.needed,
        )?;
        println!("genres by the modality the GMU needed (occlusion): {}", super::final_path(&staging, &path).display());
    }
    let mut md = format!("# Table 2\n\n{table_2}\n# Table 3\n\n{table_3}");
    if !args.missing_rates.is_empty() {
        let missing = gmu::experiments::comparison::missing_table(&results);
        println!("\n## Test macro-F1 with a modality missing in a share of the movies\n\n{missing}");
        md.push_str(&format!("\n# Test macro-F1 with a modality missing\n\n{missing}"));
        super::multiview::draw_missing(
            &out.join("missing.png"),
            "MM-IMDb: test macro-F1 with a modality missing",
            &results,
        )?;
    }
    write_results(&out, &results, &md)?;
    let target = staging.finish()?;
    println!("wrote {}", target.display());
    Ok(())
}

/// The data of either source, under the names the table code uses.
struct Loaded {
    data: gmu::data::MultiviewData,
    split: gmu::data::Split,
}

/// Reads and summarises the raw archive, then encodes (or reuses the cached)
/// plot and poster features.
fn encode_archive(
    args: &Args,
    root: &std::path::Path,
) -> Result<(gmu::data::MultiviewData, gmu::data::Split, gmu::data::DataSource)> {
    let options = gmu::data::mmimdb::ArchiveOptions {
        genres: (!args.genres.is_empty()).then(|| args.genres.clone()),
        drop_incomplete: args.drop_incomplete,
    };
    let archive = summarize_archive(root, &options)?;
    let text = gmu::encoders::EncoderSpec::new(args.text_encoder).with_max_tokens(args.max_tokens);
    let image = gmu::encoders::EncoderSpec::new(args.image_encoder);
    let cache = gmu::data::mmimdb::feature_cache(root);
    let mut bars = super::encode::bars(|label, total| format!("encoding {total} {label}"));
    let (data, made) = archive.encoded(&text, &image, &cache, &super::device(), &mut bars)?;
    for (m, what) in made.iter().zip(["plots", "posters"]) {
        let how = if m.reused { "reused" } else { "encoded into" };
        let missing = if m.missing > 0 {
            format!("; {} {what} gave no features (missing views, listed in the sidecar)", m.missing)
        } else {
            String::new()
        };
        println!("{what}: {how} {}{missing}", m.path.display());
    }
    let source = gmu::data::DataSource::MmimdbArchive {
        root: root.to_path_buf(),
        text,
        image,
        genres: options.genres,
        drop_incomplete: options.drop_incomplete,
    };
    Ok((data, archive.split, source))
}

fn summarize_archive(
    root: &std::path::Path,
    options: &gmu::data::mmimdb::ArchiveOptions,
) -> Result<gmu::data::mmimdb::Archive> {
    let archive = read_archive_with(root, options)?;
    let (train, dev, test) = (archive.split.train.len(), archive.split.dev.len(), archive.split.test.len());
    println!("{}: {} movies (train {train} / dev {dev} / test {test})", root.display(), archive.movies.len());
    let mut counts = vec![0usize; archive.genres.len()];
    let mut none = 0;
    for m in &archive.movies {
        m.genres.iter().for_each(|&g| counts[g] += 1);
        none += usize::from(m.genres.is_empty());
    }
    let per_movie = counts.iter().sum::<usize>() as f64 / archive.movies.len() as f64;
    println!("{} genres, {per_movie:.2} per movie; {none} movies with none of them", archive.genres.len());
    for (g, n) in archive.genres.iter().zip(counts) {
        println!("  {g:<12} {n}");
    }
    if !archive.dropped_genres.is_empty() {
        let dropped: Vec<String> = archive.dropped_genres.iter().map(|(g, n)| format!("{g} ×{n}")).collect();
        println!("genres outside the set, dropped: {}", dropped.join(", "));
    }
    let list = |movies: &[(String, String)]| {
        let mut shown: Vec<String> = movies.iter().take(10).map(|(id, what)| format!("{id} ({what})")).collect();
        if movies.len() > 10 {
            shown.push(format!("… {} more", movies.len() - 10));
        }
        shown.join(", ")
    };
    let long = archive.movies.iter().filter(|m| m.plot.len() > gmu::encoders::text::MAX_TEXT_BYTES).count();
    if long > 0 {
        println!(
            "{long} plots are longer than {} bytes; the text encoder reads their first {} bytes",
            gmu::encoders::text::MAX_TEXT_BYTES,
            gmu::encoders::text::MAX_TEXT_BYTES
        );
    }
    if !archive.incomplete.is_empty() {
        println!(
            "{} movies kept with a view missing or no genre (--drop-incomplete leaves them out): {}",
            archive.incomplete.len(),
            list(&archive.incomplete)
        );
    }
    if !archive.dropped_movies.is_empty() {
        println!("{} incomplete movies left out: {}", archive.dropped_movies.len(), list(&archive.dropped_movies));
    }
    Ok(archive)
}
