//! `<domain>`: a VM.

use hpc_virtiofs::{Filesystem, MemoryBacking};
use serde::{Serialize, Serializer};

use super::{Metadata, Quantity, Typed};

/// `<domain type=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "domain")]
pub struct Domain {
    /// `type`: `qemu` (TCG) or `kvm`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `<name>`.
    pub name: String,
    /// `<metadata>`: the owning cluster.
    pub metadata: Metadata,
    /// `<memory unit='KiB'>`.
    pub memory: Quantity,
    /// `<vcpu>`.
    pub vcpu: u32,
    /// `<memoryBacking>` (shared memory, needed by virtio-fs; from `hpc-virtiofs`).
    #[serde(rename = "memoryBacking", skip_serializing_if = "Option::is_none")]
    pub memory_backing: Option<MemoryBacking>,
    /// `<os>`.
    pub os: Os,
    /// `<features>`.
    pub features: Features,
    /// `<cpu>`.
    pub cpu: Cpu,
    /// `<clock>`.
    pub clock: Clock,
    /// `<on_poweroff>`.
    pub on_poweroff: LifecycleAction,
    /// `<on_reboot>`.
    pub on_reboot: LifecycleAction,
    /// `<on_crash>`.
    pub on_crash: LifecycleAction,
    /// `<devices>`.
    pub devices: DomainDevices,
}

/// `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Os {
    /// `<type arch=… machine=…>hvm</type>`.
    #[serde(rename = "type")]
    pub os_type: OsType,
    /// `<kernel>` for direct kernel boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// `<initrd>` for direct kernel boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// `<cmdline>` for direct kernel boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// `<boot dev=…/>` when the disk boots by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<Boot>,
}

/// `<os><type arch=… machine=…>hvm</type>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsType {
    /// `arch`.
    #[serde(rename = "@arch")]
    pub arch: String,
    /// `machine`.
    #[serde(rename = "@machine")]
    pub machine: String,
    /// The OS type (`hvm`).
    #[serde(rename = "$text")]
    pub value: String,
}

/// `<boot dev=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Boot {
    /// `dev`, e.g. `hd`.
    #[serde(rename = "@dev")]
    pub dev: String,
}

/// `<features>`: ACPI and APIC, which every q35 guest wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Features {
    /// `<acpi/>`.
    pub acpi: (),
    /// `<apic/>`.
    pub apic: (),
}

/// `<cpu mode=… check=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// `mode`: `maximum` (TCG) or `host-passthrough` (KVM).
    #[serde(rename = "@mode")]
    pub mode: String,
    /// `check`.
    #[serde(rename = "@check", skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// `<clock offset=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clock {
    /// `offset`, e.g. `utc`.
    #[serde(rename = "@offset")]
    pub offset: String,
}

/// What libvirt does when the guest powers off, reboots or crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleAction {
    /// Tear the domain down.
    Destroy,
    /// Restart it.
    Restart,
    /// Keep it, paused.
    Preserve,
}

impl LifecycleAction {
    /// libvirt's name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Restart => "restart",
            Self::Preserve => "preserve",
        }
    }
}

impl Serialize for LifecycleAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `<devices>`, in the order libvirt itself writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainDevices {
    /// `<disk>`s.
    pub disk: Vec<Disk>,
    /// `<filesystem>`s (virtio-fs; from `hpc-virtiofs`).
    pub filesystem: Vec<Filesystem>,
    /// `<interface>`s.
    pub interface: Vec<Interface>,
    /// `<serial>`s.
    pub serial: Vec<Serial>,
    /// `<console>`s.
    pub console: Vec<Console>,
    /// `<hostdev>`s (PCI passthrough).
    pub hostdev: Vec<Hostdev>,
    /// `<rng>`s.
    pub rng: Vec<Rng>,
    /// `<memballoon>`.
    pub memballoon: Memballoon,
}

/// `<disk type=… device=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// `type`, e.g. `file`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `device`, e.g. `disk`.
    #[serde(rename = "@device")]
    pub device: String,
    /// `<driver name=… type=…/>`.
    pub driver: DiskDriver,
    /// `<source file=…/>`.
    pub source: DiskSource,
    /// `<target dev=… bus=…/>`.
    pub target: DiskTarget,
    /// `<serial>`: how the guest finds the disk (`/sys/block/*/serial`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// `<readonly/>` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly: Option<()>,
}

/// `<disk><driver name=… type=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskDriver {
    /// `name`, e.g. `qemu`.
    #[serde(rename = "@name")]
    pub name: String,
    /// `type`: the image format, e.g. `qcow2`.
    #[serde(rename = "@type")]
    pub format: String,
}

/// `<disk><source file=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskSource {
    /// `file`: absolute path of the image.
    #[serde(rename = "@file")]
    pub file: String,
}

/// `<disk><target dev=… bus=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskTarget {
    /// `dev`, e.g. `vda`.
    #[serde(rename = "@dev")]
    pub dev: String,
    /// `bus`, e.g. `virtio`.
    #[serde(rename = "@bus")]
    pub bus: String,
}

/// `<interface type=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// `type`, e.g. `network`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `<mac address=…/>`.
    pub mac: MacAddress,
    /// `<source network=…/>`.
    pub source: InterfaceSource,
    /// `<model type=…/>`.
    pub model: Typed,
    /// `<mtu size=…/>`: the NIC's MTU, handed to a virtio guest (`host_mtu`) and set on the
    /// host's tap device; absent: the network's (1500 unless it says otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<super::network::Mtu>,
}

/// `<mac address=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MacAddress {
    /// `address`, lower-case hex with colons.
    #[serde(rename = "@address")]
    pub address: String,
}

/// `<interface><source network=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceSource {
    /// `network`: the libvirt network's name.
    #[serde(rename = "@network")]
    pub network: String,
}

/// `<serial type=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Serial {
    /// `type`, e.g. `pty`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `<log file=… append=…/>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<CharLog>,
    /// `<target port=…/>`.
    pub target: CharTarget,
}

/// `<log file=… append=…/>` of a character device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CharLog {
    /// `file`: absolute path of the log.
    #[serde(rename = "@file")]
    pub file: String,
    /// `append`: `on` or `off`.
    #[serde(rename = "@append")]
    pub append: String,
}

/// `<target type=… port=…/>` of a character device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CharTarget {
    /// `type`, e.g. `serial` for a console on the serial port.
    #[serde(rename = "@type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `port`.
    #[serde(rename = "@port")]
    pub port: u32,
}

/// `<console type=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Console {
    /// `type`, e.g. `pty`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `<target type=… port=…/>`.
    pub target: CharTarget,
}

/// `<hostdev mode=… type=… managed=…>`: a passed-through host device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hostdev {
    /// `mode`, e.g. `subsystem`.
    #[serde(rename = "@mode")]
    pub mode: String,
    /// `type`, e.g. `pci`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// `managed`: `yes` lets libvirt bind the device to vfio-pci and back.
    #[serde(rename = "@managed")]
    pub managed: String,
    /// `<source>`.
    pub source: HostdevSource,
}

/// `<hostdev><source>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostdevSource {
    /// `<address …/>`.
    pub address: PciAddress,
}

/// `<address domain=… bus=… slot=… function=…/>` of a host PCI device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciAddress {
    /// `domain`, `0x` and four hex digits.
    #[serde(rename = "@domain")]
    pub domain: String,
    /// `bus`, `0x` and two hex digits.
    #[serde(rename = "@bus")]
    pub bus: String,
    /// `slot`, `0x` and two hex digits.
    #[serde(rename = "@slot")]
    pub slot: String,
    /// `function`, `0x` and one hex digit.
    #[serde(rename = "@function")]
    pub function: String,
}

impl From<hpc_config::types::PciAddress> for PciAddress {
    fn from(a: hpc_config::types::PciAddress) -> Self {
        Self {
            domain: format!("0x{:04x}", a.domain),
            bus: format!("0x{:02x}", a.bus),
            slot: format!("0x{:02x}", a.slot),
            function: format!("0x{:x}", a.function),
        }
    }
}

/// `<rng model=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rng {
    /// `model`, e.g. `virtio`.
    #[serde(rename = "@model")]
    pub model: String,
    /// `<backend model=…>SOURCE</backend>`.
    pub backend: RngBackend,
}

/// `<rng><backend model=…>SOURCE</backend>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RngBackend {
    /// `model`, e.g. `random`.
    #[serde(rename = "@model")]
    pub model: String,
    /// The host's entropy source, e.g. `/dev/urandom`.
    #[serde(rename = "$text")]
    pub source: String,
}

/// `<memballoon model=…/>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Memballoon {
    /// `model`, e.g. `none`.
    #[serde(rename = "@model")]
    pub model: String,
}
