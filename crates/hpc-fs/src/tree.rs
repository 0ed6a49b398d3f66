//! Many files under one directory (render's output): atomic per file, not flushed, files
//! that already hold the right bytes left alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::write::replace;

/// One file a planner produced: a path relative to the output directory, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    /// Relative path (`libvirt/local/domain/minimal-ctl.xml`).
    pub path: PathBuf,
    /// The file's text.
    pub contents: String,
}

/// Write render's output under `dir`: each artefact at `dir/<path>`, directories made as
/// needed, files of earlier renders replaced, other files left alone. Returns, per artefact,
/// whether it was written (`false`: the file already held exactly these bytes and was left
/// as it was, modification time included).
///
/// Each file is written to a temporary file beside its final path and renamed over it, so a
/// reader (a person, `virsh define`, a diff in CI) finds at every final path the old file or
/// the new one, whole, never a part. Nothing is flushed to disk: render's output is
/// regenerable from the cluster file, and one `fsync` per file made a 1,000-node render take
/// seconds of waiting for the disk (the issue measured 5.5 s wall for 0.5 s of CPU). After a
/// power loss a file may be old or empty; rendering again repairs that. `up`'s own state
/// (secrets, the libvirt journal) does not come through here: it is written by
/// [`write_atomic`](crate::write_atomic), which flushes.
///
/// Files that already hold the right bytes are not rewritten: reading a file costs far less
/// than making a new inode and freeing the old one, and on ext4 the inode allocator steps,
/// one by one, over every inode freed in the last minute or so (`recently_deleted` under
/// `__ext4_new_inode` in `perf`), so replacing all 2,000 files of a 1,000-node cluster made
/// each re-render slower than the one before (0.5–0.8 s of system time per render here).
///
/// Per file rather than a whole staged tree swapped in: `--out` may be a directory that holds
/// other files too (a repository, the user's working directory), which a swap would take
/// away with the old tree; swapping a non-empty directory needs Linux's
/// `renameat2(RENAME_EXCHANGE)`; and a staged tree rewrites every file, changed or not. The
/// price: while a render runs, a reader can see some files already new and some still old.
pub fn write_tree(dir: &Path, files: &[Artefact]) -> Result<Vec<bool>> {
    // Each directory once, not once per file.
    let parents: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|a| dir.join(&a.path).parent().map(Path::to_path_buf))
        .chain([dir.to_path_buf()])
        .collect();
    for p in &parents {
        // std, not fs_err: our error names the path; fs_err's would name it a second time.
        #[expect(clippy::disallowed_methods, reason = "Error::io names the path")]
        std::fs::create_dir_all(p).map_err(Error::io("cannot create directory", p))?;
    }
    // The time goes to the kernel (a new inode per file), so the files are shared out
    // between the cores; the result keeps the artefacts' order.
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_WRITERS);
    let chunk = files.len().div_ceil(threads).max(MIN_FILES_PER_WRITER);
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.as_path();
    let results: Vec<Result<Vec<bool>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || write_files(dir, part)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(Error::io("a writer thread panicked writing under", dir)(
                        std::io::Error::other("panic"),
                    ))
                })
            })
            .collect()
    });
    let mut written = Vec::with_capacity(files.len());
    for r in results {
        written.extend(r?);
    }
    Ok(written)
}

/// At most this many threads write render's files.
const MAX_WRITERS: usize = 4;
/// Fewer files than this per thread are not worth a thread.
const MIN_FILES_PER_WRITER: usize = 64;

/// Write `files` under `dir` (which exists, as do their directories), one after another.
fn write_files(dir: &Path, files: &[Artefact]) -> Result<Vec<bool>> {
    let mut written = Vec::with_capacity(files.len());
    for a in files {
        let path = dir.join(&a.path);
        let bytes = a.contents.as_bytes();
        let same = holds(&path, bytes);
        if !same {
            replace(&path, bytes, false)?;
        }
        written.push(!same);
    }
    Ok(written)
}

/// Whether `path` is a regular file that holds exactly `bytes` (any error: no).
fn holds(path: &Path, bytes: &[u8]) -> bool {
    use std::io::Read;
    let Ok(mut f) = fs_err::File::open(path) else {
        return false;
    };
    match f.metadata() {
        Ok(m) if m.is_file() && m.len() == bytes.len() as u64 => {}
        _ => return false,
    }
    // One byte more than expected, to notice a file that grew since the metadata was read.
    let mut buf = Vec::with_capacity(bytes.len() + 1);
    Read::by_ref(&mut f)
        .take(bytes.len() as u64 + 1)
        .read_to_end(&mut buf)
        .is_ok_and(|_| buf == bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::test_support::names;

    fn artefact(path: &str, contents: &str) -> Artefact {
        Artefact {
            path: path.into(),
            contents: contents.to_owned(),
        }
    }

    #[test]
    fn writes_replaces_and_leaves_up_to_date_files_alone() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        // More files than one writer takes, so that several threads write.
        let mut files: Vec<Artefact> = (0..300)
            .map(|i| artefact(&format!("domain/n{i:03}.xml"), &format!("<n{i}/>\n")))
            .collect();
        files.push(artefact("cluster.json", "{}\n"));
        assert_eq!(write_tree(&out, &files).unwrap(), vec![true; 301]);
        fs_err::write(out.join("mine.txt"), "not render's\n").unwrap();

        // One file changed since, one damaged by hand: both are replaced, the rest left.
        files[7] = artefact("domain/n007.xml", "<n7 changed=\"yes\"/>\n");
        fs_err::write(out.join("domain/n008.xml"), "<n8").unwrap();
        let untouched = fs_err::metadata(out.join("cluster.json"))
            .unwrap()
            .modified()
            .unwrap();
        let written = write_tree(&out, &files).unwrap();
        let rewritten: Vec<&Path> = files
            .iter()
            .zip(&written)
            .filter(|(_, w)| **w)
            .map(|(a, _)| a.path.as_path())
            .collect();
        assert_eq!(
            rewritten,
            [Path::new("domain/n007.xml"), Path::new("domain/n008.xml")]
        );
        for a in &files {
            assert_eq!(
                fs_err::read_to_string(out.join(&a.path)).unwrap(),
                a.contents
            );
        }
        assert_eq!(
            fs_err::metadata(out.join("cluster.json"))
                .unwrap()
                .modified()
                .unwrap(),
            untouched
        );
        // Other files stay; no temporary file is left.
        let mut expected: Vec<String> =
            files.iter().map(|a| a.path.display().to_string()).collect();
        expected.push("mine.txt".into());
        expected.sort();
        assert_eq!(names(&out), expected);
    }

    #[test]
    fn readers_see_the_old_file_or_the_new_one_never_a_part() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().to_path_buf();
        let size = 4 << 20;
        let versions = ["a".repeat(size), "b".repeat(size)];
        write_tree(&out, &[artefact("big.xml", &versions[0])]).unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) {
                    let got = fs_err::read(out.join("big.xml")).unwrap();
                    assert_eq!(got.len(), size, "a reader saw a part of the file");
                    assert!(
                        got.iter().all(|b| *b == got[0]),
                        "a reader saw two versions mixed"
                    );
                    reads += 1;
                }
                reads
            });
            for i in 0..40 {
                let a = artefact("big.xml", &versions[(i + 1) % 2]);
                assert_eq!(write_tree(&out, &[a]).unwrap(), [true]);
            }
            done.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        assert_eq!(names(&out), ["big.xml"]);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails.
        fs_err::create_dir_all(d.path().join("slurm/slurm.conf")).unwrap();
        let err = write_tree(d.path(), &[artefact("slurm/slurm.conf", "x\n")]).unwrap_err();
        assert!(format!("{err:?}").contains("slurm.conf"), "{err:?}");
        assert_eq!(names(d.path()), Vec::<String>::new());
    }
}
