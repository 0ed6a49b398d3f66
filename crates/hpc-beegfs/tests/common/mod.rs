//! Shared by the integration tests: the example cluster in a chosen release.
#![allow(dead_code, clippy::unwrap_used)] // not every test uses every helper; tests panic

use std::collections::BTreeSet;
use std::path::PathBuf;

use hpc_beegfs::{AuthSecret, Daemon, Inputs, Release};
use hpc_config::Cluster;

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/full-stack.yaml` with `version` (and optional extra lines in `beegfs:`).
pub(crate) fn full_stack(version: &str, beegfs_extra: &str) -> Cluster {
    let text = fs_err::read_to_string(repo_root().join("examples/full-stack.yaml")).unwrap();
    let mut text = text.replace("version: \"7.4.6\"", &format!("version: \"{version}\""));
    if !beegfs_extra.is_empty() {
        text = text.replace("  auth: true\n", &format!("  auth: true\n{beegfs_extra}"));
    }
    match hpc_config::load_str("full-stack.yaml", &text, &|_| None) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    }
}

/// Same, with the `extra-config` section replaced.
pub(crate) fn with_extra(version: &str, daemon: &str, key: &str, value: &str) -> Cluster {
    let text = fs_err::read_to_string(repo_root().join("examples/full-stack.yaml")).unwrap();
    let start = text.find("  extra-config:\n").unwrap();
    let text = format!(
        "{}  extra-config:\n    {daemon}:\n      {key}: {value}\n",
        &text[..start]
    )
    .replace("version: \"7.4.6\"", &format!("version: \"{version}\""));
    match hpc_config::load_str("full-stack.yaml", &text, &|_| None) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    }
}

/// A fixed secret for tests (never this in real use).
pub(crate) fn inputs() -> Inputs {
    Inputs {
        auth: Some(AuthSecret::new((0u8..64).collect()).unwrap()),
        ..Inputs::default()
    }
}

/// The reference's key list (tests/fixtures/keys, made by extract.py from the reference).
pub(crate) fn fixture_keys(release: Release, daemon: Daemon) -> BTreeSet<String> {
    let line = match (release.major, release.minor) {
        (7, _) => "7.4",
        (8, 0..=2) => "8.1",
        _ => "8.3",
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(line)
        .join(format!("{}.txt", daemon.short()));
    fs_err::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Keys of a rendered file (key=value or TOML), in order.
pub(crate) fn keys_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').unwrap().0.trim().to_owned())
        .collect()
}
