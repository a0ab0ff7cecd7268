use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gmu::data::MultiviewData;
use gmu::experiments::robustness::{NoiseKind, RobustnessReport, sweep};
use gmu::plot::{Panel, line_panels};
use gmu::predict::Model;
use gmu::store::{CONFIG_FILE, read_config};

/// Arguments of `gmu robustness`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `--out` folder of a `multiview` or `mmimdb` run (or one of its model sets).
    #[arg(long)]
    run: PathBuf,
    /// The corruption of one view: Gaussian noise on its standardised inputs, its rows swapped
    /// between test samples (misaligned pairs), or its rows at the training mean (zero).
    #[arg(long, value_enum, default_value_t = Kind::Gaussian)]
    kind: Kind,
    /// Gaussian: standard deviations of the noise added to one view's standardised test inputs
    /// (on a view that training leaves unscaled, in the root mean square of its columns' spreads)
    /// [default: 0,0.25,0.5,1,2,4]; swap, zero: shares of the test samples corrupted
    /// [default: 0,0.25,0.5,0.75,1].
    #[arg(long, value_delimiter = ',')]
    levels: Option<Vec<f64>>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// What `--kind` corrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    Gaussian,
    Swap,
    Zero,
}

impl Kind {
    fn noise(self) -> NoiseKind {
        match self {
            Kind::Gaussian => NoiseKind::Gaussian,
            Kind::Swap => NoiseKind::Swap,
            Kind::Zero => NoiseKind::Zero,
        }
    }

    /// The files' suffix: none for the Gaussian sweep (today's names), `-swap`, `-zero`.
    fn suffix(self) -> &'static str {
        match self {
            Kind::Gaussian => "",
            Kind::Swap => "-swap",
            Kind::Zero => "-zero",
        }
    }

    /// How a chart names its x axis, and the corruption in a title.
    fn axis(self) -> (&'static str, &'static str) {
        match self {
            Kind::Gaussian => ("noise σ (in the view's training standard deviations)", "Gaussian noise on one view"),
            Kind::Swap => ("share of test samples with the view swapped", "one view swapped between samples"),
            Kind::Zero => ("share of test samples with the view at its mean", "one view at its training mean"),
        }
    }
}

/// The model directories under `dir`, grouped by the folder that holds them
/// (one group per view set and seed of a `multiview` run).
fn groups(dir: &Path) -> Result<Vec<(PathBuf, Vec<PathBuf>)>> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        if d.join(CONFIG_FILE).is_file() {
            found.push(d);
            continue;
        }
        if depth < 4 {
            let entries = std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
            for e in entries.flatten() {
                if e.path().is_dir() {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
    if found.is_empty() {
        bail!(
            "{}: no model directory (config.json) inside; give the --out folder of a multiview or mmimdb run",
            dir.display()
        );
    }
    found.sort();
    let mut out: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for model in found {
        let parent = model.parent().map(Path::to_path_buf).unwrap_or_default();
        match out.iter_mut().find(|(p, _)| *p == parent) {
            Some((_, models)) => models.push(model),
            None => out.push((parent, vec![model])),
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<()> {
    let levels = args.levels.clone().unwrap_or_else(|| match args.kind {
        Kind::Gaussian => vec![0.0, 0.25, 0.5, 1.0, 2.0, 4.0],
        _ => vec![0.0, 0.25, 0.5, 0.75, 1.0],
    });
    if levels.len() < 2 {
        bail!("invalid --levels: give at least two levels, e.g. 0,0.5,1,2");
    }
    let device = super::device();
    for (dir, models) in groups(&args.run)? {
        let configs = models.iter().map(|m| read_config(m)).collect::<gmu::Result<Vec<_>>>()?;
        let Some(record) = configs[0].data.clone() else {
            bail!(
                "{}: the model records no data source (trained before models recorded their data, or by `train`/`demo`)",
                models[0].display()
            );
        };
        if let Some((m, _)) = models.iter().zip(&configs).find(|(_, c)| c.data.as_ref() != Some(&record)) {
            bail!(
                "{}: trained on other data than {}; robustness compares models of one run",
                m.display(),
                models[0].display()
            );
        }
        super::stage(&format!("{}: {} models, data {}", dir.display(), models.len(), record.source.name()));
        let loaded = record.source.load(&super::encoding_device())?;
        let own = loaded.split.clone();
        let data: MultiviewData = loaded.labelled("robustness").map_err(super::flags)?;
        let split = match (own, record.split) {
            (Some(split), _) => split,
            (None, Some(s)) => data.split(s.dev, s.test, s.seed)?,
            (None, None) => bail!("{}: the model records no split of its data", models[0].display()),
        };
        // As when they were trained, a test row that shows a model none of
        // its views (a single-view model, the row lacking that view) gets the
        // training rows' label frequencies.
        let prior = gmu::train::label_prior(&data.targets, &split.train);
        let predictors: Vec<(String, Model)> = models
            .iter()
            .zip(&configs)
            .map(|(m, c)| Ok((c.method.clone(), Model::load(m, &device)?.with_prior(prior.clone()))))
            .collect::<gmu::Result<_>>()?;
        let mut order: Vec<usize> = (0..predictors.len()).collect();
        order.sort_by_key(|&i| method_rank(&predictors[i].0));
        let list: Vec<(String, &Model)> = order.iter().map(|&i| (predictors[i].0.clone(), &predictors[i].1)).collect();
        let mut corrupt: Vec<String> = Vec::new();
        for v in &data.views {
            if list.iter().any(|(_, p)| p.config.views.iter().any(|w| w.name == v.name)) {
                corrupt.push(v.name.clone());
            }
        }
        let report =
            sweep(&list, &data.views, &data.targets, &split.test, &corrupt, args.kind.noise(), &levels, args.seed)
                .map_err(super::flags)?;
        let table = report.table();
        println!("\n## {}: test macro-F1 with {}\n\n{table}", dir.display(), args.kind.axis().1);
        let s = args.kind.suffix();
        gmu::error::write_atomic(
            &dir.join(format!("robustness{s}.json")),
            serde_json::to_string_pretty(&report.to_json())?.as_bytes(),
        )?;
        gmu::error::write_atomic(&dir.join(format!("robustness{s}.md")), table.as_bytes())?;
        draw(&dir, &report, args.kind)?;
        println!(
            "wrote {}/{{robustness{s}.json, robustness{s}.md, robustness{s}.png, gate_shift{s}.png}}",
            dir.display()
        );
    }
    Ok(())
}

/// The paper's table order: single views, GMU, linear sum, concat, avg-probs, mixtures.
fn method_rank(method: &str) -> (usize, String) {
    let rank = ["single:", "gmu", "linear-sum", "concat", "avg-probs", "moe-maxout", "moe-logistic"]
        .iter()
        .position(|p| method.starts_with(p))
        .unwrap_or(7);
    (rank, method.to_string())
}

fn draw(dir: &Path, report: &RobustnessReport, kind: Kind) -> Result<()> {
    let (axis, what) = kind.axis();
    let s = kind.suffix();
    let panels = |value: &dyn Fn(&gmu::experiments::robustness::ViewCurve) -> Option<Vec<f64>>| -> Vec<Panel> {
        report
            .views
            .iter()
            .enumerate()
            .map(|(k, view)| Panel {
                title: format!("{view} corrupted"),
                x: report.levels.clone(),
                lines: report
                    .methods
                    .iter()
                    .filter_map(|m| value(&m.views[k]).map(|y| (m.method.clone(), y)))
                    .collect(),
            })
            .collect()
    };
    line_panels(
        &dir.join(format!("robustness{s}.png")),
        &format!("Test macro-F1 with {what}"),
        axis,
        "test macro-F1",
        &panels(&|c| Some(c.scores.clone())),
    )?;
    // Every method keeps its line (NaN for the ungated ones), so each method has the same
    // colour as in robustness.png.
    let shares = panels(&|c| Some(c.gate_share.clone().unwrap_or_else(|| vec![f64::NAN; report.levels.len()])));
    if report.methods.iter().any(|m| m.views.iter().any(|c| c.gate_share.is_some())) {
        line_panels(
            &dir.join(format!("gate_shift{s}.png")),
            "Gated models: contribution share of the corrupted view",
            axis,
            "share of the corrupted view",
            &shares,
        )?;
    }
    Ok(())
}
