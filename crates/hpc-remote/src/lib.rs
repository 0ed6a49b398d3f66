//! `hpc-remote`: apply "host steps" to many machines at once — over SSH or locally —
//! idempotently, atomically and in one round trip per host.
//!
//! Planners produce plain data, a [`HostPlan`] per host: ensure a directory, a file
//! (content, mode, owner; optionally secret), run a command (argv, optionally only when
//! named earlier steps changed, like an Ansible handler), ensure a service (`systemctl`),
//! ensure a mount (fstab line + mounted). This crate knows nothing of what they are for.
//!
//! # How a host is applied
//!
//! A plan compiles to one POSIX-sh program: a small runner plus one call per step, with file
//! contents inline as `printf` literals (any bytes, NUL included). Executors feed it to
//! `/bin/sh -s` — [`SshExecutor`] over one exec channel, [`OpenSshExecutor`] on the stdin of
//! an `ssh` process, [`LocalExecutor`] through a local pipe — so all share every on-target
//! line and are tested by the same tests. On the target the runner compares sha256 + mode +
//! owner (one `stat` and one `sha256sum` for a row of directory and file steps); unchanged
//! files are not touched (mtime and inode stay); changed ones are written to a temporary file
//! in the target directory with their owner and mode (`install`), fsynced (one `sync` for the
//! files written in a row) and renamed over the old one. It reports per step `changed`,
//! `unchanged`, `skipped` or `failed` with the tail of stderr; a failed step skips the rest
//! of its host, and handlers run only when a trigger changed. Every user string reaches the
//! shell through [`quote`]; nothing is a shell string built by concatenation. With
//! [`Mode::CHECK_DIFF`] nothing is changed and [`StepReport::diff`] holds unified diffs
//! (secret content is never diffed, logged or shown in errors).
//!
//! # Why russh
//!
//! [`SshExecutor`] uses russh: pure Rust and async on tokio, so hundreds of hosts are one
//! process with one TCP connection each and no OpenSSH subprocess (or ControlMaster socket)
//! per host. Each connection multiplexes channels under a semaphore (sshd's `MaxSessions`),
//! hosts run concurrently up to [`SshOptions::parallel`], connects retry with backoff, and
//! host keys are pinned: a user-given OpenSSH known_hosts file (read by russh's parser, so
//! hashed entries and `[host]:port` work; see [`SshOptions::known_hosts`]), or trust on
//! first use recorded in the state directory. A changed key is a hard
//! [`HostError::HostKeyChanged`], a revoked one [`HostError::HostKeyRevoked`].
//! The deploy benchmark (`examples/deploy_bench.rs`: 2 dirs, 4 templated files and a handler)
//! compares it with Ansible and with one OpenSSH connection per host streaming a tar, on 8,
//! 32 and 64 test-bed hosts (`bench/remote-vs-ansible`, `docs/benchmarks.md`).
//!
//! # Why OpenSSH for hypervisor hosts
//!
//! A cluster spread over several libvirt hosts reaches each through a
//! `qemu+ssh://user@host[:port]/system[?keyfile=…]` URI, and libvirt's ssh transport runs the
//! OpenSSH client with the user's own `~/.ssh/config`, agent, keys and `known_hosts`. The few
//! host steps hpc-up runs on those hosts (a bridge and a VXLAN device, preflight probes) go
//! through [`OpenSshExecutor`], which runs that same client the same way
//! ([`OpenSshTarget::from_libvirt_uri`] takes user, host, port and `keyfile` from the URI;
//! `BatchMode`, never `StrictHostKeyChecking=no`), so a host libvirt reaches is a host the
//! steps reach, and one libvirt cannot reach (unknown or changed host key, refused key) fails
//! the same way. The nodes are different: they are the cluster's own VMs, reached with the
//! cluster's key pair and host keys pinned in its state directory, by the hundred, so they
//! get russh ([`SshExecutor`]). All three executors send the same runner program.
//!
//! # Phases
//!
//! Layers that deploy in steps (SLURM's `munge` then `slurmctld`, BeeGFS's `servers` then
//! `clients`) group host plans into named [`Phase`]s, record what each did as a
//! [`PhaseReport`] and tell whoever drives them through a [`PhaseObserver`] as phases start,
//! finish or fail ([`PhaseEvent`]), so a progress display needs to know no layer.
//!
//! # Features
//!
//! - `transport` (default): the executors that move bytes — [`SshExecutor`] (russh),
//!   [`OpenSshExecutor`] (the `ssh` client, for libvirt hypervisor hosts) and
//!   [`LocalExecutor`] (`sh` on this machine), with [`SshHost`], [`SshOptions`],
//!   [`KeyError`], [`OpenSshTarget`], [`OpenSshOptions`], [`UriError`] and the `russh`
//!   re-export — on tokio, and their reading of the runner's report (with the diffs of
//!   [`Mode::CHECK_DIFF`]). Without it (`default-features =
//!   false`, as the workspace asks for it) the crate is the plain parts only: the step
//!   vocabulary and [`HostPlan`], [`boot_program`] and [`validate`], [`quote`], reports,
//!   [`Mode`], [`CommandOutput`], the [`Executor`] trait and [`apply_all`], and phases; it
//!   then builds neither russh nor tokio, so a planner that only
//!   produces host steps (hpc-virtiofs, hpc-beegfs) or code generic over any [`Executor`]
//!   stays light. A user that opens SSH connections or runs plans locally asks for
//!   `features = ["transport"]`. Implies `wait`.
//! - `wait` (with `transport`): [`wait_for`], the one bounded polling loop of a deployment
//!   ("until slurmctld answers", "until SSH is up"), on tokio's timer, for code that drives
//!   an [`Executor`] without opening connections itself (hpc-slurm's deploy).
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "transport")]
//! # mod demo {
//! use hpc_remote::{
//!     EnsureDirectory, EnsureFile, EnsureService, HostPlan, Mode, Owner, SshExecutor, SshHost,
//!     SshOptions, apply_all,
//! };
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let plan = HostPlan::new("c01")
//!     .step("dir", EnsureDirectory::new("/etc/munge", 0o700).owner(Owner::new("munge", "munge")))
//!     .step(
//!         "key",
//!         EnsureFile::new("/etc/munge/munge.key", vec![0u8; 1024], 0o400)
//!             .owner(Owner::new("munge", "munge"))
//!             .secret(),
//!     )
//!     .step("munge", EnsureService::started("munge").restart_on(["key"]));
//!
//! let mut opts = SshOptions::new("/srv/cluster/ssh/id_ed25519", "/srv/cluster/state");
//! opts.known_hosts = Some("/srv/cluster/ssh/known_hosts".into());
//! let exec = SshExecutor::new(opts, [SshHost::new("c01", "10.81.0.11")])?;
//! let summary = apply_all(&exec, &[plan], Mode::APPLY).await;
//! if !summary.is_success() {
//!     return Err(summary.to_string().into()); // names every failed host and step
//! }
//! # Ok(())
//! # }
//! # }
//! ```
//!
//! # Stability
//!
//! Pre-1.0: the step vocabulary may grow (new fields get defaults in the builders); the
//! protocol between the runner program and this crate is private.
//!
//! Logging: `tracing` only — `debug` per connection and runner, `info` per host result,
//! `warn` for refused host keys and failed hosts. Nothing is printed.

#[cfg(feature = "transport")]
mod child;
#[cfg(feature = "transport")]
mod diff;
mod error;
mod executor;
#[cfg(feature = "transport")]
mod known_hosts;
#[cfg(feature = "transport")]
mod local;
#[cfg(feature = "transport")]
mod openssh;
#[cfg(feature = "transport")]
mod outcome;
mod phase;
mod quote;
mod report;
mod run;
mod script;
#[cfg(feature = "transport")]
mod ssh;
mod step;
#[cfg(feature = "wait")]
mod wait;

pub use error::{HostError, PlanError};
pub use executor::{CommandOutput, Executor, Mode, apply_all};
#[cfg(feature = "transport")]
pub use local::LocalExecutor;
#[cfg(feature = "transport")]
pub use openssh::{OpenSshExecutor, OpenSshOptions, OpenSshTarget, UriError};
pub use phase::{NoObserver, Phase, PhaseEvent, PhaseObserver, PhaseReport};
pub use quote::{quote, quote_argv};
pub use report::{HostReport, StepReport, StepStatus, Summary};
pub use run::{
    NodeFailure, PhaseFailure, apply_one, exit_failure, host_error, journal, run_ok, run_phase,
    run_phases,
};
#[cfg(feature = "transport")]
pub use russh;
pub use script::{boot_program, validate};
#[cfg(feature = "transport")]
pub use ssh::{KeyError, SshExecutor, SshHost, SshOptions};
pub use step::{
    EnsureDirectory, EnsureFile, EnsureMount, EnsureService, HostPlan, Owner, RunCommand, RunWhen,
    ServiceState, Step, StepKind,
};
#[cfg(feature = "wait")]
pub use wait::{Wait, WaitError, wait_for};
