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

/// Decodes an image file into RGB bytes `[height, width, 3]`, or says why not.
pub fn decode(path: &Path) -> Result<(Vec<u8>, usize, usize), String> {
    let reader = image::ImageReader::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader = reader.with_guessed_format().map_err(|e| format!("cannot read: {e}"))?;
    if reader.format().is_none() {
        return Err("not a JPEG or PNG image".to_string());
    }
    let (w, h) = reader.into_dimensions().map_err(|e| format!("not a decodable image ({e})"))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(format!("{w}×{h} pixels is over the budget of {} megapixels", MAX_PIXELS >> 20));
    }
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| format!("cannot open: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
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
