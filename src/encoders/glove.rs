//! GloVe 6B 50-d word vectors averaged over a text's words: the paper's kind
//! of text feature (it averaged word2vec), on the paper's normalisation of the
//! plot ([`normalize_plot`]).
//!
//! Punctuation tokens are skipped; a word GloVe does not know is counted as
//! out of vocabulary ([`Glove::coverage`]). A text with no known word gives no
//! features (a missing text view), never a zero vector.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::text::normalize_plot;
use crate::error::{GmuError, Result};

/// The GloVe table: 400,000 words × 50 values, row-major.
pub struct Glove {
    index: HashMap<String, u32>,
    vectors: Vec<f32>,
    dim: usize,
    known: AtomicUsize,
    unknown: AtomicUsize,
}

impl Glove {
    /// Loads the package's `glove_6B_50d_emb.npy` (float32, shape (400000, 50),
    /// stored column-major) and `glove_6B_index.parquet` (the words, in row order).
    pub fn load(vectors: &Path, index: &Path) -> Result<Glove> {
        let words = read_words(index)?;
        let (rows, dim, column_major) = read_f32_matrix(vectors)?;
        if rows.len() != words.len() * dim {
            return Err(GmuError::data(
                vectors,
                format!("{} values for {} words of width {dim}", rows.len(), words.len()),
            ));
        }
        let n = words.len();
        let vectors = if column_major {
            let mut out = vec![0f32; n * dim];
            for d in 0..dim {
                for (w, v) in rows[d * n..(d + 1) * n].iter().enumerate() {
                    out[w * dim + d] = *v;
                }
            }
            out
        } else {
            rows
        };
        Ok(Glove::from_table(words, vectors, dim))
    }

    /// A table from words and their row-major vectors (tests, custom tables).
    pub fn from_table(words: Vec<String>, vectors: Vec<f32>, dim: usize) -> Glove {
        assert_eq!(words.len() * dim, vectors.len(), "one vector per word");
        let mut index = HashMap::with_capacity(words.len());
        for (i, w) in words.into_iter().enumerate() {
            index.entry(w).or_insert(i as u32);
        }
        Glove { index, vectors, dim, known: AtomicUsize::new(0), unknown: AtomicUsize::new(0) }
    }

    /// Width of a vector (50).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of words in the table.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The vector of one word, if GloVe knows it.
    pub fn vector(&self, word: &str) -> Option<&[f32]> {
        self.index.get(word).map(|&i| &self.vectors[i as usize * self.dim..(i as usize + 1) * self.dim])
    }

    /// The mean vector of the text's known words, or why there is none.
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<f32>, String> {
        let words: Vec<String> =
            normalize_plot(text).into_iter().filter(|w| w.chars().any(char::is_alphanumeric)).collect();
        if words.is_empty() {
            return Err("empty text".to_string());
        }
        let mut sum = vec![0f64; self.dim];
        let mut known = 0usize;
        for w in &words {
            // normalize_plot writes digit runs as `N` and URLs as `L`; GloVe knows them as "0" and "url"-like
            // tokens only by accident, so they are looked up as they are (and usually counted out of vocabulary).
            if let Some(v) = self.vector(w) {
                known += 1;
                for (s, x) in sum.iter_mut().zip(v) {
                    *s += *x as f64;
                }
            }
        }
        self.known.fetch_add(known, Ordering::Relaxed);
        self.unknown.fetch_add(words.len() - known, Ordering::Relaxed);
        if known == 0 {
            return Err(format!("none of its {} words is in GloVe's vocabulary", words.len()));
        }
        Ok(sum.into_iter().map(|s| (s / known as f64) as f32).collect())
    }

    /// Words looked up so far: (known, out of vocabulary).
    pub fn coverage(&self) -> (usize, usize) {
        (self.known.load(Ordering::Relaxed), self.unknown.load(Ordering::Relaxed))
    }
}

/// The words of the index: the first string column of the Parquet file.
fn read_words(path: &Path) -> Result<Vec<String>> {
    use parquet::file::reader::FileReader;
    use parquet::record::Field;
    let file = std::fs::File::open(path).map_err(|e| GmuError::io(path, e))?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .map_err(|e| GmuError::data(path, format!("not a Parquet file ({e})")))?;
    let rows = reader.get_row_iter(None).map_err(|e| GmuError::data(path, e.to_string()))?;
    let mut words = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for row in rows {
        let row = row.map_err(|e| GmuError::data(path, e.to_string()))?;
        let word = row
            .get_column_iter()
            .find_map(|(_, field)| match field {
                Field::Str(s) => Some(s.clone()),
                _ => None,
            })
            .ok_or_else(|| {
                GmuError::data(path, format!("row {} has no string column (expected the word index)", words.len()))
            })?;
        words.push(word);
    }
    if words.is_empty() {
        return Err(GmuError::data(path, "no words"));
    }
    Ok(words)
}

/// A 2-D `<f4` `.npy` file: values in file order, the width (second
/// dimension) and whether the file is column-major.
fn read_f32_matrix(path: &Path) -> Result<(Vec<f32>, usize, bool)> {
    let bytes = std::fs::read(path).map_err(|e| GmuError::io(path, e))?;
    let bad = |m: &str| GmuError::data(path, format!("expected a 2-D float32 .npy file: {m}"));
    let header = crate::io::npy::NpyHeader::parse_any_order(path, &bytes)?;
    if header.descr != "<f4" {
        return Err(bad(&format!("dtype {}", header.descr)));
    }
    let [rows, cols] = header.shape[..] else { return Err(bad(&format!("shape {:?}", header.shape))) };
    let data = &bytes[header.data_start..];
    if Some(data.len() as u64) != header.data_bytes() {
        let needed = header.data_bytes().map_or_else(|| "more than 2^64".to_string(), |b| b.to_string());
        return Err(bad(&format!("shape ({rows}, {cols}) needs {needed} bytes, the file has {}", data.len())));
    }
    Ok((
        data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        cols,
        header.fortran_order,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Glove {
        let words = ["the", "wizard", "young", ".", "0"].map(String::from).to_vec();
        let vectors = vec![1., 0., 0., 2., 4., 4., 9., 9., 7., 7.];
        Glove::from_table(words, vectors, 2)
    }

    #[test]
    fn averages_known_words_and_counts_the_rest() {
        let g = table();
        // tokens: a, young, wizard, . (punctuation, skipped) → known: young, wizard; unknown: a
        assert_eq!(g.encode("A young Wizard.").unwrap(), vec![2.0, 3.0]);
        assert_eq!(g.coverage(), (2, 1));
    }

    #[test]
    fn a_text_without_known_words_is_missing_not_zero() {
        let g = table();
        assert_eq!(g.encode("   ").unwrap_err(), "empty text");
        assert_eq!(g.encode("?!").unwrap_err(), "empty text");
        assert!(g.encode("Zyzzyva qwrtz").unwrap_err().contains("none of its 2 words"));
    }

    #[test]
    fn reads_a_column_major_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        // (3, 2) column-major: column 0 = [1, 2, 3], column 1 = [4, 5, 6]
        let data: Vec<u8> = [1f32, 2., 3., 4., 5., 6.].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut header = "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(&data);
        std::fs::write(&p, bytes).unwrap();
        let (values, cols, cm) = read_f32_matrix(&p).unwrap();
        assert_eq!((values, cols, cm), (vec![1., 2., 3., 4., 5., 6.], 2, true));
    }

    /// The real table (CI fetches it): 400,000 words, row 0 is "the", and
    /// GloVe's first values of "the" as published in glove.6B.50d.txt.
    #[test]
    fn real_table_matches_the_published_vectors() {
        let Some(dir) = crate::encoders::testing::real(crate::encoders::EncoderKind::Glove) else { return };
        let g = Glove::load(&dir.join("glove_6B_50d_emb.npy"), &dir.join("glove_6B_index.parquet")).unwrap();
        assert_eq!(g.len(), 400_000);
        let the = g.vector("the").unwrap();
        assert_eq!(&the[..3], &[0.418, 0.24968, -0.41242]);
        assert!(g.vector("wizard").is_some());
    }
}
