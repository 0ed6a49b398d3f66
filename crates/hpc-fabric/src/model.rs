//! The planner's input: the fabric, its hosts, and the names and numbers derived from them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::FabricError;

/// The IANA VXLAN port, the default [`Fabric::dstport`].
pub const DEFAULT_DSTPORT: u16 = 4789;

/// What VXLAN over IPv4 adds to every frame: outer IPv4 (20) + UDP (8) + VXLAN (8) headers
/// and the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u16 = 50;

/// The default [`Fabric::mtu`]: a 1500-byte underlay minus [`VXLAN_OVERHEAD`].
pub const DEFAULT_MTU: u16 = 1500 - VXLAN_OVERHEAD;

/// The longest network device name the kernel accepts (`IFNAMSIZ` − 1).
pub const MAX_DEVICE_NAME: usize = 15;

/// The largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = 16_777_215;

/// The smallest MTU the kernel accepts on an Ethernet device (IPv4's minimum).
pub const MIN_MTU: u16 = 68;

/// The longest cluster name this crate puts into a device alias (the kernel allows 255
/// bytes of alias; `hpc-up:` takes 7).
pub const MAX_CLUSTER_NAME: usize = 200;

/// One cluster network spread over several hypervisor hosts: a bridge of the same name on
/// every host, joined by one VXLAN device per host into one L2 segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fabric {
    /// The bridge the cluster's VMs are on, on every host (`virbr-hpc`, …).
    pub bridge: String,
    /// The VXLAN network identifier (1..=16 777 215); [`vni_for`] derives one from the
    /// cluster's name.
    pub vni: u32,
    /// UDP port of the tunnel on every host ([`DEFAULT_DSTPORT`]).
    pub dstport: u16,
    /// MTU of the bridge and the VXLAN device: the underlay's MTU minus [`VXLAN_OVERHEAD`]
    /// ([`DEFAULT_MTU`]); the VMs' NICs need the same.
    pub mtu: u16,
    /// The cluster's name: devices hpc-up makes carry the alias `hpc-up:<cluster>`.
    pub cluster: String,
    /// Every hypervisor host of the cluster.
    pub hosts: Vec<FabricHost>,
}

/// One hypervisor host of a [`Fabric`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricHost {
    /// The host's name, as the [`hpc_remote::Executor`] knows it.
    pub name: String,
    /// The host's own address on the network between the hosts: the VXLAN device's local
    /// address, and where the other hosts send this host's share of the segment.
    pub underlay: Ipv4Addr,
    /// libvirt makes the bridge on this host (the primary host's NAT network, with the
    /// cluster's dnsmasq); hpc-up then only enslaves its VXLAN device to it. Otherwise hpc-up
    /// makes, owns and removes the bridge.
    pub bridge_by_libvirt: bool,
}

impl FabricHost {
    /// Host `name` with underlay address `underlay`, bridge made by hpc-up.
    pub fn new(name: impl Into<String>, underlay: Ipv4Addr) -> Self {
        Self {
            name: name.into(),
            underlay,
            bridge_by_libvirt: false,
        }
    }

    /// This host's bridge is libvirt's (builder style).
    #[must_use]
    pub fn libvirt_bridge(mut self) -> Self {
        self.bridge_by_libvirt = true;
        self
    }
}

impl Fabric {
    /// The fabric of `cluster` on `bridge` over `hosts`, with the VNI from [`vni_for`], the
    /// default port and the default MTU.
    pub fn new(
        cluster: impl Into<String>,
        bridge: impl Into<String>,
        hosts: impl IntoIterator<Item = FabricHost>,
    ) -> Self {
        let cluster = cluster.into();
        Self {
            bridge: bridge.into(),
            vni: vni_for(&cluster),
            dstport: DEFAULT_DSTPORT,
            mtu: DEFAULT_MTU,
            cluster,
            hosts: hosts.into_iter().collect(),
        }
    }

    /// Checks every field: device names (kernel rules, at most [`MAX_DEVICE_NAME`]
    /// characters, letters, digits, `-`, `_` and `.` only), the VNI, port and MTU, the
    /// cluster name, and that host names and underlay addresses are unique.
    pub fn validate(&self) -> Result<(), FabricError> {
        check_device_name(&self.bridge)?;
        vxlan_name(&self.bridge)?;
        if !(1..=MAX_VNI).contains(&self.vni) {
            return Err(FabricError::BadVni { vni: self.vni });
        }
        if self.dstport == 0 {
            return Err(FabricError::BadPort);
        }
        if self.mtu < MIN_MTU {
            return Err(FabricError::BadMtu { mtu: self.mtu });
        }
        if self.cluster.is_empty()
            || self.cluster.len() > MAX_CLUSTER_NAME
            || self.cluster.chars().any(char::is_control)
        {
            return Err(FabricError::BadCluster {
                cluster: self.cluster.clone(),
            });
        }
        let mut names = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for h in &self.hosts {
            if !names.insert(h.name.as_str()) {
                return Err(FabricError::DuplicateHost {
                    host: h.name.clone(),
                });
            }
            if !addrs.insert(h.underlay) {
                return Err(FabricError::DuplicateUnderlay {
                    host: h.name.clone(),
                    addr: h.underlay,
                });
            }
        }
        Ok(())
    }

    /// The VXLAN device's name on every host ([`vxlan_name`] of the bridge).
    pub fn vxlan_device(&self) -> Result<String, FabricError> {
        vxlan_name(&self.bridge)
    }

    /// The alias that marks a device as hpc-up's for this cluster: `hpc-up:<cluster>`.
    pub fn alias(&self) -> String {
        format!("{ALIAS_PREFIX}{}", self.cluster)
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&FabricHost, FabricError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| FabricError::UnknownHost {
                host: name.to_owned(),
            })
    }

    /// The underlay addresses of every host but `name`, sorted: where `name`'s VXLAN device
    /// replicates broadcast, unknown-unicast and multicast frames.
    pub fn peers(&self, name: &str) -> Vec<Ipv4Addr> {
        let set: BTreeSet<Ipv4Addr> = self
            .hosts
            .iter()
            .filter(|h| h.name != name)
            .map(|h| h.underlay)
            .collect();
        set.into_iter().collect()
    }
}

/// What every device alias hpc-up sets starts with.
pub const ALIAS_PREFIX: &str = "hpc-up:";

/// 32-bit FNV-1a: small, fixed forever (unlike std's hasher), good enough to spread names.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The VXLAN network identifier of cluster `cluster`: 32-bit FNV-1a of the name's bytes,
/// reduced into 1..=16 777 215. Deterministic across runs, machines and releases.
pub fn vni_for(cluster: &str) -> u32 {
    fnv1a(cluster) % MAX_VNI + 1
}

/// The VXLAN device's name for bridge `bridge`: `vx-<bridge>` when that fits in
/// [`MAX_DEVICE_NAME`] characters (bridges of up to 12), else `vxh` and 8 hex digits of the
/// bridge name's FNV-1a hash (the two forms never collide: `vx-` versus `vxh`).
pub fn vxlan_name(bridge: &str) -> Result<String, FabricError> {
    check_device_name(bridge)?;
    let short = format!("vx-{bridge}");
    let name = if short.len() <= MAX_DEVICE_NAME {
        short
    } else {
        format!("vxh{:08x}", fnv1a(bridge))
    };
    check_device_name(&name)?;
    Ok(name)
}

/// A device name the kernel takes and no tool misreads: 1 to 15 of ASCII letters, digits,
/// `-`, `_`, `.`; not `.`/`..`; not starting with `-`.
pub fn check_device_name(name: &str) -> Result<(), FabricError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_DEVICE_NAME {
        Some("is longer than 15 characters (the kernel's IFNAMSIZ)")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else if name.starts_with('-') {
        Some("starts with `-`")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("has a character other than ASCII letters, digits, `-`, `_` and `.`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(FabricError::BadDeviceName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fabric() -> Fabric {
        Fabric::new(
            "demo",
            "virbr-hpc",
            [
                FabricHost::new("a", Ipv4Addr::new(10, 0, 0, 1)).libvirt_bridge(),
                FabricHost::new("b", Ipv4Addr::new(10, 0, 0, 2)),
                FabricHost::new("c", Ipv4Addr::new(10, 0, 0, 3)),
            ],
        )
    }

    #[test]
    fn vni_is_fixed_and_in_range() {
        // Pinned: a change would move every existing cluster to another segment.
        assert_eq!(vni_for("demo"), fnv1a("demo") % MAX_VNI + 1);
        assert_eq!(fnv1a(""), 0x811c_9dc5);
        assert_eq!(fnv1a("a"), 0xe40c_292c);
        assert_eq!(vni_for("demo"), vni_for("demo"));
        assert_ne!(vni_for("demo"), vni_for("demo2"));
        for name in ["", "a", "hpc", "cluster-with-a-long-name", "ü"] {
            assert!((1..=MAX_VNI).contains(&vni_for(name)), "{name}");
        }
    }

    #[test]
    fn vxlan_names() {
        assert_eq!(
            vxlan_name("virbr-hpc").ok().as_deref(),
            Some("vx-virbr-hpc")
        );
        assert_eq!(
            vxlan_name("abcdefghijkl").ok().as_deref(),
            Some("vx-abcdefghijkl")
        );
        let long = vxlan_name("abcdefghijklm").unwrap_or_default();
        assert_eq!(long.len(), 11);
        assert!(long.starts_with("vxh"), "{long}");
        assert_eq!(vxlan_name("abcdefghijklm").ok(), Some(long.clone()));
        assert_ne!(vxlan_name("abcdefghijkln").ok(), Some(long));
        for bad in ["", "a/b", "a b", "a:b", "-x", "..", "0123456789abcdef", "é"] {
            assert!(
                matches!(vxlan_name(bad), Err(FabricError::BadDeviceName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validation() {
        assert_eq!(fabric().validate(), Ok(()));
        assert_eq!(fabric().vni, vni_for("demo"));
        assert_eq!(fabric().mtu, 1450);
        assert_eq!(fabric().alias(), "hpc-up:demo");
        assert_eq!(
            fabric().peers("b"),
            [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 3)]
        );

        let mut f = fabric();
        f.bridge = "a-bridge-name-too-long".into();
        assert!(matches!(
            f.validate(),
            Err(FabricError::BadDeviceName { name, .. }) if name == "a-bridge-name-too-long"
        ));
        for vni in [0, MAX_VNI + 1] {
            let mut f = fabric();
            f.vni = vni;
            assert_eq!(f.validate(), Err(FabricError::BadVni { vni }));
        }
        let mut f = fabric();
        f.dstport = 0;
        assert_eq!(f.validate(), Err(FabricError::BadPort));
        let mut f = fabric();
        f.mtu = 67;
        assert_eq!(f.validate(), Err(FabricError::BadMtu { mtu: 67 }));
        for cluster in ["", "a\nb", &"x".repeat(201)] {
            let mut f = fabric();
            f.cluster = cluster.to_owned();
            assert!(
                matches!(f.validate(), Err(FabricError::BadCluster { .. })),
                "{cluster:?}"
            );
        }
        let mut f = fabric();
        f.hosts[2].name = "b".into();
        assert_eq!(
            f.validate(),
            Err(FabricError::DuplicateHost { host: "b".into() })
        );
        let mut f = fabric();
        f.hosts[2].underlay = f.hosts[0].underlay;
        assert_eq!(
            f.validate(),
            Err(FabricError::DuplicateUnderlay {
                host: "c".into(),
                addr: Ipv4Addr::new(10, 0, 0, 1)
            })
        );
        assert_eq!(
            fabric().host("z"),
            Err(FabricError::UnknownHost { host: "z".into() })
        );
    }
}
