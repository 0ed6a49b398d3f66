//! The cluster network across hypervisor hosts: with nodes on two or more hosts of `hosts:`,
//! every host gets the cluster's bridge and a VXLAN device joining it to the others
//! (`hpc_fabric`), applied over each host's own executor ([`HostExecutors`]: this machine
//! directly, a remote host through OpenSSH, the way libvirt's `qemu+ssh` reaches it).
//!
//! The *primary* host is the controller's: it must be this machine (hpc-config refuses
//! otherwise), its libvirt NAT network makes the bridge and runs the cluster's one DHCP and
//! DNS server, and hpc-up reaches every node through that bridge. Every other host's bridge
//! is made here, before its libvirt network (bridge mode) and domains need it; the primary's
//! VXLAN device is added once libvirt has made its bridge.

use std::collections::BTreeSet;
use std::time::Instant;

use hpc_config::Cluster;
use hpc_fabric::{Fabric, FabricHost, HostState};
use hpc_remote::{
    CommandOutput, Executor, HostError, HostPlan, HostReport, LocalExecutor, Mode, NoObserver,
    OpenSshExecutor, OpenSshTarget, Phase,
};

use crate::error::{Error, Result};

/// The fabric of `cluster`: `None` unless its nodes sit on two or more hosts.
pub(crate) fn fabric(cluster: &Cluster) -> Option<Fabric> {
    let used: BTreeSet<&str> = cluster
        .nodes
        .iter()
        .filter_map(|n| n.host.as_ref().map(|h| h.as_str()))
        .collect();
    if used.len() < 2 {
        return None;
    }
    let primary = primary_host(cluster)?;
    let hosts: Vec<FabricHost> = cluster
        .hosts
        .iter()
        .filter(|h| used.contains(h.name.as_str()))
        .filter_map(|h| {
            // hpc-config requires an address of every host when there are two or more.
            let host = FabricHost::new(h.name.as_str(), h.address?);
            Some(if h.name.as_str() == primary {
                host.libvirt_bridge()
            } else {
                host
            })
        })
        .collect();
    Some(Fabric::new(
        cluster.name.as_str(),
        cluster.network.bridge.as_str(),
        hosts,
    ))
}

/// The controller's host: where libvirt's NAT network (DHCP, DNS) runs.
pub(crate) fn primary_host(cluster: &Cluster) -> Option<&str> {
    cluster
        .controllers()
        .next()
        .and_then(|n| n.host.as_ref())
        .map(|h| h.as_str())
}

fn fabric_err(step: &'static str) -> impl FnOnce(hpc_fabric::FabricError) -> Error {
    move |e| Error::Fabric {
        step,
        message: e.to_string(),
    }
}

/// The hypervisor hosts' executor: the host that is this machine (a local URI) directly, every
/// other one with the OpenSSH client and the target its `qemu+ssh://` URI names (user, host,
/// port, `keyfile`), the way libvirt reaches it.
#[derive(Debug)]
pub(crate) struct HostExecutors {
    here: Option<String>,
    local: LocalExecutor,
    remote: OpenSshExecutor,
}

impl HostExecutors {
    pub(crate) fn new(cluster: &Cluster) -> Result<Self> {
        let mut here = None;
        let mut remote = Vec::new();
        for h in &cluster.hosts {
            if h.uri.remote_host().is_none() {
                here = Some(h.name.as_str().to_owned());
                continue;
            }
            let target =
                OpenSshTarget::from_libvirt_uri(h.uri.as_str()).map_err(|e| Error::Fabric {
                    step: "reaching the hosts",
                    message: format!("host {}: {e}", h.name),
                })?;
            remote.push((h.name.as_str().to_owned(), target));
        }
        Ok(Self {
            here,
            local: LocalExecutor::new(),
            remote: OpenSshExecutor::new(remote),
        })
    }

    fn is_here(&self, host: &str) -> bool {
        self.here.as_deref() == Some(host)
    }
}

impl Executor for HostExecutors {
    async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        if self.is_here(&plan.host) {
            self.local.apply_host(plan, mode).await
        } else {
            self.remote.apply_host(plan, mode).await
        }
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        if self.is_here(host) {
            self.local.run(host, argv).await
        } else {
            self.remote.run(host, argv).await
        }
    }
}

/// The virtio-fs host directories of the nodes on other hosts, checked (or, with
/// `create: true`, made) on those hosts before anything else is: `(uri, problems)` per host
/// that has any. libvirt offers no way to look at a remote host's files.
pub(crate) async fn remote_share_dirs(
    cluster: &Cluster,
    exec: &HostExecutors,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for host in &cluster.hosts {
        if host.uri.remote_host().is_none() {
            continue;
        }
        let mut dirs: Vec<(&std::path::Path, bool)> = Vec::new();
        for n in cluster.nodes_on(host.name.as_str()) {
            for m in &n.virtiofs {
                if !dirs.iter().any(|(p, _)| *p == m.host_path.as_path()) {
                    dirs.push((m.host_path.as_path(), m.create));
                }
            }
        }
        let mut problems = Vec::new();
        for (dir, create) in dirs {
            let path = dir.to_string_lossy().into_owned();
            let argv: Vec<String> = if create {
                vec![
                    "mkdir".into(),
                    "-p".into(),
                    "-m".into(),
                    "0755".into(),
                    path.clone(),
                ]
            } else {
                vec!["test".into(), "-d".into(), path.clone()]
            };
            let o = exec
                .run(host.name.as_str(), &argv)
                .await
                .map_err(|e| Error::Fabric {
                    step: "checking the shared directories on the hosts",
                    message: e.to_string(),
                })?;
            if o.status != Some(0) {
                problems.push(if create {
                    format!(
                        "virtio-fs directory {path} cannot be made on host {}: {}",
                        host.name,
                        String::from_utf8_lossy(&o.stderr).trim()
                    )
                } else {
                    format!(
                        "virtio-fs directory {path} does not exist on host {} (the nodes there share that host's directory; make it, or set `create: true`)",
                        host.name
                    )
                });
            }
        }
        if !problems.is_empty() {
            out.push((host.uri.as_str().to_owned(), problems));
        }
    }
    Ok(out)
}

/// What one host looked like before `up` touched it.
#[derive(Debug)]
pub(crate) struct Observed {
    pub host: String,
    pub state: HostState,
}

impl Observed {
    /// Neither the bridge nor the VXLAN device existed: everything there is this run's.
    fn fresh(&self) -> bool {
        self.state.bridge.is_none() && self.state.vxlan.is_none()
    }
}

/// Applies the fabric on `hosts` (names of the fabric's hosts). Returns what each host
/// looked like before (for [`unwind`]) and the number of steps changed.
pub(crate) async fn up<E: Executor>(
    exec: &E,
    fabric: &Fabric,
    hosts: &[&str],
) -> Result<(Vec<Observed>, usize)> {
    let mut observed = Vec::with_capacity(hosts.len());
    let mut plans = Vec::with_capacity(hosts.len());
    for host in hosts {
        let state = hpc_fabric::observe(exec, fabric, host)
            .await
            .map_err(fabric_err("reading the hosts' network devices"))?;
        plans.push(
            hpc_fabric::up_plan(fabric, host, &state)
                .map_err(fabric_err("planning the cluster's bridge"))?,
        );
        observed.push(Observed {
            host: (*host).to_owned(),
            state,
        });
    }
    let phase = Phase::new(hpc_fabric::UP_PHASE, plans);
    match hpc_remote::run_phase(exec, &phase, Instant::now(), &NoObserver).await {
        Ok(reports) => {
            let changed = reports.iter().map(hpc_remote::PhaseReport::changed).sum();
            Ok((observed, changed))
        }
        Err(failure) => {
            // What this call made on hosts that had nothing goes again.
            let _ = unwind(exec, fabric, &observed).await;
            Err(Error::Fabric {
                step: "making the cluster's bridge and VXLAN device",
                message: failure.to_string(),
            })
        }
    }
}

/// What `up` would do on the hosts, as `(host, step)`: nothing is changed. The primary's
/// VXLAN device is only planned once libvirt's bridge exists (before that, `up` makes the
/// network first: the whole device is to be made).
pub(crate) async fn pending<E: Executor>(
    exec: &E,
    fabric: &Fabric,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for host in &fabric.hosts {
        let name = host.name.as_str();
        let state = hpc_fabric::observe(exec, fabric, name)
            .await
            .map_err(fabric_err("reading the hosts' network devices"))?;
        match hpc_fabric::up_plan(fabric, name, &state) {
            Ok(plan) => out.extend(
                plan.steps
                    .into_iter()
                    .map(|step| (name.to_owned(), step.id)),
            ),
            Err(hpc_fabric::FabricError::BridgeMissing { .. }) if host.bridge_by_libvirt => {
                out.push((
                    name.to_owned(),
                    "vxlan (on the bridge of the network libvirt makes)".to_owned(),
                ));
            }
            Err(e) => return Err(fabric_err("planning the cluster's bridge")(e)),
        }
    }
    Ok(out)
}

/// Removes the fabric from the hosts that had none of it before this run.
pub(crate) async fn unwind<E: Executor>(
    exec: &E,
    fabric: &Fabric,
    observed: &[Observed],
) -> Result<()> {
    let fresh: Vec<&str> = observed
        .iter()
        .filter(|o| o.fresh())
        .map(|o| o.host.as_str())
        .collect();
    down(exec, fabric, &fresh).await.map(drop)
}

/// Removes hpc-up's bridge and VXLAN device from `hosts`; devices that are not this
/// cluster's are left alone. Returns the steps changed.
pub(crate) async fn down<E: Executor>(exec: &E, fabric: &Fabric, hosts: &[&str]) -> Result<usize> {
    let mut plans = Vec::with_capacity(hosts.len());
    for host in hosts {
        let state = hpc_fabric::observe(exec, fabric, host)
            .await
            .map_err(fabric_err("reading the hosts' network devices"))?;
        plans.push(
            hpc_fabric::down_plan(fabric, host, &state)
                .map_err(fabric_err("planning the bridge's removal"))?,
        );
    }
    let phase = Phase::new(hpc_fabric::DOWN_PHASE, plans);
    let reports = hpc_remote::run_phase(exec, &phase, Instant::now(), &NoObserver)
        .await
        .map_err(|failure| Error::Fabric {
            step: "removing the cluster's bridge and VXLAN device",
            message: failure.to_string(),
        })?;
    Ok(reports.iter().map(hpc_remote::PhaseReport::changed).sum())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests panic on failure

    use super::*;

    fn cluster(hosts: &str, compute_host: &str) -> Cluster {
        let text = format!(
            "name: t\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage: {{base: /var/tmp/base.qcow2}}\nstate-dir: /var/tmp/t\n{hosts}controller: {{host: hv1, nodes: [{{name: ctl}}]}}\ncompute:\n  - name: cn{{index}}\n    count: 2\n    host: {compute_host}\n"
        );
        hpc_config::load_str("t.yaml", &text, &|_| None).unwrap()
    }

    const TWO: &str = "hosts:\n  - {name: hv1, uri: \"qemu:///system\", address: 192.168.50.1}\n  - {name: hv2, uri: \"qemu+ssh://root@192.168.50.2/system\", address: 192.168.50.2}\n  - {name: hv3, uri: \"qemu+ssh://root@192.168.50.3/system\", address: 192.168.50.3}\n";

    #[test]
    fn nodes_on_two_hosts_join_those_two() {
        let f = fabric(&cluster(TWO, "hv2")).unwrap();
        assert_eq!(f.bridge, "br-t");
        assert_eq!(f.cluster, "t");
        let hosts: Vec<(&str, bool)> = f
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.bridge_by_libvirt))
            .collect();
        // hv3 has no node: it is left out; the controller's host has libvirt's bridge
        assert_eq!(hosts, [("hv1", true), ("hv2", false)]);
        f.validate().unwrap();
    }

    #[test]
    fn nodes_on_one_host_need_no_fabric() {
        assert!(fabric(&cluster(TWO, "hv1")).is_none());
        let single = "hosts:\n  - {name: hv1, uri: \"qemu:///system\"}\n";
        assert!(fabric(&cluster(single, "hv1")).is_none());
    }
}
