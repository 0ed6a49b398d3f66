//! `hpc-beegfs`: BeeGFS 7.4.x and 8.x deployment plans that the real daemons accept.
//!
//! From a validated [`hpc_config::Cluster`] this crate renders, per node, the complete
//! `/etc/beegfs/` tree — `beegfs-mgmtd.conf` (7.x) or `beegfs-mgmtd.toml` (8.x),
//! `beegfs-meta.conf`, `beegfs-storage.conf`, `beegfs-client.conf`, `beegfs-helperd.conf`
//! (7.x), `beegfs-mounts.conf` — and the ordered setup steps as [`hpc_remote`] host plans
//! (packages, auth file, directory initialisation, `beegfs-mgmtd --init` for 8.x, services in
//! order, the client mount), and what a guest image needs for BeeGFS ([`choose_debs`], the
//! client module built for the image's kernel: [`CLIENT_MODULE_SCRIPT`]). It also holds the
//! client kernel-module compatibility rules
//! ([`client_compat`]), the node probe and its rules ([`preflight`]), and the parsers of the
//! check tools' output ([`parse_check_servers`], [`parse_node_list`], …).
//!
//! Every key written is checked against the keys that daemon of that release accepts
//! ([`accepted_keys`], from BeeGFS's own source): the meta and storage daemons refuse to start
//! on an unknown key, the 8.x management service refuses unknown TOML keys, and the 8.x
//! client silently ignores them — hpc-up refuses them all, naming key, daemon and release.
//!
//! The planners are pure: no I/O, no clock, no environment, no randomness. The caller
//! generates the auth secret (32–1024 random bytes, once per cluster) and reads the TLS and
//! repository key files into [`Inputs`].
//!
//! With the `deploy` feature (on by default) the crate also runs them, through any
//! [`hpc_remote::Executor`] the caller brings (SSH in practice; a fake in tests):
//! [`preflight_cluster`] probes every BeeGFS node at once and judges the facts;
//! [`deploy()`] makes the plan, refuses on any preflight problem before anything is changed,
//! then applies the phases in order (all hosts of a phase at once), reporting each
//! (phase, node) to a [`hpc_remote::PhaseObserver`] and timing each host's apply on its own;
//! [`check_cluster`] runs `check beegfs` (the probe, the release's tools on one client, a
//! round trip with throughput and a read of another client's file on every client at once)
//! and collects every failure in a [`ClusterCheck`], which serializes as `--output json`
//! prints it. Those functions do I/O only through the executor and read the clock only to
//! time phases.
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
//! Deploying and checking, with a progress observer:
//!
//! ```no_run
//! use hpc_beegfs::{Inputs, check_cluster, deploy};
//! use hpc_remote::{Executor, PhaseEvent};
//!
//! # async fn demo<E: Executor>(exec: &E, inputs: &Inputs) -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = hpc_config::load_file("examples/full-stack.yaml".as_ref())?;
//! let observer = |e: PhaseEvent<'_>| {
//!     if let PhaseEvent::Failed { name, node, error } = e {
//!         eprintln!("{name} on {}: {error}", node.unwrap_or("the cluster"));
//!     }
//! };
//! // Err names every preflight problem, or the phase and every node that failed in it.
//! let report = deploy(exec, &cluster, inputs, &observer).await?;
//! println!("BeeGFS {}: {} step(s) changed", report.release, report.changed());
//! let check = check_cluster(exec, &cluster, "hpc-up-check-1").await?;
//! for failure in &check.failures {
//!     println!("FAIL {failure}");
//! }
//! assert_eq!(check.passed(), check.failures.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `steps` (default): the setup sequence as [`hpc_remote`] host steps (its plain part: no
//!   SSH transport, no tokio).
//! - `deploy` (default; implies `steps`): [`preflight_cluster`], [`deploy()`],
//!   [`check_cluster`], and `serde::Serialize` for the check's results. Adds `futures-util`
//!   and `serde`; still no transport.
//!
//! Without either (`default-features = false`) the crate renders config files, judges
//! kernels and probe facts, and parses check output.
//!
//! # Stability
//!
//! 0.x, used by the `hpc-up` binary. Rendered files are covered by snapshot tests, so a
//! change to them is deliberate and visible in review.

mod check;
#[cfg(feature = "deploy")]
mod cluster_check;
mod conf;
#[cfg(feature = "deploy")]
mod deploy;
#[cfg(feature = "steps")]
mod image;
mod kernel;
mod keys;
mod preflight;
mod release;
mod render;
#[cfg(feature = "steps")]
mod setup;

pub use check::{
    BENCH_MIB, CLI_8, CTL_7, Comparison, Health, NodeKind, ParseError, RoundTrip, ServerStatus,
    TargetSpace, TargetStatus, aggregate, cleanup_argv, compare_argv, mount_check_argv,
    parse_check_servers, parse_df, parse_health, parse_listnodes, parse_listtargets,
    parse_node_list, parse_target_list, peer_read_argv, registration_commands, roundtrip_argv,
    tool_commands,
};
#[cfg(feature = "deploy")]
pub use cluster_check::{CheckError, ClientCheck, ClusterCheck, Throughput, check_cluster};
pub use conf::{Conf, ConfError, Value};
#[cfg(feature = "deploy")]
pub use deploy::{
    DeployError, DeployOptions, DeployReport, NodeFailure, PREFLIGHT_PHASE, Preflight,
    REGISTRATION_PHASE, REGISTRATION_TIMEOUT, deploy, deploy_with, preflight_cluster,
};
#[cfg(feature = "steps")]
pub use image::{
    CLIENT_MODULE_SCRIPT, DebInfo, DebsError, builds_client_module, choose_debs, image_packages,
};
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
/// What a phase did on one node (or cluster-wide): [`hpc_remote`]'s, as every layer reports.
#[cfg(feature = "deploy")]
pub use hpc_remote::PhaseReport;

pub use hpc_config;
#[cfg(feature = "steps")]
pub use hpc_remote;
