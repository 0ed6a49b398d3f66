//! `hpc-fs`: how hpc-up writes files — atomically always, durably when the file is state.
//!
//! Every file hpc-up writes on this machine goes through this crate:
//!
//! - **Atomic, always.** A file is written to a temporary file beside it (same directory, so
//!   same filesystem; mode 0600; named [`TEMP_PREFIX`]`XXXXXX`[`TEMP_SUFFIX`]) and renamed
//!   over it. A reader — a person, `virsh define`, a diff in CI, hpc-up's next run — finds
//!   at the final path the old file or the new one, whole, never a part. If anything fails
//!   before the rename, the temporary file is removed and the old file is untouched.
//! - **Durable, when the file is state** ([`write_atomic`], [`rename_durable`]): the file is
//!   flushed to disk before the rename and its directory after it, so the new file survives
//!   a crash or power loss — the libvirt journal, the cluster's secrets, the nodes' seed
//!   disks, an image and its manifest, files the user asked for (`hpc-up schema --out`).
//! - **Cheap, when the files can be made again** ([`write_tree`]: render's output, many
//!   files under one directory). Atomic per file but not flushed (one `fsync` per file made
//!   a 1,000-node render wait seconds for the disk); files that already hold the right bytes
//!   are left alone, modification time included (rewriting them made every re-render on
//!   ext4 slower than the one before). After a power loss a file may be old or empty;
//!   rendering again repairs that. [`write_tree`] gives the measurements and why it works
//!   per file rather than swapping in a staged tree.
//!
//! [`replace`] is the primitive under [`write_atomic`] and [`write_tree`], with durability
//! as a flag.
//!
//! Errors: one [`Error`] — what was being done, the path (once), and the OS's reason as its
//! `source` — rather than a bare [`std::io::Error`], because `tempfile`'s errors do not name
//! the path and `fs_err`'s name it in a form a caller with its own `{ what, path, source }`
//! error would repeat. [`Error::into_parts`] feeds such a caller; `From<Error> for
//! std::io::Error` serves a caller whose error wraps `io::Error`.
//!
//! Not here: hpc-cluster's seed disks, when their size is unchanged, are rewritten *in
//! place* (a running QEMU holds the old file open; a new file renamed over it would never
//! reach that QEMU) — that is `hpc_cluster`'s own `overwrite`. Files on the nodes are written
//! by the shell program `hpc-remote` compiles (temporary file, fsync, rename), not by this
//! crate.
//!
//! ```no_run
//! use std::path::Path;
//!
//! // State: flushed, so it survives a power loss.
//! hpc_fs::write_atomic(Path::new("/var/lib/hpc-up/lab/journal.json"), b"{}\n")?;
//!
//! // Render's output: atomic per file, unchanged files left alone.
//! let files = [hpc_fs::Artefact {
//!     path: "slurm/slurm.conf".into(),
//!     contents: "ClusterName=lab\n".into(),
//! }];
//! let written = hpc_fs::write_tree(Path::new("out"), &files)?;
//! assert_eq!(written.len(), 1);
//! # Ok::<(), hpc_fs::Error>(())
//! ```
//!
//! Stability: the crate is internal to hpc-up (version 0.x); the promises above — atomic
//! always, durable for [`write_atomic`] and [`rename_durable`], unchanged files untouched by
//! [`write_tree`] — are what callers rely on and change only with a note in their docs.

mod error;
mod rename;
mod tree;
mod write;

pub use error::{Error, Result};
pub use rename::rename_durable;
pub use tree::{Artefact, write_tree};
pub use write::{TEMP_PREFIX, TEMP_SUFFIX, replace, write_atomic};

#[cfg(test)]
mod test_support {
    use std::path::Path;

    /// Every file name under `dir`, relative, sorted.
    pub(crate) fn names(dir: &Path) -> Vec<String> {
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
}
