//! `<network>`: the cluster's virtual network, with static DHCP and DNS entries.

use serde::Serialize;

use super::Metadata;

/// `<network>`.
///
/// Two shapes (see [`crate::network_xml`]): a network of its own — NAT or isolated, with
/// `<domain>`, `<dns>` and `<ip>` (DHCP) — or, on the other hosts of a cluster spread over
/// several, `<forward mode='bridge'/>` on a bridge made outside libvirt, with none of those
/// (libvirt refuses them, and `stp`/`delay`, in bridge mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "network")]
pub struct Network {
    /// `<name>`.
    pub name: String,
    /// `<metadata>`: the owning cluster.
    pub metadata: Metadata,
    /// `<forward mode=…/>`; absent for an isolated network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// `<bridge name=… stp=… delay=…/>`.
    pub bridge: Bridge,
    /// `<mtu size=…/>`: the MTU of the bridge and of the guests' tap devices; absent for the
    /// default (1500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Mtu>,
    /// `<domain name=… localOnly=…/>`; absent in bridge mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<NetworkDomain>,
    /// `<dns>`; absent in bridge mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// `<ip address=… netmask=…>`; absent in bridge mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<NetworkIp>,
}

/// `<mtu size=…/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mtu {
    /// `size`, bytes.
    #[serde(rename = "@size")]
    pub size: u32,
}

/// `<forward mode=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    /// `mode`, e.g. `nat`.
    #[serde(rename = "@mode")]
    pub mode: String,
}

/// `<bridge name=… stp=… delay=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bridge {
    /// `name`: the host bridge device.
    #[serde(rename = "@name")]
    pub name: String,
    /// `stp`: `on` or `off`; absent in bridge mode.
    #[serde(rename = "@stp", skip_serializing_if = "Option::is_none")]
    pub stp: Option<String>,
    /// `delay`: forward delay in seconds; absent in bridge mode.
    #[serde(rename = "@delay", skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
}

/// `<domain name=… localOnly=…/>`: the DNS domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkDomain {
    /// `name`.
    #[serde(rename = "@name")]
    pub name: String,
    /// `localOnly`: `yes` keeps queries for the domain from being forwarded.
    #[serde(rename = "@localOnly")]
    pub local_only: String,
}

/// `<dns>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dns {
    /// `<host ip=…>` entries.
    pub host: Vec<DnsHost>,
}

/// `<dns><host ip=…><hostname>…</hostname></host>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsHost {
    /// `ip`.
    #[serde(rename = "@ip")]
    pub ip: String,
    /// `<hostname>`s.
    pub hostname: Vec<String>,
}

/// `<ip address=… netmask=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkIp {
    /// `address`: the host's address on the bridge.
    #[serde(rename = "@address")]
    pub address: String,
    /// `netmask`, dotted quad.
    #[serde(rename = "@netmask")]
    pub netmask: String,
    /// `<dhcp>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<Dhcp>,
}

/// `<dhcp>`: only static host entries, no range — every address is decided at plan time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dhcp {
    /// `<host mac=… name=… ip=…/>` entries.
    pub host: Vec<DhcpHost>,
}

/// `<dhcp><host mac=… name=… ip=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DhcpHost {
    /// `mac`.
    #[serde(rename = "@mac")]
    pub mac: String,
    /// `name`: the host name handed out with the lease.
    #[serde(rename = "@name")]
    pub name: String,
    /// `ip`.
    #[serde(rename = "@ip")]
    pub ip: String,
}
