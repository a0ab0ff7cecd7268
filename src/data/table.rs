//! The CSV layout of a two-modality data set: a header
//! `v0,…,v{d-1},t0,…,t{d-1},c[,m]` and one sample per row. `c` is the class
//! (0 or 1); `m` (optional) says which modality is informative (1 = visual).

use std::path::Path;

use crate::data::SyntheticData;
use crate::error::{GmuError, Result, write_atomic};

/// Writes `data` as CSV (atomically: temporary file, then rename).
pub fn write_csv(path: &Path, data: &SyntheticData) -> Result<()> {
    let d = data.dim;
    let mut header: Vec<String> = (0..d).map(|j| format!("v{j}")).collect();
    header.extend((0..d).map(|j| format!("t{j}")));
    header.push("c".into());
    if data.m.is_some() {
        header.push("m".into());
    }
    let mut out = header.join(",");
    out.push('\n');
    for i in 0..data.len() {
        let mut row: Vec<String> = data.x_v[i * d..(i + 1) * d].iter().map(|x| x.to_string()).collect();
        row.extend(data.x_t[i * d..(i + 1) * d].iter().map(|x| x.to_string()));
        row.push(data.c[i].to_string());
        if let Some(m) = &data.m {
            row.push(m[i].to_string());
        }
        out.push_str(&row.join(","));
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}

/// Reads a CSV written by [`write_csv`] (or by hand in the same layout).
///
/// Every problem is reported with the file, the line and the column: a missing
/// column, a value that is not a number, a NaN or infinity, a class other than
/// 0/1, an empty file.
pub fn read_csv(path: &Path) -> Result<SyntheticData> {
    let text = String::from_utf8(crate::io::read_all(path)?)
        .map_err(|e| GmuError::data(path, format!("not UTF-8 text ({e})")))?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| GmuError::data(path, format!("cannot read the header: {e}")))?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(GmuError::data(path, "the file is empty: a header `v0,…,t0,…,c` is expected"));
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let dim = (0..).take_while(|j| column(&format!("v{j}")).is_some()).count();
    if dim == 0 {
        return Err(GmuError::data(path, "missing column `v0` (expected a header `v0,…,v{d-1},t0,…,t{d-1},c[,m]`)"));
    }
    let mut cols_v = Vec::with_capacity(dim);
    let mut cols_t = Vec::with_capacity(dim);
    for j in 0..dim {
        cols_v.push(column(&format!("v{j}")).expect("counted above"));
        let t = column(&format!("t{j}")).ok_or_else(|| {
            GmuError::data(path, format!("missing column `t{j}`: both modalities need the same dimension ({dim})"))
        })?;
        cols_t.push(t);
    }
    let col_c = column("c").ok_or_else(|| GmuError::data(path, "missing column `c` (the class, 0 or 1)"))?;
    let col_m = column("m");
    // The header must be the layout exactly: no column skipped, repeated, reordered or extra.
    let mut expected: Vec<String> =
        (0..dim).map(|j| format!("v{j}")).chain((0..dim).map(|j| format!("t{j}"))).collect();
    expected.push("c".into());
    if col_m.is_some() {
        expected.push("m".into());
    }
    if headers.iter().ne(expected.iter().map(String::as_str)) {
        return Err(GmuError::data(
            path,
            format!(
                "the header `{}` is not the layout v0,…,v{{d-1}},t0,…,t{{d-1}},c[,m]; for d = {dim} it is `{}`",
                headers.iter().collect::<Vec<_>>().join(","),
                expected.join(",")
            ),
        ));
    }

    let mut data = SyntheticData { dim, x_v: vec![], x_t: vec![], c: vec![], m: col_m.map(|_| vec![]) };
    for (row_index, record) in reader.records().enumerate() {
        let line = row_index + 2;
        let record = record.map_err(|e| GmuError::data(path, format!("line {line}: {e}")))?;
        let field = |col: usize| -> Result<&str> {
            record.get(col).ok_or_else(|| {
                GmuError::data(path, format!("line {line}: missing a value for column `{}`", &headers[col]))
            })
        };
        let number = |col: usize| -> Result<f32> {
            let raw = field(col)?;
            let value: f32 = raw.parse().map_err(|_| {
                GmuError::data(path, format!("line {line}, column `{}`: `{raw}` is not a number", &headers[col]))
            })?;
            if !value.is_finite() {
                return Err(GmuError::data(
                    path,
                    format!(
                        "line {line}, column `{}`: {raw} is not finite (NaN and infinities are refused)",
                        &headers[col]
                    ),
                ));
            }
            Ok(value)
        };
        let binary = |col: usize| -> Result<u8> {
            match field(col)? {
                "0" => Ok(0),
                "1" => Ok(1),
                raw => Err(GmuError::data(
                    path,
                    format!("line {line}, column `{}`: expected 0 or 1, got `{raw}`", &headers[col]),
                )),
            }
        };
        for &col in &cols_v {
            data.x_v.push(number(col)?);
        }
        for &col in &cols_t {
            data.x_t.push(number(col)?);
        }
        data.c.push(binary(col_c)?);
        if let (Some(col), Some(m)) = (col_m, data.m.as_mut()) {
            m.push(binary(col)?);
        }
    }
    if data.is_empty() {
        return Err(GmuError::data(path, "no data rows after the header"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn round_trip_keeps_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let data = SyntheticData {
            dim: 2,
            x_v: vec![0.5, -1.25, 3.0, 4.0],
            x_t: vec![1e-3, 2.0, -7.5, 8.0],
            c: vec![1, 0],
            m: Some(vec![0, 1]),
        };
        let path = dir.path().join("x.csv");
        write_csv(&path, &data).unwrap();
        assert_eq!(read_csv(&path).unwrap(), data);
        assert!(!crate::error::temp_path(&path).exists());
    }

    #[test]
    fn m_column_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let data = read_csv(&write(&dir, "v0,t0,c\n1,2,0\n3,4,1\n")).unwrap();
        assert_eq!(data.m, None);
        assert_eq!(data.x_t, vec![2.0, 4.0]);
    }

    #[test]
    fn errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("v0,c\n1,0\n", "missing column `t0`"),
            ("v0,t0\n1,2\n", "missing column `c`"),
            ("v0,t0,c\n1,abc,0\n", "line 2, column `t0`: `abc` is not a number"),
            ("v0,t0,c\n1,2,0\n1,NaN,1\n", "line 3, column `t0`: NaN is not finite"),
            ("v0,t0,c\n1,2,2\n", "column `c`: expected 0 or 1"),
            ("", "empty"),
            ("v0,t0,c\n", "no data rows"),
        ];
        for (text, want) in cases {
            let err = read_csv(&write(&dir, text)).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("data.csv"), "the file must be named: {err}");
        }
    }
}
