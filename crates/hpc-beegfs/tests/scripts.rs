//! The fixed shell programs hpc-beegfs hands to nodes, run for real with `/bin/sh` here
//! (a temporary directory stands in for the BeeGFS mount).
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use std::process::Command;

use common::{full_stack, inputs};
use hpc_beegfs::{
    Comparison, NodeFacts, RoundTrip, cleanup_argv, compare_argv, peer_read_argv, probe_argv,
    roundtrip_argv, setup_plan,
};
use hpc_remote::{RunWhen, StepKind};

fn run(argv: &[String]) -> (i32, String, String) {
    let o = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn round_trip_peer_read_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mnt with space");
    fs_err::create_dir(&mount).unwrap();
    let m = mount.to_str().unwrap();
    for (node, token) in [("cn01", "t-1 'quoted'"), ("cn02", "t-2")] {
        let (code, out, err) = run(&roundtrip_argv(m, node, token, 2));
        assert_eq!(code, 0, "{err}");
        let r = RoundTrip::parse(&out);
        assert!(r.ok, "{out}");
        assert!(r.rates(2).is_some(), "{out}");
    }
    let (code, out, _) = run(&peer_read_argv(m, "cn01"));
    assert_eq!((code, out.trim()), (0, "t-1 'quoted'"));
    for node in ["cn01", "cn02"] {
        assert_eq!(run(&cleanup_argv(m, node)).0, 0);
    }
    let left: Vec<_> = fs_err::read_dir(mount.join(".hpc-up-check"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn local_disk_and_share_beside_beegfs() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share dir");
    fs_err::create_dir(&share).unwrap();
    let (code, out, err) = run(&compare_argv("cn01", 2, Some(share.to_str().unwrap())));
    assert_eq!(code, 0, "{err}");
    let c = Comparison::parse(&out);
    assert!(Comparison::rates(c.local_secs, 2).is_some(), "{out}");
    assert!(Comparison::rates(c.share_secs, 2).is_some(), "{out}");
    assert_eq!(fs_err::read_dir(&share).unwrap().count(), 0, "left a file");
    // without a share, or with one that cannot be written: the local figure only
    let (_, out, _) = run(&compare_argv("cn01", 2, None));
    assert!(Comparison::parse(&out).share_secs.is_none(), "{out}");
    let (code, out, _) = run(&compare_argv("cn01", 2, Some("/nonexistent/share")));
    assert_eq!(code, 0);
    let c = Comparison::parse(&out);
    assert!(c.local_secs.is_some() && c.share_secs.is_none(), "{out}");
}

#[test]
fn probe_runs_here() {
    let (code, out, err) = run(&probe_argv());
    assert_eq!(code, 0, "{err}");
    let f = NodeFacts::parse(&out);
    assert!(!f.uname.is_empty(), "{out}");
}

#[test]
fn initialisation_runs_once_and_the_package_check_changes_nothing() {
    let plan = setup_plan(&full_stack("8.1.0", ""), &inputs()).unwrap();
    let step = |id: &str| {
        plan.phases[0]
            .hosts
            .iter()
            .find(|h| h.host == "ctl")
            .unwrap()
            .steps
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .clone()
    };
    // `--init` runs only while the database does not exist (the runner reports it unchanged
    // afterwards: hpc-remote's `unless_exists`).
    let StepKind::Command(c) = step("mgmtd-init").kind else {
        unreachable!("a command")
    };
    assert_eq!(
        c.when,
        RunWhen::Missing("/data/beegfs/mgmtd/mgmtd.sqlite".into())
    );
    assert_eq!(
        c.argv,
        [
            "/opt/beegfs/sbin/beegfs-mgmtd",
            "--init",
            "--config-file",
            "/etc/beegfs/beegfs-mgmtd.toml"
        ]
    );

    // The package check is a check: never a change, a failure names the missing packages.
    let StepKind::Command(c) = step("packages").kind else {
        unreachable!("a command")
    };
    assert_eq!(c.when, RunWhen::Check);
    let mut argv = c.argv[..4].to_vec();
    argv.push("hpc-up-no-such-package".into());
    let (code, _, err) = run(&argv);
    assert_eq!(code, 1);
    assert!(
        err.contains("BeeGFS packages not installed: hpc-up-no-such-package"),
        "{err}"
    );
}
