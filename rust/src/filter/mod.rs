//! Document filters: datatrove's quality heuristics (Gopher quality and
//! repetition, C4, FineWeb), each rule family in its own file, and their
//! order in `chain.rs`.
//!
//! A filter's `check(text)` returns None to keep a document, or the name of
//! the rule that drops it (datatrove's reason strings).

pub mod c4;
pub mod chain;
mod charclass;
pub mod fineweb;
pub mod gopher_quality;
pub mod gopher_repetition;
pub mod langid;
pub mod pii;
pub mod text;
pub mod words;

use std::borrow::Cow;

/// Why a document was dropped: datatrove's reason string for the rule.
pub type Reason = Cow<'static, str>;
