//! `slurm.job-failures`: the Epilog that leaves a failed job's diagnostic bundle, and the
//! bundle's summary as data. Pure.
//!
//! slurmd runs [`EPILOG_PATH`](crate::EPILOG_PATH) as root after every job on each node of the job (slurm.conf
//! names it when `job-failures` is set). The script (`epilog/hpc-up-epilog.sh`, POSIX sh)
//! decides from the environment slurmd gives it whether the job failed: SLURM 22.05
//! (Debian 12) and 24.11 (Debian 13) both set `SLURM_JOB_EXIT_CODE2` (`<exit>:<signal>`),
//! `SLURM_JOB_EXIT_CODE` (the raw wait status) and `SLURM_JOB_DERIVED_EC` for an Epilog
//! (`src/plugins/prep/script/prep_script_slurmd.c`, `_build_env`, from the exit code
//! slurmctld puts in its terminate-job request). A job failed when that code is not `0:0`,
//! the test slurmctld itself applies to record FAILED (or OUT_OF_MEMORY). Asking the
//! controller instead (`scontrol show job`) would cost an RPC after every job on every
//! node — SLURM's documentation warns Epilogs off controller queries — and would only show
//! `JobState=COMPLETING` anyway: a job stays COMPLETING until its Epilogs have finished.
//! The controller is asked only when slurmd gave no exit code, and for the bundle's `job`
//! file of a job that failed.
//!
//! A bundle is `<dir>/<job id>/<node>/` with [`BUNDLE_FILES`], written in a temporary
//! directory inside `<dir>` and renamed into place. `<dir>` is root's (mode 0755): the
//! cluster's users can read the bundles, and no job of theirs can write there or redirect
//! the root Epilog's writes (the script refuses a `<dir>` that is a symlink or not root's).
//! A failing Epilog drains the node, so the script always exits 0, bounds every command
//! that could wait with `timeout`, and runs itself under `timeout` as a whole (a job stays
//! COMPLETING until its Epilogs end; SLURM 22.05 has no Epilog time limit of its own).

use std::collections::BTreeMap;

use hpc_config::{Cluster, JobFailures};

/// Mode of [`EPILOG_PATH`](crate::EPILOG_PATH) (slurmd executes it).
pub const EPILOG_MODE: u32 = 0o755;
/// Mode of the bundle directory `<dir>` and of each bundle (owned by root).
pub const FAILURE_DIR_MODE: u32 = 0o755;
/// The files of a bundle: the summary, the tail of slurmd's log (its journal when there is
/// no log file), the tail of the kernel log, and `scontrol show job` (best effort).
pub const BUNDLE_FILES: [&str; 4] = ["summary", "slurmd.log", "dmesg", "job"];
/// slurmd's log file (`SlurmdLogFile` in the rendered slurm.conf).
const SLURMD_LOG: &str = "/var/log/slurm/slurmd.log";

const TEMPLATE: &str = include_str!("epilog/hpc-up-epilog.sh");
/// Bound of the whole Epilog, in seconds (each command it runs has 5).
const TOTAL_SECONDS: u32 = 60;

/// `s` as one single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The Epilog for `failures` (see the module docs).
pub fn render_epilog(failures: &JobFailures) -> String {
    TEMPLATE
        .replace("@DIR_TEXT@", &failures.dir)
        .replace("@DIR@", &sh_quote(&failures.dir))
        .replace("@LINES@", &failures.log_lines.max(1).to_string())
        .replace("@SLURMD_LOG@", &sh_quote(SLURMD_LOG))
        .replace("@TOTAL@", &TOTAL_SECONDS.to_string())
}

/// The Epilog of `cluster`, or `None` when its file sets no `slurm.job-failures`.
pub fn epilog_script(cluster: &Cluster) -> Option<String> {
    cluster
        .slurm
        .as_ref()
        .and_then(|s| s.job_failures.as_ref())
        .map(render_epilog)
}

/// Where the bundle of job `job_id` on `node` lands (a path on the nodes).
pub fn bundle_dir(failures: &JobFailures, job_id: u64, node: &str) -> String {
    format!("{}/{job_id}/{node}", failures.dir.trim_end_matches('/'))
}

/// A bundle's `summary`: `key=value` lines as the Epilog writes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FailureSummary {
    /// `job-id`.
    pub job_id: u64,
    /// `user`, the job's owner.
    pub user: String,
    /// `node`, where this part of the bundle was taken.
    pub node: String,
    /// `partition`.
    pub partition: String,
    /// `exit-code`, as SLURM shows it: `<exit>:<signal>`.
    pub exit_code: String,
    /// `job-state`: `FAILED` or `OUT_OF_MEMORY`, the state slurmctld records for that code.
    pub job_state: String,
    /// `time` the bundle was taken (UTC, RFC 3339).
    pub time: String,
    /// Every field, including those above.
    pub fields: BTreeMap<String, String>,
}

/// Why a `summary` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    /// A field the Epilog always writes is missing.
    #[error("the summary has no `{0}=` line")]
    Missing(&'static str),
    /// `job-id` is not a number.
    #[error("the summary's job-id {0:?} is not a number")]
    JobId(String),
}

impl FailureSummary {
    /// Parse a `summary` file.
    pub fn parse(text: &str) -> Result<Self, SummaryError> {
        let fields: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let get = |k: &'static str| fields.get(k).cloned().ok_or(SummaryError::Missing(k));
        let id = get("job-id")?;
        Ok(Self {
            job_id: id.parse().map_err(|_| SummaryError::JobId(id.clone()))?,
            user: get("user")?,
            node: get("node")?,
            partition: get("partition")?,
            exit_code: get("exit-code")?,
            job_state: get("job-state")?,
            time: get("time")?,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn jf(dir: &str) -> JobFailures {
        JobFailures {
            dir: dir.to_owned(),
            host_dir: None,
            log_lines: 50,
        }
    }

    #[test]
    fn quoting_keeps_any_path_one_word() {
        assert_eq!(sh_quote("/a b"), "'/a b'");
        assert_eq!(sh_quote("/it's"), r"'/it'\''s'");
    }

    #[test]
    fn the_script_names_the_directory_and_the_line_count() {
        let s = render_epilog(&jf("/shared/job-failures"));
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("\nDIR='/shared/job-failures'\n"), "{s}");
        assert!(s.contains("\nLINES=50\n"));
        assert!(s.contains("\nSLURMD_LOG='/var/log/slurm/slurmd.log'\n"));
        assert!(!s.contains('@'), "a placeholder is left: {s}");
        assert!(s.trim_end().ends_with("exit 0"));
    }

    #[test]
    fn bundle_paths() {
        assert_eq!(bundle_dir(&jf("/s/jf"), 12, "cn1"), "/s/jf/12/cn1");
    }

    #[test]
    fn summaries_parse() {
        let s = FailureSummary::parse(
            "job-id=12\nuser=root\nuid=0\nnode=h02\nnodes=h02\npartition=debug\nexit-code=3:0\n\
             derived-exit-code=0\njob-state=FAILED\ntime=2026-12-01T05:00:00Z\n",
        )
        .unwrap();
        assert_eq!(s.job_id, 12);
        assert_eq!(s.node, "h02");
        assert_eq!(s.exit_code, "3:0");
        assert_eq!(s.job_state, "FAILED");
        assert_eq!(s.fields["uid"], "0");
        assert_eq!(
            FailureSummary::parse("job-id=x\n"),
            Err(SummaryError::JobId("x".into()))
        );
        assert_eq!(
            FailureSummary::parse("job-id=1\nnode=h02\n"),
            Err(SummaryError::Missing("user"))
        );
    }
}
