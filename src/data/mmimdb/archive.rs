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
        let data = MultiviewData { views, targets: self.genres() };
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
}
