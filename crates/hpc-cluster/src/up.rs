//! `up`: preflight, the seeds, libvirt (network → pool → volumes → domains → start), then
//! every node on its own as soon as it answers over SSH (base configuration, its SLURM
//! phases), the cluster-wide SLURM checks, BeeGFS.

use std::time::{Duration, Instant};

use hpc_libvirt::{LifecycleError, Outcome, kind_name};
use hpc_remote::Executor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::{Event, Layer, Recorder, Timings};
use crate::nodes::{SshWait, ready, ready_all};
use crate::session::{Connector, Session, is_local, runtime};
use crate::slurm::SecretUse;

/// How far `up` goes after the VMs start.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Stop once the VMs run: no SSH wait, no node setup.
    pub no_ssh: bool,
    /// How long to wait for SSH on every node.
    pub ssh_timeout: Duration,
    /// Nodes worked on at once over SSH (`None`: all of them).
    pub parallel: Option<usize>,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            no_ssh: false,
            ssh_timeout: Duration::from_secs(600),
            parallel: None,
        }
    }
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpReport {
    /// The cluster.
    pub cluster: String,
    /// Everything changed: libvirt objects created, updated or started, and host steps
    /// changed on the nodes (0 on an unchanged, running cluster).
    pub changes: usize,
    /// libvirt objects created.
    pub created: usize,
    /// libvirt objects redefined.
    pub updated: usize,
    /// libvirt objects started.
    pub started: usize,
    /// libvirt objects left as they were.
    pub unchanged: usize,
    /// Host steps changed on the nodes.
    pub node_changes: usize,
    /// Wall time.
    pub seconds: f64,
    /// Wall time of the libvirt layer.
    pub libvirt_seconds: f64,
    /// Warnings (preflight, seeds, BeeGFS).
    pub warnings: Vec<String>,
    /// Per node, its own times.
    pub nodes: Timings,
}

impl Session {
    /// Bring the cluster up with the session's own SSH executor (the cluster's key, host
    /// keys pinned on first contact). Blocks; runs its own async runtime for the SSH side,
    /// so call it outside one (or in `spawn_blocking`).
    pub fn up<C: Connector>(&self, connector: &C, opts: &UpOptions) -> Result<UpReport> {
        let exec = if opts.no_ssh {
            None
        } else {
            Some(self.ssh_executor(opts.parallel)?)
        };
        let report = self.up_with(connector, exec.as_ref(), opts);
        if let Some(exec) = exec {
            runtime()?.block_on(exec.close());
        }
        report
    }

    /// [`Session::up`] with any executor for the nodes (`None`: stop once the VMs run).
    pub fn up_with<C: Connector, E: Executor>(
        &self,
        connector: &C,
        exec: Option<&E>,
        opts: &UpOptions,
    ) -> Result<UpReport> {
        let name = self.cluster.name.as_str();
        let _lock = self.state.lock(name)?;
        let mut journal = self.state.journal(name)?;
        let started = Instant::now();
        let rec = Recorder::new(&*self.events, started);
        let t = rec.layer_started(Layer::Libvirt);
        let mut applied = Vec::new();
        let mut seeded = false;
        for uri in self.uris() {
            if self.cancel.is_cancelled() {
                return Err(self.cancelled(&rec));
            }
            let hv = connector.connect(&uri)?;
            if is_local(&uri) {
                self.create_share_dirs(&uri)?;
            }
            let preflight = hpc_libvirt::preflight_report(&self.cluster, &self.libvirt, &hv);
            for w in &preflight.warnings {
                rec.warn(format!("preflight on {uri}: {w}"));
            }
            if !preflight.problems.is_empty() {
                return Err(Error::Preflight {
                    uri,
                    problems: preflight.problems.iter().map(ToString::to_string).collect(),
                });
            }
            if is_local(&uri) {
                let console = self.state.console_dir();
                fs_err::create_dir_all(&console).map_err(Error::io("cannot create", &console))?;
                if !seeded {
                    // What each node applies to itself while it boots (see seed.rs).
                    let slurm = self.slurm_plan(SecretUse::Keep)?;
                    crate::seed::write(&self.state, &self.cluster, slurm.as_ref())?;
                    seeded = true;
                }
            }
            rec.note(format!("bringing up {name} on {uri}"));
            let report = match hpc_libvirt::up(&self.libvirt, &hv, &mut journal, self.cancel.flag())
            {
                Ok(r) => r,
                Err(e) if was_cancelled(&e) => return Err(self.cancelled(&rec)),
                Err(source) => {
                    return Err(Error::Libvirt {
                        action: "up",
                        uri,
                        source,
                    });
                }
            };
            for s in &report.stale {
                rec.emit(Event::Stale {
                    uri: uri.clone(),
                    kind: kind_name(&s.kind).to_owned(),
                    name: s.name.clone(),
                });
            }
            for a in &report.objects {
                rec.emit(Event::Object {
                    uri: uri.clone(),
                    kind: kind_name(&a.kind).to_owned(),
                    name: a.name.clone(),
                    outcome: format!("{:?}", a.outcome).to_lowercase(),
                });
            }
            applied.extend(report.objects);
        }
        rec.layer_finished(Layer::Libvirt, t);
        let libvirt_seconds = started.elapsed().as_secs_f64();
        if let Some(exec) = exec {
            rec.note(format!(
                "libvirt done in {libvirt_seconds:.1}s; each node is configured as soon as it answers over SSH (at most {}s)",
                opts.ssh_timeout.as_secs()
            ));
            let wait = SshWait {
                deadline: Instant::now() + opts.ssh_timeout,
                timeout: opts.ssh_timeout,
            };
            runtime()?.block_on(async {
                tokio::select! {
                    // Cancel first: a phase that asks for it stops before the next one starts.
                    biased;
                    () = self.cancel.cancelled() => Err(self.cancelled(&rec)),
                    r = self.configure_nodes(exec, &rec, wait) => r,
                }
            })?;
        }
        let (nodes, warnings, node_changes) = rec.finish();
        let count = |o: Outcome| applied.iter().filter(|a| a.outcome == o).count();
        let (created, updated, started_n, unchanged) = (
            count(Outcome::Created),
            count(Outcome::Updated),
            count(Outcome::Started),
            count(Outcome::Unchanged),
        );
        Ok(UpReport {
            cluster: name.to_owned(),
            changes: created + updated + started_n + node_changes,
            created,
            updated,
            started: started_n,
            unchanged,
            node_changes,
            seconds: started.elapsed().as_secs_f64(),
            libvirt_seconds,
            warnings,
            nodes,
        })
    }

    /// Every node as it comes up: base configuration, SLURM, then BeeGFS.
    async fn configure_nodes<E: Executor>(
        &self,
        exec: &E,
        rec: &Recorder<'_>,
        wait: SshWait,
    ) -> Result<()> {
        let t = rec.layer_started(Layer::Node);
        if self.cluster.slurm.is_some() {
            let ready = |name: String| ready(self, exec, rec, wait, name);
            crate::slurm::deploy(self, exec, rec, ready).await?;
        } else {
            ready_all(self, exec, rec, wait).await?;
        }
        rec.layer_finished(Layer::Node, t);
        if self.cluster.beegfs.is_some() {
            let t = rec.layer_started(Layer::Beegfs);
            crate::beegfs::deploy(self, exec, rec).await?;
            rec.layer_finished(Layer::Beegfs, t);
        }
        Ok(())
    }

    /// Host directories of shares that ask for it (`create: true`), on this connection's
    /// nodes.
    fn create_share_dirs(&self, uri: &str) -> Result<()> {
        for n in self.cluster.nodes.iter().filter(|n| n.uri.as_str() == uri) {
            for m in n
                .virtiofs
                .iter()
                .filter(|m| m.create && !m.host_path.exists())
            {
                crate::state::private_dir(&m.host_path, 0o755)?;
            }
        }
        Ok(())
    }
}

fn was_cancelled(e: &LifecycleError) -> bool {
    match e {
        LifecycleError::Cancelled => true,
        LifecycleError::Unwound { source, .. } => was_cancelled(source),
        _ => false,
    }
}
