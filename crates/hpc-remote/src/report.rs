//! Results: per host, per step.

use std::fmt;

use crate::HostError;

/// Outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    /// Already as wanted; nothing was touched.
    Unchanged,
    /// Changed (in check mode: would change; for commands: ran / would run).
    Changed,
    /// Not run: a conditional command or restart whose triggers did not change, or any
    /// step after a failed one.
    Skipped,
    /// Failed; later steps of the host were skipped.
    Failed {
        /// Last lines of the step's stderr (never file content).
        stderr_tail: String,
    },
}

/// Result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// Step id.
    pub id: String,
    /// Kind label (`file`, `command`, …).
    pub kind: &'static str,
    /// Outcome.
    pub status: StepStatus,
    /// In check mode with diffs: a unified diff of what would change (never for secrets).
    pub diff: Option<String>,
}

/// Result of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReport {
    /// Host name.
    pub host: String,
    /// Whether this was a check (dry) run.
    pub check: bool,
    /// One entry per step, in plan order.
    pub steps: Vec<StepReport>,
}

impl HostReport {
    /// Number of changed steps.
    pub fn changed(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Changed))
    }

    /// Number of failed steps.
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, StepStatus::Failed { .. }))
    }

    /// Whether no step failed.
    pub fn is_ok(&self) -> bool {
        self.failed() == 0
    }

    /// The report of step `id`.
    pub fn step(&self, id: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.id == id)
    }

    fn count(&self, f: impl Fn(&StepStatus) -> bool) -> usize {
        self.steps.iter().filter(|s| f(&s.status)).count()
    }
}

/// Results of all hosts of one apply, in plan order. `Display` names every failure.
#[derive(Debug)]
pub struct Summary {
    /// Per host: its report, or why it could not be worked on.
    pub hosts: Vec<(String, Result<HostReport, HostError>)>,
}

impl Summary {
    /// Whether every host was reached and no step failed.
    pub fn is_success(&self) -> bool {
        self.hosts
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(HostReport::is_ok))
    }

    /// Total changed steps over all hosts.
    pub fn changed(&self) -> usize {
        self.hosts
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(HostReport::changed)
            .sum()
    }

    /// The report of `host`, if it was reached.
    pub fn host(&self, host: &str) -> Option<&Result<HostReport, HostError>> {
        self.hosts.iter().find(|(h, _)| h == host).map(|(_, r)| r)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reached = self.hosts.iter().filter(|(_, r)| r.is_ok()).count();
        let failed_hosts = self
            .hosts
            .iter()
            .filter(|(_, r)| !r.as_ref().is_ok_and(HostReport::is_ok))
            .count();
        write!(
            f,
            "{} host(s): {reached} reached, {} changed step(s), {failed_hosts} host(s) failed",
            self.hosts.len(),
            self.changed(),
        )?;
        for (host, r) in &self.hosts {
            match r {
                Err(e) => write!(f, "\n  {e}")?,
                Ok(rep) => {
                    for s in &rep.steps {
                        if let StepStatus::Failed { stderr_tail } = &s.status {
                            write!(f, "\n  host {host}: step {:?} ({}) failed", s.id, s.kind)?;
                            if !stderr_tail.is_empty() {
                                write!(f, ": {}", stderr_tail.trim_end().replace('\n', " | "))?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
