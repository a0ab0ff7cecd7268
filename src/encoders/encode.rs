//! Encoding many inputs into a feature file: batched, streamed to a `.npy`
//! (memory flat in the number of rows), missing rows written as NaN and listed
//! in a sidecar JSON that also records the encoder, so training and `predict`
//! know how the features were made.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Encoder, EncoderSpec, RawInput};
use crate::error::{GmuError, Result};

/// Inputs per forward pass unless a command says otherwise.
pub const BATCH: usize = 32;

/// Batches per length-sorted window of texts (MiniLM): memory stays flat in the number of rows.
const WINDOW_BATCHES: usize = 16;

/// A row that got no features, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MissingRow {
    /// Row index (0-based, data rows).
    pub row: usize,
    /// The input: the image path, or the text's first characters.
    pub input: String,
    /// Why it has no features.
    pub reason: String,
}

/// A missing row of a raw view: the view's name and the row.
pub type ViewMissingRow = (String, MissingRow);

/// The sidecar of a feature file: `<out>.json` beside `<out>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Encoded {
    /// The encoder and its options.
    pub encoder: EncoderSpec,
    /// Rows in the file.
    pub rows: usize,
    /// Rows written as NaN.
    pub missing: Vec<MissingRow>,
    /// GloVe: words found and out of vocabulary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words_known_unknown: Option<(usize, usize)>,
    /// Where the inputs came from (file and column), for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `"bf16"` where the encoder's products ran in bf16 (AMX or AVX512-BF16)
    /// (`GMU_ENCODER_PRECISION=bf16`); absent: `f32`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

/// The sidecar path of a feature file: `text.npy` → `text.npy.json`.
pub fn sidecar_path(npy: &Path) -> PathBuf {
    let mut name = npy.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".json");
    npy.with_file_name(name)
}

/// Reads the sidecar of a feature file, if there is one.
pub fn read_sidecar(npy: &Path) -> Result<Option<Encoded>> {
    let path = sidecar_path(npy);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| GmuError::io(&path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| GmuError::data(&path, format!("not a gmu encoder sidecar ({e})")))
}

/// Receives each encoded row in order: its features, or `None` for a missing row.
pub type RowSink<'a> = dyn FnMut(Option<&[f32]>) -> Result<()> + 'a;

/// Runs `encoder` over `inputs` in batches of `batch_size` and hands every
/// row to `on_row` in input order: its features (checked finite) or, for a
/// missing row, `None` after the reason was recorded in the returned list.
/// MiniLM pads a batch to its longest text, so texts are encoded in windows of
/// 16 batches sorted by length (rows still come out in order).
/// `progress(done, total)` is called with 0 first, then after each batch.
pub fn encode_rows(
    encoder: &Encoder,
    inputs: &[RawInput<'_>],
    batch_size: usize,
    on_row: &mut RowSink<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<MissingRow>> {
    if batch_size == 0 {
        return Err(GmuError::invalid("batch-size", "must be at least 1"));
    }
    let n = inputs.len();
    let mut missing = Vec::new();
    progress(0, n);
    let window = if matches!(encoder, Encoder::MiniLm(_)) { batch_size * WINDOW_BATCHES } else { batch_size };
    let mut done = 0;
    for (w, block) in inputs.chunks(window).enumerate() {
        let mut order: Vec<usize> = (0..block.len()).collect();
        if window > batch_size {
            order.sort_by_key(|&j| match &block[j] {
                RawInput::Text(t) => t.len(),
                RawInput::Image(_) | RawInput::ImageBytes(_) => 0,
            });
        }
        let mut rows: Vec<Option<super::Row>> = vec![None; block.len()];
        for batch in order.chunks(batch_size) {
            let chunk: Vec<RawInput> = batch.iter().map(|&j| block[j].clone()).collect();
            for (&j, row) in batch.iter().zip(encoder.encode(&chunk)?) {
                rows[j] = Some(row);
            }
            done += batch.len();
            progress(done, n);
        }
        for (j, row) in rows.into_iter().enumerate() {
            let i = w * window + j;
            match row.expect("every row of the window was encoded") {
                Ok(values) => {
                    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
                        return Err(GmuError::NonFinite(format!(
                            "the {} encoder gave {} at value {bad} of row {i}",
                            encoder.kind(),
                            values[bad]
                        )));
                    }
                    on_row(Some(&values))?;
                }
                Err(reason) => {
                    missing.push(MissingRow { row: i, input: describe(&block[j]), reason });
                    on_row(None)?;
                }
            }
        }
    }
    Ok(missing)
}

/// [`encode_rows`] into memory: `[n, dim]` row-major, NaN rows where missing.
pub fn encode_all(
    encoder: &Encoder,
    inputs: &[RawInput<'_>],
    batch_size: usize,
) -> Result<(Vec<f32>, Vec<MissingRow>)> {
    encode_all_with(encoder, inputs, batch_size, &mut |_, _| {})
}

/// [`encode_all`], calling `progress(done, total)` after each batch.
pub fn encode_all_with(
    encoder: &Encoder,
    inputs: &[RawInput<'_>],
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<f32>, Vec<MissingRow>)> {
    let dim = encoder.dim();
    let mut values = Vec::with_capacity(inputs.len() * dim);
    let missing = encode_rows(
        encoder,
        inputs,
        batch_size,
        &mut |row| {
            match row {
                Some(v) => values.extend_from_slice(v),
                None => values.extend(std::iter::repeat_n(f32::NAN, dim)),
            }
            Ok(())
        },
        progress,
    )?;
    Ok((values, missing))
}

/// Encodes `inputs` in batches of `batch_size` (see [`encode_rows`]) into
/// `out` (`.npy`, `[n, dim]` float32, NaN rows where missing) and its
/// sidecar, both written to temporary files and renamed at the end; memory
/// stays flat in the number of rows.
pub fn encode_to_npy(
    encoder: &Encoder,
    spec: &EncoderSpec,
    inputs: &[RawInput<'_>],
    batch_size: usize,
    out: &Path,
    source: Option<String>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Encoded> {
    let dim = encoder.dim();
    let n = inputs.len();
    let mut writer = crate::error::AtomicFile::create(out)?;
    let header = crate::io::npy::npy_with_header("<f4", &format!("({n}, {dim})"), &[]);
    writer.write_all(&header).map_err(|e| GmuError::io(out, e))?;
    let nan_row: Vec<u8> = std::iter::repeat_n(f32::NAN.to_le_bytes(), dim).flatten().collect();
    let missing = encode_rows(
        encoder,
        inputs,
        batch_size,
        &mut |row| {
            let bytes = match row {
                Some(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                None => nan_row.clone(),
            };
            writer.write_all(&bytes).map_err(|e| GmuError::io(out, e))
        },
        progress,
    )?;
    let encoded = Encoded {
        encoder: spec.clone(),
        rows: n,
        missing,
        words_known_unknown: match encoder {
            Encoder::Glove(g) => Some(g.coverage()),
            _ => None,
        },
        source,
        precision: (encoder.precision() == crate::cpu::bf16::EncoderPrecision::Bf16).then(|| "bf16".to_string()),
    };
    // Both files are complete before either is moved into place; a sidecar
    // that cannot be moved takes the features with it, so a failed encode
    // leaves neither.
    let sidecar_path = sidecar_path(out);
    let mut sidecar = crate::error::AtomicFile::create(&sidecar_path)?;
    sidecar
        .write_all(serde_json::to_string_pretty(&encoded).expect("the sidecar serialises").as_bytes())
        .map_err(|e| GmuError::io(&sidecar_path, e))?;
    let features = writer.target().to_path_buf();
    writer.commit()?;
    sidecar.commit().inspect_err(|_| {
        let _ = std::fs::remove_file(&features);
    })?;
    Ok(encoded)
}

/// An input as the missing-row report shows it.
pub fn describe(input: &RawInput<'_>) -> String {
    match input {
        RawInput::Image(p) => p.display().to_string(),
        RawInput::ImageBytes(b) => format!("an image of {} bytes", b.len()),
        RawInput::Text(t) => {
            let short: String = t.chars().take(40).collect();
            if short.len() < t.len() { format!("{short}…") } else { short }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::{EncoderKind, EncoderSpec};

    /// Texts of mixed lengths encoded in length-sorted batches land in their own
    /// rows and equal each text encoded alone; an empty one is a NaN row.
    #[test]
    fn length_sorted_batches_keep_every_row_in_place() {
        let Some(dir) = crate::encoders::testing::real(EncoderKind::MiniLm) else { return };
        let device = burn::tensor::Device::default();
        let spec = EncoderSpec::new(EncoderKind::MiniLm);
        let encoder = Encoder::load_from(&spec, &dir, &device).unwrap();
        let texts: Vec<String> = (0..23)
            .map(|i| if i == 7 { String::new() } else { "word ".repeat(1 + (i * 37) % 29) + &format!("number {i}") })
            .collect();
        let inputs: Vec<RawInput> = texts.iter().map(|t| RawInput::Text(t)).collect();
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("t.npy");
        let encoded = encode_to_npy(&encoder, &spec, &inputs, 3, &path, None, &mut |_, _| {}).unwrap();
        assert_eq!(encoded.missing.iter().map(|m| m.row).collect::<Vec<_>>(), vec![7]);
        let (shape, values) = crate::io::npy::read_npy(&path).unwrap();
        assert_eq!(shape, vec![23, 384]);
        for (i, text) in texts.iter().enumerate() {
            let row = &values[i * 384..(i + 1) * 384];
            if i == 7 {
                assert!(row.iter().all(|v| v.is_nan()));
                continue;
            }
            let alone = encoder.encode(&[RawInput::Text(text)]).unwrap().remove(0).unwrap();
            let worst = row.iter().zip(&alone).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "row {i}: {worst}");
        }
    }
}
