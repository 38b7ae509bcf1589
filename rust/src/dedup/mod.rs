//! Duplicate detection: exact content hashes (MinHash/LSH follow).

pub mod exact;
