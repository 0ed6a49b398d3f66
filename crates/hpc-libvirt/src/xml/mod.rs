//! Typed libvirt XML: one Rust struct per element hpc-up writes, serialized with quick-xml.
//!
//! The types mirror libvirt's formats ([domain], [network], [storage]) closely enough that the
//! field names say where each value ends up; they cover what hpc-up writes, not the whole
//! format. Field order is element order. Attributes are the fields serde renames to `@name`,
//! text content the one renamed to `$text`. The virtio-fs elements (`<filesystem>`,
//! `<memoryBacking>`) are `hpc-virtiofs`'s types, re-exported here.
//!
//! [domain]: https://libvirt.org/formatdomain.html
//! [network]: https://libvirt.org/formatnetwork.html
//! [storage]: https://libvirt.org/formatstorage.html

mod domain;
mod metadata;
mod network;
mod storage;

use serde::Serialize;

pub use domain::{
    Boot, CharLog, CharTarget, Clock, Console, Cpu, Disk, DiskDriver, DiskSource, DiskTarget,
    Domain, DomainDevices, Features, Hostdev, HostdevSource, Interface, InterfaceSource,
    LifecycleAction, MacAddress, Memballoon, Os, OsType, PciAddress, Rng, RngBackend, Serial,
};
/// The virtio-fs elements of a domain belong to `hpc-virtiofs`; re-exported so that every
/// element of [`Domain`] is reachable from here.
pub use hpc_virtiofs::{
    Filesystem, FilesystemDir, FilesystemDriver, MemoryAccess, MemoryBacking, MemoryBackingSource,
};
pub use metadata::{ClusterTag, Metadata};
pub use network::{
    Bridge, Dhcp, DhcpHost, Dns, DnsHost, Forward, Mtu, Network, NetworkDomain, NetworkIp,
};
pub use storage::{BackingStore, Format, Pool, PoolTarget, Volume, VolumeTarget};

/// A number with a unit attribute: `<memory unit='KiB'>1024</memory>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quantity {
    /// The unit (`KiB`, `bytes`, …).
    #[serde(rename = "@unit")]
    pub unit: &'static str,
    /// The amount.
    #[serde(rename = "$text")]
    pub value: u64,
}

/// An element with a single `type` attribute, e.g. `<format type='qcow2'/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Typed {
    /// The `type` attribute.
    #[serde(rename = "@type")]
    pub kind: String,
}

/// Serialize a libvirt XML document: two-space indentation, no XML declaration, a final
/// newline. Deterministic: the same value always gives the same bytes.
///
/// The root element is named by the type's serde name (`domain`, `network`, `pool`,
/// `volume`). Only this module's document types reach it (through their `to_xml` methods).
fn render<T: Serialize>(doc: &T) -> String {
    let mut out = String::new();
    let mut ser = quick_xml::se::Serializer::new(&mut out);
    ser.indent(' ', 2);
    // The XML types of this module are plain structs of strings and numbers with fixed,
    // valid element names: quick-xml cannot fail on them (the snapshot tests serialize every
    // shape), so a failure here is a bug in this module, not a property of the input.
    #[allow(
        clippy::expect_used,
        reason = "infallible for this module's types, see above"
    )]
    doc.serialize(ser)
        .expect("libvirt XML types always serialize");
    out.push('\n');
    out
}

/// Implements `to_xml` for the document (root element) types.
macro_rules! document {
    ($($ty:ty),+) => {$(
        impl $ty {
            /// This document as libvirt XML (see the module docs for the layout).
            pub fn to_xml(&self) -> String {
                $crate::xml::render(self)
            }
        }
    )+};
}

document!(Domain, Network, Pool, Volume);
