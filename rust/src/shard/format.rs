//! The `.idx` layout of Megatron-LM's indexed dataset, byte for byte as
//! megatron-core's `megatron/core/datasets/indexed_dataset.py` writes it
//! (`_IndexWriter`) and reads it (`_IndexReader`), all little-endian:
//!
//! ```text
//! magic           9 bytes  b"MMIDIDX\x00\x00"
//! version         u64      1
//! dtype code      u8       DType: 1 uint8 .. 4 int32 .. 8 uint16
//! sequence count  u64      S
//! document count  u64      D  (= documents + 1: document_indices starts at 0)
//! sizes           S × i32  tokens per sequence
//! pointers        S × i64  byte offset of each sequence in .bin
//! doc indices     D × i64  sequence index where each document starts (+ end)
//! ```
//!
//! We write one sequence per document (as Megatron's `preprocess_data.py`
//! does without sentence splitting), so the document indices are 0..=S.

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
pub const VERSION: u64 = 1;
/// 9 (magic) + 8 (version) + 1 (dtype) + 8 (sequences) + 8 (documents).
pub const HEADER_LEN: usize = 34;

/// Megatron's `DType` codes. We write `U16` or `I32`; the reader accepts all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    U8 = 1,
    I8 = 2,
    I16 = 3,
    I32 = 4,
    I64 = 5,
    F64 = 6,
    F32 = 7,
    U16 = 8,
}

impl DType {
    /// Megatron's `DType.optimal_dtype`: uint16 when the vocabulary size is
    /// below 65500, int32 otherwise.
    pub fn for_vocab(vocab_size: usize) -> DType {
        if vocab_size < 65500 {
            DType::U16
        } else {
            DType::I32
        }
    }

    pub fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            1 => DType::U8,
            2 => DType::I8,
            3 => DType::I16,
            4 => DType::I32,
            5 => DType::I64,
            6 => DType::F64,
            7 => DType::F32,
            8 => DType::U16,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn itemsize(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// The numpy name, as the manifest records it.
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::U16 => "uint16",
        }
    }
}

/// The parsed contents of one `.idx` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub dtype: DType,
    pub sizes: Vec<i32>,
    pub pointers: Vec<i64>,
    pub doc_idx: Vec<i64>,
}

impl Index {
    /// The index of one-sequence-per-document data with these lengths.
    pub fn from_sizes(dtype: DType, sizes: Vec<i32>) -> Index {
        let item = dtype.itemsize() as i64;
        let mut pointers = Vec::with_capacity(sizes.len());
        let mut at = 0i64;
        for &s in &sizes {
            pointers.push(at);
            at += s as i64 * item;
        }
        let doc_idx = (0..=sizes.len() as i64).collect();
        Index {
            dtype,
            sizes,
            pointers,
            doc_idx,
        }
    }

    /// Bytes of token data the `.bin` file must hold.
    pub fn data_bytes(&self) -> u64 {
        self.sizes.iter().map(|&s| s as u64).sum::<u64>() * self.dtype.itemsize() as u64
    }

    /// The whole `.idx` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.sizes.len();
        let mut out = Vec::with_capacity(HEADER_LEN + 12 * n + 8 * self.doc_idx.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(self.dtype.code());
        out.extend_from_slice(&(n as u64).to_le_bytes());
        out.extend_from_slice(&(self.doc_idx.len() as u64).to_le_bytes());
        for s in &self.sizes {
            out.extend_from_slice(&s.to_le_bytes());
        }
        for p in &self.pointers {
            out.extend_from_slice(&p.to_le_bytes());
        }
        for d in &self.doc_idx {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out
    }

    /// Parse and validate an `.idx` file; `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Index> {
        let bad = |reason: String| Error::format(what, reason);
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!(
                "truncated index: {} bytes, the header alone is {HEADER_LEN}",
                bytes.len()
            )));
        }
        if &bytes[..9] != MAGIC {
            return Err(bad(format!(
                "bad magic {:?}, expected {:?} (not a Megatron indexed dataset)",
                String::from_utf8_lossy(&bytes[..9]),
                String::from_utf8_lossy(MAGIC)
            )));
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let version = u64_at(9);
        if version != VERSION {
            return Err(bad(format!("version {version}, expected {VERSION}")));
        }
        let dtype = DType::from_code(bytes[17])
            .ok_or_else(|| bad(format!("unknown dtype code {}", bytes[17])))?;
        let (seqs, docs) = (u64_at(18), u64_at(26));
        let expected = (HEADER_LEN as u128) + 12 * seqs as u128 + 8 * docs as u128;
        if bytes.len() as u128 != expected {
            return Err(bad(format!(
                "size {} bytes does not match its header ({seqs} sequences, {docs} document \
                 indices: {expected} bytes)",
                bytes.len()
            )));
        }
        let (seqs, docs) = (seqs as usize, docs as usize);
        let mut at = HEADER_LEN;
        let mut sizes = Vec::with_capacity(seqs);
        for _ in 0..seqs {
            sizes.push(i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
            at += 4;
        }
        let mut read_i64s = |n: usize| {
            let v: Vec<i64> = (0..n)
                .map(|i| i64::from_le_bytes(bytes[at + 8 * i..at + 8 * i + 8].try_into().unwrap()))
                .collect();
            at += 8 * n;
            v
        };
        let pointers = read_i64s(seqs);
        let doc_idx = read_i64s(docs);
        let index = Index {
            dtype,
            sizes,
            pointers,
            doc_idx,
        };
        index.validate(what)?;
        Ok(index)
    }

    /// Sizes non-negative, pointers contiguous from 0, document indices
    /// rising from 0 to the sequence count.
    fn validate(&self, what: &str) -> Result<()> {
        let bad = |reason: String| Error::format(what, reason);
        let item = self.dtype.itemsize() as i64;
        let mut at = 0i64;
        for (i, (&s, &p)) in self.sizes.iter().zip(&self.pointers).enumerate() {
            if s < 0 {
                return Err(bad(format!("sequence {i} has negative size {s}")));
            }
            if p != at {
                return Err(bad(format!(
                    "sequence {i} starts at byte {p}, expected {at} (pointers do not follow sizes)"
                )));
            }
            at += s as i64 * item;
        }
        match (self.doc_idx.first(), self.doc_idx.last()) {
            (Some(&0), Some(&last)) if last == self.sizes.len() as i64 => {}
            _ => {
                return Err(bad(format!(
                    "document indices must run from 0 to {} (the sequence count)",
                    self.sizes.len()
                )))
            }
        }
        if let Some(w) = self.doc_idx.windows(2).position(|w| w[1] < w[0]) {
            return Err(bad(format!("document indices decrease at entry {}", w + 1)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megatron_dtype_rule() {
        assert_eq!(DType::for_vocab(50257), DType::U16);
        assert_eq!(DType::for_vocab(65499), DType::U16);
        assert_eq!(DType::for_vocab(65500), DType::I32);
        assert_eq!(DType::for_vocab(128256), DType::I32);
        assert_eq!(DType::U16.code(), 8);
        assert_eq!(DType::I32.code(), 4);
    }

    #[test]
    fn layout_and_round_trip() {
        let idx = Index::from_sizes(DType::U16, vec![3, 0, 5]);
        let b = idx.to_bytes();
        assert_eq!(&b[..9], b"MMIDIDX\x00\x00");
        assert_eq!(b.len(), HEADER_LEN + 3 * 12 + 4 * 8);
        assert_eq!(b[17], 8);
        assert_eq!(idx.pointers, vec![0, 6, 6]);
        assert_eq!(Index::parse(&b, "x.idx").unwrap(), idx);
        assert_eq!(idx.data_bytes(), 16);
    }

    #[test]
    fn corruption_is_named() {
        let mut b = Index::from_sizes(DType::I32, vec![1, 2]).to_bytes();
        let e = Index::parse(&b[..b.len() - 1], "s.idx").unwrap_err();
        assert!(e.to_string().starts_with("s.idx: size"), "{e}");
        b[0] = b'X';
        assert!(Index::parse(&b, "s.idx")
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
        b[0] = b'M';
        b[17] = 99;
        assert!(Index::parse(&b, "s.idx")
            .unwrap_err()
            .to_string()
            .contains("dtype code 99"));
        b[17] = 4;
        b[HEADER_LEN + 8 + 8] = 7; // second pointer
        assert!(Index::parse(&b, "s.idx")
            .unwrap_err()
            .to_string()
            .contains("pointers"));
    }
}
