//! The real daemons on loopback: two Debian node exporters (one with the SLURM metrics
//! script's output in its textfile directory) scraped by Debian's Prometheus with the
//! rendered configuration (loopback addresses, a 1 s interval), and `check_with` — the HTTP
//! and parsing half of `check_cluster` — against them. `sinfo` on the SLURM metrics node is
//! a canned executor answer, and the script reads fakes of `sinfo`/`squeue`: they stand in
//! for slurmctld only. Processes are started here and killed by their own handles.
#![cfg(feature = "check")]
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{fake_slurm, run_slurm_metrics_now, tools};
use hpc_monitor::{CheckTarget, ScrapeTarget, check_with, render_prometheus_yml_for};
use hpc_remote::{CommandOutput, Executor, HostError, HostPlan, HostReport, Mode};

/// A child killed (by its own PID) when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(cmd: &mut Command, log: &Path) -> Daemon {
    let f = fs_err::File::create(log).unwrap().into_parts().0;
    Daemon(
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap(),
    )
}

/// `sinfo` as the SLURM metrics node would answer the check (canned: no slurmctld here).
struct Sinfo {
    out: &'static str,
    seen: Mutex<Vec<(String, Vec<String>)>>,
}

impl Executor for Sinfo {
    async fn apply_host(&self, plan: &HostPlan, _mode: Mode) -> Result<HostReport, HostError> {
        panic!("no plans in a check: {plan:?}")
    }

    async fn run(&self, host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        self.seen
            .lock()
            .unwrap()
            .push((host.to_owned(), argv.to_vec()));
        Ok(CommandOutput {
            status: Some(0),
            stdout: self.out.as_bytes().to_vec(),
            stderr: Vec::new(),
        })
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

const SCRIPT_SINFO: &str = "ctl debug idle\ncn1 debug idle\ncn1 long idle\n";
const CHECK_SINFO: &str = "ctl idle\ncn1 idle\ncn1 idle\n";

#[test]
fn check_against_real_prometheus_and_node_exporters() {
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // the SLURM metrics script's real output in ctl's textfile directory
    let textfile = d.join("textfile-ctl");
    fs_err::create_dir_all(&textfile).unwrap();
    let (sinfo, squeue) = fake_slurm(d, SCRIPT_SINFO, "RUNNING debug\n");
    let script = d.join("hpc-up-slurm-metrics");
    fs_err::write(&script, hpc_monitor::SLURM_METRICS_SCRIPT).unwrap();
    run_slurm_metrics_now(&script, &sinfo, &squeue, &textfile, None).unwrap();
    let empty = d.join("textfile-cn1");
    fs_err::create_dir_all(&empty).unwrap();

    let mut daemons = Vec::new();
    let mut targets = Vec::new();
    for (node, role, dir) in [("ctl", "controller", &textfile), ("cn1", "compute", &empty)] {
        let port = free_port();
        daemons.push(spawn(
            Command::new(&t.node_exporter)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--collector.textfile.directory={}", dir.display())),
            &d.join(format!("node-exporter-{node}.log")),
        ));
        targets.push(ScrapeTarget {
            address: format!("127.0.0.1:{port}"),
            node: node.to_owned(),
            role: role.to_owned(),
        });
    }
    let prom_port = free_port();
    let yml = render_prometheus_yml_for("1s", &format!("127.0.0.1:{prom_port}"), "ctl", &targets);
    let config = d.join("prometheus.yml");
    fs_err::write(&config, &yml).unwrap();
    daemons.push(spawn(
        Command::new(&t.prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}/tsdb", d.display()))
            .arg("--storage.tsdb.retention.time=1h")
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        &d.join("prometheus.log"),
    ));
    let logs = || {
        [
            "prometheus.log",
            "node-exporter-ctl.log",
            "node-exporter-cn1.log",
        ]
        .iter()
        .map(|f| {
            let text = fs_err::read_to_string(d.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            format!(
                "--- {f}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
    };

    // the deployment's readiness wait, against the real Prometheus
    let argv = hpc_monitor::ready_argv(prom_port);
    let ready = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    assert!(ready.status.success(), "{ready:?}\n{}", logs());

    let base = format!("http://127.0.0.1:{prom_port}");
    let mut target = CheckTarget::new(base.clone(), vec!["ctl".into(), "cn1".into()]);
    target.slurm_node = Some("ctl".into());
    target.attempts = 120;
    target.delay = Duration::from_millis(500);
    let exec = Sinfo {
        out: CHECK_SINFO,
        seen: Mutex::new(Vec::new()),
    };
    let report = block_on(check_with(&exec, &target)).unwrap();
    assert!(report.ok, "{:#?}\n{}", report.lines(), logs());
    assert_eq!(report.targets.len(), 2);
    assert!(report.targets.iter().all(|t| t.health == "up"));
    assert!(report.queries.iter().all(|q| q.ok && q.value.is_some()));
    let slurm = report.slurm.as_ref().unwrap();
    assert!(slurm.missing_series.is_empty());
    let age = slurm.last_success_age_seconds.unwrap();
    assert!(
        age < f64::from(hpc_monitor::MAX_SLURM_METRICS_AGE_SECS),
        "{age}"
    );
    let idle = slurm.states.iter().find(|s| s.state == "idle").unwrap();
    assert_eq!(
        (idle.prometheus, idle.sinfo, idle.agree),
        (Some(2.0), 2, true)
    );
    let seen = exec.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|(h, argv)| h == "ctl" && argv[0] == "sinfo")
    );
    let json = serde_json_value(&report);
    assert_eq!(json["ok"], true);
    assert!(json.get("missing-series").is_none() && json["slurm"].get("missing-series").is_some());

    // what it says when things are wrong: a node Prometheus does not scrape, a SLURM state
    // that disagrees with sinfo, SLURM metrics long stale — each named
    let mut wrong = CheckTarget::new(base.clone(), vec!["ctl".into(), "cn1".into(), "cn9".into()]);
    wrong.slurm_node = Some("ctl".into());
    wrong.attempts = 120;
    wrong.delay = Duration::from_millis(500);
    let exec = Sinfo {
        out: "ctl idle\ncn1 down*\n",
        seen: Mutex::new(Vec::new()),
    };
    // metrics from a timer that stopped long ago
    run_slurm_metrics_now(&script, &sinfo, &squeue, &textfile, Some("1700000000")).unwrap();
    let report = block_on(check_until(&exec, &wrong, |r| {
        r.slurm
            .as_ref()
            .and_then(|s| s.last_success_age_seconds)
            .is_some_and(|a| a > 1e6)
    }));
    assert!(!report.ok);
    assert!(
        problems_of(&report).contains("ctl: the SLURM metrics are ")
            && problems_of(&report).contains("is hpc-up-slurm-metrics.timer running"),
        "{:#?}",
        report.problems
    );
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("cn9: Prometheus has no `node` target"),
        "{problems}"
    );
    assert!(
        problems.contains("cn9: `node_load1{node=\"cn9\"}` returned no data"),
        "{problems}"
    );
    assert!(
        problems.contains("ctl: 1 node(s) down in sinfo, 0 in Prometheus"),
        "{problems}"
    );
    assert!(
        problems.contains("ctl: 1 node(s) idle in sinfo, 2 in Prometheus"),
        "{problems}"
    );
    let text = report.lines().join("\n");
    assert!(
        text.contains("FAILED") && text.contains("target cn9: missing"),
        "{text}"
    );

    // a node exporter that stops is reported down, by node
    daemons.remove(1);
    let mut one = CheckTarget::new(base, vec!["ctl".into(), "cn1".into()]);
    one.attempts = 120;
    one.delay = Duration::from_millis(500);
    let report = block_on(check_until(&exec, &one, |r| {
        r.targets
            .iter()
            .any(|t| t.node == "cn1" && t.health == "down")
    }));
    assert!(!report.ok);
    assert!(
        report.problems.iter().any(
            |p| p.starts_with("cn1: its node exporter (http://127.0.0.1:")
                && p.contains("is down to Prometheus")
        ),
        "{:#?}",
        report.problems
    );
    drop(daemons);
}

/// Rounds of `check_with` (one attempt each) until `done` holds for one, at most
/// `target.attempts` of them.
async fn check_until(
    exec: &Sinfo,
    target: &CheckTarget,
    done: impl Fn(&hpc_monitor::MonitoringCheck) -> bool,
) -> hpc_monitor::MonitoringCheck {
    let mut once = target.clone();
    once.attempts = 1;
    let mut last = None;
    for _ in 0..target.attempts {
        let r = check_with(exec, &once).await.unwrap();
        if done(&r) {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(target.delay).await;
    }
    panic!("never: {:#?}", last.map(|r| r.lines()))
}

#[test]
fn an_unreachable_prometheus_is_an_error_naming_the_url() {
    let port = free_port();
    let mut target = CheckTarget::new(format!("http://127.0.0.1:{port}"), vec!["ctl".into()]);
    target.attempts = 2;
    target.delay = Duration::from_millis(10);
    let exec = Sinfo {
        out: "",
        seen: Mutex::new(Vec::new()),
    };
    let err = block_on(check_with(&exec, &target))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "Prometheus at http://127.0.0.1:{port}/api/v1/targets did not answer"
        )),
        "{err}"
    );
}

fn problems_of(r: &hpc_monitor::MonitoringCheck) -> String {
    r.problems.join("\n")
}

fn serde_json_value(r: &hpc_monitor::MonitoringCheck) -> serde_json::Value {
    serde_json::to_value(r).unwrap()
}
