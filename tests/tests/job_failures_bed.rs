//! The job-failure Epilog under both releases' real slurmd: SLURM 22.05 from this machine
//! (Debian 12) and SLURM 24.11 from the cached Debian 13 root (`hpc_tests::debian_chroot`),
//! each in a sandbox holding a one-node cluster (munged, slurmctld and slurmd on `cn1`).
//! A job that exits 3 must leave its bundle with the exit code slurmd hands the Epilog
//! (`SLURM_JOB_EXIT_CODE2`: the contract `hpc_slurm`'s Epilog relies on, read from SLURM's
//! source, proven here per release), a job that succeeds none, and the node must stay idle
//! (a failing Epilog drains it). The SSH bed (`slurm_bed.rs`) covers deployment and
//! `check slurm` on 22.05.
//!
//! Needs root; SLURM 22.05 on this machine; mmdebstrap and deb.debian.org for the first build
//! of the trixie root. Outside CI a missing piece skips, in CI it fails.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use hpc_config::{DebianRelease, JobFailures};
use hpc_slurm::{EPILOG_PATH, FailureSummary, RuntimePaths, render_epilog};
use hpc_tests::debian_chroot::{DebianChroot, SLURM_PACKAGES, Sandbox, installed_version};
use hpc_tests::require;

const DIR: &str = "/srv/job-failures";

/// slurm.conf's Epilog here: keeps the environment slurmd gave it, then runs hpc-up's.
const WRAPPER: &str = "/etc/slurm/epilog-wrapper";

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs_err::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The root holding `release`'s SLURM, or `None` (skip outside CI).
fn root(release: DebianRelease) -> Option<PathBuf> {
    let (root, series) = match release {
        DebianRelease::Bookworm => {
            if require(is_root(), "root", "the sandbox needs namespaces and mounts") {
                return None;
            }
            (PathBuf::from("/"), "22.05")
        }
        DebianRelease::Trixie => {
            let chroot = DebianChroot::get(release.as_str(), &SLURM_PACKAGES)
                .unwrap_or_else(|e| panic!("{e}"))?;
            (chroot.root().to_owned(), "24.11")
        }
    };
    let version = installed_version(&root, "slurmd").unwrap_or_default();
    let complete = ["slurmctld", "slurmd", "slurm-client", "munge"]
        .iter()
        .all(|p| installed_version(&root, p).is_some());
    if require(
        complete && version.starts_with(series),
        &format!(
            "SLURM {series} (slurmctld, slurmd, slurm-client, munge) in {}",
            root.display()
        ),
        "scripts/install-deps installs Debian 12's on this machine",
    ) {
        return None;
    }
    Some(root)
}

fn slurm_conf(release: DebianRelease) -> String {
    let paths = RuntimePaths::for_release(release);
    format!(
        "ClusterName=sandbox
SlurmctldHost=cn1(10.99.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile={}
SlurmdPidFile={}
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
Epilog={WRAPPER}
ReturnToService=2
NodeName=cn1 CPUs=1 RealMemory=100 State=UNKNOWN
PartitionName=debug Nodes=cn1 Default=YES MaxTime=INFINITE State=UP
",
        paths.slurmctld_pid_file, paths.slurmd_pid_file
    )
}

/// munged with a fresh key, slurmctld as its unit's user, slurmd; two jobs; what came of
/// them as `@@` lines.
const SCRIPT: &str = r#"
set -u
head -c 1024 /dev/urandom >/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
setpriv --reuid=munge --regid=munge --init-groups munged || { echo "munged did not start"; exit 90; }
install -d -o slurm -g slurm -m 0755 /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/slurmctld
setpriv --reuid=slurm --regid=slurm --init-groups slurmctld -D -i >/tmp/slurmctld.out 2>&1 &
slurmd -D >/tmp/slurmd.out 2>&1 &
logs() { for f in /tmp/slurmctld.out /tmp/slurmd.out /var/log/slurm/*.log; do echo "== $f"; tail -n 30 "$f"; done; }
i=0
until [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; do
  i=$((i + 1)); [ "$i" -lt 600 ] || { echo "cn1 never idle: $(sinfo -h -o '%T %E' 2>&1)"; logs; exit 91; }
  sleep 0.1
done
state() { scontrol show job -o "$1" | tr ' ' '\n' | sed -n 's/^JobState=//p'; }
ended() {
  i=0
  while :; do
    s=$(state "$1")
    case $s in PENDING|CONFIGURING|RUNNING|COMPLETING|'') ;; *) echo "$s"; return 0 ;; esac
    i=$((i + 1)); [ "$i" -lt 600 ] || { echo "never ended: $s"; return 0; }
    sleep 0.1
  done
}
good=$(sbatch --parsable -o /dev/null --wrap true)
bad=$(sbatch --parsable -o /dev/null --wrap 'exit 3')
echo "@@good $good $(ended "$good")"
echo "@@bad $bad $(ended "$bad")"
echo "@@node $(sinfo -h -o %T)"
echo "@@env $(sed -n 's/^SLURM_JOB_EXIT_CODE2=//p' "/tmp/epilog-env.$bad") $(sed -n 's/^SLURM_JOB_EXIT_CODE2=//p' "/tmp/epilog-env.$good")"
echo "@@bundles $(cd /srv/job-failures && find . -mindepth 2 -maxdepth 2 | sort | tr '\n' ' ')"
for f in summary slurmd.log dmesg job; do
  echo "@@size $f $(wc -c <"/srv/job-failures/$bad/cn1/$f")"
done
echo "@@summary"
cat "/srv/job-failures/$bad/cn1/summary"
echo "@@end"
logs
"#;

fn epilog_runs(release: DebianRelease) {
    let Some(root) = root(release) else { return };
    let failures = JobFailures {
        dir: DIR.to_owned(),
        host_dir: None,
        log_lines: 10,
    };
    let mut sandbox = Sandbox::new(&root)
        .hostname("cn1")
        .host(Ipv4Addr::new(10, 99, 0, 1), "cn1")
        .timeout(Duration::from_secs(120));
    for d in [
        "/etc/slurm",
        "/var/lib/slurm",
        "/var/log/slurm",
        "/etc/munge",
        "/var/lib/munge",
        "/var/log/munge",
        "/srv",
    ] {
        sandbox = sandbox.writable(d);
    }
    let sandbox = sandbox
        .file("/etc/slurm/slurm.conf", slurm_conf(release), 0o644, "root")
        .file(EPILOG_PATH, render_epilog(&failures), 0o755, "root")
        .file(
            WRAPPER,
            format!("#!/bin/sh\nenv >/tmp/epilog-env.$SLURM_JOB_ID\nexec {EPILOG_PATH}\n"),
            0o755,
            "root",
        )
        .file(&format!("{DIR}/.keep"), "", 0o644, "root");
    let out = sandbox.run(SCRIPT).unwrap_or_else(|e| panic!("{e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{release:?}: {}\n{text}", out.status);
    let line = |tag: &str| -> Vec<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("@@{tag} ")))
            .unwrap_or_else(|| panic!("{release:?}: no @@{tag} line:\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let good = line("good");
    let bad = line("bad");
    assert_eq!(good[1], "COMPLETED", "{text}");
    assert_eq!(bad[1], "FAILED", "{text}");
    assert_eq!(
        line("node"),
        ["idle"],
        "a drained node: the Epilog failed\n{text}"
    );
    // The contract: slurmd gives its Epilog the job's exit code.
    assert_eq!(
        line("env"),
        ["3:0", "0:0"],
        "SLURM_JOB_EXIT_CODE2 of both jobs\n{text}"
    );
    // Only the failed job has a bundle.
    assert_eq!(line("bundles"), [format!("./{}/cn1", bad[0])], "{text}");
    for f in ["summary", "slurmd.log", "dmesg", "job"] {
        let size = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("@@size {f} ")))
            .unwrap_or("0");
        assert_ne!(size.trim(), "0", "{release:?}: {f} is empty\n{text}");
    }
    let summary = text
        .split("@@summary\n")
        .nth(1)
        .and_then(|s| s.split("@@end").next())
        .unwrap();
    let s = FailureSummary::parse(summary).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s.job_id.to_string(), bad[0]);
    assert_eq!(s.node, "cn1");
    assert_eq!(s.user, "root");
    assert_eq!(s.partition, "debug");
    // Straight from slurmd's environment (SLURM_JOB_EXIT_CODE2).
    assert_eq!(s.exit_code, "3:0", "{text}");
    assert_eq!(s.job_state, "FAILED");
}

#[test]
fn bookworm_slurmd_runs_the_epilog_with_the_exit_code() {
    epilog_runs(DebianRelease::Bookworm);
}

#[test]
fn trixie_slurmd_runs_the_epilog_with_the_exit_code() {
    epilog_runs(DebianRelease::Trixie);
}
