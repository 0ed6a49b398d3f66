//! SLURM's own parser on the rendered slurm.conf: `SLURM_CONF=<file> scontrol show hostnames`
//! reads the whole file offline (no daemon, no munge) and fails on syntax or type errors.
//! Needs `scontrol` (Debian's `slurm-client`): skips outside CI without it, fails in CI (`CI`
//! set).
#![allow(missing_docs)]
#![allow(clippy::print_stderr, reason = "a skipped test says why")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{EXAMPLES, load};
use hpc_slurm::{RenderOptions, hostlist, render_cgroup_conf, render_gres_conf, render_slurm_conf};

const SCONTROL: &str = "scontrol";

fn scontrol_available() -> bool {
    // Only look for the binary: run without SLURM_CONF, scontrol looks for its
    // configuration in DNS (network traffic) and fails anyway.
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(SCONTROL).is_file()));
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI is set but `scontrol` is missing: install slurm-client (scripts/install-deps)"
            );
        }
        eprintln!(
            "skipping: `scontrol` not found (apt-get install slurm-client); CI runs this test"
        );
    }
    found
}

/// `SLURM_CONF=conf scontrol show hostnames expr` → (success, stdout lines, stderr).
fn show_hostnames(conf: &Path, expr: &str) -> (bool, Vec<String>, String) {
    let out = Command::new(SCONTROL)
        .args(["show", "hostnames", expr])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap_or_else(|e| panic!("running scontrol: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn scontrol_parses_every_rendered_slurm_conf() {
    if !scontrol_available() {
        return;
    }
    for name in EXAMPLES {
        let cluster = load(name);
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("slurm.conf");
        fs_err::write(
            &conf,
            render_slurm_conf(&cluster, &BTreeMap::new(), &RenderOptions::default()),
        )
        .unwrap();
        fs_err::write(dir.path().join("gres.conf"), render_gres_conf(&cluster)).unwrap();
        fs_err::write(dir.path().join("cgroup.conf"), render_cgroup_conf(&cluster)).unwrap();

        // Every node of the cluster, compressed by us, expanded by SLURM.
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        let expr = hostlist::compress(&names);
        let (ok, lines, stderr) = show_hostnames(&conf, &expr);
        assert!(
            ok,
            "{name}: scontrol rejected the rendered slurm.conf:\n{stderr}"
        );
        assert!(
            !stderr.contains("error"),
            "{name}: scontrol complained:\n{stderr}"
        );
        let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        let mut got = lines.clone();
        got.sort();
        assert_eq!(got, expected, "{name}: `{expr}`");
    }
}

#[test]
fn scontrol_agrees_with_our_hostlists() {
    if !scontrol_available() {
        return;
    }
    let cluster = load("minimal.yaml");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("slurm.conf");
    fs_err::write(
        &conf,
        render_slurm_conf(&cluster, &BTreeMap::new(), &RenderOptions::default()),
    )
    .unwrap();
    for names in [
        vec!["cn01", "cn02", "cn03", "gpu1"],
        vec!["cn09", "cn10", "cn11", "cn13"],
        vec!["cn1", "cn2", "cn10", "ctl"],
        vec!["n1-ib", "n2-ib", "n3"],
    ] {
        let expr = hostlist::compress(&names);
        let (ok, lines, stderr) = show_hostnames(&conf, &expr);
        // scontrol exits 0 even when it cannot read the list; it says so on stderr
        assert!(ok && !stderr.contains("Invalid"), "`{expr}`: {stderr}");
        let mut got = lines;
        got.sort();
        let mut ours = hostlist::expand(&expr).unwrap();
        ours.sort();
        let mut want: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "scontrol on `{expr}`");
        assert_eq!(ours, want, "hostlist::expand on `{expr}`");
    }
    assert_eq!(
        show_hostnames(&conf, "cn[01-03],gpu1").1,
        ["cn01", "cn02", "cn03", "gpu1"]
    );
}

#[test]
fn scontrol_rejects_a_broken_file() {
    // The oracle is real: a bad key makes scontrol fail.
    if !scontrol_available() {
        return;
    }
    let cluster = load("minimal.yaml");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("slurm.conf");
    let text = render_slurm_conf(&cluster, &BTreeMap::new(), &RenderOptions::default());
    fs_err::write(&conf, format!("{text}FooBarBaz=1\n")).unwrap();
    let (ok, _, stderr) = show_hostnames(&conf, "x");
    assert!(!ok, "scontrol accepted an unknown key");
    assert!(stderr.contains("FooBarBaz"), "{stderr}");
}
