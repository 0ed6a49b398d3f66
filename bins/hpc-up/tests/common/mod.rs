//! Helpers shared by the CLI tests and the tests that run clusters on the real QEMU driver.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hpc_tests::libvirt_bed::LibvirtBed;

/// The repository's root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The key pair an image cache's image trusts, `<cache>/id_ed25519`: made with the cache and
/// kept as long as it (the end-to-end tests share the bookworm cache).
pub(crate) fn cache_key(cache: &Path) -> PathBuf {
    fs_err::create_dir_all(cache).unwrap();
    let key = cache.join("id_ed25519");
    if !key.exists() {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "hpc-up-e2e", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
    }
    key
}

/// Runs the built `hpc-up` as a user would, from the repository's root.
pub(crate) fn hpc_up_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpc-up"))
        .args(args)
        .current_dir(repo())
        .env("HOME", "/home/user")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Every file under `dir`: its path relative to `dir` and its bytes, sorted by path.
pub(crate) fn read_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs_err::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn names(bed: &LibvirtBed, args: &[&str]) -> Vec<String> {
    bed.virsh(args)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Nothing of the cluster is left: no domain, network, pool, volume or overlay file.
pub(crate) fn assert_gone(bed: &LibvirtBed, dir: &Path, when: &str) {
    assert_eq!(
        names(bed, &["list", "--all", "--name"]),
        Vec::<String>::new(),
        "{when}: domains"
    );
    assert_eq!(
        names(bed, &["net-list", "--all", "--name"]),
        Vec::<String>::new(),
        "{when}: networks"
    );
    assert_eq!(
        names(bed, &["pool-list", "--all", "--name"]),
        Vec::<String>::new(),
        "{when}: pools"
    );
    let mut overlays = Vec::new();
    let mut stack = vec![dir.join("state")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs_err::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "qcow2") {
                overlays.push(p);
            }
        }
    }
    assert!(
        overlays.is_empty(),
        "{when}: overlay files left: {overlays:?}"
    );
}
