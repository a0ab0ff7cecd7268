//! The preprocessed `multimodal_imdb.hdf5` (h5py/Fuel): the plot and poster
//! features as two views, the genres, and the split from Fuel's compound
//! `split` attribute; read with the pure-Rust HDF5 reader.

use std::collections::BTreeMap;
use std::path::Path;

use hdf5_reader::messages::datatype::{StringSize, VarLenKind};
use hdf5_reader::{ByteOrder, Datatype, Hdf5File};

use super::{DEFAULT_SEQUENCE_TOKENS, Mmimdb, TextView, err};
use crate::data::multiview::{MultiviewData, Split, Targets, View};
use crate::error::{GmuError, Result};

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
        [_, 0] => {
            Err(err(path, format!("dataset '{name}' has 0 columns (shape {:?}); expected at least 1", ds.shape())))
        }
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::data::mmimdb::GENRES;

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
            // Issue 20, item 9: a [N, 0] dataset used to panic on a chunk size of 0.
            ("mmimdb_bad_width.h5", "dataset 'features' has 0 columns (shape [12, 0])"),
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
}
