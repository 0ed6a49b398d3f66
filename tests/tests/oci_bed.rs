//! Containers in jobs through the real SLURM 22.05 daemons of the SSH test bed: the
//! containers layer (`hpc_slurm::oci::phases`: `oci.conf`, the runtime's state directory,
//! the bundles directory, `<runtime> --version`) applied over SSH twice (the second changes
//! nothing), then `hpc_slurm::oci::check_containers`: `srun --container=<bundle>` on the
//! compute node, submitted on the controller, run by the bed's real slurmstepd with our
//! `oci.conf` and the real crun or runc. The step ran in the bundle when it printed the bundle's
//! marker and trixie's os-release (the bed is bookworm).
//!
//! What the bed cannot show: the job's cgroup. Its hosts share this machine's hybrid cgroup
//! tree (no systemd, so SLURM runs without cgroup constraints: `proctrack/linuxproc`, no job
//! cgroups), and crun refuses to run at all on a hybrid host ("cgroups in hybrid mode not
//! supported"), while slurmstepd fails on a cgroup v2 tree without systemd. So on the compute
//! host the runtime alone sees a cgroup v2 tree, as on the guests: `/usr/bin/<runtime>` is
//! bind-mounted (in that host's mount namespace only) with a wrapper that mounts one in a
//! mount namespace of its own and runs the real runtime. The cgroup placement is proven on cgroup v2 by
//! `oci_bundle.rs` and on the VMs by `hpc-up check containers`.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::path::{Path, PathBuf};
use std::time::Duration;

use hpc_config::DebianRelease;
use hpc_config::file::ContainerRuntime;
use hpc_image::{BundleSpec, build_bundle};
use hpc_slurm::{DeployOptions, NoObserver, Secrets, deploy};
use hpc_tests::require;
use hpc_tests::ssh_bed::SshBed;

const KEY: [u8; 64] = *b"0123456789abcdef0123456789ABCDEF-not-a-secret-but-64-bytes-long!";

fn have(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

/// The trixie bundle `oci_bundle.rs` builds (the same inputs: cached by key).
fn built_bundle(runtime: ContainerRuntime) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    if require(
        fs_err::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
        "root",
        "mmdebstrap --mode=root",
    ) || require(have("mmdebstrap"), "mmdebstrap", "builds the bundle")
        || require(
            have(runtime.as_str()),
            runtime.as_str(),
            "runs the bundle (scripts/install-deps)",
        )
    {
        return None;
    }
    let spec = BundleSpec {
        name: "oci-test".into(),
        release: DebianRelease::Trixie,
        mirror: std::env::var("HPC_UP_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".into()),
        packages: Vec::new(),
    };
    let dir =
        PathBuf::from(std::env::var("HPC_UP_CHROOT_CACHE").unwrap_or_else(|_| "/var/tmp".into()))
            .join("hpc-up-bundles");
    let out = build_bundle(&spec, &dir, false, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    Some(out.path().to_path_buf())
}

fn cluster(bed: &SshBed, share: &Path, runtime: ContainerRuntime) -> hpc_config::Cluster {
    let ip = |n: &str| bed.host(n).unwrap().ip;
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
    count: 1
    first-index: 2
    first-ip: {}
slurm:
  partitions:
    - name: debug
      nodes: [\"h02\"]
      default: true
containers:
  runtime: {runtime}
  bundles: {share}/containers
  images:
    - name: oci-test
      release: trixie
",
        ip("h01"),
        ip("h02"),
        head = bed.cluster_head("bed", "hpcbr-bed", Some("bookworm")),
        share = share.display(),
        runtime = runtime.as_str(),
    );
    hpc_config::load_str("bed.yaml", &yaml, &|_| None).unwrap()
}

/// A copy of the built bundle in the bed's share (runc refuses a rootfs behind a symlink,
/// and slurmstepd names the rootfs through the `--container` path).
fn bed_bundle(built: &Path, at: &Path) {
    fs_err::create_dir_all(at.parent().unwrap()).unwrap();
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(built)
        .arg(at)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn srun_container_runs_the_step_in_the_bundle_with_crun() {
    srun_container_runs_the_step_in_the_bundle(ContainerRuntime::Crun);
}

#[test]
fn srun_container_runs_the_step_in_the_bundle_with_runc() {
    srun_container_runs_the_step_in_the_bundle(ContainerRuntime::Runc);
}

/// One bed at a time: the bed hosts share this machine's cgroup v1 hierarchies, and both
/// tests' slurmstepd would put job 1 of node h02 at the same path
/// (`/sys/fs/cgroup/freezer/slurm_h02/uid_0/job_1`); run side by side, one step's cgroup
/// was removed under the other ("proctrack_g_add: Bad address" in CI).
static ONE_BED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn srun_container_runs_the_step_in_the_bundle(runtime: ContainerRuntime) {
    let _one = ONE_BED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let rt = runtime.as_str();
    let Some(built) = built_bundle(runtime) else {
        return;
    };
    let Some(bed) = SshBed::with_daemons(
        2,
        &["munged", "slurmctld", "slurmd"],
        "munge, slurmctld and slurmd (scripts/install-deps)",
        "containers on the SSH test bed",
    ) else {
        return;
    };
    let share = bed.state_dir().join("shared");
    let cluster = cluster(&bed, &share, runtime);
    bed_bundle(&built, &share.join("containers/oci-test"));
    let exec = bed.executor("oci-bed", None);
    let secrets = Secrets {
        munge_key: Some(&KEY),
        db_password: None,
    };
    let opts = DeployOptions {
        wait_timeout: Duration::from_secs(60),
        ..DeployOptions::default()
    };
    bed.block_on(|| deploy(&exec, &cluster, &secrets, &opts))
        .unwrap_or_else(|e| panic!("SLURM deploy failed:\n{e}"));

    // The containers layer, twice: the second apply changes nothing.
    let phases = hpc_slurm::oci::phases(&cluster);
    for round in 0..2 {
        let reports = bed
            .block_on(|| hpc_remote::run_phases(&exec, &phases, &NoObserver))
            .unwrap_or_else(|e| panic!("containers layer failed:\n{e}"));
        let changed: usize = reports.iter().map(hpc_remote::PhaseReport::changed).sum();
        if round == 0 {
            assert!(changed > 0, "the first apply writes oci.conf");
        } else {
            assert_eq!(changed, 0, "second apply: {reports:?}");
        }
    }
    let conf = bed.exec_on("h02", &["cat", hpc_slurm::oci::OCI_CONF_PATH]);
    assert_eq!(
        String::from_utf8_lossy(&conf.stdout),
        hpc_slurm::oci::render_oci_conf(&cluster)
    );

    // The runtime sees a cgroup v2 tree only, as on the guests (see the module docs): in
    // h02's own mount namespace, /usr/bin/<runtime> is a wrapper that mounts one in a mount
    // namespace of its own and runs the real runtime (copied aside); slurmd and slurmstepd
    // keep theirs.
    let bin = format!("/usr/bin/{rt}");
    let real = bed.state_dir().join(format!("{rt}.real"));
    fs_err::copy(&bin, &real).unwrap();
    let wrapper = bed.state_dir().join(format!("{rt}-wrapper"));
    fs_err::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare --mount --propagation private /bin/sh -c 'mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"' {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    fs_err::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bound = bed.exec_on(
        "h02",
        &["mount", "--bind", &wrapper.display().to_string(), &bin],
    );
    assert!(bound.status.success(), "{bound:?}");
    let report = bed
        .block_on(|| {
            hpc_slurm::oci::check_containers(&exec, &cluster, None, Duration::from_secs(60))
        })
        .unwrap_or_else(|e| panic!("check could not run: {e}"));
    #[allow(clippy::print_stderr)] // the check's own lines, in the test's log
    for l in report.lines() {
        eprintln!("{l}");
    }
    let node = &report.nodes[0];
    assert_eq!(node.node, "h02");
    assert!(node.ran && node.job_id.is_some(), "{node:?}");
    assert!(node.marker_ok, "{node:?}");
    assert_eq!(node.release_seen.as_deref(), Some("trixie"), "{node:?}");
    assert_eq!(node.host_release.as_deref(), Some("bookworm"), "{node:?}");
    let key = fs_err::read_to_string(built.join("rootfs/etc/hpc-up-bundle")).unwrap();
    assert_eq!(node.bundle_key.as_deref(), key.lines().nth(1), "{node:?}");

    // A bundle that is not there: the check says how to build it.
    let missing = cluster_without_bundle(&cluster);
    let err = bed
        .block_on(|| {
            hpc_slurm::oci::check_containers(
                &exec,
                &missing,
                Some("absent"),
                Duration::from_secs(60),
            )
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("hpc-up container build <file> absent"),
        "{err}"
    );
}

/// `cluster` with a second image that was never built.
fn cluster_without_bundle(cluster: &hpc_config::Cluster) -> hpc_config::Cluster {
    let mut c = cluster.clone();
    let containers = c.containers.as_mut().unwrap();
    let mut absent = containers.images[0].clone();
    absent.name = "absent".parse().unwrap();
    containers.images.push(absent);
    c
}
