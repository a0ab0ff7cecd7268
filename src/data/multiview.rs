//! Multi-view data: K aligned modalities (one matrix each) and one target per
//! row, single-label or multilabel, with the readers for one CSV or NPY file
//! per modality and the seeded stratified train/dev/test split.
//!
//! File layout read by [`MultiviewData::from_files`]:
//! - each view: a CSV file with a header row and one sample per row, every
//!   column a number, empty or `NaN` where missing (the label column, if
//!   named, is taken out), or a 2-D
//!   NPY array (`<f4`, `<f8`, `<i4`, `<i8`, `|u1`, C order);
//! - the labels: a column of one of the view files (`--label-column NAME`,
//!   or `last`), or their own file (CSV with a header and one column, or a 1-D NPY
//!   integer array). Labels may be any strings; classes are numbered in sorted order.

use std::collections::BTreeMap;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{GmuError, Result};
use crate::io::npy::read_npy;

/// One modality: a row-major `[n, dim]` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Name shown in reports (file stem or the data set's own name).
    pub name: String,
    /// Columns.
    pub dim: usize,
    /// Values, row-major.
    pub values: Vec<f32>,
    /// `[channels, height, width]` when the view is an image stored flat.
    pub image: Option<[usize; 3]>,
    /// The values are already on a common scale (e.g. unit-length hashed
    /// text, where per-column standardisation would blow up rare buckets);
    /// training leaves them as they are instead of standardising each column.
    pub prescaled: bool,
    /// The pretrained encoder that made these features from raw inputs, where
    /// known (a `.npy` written by `gmu encode`, the raw MM-IMDb archive):
    /// recorded in the model directory so `predict` can encode raw inputs.
    pub encoder: Option<crate::encoders::EncoderSpec>,
    /// The vocabulary size of a view of token ids that no encoder here made
    /// (MM-IMDb's `sequences`: word indices + 1, 0 pads); `None` otherwise.
    pub tokens: Option<usize>,
}

impl View {
    /// A plain feature view: `values` row-major with `dim` columns, no image
    /// shape, standardised in training, made by no recorded encoder.
    pub fn features(name: impl Into<String>, dim: usize, values: Vec<f32>) -> View {
        View { name: name.into(), dim, values, image: None, prescaled: false, encoder: None, tokens: None }
    }

    /// The vocabulary size when the view holds token ids (read by an LSTM), `None` for features.
    pub fn token_vocab(&self) -> Option<usize> {
        self.tokens.or_else(|| self.encoder.as_ref().and_then(|e| e.token_vocab()))
    }

    /// `Ok` when every value of `rows` is a token id the embedding of a
    /// `vocab`-token vocabulary can look up (a whole number in `0..vocab`) or
    /// the row is a missing view (all NaN); otherwise which row, column and
    /// value is not.
    pub fn check_tokens(&self, rows: impl IntoIterator<Item = usize>, vocab: usize) -> std::result::Result<(), String> {
        for r in rows {
            let row = self.row(r);
            if row.iter().all(|x| x.is_nan()) {
                continue;
            }
            if let Some(c) = row.iter().position(|&x| !(x >= 0.0 && x.fract() == 0.0 && (x as f64) < vocab as f64)) {
                return Err(format!(
                    "view '{}', row {r}, column {c}: token id {} (expected a whole number in 0..{vocab}, the vocabulary)",
                    self.name, row[c]
                ));
            }
        }
        Ok(())
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// The same view (name, width, kind) with no rows.
    pub fn clone_empty(&self) -> View {
        View {
            name: self.name.clone(),
            dim: self.dim,
            values: Vec::new(),
            image: self.image,
            prescaled: self.prescaled,
            encoder: self.encoder.clone(),
            tokens: self.tokens,
        }
    }

    /// The rows `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> View {
        View { values: rows.iter().flat_map(|&r| self.row(r).iter().copied()).collect(), ..self.clone_empty() }
    }

    /// True for a view with no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is predicted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Targets {
    /// One class per row, `y[i] < names.len()`.
    Classes {
        /// Class of each row.
        y: Vec<usize>,
        /// Class names.
        names: Vec<String>,
    },
    /// Any set of labels per row: a row-major `[n, names.len()]` 0/1 matrix.
    Labels {
        /// Indicator matrix.
        y: Vec<u8>,
        /// Label names.
        names: Vec<String>,
    },
}

impl Targets {
    /// Number of classes or labels.
    pub fn width(&self) -> usize {
        match self {
            Targets::Classes { names, .. } | Targets::Labels { names, .. } => names.len(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { y, .. } => y.len(),
            Targets::Labels { y, names } => y.len() / names.len().max(1),
        }
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class or label names.
    pub fn names(&self) -> &[String] {
        match self {
            Targets::Classes { names, .. } | Targets::Labels { names, .. } => names,
        }
    }

    /// True for multilabel targets.
    pub fn is_multilabel(&self) -> bool {
        matches!(self, Targets::Labels { .. })
    }

    /// Row `i` as 0/1 values (one-hot for classes).
    pub fn indicator_row(&self, i: usize) -> Vec<u8> {
        match self {
            Targets::Classes { y, names } => (0..names.len()).map(|c| u8::from(y[i] == c)).collect(),
            Targets::Labels { y, names } => y[i * names.len()..(i + 1) * names.len()].to_vec(),
        }
    }
}

/// K aligned views and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiviewData {
    /// The modalities, each with one row per sample.
    pub views: Vec<View>,
    /// The targets, one per sample.
    pub targets: Targets,
}

/// Row indices of the three splits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Model-selection rows (early stopping, search).
    pub dev: Vec<usize>,
    /// Held-out rows, scored once.
    pub test: Vec<usize>,
}

impl MultiviewData {
    /// Checks that every view has the same number of rows as the targets,
    /// and there are at least 2 classes or 1 label. Values may be NaN
    /// (missing); [`check_finite`](Self::check_finite) refuses them.
    /// `source` names what the data came from, for the error.
    pub fn validate(&self, source: &Path) -> Result<()> {
        let n = self.targets.len();
        if n == 0 {
            return Err(GmuError::data(source, "no sample"));
        }
        for v in &self.views {
            if v.dim == 0 || v.values.len() != n * v.dim {
                return Err(GmuError::data(
                    source,
                    format!("view '{}' has {} rows of {} values; the labels have {n} rows", v.name, v.len(), v.dim),
                ));
            }
        }
        if !self.targets.is_multilabel() && self.targets.width() < 2 {
            return Err(GmuError::data(source, "the labels hold a single class; nothing to learn"));
        }
        Ok(())
    }

    /// Checks that every value is finite: training takes no missing or
    /// infinite value. `source` names what the data came from, for the error.
    pub fn check_finite(&self, source: &Path) -> Result<()> {
        for v in &self.views {
            if let Some(k) = v.values.iter().position(|x| !x.is_finite()) {
                return Err(GmuError::data(
                    source,
                    format!(
                        "view '{}', row {}, column {}: {} (training needs every value; a partly missing row can be imputed: impute = mean)",
                        v.name,
                        k / v.dim,
                        k % v.dim,
                        v.values[k]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the views `views` for training: a row may be entirely missing in
    /// a view (a missing view; the method's missing-view rule applies), but not
    /// only partly (impute it first), and with `one_present` no row may miss
    /// every one of them (a single-view model just skips the rows without its view).
    pub fn check_trainable(&self, source: &Path, views: &[usize], one_present: bool) -> Result<()> {
        for &v in views {
            let view = &self.views[v];
            if let Some(vocab) = view.token_vocab() {
                view.check_tokens(0..view.len(), vocab).map_err(|m| GmuError::data(source, m))?;
            }
            for r in 0..view.len() {
                let row = view.row(r);
                if let Some(c) = row.iter().position(|x| x.is_nan())
                    && !row.iter().all(|x| x.is_nan())
                {
                    return Err(GmuError::data(
                        source,
                        format!(
                            "view '{}', row {r}, column {c}: NaN in a row that is not entirely missing \
                             (a partly missing row can be imputed: impute = mean)",
                            view.name
                        ),
                    ));
                }
            }
        }
        if !one_present {
            return Ok(());
        }
        if let Some(r) =
            (0..self.len()).find(|&r| views.iter().all(|&v| self.views[v].row(r).iter().all(|x| x.is_nan())))
        {
            let names: Vec<&str> = views.iter().map(|&v| self.views[v].name.as_str()).collect();
            return Err(GmuError::data(source, format!("row {r}: every view ({}) is missing", names.join(", "))));
        }
        Ok(())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True with no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of the view called `name`.
    pub fn view_index(&self, name: &str) -> Result<usize> {
        self.views.iter().position(|v| v.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.views.iter().map(|v| v.name.as_str()).collect();
            GmuError::invalid("modalities", format!("no view '{name}'; the data has {}", names.join(", ")))
        })
    }

    /// Reads one file per view and the labels (see the [module docs](self)).
    pub fn from_files(view_paths: &[&Path], labels: LabelSource<'_>) -> Result<MultiviewData> {
        if view_paths.is_empty() {
            return Err(GmuError::invalid("view_paths", "give at least one view file"));
        }
        let mut views = Vec::new();
        // The label column as first found, and the file it came from.
        let mut label_strings: Option<(Vec<String>, &Path)> = None;
        for &path in view_paths {
            let column = match labels {
                LabelSource::Column(name) => Some(name),
                LabelSource::File(_) => None,
            };
            let (view, found) = read_view(path, column)?;
            match (found, &label_strings) {
                (Some(found), None) => label_strings = Some((found, path)),
                (Some(found), Some((first, first_path))) => {
                    if let Some(r) = (0..found.len().min(first.len())).find(|&r| found[r].trim() != first[r].trim()) {
                        return Err(GmuError::data(
                            path,
                            format!(
                                "line {}: label '{}' here, '{}' in {}; the view files disagree on the row's label",
                                r + 2,
                                found[r],
                                first[r],
                                first_path.display()
                            ),
                        ));
                    }
                }
                (None, _) => {}
            }
            views.push(view);
        }
        let (targets, source) = match labels {
            LabelSource::File(path) => (read_label_file(path)?, path),
            LabelSource::Column(name) => {
                let (strings, path) = label_strings.ok_or_else(|| {
                    let files: Vec<String> = view_paths.iter().map(|p| p.display().to_string()).collect();
                    GmuError::invalid("label_column", format!("no column '{name}' in {}", files.join(", ")))
                })?;
                (targets_from_strings(path, &strings)?, path)
            }
        };
        for (view, &path) in views.iter().zip(view_paths) {
            if view.len() != targets.len() {
                return Err(GmuError::data(
                    path,
                    format!("{} rows; the labels ({}) have {}", view.len(), source.display(), targets.len()),
                ));
            }
        }
        let data = MultiviewData { views, targets };
        data.validate(view_paths[0])?;
        Ok(data)
    }

    /// A stratified split: each class's rows are shuffled with `seed` and cut
    /// into `dev` and `test` shares (rounded, at least one row each where the
    /// class has three or more), the rest train. Multilabel targets are split
    /// at random, without stratification.
    pub fn split(&self, dev: f64, test: f64, seed: u64) -> Result<Split> {
        if !(0.0..1.0).contains(&dev) || !(0.0..1.0).contains(&test) || dev + test >= 1.0 {
            return Err(GmuError::invalid(
                "dev/test",
                format!("shares must be in [0, 1) and sum below 1, got {dev} and {test}"),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let groups: Vec<Vec<usize>> = match &self.targets {
            Targets::Classes { y, names } => {
                let mut g = vec![Vec::new(); names.len()];
                for (i, &c) in y.iter().enumerate() {
                    g[c].push(i);
                }
                g
            }
            Targets::Labels { .. } => vec![(0..self.len()).collect()],
        };
        let mut split = Split::default();
        for mut rows in groups {
            rows.shuffle(&mut rng);
            let n = rows.len();
            let share = |f: f64| if n >= 3 && f > 0.0 { ((f * n as f64).round() as usize).max(1) } else { 0 };
            let (n_test, n_dev) = (share(test), share(dev));
            split.test.extend_from_slice(&rows[..n_test]);
            split.dev.extend_from_slice(&rows[n_test..n_test + n_dev]);
            split.train.extend_from_slice(&rows[n_test + n_dev..]);
        }
        for part in [&mut split.train, &mut split.dev, &mut split.test] {
            part.sort_unstable();
        }
        // A dev share of 0 asks for no dev rows (training in steps needs none), a test share of 0
        // for no test rows (a model fitted on all it is given, as from Python).
        if split.train.is_empty() || (split.dev.is_empty() && dev > 0.0) || (split.test.is_empty() && test > 0.0) {
            return Err(GmuError::invalid(
                "dev/test",
                format!("the split of {} samples leaves an empty part", self.len()),
            ));
        }
        Ok(split)
    }
}

/// Where the labels come from.
#[derive(Clone, Copy, Debug)]
pub enum LabelSource<'a> {
    /// A column of the view files (`last` for the last column).
    Column(&'a str),
    /// Their own file.
    File(&'a Path),
}

/// Numbers the distinct label strings in sorted order (numeric order when all
/// are integers).
pub fn classes_from_strings(strings: &[String]) -> Targets {
    let numeric: Option<Vec<i64>> = strings.iter().map(|s| s.trim().parse::<i64>().ok()).collect();
    let names: Vec<String> = match &numeric {
        Some(v) => {
            let mut u: Vec<i64> = v.clone();
            u.sort_unstable();
            u.dedup();
            u.iter().map(|x| x.to_string()).collect()
        }
        None => {
            let mut u: Vec<String> = strings.iter().map(|s| s.trim().to_string()).collect();
            u.sort();
            u.dedup();
            u
        }
    };
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let y = strings
        .iter()
        .map(|s| {
            let key = match &numeric {
                Some(_) => s.trim().parse::<i64>().expect("checked above").to_string(),
                None => s.trim().to_string(),
            };
            index[key.as_str()]
        })
        .collect();
    Targets::Classes { y, names }
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Reads one view file; returns the view and, if `label_column` is in this
/// file, that column's strings.
pub fn read_view(path: &Path, label_column: Option<&str>) -> Result<(View, Option<Vec<String>>)> {
    if path.extension().is_some_and(|e| e == "npy") {
        let (shape, values) = read_npy(path)?;
        if shape.len() != 2 {
            return Err(GmuError::data(path, format!("expected a 2-D array [samples, features], got shape {shape:?}")));
        }
        if shape[1] == 0 {
            return Err(GmuError::data(
                path,
                format!("shape {shape:?} has 0 columns: a view needs at least one feature"),
            ));
        }
        // a feature file written by `gmu encode` names its encoder in a sidecar
        let encoder = crate::encoders::encode::read_sidecar(path)?.map(|e| e.encoder);
        if let Some(e) = encoder.as_ref().filter(|e| e.dim != shape[1]) {
            return Err(GmuError::data(
                path,
                format!("has {} columns but its sidecar says the {} encoder wrote {}", shape[1], e.encoder, e.dim),
            ));
        }
        return Ok((
            View { name: stem(path), dim: shape[1], values, image: None, prescaled: false, encoder, tokens: None },
            None,
        ));
    }
    let bytes = crate::io::read_all(path)?;
    read_view_csv(path, &bytes, label_column)
}

/// Reads a view CSV's header row: the column names, where the label column
/// is (`label_column`, or `last`; `None` when absent or not asked for), and
/// the number of feature columns. An empty header or no feature column is an
/// error naming `path`.
pub fn read_csv_header<R: std::io::Read>(
    path: &Path,
    reader: &mut csv::Reader<R>,
    label_column: Option<&str>,
) -> Result<(Vec<String>, Option<usize>, usize)> {
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| GmuError::data(path, format!("cannot read the header row: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || header.iter().all(|h| h.is_empty()) {
        return Err(GmuError::data(path, "empty file: expected a header row and one sample per row"));
    }
    let label_at = match label_column {
        Some("last") => Some(header.len() - 1),
        Some(name) => header.iter().position(|h| h == name),
        None => None,
    };
    let dim = header.len() - usize::from(label_at.is_some());
    if dim == 0 {
        return Err(GmuError::data(path, "no feature column besides the label"));
    }
    Ok((header, label_at, dim))
}

/// Parses CSV bytes (header row, then numbers) as a view; `path` names the
/// source in errors.
pub fn read_view_csv(path: &Path, bytes: &[u8], label_column: Option<&str>) -> Result<(View, Option<Vec<String>>)> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let (header, label_at, dim) = read_csv_header(path, &mut reader, label_column)?;
    let mut values = Vec::new();
    let mut labels = label_at.map(|_| Vec::new());
    for (r, record) in reader.records().enumerate() {
        parse_record(path, r + 2, &header, label_at, record, &mut values, labels.as_mut())?;
    }
    if values.is_empty() {
        return Err(GmuError::data(path, "no sample after the header row"));
    }
    Ok((View { name: stem(path), dim, values, image: None, prescaled: false, encoder: None, tokens: None }, labels))
}

/// Targets from one label string per row: single-label classes, or label
/// sets when any row holds a `|` (`Drama|Romance`). A blank label is an error
/// naming its line.
pub fn targets_from_strings(path: &Path, strings: &[String]) -> Result<Targets> {
    if let Some(r) = strings.iter().position(|s| s.trim().is_empty()) {
        return Err(GmuError::data(
            path,
            format!("line {}: blank label (every row needs one; label sets are written a|b)", r + 2),
        ));
    }
    if !strings.iter().any(|s| s.contains('|')) {
        return Ok(classes_from_strings(strings));
    }
    let sets: Vec<Vec<String>> = strings.iter().map(|s| s.split('|').map(|l| l.trim().to_string()).collect()).collect();
    if let Some(r) = sets.iter().position(|set| set.iter().any(String::is_empty)) {
        return Err(GmuError::data(path, format!("line {}: '{}' has an empty label in its set", r + 2, strings[r])));
    }
    let mut names: Vec<String> = sets.iter().flatten().cloned().collect();
    names.sort();
    names.dedup();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut y = vec![0u8; sets.len() * names.len()];
    for (r, set) in sets.iter().enumerate() {
        for label in set {
            y[r * names.len() + index[label.as_str()]] = 1;
        }
    }
    Ok(Targets::Labels { y, names })
}

/// One CSV record of a view: its numbers appended to `values` (an empty cell
/// is missing: NaN; a row of a view that is entirely missing is a missing view,
/// see `predict`; training refuses it), its label to `labels`. `line` is the
/// 1-based line for errors.
pub fn parse_record(
    path: &Path,
    line: usize,
    header: &[String],
    label_at: Option<usize>,
    record: std::result::Result<csv::StringRecord, csv::Error>,
    values: &mut Vec<f32>,
    mut labels: Option<&mut Vec<String>>,
) -> Result<()> {
    let record = record.map_err(|e| GmuError::data(path, format!("line {line}: {e}")))?;
    if record.len() != header.len() {
        return Err(GmuError::data(
            path,
            format!("line {line}: {} fields, the header has {}", record.len(), header.len()),
        ));
    }
    for (c, field) in record.iter().enumerate() {
        if Some(c) == label_at {
            if let Some(labels) = labels.as_mut() {
                labels.push(field.to_string());
            }
            continue;
        }
        let field = field.trim();
        let x: f32 = if field.is_empty() {
            f32::NAN
        } else {
            field.parse().map_err(|_| {
                GmuError::data(path, format!("line {line}, column '{}': '{field}' is not a number", header[c]))
            })?
        };
        if x.is_infinite() {
            return Err(GmuError::data(
                path,
                format!("line {line}, column '{}': {x} (expected a finite number)", header[c]),
            ));
        }
        values.push(x);
    }
    Ok(())
}

/// Reads a label file: a CSV with one column of labels (or `|`-separated
/// label sets), a multi-hot CSV (a header of label names, one 0/1 column
/// each), a 1-D NPY array of integer classes or a 2-D 0/1 NPY array.
pub fn read_label_file(path: &Path) -> Result<Targets> {
    if path.extension().is_some_and(|e| e == "npy") {
        let (shape, values) = read_npy(path)?;
        if let [n, l] = shape[..]
            && l > 1
        {
            if let Some(k) = values.iter().position(|&v| v != 0.0 && v != 1.0) {
                return Err(GmuError::data(
                    path,
                    format!("row {}, column {}: {} (a multi-hot array holds 0 or 1)", k / l, k % l, values[k]),
                ));
            }
            let y = values.iter().map(|&v| v as u8).collect();
            debug_assert_eq!(values.len(), n * l);
            return Ok(Targets::Labels { y, names: (0..l).map(|j| j.to_string()).collect() });
        }
        if shape.len() != 1 && !(shape.len() == 2 && shape[1] == 1) {
            return Err(GmuError::data(
                path,
                format!("expected a 1-D label array or a 2-D 0/1 array, got shape {shape:?}"),
            ));
        }
        let strings = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.fract() == 0.0 {
                    Ok((v as i64).to_string())
                } else {
                    Err(GmuError::data(path, format!("element {i}: {v} is not an integer label")))
                }
            })
            .collect::<Result<Vec<String>>>()?;
        return Ok(classes_from_strings(&strings));
    }
    let bytes = crate::io::read_all(path)?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(&bytes[..]);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| GmuError::data(path, format!("cannot read the header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.len() > 1 {
        // Multi-hot: one 0/1 column per label.
        if let Some(j) = header.iter().position(String::is_empty) {
            return Err(GmuError::data(
                path,
                format!("column {}: a multi-hot label file names every label in its header", j + 1),
            ));
        }
        if let Some(j) = (1..header.len()).find(|&j| header[..j].contains(&header[j])) {
            return Err(GmuError::data(
                path,
                format!("line 1, column {}: label '{}' is named twice in the header", j + 1, header[j]),
            ));
        }
        let mut y = Vec::new();
        for (r, record) in reader.records().enumerate() {
            let line = r + 2;
            let record = record.map_err(|e| GmuError::data(path, format!("line {line}: {e}")))?;
            if record.len() != header.len() {
                return Err(GmuError::data(
                    path,
                    format!("line {line}: {} fields, the header has {}", record.len(), header.len()),
                ));
            }
            for (j, cell) in record.iter().enumerate() {
                y.push(match cell.trim() {
                    "0" => 0,
                    "1" => 1,
                    other => {
                        return Err(GmuError::data(
                            path,
                            format!(
                                "line {line}, column '{}': '{other}' (a multi-hot label file holds 0 or 1)",
                                header[j]
                            ),
                        ));
                    }
                });
            }
        }
        if y.is_empty() {
            return Err(GmuError::data(path, "no label after the header row"));
        }
        return Ok(Targets::Labels { y, names: header });
    }
    // The CSV reader skips empty lines; in a one-column label file an empty line is a blank label.
    let text = String::from_utf8_lossy(&bytes);
    if let Some(r) = text.lines().skip(1).position(|l| l.trim().is_empty())
        && text.lines().skip(1 + r).any(|l| !l.trim().is_empty())
    {
        return Err(GmuError::data(
            path,
            format!("line {}: blank label (every row needs one; label sets are written a|b)", r + 2),
        ));
    }
    let mut out = Vec::new();
    for (r, record) in reader.records().enumerate() {
        let record = record.map_err(|e| GmuError::data(path, format!("line {}: {e}", r + 2)))?;
        if record.len() != 1 {
            return Err(GmuError::data(
                path,
                format!("line {}: expected one label column, got {} fields", r + 2, record.len()),
            ));
        }
        out.push(record[0].to_string());
    }
    if out.is_empty() {
        return Err(GmuError::data(path, "no label after the header row"));
    }
    targets_from_strings(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, items 10 and 20: token ids are whole numbers inside the
    /// vocabulary (a fractional id was truncated, one past it indexed
    /// outside the embedding); a missing row is skipped.
    #[test]
    fn token_ids_are_checked_by_row_and_column() {
        let view = View {
            name: "plot".into(),
            dim: 3,
            values: vec![1.0, 2.0, 0.0, f32::NAN, f32::NAN, f32::NAN, 4.0, 2.5, 0.0, 7.0, 99.0, 0.0],
            image: None,
            prescaled: false,
            encoder: None,
            tokens: Some(10),
        };
        assert!(view.check_tokens(0..2, 10).is_ok());
        let e = view.check_tokens(0..4, 10).unwrap_err();
        assert!(e.contains("view 'plot', row 2, column 1: token id 2.5"), "{e}");
        let e = view.check_tokens([3], 10).unwrap_err();
        assert!(e.contains("row 3, column 1: token id 99 (expected a whole number in 0..10"), "{e}");
    }

    /// Issue 20, item 20: a multi-hot header naming a label twice is refused.
    #[test]
    fn a_label_named_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, "cat,dog,cat\n1,0,0\n0,1,0\n").unwrap();
        let e = read_label_file(&path).unwrap_err().to_string();
        assert!(e.contains("labels.csv") && e.contains("line 1, column 3: label 'cat' is named twice"), "{e}");
    }
    use crate::io::npy::npy_with_header;

    fn write(dir: &Path, name: &str, text: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        npy_with_header(descr, shape, data)
    }

    #[test]
    fn reads_csv_views_with_a_label_column_and_an_npy_view() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.csv", b"x,y,label\n1,2,cat\n3,4,dog\n5,6,cat\n");
        let data: Vec<u8> = [1.5f32, -2.0, 0.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = write(dir.path(), "b.npy", &npy("<f4", "(3, 1)", &data));
        let d = MultiviewData::from_files(&[&a, &b], LabelSource::Column("label")).unwrap();
        assert_eq!(d.views[0].values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(d.views[1].values, vec![1.5, -2.0, 0.25]);
        assert_eq!(d.views[1].name, "b");
        assert_eq!(d.targets, Targets::Classes { y: vec![0, 1, 0], names: vec!["cat".into(), "dog".into()] });
    }

    #[test]
    fn numeric_labels_are_numbered_in_numeric_order() {
        let t = classes_from_strings(&["10".into(), "9".into(), "10".into()]);
        assert_eq!(t, Targets::Classes { y: vec![1, 0, 1], names: vec!["9".into(), "10".into()] });
    }

    #[test]
    fn bad_files_name_the_file_and_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let labels = write(dir.path(), "y.csv", b"y\n0\n1\n");
        let cases: [(&str, &[u8], &str); 5] = [
            ("text.csv", b"x\n1\nabc\n", "line 3, column 'x': 'abc' is not a number"),
            ("inf.csv", b"x\n1\ninf\n", "line 3, column 'x': inf"),
            ("short.csv", b"x,y\n1,2\n3\n", "line 3"),
            ("rows.csv", b"x\n1\n2\n3\n", "rows.csv: 3 rows; the labels"),
            ("empty.csv", b"", "empty file"),
        ];
        for (name, text, expected) in cases {
            let p = write(dir.path(), name, text);
            let err = MultiviewData::from_files(&[&p], LabelSource::File(&labels)).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(expected), "{name}: {err}");
        }
        let p = write(dir.path(), "bad.npy", &npy("<f4", "(2, 2)", &[0u8; 12]));
        let err = MultiviewData::from_files(&[&p], LabelSource::File(&labels)).unwrap_err().to_string();
        assert!(err.contains("bad.npy") && err.contains("needs 16 data bytes, the file has 12"), "{err}");
        // A lying header: the product of its shape overflows (it wrapped to 0 bytes before).
        for (shape, needed) in [
            ("(4611686018427387904, 4611686018427387904)", "more than 2^64"),
            ("(9223372036854775808, 2)", "more than 2^64"),
        ] {
            let p = write(dir.path(), "huge.npy", &npy("<f4", shape, &[]));
            let err = MultiviewData::from_files(&[&p], LabelSource::File(&labels)).unwrap_err().to_string();
            assert!(err.contains(&format!("needs {needed} data bytes, the file has 0")), "{shape}: {err}");
            let err = crate::data::stream::ViewStream::open(&p, None).err().unwrap().to_string();
            assert!(err.contains("huge.npy") && err.contains("does not match"), "{err}");
        }
        let p = write(dir.path(), "flat.npy", &npy("<f4", "(60, 0)", &[]));
        let err = read_view(&p, None).unwrap_err().to_string();
        assert!(err.contains("flat.npy") && err.contains("0 columns"), "{err}");
        // NaN and empty cells read as missing; training refuses them.
        let p = write(dir.path(), "nan.csv", b"x,z\nNaN,1\n,\n");
        let data = MultiviewData::from_files(&[&p], LabelSource::File(&labels)).unwrap();
        assert!(data.views[0].values[0].is_nan() && data.views[0].values[2..].iter().all(|x| x.is_nan()));
        let err = data.check_finite(&p).unwrap_err().to_string();
        assert!(err.contains("nan.csv") && err.contains("view 'nan', row 0, column 0: NaN"), "{err}");
        let ok = write(dir.path(), "ok.csv", b"x\n1\n2\n");
        let err = MultiviewData::from_files(&[&ok], LabelSource::Column("nope")).unwrap_err().to_string();
        assert!(err.contains("label_column") && err.contains("no column 'nope' in") && err.contains("ok.csv"), "{err}");
    }

    #[test]
    fn label_files_give_classes_label_sets_or_multi_hot_and_name_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let view = write(dir.path(), "v.csv", b"x\n1\n2\n3\n");
        let read = |name: &str, text: &[u8]| {
            MultiviewData::from_files(&[&view], LabelSource::File(&write(dir.path(), name, text)))
        };
        let sets = read("sets.csv", b"y\nb|a\na\nc| a\n").unwrap();
        assert_eq!(
            sets.targets,
            Targets::Labels { y: vec![1, 1, 0, 1, 0, 0, 1, 0, 1], names: vec!["a".into(), "b".into(), "c".into()] }
        );
        let hot = read("hot.csv", b"a,b,c\n1,1,0\n1,0,0\n1,0,1\n").unwrap();
        assert_eq!(hot.targets, sets.targets);
        let classes = read("y.csv", b"y\ndog\ncat\ndog\n").unwrap();
        assert_eq!(classes.targets, Targets::Classes { y: vec![1, 0, 1], names: vec!["cat".into(), "dog".into()] });
        for (name, text, expected) in [
            ("blank.csv", &b"y\na\n\nb\n"[..], "line 3: blank label"),
            ("spaces.csv", b"y\na\n  \nb\n", "line 3: blank label"),
            ("hole.csv", b"y\na||b\na\nb\n", "line 2: 'a||b' has an empty label"),
            ("cell.csv", b"a,b\n1,0\n0,x\n1,1\n", "line 3, column 'b': 'x'"),
            ("short.csv", b"y\na\nb\n", "v.csv: 3 rows; the labels"),
        ] {
            let err = read(name, text).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
        // Two view files that disagree on a row's label.
        let a = write(dir.path(), "a.csv", b"x,y\n1,p\n2,q\n");
        let b = write(dir.path(), "b.csv", b"z,y\n1,p\n2,r\n");
        let err = MultiviewData::from_files(&[&a, &b], LabelSource::Column("y")).unwrap_err().to_string();
        assert!(err.contains("b.csv: line 3: label 'r' here, 'q' in") && err.contains("a.csv"), "{err}");
    }

    #[test]
    fn stratified_split_keeps_class_shares_and_is_seeded() {
        let y: Vec<usize> = (0..100).map(|i| usize::from(i >= 80)).collect();
        let d = MultiviewData {
            views: vec![View {
                name: "v".into(),
                dim: 1,
                values: vec![0.0; 100],
                image: None,
                prescaled: false,
                encoder: None,
                tokens: None,
            }],
            targets: Targets::Classes { y: y.clone(), names: vec!["a".into(), "b".into()] },
        };
        let s = d.split(0.2, 0.2, 3).unwrap();
        assert_eq!((s.train.len(), s.dev.len(), s.test.len()), (60, 20, 20));
        assert_eq!(s.test.iter().filter(|&&i| y[i] == 1).count(), 4);
        assert_eq!(s.dev.iter().filter(|&&i| y[i] == 1).count(), 4);
        assert_eq!(s, d.split(0.2, 0.2, 3).unwrap());
        assert_ne!(s, d.split(0.2, 0.2, 4).unwrap());
        let mut all: Vec<usize> = s.train.iter().chain(&s.dev).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        // A test share of 0 keeps no test rows; the same seed draws the same dev rows' shares.
        let no_test = d.split(0.2, 0.0, 3).unwrap();
        assert_eq!((no_test.train.len(), no_test.dev.len(), no_test.test.len()), (80, 20, 0));
        assert!(d.split(0.2, 0.0, 3).unwrap() == no_test);
    }
}
