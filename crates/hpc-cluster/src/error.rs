//! What can go wrong, each naming the node, the connection or the file.

use std::path::PathBuf;

/// Everything a [`crate::Session`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster file could not be read or is not valid (`Invalid` carries
    /// `file:line:column` diagnostics for every problem).
    #[error(transparent)]
    Load(#[from] hpc_config::LoadError),
    /// A command-line style override was not valid.
    #[error("{what}: {message}")]
    Override {
        /// Which override (`--connect`).
        what: &'static str,
        /// Why.
        message: String,
    },
    /// libvirt could not be reached.
    #[error("cannot reach libvirt at {uri}: {message}")]
    Connect {
        /// The connection.
        uri: String,
        /// libvirt's message.
        message: String,
    },
    /// Another run holds the cluster's lock.
    #[error("another hpc-up is working on cluster `{cluster}` ({} is locked)", path.display())]
    Locked {
        /// The cluster.
        cluster: String,
        /// Its lock file.
        path: PathBuf,
    },
    /// A file or directory of the state directory (or one the file names).
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot write`).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The libvirt journal.
    #[error(transparent)]
    Journal(#[from] hpc_libvirt::JournalError),
    /// Preflight found problems on a connection; nothing was created.
    #[error("preflight on {uri} found {} problem(s); nothing was created:\n{}", problems.len(), list(problems))]
    Preflight {
        /// The connection.
        uri: String,
        /// Every problem.
        problems: Vec<String>,
    },
    /// A libvirt lifecycle step failed (after `up` undid what it had done).
    #[error("{action} on {uri}: {source}")]
    Libvirt {
        /// `up`, `down`, `plan`, `status`, `start`, `stop`.
        action: &'static str,
        /// The connection.
        uri: String,
        /// The cause, with what was undone.
        source: hpc_libvirt::LifecycleError,
    },
    /// The run was cancelled (Ctrl-C, SIGTERM, or the caller's token).
    #[error("cancelled during {during}")]
    Cancelled {
        /// The phases that were running, per node.
        during: String,
    },
    /// Nodes failed their SSH wait or base configuration; one line per node.
    #[error("{}", failures.join("\n"))]
    Nodes {
        /// `node <name>: <why>` per failed node.
        failures: Vec<String>,
    },
    /// SLURM could not be deployed.
    #[error("SLURM: {0}")]
    Slurm(#[from] hpc_slurm::DeployError),
    /// SLURM could not be planned.
    #[error("SLURM: {0}")]
    SlurmPlan(#[from] hpc_slurm::PlanError),
    /// SLURM's check failed to run.
    #[error("check slurm: {0}")]
    SlurmCheck(#[from] hpc_slurm::CheckError),
    /// BeeGFS could not be planned, deployed or checked.
    #[error("BeeGFS: {0}")]
    Beegfs(String),
    /// The SSH side: the key, the executor.
    #[error("SSH: {0}")]
    Ssh(String),
    /// The guest image.
    #[error(transparent)]
    Image(#[from] hpc_image::BuildError),
    /// The base image was built by hpc-up for another Debian release than the file's
    /// `image.release`; `up` stopped before any libvirt change.
    #[error(
        "{} was built for Debian {image_release} but the cluster file says `image.release: {file_release}`; nothing was created. Build the {file_release} image with `hpc-up image build <cluster file>` (with its own `image.base`, `image.kernel` and `image.initrd` if other clusters use this {image_release} image), or set `image.release: {image_release}`",
        image.display()
    )]
    ImageRelease {
        /// The base image.
        image: PathBuf,
        /// The release the cluster file asks for.
        file_release: hpc_config::DebianRelease,
        /// The release the image's manifest records.
        image_release: hpc_config::DebianRelease,
    },
    /// The base image's manifest could not be read.
    #[error(transparent)]
    ImageManifest(#[from] hpc_image::ManifestError),
    /// A stack layer (MPI, containers, monitoring) failed on one or more nodes.
    #[error("{layer}: {message}")]
    Layer {
        /// The layer (`mpi`, `containers`, `monitoring`).
        layer: &'static str,
        /// The failing phase, every failing node with its step and why.
        message: String,
    },
    /// A check could not run (as opposed to running and finding problems, which its report
    /// holds).
    #[error("check {what}: {message}")]
    Check {
        /// The check (`mpi`, `containers`, `monitoring`).
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The cluster network across hypervisor hosts (bridge and VXLAN device per host).
    #[error("network across hosts, {step}: {message}")]
    Fabric {
        /// What was being done.
        step: &'static str,
        /// The hosts and devices concerned, and why.
        message: String,
    },
    /// A request that does not fit the cluster (no such node, no `slurm:` section).
    #[error("{0}")]
    Usage(String),
}

fn list(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }

    /// Whether the run ended because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
