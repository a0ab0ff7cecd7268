//! What one request may ask of the server: its body, rows, texts and
//! images, and how long it may take. Each is a flag of `gmu serve` with a
//! default sized for the models gmu trains.

use std::time::Duration;

use super::refusal::Refusal;

/// The limits a request is held to.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of a request body (413 past it).
    pub max_body: usize,
    /// Rows in one request (413 past it).
    pub max_rows: usize,
    /// Bytes of one text (a plot).
    pub max_text: usize,
    /// Pixels of one image, width × height.
    pub max_pixels: u64,
    /// The longer side over the shorter.
    pub max_aspect: f64,
    /// Time to encode a request's raw inputs (texts, images).
    pub decode_timeout: Duration,
    /// Time for a whole request (503 past it).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 32 << 20,
            max_rows: 4096,
            max_text: 64 << 10,
            max_pixels: 40_000_000,
            max_aspect: 20.0,
            decode_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Checks element `i` of raw input `name` before anything decodes it: a
    /// text is UTF-8 within `max_text`; an image is a JPEG or PNG whose header
    /// gives a size within `max_pixels` and `max_aspect`. An empty element is
    /// a missing view, and passes.
    pub fn check_raw(&self, name: &str, i: usize, bytes: &[u8], image: bool) -> Result<(), Refusal> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !image {
            if bytes.len() > self.max_text {
                return Err(Refusal::TooLarge(format!(
                    "input '{name}', element {i}: a text of {} bytes; the limit is {} (--max-text-bytes)",
                    bytes.len(),
                    self.max_text
                )));
            }
            return std::str::from_utf8(bytes)
                .map(|_| ())
                .map_err(|e| Refusal::BadRequest(format!("input '{name}', element {i}: the text is not UTF-8 ({e})")));
        }
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Refusal::BadRequest(format!("input '{name}', element {i}: unreadable image ({e})")))?;
        if !matches!(reader.format(), Some(image::ImageFormat::Jpeg | image::ImageFormat::Png)) {
            return Err(Refusal::BadRequest(format!("input '{name}', element {i}: not a JPEG or PNG image")));
        }
        let (w, h) = reader
            .into_dimensions()
            .map_err(|e| Refusal::BadRequest(format!("input '{name}', element {i}: unreadable image header ({e})")))?;
        let pixels = u64::from(w) * u64::from(h);
        if pixels > self.max_pixels {
            return Err(Refusal::TooLarge(format!(
                "input '{name}', element {i}: a {w}×{h} image ({:.1} megapixels); the limit is {:.1} (--max-megapixels)",
                pixels as f64 / 1e6,
                self.max_pixels as f64 / 1e6
            )));
        }
        let aspect = f64::from(w.max(h)) / f64::from(w.min(h).max(1));
        if aspect > self.max_aspect {
            return Err(Refusal::BadRequest(format!(
                "input '{name}', element {i}: a {w}×{h} image, aspect ratio {aspect:.1}; the limit is {} (--max-aspect)",
                self.max_aspect
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::new(w, h).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn texts_and_images_past_a_limit_are_refused_by_name() {
        let limits = Limits { max_text: 10, max_pixels: 100, max_aspect: 4.0, ..Limits::default() };
        assert!(limits.check_raw("plot", 0, b"short", false).is_ok());
        let long = limits.check_raw("plot", 3, b"a longer plot", false).unwrap_err();
        assert_eq!(long.status(), 413);
        assert!(long.message().contains("input 'plot', element 3: a text of 13 bytes; the limit is 10"));
        assert_eq!(limits.check_raw("plot", 0, &[0xff, 0xfe], false).unwrap_err().status(), 400);
        assert!(limits.check_raw("poster", 0, &png(10, 10), true).is_ok());
        let big = limits.check_raw("poster", 1, &png(20, 10), true).unwrap_err();
        assert!(big.status() == 413 && big.message().contains("20×10"), "{big:?}");
        let thin = limits.check_raw("poster", 0, &png(20, 2), true).unwrap_err();
        assert!(thin.message().contains("aspect ratio 10.0"), "{thin:?}");
        assert!(
            limits.check_raw("poster", 0, b"GIF89a....", true).unwrap_err().message().contains("not a JPEG or PNG")
        );
        assert!(limits.check_raw("poster", 0, b"", true).is_ok(), "an empty image is a missing view");
    }
}
