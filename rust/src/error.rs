//! The one error type of the core. The Python bindings map it onto Python
//! exceptions in one place (`python/errors.rs`): `InvalidInput` and
//! `Format` become `ValueError`, `Io` becomes `OSError`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller passed an argument that cannot be used (bad size, unknown
    /// option, out-of-range id). The message names the argument.
    #[error("{0}")]
    InvalidInput(String),

    /// A file or byte stream is not in the expected format. `what` names the
    /// file (or the object) and `reason` says what is wrong with it.
    #[error("{what}: {reason}")]
    Format { what: String, reason: String },

    /// An operating-system error while touching `path`.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    pub fn format(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Format {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_offending_thing() {
        let e = Error::format(
            "tokenizer.json",
            "model.type is \"WordPiece\", expected \"BPE\"",
        );
        assert_eq!(
            e.to_string(),
            "tokenizer.json: model.type is \"WordPiece\", expected \"BPE\""
        );
        let e = Error::io(
            "/no/such/file",
            std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        );
        assert!(e.to_string().starts_with("/no/such/file: "));
    }
}
