//! The job-failure Epilog: its rendering (snapshot), and the script itself run by `/bin/sh`
//! in a temporary directory with the environment slurmd gives an Epilog (SLURM 22.05 and
//! 24.11: `SLURM_JOB_ID`, `SLURMD_NODENAME`, `SLURM_JOB_EXIT_CODE2`, …). The real slurmd
//! running it on the SSH bed is `tests/tests/slurm_bed.rs`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use hpc_config::JobFailures;
use hpc_slurm::{FailureSummary, bundle_dir, epilog_script, render_epilog};

fn failures(dir: &Path) -> JobFailures {
    JobFailures {
        dir: dir.to_str().unwrap().to_owned(),
        host_dir: None,
        log_lines: 5,
    }
}

#[test]
fn the_epilog_of_a_cluster_file() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yaml");
    let text = fs_err::read_to_string(&p).unwrap().replace(
        "\nslurm:\n",
        "\nvirtiofs:\n  - tag: shared\n    host-path: /srv/shared\n    mount-point: /shared\n\nslurm:\n",
    ) + "  job-failures:\n    dir: /shared/job-failures/\n";
    let cluster = hpc_config::load_str("jf.yaml", &text, &|_| None).unwrap();
    let script = epilog_script(&cluster).unwrap();
    // The trailing slash is gone; the default line count is 50.
    assert!(script.contains("\nDIR='/shared/job-failures'\nLINES=50\n"));
    insta::assert_snapshot!("epilog_minimal", script);
}

/// Whether this process runs as root (the Epilog only writes into a directory root owns).
fn is_root() -> bool {
    fs_err::metadata("/proc/self").unwrap().uid() == 0
}

/// Run the Epilog for `f` as slurmd would, with `env` on top of slurmd's variables for job
/// `job` on node `node`; returns its exit status.
fn run(f: &JobFailures, job: &str, node: &str, env: &[(&str, &str)]) -> i32 {
    // A file, as slurmd runs it (through sh: a file just written may not be executed while
    // another test thread forks with it open, ETXTBSY).
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hpc-up-epilog");
    fs_err::write(&path, render_epilog(f)).unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(&path)
        .env_clear()
        .env("SLURM_JOB_ID", job)
        .env("SLURM_JOBID", job)
        .env("SLURMD_NODENAME", node)
        .env("SLURM_JOB_USER", "alice")
        .env("SLURM_JOB_UID", "1000")
        .env("SLURM_JOB_PARTITION", "debug")
        .env("SLURM_NODELIST", node)
        .env("SLURM_SCRIPT_CONTEXT", "epilog_slurmd")
        // No controller here: scontrol fails at once (a missing file makes it retry for 60 s).
        .env("SLURM_CONF", "/dev/null");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.status().unwrap().code().unwrap_or(-1)
}

fn failed(code2: &str, raw: &str) -> [(&'static str, String); 3] {
    [
        ("SLURM_JOB_EXIT_CODE2", code2.to_owned()),
        ("SLURM_JOB_EXIT_CODE", raw.to_owned()),
        // A step's exit 2 (wait status 2 << 8)
        ("SLURM_JOB_DERIVED_EC", "512".to_owned()),
    ]
}

fn env_of<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs_err::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_failed_job_leaves_a_bundle_and_a_good_one_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job-failures");
    let f = failures(&dir);

    // exit 0: nothing, not even the directory.
    assert_eq!(run(&f, "7", "cn1", &env_of(&failed("0:0", "0"))), 0);
    assert!(!dir.exists());

    // exit 3 (wait status 3 << 8).
    assert_eq!(run(&f, "8", "cn1", &env_of(&failed("3:0", "768"))), 0);
    if !is_root() {
        // The directory is made, but it is not root's: the Epilog writes nothing there.
        assert_eq!(entries(&dir), Vec::<String>::new());
        return;
    }
    let bundle = Path::new(&bundle_dir(&f, 8, "cn1")).to_owned();
    assert_eq!(entries(&bundle), ["dmesg", "job", "slurmd.log", "summary"]);
    let summary =
        FailureSummary::parse(&fs_err::read_to_string(bundle.join("summary")).unwrap()).unwrap();
    assert_eq!(summary.job_id, 8);
    assert_eq!(summary.node, "cn1");
    assert_eq!(summary.user, "alice");
    assert_eq!(summary.partition, "debug");
    assert_eq!(summary.exit_code, "3:0");
    assert_eq!(summary.job_state, "FAILED");
    assert_eq!(summary.fields["uid"], "1000");
    assert_eq!(summary.fields["derived-exit-code"], "2:0");
    assert!(summary.time.ends_with('Z'), "{}", summary.time);
    // Each file says something: the log tail or why there is none.
    for name in ["slurmd.log", "dmesg", "job"] {
        let len = fs_err::metadata(bundle.join(name)).unwrap().len();
        assert!(len > 0, "{name} is empty");
    }
    // At most LINES lines of each log.
    let dmesg = fs_err::read_to_string(bundle.join("dmesg")).unwrap();
    assert!(dmesg.lines().count() <= 5, "{dmesg}");
    // Root's, readable by all, nothing left behind in <dir>.
    for p in [&dir, &dir.join("8"), &bundle] {
        let m = fs_err::metadata(p).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o755, "{}", p.display());
        assert_eq!(m.uid(), 0);
    }
    assert_eq!(entries(&dir), ["8"]);

    // The same job failing again on the node (requeued) replaces its bundle.
    fs_err::write(bundle.join("stale"), "x").unwrap();
    assert_eq!(run(&f, "8", "cn1", &env_of(&failed("1:0", "256"))), 0);
    assert_eq!(entries(&bundle), ["dmesg", "job", "slurmd.log", "summary"]);
    let again = fs_err::read_to_string(bundle.join("summary")).unwrap();
    assert!(again.contains("\nexit-code=1:0\n"), "{again}");
    // Another node of the same job: a bundle of its own beside it.
    assert_eq!(run(&f, "8", "cn2", &env_of(&failed("1:0", "256"))), 0);
    assert_eq!(entries(&dir.join("8")), ["cn1", "cn2"]);
    assert_eq!(entries(&dir), ["8"]);

    // Out of memory: slurmctld's SIG_OOM (253) in the low byte of the wait status.
    assert_eq!(run(&f, "9", "cn1", &env_of(&failed("0:125", "253"))), 0);
    let oom = fs_err::read_to_string(dir.join("9/cn1/summary")).unwrap();
    assert!(oom.contains("\njob-state=OUT_OF_MEMORY\n"), "{oom}");
    // Killed by a signal.
    assert_eq!(run(&f, "10", "cn1", &env_of(&failed("0:9", "9"))), 0);
    let killed = fs_err::read_to_string(dir.join("10/cn1/summary")).unwrap();
    assert!(killed.contains("\nexit-code=0:9\n"), "{killed}");
    assert!(killed.contains("\njob-state=FAILED\n"), "{killed}");
}

#[test]
fn it_never_fails_and_never_writes_where_it_should_not() {
    let tmp = tempfile::tempdir().unwrap();
    let code = failed("3:0", "768");
    let env = env_of(&code);

    // The share is not there (not mounted): exit 0, nothing made.
    let gone = tmp.path().join("no-such-share/job-failures");
    assert_eq!(run(&failures(&gone), "8", "cn1", &env), 0);
    assert!(!tmp.path().join("no-such-share").exists());

    // <dir> is a symlink (someone made it before hpc-up did): nothing written through it.
    let target = tmp.path().join("elsewhere");
    fs_err::create_dir(&target).unwrap();
    let link = tmp.path().join("linked");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(run(&failures(&link), "8", "cn1", &env), 0);
    assert_eq!(entries(&target), Vec::<String>::new());

    // A job id or node name that is not one: nothing.
    let dir = tmp.path().join("jf");
    let f = failures(&dir);
    assert_eq!(run(&f, "../8", "cn1", &env), 0);
    assert_eq!(run(&f, "8", "../cn1", &env), 0);
    assert_eq!(run(&f, "", "cn1", &env), 0);
    assert!(
        !dir.exists() || entries(&dir).is_empty(),
        "{:?}",
        entries(&dir)
    );

    // No exit code from slurmd and no controller to ask: not a failure.
    assert_eq!(run(&f, "8", "cn1", &[]), 0);
    assert!(
        !dir.exists() || entries(&dir).is_empty(),
        "{:?}",
        entries(&dir)
    );
}
