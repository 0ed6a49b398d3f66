//! `hpc-cluster`: bring an hpc-up cluster up, plan it, check it and tear it down — the
//! library behind the `hpc-up` command, for any Rust tool that wants a cluster (a CI
//! harness, a course's lab launcher, a notebook).
//!
//! A [`Session`] holds one resolved cluster (from its file, or built in code), its
//! [`StateDir`], a [`CancelToken`] and an [`EventSink`]. Its operations:
//!
//! | call | does |
//! |---|---|
//! | [`Session::render`], [`Session::render_to`] | every artefact the planners produce (pure) |
//! | [`Session::plan`] | libvirt changes per connection, host-step changes with diffs per running node |
//! | [`Session::up`] | preflight, seeds, libvirt, then every node as it answers SSH: base, SLURM, BeeGFS, MPI, containers, monitoring |
//! | [`Session::down`] | everything the cluster owns, also after a crash |
//! | [`Session::status`], [`Session::start`], [`Session::stop`] | the VMs |
//! | [`Session::check_virtiofs`], [`Session::check_slurm`], [`Session::check_beegfs`], [`Session::check_mpi`], [`Session::check_containers`], [`Session::check_monitoring`] | a running cluster |
//! | [`Session::build_image`] | the guest image, from Debian packages |
//! | [`Session::build_container`] | a container image (OCI bundle) for `srun --container` |
//!
//! Everything that touches libvirt is generic over a [`Connector`] ([`Libvirt`] with the
//! default `virt` feature, or any [`hpc_libvirt::Hypervisor`]); everything that touches the
//! nodes has a `*_with` form generic over an [`hpc_remote::Executor`] (the session's own
//! [`hpc_remote::SshExecutor`] otherwise). The layers — node base configuration and
//! virtio-fs mounts, SLURM, BeeGFS — are [`hpc_remote::Phase`]s of host plans; their progress
//! reaches the sink as [`Event`]s, one per phase and node.
//!
//! Calls block: libvirt's API is synchronous, and the SSH side runs on a current-thread
//! tokio runtime of its own. From async code, call them in `spawn_blocking`.
//!
//! # Cancelling
//!
//! [`CancelToken::cancel`] (a signal handler, a UI) stops `up` within a fraction of a
//! second: in the libvirt part, what this run created is undone; in the SSH part, no new
//! work starts, steps already on a node finish there (files are replaced atomically), and
//! `up` returns [`Error::Cancelled`] naming the phases that were running. `down` then
//! removes everything.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use hpc_cluster::{Event, Libvirt, Overrides, Session, UpOptions};
//!
//! # fn main() -> Result<(), hpc_cluster::Error> {
//! let session = Session::load("examples/minimal.yaml".as_ref(), &Overrides::default())?
//!     .with_events(Arc::new(|e: &Event| {
//!         if let Event::PhaseFinished { phase, node: Some(node), seconds, .. } = e {
//!             eprintln!("{node}: {phase} in {seconds:.1}s");
//!         }
//!     }));
//! let plan = session.plan(&Libvirt)?;
//! eprintln!("{} libvirt change(s)", plan.libvirt_changes());
//! let report = session.up(&Libvirt, &UpOptions::default())?;
//! for (node, t) in &report.nodes {
//!     eprintln!("{node}: SSH after {:?}s, SLURM {:?}s", t.ssh_ready_at, t.slurm);
//! }
//! let slurm = session.check_slurm(std::time::Duration::from_secs(180))?;
//! eprintln!("srun ran on {} partition(s)", slurm.srun.len());
//! session.down(&Libvirt)?;
//! # Ok(())
//! # }
//! ```
//!
//! See `examples/lab.rs` for a complete program.

mod beegfs;
mod cancel;
mod checks;
mod container;
mod error;
mod event;
mod fabric;
mod fsutil;
mod image;
mod lifecycle;
mod nodes;
mod plan;
mod render;
mod seed;
mod session;
mod slurm;
mod stack;
mod state;
pub mod text;
mod up;

pub use cancel::CancelToken;
pub use container::ContainerReport;
pub use error::{Error, Result};
pub use event::{Event, EventSink, Layer, NoEvents, NodeTimes, Timings};
pub use fsutil::{Artefact, replace, write_atomic, write_tree};
pub use image::ImageReport;
pub use lifecycle::{DownReport, NodeStatus, ObjectRef, StopReport};
pub use nodes::{base_plan, etc_hosts};
pub use plan::{ClusterPlan, HostChange, NodePlan, NodeState, ObjectChange, StepChange};
pub use render::RenderReport;
#[cfg(feature = "virt")]
pub use session::Libvirt;
pub use session::{Connector, Overrides, Session};
pub use state::{Identity, StateDir, StateLock};
pub use up::{UpOptions, UpReport};
