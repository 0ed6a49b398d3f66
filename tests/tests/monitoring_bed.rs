//! `hpc_monitor::phases` and `hpc_monitor::check_cluster` against Debian's real Prometheus
//! and node exporter on the SSH test bed: h01 runs Prometheus (and a node exporter), h02 a
//! node exporter; the bed's `systemctl` shim starts both from their real units and
//! `/etc/default` files. A second apply changes nothing; the check asks Prometheus's HTTP
//! API from the bed's ctl namespace (as hpc-up asks from the host). With SLURM (deployed by
//! `hpc_slurm::deploy`: munged, slurmctld, slurmd), the SLURM metrics service runs the real
//! script against the real `sinfo`/`squeue` and the check compares with `sinfo` over SSH;
//! the shim runs no timers, so that plan's timer step is left out there (the script is run
//! once by the plan's own `systemctl start` of the service).
//!
//! Needs root, iproute2, OpenSSH, util-linux and `prometheus` + `prometheus-node-exporter`
//! (`scripts/install-deps`): skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use hpc_config::Cluster;
use hpc_remote::{Mode, StepStatus, apply_all};
use hpc_tests::ssh_bed::SshBed;

fn bed() -> Option<SshBed> {
    let have = ["/usr/bin/prometheus", "/usr/bin/prometheus-node-exporter"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if hpc_tests::require(
        have,
        "prometheus and prometheus-node-exporter (scripts/install-deps)",
        "monitoring on the SSH test bed",
    ) {
        return None;
    }
    SshBed::start(2).unwrap_or_else(|e| panic!("SSH bed for monitoring: {e}"))
}

fn cluster(bed: &SshBed) -> Cluster {
    cluster_with(bed, "1d", "")
}

/// The bed's cluster with Prometheus's `retention` and `extra` at the end of its file.
fn cluster_with(bed: &SshBed, retention: &str, extra: &str) -> Cluster {
    let ip = |n: &str| bed.host(n).unwrap().ip;
    let yaml = format!(
        "{head}controller:
  nodes:
    - name: h01
      ip: {}
compute:
  - nodes:
      - name: h02
        ip: {}
monitoring:
  enabled: true
  server: h01
  retention: {retention}
  scrape-interval: 1s
{extra}",
        ip("h01"),
        ip("h02"),
        head = bed.cluster_head("bed", "hpcbr-bed", None),
    );
    hpc_config::load_str("bed.yaml", &yaml, &|_| None).unwrap_or_else(|e| panic!("{e:?}"))
}

fn journal(bed: &SshBed, host: &str, unit: &str) -> String {
    let out = bed.exec_on(host, &["journalctl", "-u", unit, "--no-pager"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn phases_deploy_prometheus_a_rerun_changes_nothing_and_the_check_passes() {
    let Some(bed) = bed() else { return };
    let cluster = cluster(&bed);
    let phases = hpc_monitor::phases(&cluster);
    assert_eq!(
        phases.iter().map(|p| p.name).collect::<Vec<_>>(),
        ["exporters", "prometheus"]
    );
    let exec = bed.executor("monitoring-bed", None);
    let logs = || {
        format!(
            "{}\n{}\n{}",
            journal(&bed, "h01", "prometheus"),
            journal(&bed, "h01", "prometheus-node-exporter"),
            journal(&bed, "h02", "prometheus-node-exporter")
        )
    };
    for round in 0..2 {
        for phase in &phases {
            let summary = bed.block_on(|| apply_all(&exec, &phase.hosts, Mode::APPLY));
            assert!(
                summary.is_success(),
                "{}: {summary}\n{}",
                phase.name,
                logs()
            );
            let changed: usize = summary
                .hosts
                .iter()
                .map(|(_, r)| r.as_ref().map_or(0, hpc_remote::HostReport::changed))
                .sum();
            if round == 0 {
                assert!(
                    changed > 0,
                    "{}: the first apply changed nothing",
                    phase.name
                );
            } else {
                assert_eq!(
                    changed, 0,
                    "{}: a second apply changed: {summary}",
                    phase.name
                );
            }
        }
    }
    // What the daemons were started with: the rendered arguments.
    let ps = bed.exec_on("h01", &["pgrep", "-a", "-x", "prometheus"]);
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        ps.contains("--storage.tsdb.retention.time=1d")
            && ps.contains("--web.listen-address=:9090"),
        "{ps}"
    );

    // `hpc-up plan`'s check mode on the deployed nodes: nothing to do
    for phase in &phases {
        let summary = bed.block_on(|| apply_all(&exec, &phase.hosts, Mode::CHECK_DIFF));
        assert!(summary.is_success(), "{}: {summary}", phase.name);
        for (host, r) in &summary.hosts {
            let r = r.as_ref().unwrap();
            assert_eq!(r.changed(), 0, "{host} {}: {r:?}", phase.name);
        }
    }
    // A new retention: Prometheus's arguments change and it restarts with them (and is
    // ready again); node exporters are left alone.
    let longer = hpc_monitor::phases(&cluster_with(&bed, "2d", ""));
    let summary = bed.block_on(|| apply_all(&exec, &longer[0].hosts, Mode::APPLY));
    assert!(summary.is_success(), "{summary}");
    assert!(
        summary
            .hosts
            .iter()
            .all(|(_, r)| r.as_ref().unwrap().changed() == 0)
    );
    let summary = bed.block_on(|| apply_all(&exec, &longer[1].hosts, Mode::APPLY));
    assert!(summary.is_success(), "{summary}\n{}", logs());
    let r = summary.hosts[0].1.as_ref().unwrap();
    let status = |id: &str| r.step(id).map(|s| s.status.clone());
    assert_eq!(status("prometheus-args"), Some(StepStatus::Changed));
    assert_eq!(status("prometheus.yml"), Some(StepStatus::Unchanged));
    assert_eq!(status("prometheus"), Some(StepStatus::Changed));
    assert_eq!(status("prometheus-ready"), Some(StepStatus::Unchanged));
    let ps = bed.exec_on("h01", &["pgrep", "-a", "-x", "prometheus"]);
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(ps.contains("--storage.tsdb.retention.time=2d"), "{ps}");

    let report = bed
        .block_on(|| hpc_monitor::check_cluster(&exec, &cluster))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert!(report.ok, "{:#?}\n{}", report.lines(), logs());
    let nodes: Vec<&str> = report.targets.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(nodes, ["h01", "h02"]);
    assert!(report.queries.iter().all(|q| q.ok));
    assert!(report.slurm.is_none());
}

#[test]
fn slurm_metrics_from_the_real_sinfo_agree_through_prometheus() {
    let have = ["munged", "slurmctld", "slurmd"]
        .iter()
        .all(|d| std::path::Path::new("/usr/sbin").join(d).exists());
    if hpc_tests::require(
        have,
        "munge, slurmctld and slurmd (scripts/install-deps)",
        "SLURM metrics on the SSH test bed",
    ) {
        return;
    }
    let Some(bed) = bed() else { return };
    let cluster = cluster_with(
        &bed,
        "1d",
        "slurm:\n  partitions:\n    - name: debug\n      nodes: [h02]\n      default: true\n",
    );
    assert_eq!(
        cluster
            .monitoring
            .as_ref()
            .unwrap()
            .slurm_metrics
            .as_ref()
            .map(ToString::to_string),
        Some("h01".to_owned())
    );
    let exec = bed.executor("monitoring-slurm-bed", None);
    let key: [u8; 64] = *b"0123456789abcdef0123456789ABCDEF-not-a-secret-but-64-bytes-long!";
    let secrets = hpc_slurm::Secrets {
        munge_key: Some(&key),
        db_password: None,
    };
    let opts = hpc_slurm::DeployOptions {
        wait_timeout: std::time::Duration::from_secs(60),
        ..hpc_slurm::DeployOptions::default()
    };
    bed.block_on(|| hpc_slurm::deploy(&exec, &cluster, &secrets, &opts))
        .unwrap_or_else(|e| panic!("SLURM deploy failed:\n{e}"));

    let mut phases = hpc_monitor::phases(&cluster);
    for p in &mut phases {
        for h in &mut p.hosts {
            // the shim runs services only: no timers
            h.steps.retain(|s| s.id != hpc_monitor::SLURM_METRICS_TIMER);
        }
    }
    let logs = || {
        format!(
            "{}\n{}\n{}",
            journal(&bed, "h01", "hpc-up-slurm-metrics"),
            journal(&bed, "h01", "prometheus"),
            journal(&bed, "h01", "prometheus-node-exporter"),
        )
    };
    for round in 0..2 {
        for phase in &phases {
            let summary = bed.block_on(|| apply_all(&exec, &phase.hosts, Mode::APPLY));
            assert!(
                summary.is_success(),
                "{}: {summary}\n{}",
                phase.name,
                logs()
            );
            let changed: usize = summary
                .hosts
                .iter()
                .map(|(_, r)| r.as_ref().map_or(0, hpc_remote::HostReport::changed))
                .sum();
            if round == 1 {
                assert_eq!(
                    changed, 0,
                    "{}: a second apply changed: {summary}",
                    phase.name
                );
            }
        }
    }
    // the real script's file, from the real sinfo/squeue
    let prom = bed.exec_on(
        "h01",
        &["cat", "/var/lib/prometheus/node-exporter/slurm.prom"],
    );
    let prom = String::from_utf8_lossy(&prom.stdout).into_owned();
    assert!(
        prom.contains("slurm_nodes{state=\"idle\"} 1\n"),
        "{prom}\n{}",
        logs()
    );
    assert!(
        prom.contains("slurm_partition_nodes{partition=\"debug\",state=\"idle\"} 1\n"),
        "{prom}"
    );

    let report = bed
        .block_on(|| hpc_monitor::check_cluster(&exec, &cluster))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert!(report.ok, "{:#?}\n{}", report.lines(), logs());
    let slurm = report.slurm.as_ref().unwrap();
    assert_eq!(slurm.node, "h01");
    let idle = slurm.states.iter().find(|s| s.state == "idle").unwrap();
    assert_eq!((idle.prometheus, idle.sinfo), (Some(1.0), 1));
}

#[test]
fn the_image_script_leaves_both_services_disabled_without_init_scripts() {
    // A bed host's /etc is an overlay of this machine's, where Debian's packages enabled
    // both services and installed their SysV scripts: the script (as the image build runs
    // it in the image's root) must leave them disabled and gone, in the host only.
    let Some(bed) = bed() else { return };
    let before = bed.exec_on("h01", &["systemctl", "is-enabled", "prometheus"]);
    let script = bed.exec_on("h01", &["sh", "-c", hpc_monitor::IMAGE_SCRIPT]);
    assert!(script.status.success(), "{script:?}");
    for unit in ["prometheus", "prometheus-node-exporter"] {
        let out = bed.exec_on("h01", &["systemctl", "is-enabled", unit]);
        assert!(!out.status.success(), "{unit} is still enabled: {out:?}");
        let init = format!("/etc/init.d/{unit}");
        let out = bed.exec_on("h01", &["test", "-e", init.as_str()]);
        assert!(!out.status.success(), "{init} is still there");
        let rc = format!("ls /etc/rc*.d | grep -x 'S..{unit}' || true");
        let out = bed.exec_on("h01", &["sh", "-c", rc.as_str()]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "",
            "{unit}'s rc links"
        );
    }
    // run twice (image builds may run it again): still fine
    let again = bed.exec_on("h01", &["sh", "-c", hpc_monitor::IMAGE_SCRIPT]);
    assert!(again.status.success(), "{again:?}");
    // the other host, and so this machine, still has them as they were
    let other = bed.exec_on("h02", &["systemctl", "is-enabled", "prometheus"]);
    assert_eq!(other.status.success(), before.status.success());
}
