//! After the VMs start: wait for SSH on every node at once, pin host keys, set hostname and
//! `/etc/hosts`. Composition of `hpc-remote` with the cluster; the steps are plain data.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hpc_config::{Cluster, Node};
use hpc_remote::{
    EnsureFile, Executor, HostError, HostPlan, Mode, RunCommand, SshExecutor, SshHost, SshOptions,
};
use miette::{IntoDiagnostic, Result, miette};

use crate::image::cluster_key;

/// The SSH executor for the cluster's nodes: its key, host keys pinned in
/// `<state>/ssh/known_hosts` on first contact.
pub(crate) fn executor(cluster: &Cluster, parallel: Option<usize>) -> Result<SshExecutor> {
    let (key, _) = cluster_key(cluster)?;
    let mut opts = SshOptions::new(key, cluster.state_dir.join("ssh"));
    opts.user = cluster.ssh.user.clone();
    opts.parallel = parallel.unwrap_or(cluster.nodes.len()).clamp(1, 256);
    opts.connect_timeout = Duration::from_secs(10);
    opts.connect_attempts = 1;
    let hosts = cluster
        .nodes
        .iter()
        .map(|n| SshHost::new(n.name.as_str(), n.ip.to_string()).port(cluster.ssh.port));
    SshExecutor::new(opts, hosts).into_diagnostic()
}

/// The `/etc/hosts` every node gets: every node by full and short name.
pub(crate) fn etc_hosts(cluster: &Cluster) -> String {
    let mut s = String::from(
        "# written by hpc-up\n127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for n in &cluster.nodes {
        s.push_str(&format!(
            "{}\t{}.{} {}\n",
            n.ip,
            n.name,
            cluster.network.domain.as_str(),
            n.name
        ));
    }
    s
}

/// The base configuration of one node: hostname, `/etc/hosts`, its virtio-fs mounts.
pub(crate) fn base_plan(cluster: &Cluster, node: &Node) -> HostPlan {
    let plan = HostPlan::new(node.name.as_str())
        .step(
            "hostname-file",
            EnsureFile::new("/etc/hostname", format!("{}\n", node.name), 0o644),
        )
        .step(
            "hostname",
            RunCommand::new(["hostname", node.name.as_str()]).when_changed(["hostname-file"]),
        )
        .step(
            "hosts",
            EnsureFile::new("/etc/hosts", etc_hosts(cluster), 0o644),
        );
    hpc_virtiofs::guest_steps(node)
        .into_iter()
        .fold(plan, |p, (id, step)| p.step(id, step))
}

fn console_tail(cluster: &Cluster, node: &Node, lines: usize) -> String {
    let path = hpc_libvirt::console_log_path(&cluster.state_dir, node.name.as_str());
    match fs_err::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no console log: {e})"),
    }
}

/// What happened to each node during `up`, for the timing table and `--output json`: times
/// are seconds since `up` started (`*_at`) or durations.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct NodeTimes {
    /// When the node first answered over SSH.
    pub(crate) ssh_ready_at: Option<f64>,
    /// Waiting for its seed unit, after SSH answered.
    pub(crate) seed_wait: Option<f64>,
    /// Its base configuration (hostname, `/etc/hosts`, mounts) over SSH.
    pub(crate) base: Option<f64>,
    /// Its own SLURM phases (waits for other nodes not counted).
    pub(crate) slurm: Option<f64>,
    /// When its last step ended (before the cluster-wide checks).
    pub(crate) done_at: Option<f64>,
    /// The BeeGFS deployment (all phases, after SLURM), on BeeGFS nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) beegfs: Option<f64>,
    /// Steps the base configuration changed.
    #[serde(skip)]
    pub(crate) base_changed: usize,
}

/// Per node, in name order.
pub(crate) type Timings = BTreeMap<String, NodeTimes>;

/// Shared by the nodes' concurrent pipelines (one thread: the lock is never contended).
pub(crate) struct Progress {
    pub(crate) started: Instant,
    pub(crate) nodes: Mutex<Timings>,
    /// Warnings for the user (printed at the end by `up`).
    pub(crate) warnings: Mutex<Vec<String>>,
}

impl Progress {
    pub(crate) fn new(started: Instant) -> Self {
        Self {
            started,
            nodes: Mutex::new(Timings::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn warn(&self, warning: String) {
        if let Ok(mut w) = self.warnings.lock() {
            w.push(warning);
        }
    }

    pub(crate) fn update(&self, node: &str, f: impl FnOnce(&mut NodeTimes)) {
        if let Ok(mut m) = self.nodes.lock() {
            f(m.entry(node.to_owned()).or_default());
        }
    }

    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The per-node times and the warnings.
    pub(crate) fn finish(self) -> (Timings, Vec<String>) {
        (
            self.nodes.into_inner().unwrap_or_default(),
            self.warnings.into_inner().unwrap_or_default(),
        )
    }
}

/// Wait until `node` answers over SSH, until `deadline`; a node that does not is an error
/// showing the end of its console log.
async fn wait_for_ssh(
    cluster: &Cluster,
    exec: &SshExecutor,
    node: &Node,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), String> {
    let argv = vec!["true".to_owned()];
    loop {
        match exec.run(node.name.as_str(), &argv).await {
            Ok(out) if out.status == Some(0) => return Ok(()),
            // A changed host key will not change by waiting.
            Err(e @ HostError::HostKeyChanged { .. }) => return Err(e.to_string()),
            other => {
                if Instant::now() >= deadline {
                    let why = match other {
                        Ok(o) => format!("`true` exited with {:?}", o.status),
                        Err(e) => e.to_string(),
                    };
                    return Err(format!(
                        "({}) did not answer over SSH within {}s: {why}\n  console log, last lines:\n    {}",
                        node.ip,
                        timeout.as_secs(),
                        console_tail(cluster, node, 15).replace('\n', "\n    ")
                    ));
                }
                tokio::time::sleep(SSH_POLL).await;
            }
        }
    }
}

/// Waits until the node's seed unit (see `seed.rs`) has finished: sshd does not wait for it,
/// and the base configuration and the SLURM steps must not race it. `systemctl start` joins
/// the unit's running or queued start job and returns at once when it already ran. `None`
/// when it ran, or when the image has no such unit (then the deploy over SSH does all);
/// `Some(warning)` when it failed (the deploy over SSH then does what it did not).
async fn wait_for_seed(exec: &SshExecutor, node: &str) -> Option<String> {
    const SCRIPT: &str = "if systemctl is-failed --quiet hpc-up-seed.service; then \
        tail -n 5 /run/hpc-up/seed/*.log 2>/dev/null; exit 3; fi; \
        systemctl start hpc-up-seed.service 2>/dev/null; rc=$?; \
        if [ $rc = 5 ]; then exit 0; fi; exit $rc";
    let argv = ["sh", "-c", SCRIPT].map(str::to_owned);
    match exec.run(node, &argv).await {
        Ok(o) if o.status == Some(0) => None,
        Ok(o) => Some(format!(
            "node {node}: its seed did not apply (hpc-up-seed.service, exit {:?}; the deploy over SSH does the work instead; see /run/hpc-up/seed/ on the node){}",
            o.status,
            match String::from_utf8_lossy(&o.stdout).trim() {
                "" => String::new(),
                t => format!(":\n    {}", t.replace('\n', "\n    ")),
            }
        )),
        Err(e) => Some(format!("node {node}: cannot ask for its seed unit: {e}")),
    }
}

/// How often a node that does not answer yet is tried again.
const SSH_POLL: Duration = Duration::from_millis(500);

/// One node, as soon as it can: wait for SSH, then apply its base configuration. The hook
/// `hpc_slurm::deploy_with` calls before the node's SLURM steps.
pub(crate) async fn ready(
    cluster: &Cluster,
    exec: &SshExecutor,
    progress: &Progress,
    deadline: Instant,
    timeout: Duration,
    name: String,
) -> Result<(), String> {
    let node = cluster
        .node(&name)
        .ok_or_else(|| format!("no node {name} in the cluster"))?;
    wait_for_ssh(cluster, exec, node, deadline, timeout).await?;
    let at = progress.now();
    progress.update(&name, |t| t.ssh_ready_at = Some(at));
    let started = Instant::now();
    if let Some(warning) = wait_for_seed(exec, &name).await {
        progress.warn(warning);
    }
    let seed = started.elapsed().as_secs_f64();
    progress.update(&name, |t| t.seed_wait = Some(seed));
    let started = Instant::now();
    let plan = base_plan(cluster, node);
    let summary = hpc_remote::apply_all(exec, std::slice::from_ref(&plan), Mode::APPLY).await;
    let secs = started.elapsed().as_secs_f64();
    let at = progress.now();
    progress.update(&name, |t| {
        t.base = Some(secs);
        t.done_at = Some(at);
        t.base_changed = summary.changed();
    });
    if summary.is_success() {
        Ok(())
    } else {
        Err(format!("base configuration failed:\n{summary}"))
    }
}

/// [`ready`] on every node at once (a cluster without SLURM).
pub(crate) async fn ready_all(
    cluster: &Cluster,
    exec: &SshExecutor,
    progress: &Progress,
    deadline: Instant,
    timeout: Duration,
) -> Result<()> {
    let all = cluster.nodes.iter().map(|n| async move {
        let r = ready(
            cluster,
            exec,
            progress,
            deadline,
            timeout,
            n.name.to_string(),
        )
        .await;
        (n, r)
    });
    let failures: Vec<String> = futures_util::future::join_all(all)
        .await
        .into_iter()
        .filter_map(|(n, r)| r.err().map(|e| format!("node {}: {e}", n.name)))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(miette!("{}", failures.join("\n")))
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s"))
}

/// The node × phase table: when each node answered SSH and was done (seconds since `up`
/// started), and how long it then waited for its seed unit and its own base and SLURM steps
/// took.
pub(crate) fn timing_table(timings: &Timings) -> String {
    let beegfs = timings.values().any(|t| t.beegfs.is_some());
    let mut s = format!(
        "{:<14} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "node", "ssh ready", "seed", "base", "slurm", "done"
    );
    if beegfs {
        s.push_str(&format!(" {:>8}", "beegfs"));
    }
    s.push('\n');
    for (node, t) in timings {
        s.push_str(&format!(
            "{node:<14} {:>10} {:>8} {:>8} {:>8} {:>8}",
            cell(t.ssh_ready_at),
            cell(t.seed_wait),
            cell(t.base),
            cell(t.slurm),
            cell(t.done_at)
        ));
        if beegfs {
            s.push_str(&format!(" {:>8}", cell(t.beegfs)));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_table_has_a_row_per_node() {
        let mut t = Timings::new();
        t.insert(
            "ctl".into(),
            NodeTimes {
                ssh_ready_at: Some(42.5),
                seed_wait: Some(1.5),
                base: Some(0.4),
                slurm: Some(3.3),
                done_at: Some(47.0),
                beegfs: None,
                base_changed: 3,
            },
        );
        t.insert("cn1".into(), NodeTimes::default());
        let s = timing_table(&t);
        assert_eq!(
            s,
            "node            ssh ready     seed     base    slurm     done\n\
             cn1                     -        -        -        -        -\n\
             ctl                 42.5s     1.5s     0.4s     3.3s    47.0s\n"
        );
    }
}
