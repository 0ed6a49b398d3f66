//! The validated cluster: every default applied, every node expanded, every address and MAC
//! decided. Planners take a [`Cluster`] and never look at the file again.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Serialize, Serializer};

use crate::file::{
    BeegfsExtraConfig, ContainerRuntime, DomainType, GresAutodetect, MpiPlugin, NetworkMode,
    PciDevice,
};
use crate::types::{
    BeegfsVersion, BridgeName, ByteSize, ConnectUri, DebianRelease, DnsDomain, FileMode, NodeName,
    PromDuration, TimeLimit, VirtiofsTag,
};

/// A cluster whose file passed every check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    /// The cluster's name.
    pub name: NodeName,
    /// The cluster network.
    pub network: Network,
    /// The guest image.
    pub image: Image,
    /// The state directory (absolute).
    pub state_dir: PathBuf,
    /// SSH access.
    pub ssh: Ssh,
    /// The libvirt hosts of a cluster spread over several, in file order; empty when the file
    /// has no `hosts:` list (then every node's [`Node::uri`] is its own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
    /// Every node: controllers first, then compute nodes, in file order.
    pub nodes: Vec<Node>,
    /// SLURM, when configured.
    pub slurm: Option<Slurm>,
    /// BeeGFS, when configured and enabled.
    pub beegfs: Option<Beegfs>,
    /// Monitoring, when configured and enabled.
    pub monitoring: Option<Monitoring>,
    /// Containers in SLURM jobs, when configured and enabled.
    pub containers: Option<Containers>,
    /// MPI, when configured and enabled.
    pub mpi: Option<Mpi>,
}

impl Cluster {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }
    /// The host called `name` (of `hosts:`).
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name.as_str() == name)
    }
    /// The nodes placed on the host called `name`, in cluster order.
    pub fn nodes_on<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes
            .iter()
            .filter(move |n| n.host.as_ref().is_some_and(|h| h.as_str() == name))
    }
    /// The controllers.
    pub fn controllers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Controller)
    }
    /// The compute nodes.
    pub fn computes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Compute)
    }
}

/// The cluster network, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Network {
    /// The IPv4 network.
    #[serde(serialize_with = "display")]
    pub cidr: Ipv4Net,
    /// Host bridge name.
    pub bridge: BridgeName,
    /// Isolated or NAT.
    pub mode: NetworkMode,
    /// DNS domain.
    pub domain: DnsDomain,
    /// The host's address on the bridge.
    pub gateway: Ipv4Addr,
}

/// One libvirt hypervisor host of `hosts:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Host {
    /// Its name (what a node's [`Node::host`] says).
    pub name: NodeName,
    /// Its libvirt connection; at most one host's is local ([`ConnectUri::remote_host`] is
    /// `None`).
    pub uri: ConnectUri,
    /// The address the other hosts reach it on (outside the cluster network); always set
    /// when there are two or more hosts.
    pub address: Option<Ipv4Addr>,
    /// What hpc-up may place on it; `None` means no limit.
    pub capacity: Option<HostCapacity>,
}

/// What hpc-up may place on one host: its nodes' vCPUs and memory, all together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HostCapacity {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory.
    pub memory: ByteSize,
}

/// The guest image, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Image {
    /// Base qcow2 image.
    pub base: PathBuf,
    /// The Debian release of the guests (`bookworm` unless the file says otherwise).
    pub release: DebianRelease,
    /// Direct kernel boot, when configured.
    pub kernel: Option<PathBuf>,
    /// Initrd for direct kernel boot.
    pub initrd: Option<PathBuf>,
    /// Extra kernel command line.
    pub cmdline: Option<String>,
    /// Extra packages for `image build`.
    pub packages: Vec<String>,
    /// Local `.deb` files for `image build`.
    pub debs: Vec<PathBuf>,
    /// Root filesystem size of a built image.
    pub size: ByteSize,
    /// Debian mirror for `image build`.
    pub mirror: String,
}

/// SSH access, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Ssh {
    /// Login user.
    pub user: String,
    /// Private key; `None` means the cluster's own generated key in the state directory.
    pub key: Option<PathBuf>,
    /// Port.
    pub port: u16,
}

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A controller.
    Controller,
    /// A compute node.
    Compute,
}

/// One VM of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Node {
    /// Host name.
    pub name: NodeName,
    /// Role.
    pub role: Role,
    /// Address on the cluster network.
    pub ip: Ipv4Addr,
    /// MAC address, derived from the cluster and node names.
    pub mac: MacAddr,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory.
    pub memory: ByteSize,
    /// Disk size.
    pub disk: ByteSize,
    /// libvirt connection the node lives on (its host's, with `hosts:`).
    pub uri: ConnectUri,
    /// The host of `hosts:` the node lives on: the one the file pins it to, else the one
    /// placement chose. `None` when the file has no `hosts:` list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<NodeName>,
    /// libvirt domain type.
    pub domain_type: DomainType,
    /// virtio-fs shares: the cluster's, then the group's, then the node's.
    pub virtiofs: Vec<Mount>,
    /// Passed-through PCIe devices.
    pub pci_devices: Vec<PciDevice>,
}

/// A virtio-fs share of one node, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Mount {
    /// Tag.
    pub tag: VirtiofsTag,
    /// Absolute host directory, variables expanded.
    pub host_path: PathBuf,
    /// Absolute guest mount point.
    pub mount_point: String,
    /// Read-only share.
    pub readonly: bool,
    /// Create the host directory when missing.
    pub create: bool,
    /// Owner of the mount point.
    pub owner: Option<String>,
    /// Group of the mount point.
    pub group: Option<String>,
    /// Mode of the mount point.
    pub mode: Option<FileMode>,
    /// Mount options.
    pub options: Option<String>,
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// SLURM, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Slurm {
    /// `ClusterName`.
    pub cluster_name: NodeName,
    /// Partitions, with their node lists expanded.
    pub partitions: Vec<SlurmPartition>,
    /// The node running slurmdbd + MariaDB, when accounting is on.
    pub accounting_host: Option<NodeName>,
    /// gres.conf `AutoDetect`.
    pub gres_autodetect: GresAutodetect,
    /// Configured GPUs per node.
    pub gpus: Vec<NodeGpus>,
    /// `ConstrainCores`.
    pub constrain_cores: bool,
    /// `ConstrainRAMSpace`.
    pub constrain_ram_space: bool,
    /// `ConstrainDevices`.
    pub constrain_devices: bool,
    /// Memory kept back from jobs, in percent of what `slurmd -C` reports.
    pub memory_headroom_percent: u8,
    /// Job failure capture, when configured.
    pub job_failures: Option<JobFailures>,
}

/// Job failure capture, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobFailures {
    /// The directory on the nodes (inside a share every compute node has).
    pub dir: String,
    /// The same directory on this host, when it is inside a virtio-fs share.
    pub host_dir: Option<PathBuf>,
    /// Log lines kept per node.
    pub log_lines: u32,
}

/// Monitoring, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Monitoring {
    /// The node running Prometheus.
    pub server: NodeName,
    /// Prometheus's port.
    pub port: u16,
    /// node exporter's port on every node.
    pub node_exporter_port: u16,
    /// Sample retention.
    pub retention: PromDuration,
    /// Scrape interval.
    pub scrape_interval: PromDuration,
    /// The node whose node exporter carries the SLURM metrics (the first controller), when
    /// SLURM metrics are on.
    pub slurm_metrics: Option<NodeName>,
}

/// Containers in SLURM jobs, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Containers {
    /// The OCI runtime.
    pub runtime: ContainerRuntime,
    /// The bundles' directory on the nodes.
    pub bundles: String,
    /// The same directory on this host (inside the share's host directory).
    pub host_bundles: PathBuf,
    /// The images, in file order.
    pub images: Vec<ContainerImage>,
}

/// A container image, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ContainerImage {
    /// Its name.
    pub name: NodeName,
    /// Its Debian release.
    pub release: DebianRelease,
    /// Extra packages (sorted, deduplicated).
    pub packages: Vec<String>,
}

/// MPI, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Mpi {
    /// `MpiDefault`.
    pub default: MpiPlugin,
}

/// A SLURM partition, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SlurmPartition {
    /// Name.
    pub name: NodeName,
    /// Member nodes.
    pub nodes: Vec<NodeName>,
    /// The default partition.
    pub default: bool,
    /// `MaxTime`.
    pub max_time: TimeLimit,
}

/// GPUs configured on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeGpus {
    /// The node.
    pub node: NodeName,
    /// GPU type, when named.
    pub gpu_type: Option<String>,
    /// Count.
    pub count: u32,
}

/// BeeGFS, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Beegfs {
    /// Release.
    pub version: BeegfsVersion,
    /// Management node.
    pub management: NodeName,
    /// Metadata nodes.
    pub metadata: Vec<NodeName>,
    /// Storage nodes.
    pub storage: Vec<NodeName>,
    /// Client nodes.
    pub clients: Vec<NodeName>,
    /// Management data directory.
    pub management_dir: String,
    /// Metadata directory.
    pub metadata_dir: String,
    /// Storage target directory.
    pub storage_dir: String,
    /// Client mount point.
    pub mount_point: String,
    /// Extra client mount options.
    pub mount_options: Option<String>,
    /// Shared-secret authentication.
    pub auth: bool,
    /// TLS for the management API (8.x).
    pub tls: bool,
    /// TLS certificate on this host (8.x, with `tls`).
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key on this host (8.x, with `tls`).
    pub tls_key_file: Option<PathBuf>,
    /// Where the packages come from.
    pub packages: BeegfsPackageSource,
    /// Extra config keys per service, as written (checked by the BeeGFS planner).
    pub extra_config: BeegfsExtraConfig,
}

/// Where the nodes get the BeeGFS packages, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BeegfsPackageSource {
    /// Already installed in the image.
    Preinstalled,
    /// `.deb` files in a directory on this host, baked into the image.
    Debs {
        /// The directory (absolute, variables expanded).
        dir: PathBuf,
    },
    /// An apt repository the guests reach.
    Repo {
        /// Base URL.
        url: String,
        /// Suite.
        suite: String,
        /// Component.
        component: String,
        /// Signing key on this host; `None` means `trusted: true` (no signature check).
        key: Option<PathBuf>,
    },
}

fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
