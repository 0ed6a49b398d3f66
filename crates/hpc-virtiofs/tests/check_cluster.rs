//! `check_cluster` against a mock of the guests (a fake executor that does, on the host
//! directories, what a node's check script would do through its share), and once against
//! the real check script run by `LocalExecutor` on this machine, outside any VM;
//! `check_cluster_on_hosts` with a fake of the other hypervisor hosts (their commands run
//! here, on directories standing in for theirs).

#![allow(clippy::unwrap_used)] // tests panic on failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hpc_config::Cluster;
use hpc_remote::{CommandOutput, Executor, HostError, HostPlan, HostReport, LocalExecutor, Mode};
use hpc_virtiofs::{CheckReport, check_cluster, check_cluster_on_hosts, probe_name};
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

/// A fake of the hypervisor hosts' executor: it records every command and runs it on this
/// machine with `LocalExecutor`, every argument under a host's stand-in prefix moved to the
/// directory that plays that host's (`dirs`); a host in `down` is unreachable.
struct FakeHosts {
    /// (host, the path in the cluster file, the directory that stands in for it there).
    dirs: Vec<(String, PathBuf, PathBuf)>,
    /// Hosts whose executor fails.
    down: Vec<String>,
    /// (host, argv as asked, before moving paths).
    calls: Mutex<Vec<(String, Vec<String>)>>,
}

impl FakeHosts {
    fn new(dirs: &[(&str, &Path, &Path)]) -> Self {
        Self {
            dirs: dirs
                .iter()
                .map(|(h, from, to)| ((*h).to_owned(), from.to_path_buf(), to.to_path_buf()))
                .collect(),
            down: Vec::new(),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The hosts asked, with the last argument of each command (the file it is about, or the
    /// token after it for a write) and whether the command was a write (`printf`), a read
    /// (`cat`) or a removal.
    fn asked(&self) -> Vec<(String, &'static str, String)> {
        let mut v: Vec<(String, &'static str, String)> = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(h, argv)| {
                let kind = if argv[2].contains("printf") {
                    "write"
                } else if argv[2].contains("cat") {
                    "read"
                } else {
                    "remove"
                };
                (h.clone(), kind, argv[4].clone())
            })
            .collect();
        v.sort();
        v
    }
}

impl Executor for FakeHosts {
    async fn apply_host(&self, plan: &HostPlan, _mode: Mode) -> Result<HostReport, HostError> {
        Err(HostError::UnknownHost {
            host: plan.host.clone(),
        })
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        self.calls
            .lock()
            .unwrap()
            .push((host.to_owned(), argv.to_vec()));
        if self.down.iter().any(|h| h == host) {
            return Err(HostError::UnknownHost {
                host: host.to_owned(),
            });
        }
        let argv: Vec<String> = argv
            .iter()
            .map(|a| {
                let p = Path::new(a);
                self.dirs
                    .iter()
                    .filter(|(h, _, _)| h == host)
                    .find_map(|(_, from, to)| p.strip_prefix(from).ok().map(|rest| to.join(rest)))
                    .map_or_else(|| a.clone(), |p| p.to_string_lossy().into_owned())
            })
            .collect();
        LocalExecutor::new().run(host, &argv).await
    }
}

/// A cluster on two hosts: `ctl` on `hv1` (this machine), `cn1` on `hv2`; every node has a
/// read-write `home` share on `home` and a read-only `sw` share on `sw` (on its own host).
fn two_host_cluster(home: &Path, sw: &Path) -> Cluster {
    let text = format!(
        "name: t\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage: {{base: /i/b.qcow2}}\n\
         hosts:\n  - {{name: hv1, uri: \"qemu:///system\", address: 192.168.50.1}}\n  \
         - {{name: hv2, uri: \"qemu+ssh://root@192.168.50.2/system\", address: 192.168.50.2}}\n\
         virtiofs:\n  - {{tag: home, host-path: {}, mount-point: /home}}\n  \
         - {{tag: sw, host-path: {}, mount-point: /opt/sw, readonly: true}}\n\
         controller: {{host: hv1, nodes: [{{name: ctl}}]}}\n\
         compute: [{{host: hv2, nodes: [{{name: cn1}}]}}]\n",
        home.display(),
        sw.display()
    );
    hpc_config::load_str("t.yaml", &text, &|_| None).unwrap()
}

#[tokio::test]
async fn nodes_on_other_hosts_round_trip_through_their_host() {
    let (home, sw) = dirs();
    // What the shares are on hv2: the same paths in the file, other directories.
    let (far_home, far_sw) = dirs();
    let c = two_host_cluster(home.path(), sw.path());
    assert_eq!(c.nodes[1].host.as_ref().unwrap().as_str(), "hv2");
    let guests = FakeGuests::new(&[
        ("ctl", "/home", home.path()),
        ("ctl", "/opt/sw", sw.path()),
        ("cn1", "/home", far_home.path()),
        ("cn1", "/opt/sw", far_sw.path()),
    ]);
    let hosts = FakeHosts::new(&[
        ("hv2", home.path(), far_home.path()),
        ("hv2", sw.path(), far_sw.path()),
    ]);
    let r = check_cluster_on_hosts(&guests, Some(&hosts), &c, TOKEN).await;
    assert_eq!(
        rows(&r),
        [
            ("ctl", "home", true),
            ("ctl", "sw", true),
            ("cn1", "home", true),
            ("cn1", "sw", true),
        ]
    );
    let cn1 = &r.shares[2];
    assert!(cn1.check.host_to_guest, "hv2 wrote its file");
    assert_eq!(cn1.host_saw_guest, Some(true), "hv2 read the node's probe");
    assert_eq!(cn1.error, None);
    assert_eq!(r.shares[3].host_saw_guest, None, "read-only");
    assert_eq!(r.shares[0].host_saw_guest, Some(true));

    // hv2 was asked about its own directories only (by the file's paths); this machine's
    // node was done here, without the hosts' executor.
    let home_file = home.path().join(HOST_FILE).to_string_lossy().into_owned();
    let sw_file = sw.path().join(HOST_FILE).to_string_lossy().into_owned();
    let probe = home
        .path()
        .join(probe_name("cn1"))
        .to_string_lossy()
        .into_owned();
    let mut want = vec![
        ("hv2".to_owned(), "read", probe),
        ("hv2".to_owned(), "remove", home_file.clone()),
        ("hv2".to_owned(), "remove", sw_file.clone()),
        ("hv2".to_owned(), "write", home_file),
        ("hv2".to_owned(), "write", sw_file),
    ];
    want.sort();
    assert_eq!(hosts.asked(), want);
    let calls = hosts.calls.lock().unwrap();
    let write = calls.iter().find(|(_, a)| a[2].contains("printf")).unwrap();
    assert_eq!(write.1.last().unwrap(), TOKEN, "the token is an argument");
    drop(calls);

    // Everything is gone on both hosts.
    for d in [&home, &sw, &far_home, &far_sw] {
        assert!(ls(d.path()).is_empty(), "{:?}", ls(d.path()));
    }
}

#[tokio::test]
async fn an_unreachable_host_fails_its_nodes_naming_host_and_file() {
    let (home, sw) = dirs();
    let (far_home, far_sw) = dirs();
    let c = two_host_cluster(home.path(), sw.path());
    let guests = FakeGuests::new(&[
        ("ctl", "/home", home.path()),
        ("ctl", "/opt/sw", sw.path()),
        ("cn1", "/home", far_home.path()),
        ("cn1", "/opt/sw", far_sw.path()),
    ]);
    let mut hosts = FakeHosts::new(&[
        ("hv2", home.path(), far_home.path()),
        ("hv2", sw.path(), far_sw.path()),
    ]);
    hosts.down.push("hv2".to_owned());
    let r = check_cluster_on_hosts(&guests, Some(&hosts), &c, TOKEN).await;
    assert_eq!(
        rows(&r),
        [
            ("ctl", "home", true),
            ("ctl", "sw", true),
            ("cn1", "home", false),
            ("cn1", "sw", false),
        ]
    );
    let home_file = home.path().join(HOST_FILE);
    let probe = home.path().join(probe_name("cn1"));
    let cn1 = &r.shares[2];
    assert!(!cn1.check.host_to_guest);
    assert_eq!(cn1.host_saw_guest, Some(false));
    assert_eq!(
        cn1.error.as_deref(),
        Some(
            format!(
                "host hv2 could not write its check file {}: host hv2: not in the executor's \
                 inventory; host hv2 could not read {}: host hv2: not in the executor's inventory",
                home_file.display(),
                probe.display()
            )
            .as_str()
        )
    );
    let sw_error = r.shares[3].error.as_deref().unwrap();
    assert!(
        sw_error.starts_with(&format!(
            "host hv2 could not write its check file {}: ",
            sw.path().join(HOST_FILE).display()
        )),
        "{sw_error}"
    );
    // Nothing to remove where nothing was written.
    assert!(
        !hosts.asked().iter().any(|(_, kind, _)| *kind == "remove"),
        "{:?}",
        hosts.asked()
    );
    assert!(ls(home.path()).is_empty(), "{:?}", ls(home.path()));
}

#[tokio::test]
async fn a_host_command_that_fails_names_host_and_file() {
    let (home, sw) = dirs();
    let (far_home, far_sw) = dirs();
    let c = two_host_cluster(home.path(), sw.path());
    let guests = FakeGuests::new(&[
        ("ctl", "/home", home.path()),
        ("ctl", "/opt/sw", sw.path()),
        ("cn1", "/home", far_home.path()),
        ("cn1", "/opt/sw", far_sw.path()),
    ]);
    // hv2 has no `sw` directory: its write there exits non-zero.
    let missing = far_sw.path().join("missing");
    let hosts = FakeHosts::new(&[
        ("hv2", home.path(), far_home.path()),
        ("hv2", sw.path(), &missing),
    ]);
    let r = check_cluster_on_hosts(&guests, Some(&hosts), &c, TOKEN).await;
    assert_eq!(
        rows(&r),
        [
            ("ctl", "home", true),
            ("ctl", "sw", true),
            ("cn1", "home", true),
            ("cn1", "sw", false),
        ]
    );
    let e = r.shares[3].error.as_deref().unwrap();
    assert!(
        e.starts_with(&format!(
            "host hv2 could not write its check file {}: exited with Some(",
            sw.path().join(HOST_FILE).display()
        )),
        "{e}"
    );
    for d in [&home, &sw, &far_home, &far_sw] {
        assert!(ls(d.path()).is_empty(), "{:?}", ls(d.path()));
    }
}

#[tokio::test]
async fn without_the_hosts_executor_other_hosts_get_no_host_side() {
    let (home, sw) = dirs();
    let (far_home, far_sw) = dirs();
    let c = two_host_cluster(home.path(), sw.path());
    let guests = FakeGuests::new(&[
        ("ctl", "/home", home.path()),
        ("ctl", "/opt/sw", sw.path()),
        ("cn1", "/home", far_home.path()),
        ("cn1", "/opt/sw", far_sw.path()),
    ]);
    let r = check_cluster(&guests, &c, TOKEN).await;
    assert_eq!(r.shares[2].host_saw_guest, None);
    assert!(!r.shares[2].check.host_to_guest);
    assert!(r.shares[0].passed());
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
