//! Shared test helpers: clusters with monitoring, and Debian's Prometheus binaries.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `examples/minimal.yaml` with a `monitoring:` section (`extra` lines indented under it)
/// and `release`.
pub fn minimal_with(release: &str, extra: &str) -> hpc_config::Cluster {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yaml");
    let text = fs_err::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("  release: "))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.replacen(
        "\nimage:\n",
        &format!("\nimage:\n  release: {release}\n"),
        1,
    );
    let text = format!("{text}\nmonitoring:\n  enabled: true\n{extra}");
    let env = |var: &str| (var == "HOME").then(|| "/home/user".to_owned());
    hpc_config::load_str("minimal.yaml", &text, &env).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Whether this run is CI's (where every component must be present).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `true` when the caller should skip: `component` is missing outside CI. In CI a missing
/// component fails the test (as `hpc_tests::require` does).
pub fn require(present: bool, component: &str, why: &str) -> bool {
    if present {
        return false;
    }
    assert!(!in_ci(), "{component} is required in CI but missing: {why}");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIP (not CI): {component} missing: {why}");
    }
    true
}

/// Debian's binaries: `promtool`, `prometheus`, `prometheus-node-exporter`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub promtool: PathBuf,
    pub prometheus: PathBuf,
    pub node_exporter: PathBuf,
}

const CACHE: &str = "/var/tmp/hpc-monitor-debs";

fn installed() -> Option<Tools> {
    let t = Tools {
        promtool: "/usr/bin/promtool".into(),
        prometheus: "/usr/bin/prometheus".into(),
        node_exporter: "/usr/bin/prometheus-node-exporter".into(),
    };
    [&t.promtool, &t.prometheus, &t.node_exporter]
        .iter()
        .all(|p| p.is_file())
        .then_some(t)
}

fn cached(dir: &Path) -> Option<Tools> {
    let t = Tools {
        promtool: dir.join("usr/bin/promtool"),
        prometheus: dir.join("usr/bin/prometheus"),
        node_exporter: dir.join("usr/bin/prometheus-node-exporter"),
    };
    [&t.promtool, &t.prometheus, &t.node_exporter]
        .iter()
        .all(|p| p.is_file())
        .then_some(t)
}

/// The installed binaries, or this machine's release's `.deb`s unpacked (never installed:
/// installing `prometheus` could start it) under `/var/tmp/hpc-monitor-debs`, fetched once
/// with `apt-get download`. `Err` says why neither worked.
fn find_or_fetch() -> Result<Tools, String> {
    if let Some(t) = installed() {
        return Ok(t);
    }
    let cache = Path::new(CACHE);
    if let Some(t) = cached(cache) {
        return Ok(t);
    }
    let tmp = PathBuf::from(format!("{CACHE}.tmp.{}", std::process::id()));
    let _ = fs_err::remove_dir_all(&tmp);
    fs_err::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let pkgs = ["prometheus", "prometheus-node-exporter"];
    // trixie splits promtool out of prometheus; bookworm ships it inside
    let with_promtool = run(Command::new("apt-get")
        .arg("download")
        .args(pkgs)
        .arg("promtool")
        .current_dir(&tmp));
    if with_promtool.is_err() {
        run(Command::new("apt-get")
            .arg("download")
            .args(pkgs)
            .current_dir(&tmp))?;
    }
    let root = tmp.join("root");
    for e in fs_err::read_dir(&tmp).map_err(|e| e.to_string())? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            run(Command::new("dpkg").arg("-x").arg(&p).arg(&root))?;
        }
    }
    // another test process may have made it meanwhile: theirs is as good
    if fs_err::rename(&root, cache).is_err() && cached(cache).is_none() {
        return Err(format!("could not move {} to {CACHE}", root.display()));
    }
    let _ = fs_err::remove_dir_all(&tmp);
    cached(cache).ok_or_else(|| format!("{CACHE} lacks the binaries"))
}

/// Debian's Prometheus binaries, or `None` (outside CI) to skip.
pub fn tools() -> Option<Tools> {
    static TOOLS: std::sync::Mutex<Option<Result<Tools, String>>> = std::sync::Mutex::new(None);
    let mut g = TOOLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let r = g.get_or_insert_with(find_or_fetch).clone();
    match r {
        Ok(t) => Some(t),
        Err(why) => {
            require(
                false,
                "Debian's prometheus and prometheus-node-exporter",
                &why,
            );
            None
        }
    }
}

/// Fakes of `sinfo` and `squeue` (they stand in for slurmctld only: the script, its
/// parsing and its output are real) in `dir`, printing `nodes` and `jobs`.
pub fn fake_slurm(dir: &Path, nodes: &str, jobs: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let mk = |name: &str, out: &str| {
        let p = dir.join(name);
        fs_err::write(&p, format!("#!/bin/sh\ncat <<'EOF'\n{out}EOF\n")).unwrap();
        fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    (mk("sinfo", nodes), mk("squeue", jobs))
}

/// Runs the SLURM metrics script into `textfile_dir` with its clock at 1700000000 (see
/// [`run_slurm_metrics_now`]); its stderr on failure.
pub fn run_slurm_metrics(
    script: &Path,
    sinfo: &Path,
    squeue: &Path,
    textfile_dir: &Path,
) -> Result<String, String> {
    run_slurm_metrics_now(script, sinfo, squeue, textfile_dir, Some("1700000000"))
}

/// Runs the SLURM metrics script into `textfile_dir`, its clock `now` (`None`: `date`).
pub fn run_slurm_metrics_now(
    script: &Path,
    sinfo: &Path,
    squeue: &Path,
    textfile_dir: &Path,
    now: Option<&str>,
) -> Result<String, String> {
    let mut cmd = Command::new("sh");
    cmd.arg(script)
        .env("SINFO", sinfo)
        .env("SQUEUE", squeue)
        .env("HPC_SLURM_METRICS_DIR", textfile_dir);
    match now {
        Some(now) => cmd.env("HPC_SLURM_METRICS_NOW", now),
        None => cmd.env_remove("HPC_SLURM_METRICS_NOW"),
    };
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(fs_err::read_to_string(textfile_dir.join("slurm.prom")).unwrap())
}
