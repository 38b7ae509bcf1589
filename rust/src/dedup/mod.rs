//! Duplicate detection: exact content hashes, and near duplicates by
//! MinHash signatures, LSH banding and union-find, in memory or out of core.
//!
//! `normalize` → `shingle` → `minhash` → `lsh` → `near` (+ `cluster`), and
//! `external` for sorted runs of band keys on disk; `chars` holds the
//! per-code-point tables both normalizations use.

pub mod chars;
pub mod cluster;
pub mod exact;
pub mod external;
pub mod lsh;
pub mod minhash;
pub mod near;
pub mod normalize;
pub mod shingle;
