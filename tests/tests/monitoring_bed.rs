//! `hpc_monitor::phases` and `hpc_monitor::check_cluster` against Debian's real Prometheus
//! and node exporter on the SSH test bed: h01 runs Prometheus (and a node exporter), h02 a
//! node exporter; the bed's `systemctl` shim starts both from their real units and
//! `/etc/default` files. A second apply changes nothing; the check asks Prometheus's HTTP
//! API from the bed's ctl namespace (as hpc-up asks from the host) and `sinfo`-free (the
//! shim runs no timers, so the SLURM metrics timer is not deployed here: its script and
//! output are tested in `crates/hpc-monitor/tests`).
//!
//! Needs root, iproute2, OpenSSH, util-linux and `prometheus` + `prometheus-node-exporter`
//! (`scripts/install-deps`): skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use hpc_config::Cluster;
use hpc_remote::{Mode, apply_all};
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
    let ip = |n: &str| bed.host(n).unwrap().ip;
    let net = ip("h01").octets();
    let yaml = format!(
        "name: bed
libvirt:
  uri: qemu:///system
  domain-type: qemu
network:
  cidr: {}.{}.{}.0/24
  bridge: hpcbr-bed
  mode: isolated
  domain: bed.test
image:
  base: /nonexistent/base.qcow2
state-dir: {state}
controller:
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
  retention: 1d
  scrape-interval: 1s
",
        net[0],
        net[1],
        net[2],
        ip("h01"),
        ip("h02"),
        state = bed.state_dir().join("cluster").display(),
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

    let report = bed
        .block_on(|| hpc_monitor::check_cluster(&exec, &cluster))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert!(report.ok, "{:#?}\n{}", report.lines(), logs());
    let nodes: Vec<&str> = report.targets.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(nodes, ["h01", "h02"]);
    assert!(report.queries.iter().all(|q| q.ok));
    assert!(report.slurm.is_none());
}
