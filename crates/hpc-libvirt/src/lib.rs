//! `hpc-libvirt`: typed libvirt XML for an hpc-up cluster, and its journaled lifecycle.
//!
//! Two layers:
//! - **planning** (pure, always built): [`plan()`] turns a validated [`hpc_config::Cluster`]
//!   into the libvirt objects it needs — network, storage pool, qcow2 overlay volumes and
//!   domains — each as deterministic XML carrying the cluster's identity in `<metadata>`.
//! - **apply** (feature `virt`, on by default): the hypervisor trait, its implementation over
//!   the `virt` crate (libvirt's C library), the on-disk journal, and `up`/`down`/`plan`/
//!   `status`/`start`/`stop`.
//!
//! A tool that only renders XML depends on this crate with `default-features = false` and
//! needs no libvirt library.

mod compare;
mod hypervisor;
mod journal;
mod lifecycle;
mod plan;
#[cfg(feature = "virt")]
mod virt_impl;

pub use plan::{LibvirtPlan, METADATA_NS, Object, ObjectKind, plan};

pub use hypervisor::{
    BoxError, DomainState, HvResult, Hypervisor, HypervisorError, LiveObject, Step, kind_name,
};
pub use journal::{EntryState, JOURNAL_FILE, Journal, JournalEntry, JournalError};
pub use lifecycle::{
    Action, Applied, Change, DownReport, LifecycleError, NodeStatus, Outcome, Removed,
    STOP_POLL_INTERVAL, StopReport, UpReport, diff, down, plan_cluster, start, status, stop, up,
};
#[cfg(feature = "virt")]
pub use virt;
#[cfg(feature = "virt")]
pub use virt_impl::VirtHypervisor;
