//! GPT-2's byte ↔ unicode table. Byte-level BPE files (HF `tokenizer.json`,
//! GPT-2 `vocab.json`/`merges.txt`) spell each byte as a printable
//! character: printable Latin-1 bytes stand for themselves, the other 68
//! bytes map to U+0100 onwards, in byte order.

/// `BYTE_TO_CHAR[b]` is the character that spells byte `b`.
pub const BYTE_TO_CHAR: [char; 256] = build_table();

const fn printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

const fn build_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    let mut b = 0usize;
    while b < 256 {
        if printable(b as u8) {
            table[b] = b as u8 as char;
        } else {
            table[b] = match char::from_u32(next) {
                Some(c) => c,
                None => '\0',
            };
            next += 1;
        }
        b += 1;
    }
    table
}

/// The byte a byte-level character stands for, if any.
pub fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 256 && printable(u as u8) {
        return Some(u as u8);
    }
    if (256..256 + 68).contains(&u) {
        let k = (u - 256) as usize;
        // The k-th non-printable byte.
        return (0u8..=255).filter(|&b| !printable(b)).nth(k);
    }
    None
}

/// Spell `bytes` in byte-level characters.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| BYTE_TO_CHAR[b as usize]).collect()
}

/// The bytes a byte-level string stands for; `None` if it holds a character
/// outside the table.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    s.chars().map(char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_gpt2() {
        assert_eq!(BYTE_TO_CHAR[b'A' as usize], 'A');
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ'); // U+0120
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ'); // U+010A
        assert_eq!(BYTE_TO_CHAR[0], 'Ā'); // U+0100
        assert_eq!(BYTE_TO_CHAR[0xAD], 'Ń'); // U+0143, the last of the 68
    }

    #[test]
    fn round_trip_all_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
        assert_eq!(decode("x\u{3000}"), None);
    }
}
