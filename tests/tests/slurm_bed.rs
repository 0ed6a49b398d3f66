//! `hpc_slurm::deploy` (with its phase events) and `hpc_slurm::check` against the real
//! Debian daemons (munged, slurmctld, slurmd, slurmdbd, MariaDB) on the SSH test bed: h01 is
//! the controller (and the accounting host), h02–h04 run jobs. The bed's `systemctl` shim
//! starts the daemons from their real unit files (there is no systemd here). The bed hosts share `/srv` with the
//! machine, so a directory under the bed's state dir stands in for a virtio-fs share (also
//! for `slurm.job-failures`, whose Epilog the bed's real slurmd runs).
//!
//! Needs root, iproute2, OpenSSH, util-linux and the SLURM/munge/MariaDB packages
//! (`scripts/install-deps`): skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use hpc_config::Cluster;
use hpc_slurm::{
    CheckOptions, DeployError, DeployOptions, EPILOG_PATH, FailureSummary, NodeHardware,
    PhaseEvent, Secrets, check, deploy, deploy_with, epilog_script,
};
use hpc_tests::ssh_bed::SshBed;

const PACKAGES: [&str; 5] = ["munged", "slurmctld", "slurmd", "slurmdbd", "mariadbd"];

/// A bed of 4 hosts, or `None` (skip) outside CI when a daemon is missing.
fn bed() -> Option<SshBed> {
    SshBed::with_daemons(
        4,
        &PACKAGES,
        "munge, slurmctld, slurmd, slurmdbd and mariadb-server (scripts/install-deps)",
        "SLURM on the SSH test bed",
    )
}

/// The cluster file for the bed: h01 controller, h02–h04 compute, `share` shared by all.
fn cluster(bed: &SshBed, accounting: bool) -> Cluster {
    cluster_with(bed, accounting, "")
}

/// [`cluster`] with `extra` lines in its `slurm:` section.
fn cluster_with(bed: &SshBed, accounting: bool, extra: &str) -> Cluster {
    let ip = |n: &str| bed.host(n).unwrap().ip;
    let share = bed.state_dir().join("shared");
    fs_err::create_dir_all(&share).unwrap();
    let accounting = if accounting {
        "  accounting:\n    enabled: true\n    host: h01\n"
    } else {
        ""
    };
    let yaml = format!(
        "{head}virtiofs:
  - tag: shared
    host-path: {share}
    mount-point: {share}
controller:
  nodes:
    - name: h01
      ip: {}
compute:
  - name: h{{index:02}}
    count: 3
    first-index: 2
    first-ip: {}
slurm:
  partitions:
    - name: debug
      nodes: [\"h[02-04]\"]
      default: true
{accounting}{extra}",
        ip("h01"),
        ip("h02"),
        head = bed.cluster_head("bed", "hpcbr-bed", None),
        share = share.display(),
    );
    hpc_config::load_str("bed.yaml", &yaml, &|_| None).unwrap()
}

const KEY: [u8; 64] = *b"0123456789abcdef0123456789ABCDEF-not-a-secret-but-64-bytes-long!";

fn opts() -> DeployOptions {
    DeployOptions {
        wait_timeout: Duration::from_secs(60),
        ..DeployOptions::default()
    }
}

fn pid_of(bed: &SshBed, host: &str, daemon: &str) -> String {
    let out = bed.exec_on(host, &["pgrep", "-x", daemon]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn deploy_runs_jobs_with_accounting_and_a_rerun_restarts_nothing() {
    let Some(bed) = bed() else { return };
    let cluster = cluster(&bed, true);
    let exec = bed.executor("slurm-bed", None);
    let secrets = Secrets {
        munge_key: Some(&KEY),
        db_password: Some("bed-db-password"),
    };
    let o = opts();
    // Every phase event, as a progress display would get them.
    let events = Mutex::new(Vec::new());
    let observer = |e: PhaseEvent<'_>| {
        let what = match e {
            PhaseEvent::Started { .. } => "started",
            PhaseEvent::Finished(_) => "finished",
            PhaseEvent::Failed { .. } => "failed",
        };
        let node = e.node().unwrap_or("*").to_owned();
        events
            .lock()
            .unwrap()
            .push((node, format!("{what} {}", e.name())));
    };
    let report = bed
        .block_on(|| {
            deploy_with(
                &exec,
                &cluster,
                &secrets,
                &o,
                |_| async { Ok(()) },
                &observer,
            )
        })
        .unwrap_or_else(|e| panic!("deploy failed:\n{e}"));
    for p in &report.phases {
        eprintln!("phase {:<18} {:>6.2}s", p.name, p.elapsed.as_secs_f64());
    }
    // Per node, each phase starts and finishes before the next starts, in SLURM's order.
    let events = events.into_inner().unwrap();
    let of = |node: &str| -> Vec<String> {
        events
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, e)| e.clone())
            .collect()
    };
    let seq = |phases: &[&str]| -> Vec<String> {
        phases
            .iter()
            .flat_map(|p| [format!("started {p}"), format!("finished {p}")])
            .collect()
    };
    assert_eq!(
        of("h01"),
        seq(&[
            "ready",
            "munge",
            "munge round trip",
            "accounting",
            "slurmdbd up",
            "slurmctld",
            "slurmctld up"
        ])
    );
    for n in ["h02", "h03", "h04"] {
        assert_eq!(
            of(n),
            seq(&["ready", "munge", "munge round trip", "slurmd"]),
            "{n}"
        );
    }
    assert_eq!(of("*"), seq(&["hardware", "nodes idle", "config hash"]));
    // NodeName lines come from the nodes' own `slurmd -C`.
    let real = NodeHardware::parse_slurmd_c(&String::from_utf8_lossy(
        &bed.exec_on("h02", &["slurmd", "-C"]).stdout,
    ))
    .unwrap();
    assert_eq!(report.hardware.get("h03"), Some(&real));
    assert!(
        report.slurm_conf.contains("NodeName=h[02-04] CPUs="),
        "{}",
        report.slurm_conf
    );

    // Every node idle, seen with SLURM's own tool.
    let sinfo = bed.exec_on("h01", &["sinfo", "-h", "-N", "-o", "%N %T"]);
    let sinfo = String::from_utf8_lossy(&sinfo.stdout);
    assert_eq!(sinfo.trim(), "h02 idle\nh03 idle\nh04 idle", "{sinfo}");

    // srun across the three nodes, straight from the controller.
    let srun = bed.exec_on("h01", &["timeout", "60", "srun", "-N3", "hostname"]);
    let mut names: Vec<String> = String::from_utf8_lossy(&srun.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(names, ["h02", "h03", "h04"], "{srun:?}");

    // The check: srun per partition, sbatch through the shared dir, sacct via slurmdbd.
    let check_opts = CheckOptions {
        timeout: Duration::from_secs(60),
        token: "bed".into(),
    };
    let rep = bed
        .block_on(|| check(&exec, &cluster, &check_opts))
        .unwrap_or_else(|e| panic!("check failed: {e}"));
    assert_eq!(rep.srun[0].nodes, ["h02", "h03", "h04"]);
    assert_eq!(rep.sbatch.share.as_deref(), Some("shared"));
    assert_eq!(rep.sbatch.sacct_state.as_deref(), Some("COMPLETED"));
    assert!(["h02", "h03", "h04"].contains(&rep.sbatch.node.as_str()));

    // Jobs that ask for no memory share a node (DefMemPerCPU): while one runs on h02,
    // another starts there at once.
    let sh = |cmd: &str| {
        let o = bed.exec_on("h01", &["sh", "-c", cmd]);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
    };
    let (ok, job) = sh("sbatch --parsable -w h02 -n1 --wrap 'sleep 120'");
    assert!(ok, "{job}");
    let mut state = String::new();
    for _ in 0..60 {
        state = sh(&format!("squeue -h -j {job} -o %T")).1;
        if state == "RUNNING" {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(state, "RUNNING");
    let (ok, out) = sh("timeout 60 srun --immediate=30 -w h02 -n1 hostname 2>&1");
    assert!(ok && out.ends_with("h02"), "{out}");
    assert!(sh(&format!("scancel {job}")).0);

    // A second deploy of the unchanged cluster changes and restarts nothing.
    let before: Vec<String> = ["h01", "h02", "h03", "h04"]
        .iter()
        .flat_map(|h| ["munged", "slurmctld", "slurmd", "slurmdbd"].map(|d| pid_of(&bed, h, d)))
        .collect();
    let again = bed
        .block_on(|| deploy(&exec, &cluster, &secrets, &o))
        .unwrap_or_else(|e| panic!("second deploy failed:\n{e}"));
    assert_eq!(again.changed(), 0, "{:#?}", again.phases);
    assert!(again.restarted().is_empty(), "{:?}", again.restarted());
    let after: Vec<String> = ["h01", "h02", "h03", "h04"]
        .iter()
        .flat_map(|h| ["munged", "slurmctld", "slurmd", "slurmdbd"].map(|d| pid_of(&bed, h, d)))
        .collect();
    assert_eq!(before, after);
    bed.block_on(|| exec.close());
}

#[test]
fn too_much_real_memory_fails_with_slurms_reason() {
    let Some(bed) = bed() else { return };
    let cluster = cluster(&bed, false);
    let exec = bed.executor("slurm-bed", None);
    let real = NodeHardware::parse_slurmd_c(&String::from_utf8_lossy(
        &bed.exec_on("h03", &["slurmd", "-C"]).stdout,
    ))
    .unwrap();
    // h03 claims ten times the memory it has.
    let mut hardware = BTreeMap::new();
    hardware.insert(
        "h03".to_owned(),
        NodeHardware {
            real_memory_mib: real.real_memory_mib * 10,
            ..real
        },
    );
    let opts = DeployOptions { hardware, ..opts() };
    let secrets = Secrets {
        munge_key: Some(&KEY),
        db_password: None,
    };
    let err = bed
        .block_on(|| deploy(&exec, &cluster, &secrets, &opts))
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    match &err {
        DeployError::Phase { phase, failures } => {
            assert_eq!(*phase, "nodes idle");
            assert!(
                failures
                    .iter()
                    .any(|f| f.starts_with("node h03 is inval") && f.contains("Low RealMemory")),
                "{msg}"
            );
            assert!(!failures.iter().any(|f| f.starts_with("node h02")), "{msg}");
        }
        other => panic!("expected the idle wait to fail, got: {other}"),
    }
    bed.block_on(|| exec.close());
}

#[test]
fn an_insecure_munge_key_is_reported_with_munged_s_message() {
    let Some(bed) = bed() else { return };
    let cluster = cluster(&bed, false);
    let exec = bed.executor("slurm-bed", None);
    // The site manages the key (hpc-up leaves it alone), and h02's is readable by all.
    for h in ["h01", "h02", "h03", "h04"] {
        let mode = if h == "h02" { "0644" } else { "0400" };
        let out = bed.exec_on(
            h,
            &[
                "sh",
                "-c",
                "head -c 64 /dev/urandom >/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key && chmod \"$1\" /etc/munge/munge.key",
                "sh",
                mode,
            ],
        );
        assert!(out.status.success(), "{out:?}");
    }
    let (o, secrets) = (opts(), Secrets::default());
    let err = bed
        .block_on(|| deploy(&exec, &cluster, &secrets, &o))
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    match &err {
        DeployError::Phase { phase, failures } => {
            assert_eq!(*phase, "munge");
            assert_eq!(failures.len(), 1, "{msg}");
            assert!(failures[0].starts_with("node h02, step `munge`"), "{msg}");
            assert!(failures[0].contains("Keyfile is insecure"), "{msg}");
        }
        other => panic!("expected the munge phase to fail, got: {other}"),
    }
    bed.block_on(|| exec.close());
}

/// The names in `dir`, sorted (none when it does not exist).
fn names(dir: &Path) -> Vec<String> {
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

/// The state of job `id` once it has ended (no longer PENDING, RUNNING or COMPLETING: every
/// Epilog has run), as `scontrol show job` on h01 shows it.
fn ended(bed: &SshBed, id: &str) -> String {
    let mut last = String::new();
    for _ in 0..240 {
        let out = bed.exec_on("h01", &["scontrol", "show", "job", "-o", id]);
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let state = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
            .unwrap_or("")
            .to_owned();
        if !state.is_empty()
            && !["PENDING", "CONFIGURING", "RUNNING", "COMPLETING"].contains(&state.as_str())
        {
            return state;
        }
        last = line;
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("job {id} did not end: {last}");
}

#[test]
fn a_failed_job_leaves_its_bundle_and_the_check_sees_it() {
    let Some(bed) = bed() else { return };
    let dir = bed.state_dir().join("shared/job-failures");
    let extra = format!(
        "  job-failures:\n    dir: {}\n    log-lines: 20\n",
        dir.display()
    );
    let cluster = cluster_with(&bed, false, &extra);
    let exec = bed.executor("slurm-bed", None);
    let secrets = Secrets {
        munge_key: Some(&KEY),
        db_password: None,
    };
    let o = opts();
    let report = bed
        .block_on(|| deploy(&exec, &cluster, &secrets, &o))
        .unwrap_or_else(|e| panic!("deploy failed:\n{e}"));
    assert!(
        report
            .slurm_conf
            .contains(&format!("\nEpilog={EPILOG_PATH}\n"))
    );
    // The Epilog on every node that runs slurmd (root's, 0755), not on the controller.
    let script = epilog_script(&cluster).unwrap();
    for h in ["h02", "h03", "h04"] {
        let out = bed.exec_on(h, &["stat", "-c", "%a %U %G", EPILOG_PATH]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "755 root root",
            "{h}"
        );
        let out = bed.exec_on(h, &["cat", EPILOG_PATH]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), script, "{h}");
    }
    assert!(
        !bed.exec_on("h01", &["test", "-e", EPILOG_PATH])
            .status
            .success()
    );
    let m = fs_err::metadata(&dir).unwrap();
    assert_eq!((m.permissions().mode() & 0o7777, m.uid()), (0o755, 0));

    // `check slurm` with its part for job failures: `exit 3` and its bundle.
    let check_opts = CheckOptions {
        timeout: Duration::from_secs(60),
        token: "bed".into(),
    };
    let rep = bed
        .block_on(|| check(&exec, &cluster, &check_opts))
        .unwrap_or_else(|e| panic!("check failed: {e}"));
    let fc = rep.failure_capture.expect("the check of job failures ran");
    eprintln!("{fc:#?}");
    assert_eq!(fc.exit_code, "3:0");
    assert_eq!(fc.summary.job_id, fc.job_id);
    assert_eq!(fc.summary.node, fc.node);
    assert_eq!(fc.summary.exit_code, "3:0");
    assert_eq!(fc.summary.job_state, "FAILED");
    assert_eq!(fc.summary.user, "root");
    assert_eq!(fc.summary.partition, "debug");
    let files: Vec<&str> = fc.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(files, ["dmesg", "job", "slurmd.log", "summary"]);
    assert!(fc.files.iter().all(|f| f.bytes > 0), "{:?}", fc.files);
    // The check removes its own bundle.
    assert!(!dir.join(fc.job_id.to_string()).exists());

    // A job that succeeds leaves nothing.
    let sh = |cmd: &str| {
        let o = bed.exec_on("h01", &["sh", "-c", cmd]);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
    };
    let (ok, good) = sh("sbatch --parsable -w h02 -o /dev/null --wrap true");
    assert!(ok, "{good}");
    assert_eq!(ended(&bed, &good), "COMPLETED");
    assert_eq!(names(&dir), Vec::<String>::new());

    // A job failing on two nodes: a bundle per node, each naming its node.
    let (ok, bad) = sh("sbatch --parsable -N2 -w h03,h04 -o /dev/null --wrap 'srun false'");
    assert!(ok, "{bad}");
    assert_eq!(ended(&bed, &bad), "FAILED");
    assert_eq!(names(&dir), std::slice::from_ref(&bad));
    assert_eq!(names(&dir.join(&bad)), ["h03", "h04"]);
    for h in ["h03", "h04"] {
        let b = dir.join(&bad).join(h);
        assert_eq!(names(&b), ["dmesg", "job", "slurmd.log", "summary"]);
        let s = FailureSummary::parse(&fs_err::read_to_string(b.join("summary")).unwrap()).unwrap();
        assert_eq!(s.job_id.to_string(), bad);
        assert_eq!(s.node, h);
        assert_eq!(s.exit_code, "1:0");
        assert_eq!(s.fields["nodes"], "h[03-04]");
        // The tail of this node's own slurmd log (the bed's hosts each have their /var).
        let log = fs_err::read_to_string(b.join("slurmd.log")).unwrap();
        assert!(!log.is_empty() && log.lines().count() <= 20, "{log}");
        assert!(log.contains("slurmd"), "{log}");
        let job = fs_err::read_to_string(b.join("job")).unwrap();
        assert!(job.contains(&format!("JobId={bad}")), "{job}");
        assert!(!fs_err::read_to_string(b.join("dmesg")).unwrap().is_empty());
    }

    // A cancelled job keeps the exit code 0:0 it had when SLURM ended it: no bundle.
    let (ok, cancelled) = sh("sbatch --parsable -w h02 -o /dev/null --wrap 'sleep 120'");
    assert!(ok, "{cancelled}");
    for _ in 0..120 {
        if sh(&format!("squeue -h -j {cancelled} -o %T")).1 == "RUNNING" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(sh(&format!("scancel {cancelled}")).0);
    assert_eq!(ended(&bed, &cancelled), "CANCELLED");
    assert_eq!(names(&dir), std::slice::from_ref(&bad));

    // No node was drained by its Epilog.
    let sinfo = bed.exec_on("h01", &["sinfo", "-h", "-N", "-o", "%N %T"]);
    let sinfo = String::from_utf8_lossy(&sinfo.stdout);
    assert_eq!(sinfo.trim(), "h02 idle\nh03 idle\nh04 idle", "{sinfo}");

    // A second deploy finds the Epilog and the directory in place.
    let again = bed
        .block_on(|| deploy(&exec, &cluster, &secrets, &o))
        .unwrap_or_else(|e| panic!("second deploy failed:\n{e}"));
    assert_eq!(again.changed(), 0, "{:#?}", again.phases);
    assert!(again.restarted().is_empty(), "{:?}", again.restarted());
    bed.block_on(|| exec.close());
}
