//! Byte-level BPE: pre-tokenization, training, encoding, decoding and the
//! Hugging Face / tiktoken file formats.

pub mod bytelevel;
pub mod hf;
pub mod model;
pub mod pretok;
pub mod tiktoken;
pub mod train;
