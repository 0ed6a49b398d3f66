//! SLURM 24.11 runs a job step in a container with the `oci.conf` and `config.json` hpc-up
//! makes for trixie: slurmctld, slurmd and `srun --container` from a cached Debian 13 root
//! with crun (`hpc_tests::debian_chroot`), in one sandbox (one host, `cn1`). This is 24.11's
//! own slurmstepd editing the bundle's `config.json` (its spool directory bound on
//! `/var/run/slurm`, the job's environment without `SLURM_CONF`, as `EnvExclude` says) and
//! running `RunTimeRun` as rendered.
//!
//! The sandbox cannot hold the built bundle (its root is the cached root), so the bundle's
//! root filesystem is the sandbox's own root: this test is about 24.11 and the runtime
//! accepting the files (the step is PID 1 of its own PID namespace with its own `/tmp`);
//! `oci_bundle.rs` and `oci_bed.rs` prove that a step runs in the built root. As in `oci_bed.rs`, crun alone sees a cgroup v2 tree
//! (this machine's hybrid tree makes crun refuse to run; slurmd stays on the sandbox's v1).
#![allow(clippy::unwrap_used)] // tests panic on failure

use hpc_config::DebianRelease;
use hpc_config::file::ContainerRuntime;
use hpc_image::BundleSpec;
use hpc_slurm::oci::{OCI_CONF_PATH, render_oci_conf_for};
use hpc_tests::debian_chroot::DebianChroot;

const PACKAGES: [&str; 4] = ["slurmctld", "slurmd", "slurm-client", "crun"];

const SLURM_CONF: &str = "ClusterName=oci
SlurmctldHost=cn1
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/tmp/slurmctld.log
SlurmdLogFile=/tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
ReturnToService=2
MpiDefault=none
NodeName=cn1 CPUs=1 RealMemory=100 State=UNKNOWN
PartitionName=debug Nodes=cn1 Default=YES State=UP
";

const SCRIPT: &str = r#"
head -c 1024 /dev/urandom >/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
setpriv --reuid=munge --regid=munge --init-groups munged || exit 90
cp /usr/bin/crun /tmp/crun.real
cat >/tmp/crun-wrapper <<'WRAP'
#!/bin/sh
# crun in a mount namespace of its own where / is a mount point (the sandbox is a chroot)
# and /sys/fs/cgroup a cgroup v2 tree.
exec unshare --mount --propagation unchanged /bin/sh -c 'mkdir -p /tmp/newroot && mount --rbind / /tmp/newroot && mount -t cgroup2 none /tmp/newroot/sys/fs/cgroup && exec chroot /tmp/newroot "$0" "$@"' /tmp/crun.real "$@"
WRAP
chmod 755 /tmp/crun-wrapper
mount --bind /tmp/crun-wrapper /usr/bin/crun || exit 91
mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
# The bundle's rootfs: this root, on a mount of its own (a runtime pivots into it).
mkdir -p /tmp/rootfs && mount --rbind / /tmp/rootfs || exit 95
slurmctld -i || { cat /tmp/slurmctld.log; exit 92; }
slurmd || { cat /tmp/slurmd.log; exit 93; }
i=0
until sinfo -h -o %T 2>/dev/null | grep -q idle; do
  sleep 0.2; i=$((i + 1))
  if [ "$i" -gt 150 ]; then sinfo; cat /tmp/slurmctld.log /tmp/slurmd.log; exit 94; fi
done
timeout 30 srun --container=/tmp/bundle /bin/sh -c 'echo "job=$SLURM_JOB_ID pid=$$"; test -e /tmp/outside && echo host-tmp; test -d /var/run/slurm && echo spool-bound; echo "conf=${SLURM_CONF:-unset}"; touch /etc/x 2>/dev/null && echo rw || echo ro'
echo "srun=$?"
grep -iE 'error|container|oci' /tmp/slurmd.log | tail -n 20
"#;

#[test]
fn slurm_24_11_runs_a_step_in_the_bundle_with_crun() {
    let Some(chroot) =
        DebianChroot::get("trixie", &PACKAGES).unwrap_or_else(|e| panic!("trixie root: {e}"))
    else {
        return;
    };
    let spec = BundleSpec {
        name: "oci-trixie".into(),
        release: DebianRelease::Trixie,
        mirror: "http://deb.debian.org/debian".into(),
        packages: Vec::new(),
    };
    // The bundle's config.json with the sandbox's root (mounted at /tmp/rootfs) as its rootfs.
    let mut config: serde_json::Value = serde_json::from_str(&spec.config_json()).unwrap();
    config["root"]["path"] = "/tmp/rootfs".into();
    let out = chroot
        .sandbox()
        .hostname("cn1")
        .host("10.0.0.1".parse().unwrap(), "cn1")
        .writable("/etc/slurm")
        .writable("/etc/munge")
        .writable("/var/lib")
        .writable("/var/log")
        .file("/etc/slurm/slurm.conf", SLURM_CONF, 0o644, "root")
        .file(
            OCI_CONF_PATH,
            render_oci_conf_for(ContainerRuntime::Crun, DebianRelease::Trixie),
            0o644,
            "root",
        )
        .file("/tmp/outside", "", 0o644, "root")
        .file(
            "/tmp/bundle/config.json",
            serde_json::to_string_pretty(&config).unwrap(),
            0o644,
            "root",
        )
        .timeout(std::time::Duration::from_secs(100))
        .run(SCRIPT)
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("srun=0"), "{text}");
    // PID 1 of its own PID namespace, its own /tmp: a container.
    assert!(text.contains("job=1 pid=1\n"), "{text}");
    assert!(!text.contains("host-tmp"), "{text}");
    // 24.11 bound its spool directory (MountSpoolDir's default) into the read-only root.
    assert!(text.contains("spool-bound"), "{text}");
    assert!(text.contains("conf=unset"), "EnvExclude: {text}");
    assert!(text.contains("\nro\n"), "{text}");
}
