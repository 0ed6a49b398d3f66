//! The host side: the virtio-fs part of a node's libvirt domain — one `<filesystem>` per
//! share, and the shared memory backing virtio-fs needs.
//!
//! The types are libvirt's XML elements as serde shapes for quick-xml (attributes are the
//! fields renamed to `@name`, field order is element order); `hpc-libvirt` embeds them in its
//! `<domain>` and serializes the whole document. Only what hpc-up writes is modelled.
//!
//! See <https://libvirt.org/formatdomain.html#filesystems> and
//! <https://libvirt.org/kbase/virtiofs.html>.

use hpc_config::Node;
use serde::{Deserialize, Serialize};

/// Virtqueue size of every virtio-fs device (libvirt's documented example value; QEMU's
/// default of 128 throttles parallel I/O).
pub const VIRTIOFS_QUEUE_SIZE: u32 = 1024;

/// `<filesystem type=… accessmode=…>`: a host directory shared into the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "filesystem")]
pub struct Filesystem {
    /// `type`, e.g. `mount`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `accessmode`, e.g. `passthrough`.
    #[serde(rename = "@accessmode")]
    pub accessmode: String,
    /// `<driver type=… queue=…/>`.
    pub driver: FilesystemDriver,
    /// `<source dir=…/>`: the host directory.
    pub source: FilesystemDir,
    /// `<target dir=…/>`: the tag the guest mounts by.
    pub target: FilesystemDir,
    /// `<readonly/>` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<()>,
}

/// `<filesystem><driver type=… queue=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemDriver {
    /// `type`, e.g. `virtiofs`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `queue`: the virtqueue size.
    #[serde(rename = "@queue", default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
}

/// `<filesystem><source dir=…/>` or `<target dir=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemDir {
    /// `dir`.
    #[serde(rename = "@dir")]
    pub dir: String,
}

/// `<memoryBacking>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "memoryBacking")]
pub struct MemoryBacking {
    /// `<source type=…/>`, e.g. `memfd`.
    pub source: MemoryBackingSource,
    /// `<access mode=…/>`, e.g. `shared`.
    pub access: MemoryAccess,
}

/// `<memoryBacking><source type=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryBackingSource {
    /// `type`.
    #[serde(rename = "@type")]
    pub kind: String,
}

/// `<memoryBacking><access mode=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryAccess {
    /// `mode`.
    #[serde(rename = "@mode")]
    pub mode: String,
}

/// The virtio-fs fragments of one node's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtiofsDevices {
    /// One `<filesystem>` per share, in the node's order.
    pub filesystems: Vec<Filesystem>,
    /// `<memoryBacking>` with shared memory; `Some` exactly when there is a share (the qemu
    /// driver refuses virtio-fs without it, at define time).
    pub memory_backing: Option<MemoryBacking>,
}

/// The virtio-fs fragments of `node`'s domain. Pure.
///
/// Read-only shares carry no `<readonly/>`: the libvirt and virtiofsd of Debian 12 reject it;
/// the guest mounts them `ro` (see [`guest_steps`](crate::guest_steps)).
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
            // read-only share is enforced by the guest's `ro` mount instead.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::node;

    fn xml<T: Serialize>(v: &T) -> String {
        let mut out = String::new();
        let mut ser = quick_xml::se::Serializer::new(&mut out);
        ser.indent(' ', 2);
        v.serialize(ser).unwrap();
        out
    }

    #[test]
    fn one_filesystem_per_share_and_shared_memory() {
        let n = node(
            "[{tag: home, host-path: /srv/home, mount-point: /home}, {tag: ro, host-path: /srv/ro, mount-point: /ro, readonly: true}]",
        );
        let d = virtiofs_devices(&n);
        assert_eq!(d.filesystems.len(), 2);
        assert_eq!(
            xml(&d.filesystems[1]),
            "<filesystem type=\"mount\" accessmode=\"passthrough\">\n  \
             <driver type=\"virtiofs\" queue=\"1024\"/>\n  \
             <source dir=\"/srv/ro\"/>\n  \
             <target dir=\"ro\"/>\n\
             </filesystem>"
        );
        let mb = d.memory_backing.unwrap();
        assert_eq!(
            xml(&mb),
            "<memoryBacking>\n  <source type=\"memfd\"/>\n  <access mode=\"shared\"/>\n</memoryBacking>"
        );
    }

    #[test]
    fn no_share_no_memory_backing() {
        let n = node("[]");
        assert_eq!(
            virtiofs_devices(&n),
            VirtiofsDevices {
                filesystems: vec![],
                memory_backing: None
            }
        );
    }

    #[test]
    fn fragments_read_back() {
        let n = node("[{tag: home, host-path: /srv/home, mount-point: /home}]");
        let d = virtiofs_devices(&n);
        let fs: Filesystem = quick_xml::de::from_str(&xml(&d.filesystems[0])).unwrap();
        assert_eq!(fs, d.filesystems[0]);
        let with_ro = "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>\
                       <source dir='/a'/><target dir='a'/><readonly/></filesystem>";
        let fs: Filesystem = quick_xml::de::from_str(with_ro).unwrap();
        assert_eq!(fs.readonly, Some(()));
        assert_eq!(fs.driver.queue, None);
        let mb: MemoryBacking =
            quick_xml::de::from_str(&xml(d.memory_backing.as_ref().unwrap())).unwrap();
        assert_eq!(Some(mb), d.memory_backing);
    }
}
