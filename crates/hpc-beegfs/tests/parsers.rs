//! The check tools' output, parsed (the real tools' output of 7.4.7 and 8.1.0, captured on
//! the SSH test bed), and the round trip's output.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use std::path::PathBuf;

use common::full_stack;
use hpc_beegfs::{
    Health, NodeKind, RoundTrip, aggregate, parse_check_servers, parse_df, parse_health,
    parse_listnodes, parse_listtargets, parse_node_list, parse_target_list, roundtrip_argv,
    tool_commands,
};

fn fixture(name: &str) -> String {
    fs_err::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/output")
            .join(name),
    )
    .unwrap()
}

// The fixtures are the real tools' output, captured on the SSH test bed by
// tests/tests/beegfs_bed.rs (`HPCUP_BEEGFS_FIXTURES=1`): h01 runs mgmtd and meta 1, h02
// meta 2 and storage 1 (target 101), h03 storage 2 (target 201); `*-storage-down` after
// h03's storage service was stopped.

#[test]
fn check_servers_7() {
    let s = parse_check_servers(&fixture("7.4.7/check-servers.txt")).unwrap();
    let got: Vec<_> = s
        .iter()
        .map(|s| (s.kind, s.node.as_str(), s.id, s.reachable))
        .collect();
    assert_eq!(
        got,
        [
            (NodeKind::Management, "h01", Some(1), true),
            (NodeKind::Meta, "h01", Some(1), true),
            (NodeKind::Meta, "h02", Some(2), true),
            (NodeKind::Storage, "h02", Some(1), true),
            (NodeKind::Storage, "h03", Some(2), true),
        ]
    );
    let down = parse_check_servers(&fixture("7.4.7/check-servers-storage-down.txt")).unwrap();
    assert_eq!(
        (
            down[4].kind,
            down[4].node.as_str(),
            down[4].id,
            down[4].reachable
        ),
        (NodeKind::Storage, "h03", Some(2), false)
    );
    assert!(down[..4].iter().all(|s| s.reachable));
    assert!(parse_check_servers("cn01 [ID: 1]: UNREACHABLE\n").is_err());
}

#[test]
fn listnodes_7() {
    let m = parse_listnodes(&fixture("7.4.7/listnodes-meta.txt"), NodeKind::Meta).unwrap();
    let got: Vec<_> = m
        .iter()
        .map(|s| (s.node.as_str(), s.id, s.reachable))
        .collect();
    assert_eq!(got, [("h01", Some(1), true), ("h02", Some(2), true)]);
    let s = parse_listnodes(
        &fixture("7.4.7/listnodes-storage-storage-down.txt"),
        NodeKind::Storage,
    )
    .unwrap();
    let got: Vec<_> = s
        .iter()
        .map(|s| (s.kind, s.node.as_str(), s.id, s.reachable))
        .collect();
    assert_eq!(
        got,
        [
            (NodeKind::Storage, "h02", Some(1), true),
            (NodeKind::Storage, "h03", Some(2), false)
        ]
    );
    assert!(parse_listnodes("   Reachable: <yes>\n", NodeKind::Meta).is_err());
    assert!(parse_listnodes("garbage\n", NodeKind::Meta).is_err());
}

#[test]
fn listtargets_7() {
    let t = parse_listtargets(&fixture("7.4.7/listtargets.txt")).unwrap();
    let got: Vec<_> = t.iter().map(|t| (t.id.as_str(), t.healthy())).collect();
    assert_eq!(got, [("101", true), ("201", true)]);
    let m = parse_listtargets(&fixture("7.4.7/listtargets-meta.txt")).unwrap();
    let got: Vec<_> = m.iter().map(|t| (t.id.as_str(), t.healthy())).collect();
    assert_eq!(got, [("1", true), ("2", true)]);
    // A stopped storage service's target still shows Online (until the management
    // service's offline timeout): the check looks at reachability too.
    let down = parse_listtargets(&fixture("7.4.7/listtargets-storage-down.txt")).unwrap();
    assert!(down.iter().all(|t| t.healthy()));
    let t = parse_listtargets(
        "TargetID     Reachability  Consistency   NodeID\n\
         ========     ============  ===========   ======\n\
         \x20    301  Probably-offline  Needs-resync        3\n",
    )
    .unwrap();
    assert_eq!(
        (
            t[0].id.as_str(),
            t[0].reachability.as_str(),
            t[0].consistency.as_str()
        ),
        ("301", "Probably-offline", "Needs-resync")
    );
    assert!(!t[0].healthy());
    assert!(parse_listtargets("TargetID NodeID\n").is_err());
}

#[test]
fn df_7() {
    let d = parse_df(&fixture("7.4.7/df.txt")).unwrap();
    let got: Vec<_> = d
        .iter()
        .map(|d| (d.kind, d.id.as_str(), d.pool.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (NodeKind::Meta, "1", "normal"),
            (NodeKind::Meta, "2", "normal"),
            (NodeKind::Storage, "101", "low"),
            (NodeKind::Storage, "201", "low"),
        ]
    );
    assert!(
        d.iter()
            .all(|d| d.total.ends_with("GiB") && d.free_percent.is_some())
    );
    // Storage down: its row reads zero, and an error line follows (not a row).
    let down = parse_df(&fixture("7.4.7/df-storage-down.txt")).unwrap();
    assert_eq!(down.len(), 4);
    assert_eq!(
        (
            down[3].id.as_str(),
            down[3].free.as_str(),
            down[3].free_percent
        ),
        ("201", "0.0GiB", Some(0))
    );
}

#[test]
fn node_list_8() {
    let n = parse_node_list(&fixture("8.1.0/node-list-json.txt")).unwrap();
    let got: Vec<_> = n
        .iter()
        .map(|s| (s.kind, s.node.as_str(), s.id, s.reachable))
        .collect();
    // 8.x aliases are `node_<type>_<id>`, not host names.
    assert_eq!(
        got,
        [
            (NodeKind::Meta, "node_meta_1", Some(1), true),
            (NodeKind::Meta, "node_meta_2", Some(2), true),
            (NodeKind::Storage, "node_storage_1", Some(1), true),
            (NodeKind::Storage, "node_storage_2", Some(2), true),
            (NodeKind::Management, "management", Some(1), true),
        ]
    );
    let down = parse_node_list(&fixture("8.1.0/node-list-json-storage-down.txt")).unwrap();
    let unreachable: Vec<_> = down
        .iter()
        .filter(|s| !s.reachable)
        .map(|s| s.node.as_str())
        .collect();
    assert_eq!(unreachable, ["node_storage_2"]);
    // The same rows in the table-id form (`m:1`) with `reachable` as a list of lines.
    let t = parse_node_list(
        "{\"id\":\"mg:1\",\"alias\":\"management\",\"reachable\":\"yes\\nyes\"}\n\
         {\"id\":\"m:1\",\"alias\":\"node_meta_1\",\"reachable\":\"no\"}\n",
    )
    .unwrap();
    assert_eq!(
        (t[0].kind, t[0].id, t[0].reachable),
        (NodeKind::Management, Some(1), true)
    );
    assert_eq!(
        (t[1].kind, t[1].id, t[1].reachable),
        (NodeKind::Meta, Some(1), false)
    );
    assert!(parse_node_list("[{\"alias\": \"x\"}]").is_err());
    assert!(parse_node_list("not json").is_err());
}

#[test]
fn target_list_8() {
    let t = parse_target_list(&fixture("8.1.0/target-list-json.txt")).unwrap();
    let mut got: Vec<_> = t.iter().map(|t| (t.id.as_str(), t.healthy())).collect();
    got.sort_unstable();
    // Metadata targets are listed too (their IDs are the meta node IDs).
    assert_eq!(
        got,
        [("1", true), ("101", true), ("2", true), ("201", true)]
    );
    let down = parse_target_list(&fixture("8.1.0/target-list-json-storage-down.txt")).unwrap();
    let bad: Vec<_> = down
        .iter()
        .filter(|t| !t.healthy())
        .map(|t| (t.id.as_str(), t.reachability.as_str()))
        .collect();
    assert_eq!(bad, [("201", "Probably-offline")]);
}

#[test]
fn health_8() {
    let h = parse_health(&fixture("8.1.0/health.txt"));
    let marks: Vec<_> = h.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        marks,
        [
            Health::Healthy,
            Health::Healthy,
            Health::Healthy,
            Health::Healthy,
            Health::Degraded
        ]
    );
    assert!(h[4].1.starts_with("Available Capacity -> "), "{h:?}");
    let down = parse_health(&fixture("8.1.0/health-storage-down.txt"));
    assert!(
        down.iter()
            .any(|(s, l)| *s == Health::Degraded && l.starts_with("Reachability -> ")),
        "{down:?}"
    );
}

#[test]
fn tool_commands_per_version() {
    let c7 = tool_commands(&full_stack("7.4.6", ""));
    assert_eq!(c7[0].1, ["beegfs-check-servers"]);
    let c8 = tool_commands(&full_stack("8.1.0", ""));
    assert_eq!(
        c8[0].1,
        [
            "/opt/beegfs/sbin/beegfs",
            "--mgmtd-addr",
            "10.79.0.10:8010",
            "--tls-disable",
            "node",
            "list",
            "--reachability-check",
            "--output",
            "json"
        ]
    );
    assert_eq!(c8[2].1[4..], ["health", "check", "--disable-emojis"]);
}

#[test]
fn round_trip() {
    let argv = roundtrip_argv("/mnt/beegfs", "cn01", "tok-1", 64);
    assert_eq!(argv[..2], ["/bin/sh", "-c"]);
    assert_eq!(argv[4..], ["/mnt/beegfs", "cn01", "tok-1", "64"]);
    let r = RoundTrip::parse("roundtrip=ok\nwrite-ns=2000000000\nread-ns=500000000\n");
    assert!(r.ok);
    assert_eq!(r.rates(64), Some((32.0, 128.0)));
    let slow = RoundTrip::parse("roundtrip=ok\nwrite-ns=4000000000\nread-ns=1000000000\n");
    assert_eq!(aggregate(&[r, slow], 64), Some((32.0, 128.0)));
    assert!(!RoundTrip::parse("roundtrip=fail\n").ok);
    assert_eq!(aggregate(&[RoundTrip::default()], 64), None);
}
