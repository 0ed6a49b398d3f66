//! `check_cluster` through a fake executor: a mock of BeeGFS nodes whose tools answer with
//! the parser fixtures (see `fake/mod.rs`: the daemons are not in Debian and cannot run
//! here) and whose mount is one shared map of token files.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;
mod fake;

use common::full_stack;
use fake::FakeBeegfs;
use hpc_beegfs::{
    BENCH_MIB, CheckError, ClusterCheck, NodeKind, Throughput, check_cluster, cleanup_argv,
    roundtrip_argv,
};

fn check(exec: &FakeBeegfs, version: &str) -> ClusterCheck {
    let cluster = full_stack(version, "");
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(check_cluster(exec, &cluster, "tok"))
        .unwrap()
}

const CLIENTS: [&str; 4] = ["ctl", "cn01", "cn02", "cn03"];

#[test]
fn healthy_fixtures_pass() {
    let exec = FakeBeegfs::healthy_7();
    let c = check(&exec, "7.4.6");
    assert_eq!(c.failures, Vec::<String>::new());
    assert!(c.passed() && c.preflight.passed());
    assert_eq!(c.tool_node, "ctl", "the management node is a client");
    assert_eq!(c.servers.len(), 5);
    assert_eq!(c.targets.len(), 3);
    assert_eq!(c.space.len(), 4);
    assert!(c.health.is_empty());
    let clients: Vec<(&str, bool, &str, bool)> = c
        .clients
        .iter()
        .map(|r| (r.node.as_str(), r.round_trip, r.peer.as_str(), r.peer_seen))
        .collect();
    assert_eq!(
        clients,
        [
            ("ctl", true, "cn01", true),
            ("cn01", true, "cn02", true),
            ("cn02", true, "cn03", true),
            ("cn03", true, "ctl", true),
        ]
    );
    // 64 MiB in 0.5 s / 0.25 s per client; four at once.
    let one = Throughput {
        write: 128.0,
        read: 256.0,
    };
    assert!(c.clients.iter().all(|r| r.mib_per_s == Some(one)));
    assert_eq!(
        c.aggregate,
        Some(Throughput {
            write: 512.0,
            read: 1024.0
        })
    );
    // The tools ran on ctl; every client ran its round trip with its own token, read its
    // peer's and cleaned up.
    let ctl = exec.ran_on("ctl");
    for tool in ["beegfs-check-servers", hpc_beegfs::CTL_7, "beegfs-df"] {
        assert!(ctl.iter().any(|a| a[0] == tool), "{tool}");
    }
    for n in CLIENTS {
        let ran = exec.ran_on(n);
        assert!(ran.contains(&roundtrip_argv(
            "/mnt/beegfs",
            n,
            &format!("tok-{n}"),
            BENCH_MIB
        )));
        assert!(ran.contains(&cleanup_argv("/mnt/beegfs", n)));
    }
}

#[test]
fn json_keeps_the_output_format() {
    let c = check(&FakeBeegfs::healthy_7(), "7.4.6");
    let json = serde_json::to_value(&c).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "ok",
            "release",
            "tools-ran-on",
            "servers",
            "targets",
            "space",
            "clients",
            "aggregate-mib-per-s",
            "failures"
        ]
    );
    assert_eq!(json["ok"], true);
    assert_eq!(json["release"], "7.4.6");
    assert_eq!(json["tools-ran-on"], "ctl");
    assert_eq!(
        json["servers"][4],
        serde_json::json!({"type": "storage", "node": "cn03", "id": 3, "reachable": true})
    );
    assert_eq!(
        json["targets"][0],
        serde_json::json!({"id": "101", "reachability": "Online", "consistency": "Good"})
    );
    assert_eq!(
        json["space"][0],
        serde_json::json!({"type": "meta", "id": "1", "pool": "normal", "total": "19.5GiB", "free": "17.1GiB"})
    );
    assert_eq!(
        json["clients"][3],
        serde_json::json!({"node": "cn03", "round-trip": true, "peer": "ctl", "peer-seen": true,
            "mib-per-s": {"write": 128.0, "read": 256.0},
            "local-mib-per-s": {"write": 256.0, "read": 512.0},
            "share": "/shared", "share-mib-per-s": {"write": 64.0, "read": 128.0}})
    );
    assert_eq!(
        json["aggregate-mib-per-s"],
        serde_json::json!({"write": 512.0, "read": 1024.0})
    );
    assert_eq!(json["failures"], serde_json::json!([]));
}

#[test]
fn an_unreachable_server_and_an_unhealthy_target_fail() {
    let c = check(&FakeBeegfs::fixtures_7(), "7.4.6");
    assert!(!c.passed());
    assert_eq!(
        c.failures,
        [
            "storage cn03 is unreachable (node cn03: beegfs-storage is failed)\n\
             beegfs-storage's journal ends with:\n  \
             cn03 beegfs-storage[812]: Couldn't find any usable NIC",
            "target 301 is Probably-offline/Needs-resync"
        ]
    );
    assert_eq!(serde_json::to_value(&c).unwrap()["ok"], false);
}

#[test]
fn a_server_unreachable_once_is_asked_after_again() {
    // The first server list has cn03 unreachable (a heartbeat answered late); the next one
    // has every server reachable: the check passes, having asked twice.
    let exec = FakeBeegfs::healthy_7();
    exec.first_answer.lock().unwrap().insert(
        "beegfs-check-servers",
        fake::out(0, fake::fixture("check-servers-7.txt"), ""),
    );
    let c = check(&exec, "7.4.6");
    assert!(c.failures.is_empty(), "{:#?}", c.failures);
    let asked = exec
        .ran_on("ctl")
        .iter()
        .filter(|a| a.first().is_some_and(|a| a == "beegfs-check-servers"))
        .count();
    assert_eq!(asked, 2);
}

#[test]
fn the_8x_fixtures_fail_on_reachability_targets_health_and_registration() {
    let c = check(&FakeBeegfs::fixtures_8(), "8.1.0");
    assert_eq!(
        c.failures,
        [
            // 8.x names nodes `node_storage_<id>`: the ID finds the cluster's node.
            "storage node_storage_2 is unreachable (node cn02: beegfs-storage is failed)\n\
             beegfs-storage's journal ends with:\n  \
             cn02 beegfs-storage[812]: Couldn't find any usable NIC",
            "target 201 is Offline/Needs-resync",
            "health check Degraded: Consistency -> Are all mirrors synchronized?",
            "registered: 1 meta of 1, 2 storage of 3",
        ]
    );
    assert_eq!(
        c.servers
            .iter()
            .filter(|s| s.kind == NodeKind::Storage)
            .count(),
        2
    );
    assert_eq!(c.health.len(), 5);
}

#[test]
fn failed_round_trips_and_peer_reads_are_collected() {
    let mut exec = FakeBeegfs::healthy_7();
    // cn01's disk is full; cn02's mount point is a plain local directory.
    exec.roundtrip_fails.insert("cn01".into());
    exec.broken_mount.insert("cn02".into());
    let c = check(&exec, "7.4.6");
    assert_eq!(
        c.failures,
        [
            "cn02: /mnt/beegfs is not a BeeGFS mount",
            // ctl reads cn01's token, which cn01 wrote before its disk filled up.
            "cn01: round trip failed: exited with status 1: dd: error writing '/mnt/beegfs/.hpc-up-check/x.bin': No space left on device; \
             cn02's file not seen: exited with status 1: cat: /mnt/beegfs/.hpc-up-check/cn02.tok: No such file or directory",
            "cn02: cn03's file not seen: exited with status 1: cat: /mnt/beegfs/.hpc-up-check/cn03.tok: No such file or directory",
        ],
        "{:#?}",
        c.failures
    );
    let row = |n: &str| c.clients.iter().find(|r| r.node == n).unwrap();
    assert!(!row("cn01").round_trip && row("cn01").mib_per_s.is_none());
    // cn02's own round trip passes (it reads back what it wrote, locally).
    assert!(row("cn02").round_trip && !row("cn02").peer_seen);
    // Three clients finished: the aggregate counts them.
    assert_eq!(
        c.aggregate,
        Some(Throughput {
            write: 384.0,
            read: 768.0
        })
    );
}

#[test]
fn unreachable_nodes_are_failures_not_errors() {
    let mut exec = FakeBeegfs::healthy_7();
    exec.unreachable.insert("cn03".into());
    let c = check(&exec, "7.4.6");
    assert_eq!(
        c.failures,
        [
            "cn03: not probed: not in the executor's inventory",
            // cn03 never wrote its token.
            "cn02: cn03's file not seen: exited with status 1: cat: /mnt/beegfs/.hpc-up-check/cn03.tok: No such file or directory",
            "cn03: round trip failed: not in the executor's inventory; ctl's file not seen: not in the executor's inventory",
        ],
        "{:#?}",
        c.failures
    );
}

#[test]
fn nothing_to_check() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let exec = FakeBeegfs::healthy_7();
    let mut cluster = full_stack("7.4.6", "");
    cluster.beegfs.as_mut().unwrap().clients.clear();
    assert_eq!(
        rt.block_on(check_cluster(&exec, &cluster, "t"))
            .unwrap_err(),
        CheckError::NoClients
    );
    cluster.beegfs = None;
    assert_eq!(
        rt.block_on(check_cluster(&exec, &cluster, "t"))
            .unwrap_err(),
        CheckError::NoBeegfs
    );
    assert!(exec.ran.lock().unwrap().is_empty());
}

#[test]
fn the_low_capacity_pool_alone_passes_though_the_health_check_exits_1() {
    // Every target in the `low` pool, as on any small disk (the bed's 199 GiB free already):
    // `beegfs health check` says DEGRADED and exits 1; the check passes, as 7.x's beegfs-df
    // shows the same pool without failing.
    let mut exec = FakeBeegfs::default();
    let text =
        fake::fixture("health-8.txt").replace("(DEGRADED) Consistency", "(HEALTHY) Consistency");
    exec.tools.insert(
        "health",
        fake::out(1, text, "Error: one or more checks failed"),
    );
    let c = check(&exec, "8.1.0");
    assert!(c.passed(), "{:?}", c.failures);
    assert!(
        c.health
            .iter()
            .any(|(h, _)| *h == hpc_beegfs::Health::Degraded)
    );
}
