//! Writing files, through [`hpc_fs`] (atomically always, durably when the file is state; the
//! promises and their reasons are in its docs). This module only turns [`hpc_fs::Error`]
//! into this crate's [`Error::Io`], which names the path once.

use std::path::Path;

use crate::error::{Error, Result};

pub use hpc_fs::Artefact;

/// Write render's output under `dir`, atomically per file, not flushed, files that already
/// hold these bytes left alone; per artefact, whether it was written. See
/// [`hpc_fs::write_tree`].
pub fn write_tree(dir: &Path, files: &[Artefact]) -> Result<Vec<bool>> {
    hpc_fs::write_tree(dir, files).map_err(io)
}

/// Write `path` atomically and durably (temporary file beside it, mode 0600, flushed,
/// renamed over, directory flushed). For `up`'s own state and files the user asked for. See
/// [`hpc_fs::write_atomic`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    hpc_fs::write_atomic(path, bytes).map_err(io)
}

/// Replace `path` with `bytes` atomically; with `durable`, flushed as [`write_atomic`] does.
/// See [`hpc_fs::replace`].
pub fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    hpc_fs::replace(path, bytes, durable).map_err(io)
}

/// [`Error::Io`] from hpc-fs's what, path and cause.
fn io(e: hpc_fs::Error) -> Error {
    let (what, path, source) = e.into_parts();
    Error::Io { what, path, source }
}
