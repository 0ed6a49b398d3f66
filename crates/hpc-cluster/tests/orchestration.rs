//! hpc-cluster end to end without VMs: libvirt is its test driver (`test:///default`, in
//! this process), the nodes are the SSH test bed's hosts (namespaces running the real
//! Debian sshd, munged, slurmctld and slurmd from their unit files). `plan`, `up`, `up`
//! again (no changes), a changed partition (`plan` shows `slurm.conf`'s diff on every node),
//! a cancel at every phase, and `down`.
//!
//! Needs root, iproute2, OpenSSH, util-linux, munge and SLURM (`scripts/install-deps`):
//! skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::sync::{Arc, Mutex};

use hpc_cluster::{
    CancelToken, Connector, Error, Event, Layer, Libvirt, NodeState, Session, UpOptions,
};
use hpc_config::Cluster;
use hpc_tests::ssh_bed::SshBed;

const PACKAGES: [&str; 3] = ["munged", "slurmctld", "slurmd"];

/// A bed of 3 hosts, or `None` (skip) outside CI when a daemon is missing.
fn bed() -> Option<SshBed> {
    SshBed::with_daemons(
        3,
        &PACKAGES,
        "munge, slurmctld and slurmd (scripts/install-deps)",
        "hpc-cluster on the SSH test bed",
    )
}

/// h01 controller, h02–h03 compute, SLURM with one partition whose time limit is `limit`;
/// libvirt is the test driver, the image an empty file (the test driver boots nothing).
fn cluster(bed: &SshBed, limit: &str) -> Cluster {
    let ip = |n: &str| bed.host(n).unwrap().ip;
    let net = ip("h01").octets();
    let base = bed.state_dir().join("base.qcow2");
    if !base.exists() {
        fs_err::write(&base, b"").unwrap();
    }
    let yaml = format!(
        "name: orch
libvirt:
  uri: test:///default
  domain-type: qemu
network:
  cidr: {}.{}.{}.0/24
  bridge: hpcbr-orch
  mode: isolated
  domain: bed.test
image:
  base: {base}
state-dir: {state}
ssh:
  key: {key}
controller:
  memory: 1GiB
  nodes:
    - name: h01
      ip: {}
compute:
  - name: h{{index:02}}
    count: 2
    first-index: 2
    first-ip: {}
    vcpus: 1
    memory: 1GiB
slurm:
  partitions:
    - name: debug
      nodes: [\"h[02-03]\"]
      default: true
      max-time: \"{limit}\"
",
        net[0],
        net[1],
        net[2],
        ip("h01"),
        ip("h02"),
        base = base.display(),
        state = bed.state_dir().join("cluster").display(),
        key = bed.key_path().display(),
    );
    hpc_config::load_str("orch.yaml", &yaml, &|_| None).unwrap()
}

/// Every event of a run, and a token that is cancelled when `cancel_at` starts.
fn session(
    cluster: &Cluster,
    cancel_at: Option<&'static str>,
) -> (Session, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let token = CancelToken::new();
    let (seen, t) = (events.clone(), token.clone());
    let sink = move |e: &Event| {
        let hit = match e {
            Event::LayerStarted { layer, .. } => cancel_at == Some(layer.name()),
            Event::PhaseStarted { phase, .. } => cancel_at == Some(phase.as_str()),
            _ => false,
        };
        if hit {
            t.cancel();
        }
        seen.lock().unwrap().push(e.clone());
    };
    let s = Session::new(cluster.clone())
        .with_cancel(token)
        .with_events(Arc::new(sink));
    (s, events)
}

/// libvirt's test driver keeps `test:///default`'s objects only while a connection to it is
/// open: this connector holds one for the whole test.
struct TestDriver {
    _keep: hpc_libvirt::VirtHypervisor,
}

impl TestDriver {
    fn new() -> Self {
        Self {
            _keep: Libvirt.connect("test:///default").unwrap(),
        }
    }
}

impl Connector for TestDriver {
    type Hypervisor = hpc_libvirt::VirtHypervisor;

    fn connect(&self, uri: &str) -> hpc_cluster::Result<Self::Hypervisor> {
        Libvirt.connect(uri)
    }
}

fn opts() -> UpOptions {
    UpOptions {
        ssh_timeout: std::time::Duration::from_secs(60),
        ..UpOptions::default()
    }
}

#[test]
fn plan_up_reup_change_cancel_everywhere_and_down() {
    let Some(bed) = bed() else { return };
    let exec = bed.executor("orch", None);
    let libvirt = TestDriver::new();
    let first = cluster(&bed, "1:00:00");
    let up = |c: &Cluster, at: Option<&'static str>| {
        let (s, events) = session(c, at);
        let r = bed.in_netns(|| s.up_with(&libvirt, Some(&exec), &opts()));
        (r, events)
    };
    let plan = |c: &Cluster| {
        let s = Session::new(c.clone());
        bed.in_netns(|| s.plan_with(&libvirt, Some(&exec))).unwrap()
    };

    // Nothing exists: every object is to be created, every node known after apply; and
    // planning made nothing (no secrets, no seeds).
    let p = plan(&first);
    assert!(p.libvirt.iter().all(|c| c.action == "create"), "{p:?}");
    assert!(
        p.nodes
            .iter()
            .all(|n| matches!(n.state, NodeState::KnownAfterApply { .. }) && !n.pending.is_empty()),
        "{p:?}"
    );
    assert!(!bed.state_dir().join("cluster").exists());

    // Cancelled while libvirt works: what it created is undone.
    let (r, _) = up(&first, Some("libvirt"));
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert!(e.to_string().contains("libvirt"), "{e}");
    let s = Session::new(first.clone());
    assert!(
        s.status(&libvirt)
            .unwrap()
            .iter()
            .all(|n| n.state.is_none())
    );

    // Up: every node configured, SLURM deployed; each node has its own times.
    let (r, events) = up(&first, None);
    let report = r.unwrap_or_else(|e| panic!("up failed:\n{e}"));
    assert!(report.changes > 0);
    assert_eq!(report.nodes.len(), 3, "{report:?}");
    for (node, t) in &report.nodes {
        assert!(
            t.ssh_ready_at.is_some() && t.base.is_some() && t.slurm.is_some(),
            "{node}: {t:?}"
        );
    }
    let finished = |events: &[Event], layer: Layer, phase: &str| {
        events
            .iter()
            .filter(|e| matches!(e, Event::PhaseFinished { layer: l, phase: p, .. } if *l == layer && p == phase))
            .count()
    };
    {
        let ev = events.lock().unwrap();
        assert_eq!(finished(&ev, Layer::Node, "ssh wait"), 3);
        assert_eq!(finished(&ev, Layer::Slurm, "munge"), 3);
        assert_eq!(finished(&ev, Layer::Slurm, "slurmd"), 2);
        assert_eq!(finished(&ev, Layer::Slurm, "nodes idle"), 1);
    }
    let sinfo = bed.exec_on("h01", &["sinfo", "-h", "-N", "-o", "%N %T"]);
    assert_eq!(
        String::from_utf8_lossy(&sinfo.stdout).trim(),
        "h02 idle\nh03 idle"
    );

    // Again: nothing changes, and the plan is empty.
    let (r, _) = up(&first, None);
    let again = r.unwrap_or_else(|e| panic!("second up failed:\n{e}"));
    assert_eq!(again.changes, 0, "{again:?}");
    let p = plan(&first);
    assert!(p.is_empty(), "{p:#?}");

    // A changed partition: slurm.conf's diff on every node, nothing for libvirt.
    let second = cluster(&bed, "2:00:00");
    let p = plan(&second);
    assert_eq!(p.libvirt_changes(), 0, "{p:#?}");
    for n in &p.nodes {
        assert_eq!(n.state, NodeState::Checked, "{n:?}");
        let conf = n
            .changes
            .iter()
            .find(|c| {
                c.layer == "slurm" && c.diff.as_deref().is_some_and(|d| d.contains("slurm.conf"))
            })
            .unwrap_or_else(|| panic!("{}: no slurm.conf diff: {n:#?}", n.node));
        let diff = conf.diff.as_deref().unwrap();
        assert!(
            diff.contains("-PartitionName=debug") && diff.contains("MaxTime=02:00:00"),
            "{diff}"
        );
    }

    // Cancelled at every phase: the run stops, says where, and the next run still works.
    for at in [
        "ssh wait",
        "seed",
        "base",
        "munge",
        "slurmctld",
        "slurmd",
        "nodes idle",
    ] {
        let (r, events) = up(&second, Some(at));
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Cancelled { .. }), "{at}: {e}");
        assert!(e.to_string().contains(at), "{at}: {e}");
        let ev = events.lock().unwrap();
        assert_eq!(
            finished(&ev, Layer::Slurm, "config hash"),
            0,
            "{at}: ran to the end"
        );
        eprintln!("cancelled at {at}: {e}");
    }
    let (r, _) = up(&second, None);
    r.unwrap_or_else(|e| panic!("up after the cancels failed:\n{e}"));
    assert!(plan(&second).is_empty());

    // Down: nothing left in libvirt; of the state directory only the cluster's secrets (the
    // next `up` reuses them) and its lock.
    let s = Session::new(second.clone());
    let down = s.down(&libvirt).unwrap();
    assert!(!down.removed.is_empty());
    assert!(
        s.status(&libvirt)
            .unwrap()
            .iter()
            .all(|n| n.state.is_none())
    );
    let mut left: Vec<String> = fs_err::read_dir(bed.state_dir().join("cluster"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert!(
        left.iter()
            .all(|f| ["lock", "secrets", "ssh"].contains(&f.as_str())),
        "{left:?}"
    );
}
