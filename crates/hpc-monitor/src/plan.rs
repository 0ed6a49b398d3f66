//! The deployment as host plans: phase `exporters` (node exporter on every node, and the
//! SLURM metrics timer on the SLURM metrics node), then phase `prometheus` (the server).
//! Every service restarts only when one of its own files changed in the same run, so
//! applying an unchanged plan again changes nothing.

use hpc_config::Cluster;
use hpc_remote::{EnsureDirectory, EnsureFile, EnsureService, HostPlan, Owner, Phase, RunCommand};

use crate::render::{
    NODE_EXPORTER_DEFAULTS_PATH, PROMETHEUS_DEFAULTS_PATH, PROMETHEUS_YML_PATH,
    SLURM_METRICS_SCRIPT_PATH, SLURM_METRICS_SERVICE, SLURM_METRICS_TIMER, TEXTFILE_DIR, UNIT_DIR,
    monitor_files,
};

/// The phase that starts node exporter on every node.
pub const EXPORTERS_PHASE: &str = "exporters";
/// The phase that starts Prometheus on the server.
pub const PROMETHEUS_PHASE: &str = "prometheus";
/// How long the `prometheus-ready` step waits for Prometheus's `/-/ready`, in seconds
/// (it replays its write-ahead log first).
pub const READY_WAIT_SECS: u32 = 60;

fn root() -> Owner {
    Owner::new("root", "root")
}

/// The step id of each file the plans write (unique within a host).
fn file_id(path: &str) -> &'static str {
    match path {
        NODE_EXPORTER_DEFAULTS_PATH => "node-exporter-args",
        PROMETHEUS_DEFAULTS_PATH => "prometheus-args",
        PROMETHEUS_YML_PATH => "prometheus.yml",
        SLURM_METRICS_SCRIPT_PATH => "slurm-metrics-script",
        p if p.ends_with(SLURM_METRICS_TIMER) => "slurm-metrics-timer-unit",
        _ => "slurm-metrics-service-unit",
    }
}

/// The command that waits up to [`READY_WAIT_SECS`] for `http://127.0.0.1:<port>/-/ready`
/// (python3, which every image has; no curl there).
pub fn ready_argv(port: u16) -> Vec<String> {
    let code = format!(
        "import sys, time, urllib.request\n\
         url = 'http://127.0.0.1:{port}/-/ready'\n\
         end = time.monotonic() + {READY_WAIT_SECS}\n\
         err = None\n\
         while time.monotonic() < end:\n\
         \x20   try:\n\
         \x20       with urllib.request.urlopen(url, timeout=5) as r:\n\
         \x20           if r.status == 200:\n\
         \x20               sys.exit(0)\n\
         \x20   except Exception as e:\n\
         \x20       err = e\n\
         \x20   time.sleep(1)\n\
         sys.exit(f'Prometheus is not ready at {{url}} after {READY_WAIT_SECS} s: {{err}}')\n"
    );
    vec!["python3".to_owned(), "-c".to_owned(), code]
}

/// The monitoring phases of `cluster`, in order (empty without monitoring; a phase with no
/// hosts is left out).
///
/// `exporters`, every node: `/etc/default/prometheus-node-exporter`, the textfile directory,
/// `prometheus-node-exporter` enabled and started (restarted when its file changed); on the
/// SLURM metrics node also the script, its service and timer units, `systemctl
/// daemon-reload` and one run of the service when they changed, and the timer enabled and
/// started. `prometheus`, on the server: `prometheus.yml` and `/etc/default/prometheus`,
/// `prometheus` enabled and started (restarted when one of them changed), and a check that
/// waits until Prometheus says it is ready.
pub fn phases(cluster: &Cluster) -> Vec<Phase> {
    let Some(m) = &cluster.monitoring else {
        return Vec::new();
    };
    let files = monitor_files(cluster);
    let file_step = |plan: HostPlan, node: &str, path: &str| -> HostPlan {
        match files.iter().find(|f| f.node == node && f.path == path) {
            Some(f) => plan.step(
                file_id(path),
                EnsureFile::new(f.path.as_str(), f.content.as_bytes(), f.mode).owner(root()),
            ),
            None => plan,
        }
    };
    let mut exporters = Vec::new();
    let mut server = Vec::new();
    for n in &cluster.nodes {
        let node = n.name.as_str();
        let mut p = file_step(HostPlan::new(node), node, NODE_EXPORTER_DEFAULTS_PATH)
            .step(
                "textfile-dir",
                EnsureDirectory::new(TEXTFILE_DIR, 0o755).owner(root()),
            )
            .step(
                "prometheus-node-exporter",
                EnsureService::started("prometheus-node-exporter")
                    .restart_on([file_id(NODE_EXPORTER_DEFAULTS_PATH)]),
            );
        if m.slurm_metrics.as_ref() == Some(&n.name) {
            let service = format!("{UNIT_DIR}/{SLURM_METRICS_SERVICE}");
            let timer = format!("{UNIT_DIR}/{SLURM_METRICS_TIMER}");
            p = file_step(p, node, SLURM_METRICS_SCRIPT_PATH);
            p = file_step(p, node, &service);
            p = file_step(p, node, &timer);
            let units = [file_id(&service), file_id(&timer)];
            let all = [file_id(SLURM_METRICS_SCRIPT_PATH), units[0], units[1]];
            let run_now = format!(
                "systemctl start {SLURM_METRICS_SERVICE} || {{ rm -f {SLURM_METRICS_SCRIPT_PATH}; exit 1; }}"
            );
            p = p
                .step(
                    "daemon-reload",
                    RunCommand::new(["systemctl", "daemon-reload"]).when_changed(units),
                )
                // One run now: the metrics exist before the first tick, and a script that
                // cannot read SLURM fails the deployment here, with its error. A failed run
                // removes the script, so the next apply writes it again and retries.
                .step(
                    "slurm-metrics-now",
                    RunCommand::new(["sh", "-c", run_now.as_str()]).when_changed(all),
                )
                .step(
                    SLURM_METRICS_TIMER,
                    EnsureService::started(SLURM_METRICS_TIMER).restart_on(units),
                );
        }
        exporters.push(p);
        if m.server == n.name {
            let mut p = file_step(HostPlan::new(node), node, PROMETHEUS_YML_PATH);
            p = file_step(p, node, PROMETHEUS_DEFAULTS_PATH);
            p = p
                .step(
                    "prometheus",
                    EnsureService::started("prometheus").restart_on([
                        file_id(PROMETHEUS_YML_PATH),
                        file_id(PROMETHEUS_DEFAULTS_PATH),
                    ]),
                )
                .step(
                    "prometheus-ready",
                    RunCommand::new(ready_argv(m.port)).verify(),
                );
            server.push(p);
        }
    }
    [(EXPORTERS_PHASE, exporters), (PROMETHEUS_PHASE, server)]
        .into_iter()
        .filter(|(_, hosts)| !hosts.is_empty())
        .map(|(name, hosts)| Phase::new(name, hosts))
        .collect()
}
