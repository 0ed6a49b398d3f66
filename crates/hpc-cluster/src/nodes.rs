//! The node layer: the SSH executor for the cluster's nodes, each node's base configuration
//! (hostname, `/etc/hosts`, virtio-fs mounts), and the per-node hook `up` runs as soon as
//! the VMs start: wait for SSH, wait for the node's seed unit, apply the base plan.

use std::time::{Duration, Instant};

use hpc_config::{Cluster, Node};
use hpc_remote::{
    EnsureFile, Executor, HostError, HostPlan, Mode, RunCommand, SshExecutor, SshHost, SshOptions,
    Wait, WaitError, wait_for,
};

use crate::error::{Error, Result};
use crate::event::{Layer, Recorder};
use crate::session::Session;
use crate::state::Identity;

/// How often a node that does not answer yet is tried again.
const SSH_POLL: Duration = Duration::from_millis(500);

/// The `/etc/hosts` every node gets: every node by full and short name.
pub fn etc_hosts(cluster: &Cluster) -> String {
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
pub fn base_plan(cluster: &Cluster, node: &Node) -> HostPlan {
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

/// How the session's own SSH executor treats host keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pinning {
    /// Record a node's key on first contact (`up`).
    TrustOnFirstUse,
    /// Only keys already pinned (`plan`, checks: they add nothing to the state).
    PinnedOnly,
}

impl Session {
    /// The SSH executor for the cluster's nodes: the cluster's key (made when missing), host
    /// keys pinned in `<state>/ssh/known_hosts` on first contact.
    pub fn ssh_executor(&self, parallel: Option<usize>) -> Result<SshExecutor> {
        let id = self.state.identity(&self.cluster)?;
        self.executor_for(&id, parallel, Pinning::TrustOnFirstUse)
    }

    pub(crate) fn executor_for(
        &self,
        id: &Identity,
        parallel: Option<usize>,
        pinning: Pinning,
    ) -> Result<SshExecutor> {
        let cluster = &self.cluster;
        let mut opts = SshOptions::new(&id.private, self.state.ssh_dir());
        if pinning == Pinning::PinnedOnly {
            opts.known_hosts = Some(self.state.known_hosts());
        }
        opts.user = cluster.ssh.user.clone();
        opts.parallel = parallel.unwrap_or(cluster.nodes.len()).clamp(1, 256);
        opts.connect_timeout = Duration::from_secs(10);
        // `up` polls each node itself; `plan` tries twice (a busy TCG guest may be slow to
        // finish a handshake) before calling a running node unreachable.
        opts.connect_attempts = match pinning {
            Pinning::TrustOnFirstUse => 1,
            Pinning::PinnedOnly => 2,
        };
        let hosts = cluster
            .nodes
            .iter()
            .map(|n| SshHost::new(n.name.as_str(), n.ip.to_string()).port(cluster.ssh.port));
        SshExecutor::new(opts, hosts).map_err(|e| Error::Ssh(e.to_string()))
    }
}

/// Wait until `node` answers over SSH, until `deadline`; a node that does not is an error
/// showing the end of its console log. A host key that is changed, revoked or unknown (with
/// pinned keys only) ends the wait at once: waiting does not change it.
async fn wait_for_ssh<E: Executor>(
    s: &Session,
    exec: &E,
    node: &Node,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), String> {
    let argv = vec!["true".to_owned()];
    let probe = || async {
        match exec.run(node.name.as_str(), &argv).await {
            Ok(out) if out.status == Some(0) => Ok(()),
            Ok(o) => Err(Wait::Retry(format!("`true` exited with {:?}", o.status))),
            Err(
                e @ (HostError::HostKeyChanged { .. }
                | HostError::HostKeyRevoked { .. }
                | HostError::UnknownHostKey { .. }
                | HostError::KnownHostsIo { .. }),
            ) => Err(Wait::Stop(e.to_string())),
            Err(e) => Err(Wait::Retry(e.to_string())),
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match wait_for(left, SSH_POLL, probe).await {
        Ok(()) => Ok(()),
        Err(WaitError::Stopped(e)) => Err(e),
        Err(e @ WaitError::TimedOut { .. }) => Err(format!(
            "({}) did not answer over SSH within {}s: {e}\n  console log, last lines:\n    {}",
            node.ip,
            timeout.as_secs(),
            s.state
                .console_tail(node.name.as_str(), 15)
                .replace('\n', "\n    ")
        )),
    }
}

/// Waits until the node's seed unit has finished: sshd does not wait for it, and the base
/// configuration and the SLURM steps must not race it. `systemctl start` joins the unit's
/// running or queued start job and returns at once when it already ran. `None` when it ran
/// or the image has no such unit; `Some(warning)` when it failed (the deploy over SSH then
/// does what it did not).
async fn wait_for_seed<E: Executor>(exec: &E, node: &str) -> Option<String> {
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

/// Bounds of the SSH wait, shared by every node of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SshWait {
    pub(crate) deadline: Instant,
    pub(crate) timeout: Duration,
}

/// One node, as soon as it can: wait for SSH, its seed unit, then its base configuration.
/// The hook `hpc_slurm::deploy_with` calls before the node's SLURM phases.
pub(crate) async fn ready<E: Executor>(
    s: &Session,
    exec: &E,
    rec: &Recorder<'_>,
    wait: SshWait,
    name: String,
) -> Result<(), String> {
    let node = s
        .cluster
        .node(&name)
        .ok_or_else(|| format!("no node {name} in the cluster"))?;
    let n = Some(name.as_str());
    let t = rec.phase_started(Layer::Node, "ssh wait", n);
    if let Err(e) = wait_for_ssh(s, exec, node, wait.deadline, wait.timeout).await {
        rec.phase_failed(Layer::Node, "ssh wait", n, &e);
        return Err(e);
    }
    rec.phase_finished(Layer::Node, "ssh wait", n, t.elapsed().as_secs_f64(), 0);
    let t = rec.phase_started(Layer::Node, "seed", n);
    if let Some(warning) = wait_for_seed(exec, &name).await {
        rec.warn(warning);
    }
    rec.phase_finished(Layer::Node, "seed", n, t.elapsed().as_secs_f64(), 0);
    let t = rec.phase_started(Layer::Node, "base", n);
    let plan = base_plan(&s.cluster, node);
    match exec.apply_host(&plan, Mode::APPLY).await {
        Ok(r) if r.is_ok() => {
            rec.phase_finished(
                Layer::Node,
                "base",
                n,
                t.elapsed().as_secs_f64(),
                r.changed(),
            );
            Ok(())
        }
        other => {
            let e = match other {
                Ok(r) => hpc_remote::Summary {
                    hosts: vec![(name.clone(), Ok(r))],
                }
                .to_string(),
                Err(e) => e.to_string(),
            };
            let e = format!("base configuration failed:\n{e}");
            rec.phase_failed(Layer::Node, "base", n, &e);
            Err(e)
        }
    }
}

/// [`ready`] on every node at once (a cluster without SLURM).
pub(crate) async fn ready_all<E: Executor>(
    s: &Session,
    exec: &E,
    rec: &Recorder<'_>,
    wait: SshWait,
) -> Result<()> {
    let all = s.cluster.nodes.iter().map(|n| async move {
        let r = ready(s, exec, rec, wait, n.name.to_string()).await;
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
        Err(Error::Nodes { failures })
    }
}
