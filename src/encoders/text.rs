//! Text normalisation shared by the text encoders (GloVe) and the raw
//! MM-IMDb reader: the paper's pipeline, so a plot is tokenised one way
//! everywhere. Plain strings; imports nothing of gmu.

/// The most bytes of one text an encoder reads: a text past it is cut (at
/// a character boundary) before tokenising. MiniLM reads 256 tokens and the
/// WordPiece LSTM at most 512, a few kB of prose; tokenising a 200 MB "plot"
/// whole would take 12.6 GB.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// `text` cut to at most [`MAX_TEXT_BYTES`] bytes, at a character boundary.
pub fn capped(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The paper's text normalisation (see `MMIMDB_FORMAT.md`): lower case;
/// `<br />` → space; URLs → `L`; ``~*+^`_#[]|`` → space; runs of digits → `N`;
/// the punctuation ``/'-.?!()",:;`` split off as tokens.
pub fn normalize_plot(plot: &str) -> Vec<String> {
    let lower = plot.to_lowercase().replace("<br />", " ");
    let mut words = Vec::new();
    for raw in lower.split_whitespace() {
        if raw.starts_with("http://") || raw.starts_with("https://") || raw.starts_with("www.") {
            words.push("L".to_string());
            continue;
        }
        let mut token = String::new();
        let mut chars = raw.chars().peekable();
        let flush = |t: &mut String, out: &mut Vec<String>| {
            if !t.is_empty() {
                out.push(std::mem::take(t));
            }
        };
        while let Some(c) = chars.next() {
            if "~*+^`_#[]|".contains(c) {
                flush(&mut token, &mut words);
            } else if "/'-.?!()\",:;".contains(c) {
                flush(&mut token, &mut words);
                words.push(c.to_string());
            } else if c.is_ascii_digit() {
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
                token.push('N');
            } else {
                token.push(c);
            }
        }
        flush(&mut token, &mut words);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, item 13: a text past the cap is cut at a character boundary
    /// (here inside a 4-byte emoji), never split inside one.
    #[test]
    fn a_long_text_is_cut_at_a_character_boundary() {
        assert_eq!(capped("short"), "short");
        let long = "a".repeat(MAX_TEXT_BYTES - 2) + "😀😀";
        let cut = capped(&long);
        assert_eq!(cut.len(), MAX_TEXT_BYTES - 2);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn plot_normalisation_follows_the_paper_pipeline() {
        let words = normalize_plot("A man's 1999 trip<br />to http://x.y (Paris)! #wow");
        assert_eq!(words, ["a", "man", "'", "s", "N", "trip", "to", "L", "(", "paris", ")", "!", "wow"]);
    }
}
