//! `hpc-monitor`: monitoring for hpc-up clusters, from Debian's packages — Prometheus on
//! one node (the cluster file's `monitoring.server`), node exporter on every node, and
//! SLURM's nodes and jobs per state through node exporter's textfile collector (Debian
//! packages no SLURM exporter), fed by a small script on a systemd timer on the first
//! controller.
//!
//! The pure part (no features) is the planner: [`IMAGE_PACKAGES`] and [`IMAGE_SCRIPT`] for
//! the image (the guests have no network at deploy time), the rendered files
//! ([`render_prometheus_yml`], [`files`]) and the deployment as `hpc-remote` phases
//! ([`phases`]: `exporters`, then `prometheus`). It reads no clock, environment or file.
//!
//! The `check` feature (default) adds [`check_cluster`]: Prometheus's HTTP API, queried
//! from this host at `http://<server ip>:<port>` (the address `hpc-up ssh` reaches the
//! node at, so it proves the port is reachable from here), says every target is up, a
//! query per node returns data, and the SLURM series agree with `sinfo` on the SLURM
//! metrics node. Its HTTP and parsing part, [`check_with`], takes any base URL and target
//! list, so tests point it at real daemons on loopback.
//!
//! # Reaching Prometheus from the host
//!
//! Nothing is forwarded: this host is on the cluster's network (its bridge), which is how
//! `hpc-up ssh` reaches a node at its address, so Prometheus's web UI and API are at
//! `http://<server ip>:<port>` from here, and the check asks there. From another machine,
//! forward a port through this one (`ssh -L 9090:<server ip>:9090 <this host>`).
//!
//! # Why ureq
//!
//! The check makes a few dozen plain-HTTP GETs to one address on the cluster network.
//! `ureq` with its default features off is a small blocking client with no TLS stack and
//! no runtime of its own (hyper/reqwest would bring a connection pool, TLS and tower for
//! nothing here); the calls run on tokio's blocking pool, so the async API stays
//! non-blocking.
//!
//! # Example
//!
//! ```no_run
//! # fn demo(cluster: &hpc_config::Cluster) {
//! for phase in hpc_monitor::phases(cluster) {
//!     for host in &phase.hosts {
//!         let _ = (phase.name, &host.host, host.steps.len());
//!     }
//! }
//! for (node, path, content) in hpc_monitor::files(cluster) {
//!     let _ = (node, path, content.len());
//! }
//! # }
//! ```
//!
//! # Stability
//!
//! Pre-1.0, like the rest of the workspace. Nothing is printed.

#[cfg(feature = "check")]
mod check;
mod image;
mod plan;
mod render;

#[cfg(feature = "check")]
pub use check::{
    CheckError, CheckTarget, MAX_SLURM_METRICS_AGE_SECS, MonitoringCheck, NodeQuery, Sample,
    SlurmCheck, SlurmComparison, TargetHealth, check_cluster, check_with, normalize_node_state,
    parse_sinfo_nodes, parse_targets, parse_vector,
};
pub use image::{IMAGE_PACKAGES, IMAGE_SCRIPT};
pub use plan::{EXPORTERS_PHASE, PROMETHEUS_PHASE, READY_WAIT_SECS, phases, ready_argv};
pub use render::{
    NODE_EXPORTER_DEFAULTS_PATH, NODE_JOB, PROMETHEUS_DEFAULTS_PATH, PROMETHEUS_JOB,
    PROMETHEUS_STORAGE_PATH, PROMETHEUS_YML_PATH, SLURM_METRICS_EVERY_SECS, SLURM_METRICS_SCRIPT,
    SLURM_METRICS_SCRIPT_PATH, SLURM_METRICS_SERVICE, SLURM_METRICS_TIMER, SLURM_SERIES,
    ScrapeTarget, TEXTFILE_DIR, files, render_node_exporter_defaults, render_prometheus_defaults,
    render_prometheus_yml, render_prometheus_yml_for, render_slurm_metrics_service,
    render_slurm_metrics_timer, role_label, scrape_targets,
};
