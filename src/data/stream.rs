//! Views read a chunk of rows at a time, so that scoring a file of a million
//! rows keeps memory flat: the same formats as [`read_view`](super::multiview::read_view)
//! (CSV with a header row, or a 2-D `.npy`), the same rules (an empty cell is
//! missing), the same errors.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::multiview::{View, parse_record, read_csv_header, stem};
use crate::error::{GmuError, Result};
use crate::io::npy::NpyHeader;

/// One view file, read in chunks.
pub struct ViewStream {
    name: String,
    dim: usize,
    path: PathBuf,
    source: Source,
}

enum Source {
    Csv {
        records: csv::StringRecordsIntoIter<BufReader<File>>,
        header: Vec<String>,
        label_at: Option<usize>,
        line: usize,
    },
    Npy {
        file: BufReader<File>,
        header: NpyHeader,
        rows_left: usize,
    },
}

impl ViewStream {
    /// Opens `path`; with `label_column`, that column of a CSV is the label
    /// (returned beside each chunk) rather than a feature.
    pub fn open(path: &Path, label_column: Option<&str>) -> Result<ViewStream> {
        let file = crate::io::open_regular(path)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        if path.extension().is_some_and(|e| e == "npy") {
            let mut head = vec![0u8; 1 << 16];
            let mut got = 0;
            while got < head.len() {
                match reader.read(&mut head[got..]).map_err(|e| GmuError::io(path, e))? {
                    0 => break,
                    n => got += n,
                }
            }
            head.truncate(got);
            let header = NpyHeader::parse(path, &head)?;
            let [rows, dim] = header.shape[..] else {
                return Err(GmuError::data(
                    path,
                    format!("expected a 2-D array [samples, features], got shape {:?}", header.shape),
                ));
            };
            if dim == 0 {
                return Err(GmuError::data(
                    path,
                    format!("shape {:?} has 0 columns: a view needs at least one feature", header.shape),
                ));
            }
            let size = std::fs::metadata(path).map_err(|e| GmuError::io(path, e))?.len() as usize;
            let needed = rows.checked_mul(dim).and_then(|n| n.checked_mul(header.width));
            if needed != Some(size.saturating_sub(header.data_start)) {
                return Err(GmuError::data(
                    path,
                    format!(
                        "not a readable .npy file: shape {:?} does not match the file's {} data bytes",
                        header.shape,
                        size.saturating_sub(header.data_start)
                    ),
                ));
            }
            // Reopen at the data: the header read above may have consumed part of it.
            let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| GmuError::io(path, e))?);
            std::io::copy(&mut (&mut file).take(header.data_start as u64), &mut std::io::sink())
                .map_err(|e| GmuError::io(path, e))?;
            return Ok(ViewStream {
                name: stem(path),
                dim,
                path: path.to_path_buf(),
                source: Source::Npy { file, header, rows_left: rows },
            });
        }
        let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
        let (header, label_at, dim) = read_csv_header(path, &mut csv, label_column)?;
        let source = Source::Csv { records: csv.into_records(), header, label_at, line: 1 };
        Ok(ViewStream { name: stem(path), dim, path: path.to_path_buf(), source })
    }

    /// The view's name (the file's stem, unless [`renamed`](Self::renamed)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same stream under the view name `name` (`--files name=path`).
    pub fn renamed(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The view's width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this CSV holds the label column.
    pub fn has_labels(&self) -> bool {
        matches!(self.source, Source::Csv { label_at: Some(_), .. })
    }

    /// Up to `rows` more rows as a view (empty at the end), and their labels
    /// where the file holds the label column.
    pub fn next_chunk(&mut self, rows: usize) -> Result<(View, Option<Vec<String>>)> {
        let mut values = Vec::with_capacity(rows * self.dim);
        let mut labels = None;
        match &mut self.source {
            Source::Csv { records, header, label_at, line } => {
                let mut found = label_at.map(|_| Vec::with_capacity(rows));
                for _ in 0..rows {
                    let Some(record) = records.next() else { break };
                    *line += 1;
                    parse_record(&self.path, *line, header, *label_at, record, &mut values, found.as_mut())?;
                }
                labels = found;
            }
            Source::Npy { file, header, rows_left } => {
                let take = rows.min(*rows_left);
                let mut bytes = vec![0u8; take * self.dim * header.width];
                file.read_exact(&mut bytes).map_err(|e| GmuError::io(&self.path, e))?;
                values.extend(bytes.chunks_exact(header.width).map(header.convert));
                *rows_left -= take;
            }
        }
        let view = View {
            name: self.name.clone(),
            dim: self.dim,
            values,
            image: None,
            prescaled: false,
            encoder: None,
            tokens: None,
        };
        Ok((view, labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::multiview::read_view;

    /// Chunks of 2 over 5 rows give what reading the whole file gives, for CSV (with a
    /// label column and a missing cell) and NPY.
    #[test]
    fn chunks_add_up_to_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("a.csv");
        std::fs::write(&csv, "x,y,label\n1,2,p\n3,,q\n5,6,p\n7,8,q\n9,10,p\n").unwrap();
        let npy = dir.path().join("b.npy");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 2), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in 0..10 {
            bytes.extend_from_slice(&(v as f32 * 0.5).to_le_bytes());
        }
        std::fs::write(&npy, bytes).unwrap();
        for (path, column) in [(&csv, Some("label")), (&npy, None)] {
            let (whole, labels) = read_view(path, column).unwrap();
            let mut stream = ViewStream::open(path, column).unwrap();
            let (mut values, mut seen) = (Vec::new(), Vec::new());
            loop {
                let (chunk, l) = stream.next_chunk(2).unwrap();
                if chunk.is_empty() {
                    break;
                }
                assert!(chunk.len() <= 2);
                values.extend(chunk.values);
                seen.extend(l.unwrap_or_default());
            }
            let same = values.iter().zip(&whole.values).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
            assert!(same && values.len() == whole.values.len(), "{}: {values:?} vs {:?}", path.display(), whole.values);
            assert_eq!(Some(seen), labels.or(Some(vec![])));
            assert_eq!(stream.name(), whole.name);
        }
        let bad = dir.path().join("c.csv");
        std::fs::write(&bad, "x\n1\nzz\n").unwrap();
        let mut stream = ViewStream::open(&bad, None).unwrap();
        let err = stream.next_chunk(10).unwrap_err().to_string();
        assert!(err.contains("c.csv: line 3, column 'x': 'zz' is not a number"), "{err}");
    }
}
