//! Checking a running SLURM cluster with real jobs: `srun` across every node of every
//! partition, an `sbatch` job whose output lands on a shared directory (a read-write
//! virtio-fs share every node of the partition and the controller have), and `sacct` showing
//! the job when accounting is on. Every wait is bounded.

use std::time::{Duration, Instant};

use hpc_config::{Cluster, Mount, Node};
use hpc_remote::{Executor, Wait, wait_for};

use crate::deploy::run_ok;
use crate::hostlist;

/// How to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Bound of each job (srun, sbatch until done, sacct until it shows the job).
    pub timeout: Duration,
    /// Distinguishes this run's output files from earlier ones.
    pub token: String,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            token: "check".to_owned(),
        }
    }
}

/// One `srun` across a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct SrunResult {
    /// The partition.
    pub partition: String,
    /// Hostnames the tasks printed, sorted.
    pub nodes: Vec<String>,
    /// Wall time of the job.
    pub elapsed: Duration,
}

/// The batch job.
#[derive(Debug, Clone, PartialEq)]
pub struct SbatchResult {
    /// Job id.
    pub job_id: u64,
    /// Partition.
    pub partition: String,
    /// The node that ran it.
    pub node: String,
    /// The output file, as the job saw it.
    pub output: String,
    /// The share the output went through (its tag), or `None` when it stayed on the node.
    pub share: Option<String>,
    /// Submission to the output being read back.
    pub elapsed: Duration,
    /// The job's state in `sacct` (accounting on), e.g. `COMPLETED`.
    pub sacct_state: Option<String>,
}

/// Everything the check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// One per partition with nodes.
    pub srun: Vec<SrunResult>,
    /// The batch job.
    pub sbatch: SbatchResult,
}

/// A failed check. Names the node or partition and the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The cluster has no SLURM, or no partition with nodes.
    #[error("nothing to check: {0}")]
    Nothing(String),
    /// A command failed.
    #[error("{what}: {detail}")]
    Failed {
        /// What was being checked (`srun in partition debug`, …).
        what: String,
        /// What went wrong, with the command's messages.
        detail: String,
    },
}

fn failed(what: impl Into<String>, detail: impl Into<String>) -> CheckError {
    CheckError::Failed {
        what: what.into(),
        detail: detail.into(),
    }
}

/// A read-write share that `submit` and every node of `nodes` mount at the same place from
/// the same host directory.
pub fn shared_dir<'a>(submit: &'a Node, nodes: &[&Node]) -> Option<&'a Mount> {
    submit.virtiofs.iter().find(|m| {
        !m.readonly
            && nodes.iter().all(|n| {
                n.virtiofs.iter().any(|o| {
                    !o.readonly && o.host_path == m.host_path && o.mount_point == m.mount_point
                })
            })
    })
}

/// `JobState=…` and other `Key=Value` fields of `scontrol show job -o`.
fn job_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Run the check (see the module docs). Jobs are submitted on the first controller.
pub async fn check<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let slurm = cluster
        .slurm
        .as_ref()
        .ok_or_else(|| CheckError::Nothing("the cluster file has no `slurm:` section".into()))?;
    let submit = cluster
        .controllers()
        .next()
        .ok_or_else(|| CheckError::Nothing("the cluster has no controller".into()))?;
    let ctl = submit.name.as_str();
    let secs = opts.timeout.as_secs().max(1).to_string();

    let mut srun = Vec::new();
    for p in slurm.partitions.iter().filter(|p| !p.nodes.is_empty()) {
        let names: Vec<&str> = p.nodes.iter().map(|n| n.as_str()).collect();
        let list = hostlist::compress(&names);
        let count = names.len().to_string();
        let started = Instant::now();
        let out = run_ok(
            exec,
            ctl,
            &[
                "timeout",
                &secs,
                "srun",
                "-p",
                p.name.as_str(),
                "-N",
                &count,
                "-n",
                &count,
                "-w",
                &list,
                "hostname",
                "-s",
            ],
        )
        .await
        .map_err(|e| failed(format!("srun -N{count} in partition {}", p.name), e))?;
        let mut seen: Vec<String> = out.lines().map(|l| l.trim().to_owned()).collect();
        seen.sort();
        let mut want: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        if seen != want {
            return Err(failed(
                format!("srun -N{count} in partition {}", p.name),
                format!("expected hostnames {want:?}, the tasks printed {seen:?}"),
            ));
        }
        srun.push(SrunResult {
            partition: p.name.to_string(),
            nodes: seen,
            elapsed: started.elapsed(),
        });
    }
    if srun.is_empty() {
        return Err(CheckError::Nothing("no partition has nodes".into()));
    }

    let part = slurm
        .partitions
        .iter()
        .find(|p| p.default && !p.nodes.is_empty())
        .or_else(|| slurm.partitions.iter().find(|p| !p.nodes.is_empty()))
        .ok_or_else(|| CheckError::Nothing("no partition has nodes".into()))?;
    let part_nodes: Vec<&Node> = part
        .nodes
        .iter()
        .filter_map(|n| cluster.node(n.as_str()))
        .collect();
    let share = shared_dir(submit, &part_nodes);
    let sbatch_what = format!("sbatch in partition {}", part.name);
    let dir = match share {
        Some(m) => format!("{}/.hpc-up-check", m.mount_point.trim_end_matches('/')),
        None => "/tmp".to_owned(),
    };
    if share.is_some() {
        run_ok(exec, ctl, &["mkdir", "-p", &dir])
            .await
            .map_err(|e| failed(&sbatch_what, e))?;
    }
    let output = format!("{dir}/slurm-{}-%j.out", opts.token);
    let started = Instant::now();
    let wrap = "echo \"hpc-up-check job $SLURM_JOB_ID on $(hostname)\"";
    let job = run_ok(
        exec,
        ctl,
        &[
            "sbatch",
            "--parsable",
            "-p",
            part.name.as_str(),
            "-N",
            "1",
            "-t",
            "5",
            "-o",
            &output,
            "--wrap",
            wrap,
        ],
    )
    .await
    .map_err(|e| failed(&sbatch_what, e))?;
    let job_id: u64 = job
        .trim()
        .split(';')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            failed(
                &sbatch_what,
                format!("sbatch printed {job:?}, not a job id"),
            )
        })?;
    let id = job_id.to_string();

    // Wait for the job to end.
    let job_what = format!("{sbatch_what}, job {id}");
    let node = wait_for(opts.timeout, Duration::from_millis(500), || async {
        let line = run_ok(exec, ctl, &["scontrol", "show", "job", "-o", &id])
            .await
            .map_err(Wait::Stop)?;
        let state = job_field(&line, "JobState").unwrap_or("UNKNOWN");
        let reason = job_field(&line, "Reason").unwrap_or("-");
        match state {
            "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED" => {
                Err(Wait::Retry(format!("{state} (reason {reason})")))
            }
            "COMPLETED" => Ok(job_field(&line, "BatchHost").unwrap_or("").to_owned()),
            _ => Err(Wait::Stop(format!("ended {state} (reason {reason})"))),
        }
    })
    .await
    .map_err(|w| failed(&job_what, w.to_string()))?;

    // Read the output back: through the share on the controller, else on the batch node.
    let path = output.replace("%j", &id);
    let reader = if share.is_some() { ctl } else { node.as_str() };
    let content = run_ok(exec, reader, &["cat", &path]).await.map_err(|e| {
        failed(
            format!("{sbatch_what}, job {id}: reading its output on {reader}"),
            e,
        )
    })?;
    let want = format!("hpc-up-check job {id} on {node}");
    if content.trim() != want {
        return Err(failed(
            format!("{sbatch_what}, job {id}: its output {path} on {reader}"),
            format!("expected {want:?}, found {:?}", content.trim()),
        ));
    }
    let _ = run_ok(exec, reader, &["rm", "-f", &path]).await;

    let sacct_state = if slurm.accounting_host.is_some() {
        let state = wait_for(opts.timeout, Duration::from_millis(500), || async {
            let out = run_ok(
                exec,
                ctl,
                &["sacct", "-n", "-X", "-P", "-j", &id, "-o", "State"],
            )
            .await
            .map_err(Wait::Stop)?;
            match out.lines().next().unwrap_or("").trim() {
                "COMPLETED" => Ok("COMPLETED".to_owned()),
                st => Err(Wait::Retry(format!(
                    "the accounting database does not show the job as COMPLETED (it says {st:?})"
                ))),
            }
        })
        .await
        .map_err(|w| failed(format!("sacct -j {id}"), w.to_string()))?;
        Some(state)
    } else {
        None
    };

    Ok(CheckReport {
        srun,
        sbatch: SbatchResult {
            job_id,
            partition: part.name.to_string(),
            node,
            output: path,
            share: share.map(|m| m.tag.to_string()),
            elapsed: started.elapsed(),
            sacct_state,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_fields() {
        let line = "JobId=3 JobName=wrap UserId=root(0) JobState=COMPLETED Reason=None BatchHost=h02 NumNodes=1";
        assert_eq!(job_field(line, "JobState"), Some("COMPLETED"));
        assert_eq!(job_field(line, "BatchHost"), Some("h02"));
        assert_eq!(job_field(line, "Missing"), None);
    }
}
