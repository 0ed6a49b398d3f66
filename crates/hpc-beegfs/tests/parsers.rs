//! The check tools' output, parsed (fixtures in the formats of §5 of the reference), and the
//! round trip's output.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use std::path::PathBuf;

use common::full_stack;
use hpc_beegfs::{
    Health, NodeKind, RoundTrip, aggregate, parse_check_servers, parse_df, parse_health,
    parse_listtargets, parse_node_list, parse_target_list, roundtrip_argv, tool_commands,
};

fn fixture(name: &str) -> String {
    fs_err::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/output")
            .join(name),
    )
    .unwrap()
}

#[test]
fn check_servers_7() {
    let s = parse_check_servers(&fixture("check-servers-7.txt")).unwrap();
    assert_eq!(s.len(), 5);
    assert_eq!(
        (s[0].kind, s[0].node.as_str(), s[0].id, s[0].reachable),
        (NodeKind::Management, "ctl", Some(1), true)
    );
    assert_eq!(s[1].kind, NodeKind::Meta);
    assert_eq!(
        (s[4].kind, s[4].node.as_str(), s[4].id, s[4].reachable),
        (NodeKind::Storage, "cn03", Some(3), false)
    );
    assert!(parse_check_servers("cn01 [ID: 1]: UNREACHABLE\n").is_err());
}

#[test]
fn listtargets_7() {
    let t = parse_listtargets(&fixture("listtargets-7.txt")).unwrap();
    assert_eq!(t.len(), 3);
    assert!(t[0].healthy() && t[1].healthy() && !t[2].healthy());
    assert_eq!(
        (
            t[2].id.as_str(),
            t[2].reachability.as_str(),
            t[2].consistency.as_str()
        ),
        ("301", "Probably-offline", "Needs-resync")
    );
    assert!(parse_listtargets("TargetID NodeID\n").is_err());
}

#[test]
fn df_7() {
    let d = parse_df(&fixture("df-7.txt")).unwrap();
    assert_eq!(d.len(), 4);
    assert_eq!(
        (d[0].kind, d[0].id.as_str(), d[0].free_percent),
        (NodeKind::Meta, "1", Some(88))
    );
    assert_eq!(
        (
            d[3].kind,
            d[3].pool.as_str(),
            d[3].free.as_str(),
            d[3].free_percent
        ),
        (NodeKind::Storage, "low", "3.1GiB", Some(16))
    );
}

#[test]
fn node_list_8() {
    let n = parse_node_list(&fixture("node-list-8.json")).unwrap();
    assert_eq!(n.len(), 4);
    assert_eq!(
        (n[0].kind, n[0].id, n[0].reachable),
        (NodeKind::Management, Some(1), true)
    );
    assert_eq!(
        (n[2].kind, n[2].node.as_str(), n[2].reachable),
        (NodeKind::Storage, "node_storage_1", true)
    );
    assert!(!n[3].reachable);
    let t = parse_node_list(&fixture("node-list-8.table.ndjson")).unwrap();
    assert_eq!((t[1].kind, t[1].id), (NodeKind::Meta, Some(1)));
    assert!(parse_node_list("[{\"alias\": \"x\"}]").is_err());
    assert!(parse_node_list("not json").is_err());
}

#[test]
fn target_list_8() {
    let t = parse_target_list(&fixture("target-list-8.json")).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].id, "101");
    assert!(t[0].healthy() && !t[1].healthy());
}

#[test]
fn health_8() {
    let h = parse_health(&fixture("health-8.txt"));
    assert_eq!(h.len(), 5);
    assert_eq!(
        h[2],
        (
            Health::Degraded,
            "Consistency: 1 target needs a resync.".into()
        )
    );
    assert_eq!(h.iter().map(|(s, _)| *s).max(), Some(Health::Degraded));
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
