//! The executors' side of the runner protocol: the runner's `@@HPC` report lines into a
//! [`HostReport`], with diffs in check mode. Only the executors read a runner's output, so
//! this lives with them (feature `transport`).

use crate::report::{HostReport, StepReport, StepStatus};
use crate::{HostError, HostPlan, Mode};

#[derive(Default)]
struct Raw {
    status: Option<StepStatus>,
    err: Vec<String>,
    notes: Vec<String>,
    meta: Option<String>,
    content: bool,
    old: Option<Vec<u8>>,
    old_big: bool,
}

/// Parses the runner's stdout into a report. `stderr` and `exit` are used when the runner
/// did not finish.
pub(crate) fn parse(
    plan: &HostPlan,
    mode: Mode,
    stdout: &[u8],
    stderr: &[u8],
    exit: Option<u32>,
) -> Result<HostReport, HostError> {
    let mut raw: Vec<Raw> = plan.steps.iter().map(|_| Raw::default()).collect();
    let mut done = false;
    let mut rest = stdout;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(n) => (&rest[..n], &rest[n + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        let Some(line) = line.strip_prefix(b"@@HPC ") else {
            continue;
        };
        let line = String::from_utf8_lossy(line);
        let mut parts = line.splitn(3, ' ');
        let (Some(idx), Some(word)) = (parts.next(), parts.next()) else {
            continue;
        };
        let text = parts.next().unwrap_or("");
        if idx == "-" {
            if word == "done" {
                done = true;
            }
            continue;
        }
        let Some(r) = idx.parse::<usize>().ok().and_then(|i| raw.get_mut(i)) else {
            continue;
        };
        match word {
            "unchanged" => r.status = Some(StepStatus::Unchanged),
            "changed" => r.status = Some(StepStatus::Changed),
            "skipped" => r.status = Some(StepStatus::Skipped),
            "failed" => {
                r.status = Some(StepStatus::Failed {
                    stderr_tail: r.err.join("\n"),
                });
            }
            "err" => r.err.push(text.to_owned()),
            "note" => r.notes.push(text.to_owned()),
            "meta" => r.meta = Some(text.to_owned()),
            "content" => r.content = true,
            "oldbig" => r.old_big = true,
            "old" => {
                let n: usize = text.trim().parse().unwrap_or(0).min(rest.len());
                r.old = Some(rest[..n].to_vec());
                rest = &rest[n..];
                if rest.first() == Some(&b'\n') {
                    rest = &rest[1..];
                }
            }
            _ => {}
        }
    }
    if !done {
        return Err(HostError::Runner {
            host: plan.host.clone(),
            status: exit,
            stderr_tail: tail(stderr, 10),
        });
    }
    let steps = plan
        .steps
        .iter()
        .zip(raw)
        .map(|(step, r)| {
            let status = r.status.clone().unwrap_or(StepStatus::Failed {
                stderr_tail: "no result from the runner".to_owned(),
            });
            let diff = (mode.check && mode.diff && status == StepStatus::Changed).then(|| {
                crate::diff::describe(
                    &plan.host,
                    step,
                    &r.notes,
                    r.meta.as_deref(),
                    r.content,
                    r.old.as_deref(),
                    r.old_big,
                )
            });
            StepReport {
                id: step.id.clone(),
                kind: step.kind.label(),
                status,
                diff,
            }
        })
        .collect();
    Ok(HostReport {
        host: plan.host.clone(),
        check: mode.check,
        steps,
    })
}

/// Last `n` lines of `bytes`, lossily decoded.
fn tail(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
