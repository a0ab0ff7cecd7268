//! Encoding many inputs into a feature file: batched, streamed to a `.npy`
//! (memory flat in the number of rows), missing rows written as NaN and listed
//! in a sidecar JSON that also records the encoder, so training and `predict`
//! know how the features were made.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Encoder, EncoderSpec, RawInput};
use crate::error::{GmuError, Result};

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

/// Encodes `inputs` in batches of `batch_size` into `out` (`.npy`, `[n, dim]`
/// float32, NaN rows where missing) and its sidecar, both written to
/// temporary files and renamed at the end. `progress(done, total)` is called
/// before the first batch (with 0) and after each batch.
pub fn encode_to_npy(
    encoder: &Encoder,
    spec: &EncoderSpec,
    inputs: &[RawInput<'_>],
    batch_size: usize,
    out: &Path,
    source: Option<String>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Encoded> {
    if batch_size == 0 {
        return Err(GmuError::invalid("batch-size", "must be at least 1"));
    }
    let dim = encoder.dim();
    let n = inputs.len();
    let tmp = crate::error::temp_path(out);
    let file = std::fs::File::create(&tmp).map_err(|e| GmuError::io(&tmp, e))?;
    let mut writer = std::io::BufWriter::new(file);
    let cleanup = |e: GmuError| {
        let _ = std::fs::remove_file(&tmp);
        e
    };
    let header = crate::data::multiview::npy_with_header("<f4", &format!("({n}, {dim})"), &[]);
    writer.write_all(&header).map_err(|e| cleanup(GmuError::io(&tmp, e)))?;
    let mut missing = Vec::new();
    let nan_row: Vec<u8> = std::iter::repeat_n(f32::NAN.to_le_bytes(), dim).flatten().collect();
    progress(0, n);
    // MiniLM pads a batch to its longest text: within a window of batches, texts are encoded
    // sorted by length (rows go back to their place), so a batch holds texts of similar length.
    let window = if matches!(encoder, Encoder::MiniLm(_)) { batch_size * WINDOW_BATCHES } else { batch_size };
    let mut done = 0;
    for (w, block) in inputs.chunks(window).enumerate() {
        let mut order: Vec<usize> = (0..block.len()).collect();
        if window > batch_size {
            order.sort_by_key(|&j| match &block[j] {
                RawInput::Text(t) => t.len(),
                RawInput::Image(_) => 0,
            });
        }
        let mut rows: Vec<Option<super::Row>> = vec![None; block.len()];
        for batch in order.chunks(batch_size) {
            let chunk: Vec<RawInput> = batch.iter().map(|&j| block[j].clone()).collect();
            for (&j, row) in batch.iter().zip(encoder.encode(&chunk).map_err(&cleanup)?) {
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
                        return Err(cleanup(GmuError::NonFinite(format!("the {} encoder gave {} at value {bad} of row {i}", spec.encoder, values[bad]))));
                    }
                    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    writer.write_all(&bytes).map_err(|e| cleanup(GmuError::io(&tmp, e)))?;
                }
                Err(reason) => {
                    missing.push(MissingRow { row: i, input: describe(&block[j]), reason });
                    writer.write_all(&nan_row).map_err(|e| cleanup(GmuError::io(&tmp, e)))?;
                }
            }
        }
    }
    writer.flush().map_err(|e| cleanup(GmuError::io(&tmp, e)))?;
    drop(writer);
    let encoded = Encoded {
        encoder: spec.clone(),
        rows: n,
        missing,
        words_known_unknown: match encoder {
            Encoder::Glove(g) => Some(g.coverage()),
            _ => None,
        },
        source,
    };
    let sidecar = serde_json::to_string_pretty(&encoded).expect("the sidecar serialises");
    crate::error::write_atomic(&sidecar_path(out), sidecar.as_bytes()).map_err(&cleanup)?;
    std::fs::rename(&tmp, out).map_err(|e| cleanup(GmuError::io(out, e)))?;
    Ok(encoded)
}

/// An input as the missing-row report shows it.
pub fn describe(input: &RawInput<'_>) -> String {
    match input {
        RawInput::Image(p) => p.display().to_string(),
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
        let texts: Vec<String> = (0..23).map(|i| if i == 7 { String::new() } else { "word ".repeat(1 + (i * 37) % 29) + &format!("number {i}") }).collect();
        let inputs: Vec<RawInput> = texts.iter().map(|t| RawInput::Text(t)).collect();
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("t.npy");
        let encoded = encode_to_npy(&encoder, &spec, &inputs, 3, &path, None, &mut |_, _| {}).unwrap();
        assert_eq!(encoded.missing.iter().map(|m| m.row).collect::<Vec<_>>(), vec![7]);
        let (shape, values) = crate::data::multiview::read_npy(&path).unwrap();
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
