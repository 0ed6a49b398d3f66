//! [`check_cluster`]: every node checks each of its shares, and this machine does the host's
//! half of the round trips.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::future::join_all;
use hpc_config::{Cluster, Mount, Node};
use hpc_remote::Executor;
use serde::{Serialize, Serializer};

use crate::check::{HOST_FILE, MountCheck, check_argv, parse_check, probe_name};

/// One node's check of one share, with the host's side of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareCheck {
    /// The node.
    pub node: String,
    /// The share's virtio-fs tag.
    pub tag: String,
    /// Where the node mounts it.
    pub mount_point: String,
    /// A read-only share.
    pub readonly: bool,
    /// What the node saw (all `false`/`None` when the check could not run).
    pub check: MountCheck,
    /// For read-write shares of nodes on this machine: the host read back the token the node
    /// wrote (`None`: not applicable — a read-only share, or a node on another libvirt host).
    pub host_saw_guest: Option<bool>,
    /// Why the check could not run or be judged: the command failed or exited non-zero, or
    /// the host could not write its file into the share.
    pub error: Option<String>,
}

impl ShareCheck {
    /// The share works on this node: no error, everything the node saw is right, and the host
    /// read what the node wrote (where it could look).
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.check.passed() && self.host_saw_guest != Some(false)
    }
}

/// The JSON (or other serde) form of a [`ShareCheck`]: kebab-case keys, rates as
/// `{write, read}` in MiB/s, `guest-to-host` is the host's read-back, and `passed`.
impl Serialize for ShareCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Rates {
            write: f64,
            read: f64,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct View<'a> {
            node: &'a str,
            tag: &'a str,
            mount_point: &'a str,
            readonly: bool,
            mounted: bool,
            options_ok: bool,
            host_to_guest: bool,
            guest_to_host: Option<bool>,
            write_refused: Option<bool>,
            share_mib_per_s: Option<Rates>,
            local_mib_per_s: Option<Rates>,
            error: Option<&'a str>,
            passed: bool,
        }
        let rates = |r: Option<(f64, f64)>| r.map(|(write, read)| Rates { write, read });
        View {
            node: &self.node,
            tag: &self.tag,
            mount_point: &self.mount_point,
            readonly: self.readonly,
            mounted: self.check.mounted,
            options_ok: self.check.mode_ok,
            host_to_guest: self.check.host_to_guest,
            guest_to_host: self.host_saw_guest,
            write_refused: self.check.write_refused,
            share_mib_per_s: rates(self.check.share_mibps),
            local_mib_per_s: rates(self.check.local_mibps),
            error: self.error.as_deref(),
            passed: self.passed(),
        }
        .serialize(s)
    }
}

/// Every share of every node, checked: the result of [`check_cluster`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckReport {
    /// One entry per node and share, in the cluster's node order, then the node's share order.
    pub shares: Vec<ShareCheck>,
}

impl CheckReport {
    /// Every share passed (also when there is none).
    pub fn passed(&self) -> bool {
        self.shares.iter().all(ShareCheck::passed)
    }

    /// How many shares failed.
    pub fn failed(&self) -> usize {
        self.shares.iter().filter(|s| !s.passed()).count()
    }
}

/// Serialized as `{"ok": bool, "mounts": [ShareCheck…]}` (the shape of
/// `hpc-up check virtiofs --output json`).
impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            ok: bool,
            mounts: &'a [ShareCheck],
        }
        View {
            ok: self.passed(),
            mounts: &self.shares,
        }
        .serialize(s)
    }
}

/// Checks every share of every node of `cluster` (see [`check_argv`]) and does the host's
/// half of the round trips.
///
/// For nodes whose libvirt connection is local (`uri.remote_host()` is `None`) the host
/// directories are on this machine: `token` is written to `.hpc-up-check-host` in each
/// distinct host directory first (the nodes must read it), and after the nodes are done the
/// probe file each node wrote into a read-write share is read back (it must hold `token`)
/// and removed, as are the host's files. Nodes on other libvirt hosts run the same check,
/// without the host's side: their host→guest check fails (nobody wrote the file) and
/// [`ShareCheck::host_saw_guest`] is `None`.
///
/// Nodes run concurrently, each node's shares one after another (the throughput figures
/// would disturb each other). `token` should be unique per run (e.g. pid and time); it
/// travels as an argument, never through a shell string. Failures are results, not
/// errors: an unreachable node or a failed write shows in [`ShareCheck::error`].
///
/// The host's file I/O is small and blocking, done between the awaits.
pub async fn check_cluster<E: Executor>(exec: &E, cluster: &Cluster, token: &str) -> CheckReport {
    let local = |n: &Node| n.uri.remote_host().is_none();

    // The host writes its file once per shared directory (several nodes may share one);
    // `Err` keeps why it could not (then the nodes' host→guest check fails, and says why).
    let mut host_dirs: BTreeMap<&Path, Result<(), String>> = BTreeMap::new();
    for n in cluster.nodes.iter().filter(|n| local(n)) {
        for m in &n.virtiofs {
            host_dirs.entry(m.host_path.as_path()).or_insert_with(|| {
                // A read-only share may still be writable on the host; if not, the
                // host→guest check fails and the error says why.
                fs_err::write(m.host_path.join(HOST_FILE), token)
                    .map_err(|e| format!("the host could not write its check file: {e}"))
            });
        }
    }

    let nodes: Vec<&Node> = cluster
        .nodes
        .iter()
        .filter(|n| !n.virtiofs.is_empty())
        .collect();
    let per_node = join_all(nodes.iter().map(|n| check_node(exec, n, token))).await;

    let mut shares = Vec::new();
    for (n, results) in nodes.iter().zip(per_node) {
        for (m, (check, run_error)) in n.virtiofs.iter().zip(results) {
            let mut errors: Vec<String> = run_error.into_iter().collect();
            let host_saw_guest = if local(n) {
                if let Some(Err(e)) = host_dirs.get(m.host_path.as_path()) {
                    errors.push(e.clone());
                }
                (!m.readonly).then(|| read_probe(&m.host_path, n.name.as_str(), token))
            } else {
                None
            };
            shares.push(ShareCheck {
                node: n.name.to_string(),
                tag: m.tag.to_string(),
                mount_point: m.mount_point.clone(),
                readonly: m.readonly,
                check,
                host_saw_guest,
                error: (!errors.is_empty()).then(|| errors.join("; ")),
            });
        }
    }
    for (dir, written) in &host_dirs {
        if written.is_ok() {
            let _ = fs_err::remove_file(dir.join(HOST_FILE));
        }
    }
    CheckReport { shares }
}

/// One node's shares, one after another: what it saw, and why the check did not run or
/// exited non-zero.
async fn check_node<E: Executor>(
    exec: &E,
    n: &Node,
    token: &str,
) -> Vec<(MountCheck, Option<String>)> {
    let mut out = Vec::with_capacity(n.virtiofs.len());
    for m in &n.virtiofs {
        out.push(check_share(exec, n, m, token).await);
    }
    out
}

async fn check_share<E: Executor>(
    exec: &E,
    n: &Node,
    m: &Mount,
    token: &str,
) -> (MountCheck, Option<String>) {
    let argv = check_argv(n.name.as_str(), m, token);
    match exec.run(n.name.as_str(), &argv).await {
        Ok(o) => {
            let error = (o.status != Some(0)).then(|| {
                format!(
                    "check exited with {:?}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                )
            });
            (parse_check(m, &String::from_utf8_lossy(&o.stdout)), error)
        }
        Err(e) => (MountCheck::default(), Some(e.to_string())),
    }
}

/// Whether `node`'s probe file in `dir` holds `token`; removes it.
fn read_probe(dir: &Path, node: &str, token: &str) -> bool {
    let probe = dir.join(probe_name(node));
    let seen = fs_err::read_to_string(&probe).is_ok_and(|s| s.trim() == token);
    let _ = fs_err::remove_file(&probe);
    seen
}
