//! One [`DataSource`] for every command: the synthetic CSV, the embedded
//! mfeat and Twemoji sets, one file per view, MM-IMDb's HDF5 file or raw
//! archive, or a source registered from outside ([`register_source`]). A
//! model directory records the source it was trained on
//! ([`DataRecord`]), so `predict --split test` and the robustness sweep
//! read the same rows again.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::builtin::{MFEAT_VIEWS, mfeat};
use super::multiview::{LabelSource, MultiviewData, Split, Targets, View, read_view};
use crate::error::{GmuError, Result};

/// Token ids kept per Twemoji name for its LSTM (`twemoji:lstm`).
pub const TWEMOJI_TOKENS: usize = 32;

/// Where data come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DataSource {
    /// UCI Multiple Features, embedded: six views of 2000 digits.
    Mfeat,
    /// Twemoji, embedded: a 32×32 picture and its names (hashed, or through a pretrained
    /// text encoder: `twemoji:minilm`, `twemoji:glove`), 9 categories.
    Twemoji {
        /// The text encoder of the names; `None`: the hashing encoder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<crate::encoders::EncoderSpec>,
    },
    /// One CSV or NPY file per view; labels from a file, a column, or none.
    Files {
        /// One file per view; the view is named after the file's stem unless `names` says otherwise.
        files: Vec<PathBuf>,
        /// A label file (CSV with one column, or a 1-D NPY array).
        labels: Option<PathBuf>,
        /// The column of the view files that holds the label.
        label_column: Option<String>,
        /// The view names, one per file (`--files fou=new_fou.csv,…`); empty: the files' stems.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
    /// The synthetic experiment's CSV (`v0..,t0..,c[,m]`): views `v` and `t`, classes `0`/`1`.
    Synthetic {
        /// The CSV.
        path: PathBuf,
    },
    /// MM-IMDb's `multimodal_imdb.hdf5`: views `text` and `visual`, 23 genres, its own split.
    Mmimdb {
        /// The HDF5 file.
        path: PathBuf,
        /// The dataset that is the text view (`features` unless told otherwise).
        #[serde(default, skip_serializing_if = "is_features")]
        text: super::mmimdb::TextView,
        /// Word indices kept per plot when the text view is `sequences`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_tokens: Option<usize>,
    },
    /// The raw MM-IMDb archive (`split.json`, `dataset/<id>.json` + `.jpeg`), its plots and
    /// posters through pretrained encoders (features cached in `<root>/.gmu-features`).
    MmimdbArchive {
        /// The folder holding `split.json` and `dataset/`.
        root: PathBuf,
        /// The text encoder.
        text: crate::encoders::EncoderSpec,
        /// The image encoder.
        image: crate::encoders::EncoderSpec,
        /// The genres predicted (`--genres`); absent: the archive's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        genres: Option<Vec<String>>,
        /// Movies with no plot, no poster or no genre left out (`--drop-incomplete`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        drop_incomplete: bool,
    },
    /// A source registered from outside the crate ([`register_source`]), by its
    /// name, with what followed `name:` in `--data name:arg`.
    Registered {
        /// The name it was registered under.
        name: String,
        /// Its argument, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arg: Option<String>,
    },
}

/// A data source added from outside the crate: one implementation and one
/// [`register_source`] call make it a [`DataSource`] like the built-in ones,
/// which every command reads, a model directory records and `predict --split`
/// and the robustness sweep read again.
pub trait SourceReader: Send + Sync + std::fmt::Debug {
    /// Reads the data; `arg` is what followed `name:` in `--data name:arg`.
    /// Raw inputs that need a pretrained encoder run on `encode_on`.
    fn load(&self, arg: Option<&str>, encode_on: &Device) -> Result<Loaded>;
}

type Readers = std::collections::BTreeMap<String, std::sync::Arc<dyn SourceReader>>;
static READERS: std::sync::RwLock<Readers> = std::sync::RwLock::new(Readers::new());

/// The names [`DataSource::parse`] gives a meaning of its own.
const BUILT_IN: [&str; 3] = ["mfeat", "twemoji", "files"];

/// Makes `reader` a data source named `name` (`--data name` or `name:arg`,
/// [`DataSource::Registered`]). Registering a name again replaces it; a name that
/// is not lowercase letters, digits and `-`, or that a built-in source has, is an error.
pub fn register_source(name: &str, reader: impl SourceReader + 'static) -> Result<()> {
    GmuError::check_registry_name("data", "a source's", name)?;
    if BUILT_IN.contains(&name) {
        return Err(GmuError::invalid("data", format!("'{name}' is a built-in data source")));
    }
    READERS.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), std::sync::Arc::new(reader));
    Ok(())
}

/// The registered source `name`, if there is one.
fn reader(name: &str) -> Option<std::sync::Arc<dyn SourceReader>> {
    READERS.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
}

fn is_features(text: &super::mmimdb::TextView) -> bool {
    *text == super::mmimdb::TextView::Features
}

/// What a model directory records of its training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    /// Where the data came from.
    pub source: DataSource,
    /// The split made from it (`None` where the source has its own, or none was made).
    pub split: Option<SplitRecord>,
}

/// The arguments of [`MultiviewData::split`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// Dev share of each class.
    pub dev: f64,
    /// Test share of each class.
    pub test: f64,
    /// Seed of the shuffle.
    pub seed: u64,
}

/// Views, with their targets and split where the source has them.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The views, one row per sample each.
    pub views: Vec<View>,
    /// The targets, where the source carries labels.
    pub targets: Option<Targets>,
    /// The source's own split (MM-IMDb).
    pub split: Option<Split>,
    /// A line on what was adjusted while reading (MM-IMDb's NaN plot rows).
    pub note: Option<String>,
}

impl Loaded {
    /// The labelled data set, or an error naming `what` needs labels.
    pub fn labelled(self, what: &str) -> Result<MultiviewData> {
        let Some(targets) = self.targets else {
            return Err(GmuError::invalid(
                "labels",
                format!("{what} needs labels (a label file or a label column); the data carry none"),
            ));
        };
        Ok(MultiviewData { views: self.views, targets })
    }
}

impl DataSource {
    /// A short name for folders and messages.
    pub fn name(&self) -> String {
        match self {
            DataSource::Mfeat => "mfeat".into(),
            DataSource::Twemoji { text: None } => "twemoji".into(),
            DataSource::Twemoji { text: Some(spec) } if spec.token_vocab().is_some() => "twemoji-lstm".into(),
            DataSource::Twemoji { text: Some(spec) } => format!("twemoji-{}", spec.encoder),
            DataSource::Files { .. } => "files".into(),
            DataSource::Synthetic { path } | DataSource::Mmimdb { path, .. } => {
                path.file_stem().map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned())
            }
            DataSource::MmimdbArchive { .. } => "mmimdb-archive".into(),
            DataSource::Registered { name, .. } => name.clone(),
        }
    }

    /// `--data` as the commands take it: `mfeat`, `twemoji`, `files` (with
    /// `files`), or a path: `.hdf5`/`.h5` is MM-IMDb (`file.hdf5:sequences`,
    /// `:word-grams` or `:three-grams` picks another text view), `.csv` the synthetic CSV.
    pub fn parse(
        data: &str,
        files: Vec<PathBuf>,
        labels: Option<PathBuf>,
        label_column: Option<String>,
    ) -> Result<Self> {
        let wants_files = !files.is_empty() || labels.is_some() || label_column.is_some();
        let source = match data {
            "mfeat" => DataSource::Mfeat,
            "twemoji" => DataSource::Twemoji { text: None },
            twemoji if twemoji.starts_with("twemoji:") => {
                let name = &twemoji["twemoji:".len()..];
                let kind = <crate::encoders::EncoderKind as clap::ValueEnum>::from_str(name, false)
                    .ok()
                    .filter(|k| k.modality() == crate::encoders::Modality::Text)
                    .ok_or_else(|| GmuError::invalid("data", format!("'{data}': Twemoji's names take a text encoder: twemoji:minilm, twemoji:glove or twemoji:lstm")))?;
                // the LSTM reads WordPiece ids; Twemoji's names are short (at most 26 pieces)
                let spec = crate::encoders::EncoderSpec::new(kind);
                let spec = if kind == crate::encoders::EncoderKind::WordPiece {
                    spec.with_max_tokens(TWEMOJI_TOKENS)
                } else {
                    spec
                };
                DataSource::Twemoji { text: Some(spec) }
            }
            "files" => {
                let (names, files) = split_view_names(files)?;
                DataSource::Files { files, labels, label_column, names }
            }
            registered if reader(registered.split_once(':').map_or(registered, |(n, _)| n)).is_some() => {
                let (name, arg) =
                    registered.split_once(':').map_or((registered, None), |(n, a)| (n, Some(a.to_string())));
                DataSource::Registered { name: name.to_string(), arg }
            }
            hdf5 if hdf5.rsplit_once(':').is_some_and(|(p, _)| p.ends_with(".hdf5") || p.ends_with(".h5")) => {
                let (path, view) = hdf5.rsplit_once(':').expect("checked");
                let text = <super::mmimdb::TextView as clap::ValueEnum>::from_str(view, false).map_err(|_| {
                    GmuError::invalid("data", format!("'{data}': the text view of MM-IMDb's file is features, word-grams, three-grams or sequences"))
                })?;
                let max_tokens =
                    (text == super::mmimdb::TextView::Sequences).then_some(super::mmimdb::DEFAULT_SEQUENCE_TOKENS);
                DataSource::Mmimdb { path: PathBuf::from(path), text, max_tokens }
            }
            path => {
                let path = PathBuf::from(path);
                let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
                if matches!(ext.as_deref(), Some("hdf5" | "h5")) {
                    DataSource::Mmimdb { path, text: Default::default(), max_tokens: None }
                } else if matches!(ext.as_deref(), Some("csv")) {
                    DataSource::Synthetic { path }
                } else {
                    return Err(GmuError::invalid(
                        "data",
                        format!(
                            "'{data}': expected mfeat, twemoji, files, a .csv (synthetic data) or a .hdf5 (MM-IMDb) file"
                        ),
                    ));
                }
            }
        };
        if wants_files && !matches!(source, DataSource::Files { .. }) {
            return Err(GmuError::invalid(
                "files",
                format!("view files and labels go with data = files, not '{data}'"),
            ));
        }
        if let DataSource::Files { files, labels, label_column, .. } = &source {
            if files.is_empty() {
                return Err(GmuError::invalid("files", "data = files needs one file per view"));
            }
            if labels.is_some() && label_column.is_some() {
                return Err(GmuError::invalid("labels", "give a label file or a label column, not both"));
            }
        }
        Ok(source)
    }

    /// The files this source reads (none for the embedded data sets).
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            DataSource::Files { files, labels, .. } => files.iter().chain(labels).cloned().collect(),
            DataSource::Synthetic { path } | DataSource::Mmimdb { path, .. } => vec![path.clone()],
            DataSource::MmimdbArchive { root, .. } => vec![root.join("split.json")],
            DataSource::Mfeat | DataSource::Twemoji { .. } | DataSource::Registered { .. } => vec![],
        }
    }

    /// Reads the data; raw inputs (the archive's plots and posters, Twemoji's
    /// names through a pretrained encoder) are encoded on `encode_on`.
    pub fn load(&self, encode_on: &Device) -> Result<Loaded> {
        let plain =
            |data: MultiviewData| Loaded { views: data.views, targets: Some(data.targets), split: None, note: None };
        Ok(match self {
            DataSource::Mfeat => plain(mfeat(&MFEAT_VIEWS)?),
            DataSource::Twemoji { text } => plain(super::builtin::twemoji_with(text.as_ref().map(|t| (t, encode_on)))?),
            DataSource::Files { files, labels, label_column, names } => {
                let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
                let mut loaded = match (labels, label_column) {
                    (Some(p), None) => plain(MultiviewData::from_files(&paths, LabelSource::File(p))?),
                    (None, Some(c)) => plain(MultiviewData::from_files(&paths, LabelSource::Column(c))?),
                    (None, None) => Loaded { views: read_views(&paths)?, targets: None, split: None, note: None },
                    (Some(_), Some(_)) => {
                        return Err(GmuError::invalid("labels", "give a label file or a label column, not both"));
                    }
                };
                for (view, name) in loaded.views.iter_mut().zip(names) {
                    view.name = name.clone();
                }
                loaded
            }
            DataSource::Synthetic { path } => {
                let d = super::table::read_csv(path)?;
                let view = |name: &str, values: Vec<f32>| View {
                    name: name.into(),
                    dim: d.dim,
                    values,
                    image: None,
                    prescaled: false,
                    encoder: None,
                    tokens: None,
                };
                Loaded {
                    views: vec![view("v", d.x_v.clone()), view("t", d.x_t.clone())],
                    targets: Some(Targets::Classes {
                        y: d.c.iter().map(|&c| usize::from(c)).collect(),
                        names: vec!["0".into(), "1".into()],
                    }),
                    split: None,
                    note: None,
                }
            }
            DataSource::Mmimdb { path, text, max_tokens } => {
                let m = super::mmimdb::read_hdf5_text(
                    path,
                    *text,
                    max_tokens.unwrap_or(super::mmimdb::DEFAULT_SEQUENCE_TOKENS),
                )?;
                let note = (m.nan_text_rows > 0).then(|| super::mmimdb::missing_text_note(*text, m.nan_text_rows));
                Loaded { views: m.data.views, targets: Some(m.data.targets), split: Some(m.split), note }
            }
            DataSource::MmimdbArchive { root, text, image, genres, drop_incomplete } => {
                let options =
                    super::mmimdb::ArchiveOptions { genres: genres.clone(), drop_incomplete: *drop_incomplete };
                let archive = super::mmimdb::read_archive_with(root, &options)?;
                let (data, made) =
                    archive.encoded(text, image, &super::mmimdb::feature_cache(root), encode_on, &mut |_, _, _| {})?;
                let missing: Vec<String> = made
                    .iter()
                    .zip(["plots", "posters"])
                    .filter(|(m, _)| m.missing > 0)
                    .map(|(m, w)| format!("{} {w}", m.missing))
                    .collect();
                let note =
                    (!missing.is_empty()).then(|| format!("{} gave no features: missing views", missing.join(" and ")));
                Loaded { views: data.views, targets: Some(data.targets), split: Some(archive.split), note }
            }
            DataSource::Registered { name, arg } => {
                let reader = reader(name).ok_or_else(|| {
                    GmuError::invalid(
                        "data",
                        format!(
                            "no data source '{name}' is registered; register it with gmu::data::register_source first"
                        ),
                    )
                })?;
                reader.load(arg.as_deref(), encode_on)?
            }
        })
    }
}

/// `--files` entries of the form `name=path` (a view name before the first
/// `=`, where the whole entry is not itself an existing file): the names and
/// the paths; no entry named gives no names. Either every entry is named or none.
pub fn split_view_names(files: Vec<PathBuf>) -> Result<(Vec<String>, Vec<PathBuf>)> {
    let mut names = Vec::new();
    let mut paths = Vec::new();
    for f in &files {
        let text = f.to_string_lossy();
        match text.split_once('=') {
            Some((name, path)) if !f.exists() && !name.is_empty() && !name.contains(['/', '\\']) => {
                names.push(name.to_string());
                paths.push(PathBuf::from(path));
            }
            _ => paths.push(f.clone()),
        }
    }
    if !names.is_empty() && names.len() != paths.len() {
        return Err(GmuError::invalid("files", "name every file (view=path,view=path) or none"));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(GmuError::invalid("files", format!("view '{twice}' is named twice")));
    }
    Ok((names, paths))
}

/// Reads one file per view, without labels; every view must have the same
/// number of rows (the error names the file that differs).
pub fn read_views(paths: &[&Path]) -> Result<Vec<View>> {
    let mut views: Vec<View> = Vec::with_capacity(paths.len());
    for &path in paths {
        let (view, _) = read_view(path, None)?;
        if let Some(first) = views.first()
            && first.len() != view.len()
        {
            return Err(GmuError::data(
                path,
                format!("{} rows; {} has {}", view.len(), paths[0].display(), first.len()),
            ));
        }
        views.push(view);
    }
    Ok(views)
}
