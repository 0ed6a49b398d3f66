//! Checking a running SLURM cluster with real jobs: `srun` across every node of every
//! partition, an `sbatch` job whose output lands on a shared directory (a read-write
//! virtio-fs share every node of the partition and the controller have), and `sacct` showing
//! the job when accounting is on; with `slurm.job-failures`, a job that fails on purpose
//! (`exit 3`) and the diagnostic bundle the Epilog leaves for it. Every wait is bounded.

use std::time::{Duration, Instant};

use hpc_config::{Cluster, Mount, Node};
use hpc_remote::{Executor, Wait, wait_for};

use crate::deploy::run_ok;
use crate::epilog::{BUNDLE_FILES, FailureSummary, bundle_dir};
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

/// One file of a failure bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BundleFile {
    /// Its name (`summary`, `slurmd.log`, `dmesg`, `job`).
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The job that failed on purpose (`slurm.job-failures`) and the bundle it left. A report:
/// `--output json` prints it (kebab-case keys, `elapsed` in seconds).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FailureCaptureResult {
    /// Job id.
    pub job_id: u64,
    /// Partition.
    pub partition: String,
    /// The node that ran it.
    pub node: String,
    /// Its exit code as SLURM shows it (`3:0`).
    pub exit_code: String,
    /// The bundle's directory on the nodes, `<dir>/<job id>/<node>` (removed after the check).
    pub bundle: String,
    /// The bundle's files, sorted by name.
    pub files: Vec<BundleFile>,
    /// The bundle's summary, as the Epilog wrote it.
    pub summary: FailureSummary,
    /// Submission to the bundle being read back.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

/// Everything the check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// One per partition with nodes.
    pub srun: Vec<SrunResult>,
    /// The batch job.
    pub sbatch: SbatchResult,
    /// The failed job's bundle, when the cluster file sets `slurm.job-failures`.
    pub failure_capture: Option<FailureCaptureResult>,
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

    let failure_capture = match &slurm.job_failures {
        Some(failures) => Some(
            check_failure_capture(exec, ctl, part.name.as_str(), &part_nodes, failures, opts)
                .await?,
        ),
        None => None,
    };

    Ok(CheckReport {
        srun,
        failure_capture,
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

/// The exit code the job of the failure check ends with.
const FAILURE_EXIT: &str = "3";

/// `sbatch --wrap 'exit 3'` on a compute node of the default partition; once it ended
/// FAILED, its bundle must appear (bounded wait, read on that node over `exec`) naming the
/// job, the node and the exit code, with non-empty slurmd.log and dmesg; and the node must
/// not be drained (a failing Epilog drains it). The bundle is removed afterwards.
async fn check_failure_capture<E: Executor>(
    exec: &E,
    ctl: &str,
    partition: &str,
    part_nodes: &[&Node],
    failures: &hpc_config::JobFailures,
    opts: &CheckOptions,
) -> Result<FailureCaptureResult, CheckError> {
    // The bundle directory is on every compute node's share; a controller that runs jobs
    // may not have it.
    let node = part_nodes
        .iter()
        .find(|n| n.role == hpc_config::Role::Compute)
        .ok_or_else(|| CheckError::Nothing("no compute node in the default partition".into()))?;
    let name = node.name.as_str();
    let what = format!("a job failing on purpose on {name}");
    let started = Instant::now();
    let wrap = format!("exit {FAILURE_EXIT}");
    let job = run_ok(
        exec,
        ctl,
        &[
            "sbatch",
            "--parsable",
            "-p",
            partition,
            "-w",
            name,
            "-N",
            "1",
            "-t",
            "5",
            "-J",
            "hpc-up-check-failure",
            "-o",
            "/dev/null",
            "--wrap",
            &wrap,
        ],
    )
    .await
    .map_err(|e| failed(&what, e))?;
    let job_id: u64 = job
        .trim()
        .split(';')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| failed(&what, format!("sbatch printed {job:?}, not a job id")))?;
    let id = job_id.to_string();
    let what = format!("{what}, job {id}");

    // It ends FAILED once every Epilog has run (COMPLETING until then).
    let exit_code = wait_for(opts.timeout, Duration::from_millis(500), || async {
        let line = run_ok(exec, ctl, &["scontrol", "show", "job", "-o", &id])
            .await
            .map_err(Wait::Stop)?;
        let state = job_field(&line, "JobState").unwrap_or("UNKNOWN");
        let reason = job_field(&line, "Reason").unwrap_or("-");
        match state {
            "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED" => {
                Err(Wait::Retry(format!("{state} (reason {reason})")))
            }
            "FAILED" => Ok(job_field(&line, "ExitCode").unwrap_or("").to_owned()),
            _ => Err(Wait::Stop(format!(
                "ended {state} (reason {reason}), not FAILED"
            ))),
        }
    })
    .await
    .map_err(|w| failed(&what, w.to_string()))?;
    let want_code = format!("{FAILURE_EXIT}:0");
    if exit_code != want_code {
        return Err(failed(
            &what,
            format!("SLURM shows exit code {exit_code:?}, expected {want_code:?}"),
        ));
    }

    // The bundle, read on the node that ran the job.
    let bundle = bundle_dir(failures, job_id, name);
    let summary_path = format!("{bundle}/summary");
    let text = wait_for(opts.timeout, Duration::from_millis(500), || async {
        run_ok(exec, name, &["cat", &summary_path])
            .await
            .map_err(|e| Wait::Retry(format!("no bundle yet: {}", e.trim())))
    })
    .await;
    let text = match text {
        Ok(t) => t,
        Err(w) => {
            let node_state = run_ok(exec, ctl, &["sinfo", "-h", "-n", name, "-o", "%T %E"])
                .await
                .unwrap_or_else(|e| e);
            return Err(failed(
                format!("{what}: its bundle {bundle} on {name}"),
                format!("{w} (the node is {})", node_state.trim()),
            ));
        }
    };
    let bundle_what = format!("{what}: its bundle {bundle} on {name}");
    let summary = FailureSummary::parse(&text).map_err(|e| failed(&bundle_what, e.to_string()))?;
    let mut wrong = Vec::new();
    if summary.job_id != job_id {
        wrong.push(format!("job-id={} (expected {job_id})", summary.job_id));
    }
    if summary.node != name {
        wrong.push(format!("node={} (expected {name})", summary.node));
    }
    if summary.exit_code != want_code {
        wrong.push(format!(
            "exit-code={} (expected {want_code})",
            summary.exit_code
        ));
    }
    let listing = run_ok(
        exec,
        name,
        &[
            "find",
            &bundle,
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-type",
            "f",
            "-printf",
            "%f %s\n",
        ],
    )
    .await
    .map_err(|e| failed(&bundle_what, e))?;
    let files = parse_listing(&listing);
    for f in BUNDLE_FILES.iter().filter(|f| **f != "job") {
        match files.iter().find(|b| b.name == *f) {
            Some(b) if b.bytes == 0 => wrong.push(format!("{f} is empty")),
            Some(_) => {}
            None => wrong.push(format!("{f} is missing")),
        }
    }
    if !wrong.is_empty() {
        return Err(failed(&bundle_what, wrong.join(", ")));
    }
    let elapsed = started.elapsed();

    // A failing Epilog would have drained the node.
    let node_state = run_ok(exec, ctl, &["sinfo", "-h", "-n", name, "-o", "%T|%E"])
        .await
        .map_err(|e| failed(format!("{what}: the state of {name}"), e))?;
    let (state, reason) = node_state
        .trim()
        .split_once('|')
        .unwrap_or((node_state.trim(), ""));
    if state.contains("drain") || state.contains("down") {
        return Err(failed(
            format!("{what}: the state of {name}"),
            format!("{state} after the job (reason: {reason})"),
        ));
    }
    let job_dir = bundle_dir(failures, job_id, "");
    let _ = run_ok(
        exec,
        name,
        &["rm", "-rf", "--", job_dir.trim_end_matches('/')],
    )
    .await;

    Ok(FailureCaptureResult {
        job_id,
        partition: partition.to_owned(),
        node: name.to_owned(),
        exit_code,
        bundle,
        files,
        summary,
        elapsed,
    })
}

/// `find -printf '%f %s\n'` lines as files, sorted by name.
fn parse_listing(out: &str) -> Vec<BundleFile> {
    let mut v: Vec<BundleFile> = out
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(n, s)| {
            Some(BundleFile {
                name: n.to_owned(),
                bytes: s.trim().parse().ok()?,
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
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

    #[test]
    fn bundle_listings() {
        let files = parse_listing("summary 120\ndmesg 4000\nslurmd.log 0\nodd\n");
        let got: Vec<(&str, u64)> = files.iter().map(|f| (f.name.as_str(), f.bytes)).collect();
        assert_eq!(got, [("dmesg", 4000), ("slurmd.log", 0), ("summary", 120)]);
    }
}
