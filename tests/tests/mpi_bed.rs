//! `hpc_slurm::mpi` on the SSH test bed with real SLURM: h01 is the controller, h02 and h03
//! run jobs. Each host builds the check program with [`mpi::IMAGE_SCRIPT`] (in its private
//! `/usr`, as the image build would), SLURM is deployed with `MpiDefault=pmix`, the MPI
//! layer's phases are applied (twice: the second changes nothing) and [`check_mpi`] runs the
//! program with `srun --mpi=pmix` across both compute nodes: SLURM's `mpi_pmix` plugin and
//! Debian's Open MPI over TCP between two network namespaces.
//!
//! Needs root, iproute2, OpenSSH, util-linux, SLURM and munge, and `openmpi-bin
//! libopenmpi-dev libpmix-dev` (scripts/install-deps): skips without them outside CI, fails
//! in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::time::Duration;

use hpc_config::Cluster;
use hpc_remote::{Mode, apply_all};
use hpc_slurm::mpi::{self, MpiCheckError, MpiCheckOptions, check_mpi};
use hpc_slurm::{DeployOptions, Secrets, deploy};
use hpc_tests::ssh_bed::{BedOptions, SshBed};

const KEY: [u8; 64] = *b"0123456789abcdef0123456789ABCDEF-not-a-secret-but-64-bytes-long!";

fn bed() -> Option<SshBed> {
    let have = [
        "/usr/sbin/munged",
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/bin/mpicc",
    ]
    .iter()
    .all(|p| std::path::Path::new(p).exists());
    if hpc_tests::require(
        have,
        "munge, slurmctld, slurmd, openmpi-bin, libopenmpi-dev and libpmix-dev (scripts/install-deps)",
        "MPI with SLURM on the SSH test bed",
    ) {
        return None;
    }
    SshBed::start_with(
        3,
        BedOptions {
            private_usr: true,
            ..BedOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("SSH bed for MPI: {e}"))
}

fn cluster(bed: &SshBed) -> Cluster {
    let ip = |n: &str| bed.host(n).unwrap().ip;
    let yaml = format!(
        "{head}controller:
  nodes:
    - name: h01
      ip: {}
compute:
  - name: h{{index:02}}
    count: 2
    first-index: 2
    first-ip: {}
slurm:
  partitions:
    - name: debug
      nodes: [\"h[02-03]\"]
      default: true
mpi:
  default: pmix
",
        ip("h01"),
        ip("h02"),
        head = bed.cluster_head("mpibed", "hpcbr-mpi", Some("bookworm")),
    );
    hpc_config::load_str("mpibed.yaml", &yaml, &|_| None).unwrap()
}

#[test]
fn srun_mpi_pmix_runs_the_check_program_across_two_nodes() {
    let Some(bed) = bed() else { return };
    let cluster = cluster(&bed);
    for h in ["h01", "h02", "h03"] {
        let out = bed.exec_on(h, &["sh", "-c", mpi::IMAGE_SCRIPT]);
        assert!(out.status.success(), "image script on {h}: {out:?}");
    }
    let exec = bed.executor("mpi-bed", None);
    let secrets = Secrets {
        munge_key: Some(&KEY),
        db_password: None,
    };
    let opts = DeployOptions {
        wait_timeout: Duration::from_secs(60),
        ..DeployOptions::default()
    };
    let report = bed
        .block_on(|| deploy(&exec, &cluster, &secrets, &opts))
        .unwrap_or_else(|e| panic!("deploy failed:\n{e}"));
    assert!(report.slurm_conf.contains("MpiDefault=pmix\n"));

    // The MPI layer, twice: the second apply changes nothing.
    let phases = mpi::phases(&cluster);
    assert_eq!(phases.len(), 1);
    for (round, want_changed) in [(1, true), (2, false)] {
        let summary = bed.block_on(|| apply_all(&exec, &phases[0].hosts, Mode::APPLY));
        let mut changed = 0;
        for (host, r) in &summary.hosts {
            let r = r
                .as_ref()
                .unwrap_or_else(|e| panic!("round {round} on {host}: {e}"));
            assert_eq!(r.failed(), 0, "round {round} on {host}: {r:#?}");
            changed += r.changed();
        }
        assert_eq!(changed > 0, want_changed, "round {round}: {summary:#?}");
    }
    let on_h02 = bed.exec_on("h02", &["cat", mpi::MCA_PARAMS_PATH]);
    assert_eq!(
        String::from_utf8_lossy(&on_h02.stdout),
        mpi::render_mca_params(&cluster).unwrap()
    );

    let check_opts = MpiCheckOptions {
        timeout: Duration::from_secs(120),
        tasks_per_node: 1,
    };
    let check = bed
        .block_on(|| check_mpi(&exec, &cluster, &check_opts))
        .unwrap_or_else(|e| panic!("check_mpi: {e}"));
    for l in check.lines() {
        eprintln!("{l}");
    }
    assert!(check.ok, "{check:#?}");
    assert_eq!(check.nodes, ["h02", "h03"]);
    assert_eq!(check.ranks, 2);
    assert!(check.sum_ok);
    assert_eq!(check.between, Some(("h02".into(), "h03".into())));
    assert!(check.latency_us.is_some_and(|l| l > 0.0), "{check:?}");
    assert!(check.bandwidth_mbs.is_some_and(|b| b > 0.0), "{check:?}");
    assert!(
        check
            .library
            .as_deref()
            .is_some_and(|l| l.starts_with("Open MPI v")),
        "{check:?}"
    );

    // Without the program on h03 the job fails, and the error quotes what srun said.
    let rm = bed.exec_on("h03", &["rm", "-f", mpi::CHECK_PROGRAM_PATH]);
    assert!(rm.status.success(), "{rm:?}");
    let short = MpiCheckOptions {
        timeout: Duration::from_secs(30),
        tasks_per_node: 1,
    };
    let err = bed
        .block_on(|| check_mpi(&exec, &cluster, &short))
        .expect_err("h03 has no program");
    eprintln!("{err}");
    match &err {
        MpiCheckError::Srun { node, stderr, .. } => {
            assert_eq!(node, "h01");
            // slurmstepd's own line (`execve(): <path>: No such file or directory`) does
            // not always reach srun before the step is torn down; srun's line about the
            // task always does (exit code 2: the launch failed on h03).
            assert!(
                stderr.contains(mpi::CHECK_PROGRAM_PATH)
                    || stderr.contains("h03: task 1: Exited with exit code 2"),
                "{err}"
            );
        }
        other => panic!("expected srun to fail, got: {other}"),
    }
    bed.block_on(|| exec.close());
}
