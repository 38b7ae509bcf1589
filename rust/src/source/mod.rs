//! Input formats read in Rust: WARC and WET files (plain or gzip, one
//! member per record as Common Crawl ships them), as documents.
//!
//! `gzip` inflates member after member and steps over damaged ones;
//! `warc` frames records (headers parsed by the `warc` crate), picks the
//! documents, and counts every record it cannot return by reason.

pub mod gzip;
pub mod warc;

pub use self::warc::{Counts, Doc, Kind, Options, Reason, WarcReader};
