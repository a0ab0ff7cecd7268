//! NumPy `.npy` files: the header ([`NpyHeader`]), whole arrays as `f32`
//! ([`read_npy`]), and writing ([`npy_bytes`], [`npy_with_header`]). Every
//! reader of feature files (views, encoders' output, GloVe's table) goes
//! through here. No tensors; imports only the error and budget modules.

use std::path::Path;

use crate::error::{GmuError, Result};

/// Reads a NumPy `.npy` file (format 1.0/2.0/3.0, little-endian `f4`, `f8`,
/// `i4`, `i8` or `u1`, C order) as `f32` values and its shape.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = super::read_all(path)?;
    let header = NpyHeader::parse(path, &bytes)?;
    let data = &bytes[header.data_start..];
    match header.data_bytes() {
        Some(needed) if needed == data.len() as u64 => {}
        needed => {
            let needed = needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
            return Err(GmuError::data(
                path,
                format!(
                    "not a readable .npy file: shape {:?} needs {needed} data bytes, the file has {}",
                    header.shape,
                    data.len()
                ),
            ));
        }
    }
    Ok((header.shape, data.chunks_exact(header.width).map(header.convert).collect()))
}

/// `values` as a NumPy `.npy` file (format 1.0, little-endian `<f4`, C
/// order) of `shape`: what [`read_npy`] and NumPy read back.
pub fn npy_bytes(shape: &[usize], values: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "shape and values disagree");
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    npy_with_header("<f4", &shape_text, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
}

/// A `.npy` file of format 1.0 with this dtype, shape text and raw data
/// (the header padded to a multiple of 64 bytes, as NumPy writes it).
pub fn npy_with_header(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// What the header of a `.npy` file says.
#[derive(Clone, Debug)]
pub struct NpyHeader {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Bytes per element.
    pub width: usize,
    /// One element's bytes to `f32`.
    pub convert: fn(&[u8]) -> f32,
    /// Offset of the data in the file.
    pub data_start: usize,
    /// The dtype as the header writes it (`<f4`, `|u1`, …).
    pub descr: String,
    /// Whether the array is stored column-major ([`parse`](Self::parse) refuses that).
    pub fortran_order: bool,
}

impl NpyHeader {
    /// The bytes of data the shape implies, `None` beyond 2^64 (checked arithmetic:
    /// a lying header never wraps to a small number).
    pub fn data_bytes(&self) -> Option<u64> {
        crate::budget::product(&self.shape).and_then(|n| n.checked_mul(self.width as u64))
    }

    /// Parses the header at the start of `bytes` (the first 64 KiB of the file are enough);
    /// a column-major array is an error (the views are read row by row).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<NpyHeader> {
        let header = Self::parse_any_order(path, bytes)?;
        if header.fortran_order {
            return Err(GmuError::data(
                path,
                "not a readable .npy file: Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
            ));
        }
        Ok(header)
    }

    /// [`parse`](Self::parse), accepting a column-major array (GloVe's table is one).
    pub fn parse_any_order(path: &Path, bytes: &[u8]) -> Result<NpyHeader> {
        let bad = |m: &str| GmuError::data(path, format!("not a readable .npy file: {m}"));
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(bad("missing the \\x93NUMPY magic"));
        }
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
            v => return Err(bad(&format!("format version {v}"))),
        };
        let header = std::str::from_utf8(bytes.get(start..start + header_len).ok_or_else(|| bad("truncated header"))?)
            .map_err(|_| bad("header is not text"))?;
        let field = |key: &str| -> Option<&str> {
            let at = header.find(&format!("'{key}'"))? + key.len() + 2;
            Some(header[at..].trim_start().trim_start_matches(':').trim_start())
        };
        let descr = field("descr")
            .and_then(|s| s.strip_prefix('\''))
            .and_then(|s| s.split('\'').next())
            .ok_or_else(|| bad("no descr"))?;
        let fortran_order = field("fortran_order").is_some_and(|s| s.starts_with("True"));
        let shape_text = field("shape")
            .and_then(|s| s.strip_prefix('('))
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| bad("no shape"))?;
        let shape: Vec<usize> = shape_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad(&format!("shape entry '{s}'"))))
            .collect::<Result<_>>()?;
        let (width, convert): (usize, fn(&[u8]) -> f32) = match descr {
            "<f4" => (4, |b| f32::from_le_bytes(b.try_into().unwrap())),
            "<f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap()) as f32),
            "<i4" => (4, |b| i32::from_le_bytes(b.try_into().unwrap()) as f32),
            "<i8" => (8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f32),
            "|u1" | "<u1" => (1, |b| b[0] as f32),
            other => return Err(bad(&format!("dtype '{other}' (expected <f4, <f8, <i4, <i8 or |u1)"))),
        };
        Ok(NpyHeader { shape, width, convert, data_start: start + header_len, descr: descr.to_string(), fortran_order })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn npy_files_written_read_back() {
        let dir = tempfile::tempdir().unwrap();
        for (shape, values) in
            [(vec![2, 3], vec![1.0f32, -2.5, 3.0, 0.0, f32::NAN, 6.0]), (vec![4], vec![0.0, 1.0, 2.0, 1.0])]
        {
            let p = write(dir.path(), "w.npy", &npy_bytes(&shape, &values));
            let (s, v) = read_npy(&p).unwrap();
            assert_eq!(s, shape);
            assert!(v.iter().zip(&values).all(|(a, b)| a == b || a.is_nan() && b.is_nan()));
        }
    }
}
