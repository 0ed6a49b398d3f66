//! [`check_cluster`]: every node checks each of its shares, and the host does its half of the
//! round trips (this machine's filesystem, or [`check_cluster_on_hosts`]: another host's
//! executor).

use std::collections::{BTreeMap, BTreeSet};
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
    /// For read-write shares: the node's host read back the token the node wrote (`None`: not
    /// applicable — a read-only share, or a node on another libvirt host that is not reached).
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
/// half of the round trips for the nodes on this machine.
///
/// For nodes whose libvirt connection is local (`uri.remote_host()` is `None`) the host
/// directories are on this machine: `token` is written to `.hpc-up-check-host` in each
/// distinct host directory first (the nodes must read it), and after the nodes are done the
/// probe file each node wrote into a read-write share is read back (it must hold `token`)
/// and removed, as are the host's files. Nodes on other libvirt hosts run the same check,
/// without the host's side: their host→guest check fails (nobody wrote the file) and
/// [`ShareCheck::host_saw_guest`] is `None`; [`check_cluster_on_hosts`] does their side too.
///
/// Nodes run concurrently, each node's shares one after another (the throughput figures
/// would disturb each other). `token` should be unique per run (e.g. pid and time); it
/// travels as an argument, never through a shell string. Failures are results, not
/// errors: an unreachable node or a failed write shows in [`ShareCheck::error`].
///
/// The host's file I/O is small and blocking, done between the awaits.
pub async fn check_cluster<E: Executor>(exec: &E, cluster: &Cluster, token: &str) -> CheckReport {
    check_cluster_on_hosts(exec, None::<&E>, cluster, token).await
}

/// [`check_cluster`], and with `hosts` (an executor of the hypervisor hosts of `hosts:`, by
/// host name) also the host's half for the nodes on other hosts: a node's shares are
/// directories of *its own* host ([`hpc_config::Node::host`]), so that host writes its
/// `.hpc-up-check-host` into each of them (`sh -c 'printf …'`), reads back the probe each
/// node wrote (`cat`), and both are removed afterwards, as on this machine. A failed command
/// there shows in [`ShareCheck::error`], naming the host and the file.
///
/// Nodes on this machine keep the local path ([`check_cluster`]); nodes without a host
/// (no `hosts:` list) or with `hosts` `None` get no host side when they are elsewhere.
pub async fn check_cluster_on_hosts<E: Executor, H: Executor>(
    exec: &E,
    hosts: Option<&H>,
    cluster: &Cluster,
    token: &str,
) -> CheckReport {
    // The host writes its file once per shared directory of each host (several nodes may
    // share one); `Err` keeps why it could not (then the nodes' host→guest check fails, and
    // says why).
    let mut host_dirs: BTreeMap<(Option<&str>, &Path), Result<(), String>> = BTreeMap::new();
    let mut remote_dirs: BTreeSet<(&str, &Path)> = BTreeSet::new();
    for n in &cluster.nodes {
        match host_side(hosts, n) {
            HostSide::Here => {
                for m in &n.virtiofs {
                    host_dirs
                        .entry((None, m.host_path.as_path()))
                        .or_insert_with(|| {
                            // A read-only share may still be writable on the host; if not,
                            // the host→guest check fails and the error says why.
                            fs_err::write(m.host_path.join(HOST_FILE), token).map_err(|e| {
                                format!("the host could not write its check file: {e}")
                            })
                        });
                }
            }
            HostSide::On(_, host) => {
                remote_dirs.extend(n.virtiofs.iter().map(|m| (host, m.host_path.as_path())));
            }
            HostSide::Nowhere => {}
        }
    }
    if let Some(h) = hosts {
        let written = join_all(
            remote_dirs
                .iter()
                .map(|(host, dir)| write_remote(h, host, dir, token)),
        )
        .await;
        for ((host, dir), r) in remote_dirs.iter().zip(written) {
            host_dirs.insert((Some(host), dir), r);
        }
    }

    let nodes: Vec<&Node> = cluster
        .nodes
        .iter()
        .filter(|n| !n.virtiofs.is_empty())
        .collect();
    let per_node = join_all(nodes.iter().map(|n| check_node(exec, n, token))).await;

    // The host reads back what each node wrote into its read-write shares:
    // `(seen, why it could not look)`, `None` where there is nothing to read.
    let read_back = join_all(nodes.iter().flat_map(|n| {
        n.virtiofs.iter().map(move |m| async move {
            if m.readonly {
                return None;
            }
            match host_side(hosts, n) {
                HostSide::Here => Some((read_probe(&m.host_path, n.name.as_str(), token), None)),
                HostSide::On(h, host) => {
                    Some(read_remote_probe(h, host, &m.host_path, n.name.as_str(), token).await)
                }
                HostSide::Nowhere => None,
            }
        })
    }))
    .await;
    let mut read_back = read_back.into_iter();

    let mut shares = Vec::new();
    for (n, results) in nodes.iter().zip(per_node) {
        // Whose directories hold the node's shares: this machine's (`None`), a host's, or
        // nobody's that is reached here.
        let host = match host_side(hosts, n) {
            HostSide::Here => Some(None),
            HostSide::On(_, host) => Some(Some(host)),
            HostSide::Nowhere => None,
        };
        for (m, (check, run_error)) in n.virtiofs.iter().zip(results) {
            let mut errors: Vec<String> = run_error.into_iter().collect();
            if let Some(Some(Err(e))) = host.map(|h| host_dirs.get(&(h, m.host_path.as_path()))) {
                errors.push(e.clone());
            }
            let host_saw_guest = read_back.next().flatten().map(|(seen, error)| {
                errors.extend(error);
                seen
            });
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
    let mut removals = Vec::new();
    for ((host, dir), written) in &host_dirs {
        if written.is_err() {
            continue;
        }
        match (host, hosts) {
            (None, _) => {
                let _ = fs_err::remove_file(dir.join(HOST_FILE));
            }
            (Some(host), Some(h)) => removals.push(remove_remote(h, host, dir)),
            (Some(_), None) => {}
        }
    }
    join_all(removals).await;
    CheckReport { shares }
}

/// Where the host's half of a node's round trips is done.
enum HostSide<'a, H> {
    /// On this machine's filesystem.
    Here,
    /// On another host, through its executor.
    On(&'a H, &'a str),
    /// Nowhere: the node is on another host that is not reached here.
    Nowhere,
}

fn host_side<'a, H>(hosts: Option<&'a H>, n: &'a Node) -> HostSide<'a, H> {
    if n.uri.remote_host().is_none() {
        return HostSide::Here;
    }
    match (hosts, &n.host) {
        (Some(h), Some(host)) => HostSide::On(h, host.as_str()),
        _ => HostSide::Nowhere,
    }
}

/// `host` writes `token` into `dir`'s host file.
async fn write_remote<H: Executor>(
    hosts: &H,
    host: &str,
    dir: &Path,
    token: &str,
) -> Result<(), String> {
    let file = dir.join(HOST_FILE);
    let argv = script_argv(r#"printf %s "$2" > "$1""#, &file, Some(token));
    match hosts.run(host, &argv).await {
        Ok(o) if o.status == Some(0) => Ok(()),
        Ok(o) => Err(format!(
            "host {host} could not write its check file {}: exited with {:?}: {}",
            file.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "host {host} could not write its check file {}: {e}",
            file.display()
        )),
    }
}

/// Whether `node`'s probe file in `dir` on `host` holds `token` (and why `host` could not be
/// asked); removes it.
async fn read_remote_probe<H: Executor>(
    hosts: &H,
    host: &str,
    dir: &Path,
    node: &str,
    token: &str,
) -> (bool, Option<String>) {
    let probe = dir.join(probe_name(node));
    let argv = script_argv(r#"cat -- "$1"; s=$?; rm -f -- "$1"; exit $s"#, &probe, None);
    match hosts.run(host, &argv).await {
        // Like the local read: a probe that is not there is a `false`, not an error.
        Ok(o) => (
            o.status == Some(0) && String::from_utf8_lossy(&o.stdout).trim() == token,
            None,
        ),
        Err(e) => (
            false,
            Some(format!(
                "host {host} could not read {}: {e}",
                probe.display()
            )),
        ),
    }
}

/// Removes the host file from `dir` on `host` (best effort, as on this machine).
async fn remove_remote<H: Executor>(hosts: &H, host: &str, dir: &Path) {
    let argv = script_argv(r#"rm -f -- "$1""#, &dir.join(HOST_FILE), None);
    let _ = hosts.run(host, &argv).await;
}

/// `sh -c SCRIPT hpc-up-check FILE [ARG]`: the file and the token travel as arguments
/// (quoted by the executor), never inside the script.
fn script_argv(script: &str, file: &Path, arg: Option<&str>) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "hpc-up-check".to_owned(),
        file.to_string_lossy().into_owned(),
    ];
    argv.extend(arg.map(str::to_owned));
    argv
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
