//! `hpc-tests`: end-to-end tests of hpc-up across crates, and the helpers that find the
//! repository's files and start the test beds (libvirtd, sshd, SLURM) those tests need.
//!
//! Tests that need a component which CI installs fail, rather than skip, when `CI` is set and
//! the component is missing: see [`require`].

pub mod debian_chroot;
pub mod libvirt_bed;
pub mod multi_host_bed;
pub mod ssh_bed;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The example cluster files, sorted by name.
pub fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs_err::read_dir(repo_root().join("examples"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether this run is CI's, where every component the tests need must be present.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Decide what to do when `component` is missing: in CI that is a failure (panic with
/// `why`); elsewhere the caller skips, and this says so on stderr. Returns `true` when the
/// caller should skip.
pub fn require(present: bool, component: &str, why: &str) -> bool {
    if present {
        return false;
    }
    assert!(!in_ci(), "{component} is required in CI but missing: {why}");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIP (not CI): {component} missing: {why}");
    }
    true
}
