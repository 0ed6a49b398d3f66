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

mod plan;

pub use plan::{LibvirtPlan, METADATA_NS, Object, ObjectKind, plan};
