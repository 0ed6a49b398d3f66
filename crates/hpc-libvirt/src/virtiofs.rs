//! The virtio-fs part of a domain: one `<filesystem>` per share, and the shared memory
//! backing virtio-fs needs.
//!
//! Kept apart from the rest of the domain on purpose: the `hpc-virtiofs` crate is to own
//! these fragments, and the domain planner only splices what [`virtiofs_devices`] returns
//! into the `<domain>`.

use hpc_config::Node;

use crate::xml::{
    Filesystem, FilesystemDir, FilesystemDriver, MemoryAccess, MemoryBacking, MemoryBackingSource,
};

/// Virtqueue size of every virtio-fs device (libvirt's documented example value; QEMU's
/// default of 128 throttles parallel I/O).
pub const VIRTIOFS_QUEUE_SIZE: u32 = 1024;

/// The virtio-fs fragments of one node's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtiofsDevices {
    /// One `<filesystem>` per share, in the node's order.
    pub filesystems: Vec<Filesystem>,
    /// `<memoryBacking>` with shared memory; `Some` exactly when there is a share (the qemu
    /// driver refuses virtio-fs without it, at define time).
    pub memory_backing: Option<MemoryBacking>,
}

/// The virtio-fs fragments of `node`'s domain.
///
/// Read-only shares carry no `<readonly/>`: the libvirt and virtiofsd of Debian 12 reject it;
/// the guest mounts them `ro`.
pub fn virtiofs_devices(node: &Node) -> VirtiofsDevices {
    let filesystems: Vec<Filesystem> = node
        .virtiofs
        .iter()
        .map(|m| Filesystem {
            kind: "mount".to_owned(),
            accessmode: "passthrough".to_owned(),
            driver: FilesystemDriver {
                kind: "virtiofs".to_owned(),
                queue: Some(VIRTIOFS_QUEUE_SIZE),
            },
            source: FilesystemDir {
                dir: m.host_path.display().to_string(),
            },
            target: FilesystemDir {
                dir: m.tag.as_str().to_owned(),
            },
            // libvirt 9 with the C virtiofsd (Debian 12) refuses `<readonly/>` for virtiofs
            // at define time ("virtiofs does not yet support read-only mode"), so a
            // read-only share is enforced by the guest's `ro` mount instead (hpc-virtiofs).
            readonly: None,
        })
        .collect();
    let memory_backing = (!filesystems.is_empty()).then(|| MemoryBacking {
        source: MemoryBackingSource {
            kind: "memfd".to_owned(),
        },
        access: MemoryAccess {
            mode: "shared".to_owned(),
        },
    });
    VirtiofsDevices {
        filesystems,
        memory_backing,
    }
}
