//! `hpc_slurm::mpi` against Debian's real Open MPI on this machine: the image script builds
//! the check program with `mpicc`, `mpirun` runs it (2 and 3 ranks; with 3 ranks standing
//! for two nodes, the ping-pong too) and the parser reads what it printed; the rendered
//! `openmpi-mca-params.conf` starts with the installed Debian file and Open MPI reads its
//! settings (`ompi_info`), and a job runs with it, also over TCP alone on the interface it
//! names.
//!
//! Needs `openmpi-bin libopenmpi-dev libpmix-dev` (scripts/install-deps): skips without them
//! outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hpc_config::{Cluster, DebianRelease};
use hpc_slurm::mpi::{self, MpiOutput, parse_mpi_output};

const DEBIAN_PARAMS: &str = "/etc/openmpi/openmpi-mca-params.conf";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `true` (skip) outside CI when Open MPI is missing.
fn skip() -> bool {
    let present = ["mpicc", "mpirun", "ompi_info"].iter().all(|t| have(t));
    hpc_tests::require(
        present,
        "Open MPI (mpicc, mpirun, ompi_info)",
        "openmpi-bin, libopenmpi-dev and libpmix-dev (scripts/install-deps)",
    )
}

/// The image script run with `DESTDIR=dir`; returns the program.
fn build(dir: &Path) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", mpi::IMAGE_SCRIPT])
        .env("DESTDIR", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "image script: {out:?}");
    let prog = dir.join(mpi::CHECK_PROGRAM_PATH.trim_start_matches('/'));
    assert!(prog.is_file(), "{}", prog.display());
    prog
}

/// `mpirun` as root on this machine, with `env` and the MPMD `apps` (`(ranks, node name)`).
fn mpirun(prog: &Path, env: &[(&str, &str)], apps: &[(u32, Option<&str>)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "mpirun", "--oversubscribe", "--allow-run-as-root"]);
    for (i, (n, node)) in apps.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", &n.to_string()]);
        if let Some(node) = node {
            cmd.args(["-x", &format!("HPC_UP_MPI_CHECK_NODE={node}")]);
        }
        cmd.arg(prog);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn parsed(out: &Output) -> MpiOutput {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mpirun: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_mpi_output(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn hostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    name.split('.').next().unwrap_or_default().to_owned()
}

#[test]
fn the_image_script_builds_a_program_mpirun_runs() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prog = build(dir.path());
    let host = hostname();

    let two = parsed(&mpirun(&prog, &[], &[(2, None)]));
    assert_eq!(two.size, 2);
    assert!(two.sum_ok());
    assert_eq!((two.sum, two.expected), (1, 1));
    assert_eq!(two.ranks.values().collect::<Vec<_>>(), [&host, &host]);
    assert_eq!(two.pingpong, None, "one node: no ping-pong");
    assert!(
        two.library
            .as_deref()
            .is_some_and(|l| l.starts_with("Open MPI v")),
        "{:?}",
        two.library
    );

    // Rank 0 alone on "node a", two ranks on "node b": rank 1 is the ping-pong's peer.
    let three = parsed(&mpirun(&prog, &[], &[(1, Some("a")), (2, Some("b"))]));
    assert_eq!(three.size, 3);
    assert!(three.sum_ok());
    assert!(three.missing_ranks().is_empty());
    assert_eq!(three.ranks.values().collect::<Vec<_>>(), ["a", "b", "b"]);
    let pp = three.pingpong.expect("ping-pong between a and b");
    assert_eq!(
        (pp.from.as_str(), pp.peer_rank, pp.to.as_str()),
        ("a", 1, "b")
    );
    assert!(pp.latency_us > 0.0 && pp.bandwidth_mbs > 0.0, "{pp:?}");
}

/// minimal.yaml with `mpi:` on bookworm (this machine's release), the cluster network
/// replaced by `cidr`.
fn cluster(cidr: &str) -> Cluster {
    let path = hpc_tests::repo_root().join("examples/minimal.yaml");
    let mut text = fs_err::read_to_string(&path).unwrap();
    if !text.contains("\nmpi:") {
        text.push_str("\nmpi:\n  default: pmix\n");
    }
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    let mut c = hpc_config::load_str("minimal.yaml", &text, &env).unwrap();
    c.image.release = DebianRelease::Bookworm;
    c.network.cidr = cidr.parse().unwrap();
    c
}

/// `ompi_info`'s value of `key` (`mca:FRAMEWORK:COMPONENT:param:KEY:value:V`).
fn ompi_value(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let rest = l.strip_prefix("mca:")?;
        let (_, tail) = rest.split_once(&format!(":param:{key}:value:"))?;
        Some(tail.to_owned())
    })
}

#[test]
fn open_mpi_reads_the_rendered_settings() {
    if skip() {
        return;
    }
    let debian = fs_err::read_to_string(DEBIAN_PARAMS).unwrap();
    let content = mpi::render_mca_params(&cluster("127.0.0.0/8")).unwrap();
    assert!(
        content.starts_with(&debian),
        "the rendered file does not start with {DEBIAN_PARAMS} as installed"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openmpi-mca-params.conf");
    fs_err::write(&file, &content).unwrap();
    let file_env = file.display().to_string();
    let env = [("OMPI_MCA_mca_base_param_files", file_env.as_str())];

    let info = Command::new("ompi_info")
        .args(["--all", "--parsable"])
        .envs(env)
        .output()
        .unwrap();
    assert!(info.status.success(), "{info:?}");
    let info = String::from_utf8_lossy(&info.stdout);
    for (key, want) in [
        ("btl", "self,vader,tcp"),
        ("pml", "ob1"),
        ("btl_tcp_if_include", "127.0.0.0/8"),
        ("oob_tcp_if_include", "127.0.0.0/8"),
        // Debian's own settings, not overridden, still hold.
        ("mtl", "^ofi"),
        ("btl_base_warn_component_unused", "0"),
    ] {
        assert_eq!(ompi_value(&info, key).as_deref(), Some(want), "{key}");
    }

    let prog = build(dir.path());
    let apps = [(1, Some("a")), (2, Some("b"))];
    let with_file = parsed(&mpirun(&prog, &env, &apps));
    assert!(with_file.sum_ok() && with_file.pingpong.is_some());
    // TCP alone: the ping-pong goes over the interface btl_tcp_if_include names, and only
    // that one (a network that matches no interface would make Open MPI use all others).
    let tcp_env = [
        env[0],
        ("OMPI_MCA_btl", "self,tcp"),
        ("OMPI_MCA_btl_base_verbose", "30"),
    ];
    let out = mpirun(&prog, &tcp_env, &apps);
    let tcp = parsed(&out);
    assert!(tcp.sum_ok() && tcp.pingpong.is_some());
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let examined: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            l.split_once("btl:tcp: examining interface ")
                .map(|(_, i)| i.trim())
        })
        .collect();
    assert!(!examined.is_empty(), "{log}");
    assert!(examined.iter().all(|i| *i == "lo"), "{examined:?}");
}
