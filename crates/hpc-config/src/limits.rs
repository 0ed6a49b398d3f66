//! The limits the loader enforces on a cluster file.
//!
//! A cluster file is input: it may come from a colleague, a generator gone wrong or a
//! fuzzer. Every limit here is generous for a real cluster (a workstation runs tens of VMs;
//! a lab of several hosts, hundreds) and makes a hostile file cheap to reject: the loader's
//! time and memory stay bounded by these numbers, not by what the file asks for. Each limit
//! is checked as early as it can be and reported at the value that breaks it.
//!
//! They follow what serious YAML loaders do (a nesting limit, a budget for alias
//! expansion), and what SLURM and libvirt themselves accept (a node name is one DNS label of
//! at most 63 bytes, so no pad width or hostlist number needs more digits than that).

/// Largest cluster file read, in bytes (2 MiB: a 1,000-node file listing every node with
/// its own address and shares is about 200 KiB). The YAML parser (saphyr) tokenizes a flow
/// collection (`{…}`, `[…]`) whole before it yields its first event, at about 64 bytes of
/// memory per byte of text; this limit is what bounds that to ~150 MB.
pub const MAX_FILE_BYTES: usize = 2 << 20;

/// Deepest nesting of YAML lists and mappings (a cluster file needs 6).
pub const MAX_DEPTH: usize = 64;

/// Most YAML values (scalars, lists and mappings) in the document, counting every copy an
/// alias makes: what stops an "alias bomb" (a few hundred bytes that expand to gigabytes).
pub const MAX_VALUES: usize = 250_000;

/// Most nodes in one counted node group (`count`).
pub const MAX_GROUP_NODES: u32 = 4096;

/// Most nodes in one cluster, all groups together.
pub const MAX_NODES: usize = 8192;

/// Most names one node reference list (a partition's `nodes`, a GPU entry's, a BeeGFS
/// role's) may expand to, hostlists included, before it is expanded.
pub const MAX_REFERENCED_NAMES: usize = MAX_NODES;

/// Widest `{index:0N}` pad and longest number in a hostlist range: a node name is at most
/// 63 bytes.
pub const MAX_PAD_WIDTH: usize = 63;

/// Most virtio-fs shares one node gets (cluster-wide, group and node lists together). Each
/// is a PCI device of the VM.
pub const MAX_SHARES_PER_NODE: usize = 32;

/// Most PCI devices passed through to one node.
pub const MAX_PCI_PER_NODE: usize = 16;

/// Most SLURM partitions, and most GPU entries.
pub const MAX_PARTITIONS: usize = 256;

/// Most libvirt hosts in `hosts:` (placement compares every node with every host).
pub const MAX_HOSTS: usize = 64;

/// Most problems reported for one file; the rest are counted ("… and N more").
pub const MAX_PROBLEMS: usize = 100;

/// Most problems collected before the loader stops looking (they are sorted by position and
/// cut to [`MAX_PROBLEMS`]; beyond this only their number is kept).
pub(crate) const MAX_COLLECTED: usize = 1000;

/// Most "did you mean" suggestions computed for one file (each compares one name with the
/// node names of about its length: at most [`MAX_NODES`]).
pub(crate) const MAX_SUGGESTIONS: usize = 16;

/// Most drawing work: problems times file bytes. miette reads a problem's source lines from
/// the start of the file each time, so a long file with many problems is listed in the plain
/// form (a 10 KiB file draws all its [`MAX_PROBLEMS`] problems; a 1 MiB file, sixteen).
pub const MAX_DRAWN_BYTES: usize = 16 << 20;

/// Longest source line the graphical diagnostic draws; a problem on a longer line (or at a
/// column beyond it) is shown in the plain `file:line:column: message` form.
pub const MAX_DRAWN_LINE: usize = 1000;
