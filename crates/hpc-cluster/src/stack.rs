//! The layers after SLURM and BeeGFS — MPI, containers in jobs, monitoring — and their
//! checks. Each layer is a list of [`hpc_remote::Phase`]s from its pure planner (`hpc-slurm`'s
//! `mpi` and `oci`, `hpc-monitor`), run in order with [`hpc_remote::run_phase`], each phase
//! and node reported to the session's events; `plan` checks the same host plans.
//!
//! What the guests need of them is baked into the image ([`image_needs`]): the nodes have no
//! package mirror at deploy time.

use std::time::Duration;

use hpc_config::Cluster;
use hpc_remote::{Executor, Phase};

use crate::error::{Error, Result};
use crate::event::{Layer, LayerObserver, Recorder};
use crate::session::Session;

/// The stack layers of `cluster`, in the order `up` applies them, each with its phases
/// (layers the file does not configure are left out).
pub(crate) fn layers(cluster: &Cluster) -> Vec<(Layer, Vec<Phase>)> {
    let mut out = Vec::new();
    if cluster.mpi.is_some() {
        out.push((Layer::Mpi, hpc_slurm::mpi::phases(cluster)));
    }
    if cluster.containers.is_some() {
        out.push((Layer::Containers, hpc_slurm::oci::phases(cluster)));
    }
    if cluster.monitoring.is_some() {
        out.push((Layer::Monitoring, hpc_monitor::phases(cluster)));
    }
    out.retain(|(_, phases)| !phases.is_empty());
    out
}

/// What the image needs for the stack layers: packages, and scripts run in its root while
/// it is built (`(name, script)`).
pub(crate) fn image_needs(cluster: &Cluster) -> (Vec<String>, Vec<(String, String)>) {
    let mut packages: Vec<String> = Vec::new();
    let mut scripts = Vec::new();
    if cluster.mpi.is_some() {
        packages.extend(
            hpc_slurm::mpi::IMAGE_PACKAGES
                .iter()
                .map(|p| (*p).to_owned()),
        );
        scripts.push((
            "mpi-check".to_owned(),
            hpc_slurm::mpi::IMAGE_SCRIPT.to_owned(),
        ));
    }
    if let Some(c) = &cluster.containers {
        packages.extend(
            hpc_slurm::oci::image_packages(c.runtime)
                .iter()
                .map(|p| (*p).to_owned()),
        );
    }
    if cluster.monitoring.is_some() {
        packages.extend(hpc_monitor::IMAGE_PACKAGES.iter().map(|p| (*p).to_owned()));
        scripts.push((
            "monitoring-services".to_owned(),
            hpc_monitor::IMAGE_SCRIPT.to_owned(),
        ));
    }
    (packages, scripts)
}

/// Every file the stack layers put on the nodes, as `(node, path, content)`.
pub(crate) fn files(cluster: &Cluster) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if cluster.mpi.is_some() {
        out.extend(hpc_slurm::mpi::files(cluster));
    }
    if cluster.containers.is_some() {
        out.extend(
            hpc_slurm::oci::files(cluster)
                .into_iter()
                .map(|f| (f.node, f.path.to_owned(), f.content)),
        );
    }
    if cluster.monitoring.is_some() {
        out.extend(hpc_monitor::files(cluster));
    }
    out
}

/// Apply every stack layer on the running nodes, in order, each as a layer of its own in
/// the events (and so in the timing table).
pub(crate) async fn deploy<E: Executor>(s: &Session, exec: &E, rec: &Recorder<'_>) -> Result<()> {
    for (layer, phases) in layers(&s.cluster) {
        let t = rec.layer_started(layer);
        let observer = LayerObserver {
            rec,
            layer,
            own: None,
        };
        hpc_remote::run_phases(exec, &phases, &observer)
            .await
            .map_err(|f| Error::Layer {
                layer: layer.name(),
                message: f.to_string(),
            })?;
        rec.layer_finished(layer, t);
    }
    Ok(())
}

fn not_configured(section: &str) -> Error {
    Error::Usage(format!(
        "the cluster file has no (enabled) `{section}` section"
    ))
}

impl Session {
    /// `check mpi`: the project's MPI program with `srun --mpi=pmix` on every compute node
    /// (an allreduce every rank takes part in; latency and bandwidth between two nodes).
    pub fn check_mpi(&self, timeout: Duration) -> Result<hpc_slurm::mpi::MpiCheck> {
        if self.cluster.mpi.is_none() {
            return Err(not_configured("mpi"));
        }
        let opts = hpc_slurm::mpi::MpiCheckOptions {
            timeout,
            ..Default::default()
        };
        self.on_nodes(async |exec, _| hpc_slurm::mpi::check_mpi(exec, &self.cluster, &opts).await)?
            .map_err(|e| Error::Check {
                what: "mpi",
                message: e.to_string(),
            })
    }
    /// `check monitoring`: every target up through Prometheus's HTTP API (reached from this
    /// host), a query per node, the SLURM series against `sinfo`.
    pub fn check_monitoring(&self) -> Result<hpc_monitor::MonitoringCheck> {
        if self.cluster.monitoring.is_none() {
            return Err(not_configured("monitoring"));
        }
        self.on_nodes(async |exec, _| hpc_monitor::check_cluster(exec, &self.cluster).await)?
            .map_err(|e| Error::Check {
                what: "monitoring",
                message: e.to_string(),
            })
    }
}
