//! `down`, `status`, `start`, `stop`: the libvirt lifecycle, per connection.

use std::time::Duration;

use hpc_libvirt::kind_name;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::session::{Connector, Session, is_local};

/// A libvirt object, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// Its connection.
    pub uri: String,
    /// `network`, `storage pool`, `volume`, `domain`.
    pub kind: String,
    /// Its libvirt name.
    pub name: String,
}

/// What `down` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownReport {
    /// The cluster.
    pub cluster: String,
    /// The objects, in removal order.
    pub removed: Vec<ObjectRef>,
    /// Host steps on the hypervisor hosts (their bridge and VXLAN device removed).
    pub host_changes: usize,
}

/// One node of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// Its domain.
    pub domain: String,
    /// `running`, `shutoff`, …; `None` when not defined.
    pub state: Option<String>,
    /// Its address.
    pub ip: Option<String>,
    /// Its MAC address.
    pub mac: Option<String>,
    /// vCPUs.
    pub vcpus: Option<u32>,
    /// Memory in KiB.
    pub memory_kib: Option<u64>,
}

/// What `stop` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StopReport {
    /// Domains that shut down within the timeout.
    pub shut_down: Vec<String>,
    /// Domains powered off after it.
    pub powered_off: Vec<String>,
}

fn libvirt_err(
    action: &'static str,
    uri: &str,
) -> impl FnOnce(hpc_libvirt::LifecycleError) -> Error {
    let uri = uri.to_owned();
    move |source| Error::Libvirt {
        action,
        uri,
        source,
    }
}

impl Session {
    /// Destroy and remove everything the cluster owns, found from the journal and from
    /// libvirt metadata (so it also works after a crash), then the host-side leftovers.
    pub fn down<C: Connector>(&self, connector: &C) -> Result<DownReport> {
        let name = self.cluster.name.as_str();
        let _lock = self.state.lock(name)?;
        let mut journal = self.state.journal(name)?;
        let mut uris = self.uris();
        // The journal may name connections the file no longer does.
        for e in journal.entries() {
            if !uris.contains(&e.uri) {
                uris.push(e.uri.clone());
            }
        }
        let mut removed = Vec::new();
        for uri in &uris {
            let hv = connector.connect(uri)?;
            let report =
                hpc_libvirt::down(name, &hv, &mut journal).map_err(libvirt_err("down", uri))?;
            removed.extend(report.removed.into_iter().map(|r| ObjectRef {
                uri: uri.clone(),
                kind: kind_name(&r.kind).to_owned(),
                name: r.name,
            }));
        }
        // The bridges and VXLAN devices hpc-up made on the hypervisor hosts, once no
        // libvirt network uses them.
        let mut host_changes = 0;
        if let Some(fabric) = crate::fabric::fabric(&self.cluster) {
            let hosts = self.host_executors()?;
            let names: Vec<&str> = fabric.hosts.iter().map(|h| h.name.as_str()).collect();
            host_changes = crate::session::runtime()?
                .block_on(crate::fabric::down(&hosts, &fabric, &names))?;
        }
        if uris.iter().any(|u| is_local(u)) {
            self.state.remove_local_leftovers(name)?;
        }
        Ok(DownReport {
            cluster: name.to_owned(),
            removed,
            host_changes,
        })
    }

    /// Per node: state, IP, MAC, vCPUs, memory.
    pub fn status<C: Connector>(&self, connector: &C) -> Result<Vec<NodeStatus>> {
        let mut rows = Vec::new();
        for uri in self.uris() {
            let hv = connector.connect(&uri)?;
            let st =
                hpc_libvirt::status(&self.libvirt, &hv).map_err(libvirt_err("status", &uri))?;
            rows.extend(st.into_iter().map(|s| NodeStatus {
                node: s.node,
                domain: s.domain,
                state: s.state.map(|st| format!("{st:?}").to_lowercase()),
                ip: s.ip,
                mac: s.mac,
                vcpus: s.vcpus,
                memory_kib: s.memory_kib,
            }));
        }
        Ok(rows)
    }

    /// Start the cluster's VMs (and its networks and pools). Returns the domains started.
    pub fn start<C: Connector>(&self, connector: &C) -> Result<Vec<String>> {
        let mut started = Vec::new();
        for uri in self.uris() {
            let hv = connector.connect(&uri)?;
            started.extend(
                hpc_libvirt::start(&self.libvirt, &hv).map_err(libvirt_err("start", &uri))?,
            );
        }
        Ok(started)
    }

    /// Shut the VMs down; power off those still running after `timeout`.
    pub fn stop<C: Connector>(&self, connector: &C, timeout: Duration) -> Result<StopReport> {
        let mut out = StopReport::default();
        for uri in self.uris() {
            let hv = connector.connect(&uri)?;
            let r = hpc_libvirt::stop(&self.libvirt, &hv, timeout)
                .map_err(libvirt_err("stop", &uri))?;
            out.shut_down.extend(r.shut_down);
            out.powered_off.extend(r.destroyed);
        }
        Ok(out)
    }
}
