//! `<pool>` and `<volume>`: where the nodes' disks live.

use serde::Serialize;

use super::{Quantity, Typed};

/// `<pool type=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "pool")]
pub struct Pool {
    /// `type`, e.g. `dir`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `<name>`.
    pub name: String,
    /// `<target>`.
    pub target: PoolTarget,
}

/// `<pool><target><path>…</path></target>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolTarget {
    /// `<path>`: the pool's directory (absolute).
    pub path: String,
}

/// `<volume>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "volume")]
pub struct Volume {
    /// `<name>`: the file name in the pool.
    pub name: String,
    /// `<capacity unit='bytes'>`: the virtual size. Absent only in the plan of an uploaded
    /// volume, whose size is the local file's at the time of the upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// `<target>`.
    pub target: VolumeTarget,
    /// `<backingStore>`: the base image this volume is an overlay of.
    #[serde(rename = "backingStore", skip_serializing_if = "Option::is_none")]
    pub backing_store: Option<BackingStore>,
}

/// `<volume><target>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeTarget {
    /// `<format type=…/>`.
    pub format: Format,
    /// `<compat>`: the qcow2 version (`1.1`; libvirt 9 writes `0.10` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
}

/// `<volume><backingStore>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackingStore {
    /// `<path>`: absolute path of the backing image.
    pub path: String,
    /// `<format type=…/>`.
    pub format: Format,
}

/// `<format type=…/>`.
pub type Format = Typed;
