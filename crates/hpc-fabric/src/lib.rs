//! `hpc-fabric`: one cluster network across several hypervisor hosts.
//!
//! A cluster whose VMs run on several libvirt hosts still has one network: one L2 segment,
//! one dnsmasq (DHCP and DNS) and one subnet. The *primary* host keeps libvirt's NAT
//! network — libvirt makes its bridge and runs the cluster's dnsmasq with the static DHCP
//! entries. Every other host gets a plain Linux bridge of the same name, made by hpc-up
//! (libvirt then has a network in bridge mode on it, which is not this crate's business).
//! On every host a VXLAN device is a port of that bridge, and it sends the segment's
//! broadcast, multicast and unknown-unicast frames to every other host ("head-end
//! replication": one all-zero fdb entry per peer, `bridge fdb append 00:00:00:00:00:00 dev
//! VX dst PEER`). Known unicast goes straight to the one host that has the MAC: the device
//! learns where each MAC lives from the frames it receives.
//!
//! # Why VXLAN with head-end replication
//!
//! VXLAN carries Ethernet frames in UDP, so the hosts only need to reach each other by IP
//! — across routers too, where a plain bridged cable or a GRE-less L2 trunk cannot go. Its
//! usual flooding through an IP multicast group needs multicast routing between the hosts,
//! which routed (or cloud) networks rarely have; head-end replication needs nothing but
//! unicast UDP: each host copies a flooded frame once per peer. A cluster has a handful of
//! hypervisor hosts and little broadcast (ARP, DHCP), so the copies cost nothing worth
//! counting. No controller, no EVPN, no daemon: the kernel does all of it.
//!
//! # MTU
//!
//! VXLAN over IPv4 adds 50 bytes to every frame ([`VXLAN_OVERHEAD`]). The bridge and the
//! VXLAN device get [`Fabric::mtu`], the underlay's MTU minus 50 ([`DEFAULT_MTU`], 1450
//! for a 1500-byte underlay), and the VMs' NICs must use the same MTU (libvirt's network
//! `<mtu size=…/>`, which dnsmasq then also advertises): a larger frame would be dropped
//! by the VXLAN device, not fragmented.
//!
//! # What a host needs
//!
//! iproute2 (`ip` and `bridge`, with `-j` JSON output), root (or `CAP_NET_ADMIN`) for the
//! connecting user, a kernel with the `vxlan` and `bridge` modules, and UDP port
//! [`Fabric::dstport`] ([`DEFAULT_DSTPORT`], 4789) open between the hosts' underlay
//! addresses in both directions.
//!
//! # How it applies
//!
//! Planning is two stages, so that the check is exact: [`observe`] reads a host's devices
//! as iproute2 JSON (`ip -j -d link show`, `bridge -j fdb show dev …`, parsed by
//! [`parse_links`] and [`parse_flood`]), then the pure [`up_plan`] / [`down_plan`] compare
//! that with the [`Fabric`] and make an [`hpc_remote::HostPlan`] of just the commands that
//! change what differs (a VXLAN device with another VNI, local address or port is removed
//! and made again; stale fdb entries are deleted). A host that is already as planned gets an
//! empty plan, so a second `up` changes nothing, and so does a second `down`.
//! [`up_phase`] / [`down_phase`] do both stages for every host at once and give an
//! [`hpc_remote::Phase`] to run with [`hpc_remote::run_phase`].
//!
//! Every device hpc-up makes carries the alias `hpc-up:<cluster>` ([`Fabric::alias`]). A
//! device of the same name without it is never taken over ([`FabricError::NotOurs`], naming
//! host and device) and never removed; libvirt's bridge on the primary host is used, never
//! changed or removed. The VXLAN device's name comes from the bridge's ([`vxlan_name`]),
//! within the kernel's 15 characters. `ip link add` ignores an alias, so a device is made and
//! given its alias by one step (one shell, `ip link add … && ip link set … alias …`): a run
//! stopped between two steps never leaves a device of ours without it.
//!
//! # Example
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use std::time::Instant;
//!
//! use hpc_fabric::{Fabric, FabricHost, up_phase};
//! use hpc_remote::{Executor, NoObserver, run_phase};
//!
//! # async fn demo<E: Executor>(exec: &E) -> Result<(), Box<dyn std::error::Error>> {
//! let fabric = Fabric::new(
//!     "hpc",
//!     "virbr-hpc",
//!     [
//!         FabricHost::new("kvm1", Ipv4Addr::new(192, 0, 2, 1)).libvirt_bridge(),
//!         FabricHost::new("kvm2", Ipv4Addr::new(192, 0, 2, 2)),
//!     ],
//! );
//! let phase = up_phase(exec, &fabric).await?; // reads both hosts, plans what differs
//! run_phase(exec, &phase, Instant::now(), &NoObserver).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Stability
//!
//! Pre-1.0. The VNI derivation ([`vni_for`]), the VXLAN device name ([`vxlan_name`]) and
//! the alias are fixed: changing them would strand the devices of existing clusters.

mod apply;
mod error;
mod model;
mod plan;
mod state;

pub use apply::{DOWN_PHASE, UP_PHASE, down_phase, observe, up_phase};
pub use error::{FabricError, ParseError};
pub use model::{
    ALIAS_PREFIX, DEFAULT_DSTPORT, DEFAULT_MTU, Fabric, FabricHost, MAX_CLUSTER_NAME,
    MAX_DEVICE_NAME, MAX_VNI, MIN_MTU, VXLAN_OVERHEAD, check_device_name, vni_for, vxlan_name,
};
pub use plan::{down_plan, up_plan};
pub use state::{HostState, Link, Vxlan, ZERO_MAC, fdb_argv, links_argv, parse_flood, parse_links};
