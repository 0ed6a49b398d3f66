//! Phases: the named groups of host plans a layer runs one after another (SLURM's `munge`,
//! BeeGFS's `servers`), what each did, and live progress of them for whoever drives a
//! deployment. Pure data and one small trait; no transport.

use std::time::Duration;

use crate::report::HostReport;
use crate::step::HostPlan;

/// A named group of host plans that run together (a layer's step: SLURM's `munge`,
/// BeeGFS's `servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// Short name, for progress, reports and errors (`munge`, `servers`, …).
    pub name: &'static str,
    /// One plan per host that has work in this phase.
    pub hosts: Vec<HostPlan>,
}

impl Phase {
    /// A phase named `name` with these plans.
    pub fn new(name: &'static str, hosts: Vec<HostPlan>) -> Self {
        Self { name, hosts }
    }

    /// The plan of `host` in this phase, if it has one.
    pub fn host(&self, host: &str) -> Option<&HostPlan> {
        self.hosts.iter().find(|p| p.host == host)
    }
}

/// What one phase did, on one node or cluster-wide.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// Phase name (the [`Phase::name`] it ran, or the name of a wait or check).
    pub name: &'static str,
    /// The node it ran on; `None` for a cluster-wide phase.
    pub node: Option<String>,
    /// Wall time of the phase itself (time spent waiting for other nodes before it began is
    /// not in it).
    pub elapsed: Duration,
    /// When it ended, counted from the start of the deployment.
    pub finished_at: Duration,
    /// Per-host reports of the phase's host plans (empty for waits and checks).
    pub hosts: Vec<HostReport>,
}

impl PhaseReport {
    /// Steps changed on all hosts of the phase.
    pub fn changed(&self) -> usize {
        self.hosts.iter().map(HostReport::changed).sum()
    }
}

/// Live progress of phases, for whoever drives a deployment (a progress display).
///
/// Every `Started` is followed, for the same name and node, by exactly one `Finished` or
/// `Failed`; phases of different nodes interleave.
#[derive(Debug, Clone, Copy)]
pub enum PhaseEvent<'a> {
    /// A phase began on `node` (`None`: cluster-wide).
    Started {
        /// Phase name.
        name: &'static str,
        /// The node, or `None` for a cluster-wide phase.
        node: Option<&'a str>,
    },
    /// A phase ended well; the report is the one the deployment records.
    Finished(&'a PhaseReport),
    /// A phase failed (or was cut short; `error` says which).
    Failed {
        /// Phase name.
        name: &'static str,
        /// The node, or `None` for a cluster-wide phase.
        node: Option<&'a str>,
        /// Why, as the user would read it.
        error: &'a str,
    },
}

impl PhaseEvent<'_> {
    /// The phase's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { name, .. } | Self::Failed { name, .. } => name,
            Self::Finished(r) => r.name,
        }
    }

    /// The phase's node (`None`: cluster-wide).
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::Started { node, .. } | Self::Failed { node, .. } => *node,
            Self::Finished(r) => r.node.as_deref(),
        }
    }
}

/// Receives [`PhaseEvent`]s while a deployment runs. Called from the deployment's tasks,
/// possibly for several nodes at once; it must return quickly (draw, send on a channel).
/// Any `Fn(PhaseEvent<'_>) + Sync` closure is one.
pub trait PhaseObserver: Sync {
    /// One event.
    fn phase(&self, event: PhaseEvent<'_>);
}

impl<F: Fn(PhaseEvent<'_>) + Sync> PhaseObserver for F {
    fn phase(&self, event: PhaseEvent<'_>) {
        self(event);
    }
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl PhaseObserver for NoObserver {
    fn phase(&self, _: PhaseEvent<'_>) {}
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::report::{StepReport, StepStatus};

    #[test]
    fn changed_sums_the_hosts() {
        let host = |statuses: &[StepStatus]| HostReport {
            host: "h".into(),
            check: false,
            steps: statuses
                .iter()
                .map(|s| StepReport {
                    id: "s".into(),
                    kind: "file",
                    status: s.clone(),
                    diff: None,
                })
                .collect(),
        };
        let r = PhaseReport {
            name: "munge",
            node: None,
            elapsed: Duration::ZERO,
            finished_at: Duration::ZERO,
            hosts: vec![
                host(&[StepStatus::Changed, StepStatus::Unchanged]),
                host(&[StepStatus::Changed, StepStatus::Changed]),
            ],
        };
        assert_eq!(r.changed(), 3);
    }

    #[test]
    fn closures_observe() {
        let seen = Mutex::new(Vec::new());
        let obs = |e: PhaseEvent<'_>| {
            if let Ok(mut s) = seen.lock() {
                s.push(format!("{} {:?}", e.name(), e.node()));
            }
        };
        let observer: &dyn PhaseObserver = &obs;
        observer.phase(PhaseEvent::Started {
            name: "munge",
            node: Some("c01"),
        });
        NoObserver.phase(PhaseEvent::Started {
            name: "x",
            node: None,
        });
        assert_eq!(
            seen.into_inner().unwrap_or_default(),
            ["munge Some(\"c01\")"]
        );
    }
}
