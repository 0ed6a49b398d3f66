//! The executor trait and the many-hosts driver.

use std::future::Future;

use futures_util::future::join_all;

use crate::report::{HostReport, Summary};
use crate::{HostError, HostPlan};

/// How to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    /// Change nothing; report what would change.
    pub check: bool,
    /// With `check`: compute diffs of what would change (never of secret content).
    pub diff: bool,
}

impl Mode {
    /// Apply for real.
    pub const APPLY: Self = Self {
        check: false,
        diff: false,
    };
    /// Check mode with diffs (`--check --diff`).
    pub const CHECK_DIFF: Self = Self {
        check: true,
        diff: true,
    };
}

/// Output of a single command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status (`None` when killed by a signal / not reported).
    pub status: Option<u32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Something that applies host plans: over SSH, or on this machine.
///
/// Both implementations run the same on-target program, so they have the same semantics:
/// steps in order, a failed step skips the rest of its host, unchanged files are not
/// touched, changed files are replaced atomically.
pub trait Executor: Send + Sync {
    /// Applies one host's plan in one round trip.
    fn apply_host(
        &self,
        plan: &HostPlan,
        mode: Mode,
    ) -> impl Future<Output = Result<HostReport, HostError>> + Send;

    /// Runs one command (argv, quoted by this crate) on `host` and returns its output.
    fn run(
        &self,
        host: &str,
        argv: &[String],
    ) -> impl Future<Output = Result<CommandOutput, HostError>> + Send;
}

/// Applies every plan concurrently (each executor bounds its own parallelism); one host
/// failing does not stop the others. The summary keeps plan order.
pub async fn apply_all<E: Executor>(exec: &E, plans: &[HostPlan], mode: Mode) -> Summary {
    let results = join_all(plans.iter().map(|p| async move {
        let r = exec.apply_host(p, mode).await;
        match &r {
            Ok(rep) => tracing::info!(
                host = %p.host,
                changed = rep.changed(),
                failed = rep.failed(),
                check = mode.check,
                "host done"
            ),
            Err(e) => tracing::warn!(host = %p.host, error = %e, "host failed"),
        }
        (p.host.clone(), r)
    }))
    .await;
    Summary { hosts: results }
}
