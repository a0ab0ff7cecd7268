//! A hashing text encoder: words and character trigrams hashed into a fixed
//! number of buckets (the "hashing trick", Weinberger et al., 2009), with
//! signed buckets and L2 normalisation. No vocabulary to fit or ship.

/// Hashes text into `dim` features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingEncoder {
    /// Number of buckets.
    pub dim: usize,
}

/// FNV-1a, 64 bit: stable across platforms and releases (unlike `std`'s hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl HashingEncoder {
    /// An encoder with `dim` buckets.
    ///
    /// # Panics
    /// If `dim` is 0.
    pub fn new(dim: usize) -> Self {
        assert!(dim > 0, "a hashing encoder needs at least one bucket");
        HashingEncoder { dim }
    }

    /// Lower-cased words (runs of letters and digits), and the character
    /// trigrams of each word padded with `#` (so `cat` gives `#ca`, `cat`, `at#`).
    pub fn tokens(text: &str) -> Vec<String> {
        let lower = text.to_lowercase();
        let mut out = Vec::new();
        for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            out.push(format!("w:{word}"));
            let chars: Vec<char> = std::iter::once('#').chain(word.chars()).chain(std::iter::once('#')).collect();
            for tri in chars.windows(3) {
                out.push(format!("c:{}", tri.iter().collect::<String>()));
            }
        }
        out
    }

    /// The features of `text`: each token adds ±1 to its bucket (the sign
    /// from another bit of the hash, so collisions cancel on average); the
    /// vector is scaled to unit length (all zeros for text with no token).
    pub fn encode(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dim];
        for token in Self::tokens(text) {
            let h = fnv1a(token.as_bytes());
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[(h % self.dim as u64) as usize] += sign;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_words_and_padded_trigrams() {
        assert_eq!(HashingEncoder::tokens("Cat!"), vec!["w:cat", "c:#ca", "c:cat", "c:at#"]);
        assert!(HashingEncoder::tokens(" ,; ").is_empty());
    }

    #[test]
    fn encoding_is_unit_length_deterministic_and_separates_texts() {
        let e = HashingEncoder::new(64);
        let a = e.encode("grinning face");
        assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(a, e.encode("GRINNING  face"));
        assert_ne!(a, e.encode("flag: France"));
        assert_eq!(e.encode("..."), vec![0.0; 64]);
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c (the published test vector)
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
