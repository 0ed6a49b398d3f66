//! `hpc-libvirt`: typed libvirt XML for an hpc-up cluster, and its journaled lifecycle.
//!
//! Two layers:
//! - **planning** (pure, always built): [`plan()`] turns a validated [`hpc_config::Cluster`]
//!   into the libvirt objects it needs — network, storage pool, qcow2 overlay volumes and
//!   domains — each as deterministic XML carrying the cluster's identity in `<metadata>`
//!   (read back with [`owner_from_xml`]). The XML is built from the typed documents of
//!   [`xml`]; the virtio-fs part of a domain (`<filesystem>` devices, shared
//!   `<memoryBacking>`) is `hpc-virtiofs`'s: its types are embedded in [`xml::Domain`] and
//!   its [`virtiofs::virtiofs_devices`] fills them (both re-exported here).
//! - **apply**: the [`Hypervisor`] trait, the on-disk [`Journal`], and the lifecycle
//!   ([`up`], [`down`], [`diff`], [`status`], [`start`], [`stop`]), generic over the trait;
//!   the feature `virt` (on by default) adds [`VirtHypervisor`], the implementation over the
//!   `virt` crate (libvirt's C library).
//! - **upload**: [`ensure_uploaded`] puts a local file (base image, kernel, initrd) into a
//!   volume of a host's storage pool through libvirt's own upload stream, so that a remote
//!   host (`qemu+ssh://…`) needs nothing but libvirtd; a marker volume `<name>.sha256`
//!   holding the content's SHA-256, written only after the whole file went through, tells a
//!   complete, current volume from a stale or half-written one, and nothing is sent when the
//!   content is already there.
//!
//! A tool that only renders XML depends on this crate with `default-features = false` and
//! needs no libvirt library.
//!
//! ```no_run
//! let cluster = hpc_config::load_file("examples/minimal.yaml".as_ref())?;
//! for object in hpc_libvirt::plan(&cluster).objects {
//!     println!("<!-- {:?} {} on {} -->\n{}", object.kind, object.name, object.uri, object.xml);
//! }
//! # Ok::<(), hpc_config::LoadError>(())
//! ```
//!
//! Naming: every object is prefixed with the cluster's name — network `<cluster>-net`, pool
//! `<cluster>-pool`, volumes `<cluster>-<node>.qcow2`, domains `<cluster>-<node>` — so two
//! clusters share a host without clashing.
//!
//! The XML is written with [quick-xml](https://docs.rs/quick-xml)'s serde serializer: the
//! documents are plain `#[derive(Serialize)]` structs (attributes `@name`, text `$text`),
//! quick-xml escapes text and attributes correctly, supports indentation, and its namespace
//! aware reader parses the metadata back. It is the maintained, widely used XML crate of the
//! ecosystem and pure Rust (no libxml2), so rendering stays free of C dependencies; `xmltree`
//! or hand-written `format!` would give up either typing or escaping.
//!
//! Stability: 0.x. Object names, the metadata namespace and the layout of the XML are part of
//! the interface (`down` finds a cluster's objects by them); the [`xml`] types may grow fields.

mod compare;
mod hypervisor;
mod journal;
mod lifecycle;
mod plan;
mod preflight;
mod upload;
#[cfg(feature = "virt")]
mod virt_impl;
pub mod virtiofs;
pub mod xml;

pub use plan::{
    FABRIC_MTU, LibvirtPlan, METADATA_NS, NETWORK_ROLE, Object, ObjectKind, Owner,
    REMOTE_POOL_PARENT, SEED_SERIAL, UploadSource, base_volume_name, console_dir, console_log_path,
    domain_name, domain_xml, initrd_volume_name, kernel_volume_name, network_name, network_xml,
    owner_from_xml, plan, pool_name, pool_path, pool_path_on, pool_xml, pool_xml_on, primary_uri,
    remote_console_log_path, remote_pool_path, seed_dir, seed_path, seed_volume_name, spans_hosts,
    volume_name, volume_path, volume_xml,
};

pub use hypervisor::{
    BoxError, DomainState, HostInfo, HvResult, Hypervisor, HypervisorError, LiveObject, Step,
    kind_name,
};
pub use journal::{EntryState, JOURNAL_FILE, Journal, JournalEntry, JournalError};
pub use lifecycle::{
    Action, Applied, Change, DownReport, LifecycleError, NodeStatus, Outcome, Removed,
    STOP_POLL_INTERVAL, StopReport, UpReport, diff, down, on_connection, plan_cluster, start,
    status, stop, up, up_all,
};
pub use preflight::{
    ImageFile, PciIdKind, PreflightProblem, PreflightReport, PreflightWarning, nodedev_name,
    preflight, preflight_report,
};
pub use upload::{
    MARKER_SUFFIX, Upload, UploadError, VolumeFormat, ensure_uploaded, ensure_uploaded_with,
    marker_name, remove_uploaded, sha256_file, volume_size,
};
#[cfg(feature = "virt")]
pub use virt;
#[cfg(feature = "virt")]
pub use virt_impl::VirtHypervisor;
