//! The virtio-fs part of a domain: one `<filesystem>` per share, and the shared memory
//! backing virtio-fs needs.
//!
//! It belongs to the `hpc-virtiofs` crate, which owns both the element types and
//! [`virtiofs_devices`]; the domain planner splices what that returns into the `<domain>`.
//! Re-exported here so that `hpc_libvirt::virtiofs::…` keeps working.

pub use hpc_virtiofs::{VIRTIOFS_QUEUE_SIZE, VirtiofsDevices, virtiofs_devices};
