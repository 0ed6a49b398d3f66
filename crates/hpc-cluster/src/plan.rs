//! One plan across every layer: what `up` would change in libvirt and on every node.
//!
//! Per connection, the libvirt objects to create, update, recreate or delete (unchanged ones
//! too). Per node: when its domain runs and hpc-up has talked to it before (its key pair
//! and a pinned host key exist), every host step of every layer — base configuration,
//! SLURM, BeeGFS — is checked there in check mode, and the steps that would change come
//! with a unified diff (never of secrets). A node that does not run yet is listed with what
//! `up` will do to it ("known after apply"). Planning creates nothing: no secrets (stand-ins
//! are used and never written), no keys, no pinned host keys, no VMs.

use hpc_libvirt::{Action, DomainState, kind_name};
use hpc_remote::{Executor, HostPlan, Mode, StepStatus};
use serde::Serialize;

use crate::beegfs::InputUse;
use crate::error::Result;
use crate::nodes::{Pinning, base_plan};
use crate::session::{Connector, Session, runtime};
use crate::slurm::SecretUse;

/// What would happen to one libvirt object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectChange {
    /// Its connection.
    pub uri: String,
    /// `network`, `storage pool`, `volume`, `domain`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// `create`, `unchanged`, `update`, `recreate`, `delete`.
    pub action: &'static str,
}

/// Where a node stands for the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum NodeState {
    /// It runs and answered: its steps were checked there.
    Checked,
    /// It does not run yet (or hpc-up never reached it): its steps are known after apply.
    KnownAfterApply {
        /// Why it was not checked.
        reason: String,
    },
    /// It runs but could not be checked.
    Unreachable {
        /// Why.
        error: String,
    },
}

/// One host step of a node's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepChange {
    /// `node`, `slurm`, `beegfs`.
    pub layer: &'static str,
    /// The layer's phase (`base`, `munge`, `slurmctld`, `servers`, …).
    pub phase: &'static str,
    /// The step's id.
    pub step: String,
    /// `file`, `directory`, `command`, `service`, `mount`.
    pub kind: &'static str,
    /// `change` (would change), `failed` (the check itself failed there).
    pub action: &'static str,
    /// A unified diff of a file that would change (never of a secret).
    pub diff: Option<String>,
}

/// The plan of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    /// The node.
    pub node: String,
    /// Checked, known after apply, or unreachable.
    #[serde(flatten)]
    pub state: NodeState,
    /// Checked nodes: the steps that would change. Nodes known after apply: how many steps
    /// each phase has (every one runs).
    pub changes: Vec<StepChange>,
    /// Nodes known after apply: `(layer, phase, steps)`.
    pub pending: Vec<(String, String, usize)>,
}

/// A step `up` would take on a hypervisor host (its bridge or VXLAN device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostChange {
    /// The host of `hosts:`.
    pub host: String,
    /// The step (`bridge-create`, `vxlan-create`, `flood-add-<peer>`, …).
    pub step: String,
}

/// The plan of the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterPlan {
    /// The cluster.
    pub cluster: String,
    /// libvirt changes, plus unchanged objects.
    pub libvirt: Vec<ObjectChange>,
    /// Per node, in cluster order.
    pub nodes: Vec<NodePlan>,
    /// Steps on the hypervisor hosts (the cluster network across them), in host order.
    pub hosts: Vec<HostChange>,
    /// Things to know (read-only shares, secrets not made yet).
    pub notes: Vec<String>,
}

impl ClusterPlan {
    /// libvirt objects that would change.
    pub fn libvirt_changes(&self) -> usize {
        self.libvirt
            .iter()
            .filter(|c| c.action != "unchanged")
            .count()
    }

    /// Host steps that would change on running nodes.
    pub fn node_changes(&self) -> usize {
        self.nodes.iter().map(|n| n.changes.len()).sum()
    }

    /// Whether `up` has anything to do (nodes that are not there yet count).
    pub fn is_empty(&self) -> bool {
        self.libvirt_changes() == 0
            && self.hosts.is_empty()
            && self.node_changes() == 0
            && self
                .nodes
                .iter()
                .all(|n| matches!(n.state, NodeState::Checked))
    }
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Unchanged => "unchanged",
        Action::Update => "update",
        Action::Recreate => "recreate",
        Action::Delete => "delete",
    }
}

/// A node's host plans as `(layer, phase, plan)`.
type LayerPlans = Vec<(&'static str, &'static str, HostPlan)>;

/// Every host plan of `node`, as `(layer, phase, plan)`, in the order `up` applies them.
fn node_plans(
    s: &Session,
    node: &hpc_config::Node,
    slurm: Option<&hpc_slurm::DeployPlan>,
    beegfs: Option<&hpc_beegfs::SetupPlan>,
) -> Vec<(&'static str, &'static str, HostPlan)> {
    let name = node.name.as_str();
    let mut out = vec![("node", "base", base_plan(&s.cluster, node))];
    if let Some(p) = slurm {
        for phase in &p.phases {
            for h in phase.hosts.iter().filter(|h| h.host == name) {
                out.push(("slurm", phase.name, h.clone()));
            }
        }
    }
    if let Some(p) = beegfs {
        for (phase, h) in p.node_steps(name) {
            out.push(("beegfs", phase, h.clone()));
        }
    }
    for (layer, phases) in crate::stack::layers(&s.cluster) {
        for phase in phases {
            for h in phase.hosts.into_iter().filter(|h| h.host == name) {
                out.push((layer.name(), phase.name, h));
            }
        }
    }
    out
}

impl Session {
    /// The plan, with the session's own SSH access to running nodes (the existing key and
    /// pinned host keys only: a node never reached before is known after apply).
    pub fn plan<C: Connector>(&self, connector: &C) -> Result<ClusterPlan> {
        let exec = match self.state.existing_identity(&self.cluster) {
            Some(id) if self.state.known_hosts().is_file() => {
                Some(self.executor_for(&id, None, Pinning::PinnedOnly)?)
            }
            _ => None,
        };
        let plan = self.plan_with(connector, exec.as_ref());
        if let Some(exec) = exec {
            runtime()?.block_on(exec.close());
        }
        plan
    }

    /// [`Session::plan`] with any executor for the running nodes (`None`: every node is
    /// known after apply).
    pub fn plan_with<C: Connector, E: Executor>(
        &self,
        connector: &C,
        exec: Option<&E>,
    ) -> Result<ClusterPlan> {
        let mut libvirt = Vec::new();
        let mut running = Vec::new();
        for uri in self.uris() {
            let hv = connector.connect(&uri)?;
            let diff =
                hpc_libvirt::diff(&self.libvirt, &hv).map_err(|source| crate::Error::Libvirt {
                    action: "plan",
                    uri: uri.clone(),
                    source,
                })?;
            libvirt.extend(diff.into_iter().map(|c| ObjectChange {
                uri: uri.clone(),
                kind: kind_name(&c.kind).to_owned(),
                name: c.name,
                action: action_word(c.action),
            }));
            let status = hpc_libvirt::status(&self.libvirt, &hv).map_err(|source| {
                crate::Error::Libvirt {
                    action: "plan",
                    uri: uri.clone(),
                    source,
                }
            })?;
            running.extend(
                status
                    .into_iter()
                    .filter(|st| st.state == Some(DomainState::Running))
                    .map(|st| st.node),
            );
        }
        let hosts = match crate::fabric::fabric(&self.cluster) {
            Some(f) => {
                let x = self.host_executors()?;
                runtime()?
                    .block_on(crate::fabric::pending(&x, &f))?
                    .into_iter()
                    .map(|(host, step)| HostChange { host, step })
                    .collect()
            }
            None => Vec::new(),
        };
        let mut notes = Vec::new();
        let mut ro: Vec<&str> = self
            .cluster
            .nodes
            .iter()
            .flat_map(|n| {
                n.virtiofs
                    .iter()
                    .filter(|m| m.readonly)
                    .map(|m| m.tag.as_str())
            })
            .collect();
        ro.sort_unstable();
        ro.dedup();
        if !ro.is_empty() {
            notes.push(format!(
                "read-only share(s) {} are enforced by the guests' `ro` mounts (libvirt 9 has no read-only virtio-fs)",
                ro.join(", ")
            ));
        }
        let slurm = self.slurm_plan(SecretUse::Plan)?;
        let beegfs = self.beegfs_plan(InputUse::Deploy(SecretUse::Plan))?;
        let per_node: Vec<(&hpc_config::Node, LayerPlans)> = self
            .cluster
            .nodes
            .iter()
            .map(|n| (n, node_plans(self, n, slurm.as_ref(), beegfs.as_ref())))
            .collect();
        let check = |node: &hpc_config::Node| -> Option<String> {
            if exec.is_none() {
                return Some("not reached before (no key pair or pinned host keys yet)".into());
            }
            (!running.iter().any(|r| r == node.name.as_str()))
                .then(|| "its VM does not run yet".to_owned())
        };
        let nodes = match exec {
            Some(exec) => runtime()?.block_on(futures_util::future::join_all(per_node.iter().map(
                |(n, plans)| async move {
                    match check(n) {
                        Some(reason) => pending(n, plans, reason),
                        None => check_node(exec, n, plans).await,
                    }
                },
            ))),
            None => per_node
                .iter()
                .map(|(n, plans)| pending(n, plans, check(n).unwrap_or_default()))
                .collect(),
        };
        Ok(ClusterPlan {
            cluster: self.cluster.name.to_string(),
            libvirt,
            nodes,
            hosts,
            notes,
        })
    }
}

fn pending(
    node: &hpc_config::Node,
    plans: &[(&'static str, &'static str, HostPlan)],
    reason: String,
) -> NodePlan {
    NodePlan {
        node: node.name.to_string(),
        state: NodeState::KnownAfterApply { reason },
        changes: Vec::new(),
        pending: plans
            .iter()
            .map(|(layer, phase, p)| ((*layer).to_owned(), (*phase).to_owned(), p.steps.len()))
            .collect(),
    }
}

/// Check every plan of one node, in order; stop at the first that cannot be checked.
async fn check_node<E: Executor>(
    exec: &E,
    node: &hpc_config::Node,
    plans: &[(&'static str, &'static str, HostPlan)],
) -> NodePlan {
    let mut changes = Vec::new();
    for (layer, phase, plan) in plans {
        let report = match exec.apply_host(plan, Mode::CHECK_DIFF).await {
            Ok(r) => r,
            Err(e) => {
                return NodePlan {
                    node: node.name.to_string(),
                    state: NodeState::Unreachable {
                        error: e.to_string(),
                    },
                    changes,
                    pending: Vec::new(),
                };
            }
        };
        for s in report.steps {
            let action = match s.status {
                StepStatus::Changed => "change",
                StepStatus::Failed { .. } => "failed",
                _ => continue,
            };
            changes.push(StepChange {
                layer,
                phase,
                step: s.id,
                kind: s.kind,
                action,
                diff: s.diff,
            });
        }
    }
    NodePlan {
        node: node.name.to_string(),
        state: NodeState::Checked,
        changes,
        pending: Vec::new(),
    }
}
