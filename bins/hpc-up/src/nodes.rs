//! After the VMs start: wait for SSH on every node at once, pin host keys, set hostname and
//! `/etc/hosts`. Composition of `hpc-remote` with the cluster; the steps are plain data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hpc_config::{Cluster, Node};
use hpc_remote::{
    EnsureFile, Executor, HostError, HostPlan, Mode, RunCommand, SshExecutor, SshHost, SshOptions,
};
use miette::{IntoDiagnostic, Result, miette};

use crate::image::cluster_key;

/// Seconds each phase took, per node (for the timing table).
pub(crate) type Timings = BTreeMap<String, Vec<(&'static str, f64)>>;

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

/// Wait until every node answers over SSH (all at once), within `timeout`. A node that does
/// not is an error showing the end of its console log.
pub(crate) async fn wait_for_ssh(
    cluster: &Cluster,
    exec: &SshExecutor,
    timeout: Duration,
    timings: &mut Timings,
) -> Result<()> {
    let start = Instant::now();
    let deadline = start + timeout;
    let waits = cluster.nodes.iter().map(|n| async move {
        let argv = vec!["true".to_owned()];
        loop {
            match exec.run(n.name.as_str(), &argv).await {
                Ok(out) if out.status == Some(0) => {
                    return (n, Ok(start.elapsed().as_secs_f64()));
                }
                // A changed host key will not change by waiting.
                Err(e @ HostError::HostKeyChanged { .. }) => return (n, Err(e.to_string())),
                other => {
                    if Instant::now() >= deadline {
                        let why = match other {
                            Ok(o) => format!("`true` exited with {:?}", o.status),
                            Err(e) => e.to_string(),
                        };
                        return (n, Err(why));
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    let results = futures_util::future::join_all(waits).await;
    let mut failures = Vec::new();
    for (n, r) in results {
        match r {
            Ok(secs) => timings
                .entry(n.name.to_string())
                .or_default()
                .push(("ssh ready", secs)),
            Err(why) => failures.push(format!(
                "node {} ({}) did not answer over SSH within {}s: {why}\n  console log, last lines:\n    {}",
                n.name,
                n.ip,
                timeout.as_secs(),
                console_tail(cluster, n, 15).replace('\n', "\n    ")
            )),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(miette!("{}", failures.join("\n")))
    }
}

/// Apply the base configuration on every node; returns the number of changed steps.
pub(crate) async fn configure(
    cluster: &Cluster,
    exec: &SshExecutor,
    timings: &mut Timings,
) -> Result<usize> {
    let plans: Vec<HostPlan> = cluster
        .nodes
        .iter()
        .map(|n| base_plan(cluster, n))
        .collect();
    let started = Instant::now();
    let summary = hpc_remote::apply_all(exec, &plans, Mode::APPLY).await;
    let secs = started.elapsed().as_secs_f64();
    for n in &cluster.nodes {
        timings
            .entry(n.name.to_string())
            .or_default()
            .push(("configure", secs));
    }
    if !summary.is_success() {
        return Err(miette!("configuring the nodes failed:\n{summary}"));
    }
    Ok(summary.changed())
}

/// The phase × node table.
pub(crate) fn timing_table(timings: &Timings) -> String {
    let mut phases: Vec<&'static str> = Vec::new();
    for row in timings.values() {
        for (p, _) in row {
            if !phases.contains(p) {
                phases.push(p);
            }
        }
    }
    let mut s = format!("{:<14}", "node");
    for p in &phases {
        s.push_str(&format!(" {p:>12}"));
    }
    s.push('\n');
    for (node, row) in timings {
        s.push_str(&format!("{node:<14}"));
        for p in &phases {
            match row.iter().find(|(q, _)| q == p) {
                Some((_, secs)) => s.push_str(&format!(" {:>11.1}s", secs)),
                None => s.push_str(&format!(" {:>12}", "-")),
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_table_has_a_column_per_phase() {
        let mut t = Timings::new();
        t.entry("ctl".into()).or_default().push(("libvirt", 1.0));
        t.entry("ctl".into()).or_default().push(("ssh ready", 42.5));
        t.entry("cn1".into()).or_default().push(("libvirt", 1.0));
        let s = timing_table(&t);
        assert_eq!(
            s,
            "node                libvirt    ssh ready\ncn1                    1.0s            -\nctl                    1.0s        42.5s\n"
        );
    }
}
