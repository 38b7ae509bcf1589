//! Exact duplicates by a 128-bit content hash (xxh3).
//!
//! With `normalize`, texts that differ only in case, punctuation or
//! whitespace hash alike: the text is lowercased, punctuation and symbols are
//! dropped and every whitespace run becomes one space (datatrove's
//! `simplify_text` does the same folding for its exact dedup).

use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use super::chars::{decode, single_lower, BmpTable};
use crate::guard::{self, Doc};

/// ASCII byte classes: 1 = letter or digit, 2 = whitespace (as
/// `char::is_whitespace`), 0 = dropped (punctuation, symbols, controls).
const fn ascii_classes() -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() {
            1
        } else if matches!(c, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ') {
            2
        } else {
            0
        };
        b += 1;
    }
    t
}

static ASCII_CLASS: [u8; 128] = ascii_classes();

const DROP: u8 = 0;
const KEEP: u8 = 1;
const WS: u8 = 2;

/// The class and single-character lowercase of every BMP character, built
/// once (see `chars.rs`): the standard library answers these by binary
/// search in its Unicode tables, which cost more than the hashing itself on
/// non-English text and on English with typographic quotes and dashes.
fn table() -> &'static BmpTable {
    static TABLE: std::sync::OnceLock<BmpTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| BmpTable::build(classify_slow))
}

/// The class of `c` and its lowercase when that is one character (None:
/// ask `char::to_lowercase`).
fn classify_slow(c: char) -> (u8, Option<char>) {
    if c.is_whitespace() {
        return (WS, None);
    }
    if !c.is_alphanumeric() {
        return (DROP, None);
    }
    (KEEP, single_lower(c))
}

#[cfg(test)]
fn classify(c: char) -> (u8, Option<char>) {
    let cp = c as u32;
    if cp < 0x1_0000 {
        let (class, lower) = table().get(cp);
        return (class, char::from_u32(lower).filter(|_| lower != 0));
    }
    classify_slow(c)
}

/// ASCII bytes: the lowercase byte, bit 8 for a letter or digit, bit 9 for
/// whitespace.
const fn ascii_entries() -> [u16; 128] {
    let mut t = [0u16; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).to_ascii_lowercase() as u16 | ((ASCII_CLASS[b] as u16) << 8);
        b += 1;
    }
    t
}

static ASCII_ENTRY: [u16; 128] = ascii_entries();

/// The folding state carried from one byte to the next.
struct Fold {
    buf: [u8; BUF],
    len: usize,
    /// 1 when a space is owed before the next kept character.
    pending: usize,
    /// 1 once a character was kept.
    started: usize,
}

const BUF: usize = 4096;

impl Fold {
    /// One ASCII byte, without branches: in prose the class changes every
    /// few bytes, and a branch per class change mispredicts that often. The
    /// caller keeps `len + 2 <= BUF`; the index mask lets the compiler drop
    /// the bounds checks (it changes nothing below BUF).
    #[inline(always)]
    fn ascii(&mut self, b: u8) {
        let e = ASCII_ENTRY[b as usize & 0x7F] as usize;
        let alnum = (e >> 8) & 1;
        let space = e >> 9;
        self.buf[self.len & (BUF - 1)] = b' ';
        self.len += self.pending & alnum;
        self.buf[self.len & (BUF - 1)] = e as u8;
        self.len += alnum;
        self.pending = (self.pending | (space & self.started)) & (alnum ^ 1);
        self.started |= alnum;
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` (all bytes ASCII) that is `>= c`.
#[inline(always)]
fn bytes_ge(w: u64, c: u8) -> u64 {
    // A byte below 0x80 plus 0x80 - c stays within the byte.
    w.wrapping_add(ONES * (0x80 - c as u64)) & HIGH
}

/// The high bit of each byte of `w` (all bytes ASCII) in `lo..=hi`.
#[inline(always)]
fn bytes_in(w: u64, lo: u8, hi: u8) -> u64 {
    bytes_ge(w, lo) & !bytes_ge(w, hi + 1)
}

impl Fold {
    /// Eight ASCII bytes at once when they are letters, digits and single
    /// whitespace characters (most of the blocks of prose): lowercase and
    /// whitespace-to-space in a few word operations, one 8-byte store.
    /// Returns false, having done nothing, for any other block (punctuation,
    /// a whitespace run, a leading whitespace the state cannot place).
    #[inline(always)]
    fn clean_block(&mut self, w: u64) -> bool {
        let upper = bytes_in(w, b'A', b'Z');
        let alnum = upper | bytes_in(w, b'a', b'z') | bytes_in(w, b'0', b'9');
        let ws = bytes_in(w, b'\t', b'\r') | bytes_in(w, b' ', b' ');
        if alnum | ws != HIGH || ws & (ws << 8) != 0 {
            return false;
        }
        let first_ws = ws & 0x80 != 0;
        if first_ws && (self.pending == 1 || self.started == 0) {
            // A whitespace run across blocks, or before any kept byte.
            return false;
        }
        // The space owed from the block before, when it starts with a kept
        // byte; a leading whitespace (after a kept byte) is that space.
        self.buf[self.len & (BUF - 1)] = b' ';
        self.len += self.pending;
        let ws_bytes = (ws >> 7) * 0xFF;
        let out = ((w | (upper >> 2)) & !ws_bytes) | (ws_bytes & (ONES * 0x20));
        // A trailing whitespace is owed to the next kept byte, not written.
        let trailing = (ws >> 63) as usize;
        let at = self.len;
        self.buf[at..at + 8].copy_from_slice(&out.to_le_bytes());
        self.len += 8 - trailing;
        self.pending = trailing;
        self.started = 1;
        true
    }
}

/// One bit per byte of `m` (bit `j` = the high bit of byte `j`; the other
/// bits of `m` are zero).
#[inline(always)]
fn byte_bits(m: u64) -> u32 {
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

impl Fold {
    /// Any eight ASCII bytes (code: punctuation, indentation), as `ascii`
    /// would take them one by one, but with one step per kept byte instead
    /// of per byte. Whether a space goes before a kept byte is a carry
    /// chain: whitespace sets "a space is owed", a kept byte clears it, a
    /// dropped byte passes it on; one addition computes it for all eight
    /// positions (generate = whitespace, propagate = dropped).
    #[inline(always)]
    fn mixed_block(&mut self, w: u64) {
        let upper = bytes_in(w, b'A', b'Z');
        let alnum = byte_bits(upper | bytes_in(w, b'a', b'z') | bytes_in(w, b'0', b'9'));
        let mut ws = byte_bits(bytes_in(w, b'\t', b'\r') | bytes_in(w, b' ', b' '));
        if self.started == 0 {
            // Whitespace before the first kept byte of the text owes nothing.
            let first = alnum & alnum.wrapping_neg();
            ws &= if alnum == 0 { 0 } else { !(first - 1) };
        }
        let pass = !(ws | alnum) & 0xFF;
        let (x, y) = (ws | pass, ws);
        // Bit k of `carry`: a space is owed just before byte k; bit 8: after
        // the block.
        let carry = (x + y + self.pending as u32) ^ x ^ y;
        let space = carry & alnum;
        let lower = (w | (upper >> 2)).to_le_bytes();
        let mut m = alnum;
        while m != 0 {
            let k = m.trailing_zeros();
            self.buf[self.len & (BUF - 1)] = b' ';
            self.len += ((space >> k) & 1) as usize;
            self.buf[self.len & (BUF - 1)] = lower[k as usize];
            self.len += 1;
            m &= m - 1;
        }
        self.pending = ((carry >> 8) & 1) as usize;
        self.started |= (alnum != 0) as usize;
    }
}

/// Fold case, punctuation and whitespace, streaming into the hasher through
/// a stack buffer, so that no normalized copy of the text is allocated and
/// the hasher sees large updates. Eight ASCII bytes at a time take
/// branch-free steps (one check for the block, none per byte).
fn normalized_hash(text: &str) -> u128 {
    // Room for a space and the longest lowercase expansion of one character,
    // or for eight ASCII bytes and a space.
    const SLACK: usize = 24;
    let mut h = Xxh3::new();
    let mut f = Fold {
        buf: [0u8; BUF],
        len: 0,
        pending: 0,
        started: 0,
    };
    let bytes = text.as_bytes();
    let tab = table();
    let mut i = 0;
    while i < bytes.len() {
        if f.len + SLACK > BUF {
            h.update(&f.buf[..f.len]);
            f.len = 0;
        }
        if let Some(block) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(block.try_into().unwrap());
            let high = w & 0x8080_8080_8080_8080;
            if high == 0 {
                if !f.clean_block(w) {
                    f.mixed_block(w);
                }
                i += 8;
                continue;
            }
            // The ASCII bytes before the block's first non-ASCII one, then
            // that character (not one block test per byte).
            let k = high.trailing_zeros() as usize / 8;
            for &b in &block[..k] {
                f.ascii(b);
            }
            i += k;
        }
        let b = bytes[i];
        if b < 0x80 {
            i += 1;
            f.ascii(b);
            continue;
        }
        let (cp, n) = decode(bytes, i);
        if n == 2 {
            // Latin, Greek, Cyrillic, Hebrew, Arabic letters: kept, with a
            // two-byte lowercase, is the common case (no branch on pending).
            let (class, lower) = tab.get(cp);
            if class == KEEP && (0x80..0x800).contains(&lower) {
                f.buf[f.len] = b' ';
                f.len += f.pending;
                f.pending = 0;
                f.started = 1;
                f.buf[f.len] = 0xC0 | (lower >> 6) as u8;
                f.buf[f.len + 1] = 0x80 | (lower & 0x3F) as u8;
                f.len += 2;
                i += 2;
                continue;
            }
        }
        if n == 3 && tab.page_class(cp) == KEEP {
            // A caseless letter of a page of them (CJK, kana, Hangul):
            // copied as it is, no lookup in the large table.
            if f.pending == 1 {
                f.buf[f.len] = b' ';
                f.len += 1;
                f.pending = 0;
            }
            f.started = 1;
            f.buf[f.len..f.len + 3].copy_from_slice(&bytes[i..i + 3]);
            f.len += 3;
            i += 3;
            continue;
        }
        let (class, lower) = tab.lookup(cp, classify_slow);
        let at = i;
        i += n;
        if class == WS {
            f.pending = f.started;
            continue;
        }
        if class == DROP {
            continue;
        }
        if f.pending == 1 {
            f.buf[f.len] = b' ';
            f.len += 1;
            f.pending = 0;
        }
        f.started = 1;
        if lower == cp {
            // Its own lowercase (CJK, kana, Hangul, Thai, lowercase Latin,
            // ...): copy the bytes.
            if let Some(src) = bytes.get(at..at + 4) {
                // Four bytes whatever n (no variable-length memcpy call);
                // the buffer has room, the extra bytes are overwritten.
                f.buf[f.len..f.len + 4].copy_from_slice(src);
            } else {
                f.buf[f.len..f.len + n].copy_from_slice(&bytes[at..at + n]);
            }
            f.len += n;
        } else if let Some(l) = char::from_u32(lower).filter(|_| lower != 0) {
            f.len += l.encode_utf8(&mut f.buf[f.len..]).len();
        } else {
            let c = text[at..].chars().next().unwrap();
            for l in c.to_lowercase() {
                f.len += l.encode_utf8(&mut f.buf[f.len..]).len();
            }
        }
    }
    h.update(&f.buf[..f.len]);
    h.digest128()
}

/// The 128-bit content hash of one text.
pub fn content_hash(text: &str, normalize: bool) -> u128 {
    if normalize {
        normalized_hash(text)
    } else {
        xxh3_128(text.as_bytes())
    }
}

/// Hashes of a batch, in order, spread over the current rayon pool.
pub fn content_hashes<S: AsRef<str> + Sync>(texts: &[S], normalize: bool) -> Vec<u128> {
    texts
        .par_iter()
        .map(|t| content_hash(t.as_ref(), normalize))
        .collect()
}

/// [`content_hash`] of every document of a batch in parallel (call it on
/// the pool), under the one panic policy (`crate::guard`): a document
/// whose hashing panics comes back as [`Doc::Failed`] (no hash), a null
/// row as [`Doc::Null`].
pub fn hash_batch<S: AsRef<str> + Sync>(texts: &[Option<S>], normalize: bool) -> Vec<Doc<u128>> {
    guard::map_documents(texts, |t| content_hash(t.as_ref(), normalize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_the_hash_of_each_document() {
        let texts = [Some("Hello, world"), None, Some("")];
        let out = crate::pool::install(|| hash_batch(&texts, true)).unwrap();
        assert_eq!(
            out,
            vec![
                Doc::Done(content_hash("hello world", true)),
                Doc::Null,
                Doc::Done(content_hash("", true)),
            ]
        );
    }

    #[test]
    fn raw_hash_is_xxh3() {
        assert_eq!(content_hash("abc", false), xxh3_128(b"abc"));
        assert_ne!(content_hash("abc", false), content_hash("abd", false));
    }

    #[test]
    fn normalization_folds_case_punctuation_whitespace() {
        let a = content_hash("Hello,   World!\n", true);
        assert_eq!(a, content_hash("hello world", true));
        assert_eq!(a, content_hash("  HELLO\tworld...", true));
        assert_ne!(a, content_hash("hello worlds", true));
        assert_ne!(a, content_hash("helloworld", true));
        assert_eq!(content_hash("Äpfel", true), content_hash("äpfel", true));
    }

    #[test]
    fn normalized_hash_is_xxh3_of_the_folded_text() {
        // Longer than the stack buffer, with multi-byte lowercase expansions.
        let text = "İ Straße, ÉTÉ!\t".repeat(2000);
        let folded = "i\u{307} straße été ".repeat(2000);
        assert_eq!(
            content_hash(&text, true),
            xxh3_128(folded.trim_end().as_bytes())
        );
        assert_eq!(content_hash("\u{b}a\u{1c}b", true), xxh3_128(b"ab"));
    }

    #[test]
    fn fast_classification_equals_the_standard_library() {
        for cp in 0..0x3_0000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            assert_eq!(classify(c), classify_slow(c), "U+{cp:04X}");
        }
    }

    #[test]
    fn batch_matches_single() {
        let texts = vec!["a", "b", "a", ""];
        let hs = content_hashes(&texts, false);
        assert_eq!(hs[0], hs[2]);
        assert_eq!(hs[1], content_hash("b", false));
        assert_eq!(hs.len(), 4);
    }

    /// The folding rule one character at a time, with the standard library.
    fn naive_fold(text: &str) -> String {
        let mut out = String::new();
        let (mut pending, mut started) = (false, false);
        for c in text.chars() {
            let (class, _) = classify_slow(c);
            if class == WS {
                pending = started;
                continue;
            }
            if class == DROP {
                continue;
            }
            if pending {
                out.push(' ');
                pending = false;
            }
            started = true;
            out.extend(c.to_lowercase());
        }
        out
    }

    #[test]
    fn clean_blocks_equal_the_char_by_char_rule() {
        // Prose-like ASCII: words, single and double whitespace of every
        // kind, some punctuation, blocks that start and end with whitespace.
        let pieces = [
            "The", "quick", "BROWN", "fox", "0x1F", "a", "Zz", " ", " ", "\t", "\n", "\r\n",
            "\u{b}", "\u{c}", ",", ". ", "  ", "don't", "x",
        ];
        let mut rng = crate::dedup::minhash::SplitMix64(3);
        for _ in 0..2000 {
            let len = rng.next_u64() % 60;
            let text: String = (0..len)
                .map(|_| pieces[(rng.next_u64() % pieces.len() as u64) as usize])
                .collect();
            let want = xxh3_128(naive_fold(&text).as_bytes());
            assert_eq!(content_hash(&text, true), want, "{text:?}");
        }
        assert_eq!(
            bytes_in(u64::from_le_bytes(*b"Az09 ~\t\r"), b'A', b'Z'),
            0x80
        );
    }

    #[test]
    fn mixed_blocks_equal_the_char_by_char_rule() {
        // Code-like ASCII: punctuation, indentation runs, whitespace around
        // dropped bytes, at the start of the text and across block edges.
        let alphabet = b"aZ9x_(){}[].,;:=+-*/#'\"<>  \t\n\r\x0b\x0c\x00\x7f";
        let mut rng = crate::dedup::minhash::SplitMix64(7);
        for _ in 0..3000 {
            let len = rng.next_u64() % 70;
            let text: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize] as char)
                .collect();
            let want = xxh3_128(naive_fold(&text).as_bytes());
            assert_eq!(content_hash(&text, true), want, "{text:?}");
        }
        for m in [
            0u64,
            0x80,
            0x8000_0000_0000_0000,
            0x8080_8080_8080_8080,
            0x0080_0000_8000_0080,
        ] {
            let want = (0..8)
                .filter(|j| m >> (8 * j + 7) & 1 == 1)
                .map(|j| 1u32 << j)
                .sum::<u32>();
            assert_eq!(byte_bits(m), want, "{m:#x}");
        }
    }

    #[test]
    fn fast_fold_equals_the_char_by_char_rule() {
        let alphabet: Vec<char> = "aZ9 \t\n.,'-_ÄéßİǅΣσςЖжЁ中文カナ한글ไทย\u{300}\u{2014}\u{201C}\u{3000}\u{FF0C}\u{A0}\u{10400}\u{1D7CE}😀"
            .chars()
            .collect();
        let mut rng = crate::dedup::minhash::SplitMix64(1);
        for len in [0, 1, 7, 8, 9, 63, 300, 5000, 20_000] {
            for _ in 0..20 {
                let text: String = (0..len)
                    .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                    .collect();
                let want = xxh3_128(naive_fold(&text).as_bytes());
                assert_eq!(content_hash(&text, true), want, "{text:?}");
            }
        }
    }
}
