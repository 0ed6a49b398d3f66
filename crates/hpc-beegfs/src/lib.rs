//! `hpc-beegfs`: BeeGFS 7.4.x and 8.x deployment plans that the real daemons accept.
//!
//! From a validated [`hpc_config::Cluster`] this crate renders, per node, the complete
//! `/etc/beegfs/` tree — `beegfs-mgmtd.conf` (7.x) or `beegfs-mgmtd.toml` (8.x),
//! `beegfs-meta.conf`, `beegfs-storage.conf`, `beegfs-client.conf`, `beegfs-helperd.conf`
//! (7.x), `beegfs-mounts.conf` — and the ordered setup steps as [`hpc_remote`] host plans
//! (packages, auth file, directory initialisation, `beegfs-mgmtd --init` for 8.x, services in
//! order, the client mount). It also holds the client kernel-module compatibility rules
//! ([`client_compat`]), the node probe and its rules ([`preflight`]), and the parsers of the
//! check tools' output ([`parse_check_servers`], [`parse_node_list`], …).
//!
//! Every key written is checked against the keys that daemon of that release accepts
//! ([`accepted_keys`], from BeeGFS's own source): the meta and storage daemons refuse to start
//! on an unknown key, the 8.x management service refuses unknown TOML keys, and the 8.x
//! client silently ignores them — hpc-up refuses them all, naming key, daemon and release.
//!
//! Pure: no I/O, no clock, no environment, no randomness. The caller generates the auth
//! secret (32–1024 random bytes, once per cluster), reads the TLS and repository key files,
//! runs the probe and the checks over SSH, and applies the phases in order.
//!
//! The 8.x management TOML is written by this crate (a handful of scalar keys with a
//! correct basic-string escaper) rather than with the `toml` crate: the key set is closed and
//! checked, so a serializer would add a dependency and nothing else.
//!
//! # Example
//!
//! ```no_run
//! use hpc_beegfs::{AuthSecret, Inputs, config_files, describe, setup_plan};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = hpc_config::load_file("examples/full-stack.yaml".as_ref())?;
//! for (node, files) in config_files(&cluster)? {
//!     for f in files {
//!         println!("{node}: {}", f.path);
//!     }
//! }
//! let random: Vec<u8> = (0..64).collect(); // from a CSPRNG in real use
//! let inputs = Inputs { auth: Some(AuthSecret::new(random)?), ..Inputs::default() };
//! let plan = setup_plan(&cluster, &inputs)?;
//! for phase in &plan.phases {
//!     for host in &phase.hosts {
//!         print!("[{}] {}\n{}", phase.name, host.host, describe(host));
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Feature `steps` (default): the setup sequence as [`hpc_remote`] host steps. Without it
//! (`default-features = false`) the crate renders config files, judges kernels and parses
//! check output without pulling in russh and tokio.
//!
//! # Stability
//!
//! 0.x, used by the `hpc-up` binary. Rendered files are covered by snapshot tests, so a
//! change to them is deliberate and visible in review.

mod check;
mod conf;
mod kernel;
mod keys;
mod preflight;
mod release;
mod render;
#[cfg(feature = "steps")]
mod setup;

pub use check::{
    BENCH_MIB, Health, NodeKind, ParseError, RoundTrip, ServerStatus, TargetSpace, TargetStatus,
    aggregate, cleanup_argv, parse_check_servers, parse_df, parse_health, parse_listtargets,
    parse_node_list, parse_target_list, peer_read_argv, roundtrip_argv, tool_commands,
};
pub use conf::{Conf, ConfError, Value};
pub use kernel::{Compat, Kernel, KernelRefusal, client_compat, releases_that_build};
pub use keys::{Daemon, accepted_keys, deprecated_replacement};
pub use preflight::{
    NodeFacts, PROBE_SCRIPT, PreflightProblem, PreflightWarning, preflight, probe_argv,
};
pub use release::{Line, Release};
pub use render::{
    AUTH_FILE, CLIENT_PORT, CONFIG_DIR, GRPC_PORT, HELPERD_PORT, META_PORT, MGMTD_DB_NAME,
    MGMTD_PORT, MOUNTS_FILE, NodeFile, RenderError, Roles, STORAGE_PORT, TLS_CERT_FILE,
    TLS_KEY_FILE, config_files, daemon_conf, mounts_conf, roles,
};
#[cfg(feature = "steps")]
pub use setup::{
    AUTH_SECRET_MAX, AUTH_SECRET_MIN, AuthSecret, Inputs, MGMTD_DROPIN, PlanError, REPO_KEY_PATH,
    REPO_LIST_PATH, STAMP_DIR, SecretError, SetupPlan, describe, packages, setup_plan,
};

/// A setup phase: BeeGFS's phases are [`hpc_remote`]'s, one phase type across layers.
#[cfg(feature = "steps")]
pub use hpc_remote::Phase;

pub use hpc_config;
#[cfg(feature = "steps")]
pub use hpc_remote;
