//! Errors. Every error about a host names the host, and every error about a device names it.

use std::net::Ipv4Addr;

/// A fabric that cannot be planned, or a host whose state forbids it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FabricError {
    /// A device name the kernel refuses or a tool could misread.
    #[error("network device name {name:?} {reason}")]
    BadDeviceName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The VNI is outside 1..=16 777 215.
    #[error("VXLAN network identifier {vni} is outside 1..=16777215")]
    BadVni {
        /// The VNI.
        vni: u32,
    },
    /// UDP port 0.
    #[error("the VXLAN UDP port must not be 0")]
    BadPort,
    /// An MTU below the kernel's minimum of 68.
    #[error("MTU {mtu} is below the minimum of 68")]
    BadMtu {
        /// The MTU.
        mtu: u16,
    },
    /// A cluster name that cannot be a device alias.
    #[error(
        "cluster name {cluster:?} cannot mark devices: empty, over 200 bytes or with control characters"
    )]
    BadCluster {
        /// The name.
        cluster: String,
    },
    /// Two hosts of the fabric share a name.
    #[error("host {host} is listed twice")]
    DuplicateHost {
        /// The host.
        host: String,
    },
    /// Two hosts share an underlay address.
    #[error("host {host}: underlay address {addr} is another host's too")]
    DuplicateUnderlay {
        /// The second host with it.
        host: String,
        /// The address.
        addr: Ipv4Addr,
    },
    /// A host that is not in the fabric.
    #[error("host {host} is not one of the fabric's hosts")]
    UnknownHost {
        /// The host.
        host: String,
    },
    /// A device of the name hpc-up would use exists and was not made by hpc-up for this
    /// cluster: it is never taken over.
    #[error(
        "host {host}: network device {device} exists and is not hpc-up's for cluster {cluster:?} ({}); refusing to take it over",
        match alias { Some(a) => format!("its alias is {a:?}"), None => "it has no alias".to_owned() }
    )]
    NotOurs {
        /// The host.
        host: String,
        /// The device.
        device: String,
        /// The cluster whose device it would be.
        cluster: String,
        /// Its alias, if it has one.
        alias: Option<String>,
    },
    /// The bridge libvirt should have made on this host does not exist (its network is not
    /// started).
    #[error(
        "host {host}: bridge {bridge} does not exist; libvirt makes it on this host when the cluster's network starts"
    )]
    BridgeMissing {
        /// The host.
        host: String,
        /// The bridge.
        bridge: String,
    },
    /// The device where the bridge should be is not a bridge.
    #[error("host {host}: network device {device} is a {kind}, not a bridge")]
    NotABridge {
        /// The host.
        host: String,
        /// The device.
        device: String,
        /// Its kind (`info_kind`, or `device` when it has none).
        kind: String,
    },
    /// Reading the host's devices failed.
    #[error("host {host}: `{command}` {detail}")]
    Probe {
        /// The host.
        host: String,
        /// The command.
        command: String,
        /// Why (exit status and stderr, or why the host could not be reached).
        detail: String,
    },
    /// iproute2's JSON could not be read.
    #[error("host {host}: `{command}`: {source}")]
    Parse {
        /// The host.
        host: String,
        /// The command.
        command: String,
        /// What was wrong with its output.
        #[source]
        source: ParseError,
    },
    /// More than one host failed (each error names its host).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Hosts(Vec<FabricError>),
}

/// Output of `ip -j -d link show` or `bridge -j fdb show` that is not what iproute2 prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not the expected JSON.
    #[error("unexpected JSON: {0}")]
    Json(String),
    /// An address that does not parse.
    #[error("device {device}: {field} {value:?} is not an IP address")]
    Address {
        /// The device.
        device: String,
        /// The field (`local`, `dst`, …).
        field: &'static str,
        /// The value.
        value: String,
    },
}
