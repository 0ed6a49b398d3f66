//! `<network>`: the cluster's virtual network, with static DHCP and DNS entries.

use serde::Serialize;

use super::Metadata;

/// `<network>`.
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
    /// `<domain name=… localOnly=…/>`.
    pub domain: NetworkDomain,
    /// `<dns>`.
    pub dns: Dns,
    /// `<ip address=… netmask=…>`.
    pub ip: NetworkIp,
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
    /// `stp`: `on` or `off`.
    #[serde(rename = "@stp")]
    pub stp: String,
    /// `delay`: forward delay in seconds.
    #[serde(rename = "@delay")]
    pub delay: u32,
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
