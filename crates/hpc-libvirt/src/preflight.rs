//! Preflight: everything `up` can find wrong on a connection before it creates anything.
//!
//! [`preflight_report`] runs every check for the part of a cluster that lives on one
//! hypervisor connection and returns *all* problems it finds, each naming the node, object or
//! path it is about, and the warnings: what does not stop `up` but should be said.
//! ([`preflight`] returns the problems alone.) It only reads: it never defines, starts or
//! changes anything. The caller runs it once per connection of [`LibvirtPlan::uris`]; a
//! connection that cannot be opened at all is the caller's (connect) error.
//!
//! The checks:
//!
//! 1. the base image, and the kernel and initrd when set, exist, are regular files and can be
//!    opened for reading;
//! 2. the host directory of every virtio-fs share of a node on the connection exists and is a
//!    directory;
//! 3. the host offers each node's domain type (`kvm` needs `/dev/kvm`), and virtio-fs when a
//!    node has a share — both read from libvirt's domain capabilities;
//! 4. no *other* libvirt network on the connection uses the cluster's bridge name or an IPv4
//!    range overlapping the cluster's CIDR;
//! 5. every passed-through PCI device exists as a libvirt node device, has the configured
//!    vendor and device ids, sits in an IOMMU group, and every other member of that group
//!    (PCI bridges aside) is passed through to the same node;
//! 6. no domain or network with one of the cluster's names exists that belongs to another
//!    cluster or to no hpc-up cluster;
//! 7. on a remote connection, every local file the plan uploads there (base image, kernel,
//!    initrd, the seed disks of its nodes) exists here, is a regular file and can be read
//!    ([`PreflightProblem::UploadSourceUnusable`], naming the file and the host) — so the
//!    seeds must be written before a remote connection's preflight;
//! 8. the nodes on the connection against the host as libvirt reports it
//!    ([`Hypervisor::host_info`]): more memory than the host has is a problem
//!    ([`PreflightProblem::HostMemoryExceeded`]), more vCPUs than its CPUs a warning
//!    ([`PreflightWarning::VcpuOvercommit`]: overcommit works, TCG guests run anyway). A
//!    host's declared `capacity` is hpc-config's to check (it placed the nodes by it).
//!
//! **Warning** ([`PreflightWarning::KvmCacheReprobed`], made before check 3 and without a
//! libvirt call): on a local `qemu:///system` (or `qemu:///session`) connection, `/dev/kvm`
//! exists for the daemon but the QEMU user cannot open it read-write. A root daemon probes
//! QEMU with root's file access, so the probe records KVM; every later lookup checks the QEMU
//! user's access, finds KVM "not available now", judges the capabilities cache outdated and
//! probes QEMU again — about a minute for every define and every domain-capabilities call
//! (check 3 included). The daemon's view is what counts (hpc-up may run in another mount
//! namespace): the daemon is the `libvirtd` or `virtqemud` process serving the connection
//! (pid files `/run/hpc-up-sandbox/libvirtd.pid`, `/run/virtqemud.pid`, `/run/libvirtd.pid`
//! first, then every process: root for `system`, hpc-up's user for `session`), and
//! `/dev/kvm`, `/etc/libvirt/qemu.conf` (`user`, `group`: names or `+N` ids; the built-in
//! defaults are the file's commented `#user = …` lines, `libvirt-qemu` on Debian),
//! `/etc/passwd` and `/etc/group` are read through its `/proc/<pid>/root/` (hpc-up's own when
//! that is not readable, i.e. hpc-up is not root; the warning says so). The QEMU user's groups
//! are libvirt's: qemu.conf's group, its passwd group, every group listing it. A session
//! daemon that is not root probes with its QEMU's own access, so it is never warned about.
//! When a fact cannot be had (no daemon visible, a file unreadable, a user unknown), there is
//! no warning; the reason is logged at debug level.
//!
//! **Not checked.** Checks 1 and 2 read the local filesystem, so they run only when the
//! connection is local (on a remote one, check 7 takes check 1's place) ([`ConnectUri::remote_host`] is `None`): libvirt offers no way to look
//! at a remote host's files, so for `qemu+ssh://…` these paths are not checked here (libvirt
//! reports them when the volume or domain is created). Readability is checked as the user
//! running hpc-up, not as the user QEMU runs as. Check 3 is skipped when the driver cannot
//! report domain capabilities ([`Hypervisor::domain_capabilities`] gives `None`), and
//! libvirt advertises virtio-fs from QEMU's device list, so a missing `virtiofsd` binary is
//! only found when the domain starts. Host network interfaces that are no libvirt network's
//! bridge are not looked at (hpc-up may run in another network namespace than libvirtd).
//! The `/dev/kvm` warning is not made for remote connections (their host's files cannot be
//! read), decides by mode bits alone (POSIX ACLs on `/dev/kvm` and users known only to NSS
//! beyond `/etc/passwd` are not seen), and does not catch the reverse mismatch — a probe
//! that found no KVM although the QEMU user can use it (e.g. KVM that fails inside QEMU).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use hpc_config::file::DomainType;
use hpc_config::ipnet::Ipv4Net;
use hpc_config::types::{ByteSize, ConnectUri, PciAddress, PciId};
use hpc_config::{Cluster, Node};
use roxmltree::Document;

use crate::hypervisor::{Hypervisor, kind_name};
use crate::plan::{LibvirtPlan, ObjectKind, owner_from_xml, seed_path};

/// Which of the image's files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFile {
    /// `image.base`.
    Base,
    /// `image.kernel`.
    Kernel,
    /// `image.initrd`.
    Initrd,
}

impl fmt::Display for ImageFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Base => "base image",
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
        })
    }
}

/// Which id of a PCI device a mismatch is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PciIdKind {
    /// The vendor id (`vendor-id`).
    Vendor,
    /// The device (product) id (`device-id`).
    Device,
}

impl fmt::Display for PciIdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vendor => "vendor",
            Self::Device => "device",
        })
    }
}

/// One problem found by [`preflight`]. Node lists name the nodes in cluster order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightProblem {
    /// An image file does not exist.
    #[error("{what} `{}` does not exist", path.display())]
    ImageMissing {
        /// Which file.
        what: ImageFile,
        /// Its path.
        path: PathBuf,
    },
    /// An image file exists but is a directory or another non-regular file.
    #[error("{what} `{}` is not a regular file", path.display())]
    ImageNotAFile {
        /// Which file.
        what: ImageFile,
        /// Its path.
        path: PathBuf,
    },
    /// An image file cannot be read.
    #[error("{what} `{}` cannot be read: {reason}", path.display())]
    ImageUnreadable {
        /// Which file.
        what: ImageFile,
        /// Its path.
        path: PathBuf,
        /// Why (the I/O error).
        reason: String,
    },
    /// A virtio-fs host directory does not exist.
    #[error(
        "virtio-fs host directory `{}` (tag `{tag}`, {}) does not exist",
        path.display(),
        nodes_text(nodes)
    )]
    ShareMissing {
        /// The host directory.
        path: PathBuf,
        /// The share's tag.
        tag: String,
        /// The nodes it is shared with.
        nodes: Vec<String>,
    },
    /// A virtio-fs host path exists but is not a directory.
    #[error(
        "virtio-fs host path `{}` (tag `{tag}`, {}) is not a directory",
        path.display(),
        nodes_text(nodes)
    )]
    ShareNotADirectory {
        /// The host path.
        path: PathBuf,
        /// The share's tag.
        tag: String,
        /// The nodes it is shared with.
        nodes: Vec<String>,
    },
    /// A virtio-fs host directory cannot be looked at.
    #[error(
        "virtio-fs host directory `{}` (tag `{tag}`, {}) cannot be read: {reason}",
        path.display(),
        nodes_text(nodes)
    )]
    ShareUnreadable {
        /// The host directory.
        path: PathBuf,
        /// The share's tag.
        tag: String,
        /// The nodes it is shared with.
        nodes: Vec<String>,
        /// Why (the I/O error).
        reason: String,
    },
    /// The host does not offer a domain type some nodes ask for.
    #[error(
        "domain type {domain_type} is not available on `{uri}` ({}){}: {reason}",
        nodes_text(nodes),
        domain_type_hint(domain_type)
    )]
    DomainTypeUnavailable {
        /// `kvm` or `qemu`.
        domain_type: String,
        /// The connection.
        uri: String,
        /// The nodes asking for it.
        nodes: Vec<String>,
        /// What libvirt said.
        reason: String,
    },
    /// libvirt's domain capabilities offer no virtio-fs filesystem driver.
    #[error(
        "virtio-fs is not available on `{uri}` for domain type {domain_type} ({} have shares): \
         libvirt offers no `virtiofs` filesystem driver; install a QEMU with vhost-user-fs \
         and virtiofsd",
        nodes_text(nodes)
    )]
    VirtiofsUnavailable {
        /// The connection.
        uri: String,
        /// The domain type asked.
        domain_type: String,
        /// The nodes with a share.
        nodes: Vec<String>,
    },
    /// Another libvirt network uses the cluster's bridge.
    #[error("bridge `{bridge}` is already used by libvirt network `{network}` on `{uri}`")]
    BridgeInUse {
        /// The bridge name.
        bridge: String,
        /// The other network.
        network: String,
        /// The connection.
        uri: String,
    },
    /// Another libvirt network's IPv4 range overlaps the cluster's CIDR.
    #[error("network {cidr} overlaps {other} of libvirt network `{network}` on `{uri}`")]
    CidrOverlap {
        /// The cluster's CIDR.
        cidr: Ipv4Net,
        /// The other network's range.
        other: Ipv4Net,
        /// The other network.
        network: String,
        /// The connection.
        uri: String,
    },
    /// A domain or network with one of the cluster's names belongs to someone else.
    #[error(
        "{} `{name}` exists on `{uri}` and belongs to {}",
        kind_name(kind),
        owner_text(owner.as_deref())
    )]
    NameTaken {
        /// Domain or network.
        kind: ObjectKind,
        /// Its name.
        name: String,
        /// The connection.
        uri: String,
        /// The cluster owning it; `None` for an object hpc-up did not create.
        owner: Option<String>,
    },
    /// A PCI device to pass through is not on the host.
    #[error(
        "PCI device {address} of node `{node}` does not exist on `{uri}` (no node device \
         `{}`)",
        nodedev_name(address)
    )]
    PciMissing {
        /// The node.
        node: String,
        /// The device.
        address: PciAddress,
        /// The connection.
        uri: String,
    },
    /// A PCI device's vendor or device id is not the configured one.
    #[error(
        "PCI device {address} of node `{node}` has {which} id {found}; the config expects {expected}"
    )]
    PciIdMismatch {
        /// The node.
        node: String,
        /// The device.
        address: PciAddress,
        /// Vendor or device id.
        which: PciIdKind,
        /// The configured id.
        expected: PciId,
        /// The host's id (`unknown` when the node device names none).
        found: String,
    },
    /// A PCI device is in no IOMMU group: the host's IOMMU is off.
    #[error(
        "PCI device {address} of node `{node}` is in no IOMMU group on `{uri}`: turn the \
         IOMMU on (intel_iommu=on or amd_iommu=on on the host's kernel command line)"
    )]
    PciNoIommu {
        /// The node.
        node: String,
        /// The device.
        address: PciAddress,
        /// The connection.
        uri: String,
    },
    /// Other devices of a PCI device's IOMMU group are not passed through with it.
    #[error(
        "PCI device {address} of node `{node}`: all devices of IOMMU group {group} must be \
         passed through together: {}",
        addresses_text(others)
    )]
    PciGroupNotViable {
        /// The node.
        node: String,
        /// The device.
        address: PciAddress,
        /// The IOMMU group.
        group: u32,
        /// The group's members (PCI bridges aside) not passed through to the node.
        others: Vec<PciAddress>,
    },
    /// A local file that is to be uploaded to a remote host's pool (base image, kernel,
    /// initrd, a node's seed disk) cannot be used.
    #[error("{what} `{}` cannot be uploaded to host `{host}`: it {reason}", path.display())]
    UploadSourceUnusable {
        /// Which file, e.g. `base image` or ``seed disk of node `cn1` ``.
        what: String,
        /// Its path on this machine.
        path: PathBuf,
        /// The host it goes to (its name in `hosts:`, else the URI).
        host: String,
        /// What is wrong: `does not exist`, `is not a regular file`, `cannot be read: …`.
        reason: String,
    },
    /// The nodes placed on a host need more memory than libvirt reports the host has.
    #[error(
        "the {count} node(s) on host `{host}` need {needed} of memory together, but libvirt \
         reports {total} on that host"
    )]
    HostMemoryExceeded {
        /// The host (its name in `hosts:`, else the URI).
        host: String,
        /// How many nodes are placed there.
        count: usize,
        /// Their memory together.
        needed: ByteSize,
        /// The host's memory as libvirt reports it.
        total: ByteSize,
    },
    /// A check could not be made: libvirt failed or answered something unreadable.
    #[error("cannot check {what} on `{uri}`: {reason}")]
    CheckFailed {
        /// What was being checked.
        what: String,
        /// The connection.
        uri: String,
        /// What went wrong.
        reason: String,
    },
}

/// Something [`preflight_report`] found that does not stop `up` but costs or risks something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightWarning {
    /// The nodes on a host have more vCPUs together than the host has CPUs: they run
    /// (overcommitted; TCG guests do anyway), but slower.
    #[error(
        "the nodes on host `{host}` have {vcpus} vCPUs together, more than the {cpus} CPUs \
         libvirt reports there; they run overcommitted"
    )]
    VcpuOvercommit {
        /// The host (its name in `hosts:`, else the URI).
        host: String,
        /// The nodes' vCPUs together.
        vcpus: u64,
        /// The host's CPUs.
        cpus: u32,
    },
    /// libvirt would re-probe QEMU at every capabilities lookup: `/dev/kvm` exists for the
    /// daemon, whose probe runs with root's access, but the QEMU user cannot open it.
    #[error(
        "libvirt re-probes QEMU on every define and capabilities lookup on `{uri}` (~1 min \
         each): {daemon} sees /dev/kvm (mode {mode:04o}, {owner}:{group}){}; its QEMU probe \
         runs with root's file access and records KVM, but its QEMU user `{qemu_user}` (uid \
         {qemu_uid}, groups {}) cannot open /dev/kvm read-write, so libvirt finds its \
         capabilities cache outdated at every lookup. Fix one of: give the QEMU user access \
         as udev normally does (`chgrp {fix_group} /dev/kvm && chmod 0660 /dev/kvm`); on a \
         host for TCG guests only, run libvirtd in a mount namespace without /dev/kvm (as \
         scripts/libvirt-sandbox does); or set `user` in /etc/libvirt/qemu.conf to a user \
         that can open /dev/kvm",
        own_view_text(*own_view),
        list_or_none(qemu_groups)
    )]
    KvmCacheReprobed {
        /// The connection.
        uri: String,
        /// The daemon serving it, e.g. `libvirtd (pid 4242)`.
        daemon: String,
        /// The facts were read in hpc-up's own mount namespace (the daemon's root was not
        /// readable).
        own_view: bool,
        /// Permission bits of `/dev/kvm`.
        mode: u32,
        /// Its owner (name, or uid when unnamed).
        owner: String,
        /// Its group (name, or gid when unnamed).
        group: String,
        /// The QEMU user as configured.
        qemu_user: String,
        /// Its uid.
        qemu_uid: u32,
        /// Its groups (names, or gids when unnamed).
        qemu_groups: Vec<String>,
        /// A group the QEMU user is in, for the suggested `chgrp`.
        fix_group: String,
    },
}

fn own_view_text(own_view: bool) -> &'static str {
    if own_view {
        " as read in hpc-up's mount namespace (the daemon's /proc/<pid>/root is not readable)"
    } else {
        ""
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// What [`preflight_report`] found on one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PreflightReport {
    /// Problems: `up` must not go ahead while there are any.
    pub problems: Vec<PreflightProblem>,
    /// Warnings: `up` goes ahead, the caller shows them.
    pub warnings: Vec<PreflightWarning>,
}

fn nodes_text(nodes: &[String]) -> String {
    let word = if nodes.len() == 1 { "node" } else { "nodes" };
    let list: Vec<String> = nodes.iter().map(|n| format!("`{n}`")).collect();
    format!("{word} {}", list.join(", "))
}

fn addresses_text(addresses: &[PciAddress]) -> String {
    let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    list.join(", ")
}

fn owner_text(owner: Option<&str>) -> String {
    match owner {
        Some(c) => format!("cluster `{c}`"),
        None => "no hpc-up cluster".to_owned(),
    }
}

fn domain_type_hint(domain_type: &str) -> &'static str {
    if domain_type == "kvm" {
        " (no /dev/kvm?); use `domain-type: qemu`"
    } else {
        ""
    }
}

/// The name of the libvirt node device of a PCI address: `pci_DDDD_BB_SS_F` (lower-case hex).
pub fn nodedev_name(address: &PciAddress) -> String {
    format!(
        "pci_{:04x}_{:02x}_{:02x}_{:x}",
        address.domain, address.bus, address.slot, address.function
    )
}

/// An error and its sources, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn domain_type_name(t: DomainType) -> &'static str {
    match t {
        DomainType::Kvm => "kvm",
        DomainType::Qemu => "qemu",
    }
}

fn names(nodes: &[&Node]) -> Vec<String> {
    nodes.iter().map(|n| n.name.as_str().to_owned()).collect()
}

/// Check everything `up` needs of the connection `hv` for the part of `cluster` (and its
/// `plan`) that lives there, before anything is created. Returns every problem found, in
/// check order (see the module docs); empty means `up` may go ahead. The warnings are
/// [`preflight_report`]'s.
pub fn preflight<H: Hypervisor>(
    cluster: &Cluster,
    plan: &LibvirtPlan,
    hv: &H,
) -> Vec<PreflightProblem> {
    preflight_report(cluster, plan, hv).problems
}

/// [`preflight`] with its warnings: every problem, in check order, and every warning (see the
/// module docs).
pub fn preflight_report<H: Hypervisor>(
    cluster: &Cluster,
    plan: &LibvirtPlan,
    hv: &H,
) -> PreflightReport {
    let uri = hv.uri();
    let mut warnings = Vec::new();
    let nodes: Vec<&Node> = cluster
        .nodes
        .iter()
        .filter(|n| n.uri.as_str() == uri)
        .collect();
    let mut out = Vec::new();
    if local(uri, &nodes) {
        check_image(cluster, &nodes, &mut out);
        check_shares(&nodes, &mut out);
    } else {
        check_uploads(cluster, plan, uri, &mut out);
    }
    check_host_size(cluster, &nodes, hv, &mut out, &mut warnings);
    // Before check 3: a re-probing daemon makes its domain-capabilities call slow too.
    match kvm::check(kvm::Host::real(), uri) {
        Ok(Some(w)) => warnings.push(w),
        Ok(None) => {}
        Err(reason) => tracing::debug!(uri, %reason, "/dev/kvm capabilities-cache check skipped"),
    }
    check_capabilities(&nodes, hv, &mut out);
    let networks = match hv.list(ObjectKind::Network) {
        Ok(n) => Some(n),
        Err(e) => {
            out.push(failed("the libvirt networks", uri, &e));
            None
        }
    };
    if let Some(networks) = &networks {
        check_networks(cluster, networks, uri, &mut out);
    }
    check_names(cluster, plan, networks.as_deref(), hv, &mut out);
    check_pci(&nodes, hv, &mut out);
    PreflightReport {
        problems: out,
        warnings,
    }
}

fn failed(
    what: impl Into<String>,
    uri: &str,
    e: &(dyn std::error::Error + 'static),
) -> PreflightProblem {
    PreflightProblem::CheckFailed {
        what: what.into(),
        uri: uri.to_owned(),
        reason: chain(e),
    }
}

/// Whether the host's files can be looked at here: the connection is local.
fn local(uri: &str, nodes: &[&Node]) -> bool {
    match nodes.first() {
        Some(n) => n.uri.remote_host().is_none(),
        None => uri
            .parse::<ConnectUri>()
            .is_ok_and(|u| u.remote_host().is_none()),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. image files

fn check_image(cluster: &Cluster, nodes: &[&Node], out: &mut Vec<PreflightProblem>) {
    if nodes.is_empty() {
        return;
    }
    let image = &cluster.image;
    let files = [
        (ImageFile::Base, Some(&image.base)),
        (ImageFile::Kernel, image.kernel.as_ref()),
        (ImageFile::Initrd, image.initrd.as_ref()),
    ];
    for (what, path) in files {
        if let Some(path) = path {
            out.extend(check_file(what, path));
        }
    }
}

/// The name a problem gives the host of connection `uri`: its name in `hosts:`, else the URI.
fn host_name(cluster: &Cluster, uri: &str) -> String {
    cluster
        .hosts
        .iter()
        .find(|h| h.uri.as_str() == uri)
        .map_or_else(|| uri.to_owned(), |h| h.name.to_string())
}

/// 1b. On a remote connection: every local file the plan uploads there (base image, kernel,
/// initrd, the seed disks of its nodes) exists, is a regular file and can be read here.
fn check_uploads(
    cluster: &Cluster,
    plan: &LibvirtPlan,
    uri: &str,
    out: &mut Vec<PreflightProblem>,
) {
    let image = &cluster.image;
    let host = host_name(cluster, uri);
    for o in plan.objects.iter().filter(|o| o.uri.as_str() == uri) {
        let Some(src) = &o.upload else { continue };
        let what = if src.path == image.base {
            ImageFile::Base.to_string()
        } else if image.kernel.as_deref() == Some(src.path.as_path()) {
            ImageFile::Kernel.to_string()
        } else if image.initrd.as_deref() == Some(src.path.as_path()) {
            ImageFile::Initrd.to_string()
        } else {
            cluster
                .nodes
                .iter()
                .find(|n| seed_path(&cluster.state_dir, n.name.as_str()) == src.path)
                .map_or_else(
                    || format!("volume `{}`", o.name),
                    |n| format!("seed disk of node `{}`", n.name),
                )
        };
        let reason = match check_file(ImageFile::Base, &src.path) {
            None => continue,
            Some(PreflightProblem::ImageMissing { .. }) => "does not exist".to_owned(),
            Some(PreflightProblem::ImageNotAFile { .. }) => "is not a regular file".to_owned(),
            Some(PreflightProblem::ImageUnreadable { reason, .. }) => {
                format!("cannot be read: {reason}")
            }
            Some(_) => "cannot be used".to_owned(),
        };
        out.push(PreflightProblem::UploadSourceUnusable {
            what,
            path: src.path.clone(),
            host: host.clone(),
            reason,
        });
    }
}

/// 1c. The nodes on the connection against what libvirt reports of the host: more memory
/// than it has is a problem, more vCPUs than its CPUs a warning. (A host's declared
/// `capacity` was checked by hpc-config when it placed the nodes.)
fn check_host_size<H: Hypervisor>(
    cluster: &Cluster,
    nodes: &[&Node],
    hv: &H,
    out: &mut Vec<PreflightProblem>,
    warnings: &mut Vec<PreflightWarning>,
) {
    if nodes.is_empty() {
        return;
    }
    let info = match hv.host_info() {
        Ok(Some(info)) => info,
        Ok(None) => return,
        Err(e) => {
            out.push(failed("the host's CPUs and memory", hv.uri(), &e));
            return;
        }
    };
    let host = host_name(cluster, hv.uri());
    let memory: u64 = nodes
        .iter()
        .fold(0u64, |m, n| m.saturating_add(n.memory.bytes()));
    let total = info.memory_kib.saturating_mul(1024);
    if memory > total {
        out.push(PreflightProblem::HostMemoryExceeded {
            host: host.clone(),
            count: nodes.len(),
            needed: ByteSize::from_bytes(memory),
            total: ByteSize::from_bytes(total),
        });
    }
    let vcpus: u64 = nodes.iter().map(|n| u64::from(n.vcpus)).sum();
    if vcpus > u64::from(info.cpus) {
        warnings.push(PreflightWarning::VcpuOvercommit {
            host,
            vcpus,
            cpus: info.cpus,
        });
    }
}

fn io_reason(e: &io::Error) -> String {
    e.kind().to_string()
}

fn check_file(what: ImageFile, path: &Path) -> Option<PreflightProblem> {
    let path_buf = path.to_path_buf();
    match fs_err::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some(PreflightProblem::ImageMissing {
                what,
                path: path_buf,
            });
        }
        Err(e) => {
            return Some(PreflightProblem::ImageUnreadable {
                what,
                path: path_buf,
                reason: io_reason(&e),
            });
        }
        Ok(m) if !m.is_file() => {
            return Some(PreflightProblem::ImageNotAFile {
                what,
                path: path_buf,
            });
        }
        Ok(_) => {}
    }
    fs_err::File::open(path)
        .err()
        .map(|e| PreflightProblem::ImageUnreadable {
            what,
            path: path_buf,
            reason: io_reason(&e),
        })
}

// ---------------------------------------------------------------------------------------------
// 2. virtio-fs host directories

fn check_shares(nodes: &[&Node], out: &mut Vec<PreflightProblem>) {
    // One problem per share (tag + path), naming every node it goes to.
    let mut shares: Vec<((&str, &Path), Vec<String>)> = Vec::new();
    for node in nodes {
        for m in &node.virtiofs {
            let key = (m.tag.as_str(), m.host_path.as_path());
            let name = node.name.as_str().to_owned();
            match shares.iter_mut().find(|(k, _)| *k == key) {
                Some((_, names)) => names.push(name),
                None => shares.push((key, vec![name])),
            }
        }
    }
    for ((tag, path), nodes) in shares {
        let (path, tag) = (path.to_path_buf(), tag.to_owned());
        match fs_err::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => out.push(PreflightProblem::ShareNotADirectory { path, tag, nodes }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                out.push(PreflightProblem::ShareMissing { path, tag, nodes });
            }
            Err(e) => out.push(PreflightProblem::ShareUnreadable {
                path,
                tag,
                nodes,
                reason: io_reason(&e),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. domain types and virtio-fs, from the domain capabilities

fn check_capabilities<H: Hypervisor>(nodes: &[&Node], hv: &H, out: &mut Vec<PreflightProblem>) {
    let uri = hv.uri();
    let mut by_type: Vec<(DomainType, Vec<&Node>)> = Vec::new();
    for node in nodes {
        match by_type.iter_mut().find(|(t, _)| *t == node.domain_type) {
            Some((_, v)) => v.push(node),
            None => by_type.push((node.domain_type, vec![node])),
        }
    }
    for (t, group) in by_type {
        let domain_type = domain_type_name(t);
        let xml = match hv.domain_capabilities(domain_type) {
            Ok(Some(xml)) => xml,
            Ok(None) => continue,
            Err(e) => {
                out.push(PreflightProblem::DomainTypeUnavailable {
                    domain_type: domain_type.to_owned(),
                    uri: uri.to_owned(),
                    nodes: names(&group),
                    reason: chain(&e),
                });
                continue;
            }
        };
        let with_shares: Vec<&Node> = group
            .iter()
            .copied()
            .filter(|n| !n.virtiofs.is_empty())
            .collect();
        if with_shares.is_empty() {
            continue;
        }
        match virtiofs_offered(&xml) {
            Ok(true) => {}
            Ok(false) => out.push(PreflightProblem::VirtiofsUnavailable {
                uri: uri.to_owned(),
                domain_type: domain_type.to_owned(),
                nodes: names(&with_shares),
            }),
            Err(e) => out.push(failed(
                format!("virtio-fs support for domain type {domain_type}"),
                uri,
                &e,
            )),
        }
    }
}

/// Whether domain capabilities XML offers a supported `<filesystem>` with the `virtiofs`
/// driver type.
fn virtiofs_offered(xml: &str) -> Result<bool, roxmltree::Error> {
    let doc = Document::parse(xml)?;
    let offered = doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("devices"))
        .flat_map(|d| d.children())
        .filter(|n| n.has_tag_name("filesystem") && n.attribute("supported") == Some("yes"))
        .flat_map(|f| f.children())
        .filter(|n| n.has_tag_name("enum") && n.attribute("name") == Some("driverType"))
        .flat_map(|e| e.children())
        .any(|v| v.has_tag_name("value") && v.text().map(str::trim) == Some("virtiofs"));
    Ok(offered)
}

// ---------------------------------------------------------------------------------------------
// 4. other libvirt networks

/// What a libvirt network XML says about its bridge and IPv4 ranges.
#[derive(Debug, Default, PartialEq)]
struct NetworkFacts {
    bridge: Option<String>,
    ranges: Vec<Ipv4Net>,
}

fn network_facts(xml: &str) -> Result<NetworkFacts, roxmltree::Error> {
    let doc = Document::parse(xml)?;
    let mut facts = NetworkFacts::default();
    for child in doc.root_element().children().filter(|n| n.is_element()) {
        match child.tag_name().name() {
            "bridge" => facts.bridge = child.attribute("name").map(str::to_owned),
            "ip" if child.attribute("family").is_none_or(|f| f == "ipv4") => {
                let Some(addr) = child
                    .attribute("address")
                    .and_then(|a| a.parse::<Ipv4Addr>().ok())
                else {
                    continue;
                };
                let prefix = child
                    .attribute("prefix")
                    .and_then(|p| p.parse::<u8>().ok())
                    .or_else(|| {
                        child
                            .attribute("netmask")
                            .and_then(|m| m.parse::<Ipv4Addr>().ok())
                            .and_then(|m| hpc_config::ipnet::ipv4_mask_to_prefix(m).ok())
                    })
                    .unwrap_or_else(|| classful_prefix(addr));
                if let Ok(net) = Ipv4Net::new(addr, prefix) {
                    facts.ranges.push(net.trunc());
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// libvirt's default prefix for an `<ip>` without netmask or prefix: the address's class.
fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_networks(
    cluster: &Cluster,
    networks: &[crate::hypervisor::LiveObject],
    uri: &str,
    out: &mut Vec<PreflightProblem>,
) {
    let own = crate::plan::network_name(cluster.name.as_str());
    let bridge = cluster.network.bridge.as_str();
    let cidr = cluster.network.cidr.trunc();
    for net in networks.iter().filter(|n| n.name != own) {
        let facts = match network_facts(&net.xml) {
            Ok(f) => f,
            Err(e) => {
                out.push(failed(format!("libvirt network `{}`", net.name), uri, &e));
                continue;
            }
        };
        if facts.bridge.as_deref() == Some(bridge) {
            out.push(PreflightProblem::BridgeInUse {
                bridge: bridge.to_owned(),
                network: net.name.clone(),
                uri: uri.to_owned(),
            });
        }
        for other in facts.ranges.iter().filter(|r| overlaps(&cidr, r)) {
            out.push(PreflightProblem::CidrOverlap {
                cidr,
                other: *other,
                network: net.name.clone(),
                uri: uri.to_owned(),
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. names taken by someone else

fn check_names<H: Hypervisor>(
    cluster: &Cluster,
    plan: &LibvirtPlan,
    networks: Option<&[crate::hypervisor::LiveObject]>,
    hv: &H,
    out: &mut Vec<PreflightProblem>,
) {
    let uri = hv.uri();
    let ours = cluster.name.as_str();
    let planned = |kind: ObjectKind| {
        plan.of_kind(kind)
            .filter(|o| o.uri.as_str() == uri)
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
    };
    let domains = planned(ObjectKind::Domain);
    let live_domains = if domains.is_empty() {
        Vec::new()
    } else {
        match hv.list(ObjectKind::Domain) {
            Ok(d) => d,
            Err(e) => {
                out.push(failed("the libvirt domains", uri, &e));
                Vec::new()
            }
        }
    };
    let checks = [
        (
            ObjectKind::Network,
            planned(ObjectKind::Network),
            networks.unwrap_or_default(),
        ),
        (ObjectKind::Domain, domains, live_domains.as_slice()),
    ];
    for (kind, wanted, live) in checks {
        let live: BTreeMap<&str, &str> = live
            .iter()
            .map(|o| (o.name.as_str(), o.xml.as_str()))
            .collect();
        for name in wanted {
            let Some(xml) = live.get(name) else {
                continue;
            };
            let owner = owner_from_xml(xml).map(|o| o.cluster);
            if owner.as_deref() != Some(ours) {
                out.push(PreflightProblem::NameTaken {
                    kind,
                    name: name.to_owned(),
                    uri: uri.to_owned(),
                    owner,
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. PCI passthrough

/// What a PCI node device's XML says.
#[derive(Debug, Default, PartialEq)]
struct PciFacts {
    class: Option<u32>,
    vendor: Option<u16>,
    product: Option<u16>,
    /// The IOMMU group and its members; `None` when the device is in none (IOMMU off).
    iommu_group: Option<(u32, Vec<PciAddress>)>,
}

fn hex_u32(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(t, 16).ok()
}

fn pci_facts(xml: &str) -> Result<PciFacts, roxmltree::Error> {
    let doc = Document::parse(xml)?;
    let mut facts = PciFacts::default();
    let Some(cap) = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("capability") && n.attribute("type") == Some("pci"))
    else {
        return Ok(facts);
    };
    let id = |n: roxmltree::Node<'_, '_>| {
        n.attribute("id")
            .and_then(hex_u32)
            .and_then(|v| u16::try_from(v).ok())
    };
    for child in cap.children().filter(|n| n.is_element()) {
        match child.tag_name().name() {
            "class" => facts.class = child.text().and_then(hex_u32),
            "vendor" => facts.vendor = id(child),
            "product" => facts.product = id(child),
            "iommuGroup" => {
                let number = child
                    .attribute("number")
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or_default();
                let members = child
                    .children()
                    .filter(|n| n.has_tag_name("address"))
                    .filter_map(|a| {
                        let field = |name| a.attribute(name).and_then(hex_u32);
                        Some(PciAddress {
                            domain: u16::try_from(field("domain")?).ok()?,
                            bus: u8::try_from(field("bus")?).ok()?,
                            slot: u8::try_from(field("slot")?).ok()?,
                            function: u8::try_from(field("function")?).ok()?,
                        })
                    })
                    .collect();
                facts.iommu_group = Some((number, members));
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// PCI class of a PCI-to-PCI bridge (`0x0604xx`): such group members need not be passed
/// through (VFIO allows bridges in a group).
fn is_pci_bridge(class: u32) -> bool {
    class >> 8 == 0x0604
}

fn check_pci<H: Hypervisor>(nodes: &[&Node], hv: &H, out: &mut Vec<PreflightProblem>) {
    let uri = hv.uri();
    for node in nodes {
        let name = node.name.as_str();
        let passed: Vec<PciAddress> = node.pci_devices.iter().map(|d| d.address).collect();
        for dev in &node.pci_devices {
            let address = dev.address;
            let facts = match device_facts(hv, &address) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    out.push(PreflightProblem::PciMissing {
                        node: name.to_owned(),
                        address,
                        uri: uri.to_owned(),
                    });
                    continue;
                }
                Err(reason) => {
                    out.push(PreflightProblem::CheckFailed {
                        what: format!("PCI device {address} of node `{name}`"),
                        uri: uri.to_owned(),
                        reason,
                    });
                    continue;
                }
            };
            let ids = [
                (PciIdKind::Vendor, dev.vendor_id, facts.vendor),
                (PciIdKind::Device, dev.device_id, facts.product),
            ];
            for (which, expected, found) in ids {
                if let Some(expected) = expected
                    && found != Some(expected.0)
                {
                    out.push(PreflightProblem::PciIdMismatch {
                        node: name.to_owned(),
                        address,
                        which,
                        expected,
                        found: found.map_or_else(|| "unknown".to_owned(), |f| format!("{f:04x}")),
                    });
                }
            }
            let Some((group, members)) = facts.iommu_group else {
                out.push(PreflightProblem::PciNoIommu {
                    node: name.to_owned(),
                    address,
                    uri: uri.to_owned(),
                });
                continue;
            };
            let others: Vec<PciAddress> = members
                .into_iter()
                .filter(|m| *m != address && !passed.contains(m))
                .filter(|m| {
                    // A member that is a PCI bridge is fine; one that cannot be looked up
                    // is not known to be.
                    !matches!(
                        device_facts(hv, m),
                        Ok(Some(PciFacts { class: Some(c), .. })) if is_pci_bridge(c)
                    )
                })
                .collect();
            if !others.is_empty() {
                out.push(PreflightProblem::PciGroupNotViable {
                    node: name.to_owned(),
                    address,
                    group,
                    others,
                });
            }
        }
    }
}

/// The facts of the node device of `address`: `Ok(None)` when there is none, `Err` with the
/// reason when libvirt fails or its XML cannot be read.
fn device_facts<H: Hypervisor>(hv: &H, address: &PciAddress) -> Result<Option<PciFacts>, String> {
    let xml = hv
        .node_device_xml(&nodedev_name(address))
        .map_err(|e| chain(&e))?;
    xml.map(|x| pci_facts(&x).map_err(|e| chain(&e)))
        .transpose()
}

mod kvm;

#[cfg(test)]
mod tests;
