//! Writing files: atomically always (a temporary file beside the target, renamed over it),
//! durably when the file is state ([`write_atomic`]: flushed, directory flushed), cheaply
//! when it can be made again ([`write_tree`]: render's output). Every file hpc-up writes goes
//! through [`replace`].

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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
/// [`write_atomic`], which flushes.
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
        fs_err::create_dir_all(p).map_err(Error::io("cannot create directory", p))?;
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
                    Err(Error::Io {
                        what: "a writer thread panicked writing under",
                        path: dir.to_path_buf(),
                        source: std::io::Error::other("panic"),
                    })
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
            write_replacing(&path, bytes)?;
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

/// Replace `path` with `bytes` through a temporary file beside it and a rename, without
/// flushing (see [`write_tree`]). The temporary file (`.hpc-up-*.tmp`, mode 0600 like
/// every file render writes) is removed again if anything fails.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

/// How the temporary files of [`write_replacing`] are named: hidden, and not `*.xml`/`*.conf`.
const TEMP_PREFIX: &str = ".hpc-up-";
const TEMP_SUFFIX: &str = ".tmp";

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Write `path` durably, so that readers see the old file or the new one, never a part, also
/// after a crash or power loss: write a temporary file beside it (mode 0600), flush it to
/// disk, rename it over, flush the directory (so that the rename itself survives). For
/// `up`'s own state (secrets) and files the user asked for; render's regenerable output uses
/// the cheaper [`write_tree`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// A temporary file beside `path` (mode 0600, named by [`TEMP_PREFIX`]/[`TEMP_SUFFIX`]) with
/// `bytes`, renamed over `path`; with `durable`, the file is flushed before the rename and
/// the directory after it.
pub fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(Error::io("cannot create a temporary file in", dir))?;
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
        fs_err::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("cannot flush directory", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn artefact(path: &str, contents: &str) -> Artefact {
        Artefact {
            path: path.into(),
            contents: contents.to_owned(),
        }
    }

    /// Every file name under `dir`, relative, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs_err::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
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

    #[test]
    fn write_atomic_replaces_and_flushes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("munge.key");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs_err::read(&p).unwrap(), b"two");
        assert_eq!(names(d.path()), ["munge.key"]);
    }
}
