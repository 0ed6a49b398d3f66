//! A finished file moved into place: flushed, renamed, directory flushed.

use std::path::Path;

use crate::error::{Error, Result};
use crate::write::{flush_dir, parent_dir, temp_beside};

/// Move the finished file `from` to `to` durably, so that readers of `to` see the old file or
/// the new one, never a part, also after a crash or power loss: flush `from` to disk, rename
/// it over `to`, flush `to`'s directory. For files made elsewhere (a tool's output, a scratch
/// directory) that [`write_atomic`](crate::write_atomic) cannot take as bytes: an image,
/// a kernel, a manifest written last to vouch for them.
///
/// The file keeps its own mode (set it on `from` before); `to`'s directory must exist. When
/// `to` is on another filesystem (the rename fails with `EXDEV`), `from` is copied into a
/// temporary file beside `to` (named like [`write_atomic`](crate::write_atomic)'s, with
/// `from`'s mode), which is flushed and renamed over `to` in the same way, and `from` is then
/// removed; if that removal fails, the error says so and `to` is already in place. Only `to`'s
/// directory is flushed, not `from`'s: `from` is expected to be scratch space.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    // std, not fs_err, here and below: our error names the path; fs_err's would name it again.
    #[expect(clippy::disallowed_methods, reason = "Error::io names the path")]
    let file = std::fs::File::open(from).map_err(Error::io("cannot open", from))?;
    file.sync_all().map_err(Error::io("cannot flush", from))?;
    drop(file);
    #[expect(clippy::disallowed_methods, reason = "Error::io names the path")]
    let moved = std::fs::rename(from, to);
    match moved {
        Ok(()) => flush_dir(parent_dir(to)),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            copy_over(from, to)?;
            #[expect(clippy::disallowed_methods, reason = "Error::io names the path")]
            let removed = std::fs::remove_file(from);
            removed.map_err(Error::io("copied, but cannot remove", from))
        }
        Err(e) => Err(Error::io("cannot move a file to", to)(e)),
    }
}

/// Copy `from` into a temporary file beside `to` with `from`'s mode, flush it, rename it over
/// `to`, flush the directory. The temporary file is removed again if anything fails.
fn copy_over(from: &Path, to: &Path) -> Result<()> {
    let dir = parent_dir(to);
    #[expect(clippy::disallowed_methods, reason = "Error::io names the path")]
    let mut src = std::fs::File::open(from).map_err(Error::io("cannot open", from))?;
    let mode = src
        .metadata()
        .map_err(Error::io("cannot read the metadata of", from))?
        .permissions();
    let mut tmp = temp_beside(dir)?;
    std::io::copy(&mut src, tmp.as_file_mut())
        .and_then(|_| tmp.as_file().set_permissions(mode))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(Error::io("cannot copy a file to", to))?;
    tmp.persist(to)
        .map_err(|e| e.error)
        .map_err(Error::io("cannot replace", to))?;
    flush_dir(dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::test_support::names;

    fn file(path: &Path, text: &str, mode: u32) {
        fs_err::write(path, text).unwrap();
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        fs_err::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn moves_over_the_old_file_keeping_its_own_mode() {
        let d = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(d.path().join("work")).unwrap();
        fs_err::create_dir_all(d.path().join("images")).unwrap();
        let from = d.path().join("work/base.qcow2");
        let to = d.path().join("images/base.qcow2");
        file(&to, "old", 0o600);
        file(&from, "new", 0o644);
        rename_durable(&from, &to).unwrap();
        assert_eq!(fs_err::read_to_string(&to).unwrap(), "new");
        assert_eq!(mode(&to), 0o644);
        assert_eq!(names(d.path()), ["images/base.qcow2"]);
    }

    #[test]
    fn across_filesystems_it_copies_beside_the_target() {
        // The fallback, called directly: one test filesystem cannot give EXDEV.
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("vmlinuz.staged");
        let to = d.path().join("vmlinuz");
        file(&to, "old kernel", 0o600);
        file(&from, "new kernel", 0o644);
        copy_over(&from, &to).unwrap();
        assert_eq!(fs_err::read_to_string(&to).unwrap(), "new kernel");
        assert_eq!(mode(&to), 0o644);
        assert_eq!(names(d.path()), ["vmlinuz", "vmlinuz.staged"]);
    }

    #[test]
    fn a_failed_move_names_the_target_and_leaves_the_source() {
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("manifest.json");
        let to = d.path().join("base.qcow2.json");
        file(&from, "{}", 0o644);
        // A non-empty directory where the file should go: the rename fails.
        fs_err::create_dir_all(&to).unwrap();
        fs_err::write(to.join("x"), "").unwrap();
        let err = rename_durable(&from, &to).unwrap_err();
        assert_eq!(err.path(), to);
        assert_eq!(fs_err::read_to_string(&from).unwrap(), "{}");
        // And the copy's temporary file is removed when its rename fails.
        copy_over(&from, &to).unwrap_err();
        assert_eq!(names(d.path()), ["base.qcow2.json/x", "manifest.json"]);
    }

    #[test]
    fn a_missing_source_is_named() {
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("nothing");
        let err = rename_durable(&from, &d.path().join("x")).unwrap_err();
        assert_eq!((err.what(), err.path()), ("cannot open", from.as_path()));
    }
}
