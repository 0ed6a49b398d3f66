//! Snapshots of every rendered file and of the setup steps for `examples/full-stack.yaml`,
//! in 7.4 and 8.x.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use common::{full_stack, inputs};
use hpc_beegfs::{config_files, describe, setup_plan};

fn all_files(version: &str) -> String {
    let cluster = full_stack(version, "");
    let mut out = String::new();
    for (node, files) in config_files(&cluster).unwrap() {
        for f in files {
            out.push_str(&format!("=== {node}:{} ({:04o})\n", f.path, f.mode));
            out.push_str(&String::from_utf8(f.content).unwrap());
        }
    }
    out
}

fn all_steps(version: &str) -> String {
    let cluster = full_stack(version, "");
    let plan = setup_plan(&cluster, &inputs()).unwrap();
    let mut out = String::new();
    for phase in &plan.phases {
        for host in &phase.hosts {
            out.push_str(&format!("=== phase {} on {}\n", phase.name, host.host));
            out.push_str(&describe(host));
        }
    }
    out
}

#[test]
fn files_7_4() {
    insta::assert_snapshot!(all_files("7.4.6"));
}

#[test]
fn files_8_1() {
    insta::assert_snapshot!(all_files("8.1.0"));
}

#[test]
fn steps_7_4() {
    insta::assert_snapshot!(all_steps("7.4.6"));
}

#[test]
fn steps_8_1() {
    insta::assert_snapshot!(all_steps("8.1.0"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(all_files("8.1.0"), all_files("8.1.0"));
    assert_eq!(all_steps("7.4.6"), all_steps("7.4.6"));
}

#[test]
fn the_secret_never_shows() {
    let cluster = full_stack("8.1.0", "");
    let plan = setup_plan(&cluster, &inputs()).unwrap();
    let debug = format!("{plan:?}");
    let text = all_steps("8.1.0");
    assert!(text.contains("/etc/beegfs/conn.auth 0400 <secret>"));
    // The secret bytes 0..64 as the Debug of a byte string would show them.
    assert!(
        !debug.contains("\\u{1}\\u{2}\\u{3}"),
        "secret leaked in Debug"
    );
    assert!(debug.contains("<secret>"));
}
