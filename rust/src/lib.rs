//! fastllm-core: the throughput-critical data kernels of fastllm.
//!
//! Every stage is a plain-Rust module with its own unit tests; `python/` is
//! the only module that knows about PyO3 and it is compiled only with the
//! `python` feature (which maturin turns on).

pub mod bpe;
pub mod dedup;
pub mod error;
pub mod extract;
pub mod filter;
pub mod guard;
pub mod pool;
pub mod shard;
pub mod source;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};

/// The package version, defined once in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
