//! Running a layer's phases: every host of a phase at once, each host timed on its own and
//! reported to a [`PhaseObserver`]; the next phase starts when every host of this one
//! succeeded. A failed step is reported with its stderr and, when it is a service step, the
//! unit's last journal lines. Pure async over any [`Executor`]: no runtime, no timer.

use std::fmt;
use std::time::Instant;

use futures_util::future::join_all;

use crate::HostError;
use crate::executor::{CommandOutput, Executor, Mode};
use crate::phase::{Phase, PhaseEvent, PhaseObserver, PhaseReport};
use crate::report::StepStatus;
use crate::step::{HostPlan, StepKind};

/// One node's failure in a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    /// The node.
    pub node: String,
    /// The step that failed; `None` when the node could not be worked on at all.
    pub step: Option<String>,
    /// What went wrong: the step's stderr (and for a service, its journal's last lines), or
    /// why the node could not be reached.
    pub detail: String,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "node {}, step `{step}`: {}", self.node, self.detail),
            None => write!(f, "node {}: {}", self.node, self.detail),
        }
    }
}

/// A phase that failed on one or more nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phase `{phase}`:\n  {}", failures.iter().map(|f| f.to_string().replace('\n', "\n    ")).collect::<Vec<_>>().join("\n  "))]
pub struct PhaseFailure {
    /// The phase.
    pub phase: &'static str,
    /// Every node that failed in it.
    pub failures: Vec<NodeFailure>,
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a command that did not exit 0 failed: its status and stderr.
pub fn exit_failure(o: &CommandOutput) -> String {
    let status = o
        .status
        .map_or_else(|| "a signal".to_owned(), |s| format!("status {s}"));
    let err = String::from_utf8_lossy(&o.stderr).trim().to_owned();
    if err.is_empty() {
        format!("exited with {status}")
    } else {
        format!("exited with {status}: {err}")
    }
}

/// The executor's error without its `host NODE: ` prefix (the caller names the node).
pub fn host_error(node: &str, e: &HostError) -> String {
    let full = e.to_string();
    full.strip_prefix(&format!("host {node}: "))
        .map_or_else(|| full.clone(), str::to_owned)
}

/// Runs `argv` on `node`: `Ok(stdout)` for exit status 0, else why not.
pub async fn run_ok<E: Executor>(exec: &E, node: &str, argv: &[String]) -> Result<String, String> {
    match exec.run(node, argv).await {
        Ok(o) if o.status == Some(0) => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(exit_failure(&o)),
        Err(e) => Err(host_error(node, &e)),
    }
}

/// The unit's last journal lines on `node`, for an error; `None` when they add nothing to
/// `shown` (text the error already holds, such as a start's output that systemctl printed).
pub async fn journal<E: Executor>(exec: &E, node: &str, unit: &str, shown: &str) -> Option<String> {
    let argv: Vec<String> = ["journalctl", "-u", unit, "-n", "15", "--no-pager"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    Some(match run_ok(exec, node, &argv).await {
        Ok(out) if !out.trim().is_empty() => {
            let new = out
                .lines()
                .filter(|l| !l.trim().is_empty())
                .any(|l| !shown.contains(l.trim()));
            if !new {
                return None;
            }
            format!("{unit}'s journal ends with:\n{}", indent(out.trim_end()))
        }
        Ok(_) => format!("{unit}'s journal is empty"),
        Err(e) => format!("{unit}'s journal cannot be read: {e}"),
    })
}

/// The unit a step manages, when it is a service step of `plan`.
fn unit_of<'a>(plan: &'a HostPlan, step: &str) -> Option<&'a str> {
    plan.steps
        .iter()
        .find(|s| s.id == step)
        .and_then(|s| match &s.kind {
            StepKind::Service(svc) => Some(svc.name.as_str()),
            _ => None,
        })
}

/// One host's plan of a phase: applied and timed on its own; the observer hears of its
/// start and end.
pub async fn apply_one<E: Executor>(
    exec: &E,
    name: &'static str,
    plan: &HostPlan,
    start: Instant,
    observer: &dyn PhaseObserver,
) -> Result<PhaseReport, NodeFailure> {
    let node = plan.host.as_str();
    observer.phase(PhaseEvent::Started {
        name,
        node: Some(node),
    });
    let t0 = Instant::now();
    let result = exec.apply_host(plan, Mode::APPLY).await;
    let elapsed = t0.elapsed();
    let failure = match result {
        Ok(rep) => match rep.steps.iter().find_map(|s| match &s.status {
            StepStatus::Failed { stderr_tail } => Some((s.id.clone(), stderr_tail.clone())),
            _ => None,
        }) {
            None => {
                let report = PhaseReport {
                    name,
                    node: Some(node.to_owned()),
                    elapsed,
                    finished_at: start.elapsed(),
                    hosts: vec![rep],
                };
                observer.phase(PhaseEvent::Finished(&report));
                return Ok(report);
            }
            Some((step, stderr)) => {
                let mut detail = if stderr.trim().is_empty() {
                    "failed".to_owned()
                } else {
                    format!("failed:\n{}", indent(stderr.trim_end()))
                };
                if let Some(unit) = unit_of(plan, &step)
                    && let Some(j) = journal(exec, node, unit, &stderr).await
                {
                    detail.push('\n');
                    detail.push_str(&j);
                }
                NodeFailure {
                    node: node.to_owned(),
                    step: Some(step),
                    detail,
                }
            }
        },
        Err(e) => NodeFailure {
            node: node.to_owned(),
            step: None,
            detail: host_error(node, &e),
        },
    };
    let error = failure.to_string();
    observer.phase(PhaseEvent::Failed {
        name,
        node: Some(node),
        error: &error,
    });
    Err(failure)
}

/// All hosts of one phase at once; every failure collected.
pub async fn run_phase<E: Executor>(
    exec: &E,
    phase: &Phase,
    start: Instant,
    observer: &dyn PhaseObserver,
) -> Result<Vec<PhaseReport>, PhaseFailure> {
    let results = join_all(
        phase
            .hosts
            .iter()
            .map(|plan| apply_one(exec, phase.name, plan, start, observer)),
    )
    .await;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(rep) => reports.push(rep),
            Err(f) => failures.push(f),
        }
    }
    if failures.is_empty() {
        Ok(reports)
    } else {
        Err(PhaseFailure {
            phase: phase.name,
            failures,
        })
    }
}

/// Every phase in order ([`run_phase`]); stops at the first that fails.
pub async fn run_phases<E: Executor>(
    exec: &E,
    phases: &[Phase],
    observer: &dyn PhaseObserver,
) -> Result<Vec<PhaseReport>, PhaseFailure> {
    let start = Instant::now();
    let mut out = Vec::new();
    for p in phases {
        out.extend(run_phase(exec, p, start, observer).await?);
    }
    Ok(out)
}
