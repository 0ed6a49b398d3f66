//! `hpc-virtiofs`: host directories shared into cluster nodes with virtio-fs.
//!
//! Owns both sides of a share: on the host, the libvirt `<filesystem>` devices and the shared
//! memory backing they need (handed to `hpc-libvirt` as XML fragments), and virtiofsd
//! discovery; in the guest, the mount plan (mount points, fstab entries, ownership and mode)
//! and the checks that a share is mounted, writable where it should be, and persistent.
//!
//! Planning is pure: it takes a validated [`hpc_config::Cluster`] and returns data. This
//! crate never talks to libvirt or SSH itself.
//!
//! Status: the guest mount plan and verification land with the virtio-fs issue.

pub use hpc_config;
