//! `schema`, `validate` and `render`: composition of the planners, and writing their output.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hpc_config::{Cluster, LoadError};
use miette::{IntoDiagnostic, Result, WrapErr};
use serde_json::json;

use crate::output::Output;

/// One file a planner produced: a path relative to the output directory, and its bytes.
pub(crate) struct Artefact {
    pub(crate) path: PathBuf,
    pub(crate) contents: String,
}

/// Everything the planners produce for `cluster`, in a fixed order.
pub(crate) fn artefacts(cluster: &Cluster) -> Result<Vec<Artefact>> {
    let mut inventory = serde_json::to_string_pretty(cluster).into_diagnostic()?;
    inventory.push('\n');
    let mut out = vec![Artefact {
        path: "cluster.json".into(),
        contents: inventory,
    }];
    for o in hpc_libvirt::plan(cluster).objects {
        let dir = match o.kind {
            hpc_libvirt::ObjectKind::Network => "network",
            hpc_libvirt::ObjectKind::Pool => "pool",
            hpc_libvirt::ObjectKind::Volume => "volume",
            hpc_libvirt::ObjectKind::Domain => "domain",
        };
        // A node on another host gets its own objects: keep hosts apart in the tree.
        let host = o.uri.remote_host().unwrap_or("local");
        out.push(Artefact {
            path: PathBuf::from("libvirt")
                .join(host)
                .join(dir)
                .join(format!("{}.xml", o.name)),
            contents: o.xml,
        });
    }
    if cluster.slurm.is_some() {
        // Hardware estimated from the file until the nodes' `slurmd -C` is known;
        // slurmdbd.conf is not rendered here: it carries the database password.
        let opts = hpc_slurm::RenderOptions::for_cluster(cluster);
        let files = [
            (
                "slurm.conf",
                hpc_slurm::render_slurm_conf(cluster, &Default::default(), &opts),
            ),
            ("gres.conf", hpc_slurm::render_gres_conf(cluster)),
            ("cgroup.conf", hpc_slurm::render_cgroup_conf(cluster)),
        ];
        for (name, contents) in files {
            out.push(Artefact {
                path: PathBuf::from("slurm").join(name),
                contents,
            });
        }
    }
    out.extend(crate::beegfs::artefacts(cluster)?);
    Ok(out)
}

pub(crate) fn schema(out: &Output, file: Option<&Path>) -> Result<ExitCode> {
    let text = hpc_config::schema_text();
    match file {
        Some(path) => {
            write_atomic(path, text.as_bytes())?;
            out.note(&format!("wrote {}", path.display()));
        }
        None => out.data(&text),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn validate(out: &Output, file: &Path) -> Result<ExitCode> {
    match hpc_config::load_file(file) {
        Ok(cluster) => {
            if out.json() {
                out.json_value(&json!({
                    "file": file.display().to_string(),
                    "valid": true,
                    "problems": [],
                    "nodes": cluster.nodes.len(),
                }));
            } else {
                out.note(&format!(
                    "{}: valid ({} nodes)",
                    file.display(),
                    cluster.nodes.len()
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(errors)) => {
            if out.json() {
                let problems: Vec<_> = errors
                    .problems
                    .iter()
                    .map(|p| {
                        json!({
                            "line": p.line,
                            "column": p.column,
                            "pointer": p.pointer,
                            "message": p.message,
                            "help": p.help,
                        })
                    })
                    .collect();
                out.json_value(&json!({
                    "file": file.display().to_string(),
                    "valid": false,
                    "problems": problems,
                }));
            } else {
                out.diagnostic(errors.as_ref());
                for line in errors.lines() {
                    out.note(&line);
                }
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn render(out: &Output, file: &Path, dir: &Path) -> Result<ExitCode> {
    let cluster = match hpc_config::load_file(file) {
        Ok(c) => c,
        Err(LoadError::Invalid(errors)) => {
            out.diagnostic(errors.as_ref());
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let files = artefacts(&cluster)?;
    let written = write_tree(dir, &files)?;
    let (new, same): (Vec<_>, Vec<_>) = files.iter().zip(&written).partition(|(_, w)| **w);
    if out.json() {
        let names = |v: &[(&Artefact, &bool)]| -> Vec<String> {
            v.iter()
                .map(|(a, _)| a.path.display().to_string())
                .collect()
        };
        let all: Vec<String> = files.iter().map(|a| a.path.display().to_string()).collect();
        out.json_value(&json!({
            "ok": true,
            "dir": dir.display().to_string(),
            "files": all,
            "unchanged": names(&same),
        }));
    } else {
        // One note, not one per file: a 1,000-node cluster has over 2,000 files.
        let mut lines: Vec<String> = new
            .iter()
            .map(|(a, _)| format!("wrote {}", dir.join(&a.path).display()))
            .collect();
        if !same.is_empty() {
            lines.push(format!(
                "{} files in {} were already up to date",
                same.len(),
                dir.display()
            ));
        }
        if !lines.is_empty() {
            out.note(&lines.join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
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
pub(crate) fn write_tree(dir: &Path, files: &[Artefact]) -> Result<Vec<bool>> {
    // Each directory once, not once per file.
    let parents: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|a| dir.join(&a.path).parent().map(Path::to_path_buf))
        .chain([dir.to_path_buf()])
        .collect();
    for p in &parents {
        fs_err::create_dir_all(p).into_diagnostic()?;
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
                w.join()
                    .unwrap_or_else(|_| Err(miette::miette!("a render writer thread panicked")))
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
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// A temporary file beside `path` (mode 0600, named by [`TEMP_PREFIX`]/[`TEMP_SUFFIX`]) with
/// `bytes`, renamed over `path`; with `durable`, the file is flushed before the rename and
/// the directory after it.
fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot replace {}", path.display()))?;
    if durable {
        fs_err::File::open(dir)
            .and_then(|d| d.sync_all())
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot flush directory {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
