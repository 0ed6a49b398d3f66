//! `check_cluster` against a mock of the guests (a fake executor that does, on the host
//! directories, what a node's check script would do through its share), and once against
//! the real check script run by `LocalExecutor` on this machine, outside any VM.

#![allow(clippy::unwrap_used)] // tests panic on failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hpc_config::Cluster;
use hpc_remote::{CommandOutput, Executor, HostError, HostPlan, HostReport, LocalExecutor, Mode};
use hpc_virtiofs::{CheckReport, check_cluster, probe_name};
use serde_json::json;
use tempfile::TempDir;

const TOKEN: &str = "hpc-up-test-token";
const HOST_FILE: &str = ".hpc-up-check-host";

/// How a mocked guest behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guest {
    /// Everything works.
    Good,
    /// Claims it wrote its probe file, but the host will not find it.
    NoProbe,
    /// A read-only share accepts the guest's write.
    RoNotEnforced,
    /// The check script exits non-zero.
    Exits,
    /// The executor cannot reach the node.
    Unreachable,
}

/// A mock of the guests, not a VM: for each `check_argv` call it reads and writes the host
/// directory the node's share would show (`shares`), the way the real script does through
/// the mount, and prints the `key=value` lines the script would print.
struct FakeGuests {
    /// (node, mount point) → the host directory behind it.
    shares: BTreeMap<(String, String), PathBuf>,
    /// Behaviour per node (default [`Guest::Good`]).
    guests: BTreeMap<String, Guest>,
    /// When set, every call waits here first: a sequential caller never gets past it.
    barrier: Option<tokio::sync::Barrier>,
    /// The nodes called, in order.
    calls: Mutex<Vec<String>>,
}

impl FakeGuests {
    fn new(shares: &[(&str, &str, &Path)]) -> Self {
        Self {
            shares: shares
                .iter()
                .map(|(n, mp, d)| (((*n).to_owned(), (*mp).to_owned()), d.to_path_buf()))
                .collect(),
            guests: BTreeMap::new(),
            barrier: None,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn guest(mut self, node: &str, g: Guest) -> Self {
        self.guests.insert(node.to_owned(), g);
        self
    }
}

impl Executor for FakeGuests {
    async fn apply_host(&self, plan: &HostPlan, _mode: Mode) -> Result<HostReport, HostError> {
        Err(HostError::UnknownHost {
            host: plan.host.clone(),
        })
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        self.calls.lock().unwrap().push(host.to_owned());
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        let guest = self.guests.get(host).copied().unwrap_or(Guest::Good);
        if guest == Guest::Unreachable {
            return Err(HostError::UnknownHost {
                host: host.to_owned(),
            });
        }
        // check_argv: sh -c SCRIPT $0 mount-point tag ro|rw probe token mib
        let [_, _, _, _, mp, tag, want, probe, token, _] = argv else {
            panic!("unexpected argv {argv:?}");
        };
        let dir = &self.shares[&(host.to_owned(), mp.clone())];
        let host_file = fs_err::read_to_string(dir.join(HOST_FILE)).unwrap_or_default();
        let mut out = format!("source={tag}\nfstype=virtiofs\nmode={want}\n");
        out += if host_file == *token {
            "host_to_guest=ok\n"
        } else {
            "host_to_guest=fail\n"
        };
        if want == "ro" {
            out += if guest == Guest::RoNotEnforced {
                "write_refused=no\n"
            } else {
                "write_refused=yes\n"
            };
        } else {
            if guest != Guest::NoProbe {
                fs_err::write(dir.join(probe), format!("{token}\n")).unwrap();
            }
            out += "guest_to_host=written\nshare_write_ms=320\nshare_read_ms=160\n";
        }
        out += "local_write_ms=640\nlocal_read_ms=320\n";
        Ok(CommandOutput {
            status: Some(if guest == Guest::Exits { 1 } else { 0 }),
            stdout: out.into_bytes(),
            stderr: if guest == Guest::Exits {
                b"boom\n".to_vec()
            } else {
                Vec::new()
            },
        })
    }
}

/// A cluster whose every node has a read-write `home` share on `home` and a read-only `sw`
/// share on `sw`: the controller `ctl`, and `compute`, the YAML list of compute nodes
/// (none when empty).
fn cluster(home: &Path, sw: &Path, compute: &str) -> Cluster {
    let mut text = format!(
        "name: t\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage: {{base: /i/b.qcow2}}\n\
         virtiofs:\n  - {{tag: home, host-path: {}, mount-point: /home}}\n  \
         - {{tag: sw, host-path: {}, mount-point: /opt/sw, readonly: true}}\n\
         controller: {{nodes: [{{name: ctl}}]}}\n",
        home.display(),
        sw.display()
    );
    if !compute.is_empty() {
        text += &format!("compute: [{{nodes: {compute}}}]\n");
    }
    hpc_config::load_str("t.yaml", &text, &|_| None).unwrap()
}

fn dirs() -> (TempDir, TempDir) {
    (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap())
}

/// The names in `dir`.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn fake_for(nodes: &[&str], home: &Path, sw: &Path) -> FakeGuests {
    let shares: Vec<(&str, &str, &Path)> = nodes
        .iter()
        .flat_map(|n| [(*n, "/home", home), (*n, "/opt/sw", sw)])
        .collect();
    FakeGuests::new(&shares)
}

fn rows(r: &CheckReport) -> Vec<(&str, &str, bool)> {
    r.shares
        .iter()
        .map(|s| (s.node.as_str(), s.tag.as_str(), s.passed()))
        .collect()
}

#[tokio::test]
async fn local_nodes_round_trip_through_the_host_directories() {
    let (home, sw) = dirs();
    let c = cluster(home.path(), sw.path(), "[{name: cn1}, {name: cn2}]");
    let exec = fake_for(&["ctl", "cn1", "cn2"], home.path(), sw.path());
    let r = check_cluster(&exec, &c, TOKEN).await;
    assert_eq!(
        rows(&r),
        [
            ("ctl", "home", true),
            ("ctl", "sw", true),
            ("cn1", "home", true),
            ("cn1", "sw", true),
            ("cn2", "home", true),
            ("cn2", "sw", true),
        ]
    );
    assert!(r.passed());
    assert_eq!(r.failed(), 0);
    let home_share = &r.shares[0];
    assert_eq!(home_share.host_saw_guest, Some(true));
    assert!(home_share.check.host_to_guest);
    assert_eq!(
        r.shares[1].host_saw_guest, None,
        "read-only: nothing to read back"
    );
    // The host's file and every probe are gone.
    assert!(ls(home.path()).is_empty(), "{:?}", ls(home.path()));
    assert!(ls(sw.path()).is_empty(), "{:?}", ls(sw.path()));

    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["ok"], json!(true));
    assert_eq!(
        v["mounts"][0],
        json!({
            "node": "ctl", "tag": "home", "mount-point": "/home", "readonly": false,
            "mounted": true, "options-ok": true, "host-to-guest": true, "guest-to-host": true,
            "write-refused": null,
            "share-mib-per-s": {"write": 100.0, "read": 200.0},
            "local-mib-per-s": {"write": 50.0, "read": 100.0},
            "error": null, "passed": true,
        })
    );
    assert_eq!(v["mounts"][1]["write-refused"], json!(true));
    assert_eq!(v["mounts"][1]["guest-to-host"], json!(null));
    assert_eq!(v["mounts"][1]["share-mib-per-s"], json!(null));
}

#[tokio::test]
async fn nodes_on_another_libvirt_host_get_no_host_side() {
    let (home, sw) = dirs();
    // What the share shows on host2, which this machine does not touch.
    let (far_home, far_sw) = dirs();
    let c = cluster(
        home.path(),
        sw.path(),
        "[{name: cn1, libvirt: {uri: \"qemu+ssh://root@host2/system\"}}]",
    );
    let exec = FakeGuests::new(&[
        ("ctl", "/home", home.path()),
        ("ctl", "/opt/sw", sw.path()),
        ("cn1", "/home", far_home.path()),
        ("cn1", "/opt/sw", far_sw.path()),
    ]);
    let r = check_cluster(&exec, &c, TOKEN).await;
    assert_eq!(
        rows(&r),
        [
            ("ctl", "home", true),
            ("ctl", "sw", true),
            ("cn1", "home", false),
            ("cn1", "sw", false),
        ]
    );
    let cn1 = &r.shares[2];
    assert_eq!(cn1.host_saw_guest, None);
    assert!(!cn1.check.host_to_guest, "nobody wrote host2's file");
    assert_eq!(cn1.error, None);
    // Nothing was written or removed on "host2": the guest's probe is still there.
    assert_eq!(ls(far_home.path()), [probe_name("cn1")]);
    assert!(ls(far_sw.path()).is_empty());
    assert!(ls(home.path()).is_empty());
}

#[tokio::test]
async fn failures_are_results() {
    let (home, sw) = dirs();
    let c = cluster(
        home.path(),
        sw.path(),
        "[{name: cn1}, {name: cn2}, {name: cn3}]",
    );
    let exec = fake_for(&["ctl", "cn1", "cn2", "cn3"], home.path(), sw.path())
        .guest("ctl", Guest::NoProbe)
        .guest("cn1", Guest::Unreachable)
        .guest("cn2", Guest::Exits)
        .guest("cn3", Guest::RoNotEnforced);
    let r = check_cluster(&exec, &c, TOKEN).await;
    assert_eq!(
        rows(&r),
        [
            ("ctl", "home", false),
            ("ctl", "sw", true),
            ("cn1", "home", false),
            ("cn1", "sw", false),
            ("cn2", "home", false),
            ("cn2", "sw", false),
            ("cn3", "home", true),
            ("cn3", "sw", false),
        ]
    );
    assert_eq!(r.failed(), 6);
    assert!(!r.passed());

    let ctl = &r.shares[0];
    assert_eq!(ctl.check.guest_wrote, Some(true));
    assert_eq!(ctl.host_saw_guest, Some(false), "the host found no probe");
    assert_eq!(ctl.error, None);

    let cn1 = &r.shares[2];
    assert!(!cn1.check.mounted);
    assert_eq!(
        cn1.error.as_deref(),
        Some("host cn1: not in the executor's inventory")
    );

    let cn2 = &r.shares[4];
    assert_eq!(
        cn2.error.as_deref(),
        Some("check exited with Some(1): boom")
    );
    assert!(cn2.check.passed(), "the output itself was fine");

    assert_eq!(r.shares[7].check.write_refused, Some(false));
    assert!(ls(home.path()).is_empty(), "{:?}", ls(home.path()));
    assert!(ls(sw.path()).is_empty(), "{:?}", ls(sw.path()));
}

#[tokio::test]
async fn a_host_directory_the_host_cannot_write() {
    let (home, sw) = dirs();
    let missing = home.path().join("missing");
    let c = cluster(&missing, sw.path(), "");
    let exec = FakeGuests::new(&[("ctl", "/home", sw.path()), ("ctl", "/opt/sw", sw.path())]);
    let r = check_cluster(&exec, &c, TOKEN).await;
    let h = &r.shares[0];
    assert!(!h.passed());
    let e = h.error.as_deref().unwrap();
    assert!(
        e.starts_with("the host could not write its check file: "),
        "{e}"
    );
    assert!(e.contains(&*missing.to_string_lossy()), "{e}");
    assert!(r.shares[1].passed());
}

#[tokio::test]
async fn nodes_are_checked_concurrently() {
    let (home, sw) = dirs();
    let c = cluster(home.path(), sw.path(), "[{name: cn1}, {name: cn2}]");
    let mut exec = fake_for(&["ctl", "cn1", "cn2"], home.path(), sw.path());
    // Every call waits until three calls wait: the three nodes' first shares meet there,
    // then their second shares. Checked one node after another, nothing ever gets through.
    exec.barrier = Some(tokio::sync::Barrier::new(3));
    let passed = tokio::time::timeout(Duration::from_secs(10), async {
        check_cluster(&exec, &c, TOKEN).await.passed()
    })
    .await
    .expect("nodes were checked one after another");
    assert!(passed);
    assert_eq!(exec.calls.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn an_empty_cluster_passes() {
    let text = "name: t\nnetwork: {cidr: 10.1.0.0/24, bridge: br-t}\nimage: {base: /i/b.qcow2}\n\
                controller: {nodes: [{name: ctl}]}\n";
    let c = hpc_config::load_str("t.yaml", text, &|_| None).unwrap();
    let r = check_cluster(&FakeGuests::new(&[]), &c, TOKEN).await;
    assert_eq!(r, CheckReport::default());
    assert!(r.passed());
}

/// `LocalExecutor`, with the check script's page-cache drop sent to /dev/null: as root on
/// a test machine it would otherwise drop the whole machine's cache.
struct NoCacheDrop(LocalExecutor);

impl Executor for NoCacheDrop {
    async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        self.0.apply_host(plan, mode).await
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.replace("/proc/sys/vm/drop_caches", "/dev/null"))
            .collect();
        self.0.run(host, &argv).await
    }
}

/// The real script, on this machine, against a directory that is both the share's host
/// directory and its "mount point" but mounted nowhere: the round trips work, the mount
/// check does not.
#[tokio::test]
async fn the_real_script_outside_a_vm_finds_no_mount() {
    let share = tempfile::tempdir().unwrap();
    let text = format!(
        "name: t\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage: {{base: /i/b.qcow2}}\n\
         virtiofs: [{{tag: data, host-path: {0}, mount-point: {0}}}]\n\
         controller: {{nodes: [{{name: ctl}}]}}\n",
        share.path().display()
    );
    let c = hpc_config::load_str("t.yaml", &text, &|_| None).unwrap();
    let r = check_cluster(&NoCacheDrop(LocalExecutor::new()), &c, TOKEN).await;
    assert_eq!(r.shares.len(), 1);
    let s = &r.shares[0];
    assert_eq!(s.error, None);
    assert!(!s.check.mounted);
    assert!(s.check.mode_ok, "not mounted reads as rw");
    assert!(s.check.host_to_guest);
    assert_eq!(s.check.guest_wrote, Some(true));
    assert_eq!(s.host_saw_guest, Some(true));
    assert!(s.check.share_mibps.is_some(), "{s:?}");
    assert!(s.check.local_mibps.is_some(), "{s:?}");
    assert!(!s.passed());
    assert!(ls(share.path()).is_empty(), "{:?}", ls(share.path()));
}
