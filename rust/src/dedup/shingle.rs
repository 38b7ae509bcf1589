//! Word n-gram shingles, one 64-bit xxh3 hash each.
//!
//! A shingle is `ngram` consecutive normalized words joined by single spaces
//! (`normalize.rs`); its hash is `xxh3_64` of those UTF-8 bytes. Text in a
//! script without spaces has one word per character there, so its shingles
//! are character n-grams. A document with fewer than `ngram` words (but at
//! least one) has one shingle: all its words. An empty document (nothing
//! left after normalization) has none.

use xxhash_rust::xxh3::xxh3_64;

use super::normalize::words_into;

/// Buffers reused from one document to the next (one per worker thread).
#[derive(Default)]
pub struct Scratch {
    pub normalized: Vec<u8>,
    pub starts: Vec<u32>,
}

/// Push the shingle hashes of `text` onto `hashes` (cleared first).
pub fn shingle_hashes_into(text: &str, ngram: usize, scratch: &mut Scratch, hashes: &mut Vec<u64>) {
    hashes.clear();
    words_into(text, &mut scratch.normalized, &mut scratch.starts);
    let norm = &scratch.normalized[..];
    let starts = &scratch.starts;
    let nw = starts.len();
    if nw == 0 {
        return;
    }
    if nw <= ngram {
        hashes.push(xxh3_64(norm));
        return;
    }
    hashes.reserve(nw - ngram + 1);
    // Each shingle is a byte range of the normalized text: hash it in place
    // instead of joining words into a fresh string.
    for i in 0..=nw - ngram {
        let start = starts[i] as usize;
        let end = if i + ngram < nw {
            starts[i + ngram] as usize - 1
        } else {
            norm.len()
        };
        hashes.push(xxh3_64(&norm[start..end]));
    }
}

/// The shingle hashes of one text, in order (duplicates kept).
pub fn shingle_hashes(text: &str, ngram: usize) -> Vec<u64> {
    let mut out = Vec::new();
    shingle_hashes_into(text, ngram, &mut Scratch::default(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shingles_are_joined_word_ngrams() {
        let h = shingle_hashes("The cat, the HAT; the bat", 3);
        assert_eq!(
            h,
            vec![
                xxh3_64(b"the cat the"),
                xxh3_64(b"cat the hat"),
                xxh3_64(b"the hat the"),
                xxh3_64(b"hat the bat"),
            ]
        );
    }

    #[test]
    fn short_and_empty_documents() {
        assert_eq!(shingle_hashes("one", 5), vec![xxh3_64(b"one")]);
        assert_eq!(shingle_hashes("one two!", 5), vec![xxh3_64(b"one two")]);
        assert_eq!(shingle_hashes("a b c d e", 5), vec![xxh3_64(b"a b c d e")]);
        assert!(shingle_hashes("", 5).is_empty());
        assert!(shingle_hashes(" ,.; ", 5).is_empty());
    }

    #[test]
    fn cjk_falls_back_to_character_ngrams() {
        let h = shingle_hashes("我爱北京天安门", 5);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0], xxh3_64("我 爱 北 京 天".as_bytes()));
    }
}
