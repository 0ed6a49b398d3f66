//! `check`'s part for `slurm.job-failures` against a scripted executor: what it accepts and
//! how each way of failing is reported (the real slurmd and Epilog: `tests/tests/slurm_bed.rs`).
#![cfg(feature = "deploy")]
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::sync::Mutex;
use std::time::Duration;

use hpc_remote::{CommandOutput, Executor, HostError, HostPlan, HostReport, Mode};
use hpc_slurm::{CheckError, CheckOptions, check};

const DIR: &str = "/shared/job-failures";

/// A cluster whose jobs run as they should, unless told otherwise.
struct Scripted {
    /// `JobState` and `ExitCode` of the failing job once it ended.
    failed_as: (&'static str, &'static str),
    /// The bundle's summary on cn1 (`None`: it never appears).
    summary: Option<String>,
    /// `find`'s listing of the bundle.
    listing: &'static str,
    /// `sinfo`'s `%T|%E` for cn1 afterwards.
    node: &'static str,
    /// Every command run, as `host: argv`.
    log: Mutex<Vec<String>>,
}

fn summary(job: u64, node: &str, code: &str) -> String {
    format!(
        "job-id={job}\nuser=root\nuid=0\nnode={node}\nnodes={node}\npartition=debug\n\
         exit-code={code}\nderived-exit-code=0:0\njob-state=FAILED\ntime=2026-12-01T05:00:00Z\n"
    )
}

impl Default for Scripted {
    fn default() -> Self {
        Self {
            failed_as: ("FAILED", "3:0"),
            summary: Some(summary(2, "cn1", "3:0")),
            listing: "summary 150\nslurmd.log 2000\ndmesg 900\njob 1100\n",
            node: "idle|none",
            log: Mutex::new(Vec::new()),
        }
    }
}

fn out(status: u32, stdout: &str) -> Result<CommandOutput, HostError> {
    Ok(CommandOutput {
        status: Some(status),
        stdout: stdout.as_bytes().to_vec(),
        stderr: if status == 0 {
            Vec::new()
        } else {
            b"No such file or directory".to_vec()
        },
    })
}

impl Executor for Scripted {
    async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        Ok(HostReport {
            host: plan.host.clone(),
            check: mode.check,
            steps: Vec::new(),
        })
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{host}: {}", argv.join(" ")));
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["timeout", _, "srun", ..] => out(0, "cn1\ncn2\n"),
            ["sbatch", .., "--wrap", w] if w.starts_with("exit ") => out(0, "2\n"),
            ["sbatch", ..] => out(0, "1\n"),
            ["scontrol", "show", "job", "-o", "1"] => out(
                0,
                "JobId=1 JobState=COMPLETED Reason=None ExitCode=0:0 BatchHost=cn1",
            ),
            ["scontrol", "show", "job", "-o", "2"] => out(
                0,
                &format!(
                    "JobId=2 JobState={} Reason=NonZeroExitCode ExitCode={} BatchHost=cn1",
                    self.failed_as.0, self.failed_as.1
                ),
            ),
            ["cat", p] if p.ends_with("/summary") => match &self.summary {
                Some(s) if *p == format!("{DIR}/2/cn1/summary") && host == "cn1" => out(0, s),
                _ => out(1, ""),
            },
            ["cat", _] => out(0, "hpc-up-check job 1 on cn1\n"),
            ["find", ..] => out(0, self.listing),
            ["sinfo", "-h", "-n", "cn1", "-o", "%T|%E"] => out(0, self.node),
            ["sinfo", ..] => out(0, "drained Epilog error\n"),
            // mkdir, rm
            _ => out(0, ""),
        }
    }
}

fn cluster() -> hpc_config::Cluster {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yaml");
    let text = fs_err::read_to_string(&p).unwrap().replace(
        "\nslurm:\n",
        "\nvirtiofs:\n  - tag: shared\n    host-path: /srv/shared\n    mount-point: /shared\n\nslurm:\n",
    ) + &format!("  job-failures:\n    dir: {DIR}\n");
    hpc_config::load_str("jf.yaml", &text, &|_| None).unwrap()
}

fn run(exec: &Scripted) -> Result<hpc_slurm::CheckReport, CheckError> {
    let opts = CheckOptions {
        timeout: Duration::from_secs(1),
        token: "t".into(),
    };
    let c = cluster();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(check(exec, &c, &opts))
}

fn detail(r: Result<hpc_slurm::CheckReport, CheckError>) -> String {
    match r {
        Err(CheckError::Failed { what, detail }) => format!("{what}: {detail}"),
        other => panic!("expected the check to fail, got {other:?}"),
    }
}

#[test]
fn the_bundle_is_read_on_the_node_checked_and_removed() {
    let exec = Scripted::default();
    let rep = run(&exec).unwrap();
    let fc = rep.failure_capture.unwrap();
    assert_eq!((fc.job_id, fc.node.as_str()), (2, "cn1"));
    assert_eq!(fc.exit_code, "3:0");
    assert_eq!(fc.partition, "debug");
    assert_eq!(fc.bundle, format!("{DIR}/2/cn1"));
    assert_eq!(fc.summary.exit_code, "3:0");
    assert_eq!(
        fc.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["dmesg", "job", "slurmd.log", "summary"]
    );
    let log = exec.log.lock().unwrap();
    // Submitted on the controller to cn1, the bundle removed on cn1.
    assert!(
        log.iter().any(|l| l.starts_with("ctl: sbatch")
            && l.contains(" -w cn1 ")
            && l.ends_with("--wrap exit 3")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l == &format!("cn1: rm -rf -- {DIR}/2")),
        "{log:#?}"
    );
}

#[test]
fn without_job_failures_there_is_no_failing_job() {
    let exec = Scripted::default();
    let mut c = cluster();
    c.slurm.as_mut().unwrap().job_failures = None;
    let opts = CheckOptions {
        timeout: Duration::from_secs(1),
        token: "t".into(),
    };
    let rep = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(check(&exec, &c, &opts))
        .unwrap();
    assert!(rep.failure_capture.is_none());
    assert!(
        !exec
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("exit 3"))
    );
}

#[test]
fn each_way_of_failing_is_named() {
    let d = detail(run(&Scripted {
        failed_as: ("COMPLETED", "0:0"),
        ..Scripted::default()
    }));
    assert!(
        d.contains("ended COMPLETED") && d.contains("not FAILED"),
        "{d}"
    );

    let d = detail(run(&Scripted {
        failed_as: ("FAILED", "1:0"),
        ..Scripted::default()
    }));
    assert!(d.contains("exit code \"1:0\""), "{d}");

    // No bundle: the wait gives up, and says what state the node is in.
    let d = detail(run(&Scripted {
        summary: None,
        node: "drained|Epilog error",
        ..Scripted::default()
    }));
    assert!(d.contains(&format!("its bundle {DIR}/2/cn1 on cn1")), "{d}");
    assert!(d.contains("no bundle yet"), "{d}");

    let d = detail(run(&Scripted {
        summary: Some(summary(7, "cn2", "1:0")),
        ..Scripted::default()
    }));
    assert!(
        d.contains("job-id=7 (expected 2)")
            && d.contains("node=cn2 (expected cn1)")
            && d.contains("exit-code=1:0 (expected 3:0)"),
        "{d}"
    );

    let d = detail(run(&Scripted {
        listing: "summary 150\nslurmd.log 0\njob 10\n",
        ..Scripted::default()
    }));
    assert!(
        d.contains("slurmd.log is empty") && d.contains("dmesg is missing"),
        "{d}"
    );

    let d = detail(run(&Scripted {
        node: "drained|Epilog error",
        ..Scripted::default()
    }));
    assert!(
        d.contains("the state of cn1")
            && d.contains("drained after the job (reason: Epilog error)"),
        "{d}"
    );
}
