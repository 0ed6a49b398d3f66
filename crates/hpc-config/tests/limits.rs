//! One test per limit of `hpc_config::limits`: a file just inside loads, a file just outside
//! is refused with one problem at the value that breaks the limit — never a panic, never a
//! wrapped number, and never work that grows with what the file asks for.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::fmt::Write as _;

use hpc_config::limits::{
    MAX_DEPTH, MAX_FILE_BYTES, MAX_GROUP_NODES, MAX_HOSTS, MAX_NODES, MAX_PAD_WIDTH,
    MAX_PARTITIONS, MAX_PCI_PER_NODE, MAX_PROBLEMS, MAX_REFERENCED_NAMES, MAX_SHARES_PER_NODE,
    MAX_VALUES,
};
use hpc_config::{LoadError, load_str};

mod common;

use common::{env, problems};

const BASE: &str = "\
name: lab
network:
  cidr: 10.0.0.0/8
  bridge: hpcbr0
image:
  base: /var/lib/hpc-up/base.qcow2
controller:
  nodes:
    - name: ctl
";

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// The first problem of `text` as (line, column, message), and how many there are in all.
fn first(text: &str) -> ((usize, usize, String), usize) {
    match load_str("t.yaml", text, &env) {
        Ok(_) => panic!("expected a problem"),
        Err(LoadError::Invalid(e)) => {
            let p = &e.problems[0];
            ((p.line, p.column, p.message.clone()), e.total())
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn file_size() {
    let mut text = with("# ");
    text.push_str(&"x".repeat(MAX_FILE_BYTES - text.len()));
    assert!(problems(&text).is_empty());
    text.push('x');
    let ((line, col, msg), n) = first(&text);
    assert_eq!((line, col, n), (1, 1, 1));
    assert!(
        msg.contains(&format!("at most {MAX_FILE_BYTES} bytes")),
        "{msg}"
    );
}

#[test]
fn nesting_depth() {
    // `x:` at depth 1, so MAX_DEPTH - 1 lists inside it reach the limit exactly.
    let ok = format!(
        "x: {}{}\n",
        "[".repeat(MAX_DEPTH - 1),
        "]".repeat(MAX_DEPTH - 1)
    );
    let found = problems(&ok);
    assert!(
        found.iter().any(|p| p.message == "unknown key `x`"),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|p| p.message.contains("deep")),
        "{found:?}"
    );
    // Block sequences nest on one line and are not bounded by the YAML parser itself.
    let deep = format!("{}x\n", "- ".repeat(100_000));
    let ((line, col, msg), n) = first(&deep);
    assert_eq!(
        (line, col, n),
        (1, 2 * MAX_DEPTH + 1, 1),
        "the list that is one too deep"
    );
    assert!(
        msg.contains(&format!("more than {MAX_DEPTH} deep")),
        "{msg}"
    );
}

#[test]
fn alias_expansion() {
    // Nine lists of nine copies of the one before: 9⁹ values from 300 bytes.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let (prev, this) = (w[0], w[1]);
        writeln!(
            bomb,
            "{this}: &{this} [{}]",
            vec![format!("*{prev}"); 9].join(", ")
        )
        .unwrap();
    }
    let ((line, _, msg), n) = first(&bomb);
    assert_eq!(n, 1);
    assert_eq!(
        line, 6,
        "the alias that crosses {MAX_VALUES} values: 9^6 > 250,000"
    );
    assert!(msg.contains("250000 values"), "{msg}");
    // A few aliases are fine: they are what anchors are for.
    let ok = with(
        "compute:\n  - &g\n    name: \"a{index}\"\n    count: 2\n  - <<: *g\n    name: \"b{index}\"\n",
    );
    assert!(problems(&ok).is_empty(), "{:?}", problems(&ok));
}

#[test]
fn plain_size_counts_too() {
    // No alias: a flow list of more values than the limit (2 bytes each fit in 2 MiB).
    let text = format!("x: [{}]\n", "1,".repeat(MAX_VALUES));
    let ((line, _, msg), _) = first(&text);
    assert_eq!(line, 1);
    assert!(msg.contains("values"), "{msg}");
}

#[test]
fn duplicate_keys_are_found_in_linear_time() {
    // 50,000 keys, then each again: every repeat is one problem, cut to the report limit.
    let mut text = String::new();
    for round in 0..2 {
        for i in 0..50_000 {
            writeln!(text, "k{i}: {round}").unwrap();
        }
    }
    // Every key is unknown once and a duplicate once: all counted, the first ones listed.
    let ((line, col, msg), n) = first(&text);
    assert_eq!((line, col, msg.as_str()), (1, 1, "missing `controller`"));
    assert_eq!(
        n,
        1 + 50_000 + 50_000 + 3,
        "missing name, network, image too"
    );
}

#[test]
fn nodes_per_group_and_cluster() {
    let group = |count: u32| {
        with(&format!(
            "compute:\n  - name: \"cn{{index}}\"\n    count: {count}\n"
        ))
    };
    assert!(problems(&group(MAX_GROUP_NODES)).is_empty());
    // The schema says so (editors show it), and the rules that need `count` stay quiet.
    let ((line, _, msg), n) = first(&group(MAX_GROUP_NODES + 1));
    assert_eq!((line, n), (12, 1), "{msg}");
    assert_eq!(
        msg,
        format!(
            "`{}` is above the maximum {MAX_GROUP_NODES}",
            MAX_GROUP_NODES + 1
        )
    );

    // Groups that fit one by one and not together: one problem, at the first that does not.
    let mut text = with("compute:\n");
    let groups = MAX_NODES / MAX_GROUP_NODES as usize + 3;
    for g in 0..groups {
        writeln!(
            text,
            "  - name: \"g{g}n{{index}}\"\n    count: {MAX_GROUP_NODES}"
        )
        .unwrap();
    }
    let ((line, _, msg), n) = first(&text);
    // The controller takes one place, so the group that fills the cluster does not fit.
    let first_too_many = MAX_NODES / MAX_GROUP_NODES as usize - 1;
    assert_eq!(line, 12 + 2 * first_too_many, "its `count`: {msg}");
    assert!(msg.contains(&format!("at most {MAX_NODES}")), "{msg}");
    assert_eq!(n, 1);
}

#[test]
fn pad_width() {
    let group = |w: &str| {
        with(&format!(
            "compute:\n  - name: \"c{{index:0{w}}}\"\n    count: 2\n"
        ))
    };
    // 63 digits make a 64-byte name, which is not a host name; the pattern itself is fine.
    let ((_, _, msg), _) = first(&group(&MAX_PAD_WIDTH.to_string()));
    assert!(msg.contains("makes an invalid name"), "{msg}");
    assert!(problems(&group("8")).is_empty());
    for wide in ["64", "65536", "99999999999999999999999"] {
        let ((line, col, msg), n) = first(&group(wide));
        assert_eq!((line, col, n), (11, 11, 1), "{wide}");
        assert!(
            msg.contains(&format!("pads the index to {wide} digits")),
            "{msg}"
        );
    }
}

#[test]
fn index_and_address_do_not_wrap() {
    let group = |extra: &str| {
        with(&format!(
            "compute:\n  - name: \"c{{index}}\"\n    count: 2\n    {extra}\n"
        ))
    };
    let ((line, _, msg), _) = first(&group("first-index: 4294967295"));
    assert_eq!(line, 13);
    assert!(msg.contains("0 to 4294967294 for 2 nodes"), "{msg}");
    let c = load_str("t.yaml", &group("first-index: 4294967294"), &env).unwrap();
    assert_eq!(c.nodes[2].name.as_str(), "c4294967295");
    let ((line, _, msg), _) = first(&group("first-ip: 255.255.255.255"));
    assert_eq!(line, 13);
    assert!(
        msg.starts_with("first-ip 255.255.255.255 is out of range"),
        "{msg}"
    );
}

#[test]
fn hostlists_are_measured_before_they_are_expanded() {
    let part = |nodes: &str| {
        with(&format!(
            "compute:\n  - name: \"cn{{index}}\"\n    count: 4\nslurm:\n  partitions:\n    - name: p\n      nodes: [\"{nodes}\"]\n"
        ))
    };
    assert!(problems(&part("cn[1-4]")).is_empty());
    for huge in [
        "c[1-999999999]".to_owned(),
        "c[1-18446744073709551615]".to_owned(),
        format!("c[1-{}]", MAX_REFERENCED_NAMES + 1),
        "c[1-100][1-100]".to_owned(),
    ] {
        let ((line, col, msg), n) = first(&part(&huge));
        assert_eq!((line, col, n), (16, 15, 1), "{huge}");
        assert_eq!(
            msg,
            format!("a partition names more than {MAX_REFERENCED_NAMES} nodes")
        );
    }
    let zeros = format!("cn[{}1-2]", "0".repeat(65_535));
    let ((line, _, msg), _) = first(&part(&zeros));
    assert_eq!(line, 16);
    assert!(
        msg.contains(&format!("more than {MAX_PAD_WIDTH} digits")),
        "{msg}"
    );
    // Names that do not exist: one problem per expression, not one per name.
    let ((_, _, msg), n) = first(&part("x[1-5000]"));
    assert_eq!(
        msg,
        "`x[1-5000]` names 5000 nodes that do not exist (`x1` is one)"
    );
    assert_eq!(n, 1);
}

#[test]
fn unknown_names_are_cut_and_suggestions_bounded() {
    // 20,000 names that do not exist, in a 4,096-node cluster: the first problems are kept,
    // the rest counted.
    let names: Vec<String> = (0..20_000).map(|i| format!("xq{i}")).collect();
    let text = with(&format!(
        "compute:\n  - name: \"cn{{index}}\"\n    count: 4096\nslurm:\n  partitions:\n    - name: p\n      nodes: [{}]\n",
        names.join(", ")
    ));
    match load_str("t.yaml", &text, &env) {
        Err(LoadError::Invalid(e)) => {
            assert_eq!(e.problems.len(), MAX_PROBLEMS);
            assert!(e.total() >= 1000, "{}", e.total());
            assert_eq!(e.problems[0].message, "no node is called `xq0`");
        }
        other => panic!("{other:?}"),
    }
    // A typo still gets its suggestion in a large cluster.
    let text = with(
        "compute:\n  - name: \"cn{index}\"\n    count: 4096\nslurm:\n  partitions:\n    - name: p\n      nodes: [cnn2048]\n",
    );
    let p = problems(&text);
    assert_eq!(p[0].help.as_deref(), Some("did you mean `cn2048`?"));
}

#[test]
fn shares_pci_and_partitions_per_file() {
    let shares: String = (0..=MAX_SHARES_PER_NODE)
        .map(|i| format!("  - {{tag: t{i}, host-path: /srv/s{i}, mount-point: /s{i}}}\n"))
        .collect();
    let ((line, _, msg), n) = first(&with(&format!("virtiofs:\n{shares}")));
    assert_eq!((line, n), (11 + MAX_SHARES_PER_NODE, 1));
    assert_eq!(
        msg,
        format!("virtio-fs shares on a node: at most {MAX_SHARES_PER_NODE}")
    );

    let pci: String = (0..=MAX_PCI_PER_NODE)
        .map(|i| format!("    - address: \"0000:{:02x}:00.0\"\n", i + 1))
        .collect();
    let text = with(&format!("  pci-devices:\n{pci}"));
    let ((line, _, msg), _) = first(&text);
    assert_eq!(line, 11 + MAX_PCI_PER_NODE);
    assert_eq!(
        msg,
        format!("PCI devices on a node: at most {MAX_PCI_PER_NODE}")
    );

    let parts: String = (0..=MAX_PARTITIONS)
        .map(|i| format!("    - {{name: p{i}, nodes: [ctl]}}\n"))
        .collect();
    let ((line, _, msg), n) = first(&with(&format!("slurm:\n  partitions:\n{parts}")));
    assert_eq!((line, n), (12 + MAX_PARTITIONS, 1));
    assert_eq!(msg, format!("SLURM partitions: at most {MAX_PARTITIONS}"));
}

#[test]
fn hosts_per_file() {
    // `hosts:` comes before `controller:` in this file: BASE's controller, then the hosts.
    let hosts = |n: usize| -> String {
        let list: String = (0..n)
            .map(|i| {
                // h0 takes the controller: the controller's host must be this machine.
                let uri = if i == 0 {
                    "qemu:///system".to_owned()
                } else {
                    format!("qemu+ssh://h{i}/system")
                };
                format!(
                    "  - {{name: h{i}, uri: \"{uri}\", address: 192.168.{}.{}}}\n",
                    i / 250,
                    i % 250 + 1
                )
            })
            .collect();
        with(&format!("hosts:\n{list}"))
    };
    let c = load_str("t.yaml", &hosts(MAX_HOSTS), &env).unwrap();
    assert_eq!(c.hosts.len(), MAX_HOSTS);
    assert_eq!(c.nodes[0].host.as_ref().unwrap().as_str(), "h0");
    let ((line, _, msg), n) = first(&hosts(MAX_HOSTS + 1));
    assert_eq!((line, n), (11 + MAX_HOSTS, 1));
    assert_eq!(msg, format!("hosts: at most {MAX_HOSTS}"));
}

#[test]
fn large_clusters_get_unique_macs() {
    // 8,192 nodes: 24 hashed bits collide a few times at this size; each collision hashes
    // again instead of refusing the file.
    let mut text = with("compute:\n");
    for g in 0..2 {
        writeln!(
            text,
            "  - name: \"g{g}n{{index}}\"\n    count: {MAX_GROUP_NODES}"
        )
        .unwrap();
    }
    let text = text.replace("    - name: ctl\n", "    - name: ctl\ncount-me: 0\n");
    // The controller makes the cluster one too many: drop one compute node.
    let text = text.replacen(
        &format!("count: {MAX_GROUP_NODES}"),
        &format!("count: {}", MAX_GROUP_NODES - 1),
        1,
    );
    let text = text.replace("count-me: 0\n", "");
    let c = load_str("t.yaml", &text, &env).unwrap();
    assert_eq!(c.nodes.len(), MAX_NODES);
    let macs: std::collections::HashSet<_> = c.nodes.iter().map(|n| n.mac).collect();
    assert_eq!(macs.len(), MAX_NODES);
    // The first node keeps the plain derived MAC.
    assert_eq!(c.nodes[0].mac, hpc_config::derive_mac("lab", "ctl"));
}
