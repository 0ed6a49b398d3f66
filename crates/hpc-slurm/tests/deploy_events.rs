//! `deploy_with`'s phase events, against a scripted executor that answers SLURM's tools the
//! way a healthy cluster does (the real daemons are exercised by `tests/tests/slurm_bed.rs`).
#![cfg(feature = "deploy")]
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hpc_remote::{
    CommandOutput, Executor, HostError, HostPlan, HostReport, Mode, StepReport, StepStatus,
};
use hpc_slurm::{DeployError, DeployOptions, NodeHardware, PhaseEvent, Secrets, deploy_with};

/// Applies every plan as "unchanged" (except `fail_munge_on`'s munge step, which fails) and
/// answers `munge`, `unmunge`, `scontrol` and `sinfo` as a healthy cluster.
struct Scripted {
    fail_munge_on: Option<&'static str>,
    idle: &'static str,
}

impl Executor for Scripted {
    async fn apply_host(&self, plan: &HostPlan, mode: Mode) -> Result<HostReport, HostError> {
        let failing = self.fail_munge_on == Some(plan.host.as_str());
        Ok(HostReport {
            host: plan.host.clone(),
            check: mode.check,
            steps: plan
                .steps
                .iter()
                .map(|s| StepReport {
                    id: s.id.clone(),
                    kind: s.kind.label(),
                    status: if failing && s.id == "munge" {
                        StepStatus::Failed {
                            stderr_tail: "munged: Keyfile is insecure".into(),
                        }
                    } else {
                        StepStatus::Unchanged
                    },
                    diff: None,
                })
                .collect(),
        })
    }

    async fn run(&self, _host: &str, argv: &[String]) -> Result<CommandOutput, HostError> {
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let stdout = match words.as_slice() {
            ["munge", "-n"] => "MUNGE:cred:",
            ["scontrol", "ping"] => "Slurmctld(primary) at ctl is UP",
            ["scontrol", "show", "config"] => "HASH_VAL                = Match",
            ["sinfo", "-h", "-N", ..] => self.idle,
            // unmunge, SLURM's parser, journal lines
            _ => "",
        };
        Ok(CommandOutput {
            status: Some(0),
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        })
    }
}

/// `(node, "started"|"finished"|"failed", phase)` in the order they came.
type Events = Mutex<Vec<(String, &'static str, &'static str)>>;

fn record(events: &Events) -> impl Fn(PhaseEvent<'_>) + Sync + '_ {
    move |e: PhaseEvent<'_>| {
        let what = match e {
            PhaseEvent::Started { .. } => "started",
            PhaseEvent::Finished(_) => "finished",
            PhaseEvent::Failed { .. } => "failed",
        };
        let node = e.node().unwrap_or("*").to_owned();
        events.lock().unwrap().push((node, what, e.name()));
    }
}

fn of(events: &[(String, &'static str, &'static str)], node: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(n, _, _)| n == node)
        .map(|(_, what, name)| format!("{what} {name}"))
        .collect()
}

fn seq(phases: &[&str]) -> Vec<String> {
    phases
        .iter()
        .flat_map(|p| [format!("started {p}"), format!("finished {p}")])
        .collect()
}

fn run<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

const KEY: &[u8; 64] = b"0123456789abcdef0123456789ABCDEF-not-a-secret-but-64-bytes-long!";

fn options(cluster: &hpc_config::Cluster) -> DeployOptions {
    DeployOptions {
        wait_timeout: Duration::from_secs(5),
        hardware: NodeHardware::declared(cluster),
        ..DeployOptions::default()
    }
}

#[test]
fn every_node_reports_its_phases_in_order_and_they_match_the_report() {
    let cluster = common::load("minimal.yaml");
    let exec = Scripted {
        fail_munge_on: None,
        idle: "cn1 idle\ncn2 idle\n",
    };
    let secrets = Secrets {
        munge_key: Some(KEY),
        db_password: None,
    };
    let events = Events::default();
    let observer = record(&events);
    // cn2 comes up last: its phases start later, the others do not wait for it.
    let ready = |node: String| async move {
        if node == "cn2" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    };
    let report = run(deploy_with(
        &exec,
        &cluster,
        &secrets,
        &options(&cluster),
        ready,
        &observer,
    ))
    .unwrap();
    drop(observer);
    let events = events.into_inner().unwrap();

    assert_eq!(
        of(&events, "ctl"),
        seq(&[
            "ready",
            "munge",
            "munge round trip",
            "slurmctld",
            "slurmctld up"
        ])
    );
    for cn in ["cn1", "cn2"] {
        assert_eq!(
            of(&events, cn),
            seq(&["ready", "munge", "munge round trip", "slurmd"]),
            "{cn}"
        );
    }
    assert_eq!(of(&events, "*"), seq(&["nodes idle", "config hash"]));
    // The cluster-wide phases come after every node's.
    let first_cluster_wide = events.iter().position(|(n, _, _)| n == "*").unwrap();
    assert!(
        events[first_cluster_wide..]
            .iter()
            .all(|(n, _, _)| n == "*")
    );

    // Every Finished event is a phase of the report, and the other way round.
    let finished: Vec<(String, &str)> = events
        .iter()
        .filter(|(_, what, _)| *what == "finished")
        .map(|(n, _, p)| (n.clone(), *p))
        .collect();
    let mut reported: Vec<(String, &str)> = report
        .phases
        .iter()
        .map(|p| (p.node.clone().unwrap_or_else(|| "*".into()), p.name))
        .collect();
    let mut finished_sorted = finished.clone();
    finished_sorted.sort();
    reported.sort();
    assert_eq!(finished_sorted, reported);
    assert_eq!(report.changed(), 0);
}

#[test]
fn a_failed_phase_is_reported_and_every_started_phase_ends() {
    let cluster = common::load("minimal.yaml");
    let exec = Scripted {
        fail_munge_on: Some("cn1"),
        idle: "cn1 idle\ncn2 idle\n",
    };
    let secrets = Secrets {
        munge_key: Some(KEY),
        db_password: None,
    };
    let events = Events::default();
    let observer = record(&events);
    let err = run(deploy_with(
        &exec,
        &cluster,
        &secrets,
        &options(&cluster),
        |_| async { Ok(()) },
        &observer,
    ))
    .unwrap_err();
    assert!(
        matches!(&err, DeployError::Phase { phase: "munge", failures } if failures.len() == 1),
        "{err}"
    );
    drop(observer);
    let events = events.into_inner().unwrap();
    assert_eq!(
        of(&events, "cn1"),
        [
            "started ready",
            "finished ready",
            "started munge",
            "failed munge"
        ]
    );
    // No cluster-wide phase ran, and every phase that began ended, one way or the other.
    assert!(of(&events, "*").is_empty());
    let mut open: BTreeMap<(String, &str), i32> = BTreeMap::new();
    for (node, what, name) in &events {
        *open.entry((node.clone(), name)).or_default() += if *what == "started" { 1 } else { -1 };
    }
    assert!(open.values().all(|v| *v == 0), "{events:?}");
}
