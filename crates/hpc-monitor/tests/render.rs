//! Snapshots of every rendered file, the plans' shape, and Prometheus's own tools on what
//! is rendered (`promtool check config`, `promtool check metrics`).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{fake_slurm, minimal_with, run_slurm_metrics, tools};
use hpc_remote::{RunWhen, StepKind};

fn all_files(c: &hpc_config::Cluster) -> String {
    hpc_monitor::files(c)
        .into_iter()
        .map(|(node, path, content)| format!("=== {node}:{path}\n{content}"))
        .collect()
}

#[test]
fn minimal_files() {
    let c = minimal_with("trixie", "");
    insta::assert_snapshot!(all_files(&c));
}

#[test]
fn releases_render_the_same_files() {
    // Both releases' packages read the same files with the same defaults (checked on
    // 2.42/1.5 and 2.53/1.9): the rendering does not depend on the release.
    assert_eq!(
        all_files(&minimal_with("bookworm", "")),
        all_files(&minimal_with("trixie", ""))
    );
}

#[test]
fn custom_ports_retention_and_server() {
    let c = minimal_with(
        "bookworm",
        "  server: cn2\n  port: 9191\n  node-exporter-port: 9200\n  retention: 30d\n  scrape-interval: 30s\n  slurm-metrics: false\n",
    );
    insta::assert_snapshot!(all_files(&c));
}

#[test]
fn without_monitoring_nothing() {
    let mut c = minimal_with("trixie", "");
    c.monitoring = None;
    assert!(hpc_monitor::files(&c).is_empty());
    assert!(hpc_monitor::phases(&c).is_empty());
    assert_eq!(hpc_monitor::render_prometheus_yml(&c), "");
}

#[test]
fn rendering_is_deterministic() {
    let c = minimal_with("trixie", "");
    assert_eq!(all_files(&c), all_files(&c.clone()));
}

fn ids(p: &hpc_remote::HostPlan) -> Vec<&str> {
    p.steps.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn phases_exporters_everywhere_then_prometheus_on_the_server() {
    let c = minimal_with("trixie", "");
    let phases = hpc_monitor::phases(&c);
    let names: Vec<_> = phases.iter().map(|p| p.name).collect();
    assert_eq!(names, ["exporters", "prometheus"]);
    let hosts: Vec<_> = phases[0].hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, ["ctl", "cn1", "cn2"]);
    assert_eq!(
        ids(phases[0].host("ctl").unwrap()),
        [
            "node-exporter-args",
            "textfile-dir",
            "prometheus-node-exporter",
            "slurm-metrics-script",
            "slurm-metrics-service-unit",
            "slurm-metrics-timer-unit",
            "daemon-reload",
            "slurm-metrics-now",
            "hpc-up-slurm-metrics.timer"
        ]
    );
    assert_eq!(
        ids(phases[0].host("cn1").unwrap()),
        [
            "node-exporter-args",
            "textfile-dir",
            "prometheus-node-exporter"
        ]
    );
    assert_eq!(phases[1].hosts.len(), 1);
    let server = &phases[1].hosts[0];
    assert_eq!(server.host, "ctl");
    assert_eq!(
        ids(server),
        [
            "prometheus.yml",
            "prometheus-args",
            "prometheus",
            "prometheus-ready"
        ]
    );
    // Every plan is one hpc-remote accepts: unique ids, triggers name earlier steps.
    for p in &phases {
        for h in &p.hosts {
            hpc_remote::validate(h).unwrap();
        }
    }
    // Services restart only on their own files; the readiness wait is a verify step.
    match &server.steps[2].kind {
        StepKind::Service(s) => {
            assert_eq!(s.name, "prometheus");
            assert_eq!(s.restart_on, ["prometheus.yml", "prometheus-args"]);
        }
        other => panic!("{other:?}"),
    }
    match &server.steps[3].kind {
        StepKind::Command(cmd) => {
            assert_eq!(cmd.when, RunWhen::Verify);
            assert_eq!(cmd.argv[0], "python3");
            assert!(cmd.argv[2].contains("http://127.0.0.1:9090/-/ready"));
        }
        other => panic!("{other:?}"),
    }
    // Nothing runs unconditionally: a second apply of an unchanged node changes nothing.
    for p in &phases {
        for h in &p.hosts {
            for s in &h.steps {
                if let StepKind::Command(cmd) = &s.kind {
                    assert_ne!(cmd.when, RunWhen::Always, "{}: {}", h.host, s.id);
                }
            }
        }
    }
}

#[test]
fn the_readiness_wait_is_valid_python() {
    let argv = hpc_monitor::ready_argv(9090);
    let out = Command::new("python3")
        .args([
            "-c",
            "import ast, sys; ast.parse(sys.argv[1])",
            argv[2].as_str(),
        ])
        .output();
    match out {
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            common::require(false, "python3", &e.to_string());
        }
    }
}

#[test]
fn scripts_are_posix_sh() {
    for (name, script) in [
        ("image script", hpc_monitor::IMAGE_SCRIPT),
        ("slurm metrics", hpc_monitor::SLURM_METRICS_SCRIPT),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sh");
        fs_err::write(&p, script).unwrap();
        for sh in ["sh", "dash"] {
            if let Ok(o) = Command::new(sh).arg("-n").arg(&p).output() {
                assert!(o.status.success(), "{name} ({sh}): {o:?}");
            }
        }
    }
}

#[test]
fn promtool_accepts_the_rendered_configuration() {
    let Some(t) = tools() else { return };
    for c in [
        minimal_with("trixie", ""),
        minimal_with("bookworm", "  port: 9191\n  scrape-interval: 5s\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prometheus.yml");
        fs_err::write(&p, hpc_monitor::render_prometheus_yml(&c)).unwrap();
        let out = Command::new(&t.promtool)
            .args(["check", "config"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

const SINFO: &str =
    "ctl debug idle\ncn1 debug idle\ncn1 long idle\ncn2 debug MIXED*\ncn3 long down~\n";
const SQUEUE: &str = "RUNNING debug\nPENDING long\nPENDING debug,long\n";

fn script_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("hpc-up-slurm-metrics");
    fs_err::write(&p, hpc_monitor::SLURM_METRICS_SCRIPT).unwrap();
    p
}

#[test]
fn slurm_metrics_output() {
    let dir = tempfile::tempdir().unwrap();
    let (sinfo, squeue) = fake_slurm(dir.path(), SINFO, SQUEUE);
    let text = run_slurm_metrics(&script_file(dir.path()), &sinfo, &squeue, dir.path()).unwrap();
    insta::assert_snapshot!(text);
    // readable by node exporter (it runs as `prometheus`); no temporary file left behind
    let meta = fs_err::metadata(dir.path().join("slurm.prom")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let left: Vec<_> = fs_err::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn slurm_metrics_with_no_jobs_still_has_every_series() {
    let dir = tempfile::tempdir().unwrap();
    let (sinfo, squeue) = fake_slurm(dir.path(), "cn1 debug idle\n", "");
    let text = run_slurm_metrics(&script_file(dir.path()), &sinfo, &squeue, dir.path()).unwrap();
    for series in hpc_monitor::SLURM_SERIES {
        assert!(text.contains(&format!("\n{series}")), "{series}:\n{text}");
    }
    assert!(text.contains("slurm_jobs{state=\"running\"} 0\n"), "{text}");
    assert!(text.contains("slurm_partition_jobs{partition=\"debug\",state=\"pending\"} 0\n"));
}

#[test]
fn slurm_metrics_keep_the_old_file_when_sinfo_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (sinfo, squeue) = fake_slurm(dir.path(), SINFO, SQUEUE);
    let script = script_file(dir.path());
    let before = run_slurm_metrics(&script, &sinfo, &squeue, dir.path()).unwrap();
    fs_err::write(
        &sinfo,
        "#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller' >&2\nexit 1\n",
    )
    .unwrap();
    let err = run_slurm_metrics(&script, &sinfo, &squeue, dir.path()).unwrap_err();
    assert!(err.contains("Unable to contact"), "{err}");
    assert_eq!(
        fs_err::read_to_string(dir.path().join("slurm.prom")).unwrap(),
        before
    );
    let n = fs_err::read_dir(dir.path()).unwrap().count();
    assert_eq!(n, 4, "only sinfo, squeue, the script and slurm.prom");
}

#[test]
fn slurm_metrics_under_mawk_and_gawk_agree() {
    // Debian's images have mawk; this machine may run gawk as `awk`.
    let dir = tempfile::tempdir().unwrap();
    let (sinfo, squeue) = fake_slurm(dir.path(), SINFO, SQUEUE);
    let mut outs = Vec::new();
    for awk in ["mawk", "gawk"] {
        let Ok(path) = Command::new("sh")
            .args(["-c", &format!("command -v {awk}")])
            .output()
        else {
            continue;
        };
        if !path.status.success() {
            continue;
        }
        let bin = dir.path().join(format!("bin-{awk}"));
        fs_err::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(
            String::from_utf8_lossy(&path.stdout).trim(),
            bin.join("awk"),
        )
        .unwrap();
        let out_dir = dir.path().join(format!("out-{awk}"));
        fs_err::create_dir_all(&out_dir).unwrap();
        let o = Command::new("sh")
            .arg(script_file(dir.path()))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("SINFO", &sinfo)
            .env("SQUEUE", &squeue)
            .env("HPC_SLURM_METRICS_DIR", &out_dir)
            .env("HPC_SLURM_METRICS_NOW", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{awk}: {o:?}");
        outs.push(fs_err::read_to_string(out_dir.join("slurm.prom")).unwrap());
    }
    assert!(!outs.is_empty());
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn promtool_accepts_the_slurm_metrics() {
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sinfo, squeue) = fake_slurm(dir.path(), SINFO, SQUEUE);
    run_slurm_metrics(&script_file(dir.path()), &sinfo, &squeue, dir.path()).unwrap();
    let out = Command::new(&t.promtool)
        .args(["check", "metrics"])
        .stdin(
            fs_err::File::open(dir.path().join("slurm.prom"))
                .unwrap()
                .into_parts()
                .0,
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
