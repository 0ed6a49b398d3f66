//! `hpc-virtiofs`: host directories shared into cluster nodes with virtio-fs.
//!
//! Everything virtio-fs about a node, in three parts:
//!
//! - **host side** (pure): [`virtiofs_devices`] gives the fragments of the node's libvirt
//!   domain — one `<filesystem>` per share (virtiofs driver, passthrough, virtqueue of
//!   [`VIRTIOFS_QUEUE_SIZE`]) and the `<memoryBacking>` (memfd, shared) without which QEMU
//!   cannot run virtiofsd. The element types ([`Filesystem`], [`MemoryBacking`], …) are
//!   serde shapes for quick-xml that `hpc-libvirt` embeds in its `<domain>`; this crate
//!   makes no libvirt calls. Preflight (in `hpc-libvirt`) finds virtiofsd through libvirt's
//!   domain capabilities and checks the host directories.
//! - **guest side** (pure): [`guest_steps`] gives the host steps that mount every share of a
//!   node — an fstab line (`virtiofs`, `nofail`, so the mount comes back after a reboot and
//!   a missing share never blocks boot), mount it now, remount when the options change,
//!   then owner/group/mode of the mounted directory.
//! - **check**: [`check_argv`] and [`parse_check`] are the per-share check a node runs
//!   (mounted, right type, source and `ro`/`rw`, a write refused on a read-only share, a
//!   file round trip, sequential write/read throughput next to the node's local disk).
//!   [`check_cluster`] runs it on every node at once through any [`hpc_remote::Executor`]
//!   and does the host's half of the round trips for nodes on this machine (writes a token
//!   into each host directory first, reads back what each node wrote, removes both);
//!   [`check_cluster_on_hosts`] also does it for nodes on other hypervisor hosts, through an
//!   executor of those hosts. Both give a [`CheckReport`] of one [`ShareCheck`] per node and
//!   share, `Serialize` for `--output json`. This is the crate's only I/O: the host
//!   directories on the local filesystem, and the executors' commands.
//!
//! Read-only shares: libvirt 9 with the C virtiofsd (Debian 12) refuses `<readonly/>` for
//! virtio-fs, so `ro` is enforced by the guest's mount options.
//!
//! Only `hpc-remote`'s plain parts are used (step types, the `Executor` trait), so a tool
//! that renders a domain builds no SSH client or async runtime; the caller of
//! [`check_cluster`] brings the executor and the runtime.
//!
//! ```
//! let text = "name: t\nnetwork: {cidr: 10.1.0.0/24, bridge: br-t}\nimage: {base: /i/b.qcow2}\n\
//!             virtiofs: [{tag: data, host-path: /srv/data, mount-point: /data, readonly: true}]\n\
//!             controller: {nodes: [{name: ctl}]}\n";
//! let cluster = hpc_config::load_str("t.yaml", text, &|_| None).unwrap();
//! let node = &cluster.nodes[0];
//! let devices = hpc_virtiofs::virtiofs_devices(node);
//! assert_eq!(devices.filesystems[0].target.dir, "data");
//! assert!(devices.memory_backing.is_some());
//! let steps = hpc_virtiofs::guest_steps(node);
//! assert_eq!(steps.len(), 2); // fstab + mount, remount on change
//! ```
//!
//! Stability: 0.x. The XML element types may grow fields; the check's `key=value` output is
//! private between [`check_argv`] and [`parse_check`]; the JSON keys of [`ShareCheck`] are
//! part of the interface.

mod check;
mod cluster_check;
mod domain;
mod guest;

pub use check::{BENCH_MIB, MountCheck, check_argv, parse_check, probe_name};
pub use cluster_check::{CheckReport, ShareCheck, check_cluster, check_cluster_on_hosts};
pub use domain::{
    Filesystem, FilesystemDir, FilesystemDriver, MemoryAccess, MemoryBacking, MemoryBackingSource,
    VIRTIOFS_QUEUE_SIZE, VirtiofsDevices, virtiofs_devices,
};
pub use guest::{guest_steps, mount_options};

#[cfg(test)]
mod tests {
    use hpc_config::Node;

    /// The first node of a one-node cluster whose `virtiofs:` list is `shares` (YAML).
    pub(crate) fn node(shares: &str) -> Node {
        let text = format!(
            "name: t\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage: {{base: /i/b.qcow2}}\nvirtiofs: {shares}\ncontroller: {{nodes: [{{name: ctl}}]}}\n"
        );
        hpc_config::load_str("t.yaml", &text, &|_| None)
            .unwrap()
            .nodes
            .remove(0)
    }
}
