//! Image decoding and preprocessing for the image encoder, in pure Rust:
//! decode (JPEG, PNG; grayscale, CMYK, palette and 16-bit become RGB), resize
//! the shorter side to 256 with an antialiased bilinear (triangle) filter,
//! centre-crop 224×224, and normalise `(x − 127) / 128` per channel.
//!
//! The resize is PIL's and `torch.nn.functional.interpolate(mode="bilinear",
//! antialias=True)`'s: a separable triangle filter whose support widens with
//! the downscaling factor, so a large poster is averaged, not aliased.

use std::path::Path;

/// The side of the square the encoder sees.
pub const CROP: usize = 224;
/// The shorter side after resizing, before the centre crop.
pub const RESIZE: usize = 256;
/// The most pixels an image may have before decoding (a decompression bomb
/// guard): 64 megapixels, far above any poster.
pub const MAX_PIXELS: u64 = 64 << 20;

/// The most elongated image accepted (longer side over shorter side): the
/// resize to a shorter side of 256 would otherwise ask for 256 × 256·ratio
/// pixels (a 4,000,000 × 1 strip: 32.8 GB).
pub const MAX_ASPECT: u64 = 16;

/// The largest image file read (a decompression-bomb and `/dev/zero` guard).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Decodes an image file into RGB bytes `[height, width, 3]`, or says why not.
/// A file that is not a regular file, one past [`MAX_FILE_BYTES`], one of more
/// than [`MAX_PIXELS`] or more elongated than [`MAX_ASPECT`]:1, and a JPEG
/// that ends before its end-of-image marker (a truncated download, which a
/// lenient decoder would fill with grey) are refused with the reason.
pub fn decode(path: &Path) -> Result<(Vec<u8>, usize, usize), String> {
    let bytes = crate::io::read_capped(path, MAX_FILE_BYTES).map_err(|e| match e {
        crate::error::GmuError::Io { source, .. } => format!("cannot open: {source}"),
        crate::error::GmuError::Data { message, .. } => format!("cannot read: {message}"),
        other => other.to_string(),
    })?;
    decode_bytes(&bytes, Some(path))
}

/// [`decode`] for an encoded image in memory; `name`, where given, is the
/// file it came from (its extension is the first guess at the format).
pub fn decode_bytes(bytes: &[u8], name: Option<&Path>) -> Result<(Vec<u8>, usize, usize), String> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{} bytes is over the limit of {} MB", bytes.len(), MAX_FILE_BYTES >> 20));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes));
    // The file's extension first, as `ImageReader::open` does; its content where that says more.
    if let Some(by_name) = name.and_then(|p| image::ImageFormat::from_path(p).ok()) {
        reader.set_format(by_name);
    }
    let reader = reader.with_guessed_format().map_err(|e| format!("cannot read: {e}"))?;
    let format = reader.format();
    if format.is_none() {
        return Err("not a JPEG or PNG image".to_string());
    }
    if format == Some(image::ImageFormat::Jpeg) && bytes.starts_with(&[0xFF, 0xD8]) && !jpeg_is_complete(bytes) {
        return Err("a truncated JPEG (it ends before its end-of-image marker)".to_string());
    }
    let (w, h) = reader.into_dimensions().map_err(|e| format!("not a decodable image ({e})"))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(format!("{w}×{h} pixels is over the budget of {} megapixels", MAX_PIXELS >> 20));
    }
    let (long, short) = (u64::from(w.max(h)), u64::from(w.min(h)).max(1));
    if long > short * MAX_ASPECT {
        return Err(format!(
            "{w}×{h} pixels: an aspect ratio past {MAX_ASPECT}:1, which no poster or photo has (resizing it would need {} megapixels)",
            (RESIZE as u64 * RESIZE as u64 * long / short) >> 20
        ));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes));
    reader.set_format(format.expect("checked above"));
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| format!("not a decodable image ({e})"))?;
    let rgb = decoded.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err("the image is empty".to_string());
    }
    Ok((rgb.into_raw(), h, w))
}

/// Whether a JPEG's bytes hold an end-of-image marker (`FF D9`) after its
/// last start-of-scan (`FF DA`): entropy-coded data never holds `FF D9`
/// (a data `FF` is stuffed as `FF 00`), so a file cut inside its scan has
/// none after the scan; bytes after the marker are allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

/// The encoder's input from RGB bytes `[h, w, 3]`: `[3, 224, 224]` channel-major,
/// resized (shorter side 256), centre-cropped and normalised.
pub fn preprocess(rgb: &[u8], h: usize, w: usize) -> Vec<f32> {
    let (nh, nw) = if h <= w { (RESIZE, (RESIZE * w / h).max(RESIZE)) } else { ((RESIZE * h / w).max(RESIZE), RESIZE) };
    let planes: Vec<Vec<f32>> = (0..3).map(|c| rgb.iter().skip(c).step_by(3).map(|&v| v as f32).collect()).collect();
    let top = half_to_even(nh - CROP);
    let left = half_to_even(nw - CROP);
    let rows = weights(h, nh);
    let cols = weights(w, nw);
    let mut out = Vec::with_capacity(3 * CROP * CROP);
    for plane in &planes {
        // horizontal pass over every source row, for the cropped columns only
        let mut wide = vec![0f32; h * CROP];
        for y in 0..h {
            let src = &plane[y * w..(y + 1) * w];
            for x in 0..CROP {
                let (start, ref k) = cols[left + x];
                wide[y * CROP + x] = k.iter().enumerate().map(|(i, kw)| kw * src[start + i]).sum();
            }
        }
        for y in 0..CROP {
            let (start, ref k) = rows[top + y];
            for x in 0..CROP {
                let v: f32 = k.iter().enumerate().map(|(i, kw)| kw * wide[(start + i) * CROP + x]).sum();
                out.push((v - 127.0) / 128.0);
            }
        }
    }
    out
}

/// `round(d / 2)` with Python's (and torchvision's centre crop's) ties-to-even.
fn half_to_even(d: usize) -> usize {
    let h = d / 2;
    if d % 2 == 1 && h % 2 == 1 { h + 1 } else { h }
}

/// For each output index: the first input index and the normalised weights of
/// the triangle filter (PIL's `ImagingResample` / torch's antialiased bilinear).
fn weights(input: usize, output: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = input as f64 / output as f64;
    let support = if scale > 1.0 { scale } else { 1.0 };
    (0..output)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(input);
            let inv = 1.0 / support;
            let mut k: Vec<f64> = (lo..hi).map(|i| (1.0 - ((i as f64 - center + 0.5) * inv).abs()).max(0.0)).collect();
            let total: f64 = k.iter().sum();
            if total > 0.0 {
                k.iter_mut().for_each(|v| *v /= total);
            }
            (lo, k.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_image_stays_flat_and_normalises() {
        let (h, w) = (300, 400);
        let rgb: Vec<u8> = (0..h * w).flat_map(|_| [127u8, 255, 0]).collect();
        let x = preprocess(&rgb, h, w);
        assert_eq!(x.len(), 3 * CROP * CROP);
        let plane = |c: usize| &x[c * CROP * CROP..(c + 1) * CROP * CROP];
        assert!(plane(0).iter().all(|v| v.abs() < 1e-5));
        assert!(plane(1).iter().all(|v| (v - 1.0).abs() < 1e-5));
        assert!(plane(2).iter().all(|v| (v + 127.0 / 128.0).abs() < 1e-5));
    }

    #[test]
    fn weights_are_normalised_and_cover_the_input() {
        for (i, o) in [(451, 256), (256, 256), (100, 256), (1000, 256)] {
            for (start, k) in weights(i, o) {
                assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                assert!(start + k.len() <= i);
            }
        }
        // identity when the size does not change
        let id = weights(5, 5);
        assert!(id.iter().enumerate().all(|(o, (s, k))| k.iter().enumerate().all(|(j, v)| if s + j == o {
            (v - 1.0).abs() < 1e-6
        } else {
            v.abs() < 1e-6
        })));
    }

    #[test]
    fn a_horizontal_ramp_keeps_its_centre_value() {
        // a 512-wide ramp halves to 256 + crop: the centre column averages two source columns
        let (h, w) = (256, 512);
        let rgb: Vec<u8> = (0..h).flat_map(|_| (0..w).flat_map(|x| [(x / 2) as u8; 3])).collect();
        let x = preprocess(&rgb, h, w);
        // output width 512 → 256 px wide? shorter side is h = 256, so no resize: crop columns 144..368
        let first = x[0] * 128.0 + 127.0;
        assert!((first - 72.0).abs() < 1e-3, "{first}");
    }

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoders")
    }

    #[test]
    fn grayscale_and_cmyk_jpegs_become_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let gray = dir.path().join("gray.jpg");
        image::GrayImage::from_fn(20, 10, |x, _| image::Luma([(x * 12) as u8]))
            .save_with_format(&gray, image::ImageFormat::Jpeg)
            .unwrap();
        let (rgb, h, w) = decode(&gray).unwrap();
        assert_eq!((h, w, rgb.len()), (10, 20, 600));
        assert!(rgb.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]), "gray stays gray in RGB");
        // written by PIL (see the fixtures README): CMYK (0, 200, 200, 30), a red
        let (rgb, h, w) = decode(&fixtures().join("cmyk.jpg")).unwrap();
        assert_eq!((h, w), (30, 40));
        let p = &rgb[(5 * 40 + 5) * 3..(5 * 40 + 5) * 3 + 3];
        assert!(p[0] > 180 && p[1] < 100 && p[2] < 100, "CMYK red decoded as {p:?}");
    }

    #[test]
    fn bytes_in_memory_decode_as_their_file_does() {
        for name in ["cmyk.jpg", "chelsea.png"] {
            let path = fixtures().join(name);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(decode_bytes(&bytes, None).unwrap(), decode(&path).unwrap(), "{name}");
        }
        assert!(decode_bytes(b"GIF89a nothing", None).unwrap_err().contains("not"));
        let cmyk = std::fs::read(fixtures().join("cmyk.jpg")).unwrap();
        assert!(decode_bytes(&cmyk[..cmyk.len() / 2], None).unwrap_err().contains("truncated"));
    }

    #[test]
    fn bad_files_are_reasons_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.jpg");
        std::fs::write(&text, "not an image at all").unwrap();
        assert!(decode(&text).unwrap_err().contains("not a decodable image"), "{}", decode(&text).unwrap_err());
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert!(decode(&empty).is_err());
        assert!(decode(&dir.path().join("absent.jpg")).unwrap_err().contains("cannot open"));
        // a truncated JPEG
        let cut = dir.path().join("cut.jpg");
        let bytes = std::fs::read(fixtures().join("cmyk.jpg")).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(decode(&cut).is_err());
    }

    /// Issue 20, item 19: a JPEG cut short (a download that stopped) is
    /// refused, not decoded into a half-grey poster; a complete one with
    /// bytes after its end marker is read.
    #[test]
    fn a_truncated_jpeg_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.jpg");
        image::RgbImage::from_fn(120, 160, |x, y| image::Rgb([(x * 2) as u8, (y + x) as u8, 200]))
            .save_with_format(&whole, image::ImageFormat::Jpeg)
            .unwrap();
        let bytes = std::fs::read(&whole).unwrap();
        assert!(decode(&whole).is_ok());
        for keep in [bytes.len() * 6 / 10, bytes.len() - 2] {
            let cut = dir.path().join(format!("cut-{keep}.jpg"));
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            let Err(e) = decode(&cut) else { panic!("{keep} of {} bytes: accepted", bytes.len()) };
            assert!(e.contains("truncated JPEG"), "{keep} of {} bytes: {e}", bytes.len());
        }
        let padded = dir.path().join("padded.jpg");
        std::fs::write(&padded, [&bytes[..], b"trailing bytes"].concat()).unwrap();
        assert!(decode(&padded).is_ok());
    }

    /// Issue 20, items 12 and 15: a 4,000,000 × 1 strip (within the
    /// megapixel budget) is refused for its aspect ratio before its resize
    /// asks for 32.8 GB; a device is refused before a byte is read.
    #[test]
    fn an_extreme_aspect_ratio_and_a_device_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let strip = dir.path().join("strip.png");
        image::GrayImage::from_pixel(4_000_000, 1, image::Luma([9])).save(&strip).unwrap();
        let e = decode(&strip).unwrap_err();
        assert!(e.contains("4000000×1 pixels: an aspect ratio past 16:1"), "{e}");
        let tall = dir.path().join("tall.png");
        image::GrayImage::from_pixel(10, 161, image::Luma([9])).save(&tall).unwrap();
        assert!(decode(&tall).unwrap_err().contains("aspect ratio"));
        image::GrayImage::from_pixel(10, 160, image::Luma([9])).save(&tall).unwrap();
        assert!(decode(&tall).is_ok());
        let e = decode(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_huge_image_is_refused_from_its_header_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let huge = dir.path().join("huge.jpg");
        // an 8×8 JPEG whose frame header (SOF0) is patched to claim 20000 × 20000 pixels
        image::RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9]))
            .save_with_format(&huge, image::ImageFormat::Jpeg)
            .unwrap();
        let mut bytes = std::fs::read(&huge).unwrap();
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG");
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
        std::fs::write(&huge, bytes).unwrap();
        let e = decode(&huge).unwrap_err();
        assert!(e.contains("20000×20000 pixels is over the budget of 64 megapixels"), "{e}");
    }
}
