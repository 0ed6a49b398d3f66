//! The hypervisor seam: the few object-level libvirt operations the lifecycle needs.
//!
//! [`Hypervisor`] is deliberately small and synchronous. Its real implementation is
//! `VirtHypervisor` (feature `virt`); tests wrap it or replace it to inject faults.

use std::error::Error as StdError;
use std::fmt;
use std::io::Read;

use crate::plan::ObjectKind;

/// What libvirt reports about a host's hardware (`virNodeGetInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostInfo {
    /// Active CPUs.
    pub cpus: u32,
    /// Memory, KiB.
    pub memory_kib: u64,
}

/// A boxed error from the implementation behind a [`Hypervisor`] (libvirt's, a fake's…).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// One object as libvirt has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveObject {
    /// Kind.
    pub kind: ObjectKind,
    /// Name (for volumes: the volume's name inside its pool).
    pub name: String,
    /// The pool a volume lives in; `None` for other kinds.
    pub pool: Option<String>,
    /// Whether it is active (running domain, started network or pool); volumes are always
    /// active.
    pub active: bool,
    /// Its XML as libvirt dumps it (inactive/persistent definition where there is one).
    pub xml: String,
}

/// The state of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainState {
    /// Running (or blocked on a resource, which is running too).
    Running,
    /// Paused by libvirt or the user.
    Paused,
    /// Shutting down.
    ShuttingDown,
    /// Defined but not running.
    ShutOff,
    /// Crashed.
    Crashed,
    /// Suspended by guest power management.
    Suspended,
    /// libvirt reports no or an unknown state.
    Unknown,
}

impl DomainState {
    /// Whether the domain has a running QEMU process (anything but shut off / crashed).
    pub fn is_active(self) -> bool {
        !matches!(self, Self::ShutOff | Self::Crashed)
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::ShuttingDown => "shutting down",
            Self::ShutOff => "shut off",
            Self::Crashed => "crashed",
            Self::Suspended => "suspended",
            Self::Unknown => "unknown",
        })
    }
}

/// A step of the lifecycle, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Look an object up or dump its XML.
    Lookup,
    /// List objects.
    List,
    /// Define (persist) from XML.
    Define,
    /// Build a pool (create its target directory).
    Build,
    /// Create a volume.
    Create,
    /// Start a network, pool or domain.
    Start,
    /// Ask a domain's guest to shut down.
    Shutdown,
    /// Stop hard (network, pool, domain).
    Destroy,
    /// Remove the persistent definition.
    Undefine,
    /// Delete a volume (and its file), or a stopped pool's storage.
    Delete,
    /// Read a domain's state.
    State,
    /// Write a volume's content through a libvirt stream.
    Upload,
    /// Read a volume's content through a libvirt stream.
    Download,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lookup => "look up",
            Self::List => "list",
            Self::Define => "define",
            Self::Build => "build",
            Self::Create => "create",
            Self::Start => "start",
            Self::Shutdown => "shut down",
            Self::Destroy => "destroy",
            Self::Undefine => "undefine",
            Self::Delete => "delete",
            Self::State => "read the state of",
            Self::Upload => "upload into",
            Self::Download => "download",
        })
    }
}

/// The lower-case word for an object kind, as used in messages.
pub fn kind_name(kind: &ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Network => "network",
        ObjectKind::Pool => "storage pool",
        ObjectKind::Volume => "volume",
        ObjectKind::Domain => "domain",
    }
}

/// A failed hypervisor operation: which object, which step.
#[derive(Debug, thiserror::Error)]
pub enum HypervisorError {
    /// Opening the connection failed.
    #[error("cannot connect to libvirt at `{uri}`")]
    Connect {
        /// The connection URI.
        uri: String,
        /// What libvirt said.
        #[source]
        source: BoxError,
    },
    /// Listing the objects of one kind failed.
    #[error("cannot list {}s", kind_name(.kind))]
    List {
        /// The kind listed.
        kind: ObjectKind,
        /// What libvirt said.
        #[source]
        source: BoxError,
    },
    /// An operation on one object failed.
    #[error("cannot {step} {} `{name}`", kind_name(.kind))]
    Object {
        /// The object's kind.
        kind: ObjectKind,
        /// The object's name (volumes: `pool/volume`).
        name: String,
        /// What was being done.
        step: Step,
        /// What libvirt said.
        #[source]
        source: BoxError,
    },
    /// Reading a fact about the host (capabilities, a node device) failed.
    #[error("cannot read {what}")]
    Query {
        /// What was being read, e.g. "the domain capabilities for domain type `kvm`".
        what: String,
        /// What libvirt said.
        #[source]
        source: BoxError,
    },
}

impl HypervisorError {
    /// An [`HypervisorError::Object`].
    pub fn object(
        kind: ObjectKind,
        name: impl Into<String>,
        step: Step,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Object {
            kind,
            name: name.into(),
            step,
            source: source.into(),
        }
    }
}

/// Result of a hypervisor call.
pub type HvResult<T> = Result<T, HypervisorError>;

/// The libvirt operations the lifecycle needs, one object at a time.
///
/// Every method takes `&self`: implementations hold a connection (or a fake's state behind
/// interior mutability). Names are libvirt object names; volumes are addressed by pool and
/// volume name.
pub trait Hypervisor {
    /// The connection URI, as the plan's objects name it ([`crate::Object::uri`]).
    fn uri(&self) -> &str;
    /// Every object of `kind` with its XML (volumes: of every active pool).
    fn list(&self, kind: ObjectKind) -> HvResult<Vec<LiveObject>>;
    /// The object of `kind` called `name` (for volumes, in `pool`), or `None` if there is
    /// none.
    fn lookup(
        &self,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> HvResult<Option<LiveObject>>;

    /// Define (or redefine) a persistent network.
    fn define_network(&self, name: &str, xml: &str) -> HvResult<()>;
    /// Start a defined network.
    fn start_network(&self, name: &str) -> HvResult<()>;
    /// Stop a running network.
    fn destroy_network(&self, name: &str) -> HvResult<()>;
    /// Remove a network's definition.
    fn undefine_network(&self, name: &str) -> HvResult<()>;

    /// Define a persistent storage pool.
    fn define_pool(&self, name: &str, xml: &str) -> HvResult<()>;
    /// Build a defined pool (create its target directory).
    fn build_pool(&self, name: &str) -> HvResult<()>;
    /// Start a pool.
    fn start_pool(&self, name: &str) -> HvResult<()>;
    /// Stop a pool (its files stay).
    fn destroy_pool(&self, name: &str) -> HvResult<()>;
    /// Remove a pool's definition (its files stay).
    fn undefine_pool(&self, name: &str) -> HvResult<()>;
    /// Remove a stopped pool's storage: a directory pool's directory, which must be empty.
    /// Default: nothing (an implementation without storage of its own).
    fn delete_pool(&self, name: &str) -> HvResult<()> {
        let _ = name;
        Ok(())
    }

    /// Create a volume in a running pool.
    fn create_volume(&self, pool: &str, name: &str, xml: &str) -> HvResult<()>;
    /// Delete a volume and its storage.
    fn delete_volume(&self, pool: &str, name: &str) -> HvResult<()>;
    /// Write `length` bytes read from `data` into the existing volume `name` of `pool`, from
    /// its first byte, through libvirt's own stream (`virStorageVolUpload`): the host needs
    /// nothing but libvirtd. `progress` is told the bytes sent so far after every chunk.
    /// Returns the bytes sent (`length`). A `data` that fails or ends early, or a stream
    /// error, aborts the stream and fails the call.
    fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        data: &mut dyn Read,
        length: u64,
        progress: &mut dyn FnMut(u64),
    ) -> HvResult<u64>;
    /// The first `max` bytes of the volume `name` of `pool` (all of it when it is smaller),
    /// through libvirt's stream (`virStorageVolDownload`). Meant for small volumes.
    fn download_volume(&self, pool: &str, name: &str, max: u64) -> HvResult<Vec<u8>>;

    /// Define (or redefine) a persistent domain.
    fn define_domain(&self, name: &str, xml: &str) -> HvResult<()>;
    /// Boot a defined domain.
    fn start_domain(&self, name: &str) -> HvResult<()>;
    /// Ask the guest to shut down (returns at once).
    fn shutdown_domain(&self, name: &str) -> HvResult<()>;
    /// Power a domain off.
    fn destroy_domain(&self, name: &str) -> HvResult<()>;
    /// Remove a domain's definition.
    fn undefine_domain(&self, name: &str) -> HvResult<()>;
    /// A domain's state.
    fn domain_state(&self, name: &str) -> HvResult<DomainState>;

    /// libvirt's domain capabilities XML (`<domainCapabilities>`) for `domain_type` (`kvm`,
    /// `qemu`) with the host's default emulator, architecture and machine; `Ok(None)` when
    /// the driver cannot tell (the default). An error means the host does not offer that
    /// domain type (e.g. `kvm` without `/dev/kvm`) or libvirt failed.
    fn domain_capabilities(&self, domain_type: &str) -> HvResult<Option<String>> {
        let _ = domain_type;
        Ok(None)
    }

    /// The host's CPUs and memory as libvirt reports them (`virNodeGetInfo`); `Ok(None)` when
    /// the implementation cannot tell (the default).
    fn host_info(&self) -> HvResult<Option<HostInfo>> {
        Ok(None)
    }

    /// The XML of the host's node device called `name` (`pci_0000_3b_00_0`), or `Ok(None)`
    /// when there is no such device. The default knows no devices.
    fn node_device_xml(&self, name: &str) -> HvResult<Option<String>> {
        let _ = name;
        Ok(None)
    }
}

impl<H: Hypervisor + ?Sized> Hypervisor for &H {
    fn uri(&self) -> &str {
        (**self).uri()
    }
    fn list(&self, kind: ObjectKind) -> HvResult<Vec<LiveObject>> {
        (**self).list(kind)
    }
    fn lookup(
        &self,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> HvResult<Option<LiveObject>> {
        (**self).lookup(kind, pool, name)
    }
    fn define_network(&self, name: &str, xml: &str) -> HvResult<()> {
        (**self).define_network(name, xml)
    }
    fn start_network(&self, name: &str) -> HvResult<()> {
        (**self).start_network(name)
    }
    fn destroy_network(&self, name: &str) -> HvResult<()> {
        (**self).destroy_network(name)
    }
    fn undefine_network(&self, name: &str) -> HvResult<()> {
        (**self).undefine_network(name)
    }
    fn define_pool(&self, name: &str, xml: &str) -> HvResult<()> {
        (**self).define_pool(name, xml)
    }
    fn build_pool(&self, name: &str) -> HvResult<()> {
        (**self).build_pool(name)
    }
    fn start_pool(&self, name: &str) -> HvResult<()> {
        (**self).start_pool(name)
    }
    fn destroy_pool(&self, name: &str) -> HvResult<()> {
        (**self).destroy_pool(name)
    }
    fn undefine_pool(&self, name: &str) -> HvResult<()> {
        (**self).undefine_pool(name)
    }
    fn delete_pool(&self, name: &str) -> HvResult<()> {
        (**self).delete_pool(name)
    }
    fn create_volume(&self, pool: &str, name: &str, xml: &str) -> HvResult<()> {
        (**self).create_volume(pool, name, xml)
    }
    fn delete_volume(&self, pool: &str, name: &str) -> HvResult<()> {
        (**self).delete_volume(pool, name)
    }
    fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        data: &mut dyn Read,
        length: u64,
        progress: &mut dyn FnMut(u64),
    ) -> HvResult<u64> {
        (**self).upload_volume(pool, name, data, length, progress)
    }
    fn download_volume(&self, pool: &str, name: &str, max: u64) -> HvResult<Vec<u8>> {
        (**self).download_volume(pool, name, max)
    }
    fn define_domain(&self, name: &str, xml: &str) -> HvResult<()> {
        (**self).define_domain(name, xml)
    }
    fn start_domain(&self, name: &str) -> HvResult<()> {
        (**self).start_domain(name)
    }
    fn shutdown_domain(&self, name: &str) -> HvResult<()> {
        (**self).shutdown_domain(name)
    }
    fn destroy_domain(&self, name: &str) -> HvResult<()> {
        (**self).destroy_domain(name)
    }
    fn undefine_domain(&self, name: &str) -> HvResult<()> {
        (**self).undefine_domain(name)
    }
    fn domain_state(&self, name: &str) -> HvResult<DomainState> {
        (**self).domain_state(name)
    }
    fn domain_capabilities(&self, domain_type: &str) -> HvResult<Option<String>> {
        (**self).domain_capabilities(domain_type)
    }
    fn node_device_xml(&self, name: &str) -> HvResult<Option<String>> {
        (**self).node_device_xml(name)
    }
    fn host_info(&self) -> HvResult<Option<HostInfo>> {
        (**self).host_info()
    }
}
