//! The cluster file as written: the serde + JSON Schema types.
//!
//! These types are the published contract (they generate `schema/hpc-config.schema.json`).
//! Every field is documented and has an example, because editors show both. Optional fields
//! are `Option` or `#[serde(default)]`; their defaults are the `DEFAULT_*` constants below and
//! are applied when the file is resolved into a [`crate::Cluster`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{
    BeegfsVersion, BridgeName, ByteSize, Cidr, ConnectUri, DebianRelease, DnsDomain, FileMode,
    NodeName, PciAddress, PciId, PromDuration, TimeLimit, VirtiofsTag,
};

/// Default libvirt connection.
pub const DEFAULT_URI: &str = "qemu:///system";
/// Default share of a node's memory kept back from SLURM jobs, in percent.
pub const DEFAULT_MEMORY_HEADROOM_PERCENT: u8 = 5;
/// Default vCPUs per node.
pub const DEFAULT_VCPUS: u32 = 2;
/// Default memory per node.
pub const DEFAULT_MEMORY: ByteSize = ByteSize::from_gib(2);
/// Default disk size per node (the qcow2 overlay's virtual size).
pub const DEFAULT_DISK: ByteSize = ByteSize::from_gib(20);
/// Default SSH user.
pub const DEFAULT_SSH_USER: &str = "root";
/// Default SSH port.
pub const DEFAULT_SSH_PORT: u16 = 22;
/// Default first index of a counted node group.
pub const DEFAULT_FIRST_INDEX: u32 = 1;
/// Default BeeGFS client mount point.
pub const DEFAULT_BEEGFS_MOUNT: &str = "/mnt/beegfs";
/// Default BeeGFS management data directory.
pub const DEFAULT_BEEGFS_MGMTD_DIR: &str = "/data/beegfs/mgmtd";
/// Default BeeGFS metadata directory.
pub const DEFAULT_BEEGFS_META_DIR: &str = "/data/beegfs/meta";
/// Default BeeGFS storage target directory.
pub const DEFAULT_BEEGFS_STORAGE_DIR: &str = "/data/beegfs/storage";
/// Default component of a BeeGFS apt repository.
pub const DEFAULT_BEEGFS_REPO_COMPONENT: &str = "non-free";
/// Default Debian release of the guests.
pub const DEFAULT_RELEASE: DebianRelease = DebianRelease::Bookworm;
/// Default root filesystem size of a built image.
pub const DEFAULT_IMAGE_SIZE: ByteSize = ByteSize::from_gib(4);
/// Default Debian mirror for image builds.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Name of the partition made when the file lists none.
pub const DEFAULT_PARTITION: &str = "compute";

/// One hpc-up cluster: its VMs, their network and images, and what runs on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "hpc-up cluster")]
pub struct ClusterFile {
    /// The cluster's name. It prefixes every libvirt object the cluster owns and identifies
    /// them in libvirt metadata, so two clusters on one host need different names.
    #[schemars(example = &"lab")]
    pub name: NodeName,

    /// Default libvirt connection and domain type for every node (a node group or node may
    /// override them).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"uri": "qemu:///system", "domain-type": "kvm"}))]
    pub libvirt: LibvirtSettings,

    /// The libvirt hypervisor hosts the cluster is spread over. Without this list every node
    /// lives on its `libvirt.uri` (default `qemu:///system`). With it, each node lives on one
    /// of these hosts: the one its `host` names, else the one hpc-up places it on (the host
    /// with the fewest vCPUs placed so far where it fits); `libvirt.uri` is then not allowed
    /// anywhere. At most 64 hosts.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([
        {"name": "hv1", "uri": "qemu:///system", "address": "192.168.50.1", "capacity": {"vcpus": 16, "memory": "64GiB"}},
        {"name": "hv2", "uri": "qemu+ssh://root@192.168.50.2/system", "address": "192.168.50.2"}
    ]))]
    pub hosts: Vec<HostEntry>,

    /// The cluster network: one libvirt network with a bridge, static DHCP entries and DNS.
    #[schemars(example = &serde_json::json!({"cidr": "10.77.0.0/24", "bridge": "hpcbr0"}))]
    pub network: NetworkSettings,

    /// The guest image every node's disk is an overlay of, and optional direct kernel boot.
    #[schemars(example = &serde_json::json!({"base": "${HOME}/.local/share/hpc-up/images/base.qcow2"}))]
    pub image: ImageSettings,

    /// Where hpc-up keeps this cluster's journal, keys, disk overlays and console logs.
    /// Default: `$XDG_STATE_HOME/hpc-up/<name>` (`~/.local/state/hpc-up/<name>`).
    #[serde(default)]
    #[schemars(example = &"${HOME}/.local/state/hpc-up/lab")]
    pub state_dir: Option<String>,

    /// How hpc-up logs in to the nodes.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"user": "root"}))]
    pub ssh: SshSettings,

    /// Host directories shared into every node with virtio-fs.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"tag": "shared", "host-path": "/srv/hpc/shared", "mount-point": "/shared"}]))]
    pub virtiofs: Vec<VirtiofsMount>,

    /// The controller node(s): SLURM controller, and by default BeeGFS management and metadata.
    #[schemars(example = &serde_json::json!({"nodes": [{"name": "ctl"}], "memory": "2GiB"}))]
    pub controller: NodeGroup,

    /// Compute node groups.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"name": "cn{index}", "count": 2}]))]
    pub compute: Vec<NodeGroup>,

    /// SLURM, deployed on the nodes when present.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"partitions": [{"name": "debug", "nodes": ["cn[1-2]"], "default": true}]}))]
    pub slurm: Option<SlurmSettings>,

    /// BeeGFS, deployed on the nodes when present and enabled.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"version": "7.4.6"}))]
    pub beegfs: Option<BeegfsSettings>,

    /// Monitoring, deployed on the nodes when present and enabled: Prometheus on one node,
    /// node exporter on every node, SLURM metrics (with a `slurm` section).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"server": "ctl", "retention": "15d"}))]
    pub monitoring: Option<MonitoringSettings>,

    /// OCI containers in SLURM jobs (`srun --container`): the runtime and SLURM's `oci.conf`
    /// on every compute node, bundles built from Debian packages by `hpc-up container build`.
    /// Needs a `slurm` section.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"bundles": "/shared/containers", "images": [{"name": "debian"}]}))]
    pub containers: Option<ContainerSettings>,

    /// MPI across nodes: Open MPI with PMIx in the image, SLURM's `MpiDefault`. Needs a
    /// `slurm` section.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"default": "pmix"}))]
    pub mpi: Option<MpiSettings>,
}

/// Default Prometheus web port.
pub const DEFAULT_PROMETHEUS_PORT: u16 = 9090;
/// Default node exporter port.
pub const DEFAULT_NODE_EXPORTER_PORT: u16 = 9100;
/// Default Prometheus retention.
pub const DEFAULT_RETENTION: &str = "15d";
/// Default scrape interval.
pub const DEFAULT_SCRAPE_INTERVAL: &str = "15s";
/// Default lines of each log a failed job's bundle keeps.
pub const DEFAULT_FAILURE_LOG_LINES: u32 = 50;

/// Prometheus, node exporter and SLURM metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MonitoringSettings {
    /// Deploy monitoring. Default: true when the section is present.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub enabled: bool,

    /// The node that runs Prometheus. Default: the first controller.
    #[serde(default)]
    #[schemars(example = &"ctl")]
    pub server: Option<NodeName>,

    /// Prometheus's web and API port on that node (reached from the host at the node's
    /// address). Default: 9090.
    #[serde(default)]
    #[schemars(example = 9090, range(min = 1))]
    pub port: Option<u16>,

    /// node exporter's port on every node. Default: 9100.
    #[serde(default)]
    #[schemars(example = 9100, range(min = 1))]
    pub node_exporter_port: Option<u16>,

    /// How long Prometheus keeps samples (`--storage.tsdb.retention.time`). Default: `15d`.
    #[serde(default)]
    #[schemars(example = &"15d")]
    pub retention: Option<PromDuration>,

    /// How often every target is scraped. Default: `15s`.
    #[serde(default)]
    #[schemars(example = &"15s")]
    pub scrape_interval: Option<PromDuration>,

    /// SLURM metrics (nodes and jobs per state and partition) through node exporter's
    /// textfile collector on the SLURM controller. Default: true with a `slurm` section.
    #[serde(default)]
    #[schemars(example = true)]
    pub slurm_metrics: Option<bool>,
}

/// OCI containers in SLURM jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContainerSettings {
    /// Deploy container support. Default: true when the section is present.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub enabled: bool,

    /// The OCI runtime SLURM runs (`crun` or `runc`, both from Debian). Default: `crun`.
    #[serde(default)]
    #[schemars(example = &"crun")]
    pub runtime: ContainerRuntime,

    /// Where the bundles live on the nodes: a directory inside a read-write virtio-fs share
    /// that every compute node mounts (`hpc-up container build` writes into the share's
    /// host directory). Jobs run `srun --container=<bundles>/<name>`.
    #[schemars(example = &"/shared/containers")]
    pub bundles: String,

    /// Container images, each built from Debian packages into an OCI bundle by
    /// `hpc-up container build <file> <name>`.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"name": "debian", "packages": ["python3"]}]))]
    pub images: Vec<ContainerImage>,
}

/// The OCI runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerRuntime {
    /// crun (C, small, fast to start).
    #[default]
    Crun,
    /// runc (the reference runtime).
    Runc,
}

impl ContainerRuntime {
    /// The command's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Crun => "crun",
            Self::Runc => "runc",
        }
    }
}

/// One container image, built from Debian packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContainerImage {
    /// Its name: the bundle's directory under `bundles`.
    #[schemars(example = &"debian")]
    pub name: NodeName,

    /// Its Debian release. Default: the guests' (`image.release`).
    #[serde(default)]
    #[schemars(example = &"trixie")]
    pub release: Option<DebianRelease>,

    /// Packages beside Debian's required ones (`mmdebstrap --variant=minbase`).
    #[serde(default)]
    #[schemars(example = &serde_json::json!(["python3"]))]
    pub packages: Vec<String>,
}

/// MPI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MpiSettings {
    /// Deploy MPI. Default: true when the section is present.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub enabled: bool,

    /// `MpiDefault` in slurm.conf: what `srun` uses without `--mpi`. Default: `pmix`.
    #[serde(default)]
    #[schemars(example = &"pmix")]
    pub default: MpiPlugin,
}

/// A SLURM MPI plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MpiPlugin {
    /// PMIx (Open MPI's own launcher protocol).
    #[default]
    Pmix,
    /// PMI-2.
    Pmi2,
    /// None: `srun --mpi=pmix` must be asked for.
    None,
}

impl MpiPlugin {
    /// Its name in slurm.conf.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pmix => "pmix",
            Self::Pmi2 => "pmi2",
            Self::None => "none",
        }
    }
}

/// What a failed job leaves behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobFailures {
    /// Where each failed job leaves its bundle (`<dir>/<job id>/<node>/`): a directory
    /// inside a read-write virtio-fs share or the BeeGFS mount that every compute node has.
    #[schemars(example = &"/shared/job-failures")]
    pub dir: String,

    /// Lines of slurmd's log and of the kernel log kept per node. Default: 50.
    #[serde(default)]
    #[schemars(example = 50, range(min = 1, max = 10000))]
    pub log_lines: Option<u32>,
}

/// One libvirt hypervisor host of a cluster spread over several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HostEntry {
    /// The host's name, which a node group's or node's `host` refers to (written like a node
    /// name). Unique among the hosts.
    #[schemars(example = &"hv1")]
    pub name: NodeName,

    /// The libvirt connection URI of the host. Unique among the hosts, and at most one host
    /// may have a local URI (no host part, like `qemu:///system`): this machine.
    #[schemars(example = &"qemu+ssh://root@192.168.50.2/system")]
    pub uri: ConnectUri,

    /// The IPv4 address the other hosts reach this one on (the underlay of the cluster
    /// network between hosts). Required when there are two or more hosts; unique among the
    /// hosts, and outside the cluster network.
    #[serde(default)]
    #[schemars(example = &"192.168.50.2")]
    pub address: Option<Ipv4Addr>,

    /// What hpc-up may place on the host, all nodes together. Default: no limit.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"vcpus": 16, "memory": "64GiB"}))]
    pub capacity: Option<HostCapacity>,
}

/// What hpc-up may place on one host: the sum of its nodes' vCPUs and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HostCapacity {
    /// Virtual CPUs of all the host's nodes together (at least 1).
    #[schemars(example = 16, range(min = 1))]
    pub vcpus: u32,

    /// Memory of all the host's nodes together (at least 128MiB, the smallest node).
    #[schemars(example = &"64GiB")]
    pub memory: ByteSize,
}

/// Where VMs are defined and how they are accelerated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LibvirtSettings {
    /// libvirt connection URI. A node on another host uses `qemu+ssh://HOST/system`.
    /// Not allowed when the file has a `hosts:` list (a node's `host` names its host then).
    /// Default: `qemu:///system`.
    #[serde(default)]
    #[schemars(example = &"qemu:///system")]
    pub uri: Option<ConnectUri>,

    /// `kvm` (hardware acceleration) or `qemu` (TCG emulation: slower, works nested).
    /// Default: `kvm`.
    #[serde(default)]
    #[schemars(example = &"kvm")]
    pub domain_type: Option<DomainType>,
}

/// The libvirt domain type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DomainType {
    /// Hardware virtualisation through /dev/kvm.
    #[default]
    Kvm,
    /// Software emulation (TCG).
    Qemu,
}

/// The cluster network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NetworkSettings {
    /// The IPv4 network of the cluster. Nodes without an `ip` get addresses from it in order.
    #[schemars(example = &"10.77.0.0/24")]
    pub cidr: Cidr,

    /// Name of the host bridge libvirt creates (at most 15 bytes).
    #[schemars(example = &"hpcbr0")]
    pub bridge: BridgeName,

    /// `isolated` (nodes reach each other and the host only) or `nat` (also the outside
    /// world through the host). Default: `isolated`.
    #[serde(default)]
    #[schemars(example = &"isolated")]
    pub mode: NetworkMode,

    /// DNS domain of the nodes. Default: `<name>.test`.
    #[serde(default)]
    #[schemars(example = &"hpc.test")]
    pub domain: Option<DnsDomain>,

    /// The host's address on the bridge. Default: the first address of the network.
    #[serde(default)]
    #[schemars(example = &"10.77.0.1")]
    pub gateway: Option<Ipv4Addr>,
}

/// How the cluster network reaches beyond the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// No forwarding: nodes and host only.
    #[default]
    Isolated,
    /// NAT through the host.
    Nat,
}

/// The guest image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageSettings {
    /// Absolute path of the base qcow2 image; each node's disk is an overlay backed by it.
    /// `${VAR}` is expanded.
    #[schemars(example = &"${HOME}/.local/share/hpc-up/images/base.qcow2")]
    pub base: String,

    /// The Debian release of the guests: `bookworm` (Debian 12: kernel 6.1, SLURM 22.05) or
    /// `trixie` (Debian 13: kernel 6.12, SLURM 24.11). `hpc-up image build` builds it, and
    /// `up` refuses an image hpc-up built for another release. Default: `bookworm`.
    #[serde(default)]
    #[schemars(example = &"trixie")]
    pub release: Option<DebianRelease>,

    /// Kernel for direct kernel boot (optional; without it the disk boots by itself).
    #[serde(default)]
    #[schemars(example = &"${HOME}/.local/share/hpc-up/images/vmlinuz")]
    pub kernel: Option<String>,

    /// Initrd for direct kernel boot (needs `kernel`).
    #[serde(default)]
    #[schemars(example = &"${HOME}/.local/share/hpc-up/images/initrd.img")]
    pub initrd: Option<String>,

    /// Extra kernel command line for direct kernel boot (needs `kernel`); hpc-up adds
    /// `systemd.hostname=<node>` itself.
    #[serde(default)]
    #[schemars(example = &"root=LABEL=hpcroot rw console=ttyS0")]
    pub cmdline: Option<String>,

    /// Packages `hpc-up image build` installs on top of its own list (SLURM, munge, MariaDB,
    /// OpenSSH, the cloud kernel…).
    #[serde(default)]
    #[schemars(example = &serde_json::json!(["htop", "openmpi-bin"]))]
    pub packages: Vec<String>,

    /// Local `.deb` files `hpc-up image build` installs too (e.g. BeeGFS packages). `${VAR}`
    /// is expanded.
    #[serde(default)]
    #[schemars(example = &serde_json::json!(["${HOME}/debs/beegfs-client_7.4.6_amd64.deb"]))]
    pub debs: Vec<String>,

    /// Size of the built image's root filesystem (overlays may be larger). Default: 4GiB.
    #[serde(default)]
    #[schemars(example = &"4GiB")]
    pub size: Option<ByteSize>,

    /// Debian mirror `hpc-up image build` installs from. Default: `http://deb.debian.org/debian`.
    #[serde(default)]
    #[schemars(example = &"http://deb.debian.org/debian")]
    pub mirror: Option<String>,
}

/// SSH access to the nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SshSettings {
    /// User hpc-up logs in as. Default: `root`.
    #[serde(default)]
    #[schemars(example = &"root")]
    pub user: Option<String>,

    /// Private key file. Default: a key generated once for the cluster in its state directory.
    #[serde(default)]
    #[schemars(example = &"${HOME}/.ssh/id_ed25519")]
    pub key: Option<String>,

    /// SSH port on the nodes. Default: 22.
    #[serde(default)]
    #[schemars(example = 22, range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// A group of nodes with the same shape: either an explicit list (`nodes`) or `count` nodes
/// named by a pattern (`name`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeGroup {
    /// The nodes of the group, one by one.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"name": "ctl", "ip": "10.77.0.10"}]))]
    pub nodes: Option<Vec<NodeEntry>>,

    /// Name pattern for a counted group: `{index}` is replaced by the node's number, and
    /// `{index:02}` pads it with zeros to two digits.
    #[serde(default)]
    #[schemars(example = &"cn{index}")]
    pub name: Option<String>,

    /// Number of nodes in a counted group.
    #[serde(default)]
    #[schemars(example = 2, range(min = 1, max = 4096))]
    pub count: Option<u32>,

    /// Number of the first node of a counted group. Default: 1.
    #[serde(default)]
    #[schemars(example = 1, range(min = 0, max = 4_294_967_295u32))]
    pub first_index: Option<u32>,

    /// Address of the first node of a counted group; the others follow it. Default: the next
    /// free addresses of the network.
    #[serde(default)]
    #[schemars(example = &"10.77.0.11")]
    pub first_ip: Option<Ipv4Addr>,

    /// Virtual CPUs per node. Default: 2.
    #[serde(default)]
    #[schemars(example = 2, range(min = 1, max = 1024))]
    pub vcpus: Option<u32>,

    /// Memory per node. Default: 2GiB.
    #[serde(default)]
    #[schemars(example = &"4GiB")]
    pub memory: Option<ByteSize>,

    /// Disk size per node (virtual size of its overlay). Default: 20GiB.
    #[serde(default)]
    #[schemars(example = &"20GiB")]
    pub disk: Option<ByteSize>,

    /// libvirt connection and domain type for this group.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"domain-type": "qemu"}))]
    pub libvirt: LibvirtSettings,

    /// The host of `hosts:` every node of this group lives on (a node may name its own).
    /// Default: hpc-up places each node on a host where it fits.
    #[serde(default)]
    #[schemars(example = &"hv1")]
    pub host: Option<NodeName>,

    /// Host directories shared into every node of this group.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"tag": "datasets", "host-path": "/data/datasets", "mount-point": "/mnt/datasets", "readonly": true}]))]
    pub virtiofs: Vec<VirtiofsMount>,

    /// PCIe devices passed through to the node (only for a group of one node).
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"address": "0000:3b:00.0", "kind": "gpu"}]))]
    pub pci_devices: Vec<PciDevice>,
}

/// One node of an explicit list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeEntry {
    /// The node's host name.
    #[schemars(example = &"ctl")]
    pub name: NodeName,

    /// The node's address. Default: the next free address of the network.
    #[serde(default)]
    #[schemars(example = &"10.77.0.10")]
    pub ip: Option<Ipv4Addr>,

    /// libvirt connection and domain type for this node.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"uri": "qemu+ssh://root@host2/system"}))]
    pub libvirt: LibvirtSettings,

    /// The host of `hosts:` this node lives on. Default: its group's `host`, else the host
    /// hpc-up places it on.
    #[serde(default)]
    #[schemars(example = &"hv2")]
    pub host: Option<NodeName>,

    /// Host directories shared into this node, in addition to the group's.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"tag": "scratch", "host-path": "/scratch/ctl", "mount-point": "/scratch"}]))]
    pub virtiofs: Vec<VirtiofsMount>,

    /// PCIe devices passed through to this node.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"address": "0000:3b:00.0", "kind": "gpu", "vendor-id": "10de", "device-id": "20b0"}]))]
    pub pci_devices: Vec<PciDevice>,
}

/// A host directory shared into a node with virtio-fs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VirtiofsMount {
    /// The tag the guest mounts by; unique per node, at most 36 bytes.
    #[schemars(example = &"datasets")]
    pub tag: VirtiofsTag,

    /// Absolute path of the host directory. `${VAR}` is expanded.
    #[schemars(example = &"${HOME}/datasets")]
    pub host_path: String,

    /// Absolute path where the guest mounts it.
    #[schemars(example = &"/mnt/datasets")]
    pub mount_point: String,

    /// Share read-only. Enforced by the guest's `ro` mount: the libvirt of Debian 12 has no
    /// read-only virtio-fs. Default: false.
    #[serde(default)]
    #[schemars(example = false)]
    pub readonly: bool,

    /// Create the host directory (mode 0755) when it does not exist. Default: false (a
    /// missing directory stops `up` before anything is created).
    #[serde(default)]
    #[schemars(example = true)]
    pub create: bool,

    /// Owner of the mount point in the guest (the shared directory itself, so the host sees
    /// it too; not for read-only shares). Default: left as it is.
    #[serde(default)]
    #[schemars(example = &"root")]
    pub owner: Option<String>,

    /// Group of the mount point in the guest. Default: left as it is.
    #[serde(default)]
    #[schemars(example = &"root")]
    pub group: Option<String>,

    /// Mode of the mount point in the guest, quoted octal. Default: left as it is.
    #[serde(default)]
    #[schemars(example = &"0755")]
    pub mode: Option<FileMode>,

    /// Extra mount options (comma-separated). Default: `defaults`.
    #[serde(default)]
    #[schemars(example = &"relatime")]
    pub options: Option<String>,
}

/// A PCIe device passed through to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PciDevice {
    /// Host PCI address of the device.
    #[schemars(example = &"0000:3b:00.0")]
    pub address: PciAddress,

    /// What the device is: `gpu` devices count as SLURM GPUs. Default: `other`.
    #[serde(default)]
    #[schemars(example = &"gpu")]
    pub kind: PciKind,

    /// Expected vendor id; preflight checks the host device against it.
    #[serde(default)]
    #[schemars(example = &"10de")]
    pub vendor_id: Option<PciId>,

    /// Expected device id; preflight checks the host device against it.
    #[serde(default)]
    #[schemars(example = &"20b0")]
    pub device_id: Option<PciId>,
}

/// Kind of a passed-through PCIe device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PciKind {
    /// A GPU or other accelerator.
    Gpu,
    /// A network adapter.
    Nic,
    /// Anything else.
    #[default]
    Other,
}

/// SLURM on the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SlurmSettings {
    /// `ClusterName` in slurm.conf. Default: the cluster's name.
    #[serde(default)]
    #[schemars(example = &"lab")]
    pub cluster_name: Option<NodeName>,

    /// Partitions. Default: one partition `compute` with every compute node, the default.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"name": "debug", "nodes": ["cn[1-2]"], "default": true, "max-time": "1:00:00"}]))]
    pub partitions: Vec<Partition>,

    /// Job accounting with slurmdbd and MariaDB.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"enabled": true}))]
    pub accounting: Accounting,

    /// Generic resources (GPUs).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"gpus": [{"nodes": ["gpu1"], "type": "a100", "count": 1}]}))]
    pub gres: Gres,

    /// cgroup constraints for jobs.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"constrain-cores": true, "constrain-ram-space": true}))]
    pub cgroup: Cgroup,

    /// Memory kept back from jobs on every node, in percent of what `slurmd -C` reports:
    /// `RealMemory` is the reported memory minus this share, so a node does not turn INVAL
    /// over the few MiB the kernel takes after the measurement. Default: 5.
    #[serde(default)]
    #[schemars(example = 5, range(min = 0, max = 50))]
    pub memory_headroom_percent: Option<u8>,

    /// Job failure capture: an `Epilog` on every compute node that leaves a small
    /// diagnostic bundle (exit code, node, slurmd's and the kernel's log tails) for every
    /// job that failed. Off when absent.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"dir": "/shared/job-failures"}))]
    pub job_failures: Option<JobFailures>,
}

/// A SLURM partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Partition {
    /// Partition name.
    #[schemars(example = &"debug")]
    pub name: NodeName,

    /// Nodes of the partition: node names or hostlist expressions (`cn[1-4]`), or `ALL`.
    #[schemars(example = &serde_json::json!(["cn[1-2]"]))]
    pub nodes: Vec<String>,

    /// The default partition for jobs that name none. Default: false (true when it is the only one).
    #[serde(default)]
    #[schemars(example = true)]
    pub default: bool,

    /// Longest run time of a job. Default: UNLIMITED.
    #[serde(default)]
    #[schemars(example = &"1-00:00:00")]
    pub max_time: Option<TimeLimit>,
}

/// Job accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Accounting {
    /// Run slurmdbd with MariaDB. Default: false.
    #[serde(default)]
    #[schemars(example = true)]
    pub enabled: bool,

    /// Node that runs slurmdbd and MariaDB. Default: the first controller.
    #[serde(default)]
    #[schemars(example = &"ctl")]
    pub host: Option<NodeName>,
}

/// Generic resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Gres {
    /// Let slurmd detect GPUs (`AutoDetect` in gres.conf). Default: `off`.
    #[serde(default)]
    #[schemars(example = &"nvml")]
    pub autodetect: GresAutodetect,

    /// GPUs per node, for nodes whose GPUs are not detected.
    #[serde(default)]
    #[schemars(example = &serde_json::json!([{"nodes": ["gpu[1-2]"], "type": "a100", "count": 1}]))]
    pub gpus: Vec<GpuGres>,
}

/// gres.conf `AutoDetect` mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GresAutodetect {
    /// No auto-detection.
    #[default]
    Off,
    /// NVIDIA NVML.
    Nvml,
    /// NVIDIA /proc based detection.
    Nvidia,
    /// AMD ROCm SMI.
    Rsmi,
}

/// GPUs on some nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GpuGres {
    /// The nodes: names or hostlist expressions.
    #[schemars(example = &serde_json::json!(["gpu[1-2]"]))]
    pub nodes: Vec<String>,

    /// GPU type name, e.g. `a100` (optional).
    #[serde(default, rename = "type")]
    #[schemars(example = &"a100")]
    pub gpu_type: Option<String>,

    /// GPUs per node.
    #[schemars(example = 1, range(min = 1, max = 64))]
    pub count: u32,
}

/// cgroup.conf constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Cgroup {
    /// Confine jobs to their allocated cores. Default: true.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub constrain_cores: bool,

    /// Limit jobs to their allocated memory. Default: true.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub constrain_ram_space: bool,

    /// Limit jobs to their allocated devices (GPUs). Default: true.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub constrain_devices: bool,
}

impl Default for Cgroup {
    fn default() -> Self {
        Self {
            constrain_cores: true,
            constrain_ram_space: true,
            constrain_devices: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// BeeGFS on the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BeegfsSettings {
    /// Deploy BeeGFS. Default: true when the section is present.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub enabled: bool,

    /// BeeGFS release: 7.4.x or 8.x (quoted).
    #[schemars(example = &"7.4.6")]
    pub version: BeegfsVersion,

    /// Node running the management service. Default: the first controller.
    #[serde(default)]
    #[schemars(example = &"ctl")]
    pub management: Option<NodeName>,

    /// Nodes running metadata services (names or hostlists). Default: the first controller.
    #[serde(default)]
    #[schemars(example = &serde_json::json!(["ctl"]))]
    pub metadata: Option<Vec<String>>,

    /// Nodes running storage services (names or hostlists). Default: every compute node.
    #[serde(default)]
    #[schemars(example = &serde_json::json!(["cn[1-2]"]))]
    pub storage: Option<Vec<String>>,

    /// Nodes that mount BeeGFS (names or hostlists). Default: every node.
    #[serde(default)]
    #[schemars(example = &serde_json::json!(["ALL"]))]
    pub clients: Option<Vec<String>>,

    /// Management data directory. Default: `/data/beegfs/mgmtd`.
    #[serde(default)]
    #[schemars(example = &"/data/beegfs/mgmtd")]
    pub management_dir: Option<String>,

    /// Metadata directory. Default: `/data/beegfs/meta`.
    #[serde(default)]
    #[schemars(example = &"/data/beegfs/meta")]
    pub metadata_dir: Option<String>,

    /// Storage target directory. Default: `/data/beegfs/storage`.
    #[serde(default)]
    #[schemars(example = &"/data/beegfs/storage")]
    pub storage_dir: Option<String>,

    /// Client mount.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"mount-point": "/mnt/beegfs"}))]
    pub client: BeegfsClient,

    /// Shared-secret authentication between services and clients. Default: true.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub auth: bool,

    /// TLS for the 8.x management API (gRPC, used by the `beegfs` CLI). Default: false (fine
    /// for a lab). `true` needs `tls-cert-file` and `tls-key-file`. BeeGFS 7.x has no TLS.
    #[serde(default)]
    #[schemars(example = false)]
    pub tls: bool,

    /// The management service's TLS certificate (PEM, on this host; `${VAR}` is expanded).
    /// Copied to `/etc/beegfs/cert.pem` on the management node and on every client (the
    /// `beegfs` CLI checks the server with it). Only with `tls: true`.
    #[serde(default)]
    #[schemars(example = &"${HOME}/pki/beegfs-mgmtd.pem")]
    pub tls_cert_file: Option<String>,

    /// The private key of `tls-cert-file` (PEM, on this host). Copied to
    /// `/etc/beegfs/key.pem` (mode 0400) on the management node only. Only with `tls: true`.
    #[serde(default)]
    #[schemars(example = &"${HOME}/pki/beegfs-mgmtd.key")]
    pub tls_key_file: Option<String>,

    /// Where the nodes get the BeeGFS packages (BeeGFS is not in Debian). Default: they are
    /// already installed in the image (for example listed in `image.debs`).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"repo": "https://www.beegfs.io/release/beegfs_7.4.6", "key": "${HOME}/beegfs/GPG-KEY-beegfs"}))]
    pub packages: Option<BeegfsPackages>,

    /// Extra keys per service, written into its config file. Each key is checked against the
    /// keys the chosen release of that service accepts; keys hpc-up sets itself (management
    /// host, directories, ports, authentication) cannot be overridden here.
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"meta": {"tuneNumWorkers": 8}, "client": {"tuneFileCacheType": "native"}}))]
    pub extra_config: BeegfsExtraConfig,
}

/// Where the BeeGFS packages come from: exactly one of `debs` and `repo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BeegfsPackages {
    /// A directory on this host holding the BeeGFS `.deb` files of the configured release
    /// (`beegfs-mgmtd_7.4.6_amd64.deb`, …). They are baked into the image; `hpc-up` checks
    /// that every package a node needs is there in the right version. `${VAR}` is expanded.
    #[serde(default)]
    #[schemars(example = &"${HOME}/debs/beegfs-7.4.6")]
    pub debs: Option<String>,

    /// An apt repository reachable from the guests, e.g. BeeGFS's own
    /// `https://www.beegfs.io/release/beegfs_7.4.6` or a local mirror of it.
    #[serde(default)]
    #[schemars(example = &"https://www.beegfs.io/release/beegfs_7.4.6")]
    pub repo: Option<String>,

    /// The repository's suite (distribution). Default: the guests' release
    /// (`image.release`: `bookworm` or `trixie`).
    #[serde(default)]
    #[schemars(example = &"bookworm")]
    pub suite: Option<String>,

    /// The repository's component. Default: `non-free`.
    #[serde(default)]
    #[schemars(example = &"non-free")]
    pub component: Option<String>,

    /// The repository's signing key (ASCII-armored or binary OpenPGP, on this host). Needed
    /// unless `trusted: true`.
    #[serde(default)]
    #[schemars(example = &"${HOME}/beegfs/GPG-KEY-beegfs")]
    pub key: Option<String>,

    /// Accept the repository without a signature check (a local, unsigned mirror).
    /// Default: false.
    #[serde(default)]
    #[schemars(example = false)]
    pub trusted: bool,
}

/// Extra config keys per BeeGFS service. Values are written as given (`true`, `8`, `native`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BeegfsExtraConfig {
    /// Management service: `beegfs-mgmtd.conf` keys (7.x) or `beegfs-mgmtd.toml` keys (8.x).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"tuneClientAutoRemoveMins": 30}))]
    pub mgmtd: BTreeMap<String, BeegfsValue>,

    /// Metadata service (`beegfs-meta.conf`).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"tuneNumWorkers": 8}))]
    pub meta: BTreeMap<String, BeegfsValue>,

    /// Storage service (`beegfs-storage.conf`).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"tuneNumWorkers": 12}))]
    pub storage: BTreeMap<String, BeegfsValue>,

    /// Client (`beegfs-client.conf`).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"tuneFileCacheType": "native"}))]
    pub client: BTreeMap<String, BeegfsValue>,

    /// Helper daemon (`beegfs-helperd.conf`, 7.x only).
    #[serde(default)]
    #[schemars(example = &serde_json::json!({"tuneNumWorkers": 4}))]
    pub helperd: BTreeMap<String, BeegfsValue>,
}

/// One value of a BeeGFS config key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BeegfsValue {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// Text, written as is.
    Text(String),
}

impl std::fmt::Display for BeegfsValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

/// The BeeGFS client mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BeegfsClient {
    /// Where clients mount BeeGFS. Default: `/mnt/beegfs`.
    #[serde(default)]
    #[schemars(example = &"/mnt/beegfs")]
    pub mount_point: Option<String>,

    /// Extra mount options (comma-separated).
    #[serde(default)]
    #[schemars(example = &"noatime")]
    pub options: Option<String>,
}
