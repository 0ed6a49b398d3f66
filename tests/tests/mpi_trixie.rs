//! `hpc_slurm::mpi` with Debian 13's Open MPI 5, in a trixie root made by mmdebstrap with
//! SLURM and the image's MPI packages ([`mpi::IMAGE_PACKAGES`]; cached under `/var/tmp`,
//! the root `mpi_pmix_sandbox.rs` uses): the image
//! script builds the check program there, Open MPI reads the rendered trixie settings
//! (`btl = self,sm,tcp`), and `mpirun` runs the program with them (3 ranks standing for two
//! nodes, so the ping-pong too). Bookworm's Open MPI is this machine's: see `mpi_local.rs`.
//!
//! Needs root, mmdebstrap and the Debian mirror for the first build: skips without them
//! outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::time::Duration;

use hpc_config::{Cluster, DebianRelease};
use hpc_slurm::mpi::{self, parse_mpi_output};
use hpc_tests::debian_chroot::{DebianChroot, SLURM_PACKAGES, Sandbox};

/// minimal.yaml with `mpi:` on trixie, the cluster network on the sandbox's `lo`.
fn cluster() -> Cluster {
    let path = hpc_tests::repo_root().join("examples/minimal.yaml");
    let mut text = fs_err::read_to_string(&path).unwrap();
    if !text.contains("\nmpi:") {
        text.push_str("\nmpi:\n  default: pmix\n");
    }
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    let mut c = hpc_config::load_str("minimal.yaml", &text, &env).unwrap();
    c.image.release = DebianRelease::Trixie;
    c.network.cidr = "127.0.0.0/8".parse().unwrap();
    c
}

/// Builds the program, shows what Open MPI read, runs it on all transports and on TCP
/// alone. Trixie's `mpirun` (PRRTE 3) crashes on MPMD command lines (`A : B`), so rank 0
/// stands for node `a` through a wrapper instead.
const SCRIPT: &str = r#"set -e
DESTDIR= sh /tmp/image-script.sh
ompi_info --all --parsable | grep -E '^mca:[a-z]+:[a-z]+:param:(btl|pml|btl_tcp_if_include|mtl):value:' | sed 's/^/info /'
cat >/tmp/as-node <<'WRAPPER'
#!/bin/sh
if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then n=a; else n=b; fi
HPC_UP_MPI_CHECK_NODE=$n exec /usr/local/libexec/hpc-up/mpi-check
WRAPPER
chmod 0755 /tmp/as-node
echo '=== all'
timeout 60 mpirun --oversubscribe --allow-run-as-root -np 3 /tmp/as-node
echo '=== tcp'
OMPI_MCA_btl=self,tcp timeout 60 mpirun --oversubscribe --allow-run-as-root -np 3 /tmp/as-node
"#;

#[test]
fn open_mpi_5_builds_and_runs_the_check_with_the_trixie_settings() {
    let packages: Vec<&str> = SLURM_PACKAGES
        .iter()
        .chain(mpi::IMAGE_PACKAGES)
        .copied()
        .collect();
    let Some(chroot) = DebianChroot::get("trixie", &packages).unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let ompi = chroot.version("openmpi-bin").unwrap_or_default();
    assert!(ompi.starts_with("5."), "openmpi-bin {ompi} in trixie");
    let content = mpi::render_mca_params(&cluster()).unwrap();
    let debian =
        fs_err::read_to_string(chroot.root().join("etc/openmpi/openmpi-mca-params.conf")).unwrap();
    assert!(
        content.starts_with(&debian),
        "the rendered file does not start with trixie's own"
    );
    let out = Sandbox::new(chroot.root())
        .hostname("cn1")
        .writable("/usr/local")
        .writable("/etc/openmpi")
        .file(mpi::MCA_PARAMS_PATH, content, 0o644, "root")
        .file("/tmp/image-script.sh", mpi::IMAGE_SCRIPT, 0o755, "root")
        .timeout(Duration::from_secs(180))
        .run(SCRIPT)
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    for want in [
        ":param:btl:value:self,sm,tcp",
        ":param:pml:value:ob1",
        ":param:btl_tcp_if_include:value:127.0.0.0/8",
        ":param:mtl:value:^ofi",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("info ") && l.ends_with(want)),
            "{want}: {stdout}"
        );
    }
    let (all, tcp) = stdout
        .split_once("=== all\n")
        .and_then(|(_, rest)| rest.split_once("=== tcp\n"))
        .unwrap_or_else(|| panic!("{stdout}"));
    for (what, part) in [("all transports", all), ("tcp alone", tcp)] {
        let o = parse_mpi_output(part).unwrap_or_else(|e| panic!("{what}: {e}: {part}"));
        assert_eq!(o.size, 3, "{what}");
        assert!(o.sum_ok() && o.missing_ranks().is_empty(), "{what}: {o:?}");
        assert!(
            o.library
                .as_deref()
                .is_some_and(|l| l.starts_with("Open MPI v5.")),
            "{what}: {o:?}"
        );
        let pp = o.pingpong.expect("ping-pong between a and b");
        assert_eq!((pp.from.as_str(), pp.to.as_str()), ("a", "b"), "{what}");
        assert!(
            pp.latency_us > 0.0 && pp.bandwidth_mbs > 0.0,
            "{what}: {pp:?}"
        );
    }
}
