//! Cross-field rules and resolution: [`ClusterFile`] → [`Cluster`], collecting every problem.
//!
//! Every rule reports a [`ValidationError`] that names the JSON pointer of the offending value,
//! so the loader can turn it into `file:line:column`; the rules themselves know nothing of
//! text positions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use crate::diagnostic::Capped;
use crate::file::{
    self, ClusterFile, DomainType, LibvirtSettings, NodeGroup, PciDevice, VirtiofsMount,
};
use crate::limits::{
    MAX_GROUP_NODES, MAX_NODES, MAX_PAD_WIDTH, MAX_PARTITIONS, MAX_PCI_PER_NODE,
    MAX_REFERENCED_NAMES, MAX_SHARES_PER_NODE, MAX_SUGGESTIONS,
};
use crate::model::{
    Beegfs, Cluster, ContainerImage, Containers, Image, JobFailures, MacAddr, Monitoring, Mount,
    Mpi, Network, Node, NodeGpus, Role, Slurm, SlurmPartition, Ssh,
};
use crate::types::{
    ByteSize, ConnectUri, DebianRelease, NodeName, PromDuration, TimeLimit, is_special,
};

mod beegfs;
mod hosts;
use beegfs::resolve_beegfs;
use hosts::{check_host_refs, check_primary, place, resolve_hosts};

/// Looks up an environment variable (injected so that tests and other tools control it).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One broken rule, at one place of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON pointer of the offending value, e.g. `/compute/0/nodes/1/ip`.
    pub at: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// The rules of a cluster file beyond its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Two nodes have one name.
    #[error("node name `{name}` is used twice")]
    DuplicateNode {
        /// The name.
        name: String,
    },
    /// A node group is neither a list nor a count with a pattern.
    #[error("{0}")]
    GroupShape(String),
    /// A name pattern has no usable `{index}`.
    #[error("name pattern `{pattern}` {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why it is bad.
        reason: String,
    },
    /// An address outside the cluster network.
    #[error("{ip} is outside the cluster network {cidr}")]
    IpOutsideNetwork {
        /// The address.
        ip: Ipv4Addr,
        /// The network.
        cidr: String,
    },
    /// An address that no node may have.
    #[error("{ip} is {what} of {cidr} and cannot be a node's address")]
    IpReserved {
        /// The address.
        ip: Ipv4Addr,
        /// Network, broadcast or gateway.
        what: &'static str,
        /// The network.
        cidr: String,
    },
    /// Two nodes have one address.
    #[error("{ip} is already the address of node `{other}`")]
    DuplicateIp {
        /// The address.
        ip: Ipv4Addr,
        /// The node that has it.
        other: String,
    },
    /// Not enough free addresses.
    #[error("the network {cidr} has no free address left for node `{node}`")]
    NetworkFull {
        /// The network.
        cidr: String,
        /// The node that got none.
        node: String,
    },
    /// A gateway outside the network, or on a reserved address.
    #[error("gateway {ip} is not a host address of {cidr}")]
    BadGateway {
        /// The gateway.
        ip: Ipv4Addr,
        /// The network.
        cidr: String,
    },
    /// One tag twice on a node.
    #[error("virtio-fs tag `{tag}` is used twice on node `{node}`")]
    DuplicateTag {
        /// The tag.
        tag: String,
        /// The node.
        node: String,
    },
    /// One guest mount point twice on a node.
    #[error("mount point `{path}` is used twice on node `{node}`")]
    DuplicateMountPoint {
        /// The mount point.
        path: String,
        /// The node.
        node: String,
    },
    /// A path that must be absolute is not.
    #[error("{what} `{path}` must be an absolute path")]
    RelativePath {
        /// What the path is.
        what: &'static str,
        /// The path as written (after expansion).
        path: String,
    },
    /// `${VAR}` names an unset variable.
    #[error("environment variable `{var}` is not set")]
    UnsetVariable {
        /// The variable.
        var: String,
    },
    /// `${` without `}`.
    #[error("unterminated `${{` in `{text}`")]
    BadVariable {
        /// The text.
        text: String,
    },
    /// A number out of its sane range.
    #[error("{what} {value} is out of range: {range}")]
    OutOfRange {
        /// What it is.
        what: &'static str,
        /// The value as written.
        value: String,
        /// The accepted range.
        range: String,
    },
    /// A reference to a node that does not exist.
    #[error("no node is called `{name}`")]
    UnknownNode {
        /// The name.
        name: String,
        /// The closest existing name.
        suggestion: Option<String>,
    },
    /// A hostlist expression that does not parse.
    #[error("`{expr}` is not a hostlist expression like `cn[1-4,7]`{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    BadHostlist {
        /// The expression.
        expr: String,
        /// Why, when known.
        reason: String,
    },
    /// A hostlist naming several nodes that do not exist.
    #[error("`{expr}` names {count} nodes that do not exist (`{first}` is one)")]
    UnknownNodes {
        /// The expression.
        expr: String,
        /// How many of its names are not nodes.
        count: usize,
        /// One of them.
        first: String,
    },
    /// A list of node references naming more nodes than a cluster can have.
    #[error("{what} names more than {limit} nodes")]
    TooManyNames {
        /// What the list is.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// More of something than the loader accepts (see [`crate::limits`]).
    #[error("{what}: at most {limit}")]
    TooMany {
        /// What there are too many of.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// One PCI device given to two nodes (or twice to one).
    #[error("PCI device {address} is already given to node `{other}`")]
    DuplicatePci {
        /// The address.
        address: String,
        /// The node that has it.
        other: String,
    },
    /// Initrd or cmdline without a kernel.
    #[error("`{field}` needs `kernel` (direct kernel boot)")]
    NeedsKernel {
        /// `initrd` or `cmdline`.
        field: &'static str,
    },
    /// More than one default partition.
    #[error("partition `{name}` is a second default partition (`{first}` is one already)")]
    TwoDefaultPartitions {
        /// This partition.
        name: String,
        /// The first default.
        first: String,
    },
    /// One partition name twice.
    #[error("partition `{name}` is defined twice")]
    DuplicatePartition {
        /// The name.
        name: String,
    },
    /// A partition or list with no nodes.
    #[error("{what} lists no nodes")]
    NoNodes {
        /// What it is.
        what: &'static str,
    },
    /// Two nodes' derived MACs still collide after [`MAC_ATTEMPTS`] hashes (never seen;
    /// rename one).
    #[error("the MAC derived for `{node}` collides with `{other}`'s; rename one of them")]
    MacCollision {
        /// This node.
        node: String,
        /// The other node.
        other: String,
    },
    /// A guest path that is not absolute or has odd characters.
    #[error("{what} `{value}` is not valid: {reason}")]
    BadValue {
        /// What it is.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Two fields of which exactly one must be set are both set, or neither is.
    #[error("{what} needs exactly one of `{a}` and `{b}`")]
    ExactlyOne {
        /// What they describe.
        what: &'static str,
        /// One field.
        a: &'static str,
        /// The other.
        b: &'static str,
    },
    /// A field that only means something together with another one.
    #[error("`{field}` applies only with {with}")]
    OnlyWith {
        /// The field.
        field: &'static str,
        /// What it needs.
        with: &'static str,
    },
    /// A directory every compute node must share is not inside a read-write share of one.
    #[error(
        "{what} `{path}` must be inside a read-write virtio-fs share or the BeeGFS mount of every compute node; `{node}` has none there"
    )]
    NotShared {
        /// What the directory is for.
        what: &'static str,
        /// The directory.
        path: String,
        /// A compute node without it.
        node: String,
    },
    /// A field that needs other fields.
    #[error("`{field}` needs {needs}")]
    Needs {
        /// The field.
        field: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// `host:` names no host of `hosts:`.
    #[error("no host of `hosts:` is called `{name}`; the hosts are {known}")]
    UnknownHost {
        /// The name.
        name: String,
        /// The hosts' names, quoted and comma-separated.
        known: String,
    },
    /// `host:` in a file without a `hosts:` list.
    #[error("`host: {name}` needs a `hosts:` list that names it")]
    NoHosts {
        /// The name.
        name: String,
    },
    /// `libvirt.uri` in a file with a `hosts:` list.
    #[error(
        "`libvirt.uri` cannot be used with `hosts:`: name a host of `hosts:` instead (`host: {example}`)"
    )]
    UriWithHosts {
        /// The first host's name.
        example: String,
    },
    /// Two hosts have one name.
    #[error("host name `{name}` is used twice")]
    DuplicateHost {
        /// The name.
        name: String,
    },
    /// Two hosts have one URI.
    #[error("libvirt URI `{uri}` is already the URI of host `{other}`")]
    DuplicateHostUri {
        /// The URI.
        uri: String,
        /// The host that has it.
        other: String,
    },
    /// Two hosts have one address.
    #[error("{ip} is already the address of host `{other}`")]
    DuplicateHostAddress {
        /// The address.
        ip: Ipv4Addr,
        /// The host that has it.
        other: String,
    },
    /// A host's address inside the cluster network.
    #[error(
        "the address {ip} of host `{host}` is inside the cluster network {cidr}; give the address the other hosts reach it on"
    )]
    HostAddressInNetwork {
        /// The host.
        host: String,
        /// Its address.
        ip: Ipv4Addr,
        /// The network.
        cidr: String,
    },
    /// A host without an address when there are several.
    #[error(
        "host `{host}` needs an `address` (the IPv4 address the other hosts reach it on): the cluster has {count} hosts"
    )]
    HostNeedsAddress {
        /// The host.
        host: String,
        /// How many hosts there are.
        count: usize,
    },
    /// A second host with a local URI.
    #[error(
        "host `{host}` has a local URI `{uri}`, and so has host `{other}`; at most one host can be this machine"
    )]
    TwoLocalHosts {
        /// This host.
        host: String,
        /// Its URI.
        uri: String,
        /// The host with the first local URI.
        other: String,
    },
    /// With several hosts, the controller's host (the primary) has a remote URI.
    #[error(
        "the controller is on host `{host}`, whose URI `{uri}` is remote; with several hosts the controller's host must be this machine (a local URI such as `qemu:///system`): hpc-up runs there, reaches every node through that host's bridge, and its network is the cluster's one DHCP server"
    )]
    PrimaryHostRemote {
        /// The controller's host.
        host: String,
        /// Its URI.
        uri: String,
        /// The host with a local URI, if there is one.
        local: Option<String>,
    },
    /// A node pinned to a host that has no room left for it.
    #[error("node `{node}` needs {needs}, but host `{host}` has only {free} free of its capacity")]
    PinnedDoesNotFit {
        /// The node.
        node: String,
        /// Its host.
        host: String,
        /// What the node needs (`2 vCPUs, 4GiB`).
        needs: String,
        /// What is left of the host's capacity.
        free: String,
    },
    /// A node no host has room for.
    #[error("node `{node}` needs {needs} and fits on no host; free: {free}")]
    NoHostFits {
        /// The node.
        node: String,
        /// What the node needs.
        needs: String,
        /// What is left on each host (`` `hv1` 1 vCPU, 2GiB; … ``).
        free: String,
    },
    /// A BeeGFS feature the configured release does not have.
    #[error("{what} does not exist in BeeGFS {version}")]
    NotInBeegfsVersion {
        /// The feature.
        what: &'static str,
        /// The configured release.
        version: String,
    },
}

impl ErrorKind {
    /// A hint for fixing the problem, when there is one.
    pub fn help(&self) -> Option<String> {
        match self {
            Self::UnknownNode {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            Self::UnknownNode { .. } => {
                Some("name a node of `controller` or `compute`, a hostlist, or `ALL`".into())
            }
            Self::GroupShape(_) => Some(
                "write either `nodes: [{name: ctl}]` or `name: cn{index}` with `count: 2`".into(),
            ),
            Self::NetworkFull { .. } => Some("use a larger network (a shorter prefix)".into()),
            Self::DuplicatePci { .. } => Some(
                "a device can be passed through to one VM only; a counted group of more than one node cannot carry PCI devices"
                    .into(),
            ),
            Self::UnsetVariable { var } => Some(format!("set it (`export {var}=…`) or write the path out")),
            Self::NotInBeegfsVersion { .. } => Some("remove it, or choose a release that has it".into()),
            Self::PinnedDoesNotFit { .. } => Some(
                "raise the host's `capacity`, make the nodes smaller, or pin fewer nodes to it".into(),
            ),
            Self::PrimaryHostRemote { local: Some(l), .. } => Some(format!(
                "pin the controller to host `{l}` (`host: {l}` under `controller:`), or run hpc-up on the controller's host"
            )),
            Self::PrimaryHostRemote { local: None, .. } => Some(
                "give the controller's host a local URI (`qemu:///system`) and run hpc-up there".into(),
            ),
            Self::NoHostFits { .. } => {
                Some("raise a host's `capacity`, add a host, or make the nodes smaller".into())
            }
            _ => None,
        }
    }
}

/// Limits for node sizes.
const VCPUS_MAX: u32 = 1024;
const MEMORY_MIN: ByteSize = ByteSize::from_mib(128);
const MEMORY_MAX: ByteSize = ByteSize::from_gib(16 * 1024);
const DISK_MIN: ByteSize = ByteSize::from_gib(1);
const DISK_MAX: ByteSize = ByteSize::from_gib(64 * 1024);

struct Ctx<'a> {
    env: EnvLookup<'a>,
    /// The problems found.
    errors: Capped<ValidationError>,
    /// "Did you mean" suggestions still to give.
    suggestions: usize,
    /// The cluster already has [`MAX_NODES`] nodes (said once).
    cluster_full: bool,
}

impl Ctx<'_> {
    fn err(&mut self, at: impl Into<String>, kind: ErrorKind) {
        self.errors.push(ValidationError {
            at: at.into(),
            kind,
        });
    }

    /// The existing name closest to `name`, while the file's suggestion budget lasts.
    fn suggest(&mut self, name: &str, names: &Names<'_>) -> Option<String> {
        if self.suggestions == 0 {
            return None;
        }
        self.suggestions -= 1;
        names.closest(name)
    }

    /// Expand `${VAR}` and require an absolute result.
    fn path(&mut self, at: &str, what: &'static str, raw: &str) -> Option<PathBuf> {
        let expanded = self.expand(at, raw)?;
        if !expanded.starts_with('/') {
            self.err(
                at,
                ErrorKind::RelativePath {
                    what,
                    path: expanded,
                },
            );
            return None;
        }
        Some(PathBuf::from(expanded))
    }

    fn expand(&mut self, at: &str, raw: &str) -> Option<String> {
        match expand_vars(raw, self.env) {
            Ok(s) => Some(s),
            Err(kind) => {
                self.err(at, kind);
                None
            }
        }
    }
}

/// Expand `${NAME}` references; `$$` is a literal `$`.
pub fn expand_vars(raw: &str, env: EnvLookup<'_>) -> Result<String, ErrorKind> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(ErrorKind::BadVariable {
                    text: raw.to_owned(),
                });
            };
            let var = &tail[..end];
            match env(var) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(ErrorKind::UnsetVariable {
                        var: var.to_owned(),
                    });
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The MAC of a node: locally administered, in QEMU's 52:54:00 range, the rest from a hash
/// of cluster and node name (stable across runs, different across clusters).
pub fn derive_mac(cluster: &str, node: &str) -> MacAddr {
    let digest = Sha256::digest(format!("{cluster}/{node}").as_bytes());
    MacAddr([0x52, 0x54, 0x00, digest[0], digest[1], digest[2]])
}

/// How often a node's MAC is hashed again when another node has it.
const MAC_ATTEMPTS: usize = 16;

/// One node before addresses are assigned.
struct Draft {
    name: NodeName,
    at: String,
    role: Role,
    ip: Option<(Ipv4Addr, String)>,
    vcpus: u32,
    memory: ByteSize,
    disk: ByteSize,
    uri: ConnectUri,
    domain_type: DomainType,
    virtiofs: Vec<(String, VirtiofsMount)>,
    pci: Vec<(String, PciDevice)>,
    /// The host the file pins the node to (its own `host`, else its group's), with the
    /// pointer of that `host` field.
    host: Option<(NodeName, String)>,
    /// Where a problem placing the node is reported: its entry in a list, or its counted
    /// group.
    place_at: String,
}

/// Check `file` and resolve it into a [`Cluster`]; on failure, the problems found (at most
/// [`MAX_COLLECTED`](crate::limits)).
pub fn resolve(file: &ClusterFile, env: EnvLookup<'_>) -> Result<Cluster, Vec<ValidationError>> {
    resolve_counted(file, env).map_err(|r| r.kept)
}

/// [`resolve`], also counting the problems found beyond those kept.
pub(crate) fn resolve_counted(
    file: &ClusterFile,
    env: EnvLookup<'_>,
) -> Result<Cluster, Capped<ValidationError>> {
    let mut cx = Ctx {
        env,
        errors: Capped::default(),
        suggestions: MAX_SUGGESTIONS,
        cluster_full: false,
    };

    // Network.
    let cidr = file.network.cidr.net();
    let cidr_s = cidr.to_string();
    let first_host = hosts(cidr).next().unwrap_or(cidr.network());
    let gateway = file.network.gateway.unwrap_or(first_host);
    if !cidr.contains(&gateway) || is_special(cidr, gateway).is_some() {
        cx.err(
            "/network/gateway",
            ErrorKind::BadGateway {
                ip: gateway,
                cidr: cidr_s.clone(),
            },
        );
    }
    let domain = match &file.network.domain {
        Some(d) => d.clone(),
        None => format!("{}.test", file.name)
            .parse()
            .unwrap_or_else(|_| file.network.domain.clone().unwrap_or_else(fallback_domain)),
    };

    // Image and state.
    let base = cx.path("/image/base", "base image", &file.image.base);
    let kernel = file
        .image
        .kernel
        .as_deref()
        .and_then(|k| cx.path("/image/kernel", "kernel", k));
    let initrd = file
        .image
        .initrd
        .as_deref()
        .and_then(|k| cx.path("/image/initrd", "initrd", k));
    if file.image.kernel.is_none() {
        if file.image.initrd.is_some() {
            cx.err("/image/initrd", ErrorKind::NeedsKernel { field: "initrd" });
        }
        if file.image.cmdline.is_some() {
            cx.err(
                "/image/cmdline",
                ErrorKind::NeedsKernel { field: "cmdline" },
            );
        }
    }
    let debs: Vec<PathBuf> = file
        .image
        .debs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| cx.path(&format!("/image/debs/{i}"), "package file", d))
        .collect();
    for (i, p) in file.image.packages.iter().enumerate() {
        let ok = !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.:=".contains(&b));
        if !ok {
            cx.err(
                format!("/image/packages/{i}"),
                ErrorKind::BadValue {
                    what: "package name",
                    value: p.clone(),
                    reason: "a Debian package name has lower-case letters, digits and `+-.` (optionally `=version`)".into(),
                },
            );
        }
    }
    if let Some(size) = file.image.size
        && (size < ByteSize::from_gib(2) || size > DISK_MAX)
    {
        cx.err(
            "/image/size",
            ErrorKind::OutOfRange {
                what: "image size",
                value: size.to_string(),
                range: format!("2GiB (the packages alone take about 1GiB) to {DISK_MAX}"),
            },
        );
    }
    let state_dir = match &file.state_dir {
        Some(s) => cx.path("/state-dir", "state directory", s),
        None => default_state_dir(file.name.as_str(), env),
    };
    let ssh_key = file
        .ssh
        .key
        .as_deref()
        .and_then(|k| cx.path("/ssh/key", "SSH key", k));

    // Nodes.
    let mut drafts = Vec::new();
    expand_group(
        &mut cx,
        file,
        &file.controller,
        "/controller",
        Role::Controller,
        &mut drafts,
    );
    for (i, g) in file.compute.iter().enumerate() {
        expand_group(
            &mut cx,
            file,
            g,
            &format!("/compute/{i}"),
            Role::Compute,
            &mut drafts,
        );
    }
    check_unique_names(&mut cx, &drafts);
    let ips = assign_ips(&mut cx, cidr, gateway, &drafts);
    check_pci(&mut cx, &drafts);
    let hosts = resolve_hosts(&mut cx, file, cidr);
    check_host_refs(&mut cx, file, &hosts);
    let placement = place(&mut cx, &hosts, &drafts);
    check_primary(&mut cx, &hosts, &drafts, &placement);

    let mut nodes = Vec::with_capacity(drafts.len());
    let mut macs: HashMap<MacAddr, String> = HashMap::new();
    for ((d, ip), placed) in drafts.into_iter().zip(ips).zip(placement) {
        // 24 hashed bits: a cluster of thousands of nodes has a collision or two (the
        // birthday bound), so a node whose MAC is taken hashes again, in file order. The
        // first node keeps the plain derived MAC; a file read twice gives the same MACs.
        let mut mac = derive_mac(file.name.as_str(), d.name.as_str());
        for attempt in 1..=MAC_ATTEMPTS {
            match macs.get(&mac) {
                Some(owner) if owner != d.name.as_str() => {
                    mac = derive_mac(file.name.as_str(), &format!("{}/{attempt}", d.name));
                }
                _ => break,
            }
        }
        if let Some(other) = macs
            .insert(mac, d.name.to_string())
            .filter(|o| *o != d.name.as_str())
        {
            cx.err(
                &d.at,
                ErrorKind::MacCollision {
                    node: d.name.to_string(),
                    other,
                },
            );
        }
        let virtiofs = resolve_mounts(&mut cx, &d);
        let (uri, host) = match placed.and_then(|h| hosts.get(h)) {
            Some(h) => (h.uri.clone(), Some(h.name.clone())),
            None => (d.uri, None),
        };
        nodes.push(Node {
            name: d.name,
            role: d.role,
            ip,
            mac,
            vcpus: d.vcpus,
            memory: d.memory,
            disk: d.disk,
            uri,
            host,
            domain_type: d.domain_type,
            virtiofs,
            pci_devices: d.pci.into_iter().map(|(_, p)| p).collect(),
        });
    }

    let names = Names::new(nodes.iter().map(|n| n.name.as_str()).collect());
    let slurm = file
        .slurm
        .as_ref()
        .map(|s| resolve_slurm(&mut cx, file, s, &nodes, &names));
    let beegfs = file.beegfs.as_ref().filter(|b| b.enabled).map(|b| {
        let release = file.image.release.unwrap_or(file::DEFAULT_RELEASE);
        resolve_beegfs(&mut cx, b, &nodes, &names, release)
    });
    let release = file.image.release.unwrap_or(file::DEFAULT_RELEASE);
    let slurm = slurm.map(|mut sl| {
        if let Some(j) = file.slurm.as_ref().and_then(|s| s.job_failures.as_ref()) {
            sl.job_failures = resolve_job_failures(&mut cx, j, &nodes, beegfs.as_ref());
        }
        sl
    });
    let monitoring = file
        .monitoring
        .as_ref()
        .filter(|m| m.enabled)
        .map(|m| resolve_monitoring(&mut cx, m, &nodes, &names, slurm.is_some()));
    let containers = file
        .containers
        .as_ref()
        .filter(|c| c.enabled)
        .and_then(|c| resolve_containers(&mut cx, c, &nodes, slurm.is_some(), release));
    let mpi = file.mpi.as_ref().filter(|m| m.enabled).map(|m| {
        if slurm.is_none() {
            cx.err(
                "/mpi",
                ErrorKind::Needs {
                    field: "mpi",
                    needs: "a `slurm` section (jobs start MPI ranks through srun)",
                },
            );
        }
        Mpi { default: m.default }
    });

    if !cx.errors.kept.is_empty() {
        return Err(cx.errors);
    }
    let (Some(base), Some(state_dir)) = (base, state_dir) else {
        // Both only fail with an error recorded above.
        return Err(cx.errors);
    };
    Ok(Cluster {
        name: file.name.clone(),
        network: Network {
            cidr,
            bridge: file.network.bridge.clone(),
            mode: file.network.mode,
            domain,
            gateway,
        },
        image: Image {
            base,
            release: file.image.release.unwrap_or(file::DEFAULT_RELEASE),
            kernel,
            initrd,
            cmdline: file.image.cmdline.clone(),
            packages: file.image.packages.clone(),
            debs,
            size: file.image.size.unwrap_or(file::DEFAULT_IMAGE_SIZE),
            mirror: file
                .image
                .mirror
                .clone()
                .unwrap_or_else(|| file::DEFAULT_MIRROR.to_owned()),
        },
        state_dir,
        ssh: Ssh {
            user: file
                .ssh
                .user
                .clone()
                .unwrap_or_else(|| file::DEFAULT_SSH_USER.to_owned()),
            key: ssh_key,
            port: file.ssh.port.unwrap_or(file::DEFAULT_SSH_PORT),
        },
        hosts,
        nodes,
        slurm,
        beegfs,
        monitoring,
        containers,
        mpi,
    })
}

/// `path` (a guest directory) inside a read-write share every compute node has: a virtio-fs
/// share (then also its host directory, the same on every node) or the BeeGFS mount of a
/// cluster whose clients include every compute node. `None` after reporting a problem.
fn shared_on_computes(
    cx: &mut Ctx<'_>,
    at: &str,
    what: &'static str,
    path: &str,
    nodes: &[Node],
    beegfs: Option<&Beegfs>,
) -> Option<Option<PathBuf>> {
    check_guest_path(cx, at.to_owned(), what, path);
    if !path.starts_with('/') {
        return None;
    }
    let inside = |mp: &str| -> Option<String> {
        let mp = mp.trim_end_matches('/');
        if path == mp {
            Some(String::new())
        } else {
            path.strip_prefix(mp)
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_owned)
        }
    };
    let mut host: Option<PathBuf> = None;
    for n in nodes.iter().filter(|n| n.role == Role::Compute) {
        let share = n
            .virtiofs
            .iter()
            .filter(|m| !m.readonly)
            .find_map(|m| inside(&m.mount_point).map(|rel| m.host_path.join(rel)));
        let on_beegfs = beegfs.is_some_and(|b| {
            inside(&b.mount_point).is_some() && b.clients.iter().any(|c| c == &n.name)
        });
        match share {
            Some(h) => {
                host.get_or_insert(h);
            }
            None if on_beegfs => {}
            None => {
                cx.err(
                    at,
                    ErrorKind::NotShared {
                        what,
                        path: path.to_owned(),
                        node: n.name.to_string(),
                    },
                );
                return None;
            }
        }
    }
    Some(host)
}

fn resolve_job_failures(
    cx: &mut Ctx<'_>,
    j: &file::JobFailures,
    nodes: &[Node],
    beegfs: Option<&Beegfs>,
) -> Option<JobFailures> {
    let at = "/slurm/job-failures/dir";
    let host_dir = shared_on_computes(cx, at, "job-failures.dir", &j.dir, nodes, beegfs)?;
    let log_lines = j.log_lines.unwrap_or(file::DEFAULT_FAILURE_LOG_LINES);
    if !(1..=10_000).contains(&log_lines) {
        cx.err(
            "/slurm/job-failures/log-lines",
            ErrorKind::OutOfRange {
                what: "log-lines",
                value: log_lines.to_string(),
                range: "1 to 10000".into(),
            },
        );
    }
    Some(JobFailures {
        dir: j.dir.trim_end_matches('/').to_owned(),
        host_dir,
        log_lines,
    })
}

fn resolve_monitoring(
    cx: &mut Ctx<'_>,
    m: &file::MonitoringSettings,
    nodes: &[Node],
    names: &Names<'_>,
    slurm: bool,
) -> Monitoring {
    let first_controller = nodes
        .iter()
        .find(|n| n.role == Role::Controller)
        .map(|n| n.name.clone());
    let server = match &m.server {
        Some(s) => {
            one_node(cx, "/monitoring/server", s, names);
            s.clone()
        }
        None => first_controller
            .clone()
            .unwrap_or_else(|| nodes[0].name.clone()),
    };
    let port = m.port.unwrap_or(file::DEFAULT_PROMETHEUS_PORT);
    let node_exporter_port = m
        .node_exporter_port
        .unwrap_or(file::DEFAULT_NODE_EXPORTER_PORT);
    for (at, p) in [
        ("/monitoring/port", port),
        ("/monitoring/node-exporter-port", node_exporter_port),
    ] {
        if p == 0 || p == 22 {
            cx.err(
                at,
                ErrorKind::BadValue {
                    what: "port",
                    value: p.to_string(),
                    reason: "port 0 and SSH's port 22 cannot be used".into(),
                },
            );
        }
    }
    if port == node_exporter_port {
        cx.err(
            "/monitoring/node-exporter-port",
            ErrorKind::BadValue {
                what: "node-exporter-port",
                value: port.to_string(),
                reason: "Prometheus's own port on the server node".into(),
            },
        );
    }
    let slurm_metrics = match m.slurm_metrics {
        Some(true) if !slurm => {
            cx.err(
                "/monitoring/slurm-metrics",
                ErrorKind::Needs {
                    field: "slurm-metrics",
                    needs: "a `slurm` section",
                },
            );
            None
        }
        Some(false) => None,
        _ if slurm => first_controller,
        _ => None,
    };
    let parse = |d: &str| {
        d.parse::<PromDuration>()
            .unwrap_or_else(|_| unreachable!("default durations parse"))
    };
    Monitoring {
        server,
        port,
        node_exporter_port,
        retention: m
            .retention
            .clone()
            .unwrap_or_else(|| parse(file::DEFAULT_RETENTION)),
        scrape_interval: m
            .scrape_interval
            .clone()
            .unwrap_or_else(|| parse(file::DEFAULT_SCRAPE_INTERVAL)),
        slurm_metrics,
    }
}

fn resolve_containers(
    cx: &mut Ctx<'_>,
    c: &file::ContainerSettings,
    nodes: &[Node],
    slurm: bool,
    release: DebianRelease,
) -> Option<Containers> {
    if !slurm {
        cx.err(
            "/containers",
            ErrorKind::Needs {
                field: "containers",
                needs: "a `slurm` section (containers run as SLURM job steps)",
            },
        );
    }
    let mut seen = BTreeSet::new();
    let mut images = Vec::new();
    for (i, img) in c.images.iter().enumerate().take(MAX_PARTITIONS) {
        if !seen.insert(img.name.as_str()) {
            cx.err(
                format!("/containers/images/{i}/name"),
                ErrorKind::BadValue {
                    what: "container image name",
                    value: img.name.to_string(),
                    reason: "it is used twice".into(),
                },
            );
        }
        for (k, p) in img.packages.iter().enumerate() {
            let ok = !p.is_empty()
                && p.len() <= 128
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
            if !ok {
                cx.err(
                    format!("/containers/images/{i}/packages/{k}"),
                    ErrorKind::BadValue {
                        what: "Debian package name",
                        value: p.clone(),
                        reason: "lower-case letters, digits, `+`, `-` and `.` only".into(),
                    },
                );
            }
        }
        let mut packages = img.packages.clone();
        packages.sort();
        packages.dedup();
        images.push(ContainerImage {
            name: img.name.clone(),
            release: img.release.unwrap_or(release),
            packages,
        });
    }
    if c.images.len() > MAX_PARTITIONS {
        cx.err(
            format!("/containers/images/{MAX_PARTITIONS}"),
            ErrorKind::TooMany {
                what: "container images".into(),
                limit: MAX_PARTITIONS,
            },
        );
    }
    let host = shared_on_computes(
        cx,
        "/containers/bundles",
        "containers.bundles",
        &c.bundles,
        nodes,
        None,
    )?;
    let Some(host_bundles) = host else {
        cx.err(
            "/containers",
            ErrorKind::Needs {
                field: "containers",
                needs: "compute nodes",
            },
        );
        return None;
    };
    Some(Containers {
        runtime: c.runtime,
        bundles: c.bundles.trim_end_matches('/').to_owned(),
        host_bundles,
        images,
    })
}

fn fallback_domain() -> crate::types::DnsDomain {
    // "hpc.test" always parses; reached only for cluster names that make no valid domain.
    "hpc.test"
        .parse()
        .unwrap_or_else(|_| unreachable!("constant domain parses"))
}

fn default_state_dir(name: &str, env: EnvLookup<'_>) -> Option<PathBuf> {
    let base = env("XDG_STATE_HOME")
        .filter(|s| s.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    Some(base.join("hpc-up").join(name))
}

/// Usable host addresses of a network (no network, no broadcast address).
fn hosts(net: Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    net.hosts()
}

fn merged_libvirt(levels: &[&LibvirtSettings]) -> (ConnectUri, DomainType) {
    let uri = levels
        .iter()
        .find_map(|l| l.uri.clone())
        .unwrap_or_else(|| {
            file::DEFAULT_URI
                .parse()
                .unwrap_or_else(|_| unreachable!("default URI parses"))
        });
    let dt = levels
        .iter()
        .find_map(|l| l.domain_type)
        .unwrap_or_default();
    (uri, dt)
}

fn expand_group(
    cx: &mut Ctx<'_>,
    file: &ClusterFile,
    g: &NodeGroup,
    at: &str,
    role: Role,
    out: &mut Vec<Draft>,
) {
    let vcpus = g.vcpus.unwrap_or(file::DEFAULT_VCPUS);
    if vcpus == 0 || vcpus > VCPUS_MAX {
        cx.err(
            format!("{at}/vcpus"),
            ErrorKind::OutOfRange {
                what: "vcpus",
                value: vcpus.to_string(),
                range: format!("1 to {VCPUS_MAX}"),
            },
        );
    }
    let memory = g.memory.unwrap_or(file::DEFAULT_MEMORY);
    if memory < MEMORY_MIN || memory > MEMORY_MAX {
        cx.err(
            format!("{at}/memory"),
            ErrorKind::OutOfRange {
                what: "memory",
                value: memory.to_string(),
                range: format!("{MEMORY_MIN} to {MEMORY_MAX} (a bare number is bytes: write a unit, like `2GiB`)"),
            },
        );
    }
    let disk = g.disk.unwrap_or(file::DEFAULT_DISK);
    if disk < DISK_MIN || disk > DISK_MAX {
        cx.err(
            format!("{at}/disk"),
            ErrorKind::OutOfRange {
                what: "disk",
                value: disk.to_string(),
                range: format!("{DISK_MIN} to {DISK_MAX}"),
            },
        );
    }
    let mut shared: Vec<(String, VirtiofsMount)> = Vec::new();
    append_at_most(
        cx,
        &mut shared,
        &file.virtiofs,
        (SHARES, "/virtiofs".into()),
    );
    let group_shares = (SHARES, format!("{at}/virtiofs"));
    append_at_most(cx, &mut shared, &g.virtiofs, group_shares);
    let mut group_pci: Vec<(String, PciDevice)> = Vec::new();
    append_at_most(
        cx,
        &mut group_pci,
        &g.pci_devices,
        (PCI, format!("{at}/pci-devices")),
    );

    let group_host = g.host.clone().map(|h| (h, format!("{at}/host")));
    let base = |name: NodeName, node_at: String, ip: Option<(Ipv4Addr, String)>, uri, dt| Draft {
        name,
        at: node_at,
        role,
        ip,
        vcpus,
        memory,
        disk,
        uri,
        domain_type: dt,
        virtiofs: shared.clone(),
        pci: group_pci.clone(),
        host: group_host.clone(),
        place_at: at.to_owned(),
    };

    match (&g.nodes, &g.name, g.count) {
        (Some(list), None, None) => {
            if list.is_empty() {
                cx.err(
                    format!("{at}/nodes"),
                    ErrorKind::NoNodes {
                        what: "this node group",
                    },
                );
            }
            let group_max = MAX_GROUP_NODES as usize;
            let room = group_max.min(MAX_NODES.saturating_sub(out.len()));
            if list.len() > group_max {
                cx.err(
                    format!("{at}/nodes/{group_max}"),
                    ErrorKind::TooMany {
                        what: "nodes in a group".into(),
                        limit: group_max,
                    },
                );
            } else if list.len() > room && !std::mem::replace(&mut cx.cluster_full, true) {
                cx.err(
                    format!("{at}/nodes/{room}"),
                    ErrorKind::TooMany {
                        what: "nodes in the cluster, all groups together".into(),
                        limit: MAX_NODES,
                    },
                );
            }
            for (i, n) in list.iter().enumerate().take(room) {
                let node_at = format!("{at}/nodes/{i}");
                let (uri, dt) = merged_libvirt(&[&n.libvirt, &g.libvirt, &file.libvirt]);
                let mut d = base(
                    n.name.clone(),
                    format!("{node_at}/name"),
                    n.ip.map(|ip| (ip, format!("{node_at}/ip"))),
                    uri,
                    dt,
                );
                if let Some(h) = &n.host {
                    d.host = Some((h.clone(), format!("{node_at}/host")));
                }
                d.place_at.clone_from(&node_at);
                let shares = (SHARES, format!("{node_at}/virtiofs"));
                append_at_most(cx, &mut d.virtiofs, &n.virtiofs, shares);
                let pci = (PCI, format!("{node_at}/pci-devices"));
                append_at_most(cx, &mut d.pci, &n.pci_devices, pci);
                out.push(d);
            }
        }
        (None, Some(pattern), Some(count)) => {
            if count == 0 || count > MAX_GROUP_NODES {
                cx.err(
                    format!("{at}/count"),
                    ErrorKind::OutOfRange {
                        what: "count",
                        value: count.to_string(),
                        range: format!("1 to {MAX_GROUP_NODES}"),
                    },
                );
                return;
            }
            if out.len().saturating_add(count as usize) > MAX_NODES {
                // Said once, at the first group that does not fit; later groups are skipped.
                if std::mem::replace(&mut cx.cluster_full, true) {
                    return;
                }
                cx.err(
                    format!("{at}/count"),
                    ErrorKind::TooMany {
                        what: "nodes in the cluster, all groups together".into(),
                        limit: MAX_NODES,
                    },
                );
                return;
            }
            let template = match NamePattern::parse(pattern) {
                Ok(t) => t,
                Err(reason) => {
                    cx.err(
                        format!("{at}/name"),
                        ErrorKind::BadPattern {
                            pattern: pattern.clone(),
                            reason,
                        },
                    );
                    return;
                }
            };
            let first = g.first_index.unwrap_or(file::DEFAULT_FIRST_INDEX);
            if first.checked_add(count - 1).is_none() {
                cx.err(
                    format!("{at}/first-index"),
                    ErrorKind::OutOfRange {
                        what: "first-index",
                        value: first.to_string(),
                        range: format!(
                            "0 to {} for {count} nodes (the last index is at most {})",
                            u32::MAX - (count - 1),
                            u32::MAX
                        ),
                    },
                );
                return;
            }
            if let Some(ip) = g.first_ip
                && u32::from(ip).checked_add(count - 1).is_none()
            {
                cx.err(
                    format!("{at}/first-ip"),
                    ErrorKind::OutOfRange {
                        what: "first-ip",
                        value: ip.to_string(),
                        range: format!("an address {count} nodes can count up from"),
                    },
                );
                return;
            }
            let (uri, dt) = merged_libvirt(&[&g.libvirt, &file.libvirt]);
            for k in 0..count {
                // Both sums were checked above.
                let raw = template.render(first.saturating_add(k));
                let name = match raw.parse::<NodeName>() {
                    Ok(n) => n,
                    Err(e) => {
                        cx.err(
                            format!("{at}/name"),
                            ErrorKind::BadPattern {
                                pattern: pattern.clone(),
                                reason: format!("makes an invalid name: {e}"),
                            },
                        );
                        return;
                    }
                };
                let ip = g.first_ip.map(|ip| {
                    (
                        Ipv4Addr::from(u32::from(ip).saturating_add(k)),
                        format!("{at}/first-ip"),
                    )
                });
                out.push(base(name, format!("{at}/name"), ip, uri.clone(), dt));
            }
        }
        (Some(_), _, _) => cx.err(
            format!("{at}/nodes"),
            ErrorKind::GroupShape(
                "a node group has either `nodes` or `name` with `count`, not both".into(),
            ),
        ),
        (None, Some(_), None) => cx.err(
            format!("{at}/name"),
            ErrorKind::GroupShape("a counted node group needs `count`".into()),
        ),
        (None, None, Some(_)) => cx.err(
            format!("{at}/count"),
            ErrorKind::GroupShape("a counted node group needs a `name` pattern".into()),
        ),
        (None, None, None) => cx.err(
            at,
            ErrorKind::GroupShape("this node group has no nodes".into()),
        ),
    }
    if g.first_ip.is_some() && g.nodes.is_some() {
        cx.err(
            format!("{at}/first-ip"),
            ErrorKind::GroupShape(
                "`first-ip` is for counted groups; give each listed node its `ip`".into(),
            ),
        );
    }
}

/// A per-node limit: how many, and what of.
type PerNode = (usize, &'static str);
const SHARES: PerNode = (MAX_SHARES_PER_NODE, "virtio-fs shares on a node");
const PCI: PerNode = (MAX_PCI_PER_NODE, "PCI devices on a node");

/// Append `items` (the list at pointer `at`) to `list`, each with its pointer, up to the
/// limit; a problem at the first one too many. Only what fits is cloned.
fn append_at_most<T: Clone>(
    cx: &mut Ctx<'_>,
    list: &mut Vec<(String, T)>,
    items: &[T],
    ((max, what), at): (PerNode, String),
) {
    let room = max.saturating_sub(list.len());
    list.extend(
        items
            .iter()
            .take(room)
            .enumerate()
            .map(|(j, item)| (format!("{at}/{j}"), item.clone())),
    );
    if items.len() > room {
        cx.err(
            format!("{at}/{room}"),
            ErrorKind::TooMany {
                what: what.to_owned(),
                limit: max,
            },
        );
    }
}

/// A node name pattern: text around one `{index}` or `{index:0N}`.
struct NamePattern<'a> {
    prefix: &'a str,
    suffix: &'a str,
    width: usize,
}

impl<'a> NamePattern<'a> {
    fn parse(p: &'a str) -> Result<Self, String> {
        let shape = || "needs exactly one `{index}` or `{index:0N}`".to_owned();
        let start = p.find("{index").ok_or_else(shape)?;
        let end = start + p[start..].find('}').ok_or_else(shape)?;
        let spec = &p[start + "{index".len()..end];
        let width = match spec {
            "" => 0,
            s => {
                let digits = s.strip_prefix(":0").ok_or_else(shape)?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(shape());
                }
                match digits.parse::<usize>() {
                    Ok(w) if w <= MAX_PAD_WIDTH => w,
                    _ => {
                        return Err(format!(
                            "pads the index to {digits} digits; a node name has at most {MAX_PAD_WIDTH} bytes"
                        ));
                    }
                }
            }
        };
        let (prefix, suffix) = (&p[..start], &p[end + 1..]);
        if suffix.contains('{') || prefix.contains('{') {
            return Err(shape());
        }
        Ok(Self {
            prefix,
            suffix,
            width,
        })
    }
    fn render(&self, i: u32) -> String {
        format!("{}{:0w$}{}", self.prefix, i, self.suffix, w = self.width)
    }
}

fn check_unique_names(cx: &mut Ctx<'_>, drafts: &[Draft]) {
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for d in drafts {
        if seen.insert(d.name.as_str(), ()).is_some() {
            cx.err(
                &d.at,
                ErrorKind::DuplicateNode {
                    name: d.name.to_string(),
                },
            );
        }
    }
}

/// Explicit addresses are checked first; nodes without one then take the lowest free host
/// addresses after the gateway, in file order (deterministic).
fn assign_ips(
    cx: &mut Ctx<'_>,
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    drafts: &[Draft],
) -> Vec<Ipv4Addr> {
    let cidr_s = cidr.to_string();
    let mut taken: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut out = vec![Ipv4Addr::UNSPECIFIED; drafts.len()];
    for (i, d) in drafts.iter().enumerate() {
        let Some((ip, at)) = &d.ip else { continue };
        if !cidr.contains(ip) {
            cx.err(
                at,
                ErrorKind::IpOutsideNetwork {
                    ip: *ip,
                    cidr: cidr_s.clone(),
                },
            );
        } else if let Some(what) = is_special(cidr, *ip) {
            cx.err(
                at,
                ErrorKind::IpReserved {
                    ip: *ip,
                    what,
                    cidr: cidr_s.clone(),
                },
            );
        } else if *ip == gateway {
            cx.err(
                at,
                ErrorKind::IpReserved {
                    ip: *ip,
                    what: "the gateway",
                    cidr: cidr_s.clone(),
                },
            );
        } else if let Some(other) = taken.get(ip) {
            cx.err(
                at,
                ErrorKind::DuplicateIp {
                    ip: *ip,
                    other: other.clone(),
                },
            );
        } else {
            taken.insert(*ip, d.name.to_string());
        }
        out[i] = *ip;
    }
    let mut free = hosts(cidr).filter(|ip| *ip > gateway || gateway < cidr.network());
    for (i, d) in drafts.iter().enumerate() {
        if d.ip.is_some() {
            continue;
        }
        let next = free
            .by_ref()
            .find(|ip| *ip != gateway && !taken.contains_key(ip));
        match next {
            Some(ip) => {
                taken.insert(ip, d.name.to_string());
                out[i] = ip;
            }
            None => cx.err(
                &d.at,
                ErrorKind::NetworkFull {
                    cidr: cidr_s.clone(),
                    node: d.name.to_string(),
                },
            ),
        }
    }
    out
}

fn check_pci(cx: &mut Ctx<'_>, drafts: &[Draft]) {
    let mut owner: HashMap<String, String> = HashMap::new();
    // A device listed at group level is shared by every node of the group: report it once
    // per extra node, at the device.
    for d in drafts {
        for (at, p) in &d.pci {
            let key = p.address.to_string();
            if let Some(other) = owner.get(&key) {
                cx.err(
                    at,
                    ErrorKind::DuplicatePci {
                        address: key,
                        other: other.clone(),
                    },
                );
            } else {
                owner.insert(key, d.name.to_string());
            }
        }
    }
}

fn check_guest_path(cx: &mut Ctx<'_>, at: String, what: &'static str, path: &str) {
    if !path.starts_with('/') {
        cx.err(
            at,
            ErrorKind::RelativePath {
                what,
                path: path.to_owned(),
            },
        );
    } else if path.contains(char::is_whitespace) || path.contains(',') {
        cx.err(
            at,
            ErrorKind::BadValue {
                what,
                value: path.to_owned(),
                reason: "white space and `,` cannot stand in an fstab path".into(),
            },
        );
    }
}

fn resolve_mounts(cx: &mut Ctx<'_>, d: &Draft) -> Vec<Mount> {
    let mut out = Vec::new();
    let mut tags = BTreeSet::new();
    let mut points = BTreeSet::new();
    for (at, m) in &d.virtiofs {
        if !tags.insert(m.tag.as_str()) {
            cx.err(
                format!("{at}/tag"),
                ErrorKind::DuplicateTag {
                    tag: m.tag.to_string(),
                    node: d.name.to_string(),
                },
            );
        }
        let host = cx.path(&format!("{at}/host-path"), "host path", &m.host_path);
        check_guest_path(
            cx,
            format!("{at}/mount-point"),
            "mount point",
            &m.mount_point,
        );
        if !points.insert(m.mount_point.as_str()) {
            cx.err(
                format!("{at}/mount-point"),
                ErrorKind::DuplicateMountPoint {
                    path: m.mount_point.clone(),
                    node: d.name.to_string(),
                },
            );
        }
        if m.readonly && (m.owner.is_some() || m.group.is_some() || m.mode.is_some()) {
            cx.err(
                format!("{at}/readonly"),
                ErrorKind::BadValue {
                    what: "read-only share",
                    value: m.tag.to_string(),
                    reason: "`owner`, `group` and `mode` cannot be set on it: they are the host directory's"
                        .into(),
                },
            );
        }
        if let Some(opts) = &m.options
            && (opts.is_empty() || opts.contains(char::is_whitespace))
        {
            {
                cx.err(
                    format!("{at}/options"),
                    ErrorKind::BadValue {
                        what: "mount options",
                        value: opts.clone(),
                        reason: "write comma-separated options without spaces".into(),
                    },
                );
            }
        }
        if let Some(host_path) = host {
            out.push(Mount {
                tag: m.tag.clone(),
                host_path,
                mount_point: m.mount_point.clone(),
                readonly: m.readonly,
                create: m.create,
                owner: m.owner.clone(),
                group: m.group.clone(),
                mode: m.mode,
                options: m.options.clone(),
            });
        }
    }
    out
}

/// The cluster's node names: in cluster order, and as a set.
pub(crate) struct Names<'a> {
    order: Vec<&'a str>,
    set: HashSet<&'a str>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(order: Vec<&'a str>) -> Self {
        let set = order.iter().copied().collect();
        Self { order, set }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    /// The name closest to `name` when it is close enough to be a typo. Only names of about
    /// its length are compared (a typo adds, drops or changes a character or two), at most
    /// [`MAX_NODES`] of them, and [`Ctx::suggest`] asks this for a few names per file.
    fn closest(&self, name: &str) -> Option<String> {
        let candidates: Vec<&str> = self
            .order
            .iter()
            .copied()
            .filter(|c| c.len().abs_diff(name.len()) <= 2)
            .collect();
        closest(name, &candidates)
    }
}

/// Resolve node references (names, hostlists, `ALL`) to node names, in cluster order.
///
/// Each hostlist is measured before it is expanded ([`hostlist_size`]): one list may name
/// at most [`MAX_REFERENCED_NAMES`] nodes in all, and a hostlist naming nodes that do not
/// exist is one problem, not one per name.
fn node_refs(
    cx: &mut Ctx<'_>,
    at: &str,
    what: &'static str,
    refs: &[String],
    names: &Names<'_>,
) -> Vec<NodeName> {
    if refs.is_empty() {
        cx.err(at, ErrorKind::NoNodes { what });
        return Vec::new();
    }
    let mut all = false;
    let mut wanted = HashSet::new();
    let mut budget = MAX_REFERENCED_NAMES;
    for (i, r) in refs.iter().enumerate() {
        let item_at = format!("{at}/{i}");
        if r == "ALL" {
            all = true;
            continue;
        }
        let size = match hostlist_size(r) {
            Ok(n) if n <= budget => n,
            Ok(_) | Err(HostlistSize::TooMany) => {
                cx.err(
                    item_at,
                    ErrorKind::TooManyNames {
                        what,
                        limit: MAX_REFERENCED_NAMES,
                    },
                );
                break;
            }
            Err(HostlistSize::Bad(reason)) => {
                cx.err(
                    item_at,
                    ErrorKind::BadHostlist {
                        expr: r.clone(),
                        reason,
                    },
                );
                continue;
            }
        };
        budget -= size;
        let expanded = match hostlist_parser::parse(r) {
            Ok(v) => v,
            Err(_) => {
                cx.err(
                    item_at,
                    ErrorKind::BadHostlist {
                        expr: r.clone(),
                        reason: String::new(),
                    },
                );
                continue;
            }
        };
        let mut unknown = Vec::new();
        for name in expanded {
            match names.set.get(name.as_str()) {
                Some(known) => {
                    wanted.insert(*known);
                }
                None => unknown.push(name),
            }
        }
        match unknown.len() {
            0 => {}
            1 => {
                let name = unknown.swap_remove(0);
                // A typo is in a name written out, not in one a range made.
                let suggestion = if size == 1 {
                    cx.suggest(&name, names)
                } else {
                    None
                };
                cx.err(item_at, ErrorKind::UnknownNode { name, suggestion });
            }
            count => cx.err(
                item_at,
                ErrorKind::UnknownNodes {
                    expr: r.clone(),
                    count,
                    first: unknown.swap_remove(0),
                },
            ),
        }
    }
    names
        .order
        .iter()
        .filter(|n| all || wanted.contains(**n))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Why a hostlist cannot be measured.
#[derive(Debug, PartialEq, Eq)]
enum HostlistSize {
    /// It names more than [`MAX_REFERENCED_NAMES`] nodes.
    TooMany,
    /// It is not a hostlist we read; why, when known.
    Bad(String),
}

/// How many names the hostlist `expr` (`cn[1-4,7],gpu[01-02]`) expands to, worked out
/// without expanding it and with checked arithmetic, so that `c[1-999999999]` costs nothing.
/// Only what passes this is handed to the hostlist crate.
fn hostlist_size(expr: &str) -> Result<usize, HostlistSize> {
    let bad = |why: &str| Err(HostlistSize::Bad(why.to_owned()));
    let mut total: usize = 0;
    let mut host: usize = 1;
    let mut rest = expr;
    loop {
        // Text up to the next bracket or top-level comma.
        let cut = rest.find(['[', ',', ']']).unwrap_or(rest.len());
        rest = &rest[cut..];
        match rest.chars().next() {
            Some('[') => {
                let Some(close) = rest.find(']') else {
                    return bad("a `[` has no `]`");
                };
                let inner = &rest[1..close];
                if inner.contains('[') {
                    return bad("brackets do not nest");
                }
                let mut sum: usize = 0;
                for item in inner.split(',') {
                    let (a, b) = item.split_once('-').unwrap_or((item, item));
                    let n = |x: &str| -> Result<u64, HostlistSize> {
                        let x = x.trim();
                        if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
                            return Err(HostlistSize::Bad(format!(
                                "`{item}` is not a number or a range like `1-4`"
                            )));
                        }
                        if x.len() > MAX_PAD_WIDTH {
                            return Err(HostlistSize::Bad(format!(
                                "a number has more than {MAX_PAD_WIDTH} digits (a node name has at most 63 bytes)"
                            )));
                        }
                        x.parse()
                            .map_err(|_| HostlistSize::Bad(format!("`{x}` is too large")))
                    };
                    let (a, b) = (n(a)?, n(b)?);
                    if a > b {
                        // SLURM's own hostlist refuses it too ("Invalid range").
                        return Err(HostlistSize::Bad(format!(
                            "`{}` runs backwards; write `{}-{}`",
                            item.trim(),
                            b,
                            a
                        )));
                    }
                    let len = usize::try_from(a.abs_diff(b))
                        .ok()
                        .and_then(|d| d.checked_add(1))
                        .ok_or(HostlistSize::TooMany)?;
                    sum = sum.checked_add(len).ok_or(HostlistSize::TooMany)?;
                }
                host = host.checked_mul(sum).ok_or(HostlistSize::TooMany)?;
                if host > MAX_REFERENCED_NAMES {
                    return Err(HostlistSize::TooMany);
                }
                rest = &rest[close + 1..];
            }
            Some(']') => return bad("a `]` has no `[`"),
            // A top-level `,`, or the end.
            _ => {
                total = total.checked_add(host).ok_or(HostlistSize::TooMany)?;
                if total > MAX_REFERENCED_NAMES {
                    return Err(HostlistSize::TooMany);
                }
                host = 1;
                if rest.is_empty() {
                    return Ok(total);
                }
                rest = &rest[1..];
            }
        }
    }
}

fn one_node(cx: &mut Ctx<'_>, at: &str, name: &NodeName, names: &Names<'_>) {
    if !names.contains(name.as_str()) {
        let suggestion = cx.suggest(name.as_str(), names);
        cx.err(
            at,
            ErrorKind::UnknownNode {
                name: name.to_string(),
                suggestion,
            },
        );
    }
}

/// The existing name closest to `name`, when it is close enough to be a typo.
pub(crate) fn closest(name: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_owned())
}

fn resolve_slurm(
    cx: &mut Ctx<'_>,
    file: &ClusterFile,
    s: &file::SlurmSettings,
    nodes: &[Node],
    names: &Names<'_>,
) -> Slurm {
    let mut partitions = Vec::new();
    let mut first_default: Option<String> = None;
    let mut seen = BTreeSet::new();
    if s.partitions.len() > MAX_PARTITIONS {
        cx.err(
            format!("/slurm/partitions/{MAX_PARTITIONS}"),
            ErrorKind::TooMany {
                what: "SLURM partitions".into(),
                limit: MAX_PARTITIONS,
            },
        );
    }
    for (i, p) in s.partitions.iter().enumerate().take(MAX_PARTITIONS) {
        let at = format!("/slurm/partitions/{i}");
        if !seen.insert(p.name.as_str()) {
            cx.err(
                format!("{at}/name"),
                ErrorKind::DuplicatePartition {
                    name: p.name.to_string(),
                },
            );
        }
        if p.default {
            match &first_default {
                Some(first) => cx.err(
                    format!("{at}/default"),
                    ErrorKind::TwoDefaultPartitions {
                        name: p.name.to_string(),
                        first: first.clone(),
                    },
                ),
                None => first_default = Some(p.name.to_string()),
            }
        }
        let members = node_refs(cx, &format!("{at}/nodes"), "a partition", &p.nodes, names);
        partitions.push(SlurmPartition {
            name: p.name.clone(),
            nodes: members,
            default: p.default || s.partitions.len() == 1,
            max_time: p.max_time.unwrap_or(TimeLimit::UNLIMITED),
        });
    }
    if partitions.is_empty() {
        let computes: Vec<NodeName> = nodes
            .iter()
            .filter(|n| n.role == Role::Compute)
            .map(|n| n.name.clone())
            .collect();
        if !computes.is_empty() {
            partitions.push(SlurmPartition {
                name: file::DEFAULT_PARTITION
                    .parse()
                    .unwrap_or_else(|_| unreachable!("constant name parses")),
                nodes: computes,
                default: true,
                max_time: TimeLimit::UNLIMITED,
            });
        }
    }
    let first_controller = nodes
        .iter()
        .find(|n| n.role == Role::Controller)
        .map(|n| n.name.clone());
    let accounting_host = if s.accounting.enabled {
        match &s.accounting.host {
            Some(h) => {
                one_node(cx, "/slurm/accounting/host", h, names);
                Some(h.clone())
            }
            None => first_controller,
        }
    } else {
        None
    };
    let mut gpus = Vec::new();
    if s.gres.gpus.len() > MAX_PARTITIONS {
        cx.err(
            format!("/slurm/gres/gpus/{MAX_PARTITIONS}"),
            ErrorKind::TooMany {
                what: "GPU entries".into(),
                limit: MAX_PARTITIONS,
            },
        );
    }
    for (i, g) in s.gres.gpus.iter().enumerate().take(MAX_PARTITIONS) {
        let at = format!("/slurm/gres/gpus/{i}");
        if g.count == 0 {
            cx.err(
                format!("{at}/count"),
                ErrorKind::OutOfRange {
                    what: "GPU count",
                    value: "0".into(),
                    range: "1 to 64".into(),
                },
            );
        }
        for node in node_refs(cx, &format!("{at}/nodes"), "a GPU entry", &g.nodes, names) {
            gpus.push(NodeGpus {
                node,
                gpu_type: g.gpu_type.clone(),
                count: g.count,
            });
        }
    }
    Slurm {
        cluster_name: s.cluster_name.clone().unwrap_or_else(|| file.name.clone()),
        partitions,
        accounting_host,
        gres_autodetect: s.gres.autodetect,
        gpus,
        constrain_cores: s.cgroup.constrain_cores,
        constrain_ram_space: s.cgroup.constrain_ram_space,
        constrain_devices: s.cgroup.constrain_devices,
        memory_headroom_percent: s
            .memory_headroom_percent
            .unwrap_or(crate::file::DEFAULT_MEMORY_HEADROOM_PERCENT),
        job_failures: None,
    }
}
