//! The libvirt objects of a cluster (interface shared by the renderer and the lifecycle).
//!
//! [`plan()`] is pure: no I/O, no clock, no environment, and the same [`Cluster`] always gives
//! byte-identical XML.

use std::path::{Path, PathBuf};

use hpc_config::file::{DomainType, NetworkMode};
use hpc_config::types::ConnectUri;
use hpc_config::{Cluster, Node, Role};
use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};

use crate::upload::VolumeFormat;
use crate::virtiofs::virtiofs_devices;
use crate::xml::{
    BackingStore, Boot, Bridge, CharLog, CharTarget, Clock, Console, Cpu, Dhcp, DhcpHost, Disk,
    DiskDriver, DiskSource, DiskTarget, Dns, DnsHost, Domain, DomainDevices, Features, Forward,
    Hostdev, HostdevSource, Interface, InterfaceSource, LifecycleAction, MacAddress, Memballoon,
    Metadata, Mtu, Network, NetworkDomain, NetworkIp, Os, OsType, Pool, PoolTarget, Quantity, Rng,
    RngBackend, Serial, Typed, Volume, VolumeTarget,
};

/// XML namespace of hpc-up's `<metadata>` element.
pub const METADATA_NS: &str = "https://hpc-up.invalid/xmlns/libvirt/1";

/// `role` in the metadata of the cluster network (domains carry their node's role).
pub const NETWORK_ROLE: &str = "network";

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
    /// The XML to define it with. For an uploaded volume ([`Object::upload`]), the volume
    /// without its capacity (the local file's size when it is sent); informative only.
    pub xml: String,
    /// For a volume whose content is a local file put into the pool by libvirt's upload
    /// stream ([`crate::ensure_uploaded`]): that file. `None` for every other object.
    pub upload: Option<UploadSource>,
}

/// The local file an uploaded volume holds, and the format it is declared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSource {
    /// The file on this machine.
    pub path: PathBuf,
    /// Its format.
    pub format: VolumeFormat,
}

/// Every libvirt object of a cluster, in creation order (networks, pools, volumes, domains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtPlan {
    /// The objects.
    pub objects: Vec<Object>,
}

impl LibvirtPlan {
    /// The objects of one kind, in creation order.
    pub fn of_kind(&self, kind: ObjectKind) -> impl Iterator<Item = &Object> {
        self.objects.iter().filter(move |o| o.kind == kind)
    }

    /// The distinct connections, in the order their first object appears.
    pub fn uris(&self) -> Vec<&ConnectUri> {
        let mut out: Vec<&ConnectUri> = Vec::new();
        for o in &self.objects {
            if !out.contains(&&o.uri) {
                out.push(&o.uri);
            }
        }
        out
    }
}

/// The cluster a libvirt object belongs to, read back from its `<metadata>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The cluster's name.
    pub cluster: String,
    /// The node's name; `None` for objects of the whole cluster (the network).
    pub node: Option<String>,
}

/// Name of the cluster network: `<cluster>-net`.
pub fn network_name(cluster: &str) -> String {
    format!("{cluster}-net")
}

/// Name of the cluster's storage pool: `<cluster>-pool`.
pub fn pool_name(cluster: &str) -> String {
    format!("{cluster}-pool")
}

/// Name of a node's disk volume: `<cluster>-<node>.qcow2`.
pub fn volume_name(cluster: &str, node: &str) -> String {
    format!("{cluster}-{node}.qcow2")
}

/// Name of a node's domain: `<cluster>-<node>`.
pub fn domain_name(cluster: &str, node: &str) -> String {
    format!("{cluster}-{node}")
}

/// The storage pool's directory on a local connection: `<state_dir>/pool`.
pub fn pool_path(state_dir: &Path) -> PathBuf {
    state_dir.join("pool")
}

/// Where the pools of remote hosts live: libvirt's own image directory.
pub const REMOTE_POOL_PARENT: &str = "/var/lib/libvirt/images";

/// The storage pool's directory on a remote host (`qemu+ssh://…`, a system connection):
/// `/var/lib/libvirt/images/hpc-up-<cluster>`. The state directory is this machine's; on
/// another host libvirt builds the pool under its own image directory, which exists on every
/// libvirt host with the right owner and SELinux/AppArmor labels.
pub fn remote_pool_path(cluster: &str) -> PathBuf {
    Path::new(REMOTE_POOL_PARENT).join(format!("hpc-up-{cluster}"))
}

/// The pool directory on connection `uri`: [`pool_path`] when it is local,
/// [`remote_pool_path`] when it is remote.
pub fn pool_path_on(cluster: &Cluster, uri: &ConnectUri) -> PathBuf {
    match uri.remote_host() {
        None => pool_path(&cluster.state_dir),
        Some(_) => remote_pool_path(cluster.name.as_str()),
    }
}

/// Name of the base image uploaded into a remote host's pool: `<cluster>-base.image.qcow2`.
/// (The dot keeps it apart from every node's `<cluster>-<node>.qcow2`: node names have
/// none.)
pub fn base_volume_name(cluster: &str) -> String {
    format!("{cluster}-base.image.qcow2")
}

/// Name of the kernel uploaded into a remote host's pool: `<cluster>-vmlinuz`.
pub fn kernel_volume_name(cluster: &str) -> String {
    format!("{cluster}-vmlinuz")
}

/// Name of the initrd uploaded into a remote host's pool: `<cluster>-initrd.img`.
pub fn initrd_volume_name(cluster: &str) -> String {
    format!("{cluster}-initrd.img")
}

/// Name of a node's seed disk uploaded into a remote host's pool:
/// `<cluster>-<node>-seed.img`.
pub fn seed_volume_name(cluster: &str, node: &str) -> String {
    format!("{cluster}-{node}-seed.img")
}

/// The MTU of the cluster network when it spans hosts: 1500 less the 50 bytes of VXLAN over
/// IPv4. Agreed with `hpc_fabric::DEFAULT_MTU`, which makes the bridges and tunnels of the
/// other hosts (this crate does not depend on hpc-fabric: change both together).
pub const FABRIC_MTU: u32 = 1450;

/// Where the console log of a node on a remote host goes (the state directory is this
/// machine's): `/var/log/libvirt/qemu/<cluster>-<node>-console.log`, libvirt's own log
/// directory there, which virtlogd may write.
pub fn remote_console_log_path(cluster: &str, node: &str) -> PathBuf {
    Path::new("/var/log/libvirt/qemu").join(format!("{cluster}-{node}-console.log"))
}

/// Where a node's disk volume lives: `<state_dir>/pool/<cluster>-<node>.qcow2`.
pub fn volume_path(state_dir: &Path, cluster: &str, node: &str) -> PathBuf {
    pool_path(state_dir).join(volume_name(cluster, node))
}

/// The serial number of every node's seed disk, by which the guest finds it.
pub const SEED_SERIAL: &str = "hpc-up-seed";

/// The directory of the nodes' seed disks: `<state_dir>/seed`.
pub fn seed_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("seed")
}

/// A node's seed disk: `<state_dir>/seed/<node>.img`, attached read-only as a raw virtio
/// disk with serial [`SEED_SERIAL`]. It holds what the node applies to itself while it boots
/// (a tar of programs, written by whoever brings the cluster up before the domain starts;
/// zeros or an empty archive mean nothing to do). Images built by `hpc-image` carry the
/// unit that reads it; other images simply ignore the disk.
pub fn seed_path(state_dir: &Path, node: &str) -> PathBuf {
    seed_dir(state_dir).join(format!("{node}.img"))
}

/// The directory of the serial console logs: `<state_dir>/console`.
pub fn console_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("console")
}

/// A node's serial console log: `<state_dir>/console/<node>.log`.
pub fn console_log_path(state_dir: &Path, node: &str) -> PathBuf {
    console_dir(state_dir).join(format!("{node}.log"))
}

/// The connections of `cluster`'s nodes, in the order of their first node.
fn node_uris(cluster: &Cluster) -> Vec<&ConnectUri> {
    let mut uris: Vec<&ConnectUri> = Vec::new();
    for node in &cluster.nodes {
        if !uris.contains(&&node.uri) {
            uris.push(&node.uri);
        }
    }
    uris
}

/// The primary connection of a cluster: its (first) controller's, where hpc-up runs when the
/// cluster spans hosts and whose network serves DHCP for all of them (`hpc-config` makes it
/// local then). `None` for a cluster without nodes.
pub fn primary_uri(cluster: &Cluster) -> Option<&ConnectUri> {
    cluster
        .controllers()
        .next()
        .or_else(|| cluster.nodes.first())
        .map(|n| &n.uri)
}

/// Whether the cluster's nodes live on two or more connections.
pub fn spans_hosts(cluster: &Cluster) -> bool {
    node_uris(cluster).len() >= 2
}

/// Plan the libvirt objects of `cluster`.
///
/// Each distinct node connection gets its own network and pool (same names on every
/// connection); then, on every remote connection, the uploaded volumes its nodes need (base
/// image, kernel and initrd when the image has them, and each node's seed disk); then one
/// overlay volume and one domain per node, in cluster order.
pub fn plan(cluster: &Cluster) -> LibvirtPlan {
    let uris = node_uris(cluster);
    let name = cluster.name.as_str();
    let mut objects = Vec::with_capacity(5 * uris.len() + 3 * cluster.nodes.len());
    for uri in &uris {
        objects.push(Object {
            kind: ObjectKind::Network,
            name: network_name(name),
            uri: (*uri).clone(),
            xml: network_xml(cluster, uri).to_xml(),
            upload: None,
        });
    }
    for uri in &uris {
        objects.push(Object {
            kind: ObjectKind::Pool,
            name: pool_name(name),
            uri: (*uri).clone(),
            xml: pool_xml_on(cluster, uri).to_xml(),
            upload: None,
        });
    }
    for uri in uris.iter().filter(|u| u.remote_host().is_some()) {
        objects.extend(uploads(cluster, uri));
    }
    for node in &cluster.nodes {
        objects.push(Object {
            kind: ObjectKind::Volume,
            name: volume_name(name, node.name.as_str()),
            uri: node.uri.clone(),
            xml: volume_xml(cluster, node).to_xml(),
            upload: None,
        });
    }
    for node in &cluster.nodes {
        objects.push(Object {
            kind: ObjectKind::Domain,
            name: domain_name(name, node.name.as_str()),
            uri: node.uri.clone(),
            xml: domain_xml(cluster, node).to_xml(),
            upload: None,
        });
    }
    LibvirtPlan { objects }
}

/// The uploaded volumes of remote connection `uri`: base image, kernel, initrd, then the
/// seed disk of each of its nodes.
fn uploads(cluster: &Cluster, uri: &ConnectUri) -> Vec<Object> {
    let name = cluster.name.as_str();
    let image = &cluster.image;
    let files = [
        Some((
            base_volume_name(name),
            image.base.clone(),
            VolumeFormat::Qcow2,
        )),
        image
            .kernel
            .clone()
            .map(|k| (kernel_volume_name(name), k, VolumeFormat::Raw)),
        image
            .initrd
            .clone()
            .map(|i| (initrd_volume_name(name), i, VolumeFormat::Raw)),
    ];
    let seeds = cluster.nodes.iter().filter(|n| &n.uri == uri).map(|n| {
        (
            seed_volume_name(name, n.name.as_str()),
            seed_path(&cluster.state_dir, n.name.as_str()),
            VolumeFormat::Raw,
        )
    });
    files
        .into_iter()
        .flatten()
        .chain(seeds)
        .map(|(volume, path, format)| Object {
            kind: ObjectKind::Volume,
            xml: Volume {
                name: volume.clone(),
                capacity: None,
                target: VolumeTarget {
                    format: Typed {
                        kind: format.as_str().to_owned(),
                    },
                    compat: None,
                },
                backing_store: None,
            }
            .to_xml(),
            name: volume,
            uri: uri.clone(),
            upload: Some(UploadSource { path, format }),
        })
        .collect()
}

/// The cluster network on connection `uri`.
///
/// DNS names every node of the cluster, wherever it runs; DHCP hands out a static lease per
/// node. There is no dynamic range: addresses are decided at plan time.
///
/// When the nodes span two or more connections, the network on the primary connection
/// ([`primary_uri`]) is the cluster's one DHCP and DNS server: it holds the leases of *all*
/// nodes (the other hosts' VMs reach it over the tunnels between the hosts), and it carries
/// `<mtu size='1450'/>` ([`FABRIC_MTU`]). Every other connection's network is
/// `<forward mode='bridge'/>` on the bridge of the same name (made by hpc-fabric, joined to
/// the primary's by VXLAN, with MTU [`FABRIC_MTU`]), and nothing else: no address, DHCP, DNS
/// or domain, no `stp`/`delay`, and no `<mtu>` — libvirt refuses all of them in bridge mode;
/// the guests' tap devices take the bridge's MTU. A cluster on one connection gets exactly the network it always
/// had.
pub fn network_xml(cluster: &Cluster, uri: &ConnectUri) -> Network {
    let net = &cluster.network;
    let spans = spans_hosts(cluster);
    let bridge_only = spans && primary_uri(cluster) != Some(uri);
    let name = network_name(cluster.name.as_str());
    let metadata = Metadata::new(cluster.name.as_str(), "", NETWORK_ROLE);
    if bridge_only {
        return Network {
            name,
            metadata,
            forward: Some(Forward {
                mode: "bridge".to_owned(),
            }),
            bridge: Bridge {
                name: net.bridge.as_str().to_owned(),
                stp: None,
                delay: None,
            },
            // libvirt refuses `<mtu>` in bridge mode ("mtu size only allowed in open, route,
            // nat, and isolated mode"): the tap devices take the MTU of the bridge, which
            // hpc-fabric makes with FABRIC_MTU.
            mtu: None,
            domain: None,
            dns: None,
            ip: None,
        };
    }
    Network {
        name,
        metadata,
        forward: match net.mode {
            NetworkMode::Nat => Some(Forward {
                mode: "nat".to_owned(),
            }),
            NetworkMode::Isolated => None,
        },
        bridge: Bridge {
            name: net.bridge.as_str().to_owned(),
            stp: Some("off".to_owned()),
            delay: Some(0),
        },
        mtu: spans.then_some(Mtu { size: FABRIC_MTU }),
        domain: Some(NetworkDomain {
            name: net.domain.as_str().to_owned(),
            local_only: "yes".to_owned(),
        }),
        dns: Some(Dns {
            host: cluster
                .nodes
                .iter()
                .map(|n| DnsHost {
                    ip: n.ip.to_string(),
                    hostname: vec![n.name.as_str().to_owned()],
                })
                .collect(),
        }),
        ip: Some(NetworkIp {
            address: net.gateway.to_string(),
            netmask: net.cidr.netmask().to_string(),
            dhcp: Some(Dhcp {
                host: cluster
                    .nodes
                    .iter()
                    .map(|n| DhcpHost {
                        mac: n.mac.to_string(),
                        name: n.name.as_str().to_owned(),
                        ip: n.ip.to_string(),
                    })
                    .collect(),
            }),
        }),
    }
}

/// The cluster's directory storage pool on a local connection, at `<state_dir>/pool`.
pub fn pool_xml(cluster: &Cluster) -> Pool {
    pool_doc(cluster, pool_path(&cluster.state_dir))
}

/// The cluster's directory storage pool on connection `uri`, at [`pool_path_on`].
pub fn pool_xml_on(cluster: &Cluster, uri: &ConnectUri) -> Pool {
    pool_doc(cluster, pool_path_on(cluster, uri))
}

fn pool_doc(cluster: &Cluster, path: PathBuf) -> Pool {
    Pool {
        kind: "dir".to_owned(),
        name: pool_name(cluster.name.as_str()),
        target: PoolTarget {
            path: path_text(&path),
        },
    }
}

/// A node's disk: a qcow2 overlay (compat 1.1) backed by the cluster's base image — the local
/// file, or on a remote host the uploaded [`base_volume_name`] in that host's pool.
///
/// The backing store belongs here and never in the domain: libvirt reads the chain from the
/// qcow2 header, and a `<backingStore>` in a domain overrides it.
pub fn volume_xml(cluster: &Cluster, node: &Node) -> Volume {
    let cname = cluster.name.as_str();
    let base = match node.uri.remote_host() {
        None => cluster.image.base.clone(),
        Some(_) => remote_pool_path(cname).join(base_volume_name(cname)),
    };
    Volume {
        name: volume_name(cname, node.name.as_str()),
        capacity: Some(Quantity {
            unit: "bytes",
            value: node.disk.bytes(),
        }),
        target: VolumeTarget {
            format: qcow2(),
            compat: Some("1.1".to_owned()),
        },
        backing_store: Some(BackingStore {
            path: path_text(&base),
            format: qcow2(),
        }),
    }
}

/// A node's domain.
///
/// On a local connection its files are this machine's: the overlay in `<state_dir>/pool`, the
/// image's kernel and initrd, the seed disk [`seed_path`], the console log
/// [`console_log_path`]. On a remote connection they are the host's: the overlay, the
/// uploaded kernel, initrd and seed disk in [`remote_pool_path`], the console log at
/// [`remote_console_log_path`].
pub fn domain_xml(cluster: &Cluster, node: &Node) -> Domain {
    let cname = cluster.name.as_str();
    let nname = node.name.as_str();
    let image = &cluster.image;
    let remote = node.uri.remote_host().is_some();
    let pool = pool_path_on(cluster, &node.uri);
    let (kernel_path, initrd_path, seed, console) = if remote {
        (
            image
                .kernel
                .as_ref()
                .map(|_| pool.join(kernel_volume_name(cname))),
            image
                .initrd
                .as_ref()
                .map(|_| pool.join(initrd_volume_name(cname))),
            pool.join(seed_volume_name(cname, nname)),
            remote_console_log_path(cname, nname),
        )
    } else {
        (
            image.kernel.clone(),
            image.initrd.clone(),
            seed_path(&cluster.state_dir, nname),
            console_log_path(&cluster.state_dir, nname),
        )
    };
    let fs = virtiofs_devices(node);
    let (kind, cpu) = match node.domain_type {
        DomainType::Qemu => (
            "qemu",
            Cpu {
                mode: "maximum".to_owned(),
                check: Some("none".to_owned()),
            },
        ),
        DomainType::Kvm => (
            "kvm",
            Cpu {
                mode: "host-passthrough".to_owned(),
                check: None,
            },
        ),
    };
    let os = match &kernel_path {
        Some(kernel) => {
            let hostname = format!("systemd.hostname={nname}");
            let cmdline = match image.cmdline.as_deref().map(str::trim) {
                Some(c) if !c.is_empty() => format!("{c} {hostname}"),
                _ => hostname,
            };
            Os {
                os_type: hvm(),
                kernel: Some(path_text(kernel)),
                initrd: initrd_path.as_deref().map(path_text),
                cmdline: Some(cmdline),
                boot: None,
            }
        }
        None => Os {
            os_type: hvm(),
            kernel: None,
            initrd: None,
            cmdline: None,
            boot: Some(Boot {
                dev: "hd".to_owned(),
            }),
        },
    };
    Domain {
        kind: kind.to_owned(),
        name: domain_name(cname, nname),
        metadata: Metadata::new(cname, nname, role_name(node.role)),
        memory: Quantity {
            unit: "KiB",
            value: node.memory.kib_ceil(),
        },
        vcpu: node.vcpus,
        memory_backing: fs.memory_backing,
        os,
        features: Features { acpi: (), apic: () },
        cpu,
        clock: Clock {
            offset: "utc".to_owned(),
        },
        on_poweroff: LifecycleAction::Destroy,
        on_reboot: LifecycleAction::Restart,
        on_crash: LifecycleAction::Destroy,
        devices: DomainDevices {
            disk: vec![Disk {
                kind: "file".to_owned(),
                device: "disk".to_owned(),
                driver: DiskDriver {
                    name: "qemu".to_owned(),
                    format: "qcow2".to_owned(),
                },
                source: DiskSource {
                    file: path_text(&pool.join(volume_name(cname, nname))),
                },
                target: DiskTarget {
                    dev: "vda".to_owned(),
                    bus: "virtio".to_owned(),
                },
                serial: None,
                readonly: None,
            }]
            .into_iter()
            .chain(Some(Disk {
                kind: "file".to_owned(),
                device: "disk".to_owned(),
                driver: DiskDriver {
                    name: "qemu".to_owned(),
                    format: "raw".to_owned(),
                },
                source: DiskSource {
                    file: path_text(&seed),
                },
                target: DiskTarget {
                    dev: "vdb".to_owned(),
                    bus: "virtio".to_owned(),
                },
                serial: Some(SEED_SERIAL.to_owned()),
                readonly: Some(()),
            }))
            .collect(),
            filesystem: fs.filesystems,
            interface: vec![Interface {
                kind: "network".to_owned(),
                mac: MacAddress {
                    address: node.mac.to_string(),
                },
                source: InterfaceSource {
                    network: network_name(cname),
                },
                model: Typed {
                    kind: "virtio".to_owned(),
                },
                // Across hosts every guest's NIC says 1450, on every host: a bridge-mode
                // network cannot carry an MTU (libvirt refuses it), and a guest that sends
                // 1500-byte frames into the VXLAN loses them.
                mtu: spans_hosts(cluster).then_some(Mtu { size: FABRIC_MTU }),
            }],
            serial: vec![Serial {
                kind: "pty".to_owned(),
                log: Some(CharLog {
                    file: path_text(&console),
                    append: "off".to_owned(),
                }),
                target: CharTarget {
                    kind: None,
                    port: 0,
                },
            }],
            console: vec![Console {
                kind: "pty".to_owned(),
                target: CharTarget {
                    kind: Some("serial".to_owned()),
                    port: 0,
                },
            }],
            hostdev: node
                .pci_devices
                .iter()
                .map(|d| Hostdev {
                    mode: "subsystem".to_owned(),
                    kind: "pci".to_owned(),
                    managed: "yes".to_owned(),
                    source: HostdevSource {
                        address: d.address.into(),
                    },
                })
                .collect(),
            rng: vec![Rng {
                model: "virtio".to_owned(),
                backend: RngBackend {
                    model: "random".to_owned(),
                    source: "/dev/urandom".to_owned(),
                },
            }],
            memballoon: Memballoon {
                model: "none".to_owned(),
            },
        },
    }
}

/// The owner recorded in a network's or domain's XML (as written by [`plan()`] or as libvirt
/// dumps it back), or `None` when the XML carries no hpc-up metadata or is not well-formed.
///
/// The element is found by namespace, so whatever prefix it carries works.
pub fn owner_from_xml(xml: &str) -> Option<Owner> {
    let mut reader = NsReader::from_str(xml);
    let ns = Namespace(METADATA_NS);
    loop {
        match reader.read_resolved_event().ok()? {
            (ResolveResult::Bound(bound), Event::Start(e) | Event::Empty(e))
                if bound == ns && e.local_name().as_ref() == "cluster" =>
            {
                return owner_from_tag(&e);
            }
            (_, Event::Eof) => return None,
            _ => {}
        }
    }
}

fn owner_from_tag(e: &BytesStart<'_>) -> Option<Owner> {
    let mut cluster = None;
    let mut node = None;
    for attr in e.attributes() {
        let attr = attr.ok()?;
        let value = attr.normalized_value(XmlVersion::Implicit1_0).ok()?;
        match attr.key.as_ref() {
            "name" => cluster = Some(value.into_owned()),
            "node" => node = Some(value.into_owned()),
            _ => {}
        }
    }
    let cluster = cluster.filter(|c| !c.is_empty())?;
    Some(Owner {
        cluster,
        node: node.filter(|n| !n.is_empty()),
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Controller => "controller",
        Role::Compute => "compute",
    }
}

fn hvm() -> OsType {
    OsType {
        arch: "x86_64".to_owned(),
        machine: "q35".to_owned(),
        value: "hvm".to_owned(),
    }
}

fn qcow2() -> Typed {
    Typed {
        kind: "qcow2".to_owned(),
    }
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(cluster: &str, node: Option<&str>) -> Option<Owner> {
        Some(Owner {
            cluster: cluster.to_owned(),
            node: node.map(str::to_owned),
        })
    }

    fn minimal() -> Cluster {
        let env = |_: &str| None;
        hpc_config::load_str(
            "minimal.yaml",
            include_str!("../../../examples/minimal.yaml"),
            &env,
        )
        .expect("the minimal example loads")
    }

    #[test]
    fn owner_round_trips_through_rendered_metadata() {
        let cluster = minimal();
        let net = network_xml(&cluster, &cluster.nodes[0].uri).to_xml();
        assert_eq!(owner_from_xml(&net), owner("minimal", None));
        for node in &cluster.nodes {
            let dom = domain_xml(&cluster, node).to_xml();
            assert_eq!(
                owner_from_xml(&dom),
                owner("minimal", Some(node.name.as_str()))
            );
        }
    }

    #[test]
    fn owner_is_found_by_namespace_not_prefix() {
        // libvirt may write the element back with another prefix or layout.
        let xml = format!(
            "<domain><metadata>\n  <x:cluster xmlns:x=\"{METADATA_NS}\" role=\"compute\" \
             node=\"cn&#50;\" name=\"lab\"></x:cluster>\n</metadata></domain>"
        );
        assert_eq!(owner_from_xml(&xml), owner("lab", Some("cn2")));
    }

    #[test]
    fn foreign_or_missing_metadata_has_no_owner() {
        let other = "<domain><metadata><hpc:cluster xmlns:hpc='https://example.invalid/other' \
                     name='lab' node='cn1'/></metadata></domain>";
        assert_eq!(owner_from_xml(other), None);
        // Right local name and prefix, but no namespace declaration.
        assert_eq!(
            owner_from_xml("<domain><metadata><cluster name='lab'/></metadata></domain>"),
            None
        );
        assert_eq!(owner_from_xml("<domain><name>vm</name></domain>"), None);
        let empty_name = format!(
            "<domain><metadata><hpc:cluster xmlns:hpc='{METADATA_NS}' name=''/></metadata></domain>"
        );
        assert_eq!(owner_from_xml(&empty_name), None);
        assert_eq!(owner_from_xml("<domain><metadata><hpc:cluster"), None);
        assert_eq!(owner_from_xml(""), None);
    }

    #[test]
    fn names_are_cluster_prefixed() {
        assert_eq!(network_name("lab"), "lab-net");
        assert_eq!(pool_name("lab"), "lab-pool");
        assert_eq!(volume_name("lab", "cn1"), "lab-cn1.qcow2");
        assert_eq!(domain_name("lab", "cn1"), "lab-cn1");
        let state = Path::new("/var/lib/hpc-up/lab");
        assert_eq!(
            volume_path(state, "lab", "cn1"),
            Path::new("/var/lib/hpc-up/lab/pool/lab-cn1.qcow2")
        );
        assert_eq!(
            console_log_path(state, "cn1"),
            Path::new("/var/lib/hpc-up/lab/console/cn1.log")
        );
    }

    #[test]
    fn pci_addresses_are_written_in_libvirt_hex() {
        let a: hpc_config::types::PciAddress = "0000:af:1f.7".parse().expect("address");
        let x = crate::xml::PciAddress::from(a);
        assert_eq!(
            (
                x.domain.as_str(),
                x.bus.as_str(),
                x.slot.as_str(),
                x.function.as_str()
            ),
            ("0x0000", "0xaf", "0x1f", "0x7")
        );
    }
}
