//! `hpc-up check mpi`: the check program across the compute nodes with `srun --mpi=pmix`.

use std::time::Duration;

use hpc_config::Cluster;
use hpc_remote::Executor;

use super::CHECK_PROGRAM_PATH;
use super::parse::{MpiParseError, parse_mpi_output};
use crate::hostlist;

/// How to check.
#[derive(Debug, Clone)]
pub struct MpiCheckOptions {
    /// Bound of the job (`timeout` around `srun`).
    pub timeout: Duration,
    /// Ranks per node (`--ntasks-per-node`): 1 checks the network, more also shared memory
    /// (each node needs as many CPUs).
    pub tasks_per_node: u32,
}

impl Default for MpiCheckOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            tasks_per_node: 1,
        }
    }
}

/// What the MPI job showed. `ok` when every node of the partition ran its ranks, every
/// rank reported, and the allreduce summed right (`problems` says what did not). A report:
/// `--output json` prints it (kebab-case keys).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MpiCheck {
    /// The SLURM MPI plugin the job ran with (`pmix`).
    pub plugin: String,
    /// The partition the job ran in.
    pub partition: String,
    /// The MPI library (`Open MPI v4.1.4, …`), as the program saw it.
    pub library: Option<String>,
    /// The nodes asked for, sorted.
    pub nodes: Vec<String>,
    /// Ranks in `MPI_COMM_WORLD`.
    pub ranks: u32,
    /// Ranks per node asked for.
    pub tasks_per_node: u32,
    /// The allreduce of every rank number gave n(n-1)/2.
    pub sum_ok: bool,
    /// The two nodes of the ping-pong (rank 0's and the first other one's); `None` with one
    /// node: latency and bandwidth not measured.
    pub between: Option<(String, String)>,
    /// Half the median round trip of a small message, microseconds.
    pub latency_us: Option<f64>,
    /// Large-message bandwidth, MB/s.
    pub bandwidth_mbs: Option<f64>,
    /// What was wrong; empty when `ok`.
    pub problems: Vec<String>,
    /// Everything held.
    pub ok: bool,
}

impl MpiCheck {
    /// The report as text lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "srun --mpi={} in partition {}: {} ranks on {} ({} per node){}",
                self.plugin,
                self.partition,
                self.ranks,
                hostlist::compress(&self.nodes.iter().map(String::as_str).collect::<Vec<_>>()),
                self.tasks_per_node,
                self.library
                    .as_deref()
                    .map(|l| format!(", {}", l.split(',').next().unwrap_or(l)))
                    .unwrap_or_default(),
            ),
            format!(
                "allreduce of the rank numbers: {}",
                if self.sum_ok { "ok" } else { "wrong" }
            ),
        ];
        match (&self.between, self.latency_us, self.bandwidth_mbs) {
            (Some((a, b)), Some(lat), Some(bw)) => {
                out.push(format!(
                    "{a} <-> {b}: latency {lat:.1} µs, bandwidth {bw:.1} MB/s"
                ));
            }
            _ => out.push("latency and bandwidth: not measured (one node)".to_owned()),
        }
        out.extend(self.problems.iter().map(|p| format!("problem: {p}")));
        out.push(if self.ok { "MPI: ok" } else { "MPI: FAILED" }.to_owned());
        out
    }
}

/// Why the MPI check could not run or read its result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpiCheckError {
    /// No `mpi` or `slurm` section, no controller, or no partition with nodes.
    #[error("nothing to check: {0}")]
    Nothing(String),
    /// The command could not be run on the controller.
    #[error("running `{command}` on {node}: {error}")]
    Run {
        /// The controller.
        node: String,
        /// The command line.
        command: String,
        /// The executor's error.
        error: String,
    },
    /// srun failed before the program printed its result.
    #[error("`{command}` on {node} exited with {status}: {stderr}")]
    Srun {
        /// The controller.
        node: String,
        /// The command line.
        command: String,
        /// Exit status (`a signal` when killed); 124 is the timeout.
        status: String,
        /// srun's standard error (or standard output when that is empty).
        stderr: String,
    },
    /// The output is not the check program's.
    #[error("`{command}` on {node}: {error}; its output: {stdout:?}")]
    Output {
        /// The controller.
        node: String,
        /// The command line.
        command: String,
        /// What could not be read.
        error: MpiParseError,
        /// The output.
        stdout: String,
    },
}

/// Runs [`CHECK_PROGRAM_PATH`] on the first controller with `timeout N srun --mpi=pmix
/// -p P -N n -w NODES --ntasks-per-node=K --kill-on-bad-exit=1`: P is the default partition when it holds
/// every compute node, else the partition holding the most of them. Checks that every node
/// ran its ranks, that every rank reported and that the allreduce summed right; with two
/// nodes or more, reports rank 0's latency and bandwidth to the first rank on another node.
pub async fn check_mpi<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    opts: &MpiCheckOptions,
) -> Result<MpiCheck, MpiCheckError> {
    if cluster.mpi.is_none() {
        return Err(MpiCheckError::Nothing(
            "the cluster file has no `mpi:` section".into(),
        ));
    }
    let slurm = cluster
        .slurm
        .as_ref()
        .ok_or_else(|| MpiCheckError::Nothing("the cluster file has no `slurm:` section".into()))?;
    let ctl = cluster
        .controllers()
        .next()
        .ok_or_else(|| MpiCheckError::Nothing("the cluster has no controller".into()))?
        .name
        .to_string();
    let computes: Vec<&str> = cluster.computes().map(|n| n.name.as_str()).collect();
    let covered = |p: &&hpc_config::SlurmPartition| {
        p.nodes
            .iter()
            .filter(|n| computes.contains(&n.as_str()))
            .count()
    };
    let part = slurm
        .partitions
        .iter()
        .filter(|p| !p.nodes.is_empty())
        .max_by_key(|p| (covered(p), p.default))
        .ok_or_else(|| MpiCheckError::Nothing("no partition has nodes".into()))?;
    let mut nodes: Vec<String> = part.nodes.iter().map(ToString::to_string).collect();
    nodes.sort();
    let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let per_node = opts.tasks_per_node.max(1);
    let plugin = "pmix";

    let words: Vec<String> = [
        "timeout".to_owned(),
        opts.timeout.as_secs().max(1).to_string(),
        "srun".to_owned(),
        format!("--mpi={plugin}"),
        "-p".to_owned(),
        part.name.to_string(),
        "-N".to_owned(),
        nodes.len().to_string(),
        "-w".to_owned(),
        hostlist::compress(&names),
        format!("--ntasks-per-node={per_node}"),
        // A rank that dies ends the job at once, rather than the others waiting for it.
        "--kill-on-bad-exit=1".to_owned(),
        CHECK_PROGRAM_PATH.to_owned(),
    ]
    .into();
    let command = words.join(" ");
    let out = exec
        .run(&ctl, &words)
        .await
        .map_err(|e| MpiCheckError::Run {
            node: ctl.clone(),
            command: command.clone(),
            error: e.to_string(),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    let status = out
        .status
        .map_or_else(|| "a signal".to_owned(), |s| s.to_string());
    let parsed = match parse_mpi_output(&stdout) {
        Ok(p) => p,
        Err(MpiParseError::NoHeader) if out.status != Some(0) => {
            return Err(MpiCheckError::Srun {
                node: ctl,
                command,
                status,
                stderr: if stderr.is_empty() {
                    stdout.trim_end().to_owned()
                } else {
                    stderr
                },
            });
        }
        Err(error) => {
            return Err(MpiCheckError::Output {
                node: ctl,
                command,
                error,
                stdout,
            });
        }
    };

    let mut problems = Vec::new();
    if out.status != Some(0) {
        problems.push(format!("`{command}` exited with {status}: {stderr}"));
    }
    let want = u32::try_from(nodes.len())
        .ok()
        .and_then(|n| n.checked_mul(per_node));
    if Some(parsed.size) != want {
        problems.push(format!(
            "MPI_COMM_WORLD has {} ranks, {} nodes × {per_node} asked for",
            parsed.size,
            nodes.len()
        ));
    }
    let missing = parsed.missing_ranks();
    if !missing.is_empty() {
        problems.push(format!("ranks {missing:?} did not report"));
    }
    for node in &nodes {
        let n = parsed.ranks.values().filter(|h| *h == node).count();
        if u32::try_from(n).ok() != Some(per_node) {
            problems.push(format!("{node} ran {n} ranks, {per_node} asked for"));
        }
    }
    let strangers: Vec<&String> = parsed
        .ranks
        .values()
        .filter(|h| !nodes.contains(h))
        .collect();
    if !strangers.is_empty() {
        problems.push(format!("ranks ran on nodes not asked for: {strangers:?}"));
    }
    if !parsed.sum_ok() {
        problems.push(format!(
            "the allreduce of the rank numbers gave {}, expected {}",
            parsed.sum, parsed.expected
        ));
    }
    if nodes.len() > 1 && parsed.pingpong.is_none() && parsed.sum_ok() {
        problems.push("no ping-pong between two nodes".to_owned());
    }
    let pp = parsed.pingpong.as_ref();
    Ok(MpiCheck {
        plugin: plugin.to_owned(),
        partition: part.name.to_string(),
        library: parsed.library.clone(),
        ranks: parsed.size,
        tasks_per_node: per_node,
        sum_ok: parsed.sum_ok(),
        between: pp.map(|p| (p.from.clone(), p.to.clone())),
        latency_us: pp.map(|p| p.latency_us),
        bandwidth_mbs: pp.map(|p| p.bandwidth_mbs),
        ok: problems.is_empty(),
        problems,
        nodes,
    })
}
