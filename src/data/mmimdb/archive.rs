//! The raw MM-IMDb archive (`split.json`, `dataset/<id>.json` and
//! `<id>.jpeg`), validated movie by movie, with features from pluggable
//! [`FeatureExtractor`]s or the pretrained encoders (cached beside the archive).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{GENRES, err};
use crate::data::multiview::{MultiviewData, Split, Targets, View};
use crate::data::text::HashingEncoder;
use crate::encoders::text::normalize_plot;
use crate::error::{GmuError, Result};

/// One movie of the raw archive.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveMovie {
    /// IMDb id (the file stem).
    pub id: String,
    /// The longest string of the JSON's `plot` list; empty where the movie
    /// has no plot (a missing text view).
    pub plot: String,
    /// Indices into [`Archive::genres`].
    pub genres: Vec<usize>,
    /// The poster file, `dataset/<id>.jpeg` (absent where the movie has no
    /// poster: a missing visual view).
    pub poster: PathBuf,
}

impl ArchiveMovie {
    /// What the movie lacks, if anything: `"no plot"`, `"no poster"`, `"no genre"`.
    pub fn lacks(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.plot.trim().is_empty() {
            out.push("no plot");
        }
        if !self.poster.is_file() {
            out.push("no poster");
        }
        if self.genres.is_empty() {
            out.push("no genre");
        }
        out
    }
}

/// How the raw archive is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// The genres to predict, in this order (others are dropped and
    /// counted); `None`: the archive's own (see [`read_archive`]).
    pub genres: Option<Vec<String>>,
    /// Leave out movies with no plot, no poster or no genre, as the paper's
    /// pipeline did; otherwise they are kept with that view missing.
    pub drop_incomplete: bool,
}

/// The raw archive, read and validated.
#[derive(Clone, Debug)]
pub struct Archive {
    /// Movies in split order: train, then dev, then test.
    pub movies: Vec<ArchiveMovie>,
    /// Row indices of each split into `movies`.
    pub split: Split,
    /// The genres predicted, the targets' columns in order.
    pub genres: Vec<String>,
    /// Genre names found outside [`genres`](Self::genres), with how many times each was dropped.
    pub dropped_genres: BTreeMap<String, usize>,
    /// Movies kept with a missing view or no genre: id and what it lacks.
    pub incomplete: Vec<(String, String)>,
    /// Movies left out by [`ArchiveOptions::drop_incomplete`]: id and what it lacked.
    pub dropped_movies: Vec<(String, String)>,
}

/// Largest `split.json` or movie JSON read (the real ones are a few hundred kB
/// and a few kB): a bigger file is refused before it is read.
const MAX_JSON_BYTES: u64 = 64 << 20;

/// Reads a JSON file of at most `cap` bytes that must be a regular file.
fn read_json_file(path: &Path, cap: u64) -> Result<serde_json::Value> {
    let text = crate::io::read_text_capped(path, cap)?;
    serde_json::from_str(&text).map_err(|e| err(path, format!("not JSON ({e})")))
}

/// An id of `split.json` is a file name inside `dataset/` and nothing else:
/// not empty, no path separator, not `.` or `..`, no NUL.
fn check_id(split_path: &Path, id: &str) -> Result<()> {
    let plain = !id.is_empty()
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\', '\0'])
        && Path::new(id).components().count() == 1;
    if plain {
        Ok(())
    } else {
        Err(err(split_path, format!("id {id:?} is not a plain name: ids name files inside dataset/, nothing else")))
    }
}

/// Reads the raw archive rooted at `root` (the folder holding `split.json` and
/// `dataset/`). Each listed movie must have its JSON (a `plot` list of strings
/// and a `genres` list). A movie with no plot, no poster or no genre is kept
/// with that view missing (and listed in [`Archive::incomplete`]) or, with
/// [`ArchiveOptions::drop_incomplete`], left out.
///
/// The genres are `options.genres` where given; otherwise, an archive that
/// holds all 23 of the paper's [`GENRES`] is MM-IMDb, and its genres are those
/// 23 in the paper's order; any other archive's genres are all the names it
/// holds, from the most to the least frequent (ties by name). Genres outside
/// the set are dropped and counted.
pub fn read_archive(root: &Path) -> Result<Archive> {
    read_archive_with(root, &ArchiveOptions::default())
}

/// [`read_archive`] with options.
pub fn read_archive_with(root: &Path, options: &ArchiveOptions) -> Result<Archive> {
    let split_path = root.join("split.json");
    let value = read_json_file(&split_path, MAX_JSON_BYTES)?;
    let lists: BTreeMap<String, Vec<String>> = serde_json::from_value(value).map_err(|e| {
        err(&split_path, format!("expected {{\"train\": [ids], \"dev\": [ids], \"test\": [ids]}} ({e})"))
    })?;
    // Every list's ids are checked before any movie is read.
    let mut seen = std::collections::HashSet::new();
    for name in ["train", "dev", "test"] {
        let ids = lists.get(name).ok_or_else(|| err(&split_path, format!("no '{name}' list")))?;
        if ids.is_empty() {
            return Err(err(&split_path, format!("the '{name}' list is empty")));
        }
        for id in ids {
            check_id(&split_path, id)?;
            if !seen.insert(id.clone()) {
                return Err(err(&split_path, format!("id '{id}' is listed twice")));
            }
        }
    }
    let mut raw = Vec::new();
    for name in ["train", "dev", "test"] {
        for id in &lists[name] {
            raw.push((name, read_movie(root, id)?));
        }
    }
    let genres: Vec<String> = match &options.genres {
        Some(g) => {
            if g.is_empty() {
                return Err(GmuError::invalid("genres", "an empty list; give at least one genre"));
            }
            let mut unique = std::collections::HashSet::new();
            if let Some(twice) = g.iter().find(|n| !unique.insert(n.as_str())) {
                return Err(GmuError::invalid("genres", format!("'{twice}' is listed twice")));
            }
            g.clone()
        }
        None => archive_genres(raw.iter().map(|(_, (_, names))| names)),
    };
    let mut movies = Vec::new();
    let mut split = Split::default();
    let mut dropped_genres = BTreeMap::new();
    let (mut incomplete, mut dropped_movies) = (Vec::new(), Vec::new());
    for (part, (mut movie, names)) in raw {
        for g in names {
            match genres.iter().position(|k| *k == g) {
                Some(i) if !movie.genres.contains(&i) => movie.genres.push(i),
                Some(_) => {}
                None => *dropped_genres.entry(g).or_insert(0) += 1,
            }
        }
        movie.genres.sort_unstable();
        let lacks = movie.lacks();
        if !lacks.is_empty() {
            let entry = (movie.id.clone(), lacks.join(", "));
            if options.drop_incomplete {
                dropped_movies.push(entry);
                continue;
            }
            incomplete.push(entry);
        }
        match part {
            "train" => split.train.push(movies.len()),
            "dev" => split.dev.push(movies.len()),
            _ => split.test.push(movies.len()),
        }
        movies.push(movie);
    }
    for (name, rows) in [("train", &split.train), ("dev", &split.dev), ("test", &split.test)] {
        if rows.is_empty() {
            return Err(err(&split_path, format!("no movie of the '{name}' list is complete (--drop-incomplete)")));
        }
    }
    Ok(Archive { movies, split, genres, dropped_genres, incomplete, dropped_movies })
}

/// The genres of an archive that names none: the paper's 23 where it holds
/// them all, otherwise every name, most frequent first.
fn archive_genres<'a>(lists: impl Iterator<Item = &'a Vec<String>>) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for list in lists {
        let unique: std::collections::BTreeSet<&str> = list.iter().map(String::as_str).collect();
        for g in unique {
            *counts.entry(g).or_insert(0) += 1;
        }
    }
    if GENRES.iter().all(|g| counts.contains_key(g)) {
        return GENRES.map(String::from).to_vec();
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.into_iter().map(|(g, _)| g.to_string()).collect()
}

/// One movie's JSON: the movie (genres not yet resolved) and its genre names.
fn read_movie(root: &Path, id: &str) -> Result<(ArchiveMovie, Vec<String>)> {
    let json_path = root.join("dataset").join(format!("{id}.json"));
    let poster = root.join("dataset").join(format!("{id}.jpeg"));
    let value = read_json_file(&json_path, MAX_JSON_BYTES)?;
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
    let plot = if plot.trim().is_empty() { String::new() } else { plot };
    let names = strings("genres")?;
    Ok((ArchiveMovie { id: id.to_string(), plot, genres: Vec::new(), poster }, names))
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
    /// The movies' genres as multilabel targets over [`genres`](Self::genres).
    fn targets(&self) -> Targets {
        let width = self.genres.len();
        let mut y = vec![0u8; self.movies.len() * width];
        for (i, m) in self.movies.iter().enumerate() {
            for &g in &m.genres {
                y[i * width + g] = 1;
            }
        }
        Targets::Labels { y, names: self.genres.clone() }
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
        Ok(MultiviewData { views, targets: self.targets() })
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
            if !m.poster.is_file() {
                h.update(u64::MAX.to_le_bytes());
                continue;
            }
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
            // features made in bf16 (GMU_ENCODER_PRECISION=bf16 on AMX or AVX512-BF16) are cached apart from f32 ones
            let bf16 = matches!(
                spec.encoder,
                crate::encoders::EncoderKind::MiniLm | crate::encoders::EncoderKind::EffnetLite0
            ) && crate::device::is_cpu(device)
                && crate::cpu::bf16::encoder_precision() == crate::cpu::bf16::EncoderPrecision::Bf16;
            let key = {
                use sha2::{Digest, Sha256};
                let mut h = Sha256::new();
                h.update(serde_json::to_string(spec).expect("spec serialises").as_bytes());
                h.update(digest.as_bytes());
                if bf16 {
                    h.update(b"bf16");
                }
                crate::encoders::fetch::hex(&h.finalize()[..8])
            };
            let path = cache.join(format!("{name}-{}-{key}.npy", spec.label()));
            let cached = crate::encoders::encode::read_sidecar(&path)?
                .filter(|e| &e.encoder == spec && e.rows == self.movies.len() && path.is_file())
                .filter(|e| e.precision.is_some() == bf16);
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
            let (shape, values) = crate::io::npy::read_npy(&path)?;
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
        let data = MultiviewData { views, targets: self.targets() };
        let [a, b]: [EncodedView; 2] = made.try_into().expect("two views");
        Ok((data, [a, b]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Issue 20, item 24: by default the genres are the archive's own, most frequent first.
        let own = read_archive(dir.path()).unwrap();
        assert_eq!(own.genres, ["News", "Comedy", "Drama", "Film-Noir", "Horror", "Talk-Show"]);
        assert!(own.dropped_genres.is_empty());
        assert_eq!(own.movies[1].genres, vec![0, 4, 5]);
        // --genres: exactly those, the others dropped and counted.
        let options = ArchiveOptions { genres: Some(GENRES.map(String::from).to_vec()), drop_incomplete: false };
        let a = read_archive_with(dir.path(), &options).unwrap();
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
    }

    /// An archive holding all 23 of the paper's genres (the real MM-IMDb) gets
    /// those 23 in the paper's order, whatever their counts; extras are dropped.
    #[test]
    fn the_real_archive_gets_the_papers_23_genres() {
        let mut lists: Vec<Vec<String>> = GENRES.iter().rev().map(|g| vec![g.to_string(), "News".into()]).collect();
        lists.push(vec!["Film-Noir".into(), "Talk-Show".into()]);
        assert_eq!(archive_genres(lists.iter()), GENRES.map(String::from).to_vec());
        lists.remove(3);
        assert_eq!(archive_genres(lists.iter()).len(), 22 + 2, "one of the 23 absent: the archive's own names");
    }

    /// Issue 20, item 1: ids are names inside `dataset/`; `../`, an absolute
    /// path or a separator is refused before any file is read.
    #[test]
    fn ids_cannot_reach_outside_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        write_archive(&root, &MOVIES, "{}");
        std::fs::write(dir.path().join("outside.json"), MOVIES[0].1).unwrap();
        std::fs::write(dir.path().join("outside.jpeg"), b"\xff\xd8").unwrap();
        for id in ["../outside", "../../outside", "/etc/passwd", "a/b", "..", ".", "", "x\\y", "x\0y"] {
            let split = serde_json::json!({"train": ["0000001"], "dev": ["0000002"], "test": [id]});
            std::fs::write(root.join("split.json"), split.to_string()).unwrap();
            let e = read_archive(&root).unwrap_err().to_string();
            assert!(e.contains("split.json") && e.contains("is not a plain name"), "{id:?}: {e}");
        }
    }

    /// Issue 20, item 23: a movie with no poster or an empty plot is kept
    /// with that view missing and listed; --drop-incomplete leaves it out.
    #[test]
    fn incomplete_movies_are_kept_with_a_view_missing_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut movies = MOVIES.to_vec();
        movies.push(("0000004", r#"{"plot": ["", " "], "genres": ["Drama"]}"#));
        write_archive(
            dir.path(),
            &movies,
            r#"{"train": ["0000001", "0000004"], "dev": ["0000002"], "test": ["0000003"]}"#,
        );
        std::fs::remove_file(dir.path().join("dataset/0000003.jpeg")).unwrap();
        let a = read_archive(dir.path()).unwrap();
        assert_eq!(a.movies.len(), 4);
        assert_eq!(
            a.incomplete,
            vec![("0000004".to_string(), "no plot".to_string()), ("0000003".to_string(), "no poster".to_string())]
        );
        assert_eq!(a.movies[1].plot, "");
        let options = ArchiveOptions { genres: None, drop_incomplete: true };
        let a = read_archive_with(dir.path(), &options).unwrap_err().to_string();
        assert!(a.contains("no movie of the 'test' list is complete"), "{a}");
        write_archive(
            dir.path(),
            &movies,
            r#"{"train": ["0000001", "0000004"], "dev": ["0000002"], "test": ["0000003"]}"#,
        );
        let a = read_archive_with(dir.path(), &options).unwrap();
        assert_eq!(a.movies.len(), 3);
        assert_eq!(a.dropped_movies, vec![("0000004".to_string(), "no plot".to_string())]);
        assert_eq!((a.split.train.clone(), a.split.dev.clone(), a.split.test.clone()), (vec![0], vec![1], vec![2]));
    }
}
