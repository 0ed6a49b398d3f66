//! MPI: the rendered Open MPI settings of both releases (snapshots), the layer's host steps,
//! and `check_mpi` over a scripted executor.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::sync::Mutex;

use hpc_config::DebianRelease;
use hpc_remote::{
    CommandOutput, Executor, HostError, HostPlan, HostReport, Mode, RunWhen, StepKind,
};
use hpc_slurm::mpi::{
    self, CHECK_PROGRAM_PATH, MCA_PARAMS_PATH, MpiCheckError, MpiCheckOptions, check_mpi,
};

/// An example with `mpi:` (default plugin `plugin`) and `image.release: release`.
fn load(name: &str, release: DebianRelease, plugin: Option<&str>) -> hpc_config::Cluster {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = fs_err::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut text: String = text
        .lines()
        .filter(|l| !l.starts_with("  release: "))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replacen(
            "\nimage:\n",
            &format!("\nimage:\n  release: {release}\n"),
            1,
        );
    let mut kept = String::new();
    let mut in_mpi = false;
    for l in text.lines() {
        if l.starts_with("mpi:") {
            in_mpi = true;
            continue;
        }
        if in_mpi && (l.starts_with(' ') || l.is_empty()) {
            continue;
        }
        in_mpi = false;
        kept.push_str(l);
        kept.push('\n');
    }
    text = kept;
    if let Some(p) = plugin {
        text.push_str(&format!("\nmpi:\n  default: {p}\n"));
    }
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    hpc_config::load_str(name, &text, &env).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn rendered(release: DebianRelease) -> String {
    let cluster = load("full-stack.yaml", release, Some("pmix"));
    let files = mpi::files(&cluster);
    let nodes: Vec<&str> = files.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(nodes, ["ctl", "cn01", "cn02", "cn03"]);
    assert!(files.iter().all(|(_, p, _)| p == MCA_PARAMS_PATH));
    assert!(
        files.windows(2).all(|w| w[0].2 == w[1].2),
        "one file for all"
    );
    let content = &files[0].2;
    // Only hpc-up's block is shown; Debian's part is checked byte for byte elsewhere.
    let block = content
        .find("# --- hpc-up")
        .map(|i| &content[i..])
        .unwrap_or_else(|| panic!("no hpc-up block in {content}"));
    format!("=== {MCA_PARAMS_PATH} (after Debian's content)\n{block}")
}

#[test]
fn mca_params_bookworm() {
    insta::assert_snapshot!(rendered(DebianRelease::Bookworm));
}

#[test]
fn mca_params_trixie() {
    insta::assert_snapshot!(rendered(DebianRelease::Trixie));
}

#[test]
fn debian_content_comes_first_unchanged() {
    let cluster = load("minimal.yaml", DebianRelease::Bookworm, Some("pmix"));
    let content = mpi::render_mca_params(&cluster).expect("mpi on");
    let head = content
        .find("\n\n# --- hpc-up")
        .map(|i| &content[..i])
        .expect("the block");
    assert!(head.starts_with("#\n# Copyright (c) 2004-2005 The Trustees of Indiana"));
    assert!(head.ends_with("\nosc = ^ucx,pt2pt"));
    assert!(content.ends_with('\n'));
    assert!(
        content.contains("btl_tcp_if_include = 10.77.0.0/24\n"),
        "{content}"
    );
}

#[test]
fn nothing_without_mpi() {
    let cluster = load("full-stack.yaml", DebianRelease::Bookworm, None);
    assert_eq!(mpi::render_mca_params(&cluster), None);
    assert!(mpi::files(&cluster).is_empty());
    assert!(mpi::phases(&cluster).is_empty());
}

fn verify_argv(plan: &HostPlan) -> Option<Vec<String>> {
    plan.steps.iter().find_map(|s| match &s.kind {
        StepKind::Command(c) if s.id == "srun-mpi-list" => {
            assert_eq!(c.when, RunWhen::Verify);
            Some(c.argv.clone())
        }
        _ => None,
    })
}

#[test]
fn phases_write_the_file_everywhere_and_verify_on_the_controller() {
    let cluster = load("full-stack.yaml", DebianRelease::Trixie, Some("pmix"));
    let phases = mpi::phases(&cluster);
    assert_eq!(phases.len(), 1);
    assert_eq!(phases[0].name, "open-mpi");
    let content = mpi::render_mca_params(&cluster).expect("mpi on");
    for plan in &phases[0].hosts {
        match &plan.steps[0].kind {
            StepKind::File(f) => {
                assert_eq!(f.path, MCA_PARAMS_PATH);
                assert_eq!(f.content, content.as_bytes());
                assert_eq!(f.mode, 0o644);
                assert!(!f.secret);
            }
            other => panic!("{other:?}"),
        }
        let verify = verify_argv(plan);
        assert_eq!(verify.is_some(), plan.host == "ctl", "{}", plan.host);
        // Nothing restarts or runs on a change: a second apply changes nothing.
        assert!(plan.steps.iter().all(|s| match &s.kind {
            StepKind::File(_) => true,
            StepKind::Command(c) => c.when == RunWhen::Verify,
            _ => false,
        }));
    }
    let ctl = phases[0].host("ctl").expect("controller plan");
    let argv = verify_argv(ctl).expect("verify step");
    assert_eq!(&argv[..2], ["sh", "-c"]);
    assert_eq!(&argv[3..], ["sh", "pmix"]);

    let pmi2 = load("full-stack.yaml", DebianRelease::Trixie, Some("pmi2"));
    let argv = verify_argv(mpi::phases(&pmi2)[0].host("ctl").expect("ctl")).expect("verify");
    assert_eq!(&argv[3..], ["sh", "pmix", "pmi2"]);
}

/// Answers `srun` with a canned result and records the commands.
struct Canned {
    status: Option<u32>,
    stdout: &'static str,
    stderr: &'static str,
    seen: Mutex<Vec<(String, Vec<String>)>>,
}

impl Canned {
    fn new(status: Option<u32>, stdout: &'static str, stderr: &'static str) -> Self {
        Self {
            status,
            stdout,
            stderr,
            seen: Mutex::new(Vec::new()),
        }
    }
}

impl Executor for Canned {
    async fn apply_host(&self, plan: &HostPlan, _mode: Mode) -> Result<HostReport, HostError> {
        panic!("no plans in a check: {plan:?}")
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        self.seen
            .lock()
            .expect("lock")
            .push((host.to_owned(), argv.to_vec()));
        Ok(CommandOutput {
            status: self.status,
            stdout: self.stdout.as_bytes().to_vec(),
            stderr: self.stderr.as_bytes().to_vec(),
        })
    }
}

fn run_check(exec: &Canned, cluster: &hpc_config::Cluster) -> Result<mpi::MpiCheck, MpiCheckError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(check_mpi(exec, cluster, &MpiCheckOptions::default()))
}

const THREE: &str = "mpi-check 1
library Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022
rank 0 of 3 on cn01
rank 1 of 3 on cn02
rank 2 of 3 on cn03
allreduce sum=3 expected=3 ok
pingpong 0 cn01 1 cn02
latency-us 250.5
bandwidth-mbs 120.25
";

#[test]
fn check_runs_srun_with_pmix_on_every_compute_node() {
    let cluster = load("full-stack.yaml", DebianRelease::Bookworm, Some("pmix"));
    let exec = Canned::new(Some(0), THREE, "");
    let r = run_check(&exec, &cluster).expect("check");
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.nodes, ["cn01", "cn02", "cn03"]);
    assert_eq!(r.ranks, 3);
    assert_eq!(r.between, Some(("cn01".into(), "cn02".into())));
    assert_eq!(r.latency_us, Some(250.5));
    assert_eq!(r.bandwidth_mbs, Some(120.25));
    let seen = exec.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "ctl");
    assert_eq!(
        seen[0].1,
        [
            "timeout",
            "120",
            "srun",
            "--mpi=pmix",
            "-p",
            "batch",
            "-N",
            "3",
            "-w",
            "cn[01-03]",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            CHECK_PROGRAM_PATH
        ]
    );
    assert_eq!(
        r.lines(),
        [
            "srun --mpi=pmix in partition batch: 3 ranks on cn[01-03] (1 per node), Open MPI v4.1.4",
            "allreduce of the rank numbers: ok",
            "cn01 <-> cn02: latency 250.5 µs, bandwidth 120.2 MB/s",
            "MPI: ok",
        ]
    );
}

#[test]
fn a_node_without_its_rank_and_a_wrong_sum_are_problems() {
    let cluster = load("full-stack.yaml", DebianRelease::Bookworm, Some("pmix"));
    let out = "mpi-check 1\nrank 0 of 3 on cn01\nrank 1 of 3 on cn01\nrank 2 of 3 on cn03\nallreduce sum=2 expected=3 wrong\n";
    let exec = Canned::new(
        Some(1),
        out,
        "srun: error: cn01: task 0: Exited with exit code 1",
    );
    let r = run_check(&exec, &cluster).expect("a report");
    assert!(!r.ok);
    assert!(!r.sum_ok);
    assert_eq!(
        r.problems,
        [
            "`timeout 120 srun --mpi=pmix -p batch -N 3 -w cn[01-03] --ntasks-per-node=1 --kill-on-bad-exit=1 /usr/local/libexec/hpc-up/mpi-check` exited with 1: srun: error: cn01: task 0: Exited with exit code 1",
            "cn01 ran 2 ranks, 1 asked for",
            "cn02 ran 0 ranks, 1 asked for",
            "the allreduce of the rank numbers gave 2, expected 3",
        ]
    );
    assert_eq!(r.lines().last().map(String::as_str), Some("MPI: FAILED"));
}

#[test]
fn srun_failing_before_the_program_quotes_its_stderr() {
    let cluster = load("full-stack.yaml", DebianRelease::Bookworm, Some("pmix"));
    let exec = Canned::new(
        Some(1),
        "",
        "srun: error: mpi/pmix_v4: pmixp_lib_init: cannot open libpmix.so\n",
    );
    let e = run_check(&exec, &cluster).expect_err("fails");
    assert!(matches!(e, MpiCheckError::Srun { .. }), "{e:?}");
    assert!(
        e.to_string().ends_with(
            "exited with 1: srun: error: mpi/pmix_v4: pmixp_lib_init: cannot open libpmix.so"
        ),
        "{e}"
    );
}

#[test]
fn one_compute_node_measures_no_latency() {
    let cluster = load("full-stack.yaml", DebianRelease::Bookworm, Some("pmix"));
    let mut one = cluster.clone();
    if let Some(s) = one.slurm.as_mut() {
        s.partitions[0].nodes.truncate(1);
    }
    let exec = Canned::new(
        Some(0),
        "mpi-check 1\nrank 0 of 1 on cn01\nallreduce sum=0 expected=0 ok\npingpong none\n",
        "",
    );
    let r = run_check(&exec, &one).expect("check");
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.latency_us, None);
    assert!(
        r.lines()
            .contains(&"latency and bandwidth: not measured (one node)".to_owned())
    );
}

#[test]
fn nothing_to_check_without_mpi() {
    let cluster = load("full-stack.yaml", DebianRelease::Bookworm, None);
    let exec = Canned::new(Some(0), THREE, "");
    assert!(matches!(
        run_check(&exec, &cluster),
        Err(MpiCheckError::Nothing(_))
    ));
}
