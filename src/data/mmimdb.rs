//! MM-IMDb (Arevalo et al., 2017), in both published forms; the exact layouts
//! are in `../shared/MMIMDB_FORMAT.md` and the fixtures in `tests/fixtures/`.
//!
//! - [`read_hdf5`]: the preprocessed `multimodal_imdb.hdf5` (h5py/Fuel):
//!   `features` (plot word2vec means) and `vgg_features` (poster VGG-16 fc7)
//!   as two views, `genres` as multilabel targets named by the dataset's
//!   `target_names` attribute, the rows of each split from the file attribute
//!   `split` (Fuel's compound split array). Rows of `features` that are all NaN
//!   (a plot with no word2vec word) are counted and kept as missing text views.
//! - [`read_archive`]: the raw `mmimdb/` folder (`split.json`,
//!   `dataset/<id>.json` and `<id>.jpeg`), validated, with the plot and the
//!   genres of each movie; features come from pluggable [`FeatureExtractor`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdf5_reader::messages::datatype::{StringSize, VarLenKind};
use hdf5_reader::{ByteOrder, Datatype, Hdf5File};
use serde::{Deserialize, Serialize};

use super::multiview::{MultiviewData, Split, Targets, View};
use super::text::HashingEncoder;
use crate::error::{GmuError, Result};

/// The 23 genres of MM-IMDb, from the most to the least frequent (the column
/// order of the published `genres` dataset).
pub const GENRES: [&str; 23] = [
    "Drama",
    "Comedy",
    "Romance",
    "Thriller",
    "Crime",
    "Action",
    "Adventure",
    "Horror",
    "Documentary",
    "Mystery",
    "Sci-Fi",
    "Fantasy",
    "Family",
    "Biography",
    "War",
    "History",
    "Music",
    "Animation",
    "Musical",
    "Western",
    "Sport",
    "Short",
    "Film-Noir",
];

/// The paper's Table 2 (test F1: weighted, samples, micro, macro), keyed by
/// this crate's method names.
pub const PAPER_TABLE_2: [(&str, [f64; 4]); 10] = [
    ("gmu", [0.617, 0.630, 0.630, 0.541]),
    ("linear-sum", [0.600, 0.607, 0.607, 0.530]),
    ("concat", [0.597, 0.605, 0.606, 0.521]),
    ("avg-probs", [0.604, 0.616, 0.615, 0.491]),
    ("moe-maxout", [0.592, 0.593, 0.601, 0.516]),
    ("moe-maxout-tied", [0.579, 0.579, 0.587, 0.489]),
    ("moe-logistic", [0.541, 0.557, 0.565, 0.456]),
    ("moe-logistic-tied", [0.483, 0.507, 0.518, 0.358]),
    ("single:text", [0.588, 0.592, 0.595, 0.488]),
    ("single:visual", [0.410, 0.429, 0.437, 0.284]),
];

/// Which dataset of `multimodal_imdb.hdf5` is the text view: the text
/// representations of the paper's Table 1 that the file carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TextView {
    /// `features`: the mean word2vec vector of the plot, float32 [N, 300] (the paper's Table 2).
    #[default]
    Features,
    /// `word_grams`: the file's word n-gram features, float32 [N, 13253].
    WordGrams,
    /// `three_grams`: the file's 3-gram features, float32 [N, 9946].
    ThreeGrams,
    /// `sequences`: the plot's word indices (variable-length int32), read by a
    /// trainable LSTM; kept as `index + 1` with 0 as padding, truncated to `max_tokens`.
    Sequences,
}

impl TextView {
    /// The dataset's name in the file.
    pub fn dataset(self) -> &'static str {
        match self {
            TextView::Features => "features",
            TextView::WordGrams => "word_grams",
            TextView::ThreeGrams => "three_grams",
            TextView::Sequences => "sequences",
        }
    }
}

/// What a run says about the missing text views of [`read_hdf5_text`].
pub fn missing_text_note(text: TextView, rows: usize) -> String {
    match text {
        TextView::Sequences => format!("sequences: {rows} plots have no word index: missing text views"),
        TextView::Features => {
            format!("features: {rows} rows are NaN (plots with no word2vec word): missing text views")
        }
        other => format!("{}: {rows} rows are NaN: missing text views", other.dataset()),
    }
}

/// Word indices kept per plot from `sequences` (the LSTM's length) unless told otherwise.
pub const DEFAULT_SEQUENCE_TOKENS: usize = 256;

/// MM-IMDb loaded for training.
#[derive(Clone, Debug)]
pub struct Mmimdb {
    /// Views `text` and `visual`, and the genre targets.
    pub data: MultiviewData,
    /// The split read from the file.
    pub split: Split,
    /// IMDb ids, one per row.
    pub ids: Vec<String>,
    /// Rows of the text view that are missing: all NaN in `features` (a plot
    /// with no word2vec word), or an empty word sequence.
    pub nan_text_rows: usize,
}

fn err(path: &Path, message: impl Into<String>) -> GmuError {
    GmuError::data(path, message)
}

fn dataset(file: &Hdf5File, members: &[String], path: &Path, name: &str, what: &str) -> Result<hdf5_reader::Dataset> {
    if !members.iter().any(|m| m == name) {
        return Err(err(path, format!("missing dataset '{name}' ({what}); the file has {}", members.join(", "))));
    }
    file.dataset(name).map_err(|e| err(path, format!("dataset '{name}': cannot read ({e}); is the file truncated?")))
}

/// The number of elements `ds` holds, checked (a lying shape neither
/// overflows nor asks for more than the memory budget, at `bytes` per element).
fn elements(path: &Path, ds: &hdf5_reader::Dataset, name: &str, bytes: u64) -> Result<usize> {
    let n = ds.shape().iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let total = n.and_then(|n| n.checked_mul(bytes));
    crate::budget::check(&format!("dataset '{name}' of shape {:?}", ds.shape()), total).map_err(|m| err(path, m))?;
    usize::try_from(n.expect("checked above"))
        .map_err(|_| err(path, format!("dataset '{name}' of shape {:?} is too large", ds.shape())))
}

fn read_floats(path: &Path, ds: &hdf5_reader::Dataset, name: &str) -> Result<Vec<f32>> {
    let n = elements(path, ds, name, 8)?;
    let failed = |e: hdf5_reader::error::Error| {
        err(path, format!("dataset '{name}': cannot read ({e}); is the file truncated?"))
    };
    match ds.dtype() {
        Datatype::FloatingPoint { size: 4, .. } => {
            let mut out = vec![0.0f32; n];
            ds.read_into(&mut out).map_err(failed)?;
            Ok(out)
        }
        Datatype::FloatingPoint { size: 8, .. } => {
            let mut out = vec![0.0f64; n];
            ds.read_into(&mut out).map_err(failed)?;
            Ok(out.into_iter().map(|x| x as f32).collect())
        }
        other => Err(err(path, format!("dataset '{name}': expected float32 values, found {other:?}"))),
    }
}

fn shape2(path: &Path, ds: &hdf5_reader::Dataset, name: &str) -> Result<(usize, usize)> {
    match ds.shape() {
        [n, d] => Ok((*n as usize, *d as usize)),
        other => {
            Err(err(path, format!("dataset '{name}': expected 2 dimensions [movies, columns], found shape {other:?}")))
        }
    }
}

/// Reads `multimodal_imdb.hdf5` (see the [module docs](self)). Every
/// problem names the file and the dataset or attribute: a file that is not
/// HDF5 or is truncated, a missing dataset, a shape that does not match the
/// others, a label count that differs from `target_names`, a split that does
/// not cover the rows. `features` rows that are all NaN are counted and kept as missing text views;
/// any other non-finite value is an error.
pub fn read_hdf5(path: &Path) -> Result<Mmimdb> {
    read_hdf5_text(path, TextView::Features, DEFAULT_SEQUENCE_TOKENS)
}

/// [`read_hdf5`] with `text` as the text view (`max_tokens`: the length of
/// `sequences` rows; ignored for the feature datasets).
pub fn read_hdf5_text(path: &Path, text_view: TextView, max_tokens: usize) -> Result<Mmimdb> {
    let file = Hdf5File::open(path).map_err(|e| {
        err(path, format!("cannot open as HDF5 ({e}); is the file truncated or not multimodal_imdb.hdf5?"))
    })?;
    let members = file
        .root_group()
        .and_then(|g| g.member_names())
        .map_err(|e| err(path, format!("cannot list the datasets ({e}); is the file truncated?")))?
        .1;
    let text_name = text_view.dataset();
    let text_what = match text_view {
        TextView::Features => "mean word2vec of the plot, float32 [N, 300]",
        TextView::WordGrams | TextView::ThreeGrams => "n-gram features of the plot, float32 [N, columns]",
        TextView::Sequences => "the plot's word indices, variable-length int32 [N]",
    };
    let text_ds = dataset(&file, &members, path, text_name, text_what)?;
    let visual_ds = dataset(&file, &members, path, "vgg_features", "VGG-16 fc7 of the poster, float32 [N, 4096]")?;
    let genres_ds = dataset(&file, &members, path, "genres", "multi-hot genres, int32 [N, 23]")?;
    let ids_ds = dataset(&file, &members, path, "imdb_ids", "IMDb ids, fixed strings [N]")?;
    let (n, d_text) = match text_view {
        TextView::Sequences => match text_ds.shape() {
            [n] => (*n as usize, max_tokens),
            other => {
                return Err(err(
                    path,
                    format!("dataset 'sequences': expected 1 dimension [movies], found shape {other:?}"),
                ));
            }
        },
        _ => shape2(path, &text_ds, text_name)?,
    };
    let (n_v, d_visual) = shape2(path, &visual_ds, "vgg_features")?;
    let (n_g, n_labels) = shape2(path, &genres_ds, "genres")?;
    for (name, rows) in [("vgg_features", n_v), ("genres", n_g)] {
        if rows != n {
            return Err(err(path, format!("dataset '{name}' has {rows} rows, '{text_name}' has {n}")));
        }
    }
    if ids_ds.shape() != [n as u64] {
        return Err(err(path, format!("dataset 'imdb_ids' has shape {:?}, expected [{n}]", ids_ds.shape())));
    }
    // Genre names: the JSON attribute `target_names` of the `genres` dataset.
    let names_attr = genres_ds
        .attribute("target_names")
        .map_err(|e| err(path, format!("dataset 'genres': missing attribute 'target_names' ({e})")))?;
    let names_json = names_attr
        .read_string()
        .map_err(|e| err(path, format!("dataset 'genres', attribute 'target_names': not a string ({e})")))?;
    let names: Vec<String> = serde_json::from_str(&names_json).map_err(|e| {
        err(path, format!("dataset 'genres', attribute 'target_names': not a JSON list of names ({e})"))
    })?;
    if names.len() != n_labels {
        return Err(err(
            path,
            format!(
                "dataset 'genres' has {n_labels} label columns but its attribute 'target_names' lists {} names",
                names.len()
            ),
        ));
    }
    let split = read_split(&file, path, n)?;

    let (text, tokens) = match text_view {
        TextView::Sequences => {
            let (ids, vocab) = read_sequences(path, &text_ds, n, max_tokens)?;
            (ids, Some(vocab))
        }
        _ => (read_floats(path, &text_ds, text_name)?, None),
    };
    let visual = read_floats(path, &visual_ds, "vgg_features")?;
    // A plot with no word2vec word has an all-NaN `features` row (an empty sequence is
    // written as one): a missing text view, which every method handles by its missing-view
    // rule. A row only partly NaN is left for the training checks (an error unless imputed).
    let nan_text_rows = text.chunks(d_text).filter(|row| row.iter().all(|x| x.is_nan())).count();
    for (name, values, d) in [(text_name, &text, d_text), ("vgg_features", &visual, d_visual)] {
        if let Some(k) = values.iter().position(|x| x.is_infinite() || (x.is_nan() && name == "vgg_features")) {
            return Err(err(
                path,
                format!("dataset '{name}', row {}, column {}: {} (expected a finite number)", k / d, k % d, values[k]),
            ));
        }
    }
    let mut genres = vec![0i32; elements(path, &genres_ds, "genres", 4)?];
    genres_ds
        .read_into(&mut genres)
        .map_err(|e| err(path, format!("dataset 'genres': cannot read as int32 ({e}); is the file truncated?")))?;
    if let Some(k) = genres.iter().position(|&g| g != 0 && g != 1) {
        return Err(err(
            path,
            format!("dataset 'genres', row {}, column {}: {} (expected 0 or 1)", k / n_labels, k % n_labels, genres[k]),
        ));
    }
    if let Datatype::String { size: StringSize::Fixed(len), .. } = ids_ds.dtype() {
        let bytes = (n as u64).checked_mul(u64::from(*len));
        crate::budget::check(&format!("dataset 'imdb_ids' ({n} strings of {len} bytes)"), bytes)
            .map_err(|m| err(path, m))?;
    }
    let ids =
        ids_ds.read_strings().map_err(|e| err(path, format!("dataset 'imdb_ids': cannot read as strings ({e})")))?;
    let data = MultiviewData {
        views: vec![
            View {
                name: "text".into(),
                dim: d_text,
                values: text,
                image: None,
                prescaled: false,
                encoder: None,
                tokens,
            },
            View {
                name: "visual".into(),
                dim: d_visual,
                values: visual,
                image: None,
                prescaled: false,
                encoder: None,
                tokens: None,
            },
        ],
        targets: Targets::Labels { y: genres.into_iter().map(|g| g as u8).collect(), names },
    };
    data.validate(path)?;
    Ok(Mmimdb { data, split, ids, nan_text_rows })
}

/// The `sequences` dataset: each row's word indices `+ 1`, truncated to
/// `max_tokens` and padded with 0, as `f32` `[n, max_tokens]` (an empty
/// sequence is a NaN row: a missing text view), and the vocabulary size
/// (largest index + 2). Every length is checked against the memory budget
/// before it is read, and a negative index is an error naming its row.
fn read_sequences(path: &Path, ds: &hdf5_reader::Dataset, n: usize, max_tokens: usize) -> Result<(Vec<f32>, usize)> {
    let name = "sequences";
    let byte_order = match ds.dtype() {
        Datatype::VarLen { kind: VarLenKind::Sequence, base, .. } => match base.as_ref() {
            Datatype::FixedPoint { size: 4, byte_order, .. } => *byte_order,
            other => {
                return Err(err(
                    path,
                    format!("dataset '{name}': expected sequences of int32, found sequences of {other:?}"),
                ));
            }
        },
        other => {
            return Err(err(
                path,
                format!("dataset '{name}': expected variable-length int32 sequences, found {other:?}"),
            ));
        }
    };
    if max_tokens == 0 {
        return Err(GmuError::invalid("max-tokens", "must be at least 1"));
    }
    let reference = ds.vlen_reference_size();
    elements(path, ds, name, reference as u64)?;
    crate::budget::check(
        &format!("dataset '{name}' as [{n}, {max_tokens}] token ids"),
        (n as u64).checked_mul(max_tokens as u64 * 4),
    )
    .map_err(|m| err(path, m))?;
    let raw = ds
        .read_raw_bytes()
        .map_err(|e| err(path, format!("dataset '{name}': cannot read ({e}); is the file truncated?")))?;
    if raw.len() != n * reference {
        return Err(err(
            path,
            format!("dataset '{name}': {} bytes of references for {n} rows of {reference}", raw.len()),
        ));
    }
    let mut values = vec![0f32; n * max_tokens];
    let mut largest = 0u32;
    for (row, r) in raw.chunks_exact(reference).enumerate() {
        let len = u32::from_le_bytes(r[..4].try_into().expect("4 bytes"));
        crate::budget::check(
            &format!("dataset '{name}', row {row}: a sequence of {len} indices"),
            u64::from(len).checked_mul(4),
        )
        .map_err(|m| err(path, m))?;
        let out = &mut values[row * max_tokens..][..max_tokens];
        if len == 0 {
            out.fill(f32::NAN);
            continue;
        }
        let bytes = ds.resolve_vlen_reference_bytes(r, 4).map_err(|e| {
            err(path, format!("dataset '{name}', row {row}: cannot read the sequence ({e}); is the file truncated?"))
        })?;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            let b: [u8; 4] = b.try_into().expect("4 bytes");
            let id = match byte_order {
                ByteOrder::BigEndian => i32::from_be_bytes(b),
                _ => i32::from_le_bytes(b),
            };
            let id = u32::try_from(id)
                .map_err(|_| err(path, format!("dataset '{name}', row {row}: word index {id} (expected 0 or more)")))?;
            // f32 holds every integer below 2^24 exactly
            if id >= 1 << 24 {
                return Err(err(
                    path,
                    format!("dataset '{name}', row {row}: word index {id} (expected below {})", 1u32 << 24),
                ));
            }
            largest = largest.max(id);
            *o = (id + 1) as f32;
        }
    }
    Ok((values, largest as usize + 2))
}

/// One element of Fuel's split array.
#[derive(Debug)]
struct SplitEntry {
    split: String,
    source: String,
    start: i64,
    stop: i64,
}

fn decode_split(path: &Path, datatype: &Datatype, raw: &[u8]) -> Result<Vec<SplitEntry>> {
    let bad = |m: String| err(path, format!("attribute 'split': {m}"));
    let Datatype::Compound { size, fields } = datatype else {
        return Err(bad(format!("expected Fuel's compound split array, found {datatype:?}")));
    };
    let size = *size as usize;
    if size == 0 || !raw.len().is_multiple_of(size) {
        return Err(bad(format!("{} bytes is not a whole number of {size}-byte elements", raw.len())));
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| bad(format!("no field '{name}' (expected split, source, start, stop)")))
    };
    // A field's bytes inside one element; a lying layout is an error, never an out-of-range slice.
    let bytes_at = |element: &'_ [u8], f: &hdf5_reader::CompoundField, len: u64| -> Result<Vec<u8>> {
        let start = u64::from(f.byte_offset);
        start
            .checked_add(len)
            .and_then(|end| element.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                bad(format!(
                    "field '{}' ({len} bytes at offset {start}) lies outside its {}-byte element",
                    f.name,
                    element.len()
                ))
            })
    };
    let string_at = |element: &[u8], f: &hdf5_reader::CompoundField| -> Result<String> {
        match &f.datatype {
            Datatype::String { size: StringSize::Fixed(len), .. } => {
                let bytes = bytes_at(element, f, *len as u64)?;
                let bytes = &bytes[..];
                Ok(String::from_utf8_lossy(bytes).trim_end_matches(['\0', ' ']).to_string())
            }
            other => Err(bad(format!("field '{}' should be a fixed-length string, found {other:?}", f.name))),
        }
    };
    let int_at = |element: &[u8], f: &hdf5_reader::CompoundField| -> Result<i64> {
        match &f.datatype {
            Datatype::FixedPoint { size: 8, byte_order, .. } => {
                let b: [u8; 8] = bytes_at(element, f, 8)?.try_into().expect("8 bytes");
                Ok(match byte_order {
                    ByteOrder::BigEndian => i64::from_be_bytes(b),
                    _ => i64::from_le_bytes(b),
                })
            }
            other => Err(bad(format!("field '{}' should be a 64-bit integer, found {other:?}", f.name))),
        }
    };
    let (f_split, f_source, f_start, f_stop) = (field("split")?, field("source")?, field("start")?, field("stop")?);
    raw.chunks_exact(size)
        .map(|e| {
            Ok(SplitEntry {
                split: string_at(e, f_split)?,
                source: string_at(e, f_source)?,
                start: int_at(e, f_start)?,
                stop: int_at(e, f_stop)?,
            })
        })
        .collect()
}

/// The train/dev/test row ranges from the file attribute `split`; they must
/// be the same for every source, contiguous and cover `[0, n)`.
fn read_split(file: &Hdf5File, path: &Path, n: usize) -> Result<Split> {
    let root = file.root_group().map_err(|e| err(path, format!("cannot read the root group ({e})")))?;
    let attr = root.attribute("split").map_err(|e| {
        err(path, format!("missing file attribute 'split' (Fuel's split array giving the train/dev/test rows): {e}"))
    })?;
    let entries = decode_split(path, &attr.datatype, &attr.raw_data)?;
    let mut ranges: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for e in &entries {
        if let Some(&(a, b)) = ranges.get(&e.split)
            && (a, b) != (e.start, e.stop)
        {
            return Err(err(
                path,
                format!(
                    "attribute 'split': '{}' is [{a}, {b}) for one source and [{}, {}) for '{}'",
                    e.split, e.start, e.stop, e.source
                ),
            ));
        }
        ranges.insert(e.split.clone(), (e.start, e.stop));
    }
    let get = |name: &str| {
        ranges.get(name).copied().ok_or_else(|| {
            err(
                path,
                format!("attribute 'split' has no '{name}' split (found {:?})", ranges.keys().collect::<Vec<_>>()),
            )
        })
    };
    let (train, dev, test) = (get("train")?, get("dev")?, get("test")?);
    if train.0 != 0
        || dev.0 != train.1
        || test.0 != dev.1
        || test.1 != n as i64
        || train.1 <= 0
        || dev.1 <= dev.0
        || test.1 <= test.0
    {
        return Err(err(
            path,
            format!(
                "attribute 'split' does not add up: train [{}, {}), dev [{}, {}), test [{}, {}) should be consecutive, non-empty and cover the {n} rows",
                train.0, train.1, dev.0, dev.1, test.0, test.1
            ),
        ));
    }
    let range = |(a, b): (i64, i64)| (a as usize..b as usize).collect::<Vec<_>>();
    Ok(Split { train: range(train), dev: range(dev), test: range(test) })
}

/// One movie of the raw archive.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveMovie {
    /// IMDb id (the file stem).
    pub id: String,
    /// The longest string of the JSON's `plot` list.
    pub plot: String,
    /// Indices into [`GENRES`].
    pub genres: Vec<usize>,
    /// The poster file.
    pub poster: PathBuf,
}

/// The raw archive, read and validated.
#[derive(Clone, Debug)]
pub struct Archive {
    /// Movies in split order: train, then dev, then test.
    pub movies: Vec<ArchiveMovie>,
    /// Row indices of each split into `movies`.
    pub split: Split,
    /// Genre names found outside the 23, with how many times each was dropped.
    pub dropped_genres: BTreeMap<String, usize>,
}

/// Reads the raw archive rooted at `root` (the folder holding `split.json` and
/// `dataset/`). Each listed movie must have its JSON (with a non-empty `plot`
/// list of strings and a `genres` list) and its poster; genres outside the 23
/// are dropped and counted.
pub fn read_archive(root: &Path) -> Result<Archive> {
    let split_path = root.join("split.json");
    let text = std::fs::read_to_string(&split_path).map_err(|e| GmuError::io(&split_path, e))?;
    let lists: BTreeMap<String, Vec<String>> = serde_json::from_str(&text).map_err(|e| {
        err(&split_path, format!("expected {{\"train\": [ids], \"dev\": [ids], \"test\": [ids]}} ({e})"))
    })?;
    let mut movies = Vec::new();
    let mut split = Split::default();
    let mut dropped = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for name in ["train", "dev", "test"] {
        let ids = lists.get(name).ok_or_else(|| err(&split_path, format!("no '{name}' list")))?;
        if ids.is_empty() {
            return Err(err(&split_path, format!("the '{name}' list is empty")));
        }
        for id in ids {
            if !seen.insert(id.clone()) {
                return Err(err(&split_path, format!("id '{id}' is listed twice")));
            }
            let movie = read_movie(root, id, &mut dropped)?;
            let part = match name {
                "train" => &mut split.train,
                "dev" => &mut split.dev,
                _ => &mut split.test,
            };
            part.push(movies.len());
            movies.push(movie);
        }
    }
    Ok(Archive { movies, split, dropped_genres: dropped })
}

fn read_movie(root: &Path, id: &str, dropped: &mut BTreeMap<String, usize>) -> Result<ArchiveMovie> {
    let json_path = root.join("dataset").join(format!("{id}.json"));
    let poster = root.join("dataset").join(format!("{id}.jpeg"));
    let text = std::fs::read_to_string(&json_path).map_err(|e| GmuError::io(&json_path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(&json_path, format!("not JSON ({e})")))?;
    let strings = |field: &str| -> Result<Vec<String>> {
        let list = value
            .get(field)
            .and_then(|v| v.as_array())
            .ok_or_else(|| err(&json_path, format!("field '{field}': expected a list of strings")))?;
        list.iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(&json_path, format!("field '{field}': expected a list of strings, found {v}")))
            })
            .collect()
    };
    let plot = strings("plot")?.into_iter().max_by_key(|p| p.chars().count()).unwrap_or_default();
    if plot.trim().is_empty() {
        return Err(err(&json_path, "field 'plot': no non-empty plot"));
    }
    let mut genres = Vec::new();
    for g in strings("genres")? {
        match GENRES.iter().position(|&k| k == g) {
            Some(i) if !genres.contains(&i) => genres.push(i),
            Some(_) => {}
            None => *dropped.entry(g).or_insert(0) += 1,
        }
    }
    genres.sort_unstable();
    if !poster.is_file() {
        return Err(err(&poster, format!("poster of '{id}' is missing")));
    }
    Ok(ArchiveMovie { id: id.to_string(), plot, genres, poster })
}

/// Turns one movie into a feature vector: the plug for the text and poster
/// representations of the raw archive.
pub trait FeatureExtractor {
    /// View name in reports.
    fn name(&self) -> &str;
    /// Width of the features.
    fn dim(&self) -> usize;
    /// Features of `movie`.
    fn extract(&self, movie: &ArchiveMovie) -> Result<Vec<f32>>;
}

/// The paper's text normalisation (see `MMIMDB_FORMAT.md`): lower case;
/// `<br />` → space; URLs → `L`; ``~*+^`_#[]|`` → space; runs of digits → `N`;
/// the punctuation ``/'-.?!()",:;`` split off as tokens.
pub fn normalize_plot(plot: &str) -> Vec<String> {
    let lower = plot.to_lowercase().replace("<br />", " ");
    let mut words = Vec::new();
    for raw in lower.split_whitespace() {
        if raw.starts_with("http://") || raw.starts_with("https://") || raw.starts_with("www.") {
            words.push("L".to_string());
            continue;
        }
        let mut token = String::new();
        let mut chars = raw.chars().peekable();
        let flush = |t: &mut String, out: &mut Vec<String>| {
            if !t.is_empty() {
                out.push(std::mem::take(t));
            }
        };
        while let Some(c) = chars.next() {
            if "~*+^`_#[]|".contains(c) {
                flush(&mut token, &mut words);
            } else if "/'-.?!()\",:;".contains(c) {
                flush(&mut token, &mut words);
                words.push(c.to_string());
            } else if c.is_ascii_digit() {
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
                token.push('N');
            } else {
                token.push(c);
            }
        }
        flush(&mut token, &mut words);
    }
    words
}

/// A text extractor that needs no download: the normalised plot through a
/// [`HashingEncoder`]. A stand-in until word2vec features land; plug your own
/// [`FeatureExtractor`] for the paper's representation.
pub struct HashedPlot(pub HashingEncoder);

impl FeatureExtractor for HashedPlot {
    fn name(&self) -> &str {
        "text"
    }
    fn dim(&self) -> usize {
        self.0.dim
    }
    fn extract(&self, movie: &ArchiveMovie) -> Result<Vec<f32>> {
        Ok(self.0.encode(&normalize_plot(&movie.plot).join(" ")))
    }
}

/// The folder where an archive's encoded features are cached: `<root>/.gmu-features`.
pub fn feature_cache(root: &Path) -> PathBuf {
    root.join(".gmu-features")
}

/// How [`Archive::encoded`] got a view's features.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedView {
    /// The cached feature file.
    pub path: PathBuf,
    /// Whether it was reused (`false`: encoded now).
    pub reused: bool,
    /// Rows without features (empty plot, undecodable poster, no known word).
    pub missing: usize,
}

impl Archive {
    /// The movies' genres as multilabel targets over the 23 [`GENRES`].
    fn genres(&self) -> Targets {
        let mut y = vec![0u8; self.movies.len() * GENRES.len()];
        for (i, m) in self.movies.iter().enumerate() {
            for &g in &m.genres {
                y[i * GENRES.len() + g] = 1;
            }
        }
        Targets::Labels { y, names: GENRES.map(String::from).to_vec() }
    }

    /// Builds training data with one view per extractor and the genres as
    /// multilabel targets.
    pub fn to_multiview(&self, extractors: &[&dyn FeatureExtractor]) -> Result<MultiviewData> {
        let mut views = Vec::new();
        for x in extractors {
            let mut values = Vec::with_capacity(self.movies.len() * x.dim());
            for m in &self.movies {
                let f = x.extract(m)?;
                if f.len() != x.dim() {
                    return Err(GmuError::data(
                        &m.poster,
                        format!("extractor '{}' gave {} features, expected {}", x.name(), f.len(), x.dim()),
                    ));
                }
                values.extend(f);
            }
            views.push(View {
                name: x.name().to_string(),
                dim: x.dim(),
                values,
                image: None,
                prescaled: false,
                encoder: None,
                tokens: None,
            });
        }
        Ok(MultiviewData { views, targets: self.genres() })
    }

    /// A digest of the plots, in order (what a text encoder reads).
    fn plots_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for m in &self.movies {
            h.update(m.id.as_bytes());
            h.update([0]);
            h.update(m.plot.as_bytes());
            h.update([0]);
        }
        crate::encoders::fetch::hex(&h.finalize())
    }

    /// A digest of the posters' bytes, in order (what an image encoder reads).
    fn posters_digest(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for m in &self.movies {
            let bytes = std::fs::read(&m.poster).map_err(|e| GmuError::io(&m.poster, e))?;
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Ok(crate::encoders::fetch::hex(&h.finalize()))
    }

    /// Training data from the raw archive: the plots through `text`, the
    /// posters through `image` (views `text` and `visual`, as in the HDF5
    /// file), the genres as multilabel targets. Each view is encoded once and
    /// cached in `cache` under a name keyed by the encoder and a digest of what
    /// it reads, so a re-run (or another command on the same archive) reuses it.
    /// A plot or poster that gives no features is a missing view of that movie.
    pub fn encoded(
        &self,
        text: &crate::encoders::EncoderSpec,
        image: &crate::encoders::EncoderSpec,
        cache: &Path,
        device: &burn::tensor::Device,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<(MultiviewData, [EncodedView; 2])> {
        use crate::encoders::{Modality, RawInput};
        for (spec, want, flag) in [(text, Modality::Text, "text-encoder"), (image, Modality::Image, "image-encoder")] {
            if spec.encoder.modality() != want {
                return Err(GmuError::invalid(flag, format!("{} does not encode {want:?} inputs", spec.encoder)));
            }
        }
        std::fs::create_dir_all(cache).map_err(|e| GmuError::io(cache, e))?;
        let mut views = Vec::new();
        let mut made = Vec::new();
        for (name, spec, digest) in [("text", text, self.plots_digest()), ("visual", image, self.posters_digest()?)] {
            let key = {
                use sha2::{Digest, Sha256};
                let mut h = Sha256::new();
                h.update(serde_json::to_string(spec).expect("spec serialises").as_bytes());
                h.update(digest.as_bytes());
                crate::encoders::fetch::hex(&h.finalize()[..8])
            };
            let path = cache.join(format!("{name}-{}-{key}.npy", spec.label()));
            let cached = crate::encoders::encode::read_sidecar(&path)?
                .filter(|e| &e.encoder == spec && e.rows == self.movies.len() && path.is_file());
            let (reused, missing) = match cached {
                Some(e) => (true, e.missing.len()),
                None => {
                    let encoder = crate::encoders::Encoder::load(spec, device)?;
                    let inputs: Vec<RawInput> = self
                        .movies
                        .iter()
                        .map(|m| if name == "text" { RawInput::Text(&m.plot) } else { RawInput::Image(&m.poster) })
                        .collect();
                    let label = format!("{name} ({})", spec.label());
                    let e = crate::encoders::encode::encode_to_npy(
                        &encoder,
                        spec,
                        &inputs,
                        crate::encoders::encode::BATCH,
                        &path,
                        Some(format!("MM-IMDb archive, {name}")),
                        &mut |d, t| progress(&label, d, t),
                    )?;
                    (false, e.missing.len())
                }
            };
            let (shape, values) = super::multiview::read_npy(&path)?;
            if shape != [self.movies.len(), spec.dim] {
                return Err(GmuError::data(
                    &path,
                    format!(
                        "cached features of shape {shape:?}, expected [{}, {}]; delete the file",
                        self.movies.len(),
                        spec.dim
                    ),
                ));
            }
            views.push(View {
                name: name.to_string(),
                dim: spec.dim,
                values,
                image: None,
                prescaled: false,
                encoder: Some(spec.clone()),
                tokens: None,
            });
            made.push(EncodedView { path, reused, missing });
        }
        let data = MultiviewData { views, targets: self.genres() };
        let [a, b]: [EncodedView; 2] = made.try_into().expect("two views");
        Ok((data, [a, b]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    /// Both fixtures were written by h5py (`tests/fixtures/make_mmimdb_h5.py`):
    /// contiguous as the published file, chunked + gzip as a re-saved copy.
    #[test]
    fn reads_the_h5py_layout_contiguous_and_chunked() {
        let a = read_hdf5(&fixture("mmimdb_contiguous.h5")).unwrap();
        let b = read_hdf5(&fixture("mmimdb_chunked.h5")).unwrap();
        for m in [&a, &b] {
            assert_eq!(m.data.len(), 40);
            assert_eq!((m.split.train.len(), m.split.dev.len(), m.split.test.len()), (24, 6, 10));
            assert_eq!(m.split.dev[0], 24);
            assert_eq!(m.nan_text_rows, 2);
            assert!(m.data.views[0].row(3).iter().all(|x| x.is_nan()), "a missing text view stays missing");
            assert_eq!(m.data.views[0].dim, 300);
            assert_eq!(m.data.views[1].dim, 64);
            assert_eq!(m.data.targets.names(), GENRES.map(String::from).as_slice());
            assert_eq!(m.ids[0], "tt01000");
        }
        assert_eq!(a.data.views[1].values, b.data.views[1].values);
        assert_eq!(a.data.targets, b.data.targets);
        // genres sum written by numpy for seed 7: 192 ones
        let Targets::Labels { y, .. } = &a.data.targets else { panic!() };
        assert_eq!(y.iter().map(|&v| v as usize).sum::<usize>(), 192);
    }

    /// The other text views of the same fixtures (h5py wrote them with
    /// numpy's seed 7; the values below are h5py's reading): `sequences` as
    /// index + 1, truncated to 3 and padded with 0, vocabulary 99 + 2; the
    /// n-gram datasets as feature views.
    #[test]
    fn reads_sequences_and_ngrams_as_text_views() {
        for name in ["mmimdb_contiguous.h5", "mmimdb_chunked.h5"] {
            let m = read_hdf5_text(&fixture(name), TextView::Sequences, 3).unwrap();
            let text = &m.data.views[0];
            assert_eq!((text.dim, text.token_vocab()), (3, Some(101)));
            assert_eq!(text.row(0), [9.0, 0.0, 0.0]);
            assert_eq!(text.row(1), [98.0, 30.0, 0.0]);
            assert_eq!(text.row(4), [69.0, 100.0, 53.0], "five indices truncated to three");
            assert_eq!(m.nan_text_rows, 0);
            assert_eq!(m.data.views[1].dim, 64);
            let grams = read_hdf5_text(&fixture(name), TextView::WordGrams, 3).unwrap();
            assert_eq!(grams.data.views[0].dim, 13);
            assert_eq!(grams.data.views[0].token_vocab(), None);
            assert!((grams.data.views[0].row(0)[0] - 0.507_035_4).abs() < 1e-6);
            let three = read_hdf5_text(&fixture(name), TextView::ThreeGrams, 3).unwrap();
            assert_eq!(three.data.views[0].dim, 11);
            assert!((three.data.views[0].row(1)[1] - 0.816_621_4).abs() < 1e-6);
        }
        // a file without the dataset: the error names the file and the dataset
        let e = read_hdf5_text(&fixture("mmimdb_bad_shape.h5"), TextView::Sequences, 8).unwrap_err().to_string();
        assert!(e.contains("mmimdb_bad_shape.h5") && e.contains("missing dataset 'sequences'"), "{e}");
        let e = read_hdf5_text(&fixture("mmimdb_contiguous.h5"), TextView::Sequences, 0).unwrap_err().to_string();
        assert!(e.contains("max-tokens"), "{e}");
    }

    #[test]
    fn a_truncated_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(fixture("mmimdb_contiguous.h5")).unwrap();
        let cut = dir.path().join("cut.h5");
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        let e = read_hdf5(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.h5") && (e.contains("truncated") || e.contains("cannot")), "{e}");
        let not = dir.path().join("not.h5");
        std::fs::write(&not, b"hello").unwrap();
        let e = read_hdf5(&not).unwrap_err().to_string();
        assert!(e.contains("not.h5") && e.contains("cannot open as HDF5"), "{e}");
    }

    #[test]
    fn broken_files_name_the_file_and_the_field() {
        let cases = [
            ("mmimdb_bad_missing.h5", "missing dataset 'genres'"),
            ("mmimdb_bad_shape.h5", "dataset 'vgg_features' has 11 rows, 'features' has 12"),
            ("mmimdb_bad_split.h5", "attribute 'split' does not add up: train [0, 6), dev [6, 9), test [9, 10)"),
            (
                "mmimdb_bad_names.h5",
                "dataset 'genres' has 23 label columns but its attribute 'target_names' lists 22 names",
            ),
            // Found by tests/fuzz.rs: a compound field beyond its element used to panic.
            (
                "fuzz/mmimdb_field_outside_element.h5",
                "field 'stop' (8 bytes at offset 262172) lies outside its 46-byte element",
            ),
            // Found by tests/fuzz.rs: a lying shape used to allocate 320 GiB (and abort).
            (
                "fuzz/mmimdb_lying_shape.h5",
                "dataset 'vgg_features' of shape [40, 1073741888] would need 320.0 GiB of memory",
            ),
            (
                "fuzz/mmimdb_huge_strings.h5",
                "dataset 'imdb_ids' (40 strings of 4294901767 bytes) would need 160.0 GiB of memory",
            ),
        ];
        for (name, expected) in cases {
            let e = read_hdf5(&fixture(name)).unwrap_err().to_string();
            assert!(e.contains(name.trim_start_matches("fuzz/")) && e.contains(expected), "{name}: {e}");
        }
    }

    /// Writes an archive in the published layout: `split.json` and
    /// `dataset/<id>.json` + `<id>.jpeg` (the JSON carries IMDb fields as the
    /// real files do; the posters are placeholder bytes).
    fn write_archive(root: &Path, movies: &[(&str, &str)], split: &str) {
        std::fs::create_dir_all(root.join("dataset")).unwrap();
        for (id, json) in movies {
            std::fs::write(root.join("dataset").join(format!("{id}.json")), json).unwrap();
            std::fs::write(root.join("dataset").join(format!("{id}.jpeg")), b"\xff\xd8\xff\xe0").unwrap();
        }
        std::fs::write(root.join("split.json"), split).unwrap();
    }

    const MOVIES: [(&str, &str); 3] = [
        (
            "0000001",
            r#"{"title": "A", "year": 1999, "plot": ["Short one.", "A much longer plot, the one to keep."], "genres": ["Drama", "News", "Comedy"]}"#,
        ),
        ("0000002", r#"{"title": "B", "plot": ["Only plot."], "genres": ["Horror", "Talk-Show", "News"]}"#),
        ("0000003", r#"{"title": "C", "plot": ["Third."], "genres": ["Film-Noir"]}"#),
    ];

    #[test]
    fn reads_the_raw_archive_and_drops_unknown_genres() {
        let dir = tempfile::tempdir().unwrap();
        write_archive(dir.path(), &MOVIES, r#"{"train": ["0000001"], "dev": ["0000002"], "test": ["0000003"]}"#);
        let a = read_archive(dir.path()).unwrap();
        assert_eq!(a.movies.len(), 3);
        assert_eq!(a.movies[0].plot, "A much longer plot, the one to keep.");
        assert_eq!(a.movies[0].genres, vec![0, 1]);
        assert_eq!(a.movies[2].genres, vec![22]);
        assert_eq!(a.dropped_genres.get("News"), Some(&2));
        assert_eq!(a.dropped_genres.get("Talk-Show"), Some(&1));
        assert_eq!((a.split.train.clone(), a.split.dev.clone(), a.split.test.clone()), (vec![0], vec![1], vec![2]));
        let data = a.to_multiview(&[&HashedPlot(HashingEncoder::new(16))]).unwrap();
        assert_eq!(data.views[0].dim, 16);
        assert_eq!(data.targets.indicator_row(1)[7], 1); // Horror
    }

    #[test]
    fn a_broken_archive_names_the_file_and_the_field() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case; 5] = [
            (
                "duplicate id",
                &MOVIES,
                r#"{"train": ["0000001"], "dev": ["0000001"], "test": ["0000003"]}"#,
                "id '0000001' is listed twice",
            ),
            ("no dev list", &MOVIES, r#"{"train": ["0000001"], "test": ["0000003"]}"#, "no 'dev' list"),
            (
                "unknown id",
                &MOVIES[..2],
                r#"{"train": ["0000001"], "dev": ["0000002"], "test": ["0000009"]}"#,
                "0000009.json",
            ),
            (
                "plot not a list",
                &[("0000001", r#"{"plot": "text", "genres": []}"#)],
                r#"{"train": ["0000001"], "dev": ["0000002"], "test": ["0000003"]}"#,
                "0000001.json: field 'plot': expected a list of strings",
            ),
            (
                "bad genres",
                &[
                    ("0000001", r#"{"plot": ["p"], "genres": "Drama"}"#),
                    ("0000002", MOVIES[1].1),
                    ("0000003", MOVIES[2].1),
                ],
                r#"{"train": ["0000001"], "dev": ["0000002"], "test": ["0000003"]}"#,
                "field 'genres': expected a list of strings",
            ),
        ];
        for (what, movies, split, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            write_archive(dir.path(), movies, split);
            let e = read_archive(dir.path()).unwrap_err().to_string();
            assert!(e.contains(expected), "{what}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        write_archive(dir.path(), &MOVIES, r#"{"train": ["0000001"], "dev": ["0000002"], "test": ["0000003"]}"#);
        std::fs::remove_file(dir.path().join("dataset/0000003.jpeg")).unwrap();
        let e = read_archive(dir.path()).unwrap_err().to_string();
        assert!(e.contains("0000003.jpeg") && e.contains("poster"), "{e}");
    }

    #[test]
    fn plot_normalisation_follows_the_paper_pipeline() {
        let words = normalize_plot("A man's 1999 trip<br />to http://x.y (Paris)! #wow");
        assert_eq!(words, ["a", "man", "'", "s", "N", "trip", "to", "L", "(", "paris", ")", "!", "wow"]);
    }
}
