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
//!
//! [`hdf5`] reads the first form, [`archive`] the second; this file holds
//! what both share (the genres, the paper's figures, the text views).

pub mod archive;
pub mod hdf5;

pub use archive::{
    Archive, ArchiveMovie, ArchiveOptions, EncodedView, FeatureExtractor, HashedPlot, feature_cache, read_archive,
    read_archive_with,
};
pub use hdf5::{read_hdf5, read_hdf5_text};

use serde::{Deserialize, Serialize};

use std::path::Path;

use super::multiview::{MultiviewData, Split};
use crate::error::GmuError;

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
