//! Byte-level BPE: pre-tokenization, training, encoding, decoding and the
//! Hugging Face / tiktoken file formats.

pub mod pretok;
pub mod train;
