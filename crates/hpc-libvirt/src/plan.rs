//! The libvirt objects of a cluster (interface shared by the renderer and the lifecycle).

use hpc_config::Cluster;
use hpc_config::types::ConnectUri;

/// XML namespace of hpc-up's `<metadata>` element.
pub const METADATA_NS: &str = "https://hpc-up.invalid/xmlns/libvirt/1";

/// Which kind of libvirt object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A virtual network.
    Network,
    /// A storage pool.
    Pool,
    /// A storage volume (in the pool).
    Volume,
    /// A domain (VM).
    Domain,
}

/// One libvirt object the cluster owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Kind.
    pub kind: ObjectKind,
    /// libvirt name (cluster-prefixed, unique per kind and connection).
    pub name: String,
    /// Connection the object lives on.
    pub uri: ConnectUri,
    /// The XML to define it with.
    pub xml: String,
}

/// Every libvirt object of a cluster, in creation order (networks, pools, volumes, domains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtPlan {
    /// The objects.
    pub objects: Vec<Object>,
}

/// Plan the libvirt objects of `cluster`.
pub fn plan(cluster: &Cluster) -> LibvirtPlan {
    let _ = cluster;
    LibvirtPlan {
        objects: Vec::new(),
    }
}
