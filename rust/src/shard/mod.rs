//! Packed token shards in Megatron-LM's indexed dataset format.
//!
//! A shard is a pair `NAME.bin` (the tokens of every document, back to back)
//! and `NAME.idx` (header, per-document lengths and byte offsets, document
//! indices). `format` is the byte layout, `writer` fills shards up to a size
//! cap and publishes them by rename, `reader` opens and validates one.

pub mod format;
pub mod reader;
pub mod writer;

pub use format::{DType, Index};
pub use reader::ShardReader;
pub use writer::{ShardInfo, ShardWriter, WriterConfig};
