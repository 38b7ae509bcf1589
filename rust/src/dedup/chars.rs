//! Per-code-point tables for the Basic Multilingual Plane, shared by the two
//! normalizations (`normalize.rs` for near duplicates, `exact.rs` for content
//! hashes).
//!
//! The standard library answers "is this a letter?" and "what is its
//! lowercase?" by binary search in its Unicode tables, which costs more than
//! the hashing on non-English text (and on English with typographic quotes
//! and dashes). One table lookup per character replaces both: 65,536 entries
//! of 4 bytes, built once per process on first use from the same functions
//! the slow path calls, so results are identical by construction (and tested
//! over every code point).

/// A class (8 bits, meaning up to the caller) and the lowercase of each BMP
/// code point when it is one character (0: not one character, ask
/// `char::to_lowercase`).
pub struct BmpTable {
    entries: Box<[u32]>,
    /// Per page of 64 code points: the class shared by all of them when each
    /// is its own lowercase (CJK, kana, Hangul, most of Thai), else
    /// [`MIXED`]. A 1 KB table that stays in L1, where `entries` (256 KB)
    /// does not: such characters need no lookup in `entries`.
    pages: Box<[u8]>,
}

/// A page whose characters differ in class or case.
pub const MIXED: u8 = u8::MAX;

impl BmpTable {
    /// The table of `f(c) = (class, single-character lowercase)` for every
    /// BMP character (surrogates, which no `&str` holds, get class 0).
    pub fn build(f: impl Fn(char) -> (u8, Option<char>)) -> Self {
        let entries = (0..0x1_0000u32)
            .map(|cp| match char::from_u32(cp) {
                Some(c) => {
                    let (class, lower) = f(c);
                    class as u32 | lower.map_or(0, |l| (l as u32) << 8)
                }
                None => 0,
            })
            .collect::<Box<[u32]>>();
        let pages = (0..0x400u32)
            .map(|page| {
                let first = entries[(page << 6) as usize] as u8;
                let uniform = (page << 6..(page + 1) << 6).all(|cp| {
                    let e = entries[cp as usize];
                    e as u8 == first && e >> 8 == cp && char::from_u32(cp).is_some()
                });
                if uniform {
                    first
                } else {
                    MIXED
                }
            })
            .collect();
        Self { entries, pages }
    }

    /// The class of every code point of the page of `cp < 0x10000` when they
    /// share it and are their own lowercase, else [`MIXED`].
    #[inline(always)]
    pub fn page_class(&self, cp: u32) -> u8 {
        self.pages[(cp >> 6) as usize & 0x3FF]
    }

    /// `(class, lowercase code point or 0)` of any code point: from the
    /// table in the BMP, from `slow` (the function the table was built
    /// from) above it.
    #[inline(always)]
    pub fn lookup(&self, cp: u32, slow: impl Fn(char) -> (u8, Option<char>)) -> (u8, u32) {
        if cp < 0x1_0000 {
            return self.get(cp);
        }
        let (class, lower) = slow(char::from_u32(cp).unwrap_or(' '));
        (class, lower.map_or(0, |l| l as u32))
    }

    /// `(class, lowercase code point or 0)` of `cp < 0x10000`.
    #[inline(always)]
    pub fn get(&self, cp: u32) -> (u8, u32) {
        let e = self.entries[cp as usize & 0xFFFF];
        (e as u8, e >> 8)
    }
}

/// The single-character lowercase of `c`, if it is one character.
pub fn single_lower(c: char) -> Option<char> {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => Some(x),
        _ => None,
    }
}

/// Decode the character starting at `bytes[i]` (a non-ASCII lead byte of
/// valid UTF-8): its code point and length in bytes.
#[inline(always)]
pub fn decode(bytes: &[u8], i: usize) -> (u32, usize) {
    let b0 = bytes[i] as u32;
    let cont = |k: usize| (bytes[i + k] & 0x3F) as u32;
    if b0 < 0xE0 {
        (((b0 & 0x1F) << 6) | cont(1), 2)
    } else if b0 < 0xF0 {
        (((b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3)
    } else {
        (
            ((b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3),
            4,
        )
    }
}

/// Append the UTF-8 bytes of code point `cp` (a valid scalar value).
#[inline(always)]
pub fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x1_0000 {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_encode_round_trip() {
        let s = "aé€😀ß中";
        let b = s.as_bytes();
        let mut i = 0;
        let mut out = Vec::new();
        for c in s.chars() {
            if b[i] < 0x80 {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let (cp, n) = decode(b, i);
            assert_eq!(cp, c as u32);
            assert_eq!(n, c.len_utf8());
            push_utf8(&mut out, cp);
            i += n;
        }
        assert_eq!(out, b);
    }

    #[test]
    fn table_holds_class_and_lowercase() {
        let t = BmpTable::build(|c| (c.is_alphabetic() as u8, single_lower(c)));
        assert_eq!(t.get('A' as u32), (1, 'a' as u32));
        assert_eq!(t.get('Σ' as u32), (1, 'σ' as u32));
        assert_eq!(t.get('İ' as u32), (1, 0)); // "i\u{307}": two characters
        assert_eq!(t.get('—' as u32), (0, '—' as u32));
        assert_eq!(t.page_class('中' as u32), 1);
        assert_eq!(t.page_class('A' as u32), MIXED);
        assert_eq!(t.page_class(0xD800), MIXED); // surrogates
    }
}
