//! SLURM 24.11 itself reads the `oci.conf` hpc-up renders for trixie: `scrun` (Debian 13's
//! `slurm-client`, in the cached trixie root of `hpc_tests::debian_chroot`) loads `oci.conf`
//! with the same parser as slurmstepd (`src/common/oci_config.c`) before anything else and
//! stops with `fatal` on a key it does not know or a set of `RunTime*` patterns that does not
//! fit together. 22.05 has no such tool: its slurmstepd reads the file when a step asks for
//! a container, which `oci_bed.rs` does through the SSH bed's real slurmd.
#![allow(clippy::unwrap_used)] // tests panic on failure

use hpc_config::DebianRelease;
use hpc_config::file::ContainerRuntime;
use hpc_slurm::oci::{OCI_CONF_PATH, render_oci_conf_for};
use hpc_tests::debian_chroot::{DebianChroot, SLURM_PACKAGES};

/// A slurm.conf scrun can read (it loads the cluster's configuration first).
const SLURM_CONF: &str = "ClusterName=oci\nSlurmctldHost=ctl\nNodeName=cn1 CPUs=1\nPartitionName=debug Nodes=cn1 Default=YES\n";

/// scrun's verbose output with `oci_conf` in place; `None`: skip (outside CI).
fn scrun_with(oci_conf: &str) -> Option<String> {
    let chroot = DebianChroot::get("trixie", &SLURM_PACKAGES)
        .unwrap_or_else(|e| panic!("trixie root: {e}"))?;
    let out = chroot
        .sandbox()
        .hostname("cn1")
        .host("10.0.0.1".parse().unwrap(), "ctl")
        .writable("/etc/slurm")
        .file("/etc/slurm/slurm.conf", SLURM_CONF, 0o644, "root")
        .file(OCI_CONF_PATH, oci_conf, 0o644, "root")
        .timeout(std::time::Duration::from_secs(60))
        .run("mkdir -p /tmp/scrun; SCRUN_STDERR_DEBUG=debug timeout 10 scrun --root=/tmp/scrun state none </dev/null 2>&1; echo \"exit=$?\"")
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn slurm_24_11_loads_the_rendered_oci_conf_for_both_runtimes() {
    for runtime in [ContainerRuntime::Crun, ContainerRuntime::Runc] {
        let conf = render_oci_conf_for(runtime, DebianRelease::Trixie);
        let Some(out) = scrun_with(&conf) else { return };
        assert!(
            out.contains("OCI container activated with run"),
            "{runtime:?}: scrun did not load oci.conf:\n{out}"
        );
        assert!(out.contains("oci.conf loaded"), "{out}");
        assert!(
            !out.contains("Could not parse") && !out.contains("unable to load oci.conf"),
            "{out}"
        );
    }
}

#[test]
fn slurm_24_11_refuses_what_it_does_not_know() {
    let conf = render_oci_conf_for(ContainerRuntime::Crun, DebianRelease::Trixie);
    let Some(out) = scrun_with(&format!("{conf}NoSuchKey=1\n")) else {
        return;
    };
    assert!(out.contains("unrecognized key: NoSuchKey"), "{out}");
    assert!(out.contains("Could not parse oci.conf"), "{out}");
    assert!(!out.contains("OCI container activated"), "{out}");
    // Create/Start beside Run: refused.
    let both = format!("{conf}RunTimeStart=\"crun start x\"\n");
    let out = scrun_with(&both).unwrap();
    assert!(out.contains("mutually exclusive"), "{out}");
}
