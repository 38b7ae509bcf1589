//! One mapping from the core's `Error` onto Python exceptions.

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::PyErr;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::InvalidInput(_) | Error::Format { .. } => PyValueError::new_err(e.to_string()),
            Error::Io { ref source, .. } => {
                // OSError(errno, message) so that Python picks the subclass
                // (FileNotFoundError, PermissionError, ...) from the errno.
                let msg = e.to_string();
                match source.raw_os_error() {
                    Some(code) => PyOSError::new_err((code, msg)),
                    None => PyOSError::new_err(msg),
                }
            }
        }
    }
}
