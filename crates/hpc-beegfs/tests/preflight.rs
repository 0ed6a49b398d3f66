//! The node probe's parser and the preflight rules.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use std::collections::BTreeMap;

use common::full_stack;
use hpc_beegfs::{NodeFacts, PreflightProblem, preflight};

const DEBIAN12_VM: &str = "kernel=6.1.0-28-cloud-amd64
inet=lo 127.0.0.1/8
inet=enp1s0 10.79.0.21/24
dmi-uuid=4c4c4544-0038-3510-8052-b4c04f4e3732
blkid-uuid=2f0e1a7c-4f3b-4a55-9f6e-0c2b7d0a1e11
headers=yes
";

const CONTAINER: &str = "kernel=6.12.117+deb13-amd64
inet=lo 127.0.0.1/8
headers=no
";

#[test]
fn probe_output_parses() {
    let f = NodeFacts::parse(DEBIAN12_VM);
    assert_eq!(f.uname, "6.1.0-28-cloud-amd64");
    assert!(f.has_usable_nic());
    assert_eq!(
        f.machine_uuid(),
        Some("4c4c4544-0038-3510-8052-b4c04f4e3732")
    );
    assert!(f.headers);
    let c = NodeFacts::parse(CONTAINER);
    assert!(!c.has_usable_nic() && c.machine_uuid().is_none() && !c.headers);
    // A blkid UUID stands in for missing DMI.
    let b = NodeFacts::parse("inet=eth0 10.0.0.2/24\nblkid-uuid=abc\n");
    assert_eq!(b.machine_uuid(), Some("abc"));
}

fn facts(text: &str) -> BTreeMap<String, NodeFacts> {
    ["ctl", "cn01", "cn02", "cn03"]
        .into_iter()
        .map(|n| (n.to_owned(), NodeFacts::parse(text)))
        .collect()
}

#[test]
fn debian12_vms_pass_for_both_lines() {
    for v in ["7.4.6", "8.1.0"] {
        let (problems, warnings) =
            preflight(&full_stack(v, ""), &facts(DEBIAN12_VM), &BTreeMap::new());
        assert!(
            problems.is_empty() && warnings.is_empty(),
            "{v}: {problems:?} {warnings:?}"
        );
    }
}

#[test]
fn the_seed_failure_is_refused_before_deploying() {
    // 7.4.4 on Debian 13's 6.12: the seed stack only found out at mount time.
    let mut f = facts(DEBIAN12_VM);
    for n in f.values_mut() {
        n.uname = "6.12.117+deb13-amd64".into();
    }
    let (problems, _) = preflight(&full_stack("7.4.4", ""), &f, &BTreeMap::new());
    assert_eq!(problems.len(), 4, "every client: {problems:#?}");
    assert!(matches!(&problems[0], PreflightProblem::Kernel(k) if k.node == "ctl"));
    assert!(
        problems[0]
            .to_string()
            .contains("releases that build: 7.4.7 or later, 8.1.0 or later")
    );
    let (problems, _) = preflight(&full_stack("7.4.7", ""), &f, &BTreeMap::new());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_module_in_the_image_needs_no_headers() {
    // The image's module for the running kernel: no headers needed.
    let with_module = format!(
        "{CONTAINER}client-module=/lib/modules/6.12.117+deb13-amd64/updates/fs/beegfs_autobuild/beegfs.ko\ninet=eth0 10.0.0.2/24\nblkid-uuid=2f0e1a7c-4f3b-4a55-9f6e-0c2b7d0a1e11\n"
    );
    let f = NodeFacts::parse(&with_module);
    assert_eq!(
        f.client_module.as_deref(),
        Some("/lib/modules/6.12.117+deb13-amd64/updates/fs/beegfs_autobuild/beegfs.ko")
    );
    assert!(!f.headers);
    let (problems, warnings) = preflight(
        &full_stack("8.1.0", ""),
        &facts(&with_module),
        &BTreeMap::new(),
    );
    assert!(problems.is_empty() && warnings.is_empty(), "{problems:#?}");
    // A module does not lift the kernel gate: 7.4.4 is still refused on 6.12.
    let (problems, _) = preflight(
        &full_stack("7.4.4", ""),
        &facts(&with_module),
        &BTreeMap::new(),
    );
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        problems
            .iter()
            .all(|p| matches!(p, PreflightProblem::Kernel(_)))
    );
}

#[test]
fn loopback_only_and_no_uuid() {
    let (problems, _) = preflight(
        &full_stack("8.1.0", ""),
        &facts(CONTAINER),
        &BTreeMap::new(),
    );
    let msgs: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(msgs.contains(&"cn01: no network interface with an IPv4 address besides loopback; beegfs-storage refuses to start (\"Couldn't find any usable NIC\")".to_owned()), "{msgs:#?}");
    assert!(msgs.contains(&"ctl: no machine UUID (no /sys/class/dmi/id/product_uuid, no blkid UUID); BeeGFS 8.1.0 beegfs-meta cannot register (\"Couldn't determine UUID for machine\")".to_owned()), "{msgs:#?}");
    assert!(msgs.iter().any(|m| m.starts_with(
        "cn02: no BeeGFS client module for `6.12.117+deb13-amd64` and no kernel headers"
    )));
    // 7.x does not need a machine UUID.
    let (problems, _) = preflight(
        &full_stack("7.4.7", ""),
        &facts(CONTAINER),
        &BTreeMap::new(),
    );
    assert!(
        !problems
            .iter()
            .any(|p| matches!(p, PreflightProblem::NoMachineUuid { .. }))
    );
}

#[test]
fn unreachable_nodes_are_named() {
    let mut f = facts(DEBIAN12_VM);
    f.remove("cn03");
    let errors = BTreeMap::from([("cn03".to_owned(), "connection refused".to_owned())]);
    let (problems, _) = preflight(&full_stack("8.1.0", ""), &f, &errors);
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["cn03: not probed: connection refused"]
    );
}

#[test]
fn unverified_kernels_warn() {
    let mut f = facts(DEBIAN12_VM);
    f.get_mut("cn01").unwrap().uname = "6.13.2-amd64".into();
    let (problems, warnings) = preflight(&full_stack("8.1.0", ""), &f, &BTreeMap::new());
    assert!(problems.is_empty());
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].node, "cn01");
    assert!(
        warnings[0]
            .message
            .contains("unverified: 6.13 was not test-built"),
        "{}",
        warnings[0].message
    );
}
