use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gmu::config::TrainingConfig;
use gmu::data::builtin::MFEAT_VIEWS;
use gmu::data::{DataRecord, DataSource, SplitRecord};
use gmu::experiments::comparison::{
    CompareOptions, MethodResult, compare, missing_table, paper_methods, summarize, summary_table, table, write_results,
};
use gmu::fusion::{ExpertKind, FusionKind};

use super::stage;

/// Arguments of `gmu multiview`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    data: super::DataArgs,
    /// Views fused together, comma-separated; repeat the flag to compare several sets.
    /// Default: for mfeat all six, then fou,zer and pix,mor; otherwise all views.
    #[arg(long = "modalities")]
    modalities: Vec<String>,
    /// Fusion methods to run (repeatable; default: all of the paper's Table 2).
    #[arg(long, value_enum)]
    fusion: Vec<FusionKind>,
    /// Mixture of experts: keep only this expert kind.
    #[arg(long, value_enum)]
    experts: Option<ExpertKind>,
    /// Mixture of experts: keep only tied (`true`) or untied (`false`) gates.
    #[arg(long)]
    tied_gates: Option<bool>,
    /// GMU with more than 2 views: softmax over the views of each unit's gates (each gate a share).
    #[arg(long)]
    gate_softmax: bool,
    /// Skip the single-modality models.
    #[arg(long)]
    no_single: bool,
    /// Repeat the whole comparison with seeds seed, seed+1, … (new split, initialisation and
    /// batch order each time) and report mean ± standard deviation.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Dev share of each class.
    #[arg(long, default_value_t = 0.2)]
    dev: f64,
    /// Test share of each class.
    #[arg(long, default_value_t = 0.2)]
    test: f64,
    /// Also score every method with each view missing in these shares of the test samples
    /// (comma-separated, e.g. 0,0.25,0.5,0.75,1): a table and missing.png.
    #[arg(long, value_delimiter = ',')]
    missing_rates: Vec<f64>,
    #[command(flatten)]
    training: super::TrainingArgs,
    /// Output folder (default `runs/multiview-<data>`). Built as `<out>.partial` and moved into
    /// place when the run is complete; an existing non-empty folder is refused unless --force.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing --out (whole, once this run is complete).
    #[arg(long)]
    force: bool,
    /// Continue the run a kill interrupted (same flags): every epoch is checkpointed in
    /// `<out>.partial`, and the resumed run ends with the same bits as an uninterrupted one.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: Args) -> Result<()> {
    let source = args.data.source(Some("mfeat"))?;
    let name = source.name();
    let loaded = source.load(&super::encoding_device())?;
    if let Some(note) = &loaded.note {
        println!("{note}");
    }
    let own_split = loaded.split.clone();
    let data = loaded.labelled("multiview").map_err(super::flags)?;
    if args.training.impute.is_none() {
        let all: Vec<usize> = (0..data.views.len()).collect();
        data.check_trainable(std::path::Path::new(&name), &all, true)?;
    }
    let sets: Vec<Vec<String>> = if !args.modalities.is_empty() {
        args.modalities.iter().map(|s| s.split(',').map(|v| v.trim().to_string()).collect()).collect()
    } else if source == DataSource::Mfeat {
        vec![MFEAT_VIEWS.map(String::from).to_vec(), vec!["fou".into(), "zer".into()], vec!["pix".into(), "mor".into()]]
    } else {
        vec![data.views.iter().map(|v| v.name.clone()).collect()]
    };
    for set in &sets {
        if let Some((i, v)) = set.iter().enumerate().find(|(i, v)| set[..*i].contains(v)) {
            bail!("invalid --modalities: '{v}' is listed twice in {} (position {})", set.join(","), i + 1);
        }
        if args.gate_softmax && set.len() < 3 {
            bail!(
                "invalid --gate-softmax: softmax gates change a GMU of 3 or more views; {} has {} (with two, z and 1 − z already sum to 1)",
                set.join(","),
                set.len()
            );
        }
    }
    if args.training.head != gmu::fusion::HeadKind::Maxout
        && !args.fusion.is_empty()
        && !args.fusion.contains(&FusionKind::Gmu)
    {
        bail!(
            "invalid --head: the head is the GMU's (every other method has the paper's maxout MLP), and --fusion has no gmu"
        );
    }
    if args.gate_softmax && !args.fusion.is_empty() && !args.fusion.contains(&FusionKind::Gmu) {
        bail!("invalid --gate-softmax: softmax gates are the GMU's, and --fusion has no gmu");
    }
    let mut base = args.training.config(128, 64)?;
    base.model.normalize_gates = args.gate_softmax;
    let methods: Vec<TrainingConfig> = paper_methods(&base)
        .into_iter()
        .filter(|m| args.fusion.is_empty() || args.fusion.contains(&m.model.fusion))
        .filter(|m| m.model.fusion != FusionKind::Moe || args.experts.is_none_or(|e| e == m.model.experts))
        .filter(|m| m.model.fusion != FusionKind::Moe || args.tied_gates.is_none_or(|t| t == m.model.tied_gates))
        .collect();
    if args.repeats == 0 {
        bail!("invalid --repeats: must be at least 1");
    }
    gmu::budget::ensure(
        "repeats",
        &format!("{} splits of {} samples", args.repeats, data.len()),
        gmu::budget::product(&[args.repeats, data.len(), 8]),
    )
    .map_err(super::flags)?;
    if own_split.is_none() && args.test <= 0.0 {
        return Err(super::flags(gmu::GmuError::invalid(
            "test",
            format!("{} leaves no test rows; the comparison scores the test rows (give a share above 0)", args.test),
        )));
    }
    let splits: Vec<_> = match &own_split {
        Some(split) => vec![split.clone(); args.repeats],
        None => (0..args.repeats as u64)
            .map(|r| data.split(args.dev, args.test, args.training.seed + r))
            .collect::<gmu::Result<_>>()?,
    };
    let device = super::device();
    let target = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/multiview-{name}")));
    super::check_writable(&target, "--out")?;
    let staging = super::staging(&target, "multiview", args.force, args.resume).map_err(super::flags)?;
    let out = staging.path().to_path_buf();
    let mut tags = Vec::new();
    println!(
        "{name}: {} samples, {} classes; split train {} / dev {} / test {} (seed {}{})",
        data.len(),
        data.targets.width(),
        splits[0].train.len(),
        splits[0].dev.len(),
        splits[0].test.len(),
        args.training.seed,
        if args.repeats > 1 { format!(" to {}", args.training.seed + args.repeats as u64 - 1) } else { String::new() }
    );
    for set in sets {
        let modalities: Vec<usize> = set.iter().map(|v| data.view_index(v)).collect::<gmu::Result<_>>()?;
        let tag = set.join("+");
        for caution in methods
            .iter()
            .filter_map(|m| gmu::train::supervision_caution(m, modalities.len()))
            .collect::<std::collections::BTreeSet<_>>()
        {
            stage(&format!("caution: {caution}"));
        }
        let mut runs: Vec<Vec<MethodResult>> = Vec::new();
        for (r, split) in splits.iter().enumerate() {
            let seed = args.training.seed + r as u64;
            let dir = if args.repeats > 1 { out.join(&tag).join(format!("seed-{seed}")) } else { out.join(&tag) };
            stage(&format!(
                "{name} [{tag}] seed {seed}: {} methods{}",
                methods.len(),
                if args.no_single { "" } else { " + single views" }
            ));
            let options = CompareOptions {
                modalities: modalities.clone(),
                methods: methods.iter().map(|m| TrainingConfig { seed, ..m.clone() }).collect(),
                single_modalities: !args.no_single,
                trials: args.training.trials,
                save_to: Some(dir.clone()),
                data: Some(DataRecord {
                    source: source.clone(),
                    split: own_split.is_none().then_some(SplitRecord { dev: args.dev, test: args.test, seed }),
                }),
                missing_rates: args.missing_rates.clone(),
            };
            let progress = super::comparison_progress(|r| {
                stage(&format!(
                    "{:<20} test acc {:.4}  macro-F1 {:.4}  (epoch {}, {:.1} s)",
                    r.method, r.test.accuracy, r.test.f1.macro_, r.best_epoch, r.seconds
                ))
            });
            let results = compare(&data, split, &options, &device, &progress)?;
            let mut md = table(&results, data.targets.is_multilabel(), &|_| None);
            if data.targets.is_multilabel() {
                md.push_str(&format!(
                    "\n## Per-label test F1\n\n{}",
                    gmu::experiments::comparison::per_label_table(&results, data.targets.names())
                ));
            }
            if args.repeats == 1 {
                println!("\n## {name}: {tag}\n\n{md}");
            }
            if !args.missing_rates.is_empty() {
                let missing = missing_table(&results);
                if args.repeats == 1 {
                    println!(
                        "## {name}: {tag}, test macro-F1 with a view missing in a share of the samples\n\n{missing}"
                    );
                }
                md.push_str(&format!("\n## Test macro-F1 with a view missing\n\n{missing}"));
                draw_missing(
                    &dir.join("missing.png"),
                    &format!("{name} {tag}: test macro-F1 with a view missing"),
                    &results,
                )?;
            }
            for res in &results {
                if let Some(imp) = &res.importance {
                    let path = dir.join(format!("importance-{}.png", res.method.replace(':', "-")));
                    let title =
                        format!("{name} {tag}: {}, test samples by the view whose removal costs the most", res.method);
                    let x = "share of samples whose most important view (occlusion) is the view's";
                    gmu::plot::stacked_shares(&path, &title, x, &imp.classes, &imp.modalities, &imp.needed)?;
                }
                if let Some(g) = &res.gates {
                    let path = dir.join(format!("gates-{}.png", res.method));
                    let title =
                        format!("{name} {tag}: {} gates, test samples by the view that contributed most", res.method);
                    gmu::plot::stacked_shares(
                        &path,
                        &title,
                        "share of samples whose largest gated contribution is the view's",
                        &g.classes,
                        &g.modalities,
                        &g.favoured,
                    )?;
                    if res.method == "gmu" {
                        if args.repeats == 1 {
                            println!("{}", gate_summary(&name, g));
                            println!("gate chart: {}", super::final_path(&staging, &path).display());
                        }
                        if let Some(line) = six_nine(g) {
                            println!("seed {seed}: {line}");
                        }
                    }
                }
            }
            write_results(&dir, &results, &md).with_context(|| format!("writing {}", dir.display()))?;
            runs.push(results);
        }
        if args.repeats > 1 {
            let summaries = summarize(&runs);
            let md = summary_table(&summaries);
            println!("\n## {name}: {tag}, test scores over {} seeds (mean ± sd)\n\n{md}", args.repeats);
            let dir = out.join(&tag);
            gmu::error::write_atomic(&dir.join("summary.json"), serde_json::to_string_pretty(&summaries)?.as_bytes())?;
            gmu::error::write_atomic(&dir.join("summary.md"), md.as_bytes())?;
        }
        tags.push(tag);
    }
    let target = staging.finish()?;
    for tag in tags {
        println!("wrote {}", target.join(tag).display());
    }
    Ok(())
}

/// `missing.png`: one panel per view, macro-F1 against the share of test
/// samples without it, one line per method.
pub fn draw_missing(path: &std::path::Path, title: &str, results: &[MethodResult]) -> Result<()> {
    let Some(first) = results.iter().find(|r| !r.missing.is_empty()) else { return Ok(()) };
    let panels: Vec<gmu::plot::Panel> = first
        .missing
        .iter()
        .enumerate()
        .map(|(k, c)| gmu::plot::Panel {
            title: format!("{} missing", c.view),
            x: c.rates.iter().map(|r| r * 100.0).collect(),
            lines: results
                .iter()
                .filter_map(|r| r.missing.get(k).map(|m| (r.method.clone(), m.macro_f1.clone())))
                .collect(),
        })
        .collect();
    gmu::plot::line_panels(path, title, "share of test samples without the view (%)", "test macro-F1", &panels)?;
    Ok(())
}

/// One line per class: the mean gate of each view (GMU).
fn gate_summary(name: &str, g: &gmu::train::GateReport) -> String {
    let mut s = format!("GMU contribution share per class ({name}; views {}):\n", g.modalities.join(", "));
    for (c, class) in g.classes.iter().enumerate() {
        let cells: Vec<String> = g.share[c].iter().map(|x| format!("{x:.2}")).collect();
        s.push_str(&format!("  {class:>20}: {}\n", cells.join("  ")));
    }
    s
}

/// mfeat: how much more gate the views that can tell 6 from 9 (pix, kar, fac)
/// get than the rotation-invariant ones (fou, zer, mor), on 6s and 9s against
/// the other digits. `None` unless both groups are among the views.
fn six_nine(g: &gmu::train::GateReport) -> Option<String> {
    let idx = |names: &[&str]| -> Vec<usize> {
        g.modalities.iter().enumerate().filter(|(_, m)| names.contains(&m.as_str())).map(|(i, _)| i).collect()
    };
    let (sensitive, invariant) = (idx(&["pix", "kar", "fac"]), idx(&["fou", "zer", "mor"]));
    let (six, nine) = (g.classes.iter().position(|c| c == "6")?, g.classes.iter().position(|c| c == "9")?);
    if sensitive.is_empty() || invariant.is_empty() {
        return None;
    }
    let shift = |c: usize| {
        let mean = |ix: &[usize]| ix.iter().map(|&k| g.share[c][k]).sum::<f64>() / ix.len() as f64;
        mean(&sensitive) - mean(&invariant)
    };
    let others: Vec<f64> = (0..g.classes.len()).filter(|&c| c != six && c != nine).map(shift).collect();
    let other = others.iter().sum::<f64>() / others.len() as f64;
    Some(format!(
        "GMU share of rotation-sensitive views (pix/kar/fac) minus rotation-invariant ones (fou/zer/mor): 6: {:+.3}, 9: {:+.3}, other digits: {:+.3}",
        shift(six),
        shift(nine),
        other
    ))
}
