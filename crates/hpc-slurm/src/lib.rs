//! `hpc-slurm`: SLURM configuration for a validated [`hpc_config::Cluster`].
//!
//! Renders `slurm.conf`, `gres.conf`, `cgroup.conf` and `slurmdbd.conf`, compresses node
//! lists into SLURM hostlists (`cn[01-16]`), parses `slurmd -C` so `NodeName` lines state
//! what the nodes really have (minus a memory headroom), checks the munge key bytes, and
//! checks the rendered files against each other ([`check_consistency`]) for the mistakes
//! SLURM only reports at run time (GRES mismatches, partitions naming unknown nodes).
//!
//! Rendering is pure: no I/O, no clock, no environment, no randomness. The caller generates
//! the munge key bytes and the database password.
//!
//! With the `deploy` feature (on by default), the crate also deploys and checks a cluster
//! through any `hpc_remote::Executor` (SSH in practice): [`plan_deploy`] turns the cluster
//! into ordered phases of host steps (pure), [`deploy()`] applies them with bounded waits
//! between them (munge round trip, slurmdbd, `scontrol ping`, every node idle, config hashes
//! equal), and [`check()`] runs real jobs. A tool that only renders files depends on this
//! crate with `default-features = false` and does not build russh or tokio.
//!
//! # Example
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use hpc_slurm::{NodeHardware, RenderOptions, check_consistency, render_gres_conf, render_slurm_conf};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = hpc_config::load_file("examples/minimal.yaml".as_ref())?;
//! let mut hardware = BTreeMap::new();
//! // `slurmd -C` output from each compute node, collected by the caller over SSH.
//! hardware.insert(
//!     "cn1".to_owned(),
//!     NodeHardware::parse_slurmd_c("NodeName=cn1 CPUs=1 Boards=1 SocketsPerBoard=1 CoresPerSocket=1 ThreadsPerCore=1 RealMemory=960")?,
//! );
//! let slurm_conf = render_slurm_conf(&cluster, &hardware, &RenderOptions::default());
//! let gres_conf = render_gres_conf(&cluster);
//! assert!(check_consistency(&cluster, &slurm_conf, &gres_conf).is_empty());
//! assert_eq!(hpc_slurm::hostlist::compress(&["cn01", "cn02", "gpu1"]), "cn[01-02],gpu1");
//! # Ok(())
//! # }
//! ```
//!
//! # Stability
//!
//! 0.x, used by the `hpc-up` binary. The rendered text is covered by snapshot tests, so any
//! change to it is deliberate and visible in review; function signatures may still change
//! when deployment lands.

#[cfg(feature = "deploy")]
mod check;
mod consistency;
#[cfg(feature = "deploy")]
mod deploy;
mod epilog;
mod hardware;
pub mod hostlist;
pub mod mpi;
mod munge;
/// OCI containers in jobs: `oci.conf`, the runtime's packages and steps, the check.
pub mod oci;
#[cfg(feature = "deploy")]
mod plan;
mod render;

#[cfg(feature = "deploy")]
pub use check::{
    BundleFile, CheckError, CheckOptions, CheckReport, FailureCaptureResult, SbatchResult,
    SrunResult, check, shared_dir,
};
#[cfg(feature = "deploy")]
pub use deploy::{DeployError, DeployOptions, DeployReport, deploy, deploy_with};
#[cfg(feature = "deploy")]
pub use hpc_remote::{NoObserver, Phase, PhaseEvent, PhaseObserver, PhaseReport};
#[cfg(feature = "deploy")]
pub use plan::{
    ACCOUNTING_SQL_PATH, DeployPlan, PhaseKind, PlanError, SERVICES, Secrets, boot_phases,
    plan_deploy,
};

pub use consistency::{ConsistencyError, check_consistency};
pub use epilog::{
    BUNDLE_FILES, EPILOG_MODE, FAILURE_DIR_MODE, FailureSummary, SummaryError, bundle_dir,
    epilog_script, render_epilog,
};
pub use hardware::{FALLBACK_GUEST_RESERVED_PERCENT, HardwareError, NodeHardware};
pub use hostlist::HostlistError;
pub use munge::{
    MUNGE_KEY_MIN_LEN, MUNGE_KEY_MODE, MUNGE_KEY_OWNER, MUNGE_KEY_PATH, MungeKeyError, munge_key,
};
pub use render::{
    CGROUP_CONF_PATH, DEFAULT_MEMORY_HEADROOM_PERCENT, DEFAULT_SLURMCTLD_PORT, DEFAULT_SLURMD_PORT,
    DEFAULT_SLURMDBD_PORT, EPILOG_PATH, GRES_CONF_PATH, RenderOptions, RuntimePaths,
    SLURM_CONF_MODE, SLURM_CONF_PATH, SLURM_USER, SLURMDBD_CONF_MODE, SLURMDBD_CONF_OWNER,
    SLURMDBD_CONF_PATH, SLURMDBD_STORAGE_LOC, SlurmdbdError, render_cgroup_conf, render_gres_conf,
    render_slurm_conf, render_slurmdbd_conf, render_slurmdbd_conf_with, slurmd_nodes,
};

pub use hpc_config;
