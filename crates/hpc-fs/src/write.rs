//! One file: a temporary file beside it, renamed over it; flushed when it is state.

use std::io::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// The temporary files this crate makes start with this: hidden, and never `*.xml`,
/// `*.conf` or `*.json`, so a reader globbing a directory does not pick one up. A process
/// killed between creating one and renaming it leaves `.hpc-up-XXXXXX.tmp` behind.
pub const TEMP_PREFIX: &str = ".hpc-up-";
/// … and end with this.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Write `path` durably, so that readers see the old file or the new one, never a part, also
/// after a crash or power loss: write a temporary file beside it (mode 0600), flush it to
/// disk, rename it over, flush the directory (so that the rename itself survives). For
/// state (secrets, the libvirt journal, seed disks) and files the user asked for; render's
/// regenerable output uses the cheaper [`write_tree`](crate::write_tree).
///
/// The directory must exist. A file that replaces another gets mode 0600 and the writer's
/// owner, not the old file's.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// A temporary file beside `path` (mode 0600, named by [`TEMP_PREFIX`]/[`TEMP_SUFFIX`]) with
/// `bytes`, renamed over `path`; with `durable`, the file is flushed before the rename and
/// the directory after it. Without `durable`, readers still see the old file or the new one
/// whole, but after a power loss the file may be old or empty. The temporary file is removed
/// again if anything before the rename fails.
pub fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = temp_beside(dir)?;
    tmp.write_all(bytes)
        .and_then(|()| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(Error::io("cannot write", path))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .map_err(Error::io("cannot replace", path))?;
    if durable {
        flush_dir(dir)?;
    }
    Ok(())
}

/// A new temporary file in `dir` (mode 0600), removed when dropped unless persisted.
pub(crate) fn temp_beside(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(Error::io("cannot create a temporary file in", dir))
}

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Flush `dir` to disk, so that renames into it survive a power loss.
pub(crate) fn flush_dir(dir: &Path) -> Result<()> {
    // std, not fs_err: our error names the path; fs_err's would name it a second time.
    #[expect(clippy::disallowed_methods, reason = "Error::io names the path")]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("cannot flush directory", dir))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::test_support::names;

    #[test]
    fn write_atomic_replaces_and_flushes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("munge.key");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs_err::read(&p).unwrap(), b"two");
        assert_eq!(names(d.path()), ["munge.key"]);
        // Secrets rely on it: the file is never readable by others, not even briefly.
        let mode = fs_err::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/journal.json");
        let err = write_atomic(&p, b"{}").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(err.path(), d.path().join("no/such/dir"));
        let text = err.to_string();
        assert_eq!(text.matches("no/such/dir").count(), 1, "{text}");
    }

    #[test]
    fn a_failed_rename_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails.
        fs_err::create_dir_all(d.path().join("journal.json")).unwrap();
        let err = replace(&d.path().join("journal.json"), b"{}", true).unwrap_err();
        assert_eq!(err.what(), "cannot replace");
        assert_eq!(names(d.path()), Vec::<String>::new());
    }
}
