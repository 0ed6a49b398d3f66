//! `<metadata>`: the cluster's identity on every object that can carry it.

use serde::Serialize;

use crate::plan::METADATA_NS;

/// `<metadata>` with hpc-up's element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// `<hpc:cluster …/>`.
    #[serde(rename = "hpc:cluster")]
    pub cluster: ClusterTag,
}

/// `<hpc:cluster xmlns:hpc=… name=… node=… role=…/>`, in the [`METADATA_NS`] namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterTag {
    /// The namespace declaration; always [`METADATA_NS`].
    #[serde(rename = "@xmlns:hpc")]
    pub xmlns: &'static str,
    /// The cluster's name.
    #[serde(rename = "@name")]
    pub name: String,
    /// The node's name; empty for objects of the whole cluster (the network).
    #[serde(rename = "@node")]
    pub node: String,
    /// The node's role (`controller`, `compute`), or `network` for the cluster network.
    #[serde(rename = "@role")]
    pub role: String,
}

impl Metadata {
    /// The metadata of an object of cluster `cluster`, for `node` (empty for none).
    pub fn new(cluster: &str, node: &str, role: &str) -> Self {
        Self {
            cluster: ClusterTag {
                xmlns: METADATA_NS,
                name: cluster.to_owned(),
                node: node.to_owned(),
                role: role.to_owned(),
            },
        }
    }
}
