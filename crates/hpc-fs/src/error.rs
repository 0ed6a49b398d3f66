//! The one error of this crate: what was being done, to which path, and the OS's reason.

use std::io;
use std::path::{Path, PathBuf};

/// A write, rename or flush failed. The message names the path once (`cannot write
/// `/state/journal.json``); the OS's reason is the [`source`](std::error::Error::source),
/// never repeated in the message.
///
/// Crates whose own errors wrap [`std::io::Error`] convert it with `?` after
/// `.map_err(std::io::Error::from)`: the [`io::Error`] keeps the kind, shows this message and
/// has the same source.
#[derive(Debug, thiserror::Error)]
#[error("{what} `{}`", path.display())]
pub struct Error {
    what: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl Error {
    /// What failed, worded to precede the path (`cannot write`, `cannot flush directory`).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The path it failed on: the file being written, or the directory for
    /// `cannot create directory`, `cannot create a temporary file in` and
    /// `cannot flush directory`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the underlying I/O error (`NotFound`, `PermissionDenied`, …).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The parts, for a caller that has its own `{ what, path, source }` error.
    pub fn into_parts(self) -> (&'static str, PathBuf, io::Error) {
        (self.what, self.path, self.source)
    }

    /// A closure for `map_err` that wraps an [`io::Error`] with `what` and `path`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self { what, path, source }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn names_the_path_once_and_keeps_the_cause() {
        let e = Error::io("cannot write", "/s/journal.json")(io::Error::from(
            io::ErrorKind::PermissionDenied,
        ));
        assert_eq!(e.to_string(), "cannot write `/s/journal.json`");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(io.to_string(), "cannot write `/s/journal.json`");
        let cause = io.source().map(ToString::to_string).unwrap_or_default();
        assert_eq!(cause, "permission denied");
    }
}
