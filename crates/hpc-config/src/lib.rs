//! `hpc-config`: the hpc-up cluster file as Rust types.
//!
//! One YAML file describes a whole virtual HPC cluster: its libvirt connection, network,
//! image, nodes (controller and compute groups, with virtio-fs shares and PCIe passthrough),
//! SLURM and BeeGFS. This crate
//!
//! - defines the file format ([`ClusterFile`] and friends, serde + JSON Schema),
//! - loads it keeping the position of every value, and reports **every** problem at once with
//!   `file:line:column` ([`ConfigErrors`], a [`miette::Diagnostic`]),
//! - checks the rules that span fields (unique names and addresses, addresses inside the
//!   network, tags, paths, node references…),
//! - resolves it into a [`Cluster`]: nodes expanded, defaults applied, IPs and MACs decided.
//!
//! Planners in the other hpc-up crates take a [`Cluster`] and never read the file.
//!
//! ```no_run
//! let cluster = hpc_config::load_file("examples/minimal.yaml".as_ref())?;
//! for node in &cluster.nodes {
//!     println!("{} {} {}", node.name, node.ip, node.mac);
//! }
//! # Ok::<(), hpc_config::LoadError>(())
//! ```
//!
//! The YAML parser is saphyr (its event parser gives every node a span, which `serde_yaml`
//! does not); the schema check is `jsonschema` against the schema `schemars` derives from the
//! types, so editors and this loader agree on what a valid file is.
//!
//! A cluster file is untrusted input: the loader never panics on it, never wraps a number,
//! and its time and memory are bounded by [`limits`] (file size, nesting, alias expansion,
//! nodes, hostlist sizes, problems reported), each broken limit reported where it is broken.
//!
//! Stability: 0.x. The file format is versioned by the published schema; additions are
//! backwards compatible (new fields are optional).

mod diagnostic;
pub mod file;
pub mod limits;
mod load;
mod model;
mod schema;
pub mod types;
mod validate;
mod yaml;

pub use diagnostic::{ConfigErrors, LoadError, Problem};
pub use file::ClusterFile;
pub use load::{load_file, load_str, parse_str, read_file};
pub use model::{
    Beegfs, BeegfsPackageSource, Cluster, ContainerImage, Containers, Host, HostCapacity, Image,
    JobFailures, MacAddr, Monitoring, Mount, Mpi, Network, Node, NodeGpus, Role, Slurm,
    SlurmPartition, Ssh,
};
pub use schema::{SCHEMA_ID, json_schema, schema_text};
pub use types::DebianRelease;
pub use validate::{EnvLookup, ErrorKind, ValidationError, derive_mac, expand_vars, resolve};

pub use ipnet;
pub use miette;
