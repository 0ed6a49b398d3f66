//! SLURM's PMIx plugin launching the MPI check program, under both releases' real SLURM and
//! Open MPI: SLURM 22.05 (`mpi_pmix_v4`) with Open MPI 4.1 from this machine (Debian 12), and
//! SLURM 24.11 (`mpi_pmix_v5`) with Open MPI 5.0 from a cached Debian 13 root holding SLURM
//! and the image's MPI packages ([`mpi::IMAGE_PACKAGES`]), each in a sandbox with a
//! one-node cluster (munged, slurmctld, slurmd on `cn1`, `MpiDefault=pmix`): the image
//! script builds the program, `srun --mpi=list` names pmix, and `srun --mpi=pmix -n 2` runs
//! the program (rank 0 standing for another node, so the ping-pong runs too), with the
//! release's rendered Open MPI settings. The SSH bed (`mpi_bed.rs`) covers two real nodes
//! on 22.05.
//!
//! Needs root; SLURM and Open MPI on this machine (scripts/install-deps); mmdebstrap and
//! deb.debian.org for the first build of the trixie root. Outside CI a missing piece skips,
//! in CI it fails.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use hpc_config::{Cluster, DebianRelease};
use hpc_slurm::RuntimePaths;
use hpc_slurm::mpi::{self, parse_mpi_output};
use hpc_tests::debian_chroot::{DebianChroot, SLURM_PACKAGES, Sandbox, installed_version};
use hpc_tests::require;

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs_err::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The packages of the trixie root: SLURM's and the image's MPI packages (`mpi_trixie.rs`
/// uses the same root).
fn trixie_packages() -> Vec<&'static str> {
    SLURM_PACKAGES
        .iter()
        .chain(mpi::IMAGE_PACKAGES)
        .copied()
        .collect()
}

/// The root holding `release`'s SLURM and Open MPI, or `None` (skip outside CI).
fn root(release: DebianRelease) -> Option<PathBuf> {
    let (root, slurm, ompi) = match release {
        DebianRelease::Bookworm => {
            if require(is_root(), "root", "the sandbox needs namespaces and mounts") {
                return None;
            }
            (PathBuf::from("/"), "22.05", "4.1")
        }
        DebianRelease::Trixie => {
            let chroot = DebianChroot::get(release.as_str(), &trixie_packages())
                .unwrap_or_else(|e| panic!("{e}"))?;
            (chroot.root().to_owned(), "24.11", "5.0")
        }
    };
    let v = |p: &str| installed_version(&root, p).unwrap_or_default();
    let complete = ["slurmctld", "slurmd", "slurm-client", "munge"]
        .iter()
        .chain(mpi::IMAGE_PACKAGES)
        .all(|p| installed_version(&root, p).is_some());
    if require(
        complete && v("slurmd").starts_with(slurm) && v("openmpi-bin").starts_with(ompi),
        &format!(
            "SLURM {slurm} and Open MPI {ompi} ({}) in {}",
            mpi::IMAGE_PACKAGES.join(", "),
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
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
NodeName=cn1 CPUs=2 RealMemory=100 State=UNKNOWN
PartitionName=debug Nodes=cn1 Default=YES MaxTime=INFINITE State=UP
",
        paths.slurmctld_pid_file, paths.slurmd_pid_file
    )
}

/// The cluster network on the sandbox's `lo`, so the rendered settings fit it.
fn cluster(release: DebianRelease) -> Cluster {
    let path = hpc_tests::repo_root().join("examples/minimal.yaml");
    let mut text = fs_err::read_to_string(&path).unwrap();
    if !text.contains("\nmpi:") {
        text.push_str("\nmpi:\n  default: pmix\n");
    }
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    let mut c = hpc_config::load_str("minimal.yaml", &text, &env).unwrap();
    c.image.release = release;
    c.network.cidr = "127.0.0.0/8".parse().unwrap();
    c
}

/// munged, slurmctld, slurmd; the image script; `srun --mpi=list`; the program under
/// `srun --mpi=pmix`, its output between `@@run` and `@@end`.
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
logs() { for f in /tmp/slurmctld.out /tmp/slurmd.out /var/log/slurm/*.log /tmp/srun.err; do echo "== $f"; tail -n 30 "$f"; done; }
DESTDIR= sh /tmp/image-script.sh || { echo "image script failed"; exit 92; }
cat >/tmp/as-node <<'WRAPPER'
#!/bin/sh
if [ "$SLURM_PROCID" = 0 ]; then n=a; else n=b; fi
HPC_UP_MPI_CHECK_NODE=$n exec /usr/local/libexec/hpc-up/mpi-check
WRAPPER
chmod 0755 /tmp/as-node
i=0
until [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; do
  i=$((i + 1)); [ "$i" -lt 600 ] || { echo "cn1 never idle: $(sinfo -h -o '%T %E' 2>&1)"; logs; exit 91; }
  sleep 0.1
done
echo "@@list $(srun --mpi=list 2>&1 | tr -s '\t\n ' ' ')"
echo "@@run"
timeout 90 srun --mpi=pmix -n 2 --kill-on-bad-exit=1 /tmp/as-node 2>/tmp/srun.err
echo "@@end $?"
logs
"#;

fn srun_pmix_runs_the_check(release: DebianRelease) {
    let Some(root) = root(release) else { return };
    let content = mpi::render_mca_params(&cluster(release)).unwrap();
    let mut sandbox = Sandbox::new(&root)
        .hostname("cn1")
        .host(Ipv4Addr::new(10, 99, 0, 1), "cn1")
        .timeout(Duration::from_secs(180));
    for d in [
        "/etc/slurm",
        "/var/lib/slurm",
        "/var/log/slurm",
        "/etc/munge",
        "/var/lib/munge",
        "/var/log/munge",
        "/etc/openmpi",
        "/usr/local",
    ] {
        sandbox = sandbox.writable(d);
    }
    let out = sandbox
        .file("/etc/slurm/slurm.conf", slurm_conf(release), 0o644, "root")
        .file(mpi::MCA_PARAMS_PATH, content, 0o644, "root")
        .file("/tmp/image-script.sh", mpi::IMAGE_SCRIPT, 0o755, "root")
        .run(SCRIPT)
        .unwrap_or_else(|e| panic!("{e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{release:?}: {}\n{text}", out.status);

    let list = text
        .lines()
        .find_map(|l| l.strip_prefix("@@list "))
        .unwrap_or_else(|| panic!("{release:?}: no @@list line\n{text}"));
    assert!(
        list.split_whitespace().any(|w| w == "pmix"),
        "{release:?}: srun --mpi=list: {list}"
    );
    let run = text
        .split_once("@@run\n")
        .and_then(|(_, rest)| rest.split_once("@@end "))
        .unwrap_or_else(|| panic!("{release:?}: no @@run … @@end\n{text}"));
    assert!(
        run.1.starts_with("0\n"),
        "{release:?}: srun exited with {}\n{text}",
        run.1.lines().next().unwrap_or_default()
    );
    let o = parse_mpi_output(run.0).unwrap_or_else(|e| panic!("{release:?}: {e}\n{text}"));
    assert_eq!(o.size, 2, "{text}");
    assert!(o.sum_ok() && o.missing_ranks().is_empty(), "{o:?}");
    let series = match release {
        DebianRelease::Bookworm => "Open MPI v4.1.",
        DebianRelease::Trixie => "Open MPI v5.0.",
    };
    assert!(
        o.library.as_deref().is_some_and(|l| l.starts_with(series)),
        "{o:?}"
    );
    let pp = o.pingpong.expect("ping-pong between a and b");
    assert_eq!((pp.from.as_str(), pp.to.as_str()), ("a", "b"));
}

#[test]
fn bookworm_srun_mpi_pmix_runs_the_check() {
    srun_pmix_runs_the_check(DebianRelease::Bookworm);
}

#[test]
fn trixie_srun_mpi_pmix_runs_the_check() {
    srun_pmix_runs_the_check(DebianRelease::Trixie);
}
