//! `deploy` and `preflight_cluster` through a fake executor: a mock of BeeGFS nodes (see
//! `fake/mod.rs`: the daemons are not in Debian and cannot run here), which records every
//! plan applied and command run.
#![allow(clippy::unwrap_used)] // tests panic on failure

mod common;
mod fake;

use std::sync::Mutex;
use std::time::Duration;

use common::{full_stack, inputs};
use fake::{CONTAINER_PROBE, FakeBeegfs, vm_probe};
use hpc_beegfs::{
    DeployError, Inputs, NodeFailure, PREFLIGHT_PHASE, PlanError, PreflightProblem,
    REGISTRATION_PHASE, deploy, preflight_cluster, probe_argv,
};
use hpc_remote::{NoObserver, PhaseEvent};

/// Every event as `started|finished|failed PHASE NODE`, in order.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn observer(&self) -> impl Fn(PhaseEvent<'_>) + Sync + '_ {
        |e: PhaseEvent<'_>| {
            let what = match e {
                PhaseEvent::Started { .. } => "started",
                PhaseEvent::Finished(_) => "finished",
                PhaseEvent::Failed { .. } => "failed",
            };
            self.0
                .lock()
                .unwrap()
                .push(format!("{what} {} {}", e.name(), e.node().unwrap_or("-")));
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

const NODES: [&str; 4] = ["ctl", "cn01", "cn02", "cn03"];

#[test]
fn preflight_probes_every_node_and_judges_the_facts() {
    let cluster = full_stack("8.1.0", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.probe.insert("cn02".into(), CONTAINER_PROBE.into());
    exec.unreachable.insert("cn03".into());
    let pre = rt().block_on(preflight_cluster(&exec, &cluster));
    let probed: Vec<String> = exec
        .ran
        .lock()
        .unwrap()
        .iter()
        .inspect(|(_, argv)| assert_eq!(*argv, probe_argv()))
        .map(|(h, _)| h.clone())
        .collect();
    assert_eq!(probed, NODES);
    assert!(!pre.passed());
    assert_eq!(
        pre.facts.keys().collect::<Vec<_>>(),
        ["cn01", "cn02", "ctl"]
    );
    assert_eq!(pre.facts["cn01"].uname, "6.1.0-28-cloud-amd64");
    let problems: Vec<String> = pre.problems.iter().map(ToString::to_string).collect();
    // 8.1 builds on 6.12; the container lacks a client module (and headers), a NIC and a
    // machine UUID.
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].starts_with("cn02: no BeeGFS client module"));
    assert!(problems[1].starts_with("cn02: no network interface"));
    assert!(problems[2].starts_with("cn02: no machine UUID"));
    assert_eq!(
        pre.problems[3],
        PreflightProblem::NotProbed {
            node: "cn03".into(),
            error: "not in the executor's inventory".into()
        }
    );
}

#[test]
fn preflight_problems_refuse_before_any_plan_is_applied() {
    let cluster = full_stack("7.4.6", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.probe.insert("cn02".into(), CONTAINER_PROBE.into());
    exec.unreachable.insert("cn03".into());
    let events = Events::default();
    let err = rt()
        .block_on(deploy(&exec, &cluster, &inputs(), &events.observer()))
        .unwrap_err();
    assert!(exec.applied.lock().unwrap().is_empty(), "nothing applied");
    let DeployError::Preflight { problems, .. } = &err else {
        panic!("{err:?}");
    };
    // All of them: the 7.4.6 client module on Linux 6.12, no module or headers, no NIC; cn03
    // silent.
    let nodes: Vec<String> = problems
        .iter()
        .map(|p| p.to_string().split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(nodes, ["cn02", "cn02", "cn02", "cn03"], "{err}");
    assert!(matches!(problems[0], PreflightProblem::Kernel(_)));
    let text = err.to_string();
    assert!(
        text.starts_with("BeeGFS preflight refused the deployment:\n  - cn02: the BeeGFS 7.4.6 client module does not build on Linux 6.12"),
        "{text}"
    );
    assert!(text.contains("\n  - cn03: not probed: not in the executor's inventory"));
    assert_eq!(events.take(), ["started preflight -", "failed preflight -"]);
}

#[test]
fn a_plan_that_cannot_be_made_probes_nothing() {
    let cluster = full_stack("7.4.6", "");
    let exec = FakeBeegfs::healthy_7();
    let err = rt()
        .block_on(deploy(&exec, &cluster, &Inputs::default(), &NoObserver))
        .unwrap_err();
    assert_eq!(
        err,
        DeployError::Plan(PlanError::MissingInput("the auth secret"))
    );
    assert!(exec.ran.lock().unwrap().is_empty());
}

#[test]
fn phases_run_in_order_and_the_observer_sees_every_node() {
    for v in ["7.4.6", "8.1.0"] {
        let cluster = full_stack(v, "");
        let mut exec = FakeBeegfs::healthy_7();
        for (n, ip) in NODES.iter().zip(["10", "21", "22", "23"]) {
            exec.probe
                .insert((*n).into(), vm_probe(&format!("10.79.0.{ip}")));
        }
        let events = Events::default();
        let observer = events.observer();
        let inputs = inputs();
        let fut = deploy(&exec, &cluster, &inputs, &observer);
        assert_send(&fut);
        let report = rt().block_on(fut).unwrap();
        assert_eq!(report.release.to_string(), v);
        assert!(report.warnings.is_empty());
        assert!(report.changed() > 0);

        // Applied phase by phase: every BeeGFS node prepares, then the management node,
        // the servers, the clients.
        let mut want: Vec<&str> = NODES.to_vec();
        want.push("ctl");
        want.extend(NODES);
        want.extend(NODES);
        assert_eq!(exec.applied_hosts(), want, "{v}");

        // One report per (phase, node), in phase order, each with its own host report.
        let got: Vec<(&str, Option<&str>)> = report
            .phases
            .iter()
            .map(|p| (p.name, p.node.as_deref()))
            .collect();
        let mut expect = vec![(PREFLIGHT_PHASE, None)];
        for (phase, nodes) in [
            ("prepare", &NODES[..]),
            ("management", &["ctl"][..]),
            ("servers", &NODES[..]),
            ("clients", &NODES[..]),
        ] {
            expect.extend(nodes.iter().map(|n| (phase, Some(*n))));
            if phase == "servers" {
                // Then cluster-wide: every server registered (the management node's tools).
                expect.push((REGISTRATION_PHASE, None));
            }
        }
        assert_eq!(got, expect, "{v}");
        for p in report.phases[1..].iter().filter(|p| p.node.is_some()) {
            assert_eq!(p.hosts.len(), 1);
            assert_eq!(Some(p.hosts[0].host.as_str()), p.node.as_deref());
            assert!(p.elapsed <= p.finished_at);
        }
        assert!(report.phases[0].hosts.is_empty());
        let per_node = report.per_node();
        assert_eq!(
            per_node.keys().collect::<Vec<_>>(),
            ["cn01", "cn02", "cn03", "ctl"]
        );

        // The observer: the preflight, then per phase every node starts before any of that
        // phase ends (all at once), and every node ends before the next phase starts.
        let seen = events.take();
        let mut want = vec![
            "started preflight -".to_owned(),
            "finished preflight -".to_owned(),
        ];
        for (phase, nodes) in [
            ("prepare", &NODES[..]),
            ("management", &["ctl"][..]),
            ("servers", &NODES[..]),
            ("clients", &NODES[..]),
        ] {
            want.extend(nodes.iter().map(|n| format!("started {phase} {n}")));
            want.extend(nodes.iter().map(|n| format!("finished {phase} {n}")));
            if phase == "servers" {
                want.extend([
                    "started registration -".into(),
                    "finished registration -".into(),
                ]);
            }
        }
        assert_eq!(seen, want, "{v}");

        // A second run finds everything in place.
        let again = rt()
            .block_on(deploy(&exec, &cluster, &inputs, &NoObserver))
            .unwrap();
        assert_eq!(again.changed(), 0);
    }
}

#[test]
fn an_unverified_kernel_warns_and_deploys() {
    let cluster = full_stack("8.1.0", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.probe.insert(
        "cn01".into(),
        vm_probe("10.79.0.21").replace("6.1.0-28-cloud-amd64", "6.13.2-amd64"),
    );
    let report = rt()
        .block_on(deploy(&exec, &cluster, &inputs(), &NoObserver))
        .unwrap();
    assert_eq!(report.warnings.len(), 1);
    let w = report.warnings[0].to_string();
    assert!(
        w.starts_with("cn01: the BeeGFS 8.1.0 client module on Linux 6.13 is unverified"),
        "{w}"
    );
    assert_eq!(exec.applied_hosts().len(), 4 + 1 + 4 + 4);
}

#[test]
fn each_node_is_timed_on_its_own() {
    let cluster = full_stack("7.4.6", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.slow.insert("cn02".into(), Duration::from_millis(60));
    let report = rt()
        .block_on(deploy(&exec, &cluster, &inputs(), &NoObserver))
        .unwrap();
    let prepare = |node: &str| {
        report
            .phases
            .iter()
            .find(|p| p.name == "prepare" && p.node.as_deref() == Some(node))
            .unwrap()
    };
    let (slow, fast) = (prepare("cn02"), prepare("ctl"));
    assert!(slow.elapsed >= Duration::from_millis(60), "{slow:?}");
    assert!(fast.elapsed < slow.elapsed, "{fast:?} vs {slow:?}");
    assert!(fast.finished_at < slow.finished_at);
    // The next phase waited for the slow node.
    let mgmt = report
        .phases
        .iter()
        .find(|p| p.name == "management")
        .unwrap();
    assert!(mgmt.finished_at >= slow.finished_at);
    // prepare, servers, clients
    let (total, last) = report.per_node()["cn02"];
    assert!(
        total >= Duration::from_millis(3 * 60) && last >= total,
        "{total:?} {last:?}"
    );
}

#[test]
fn a_client_refused_once_is_tried_again_and_deploys() {
    let cluster = full_stack("8.1.0", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.fail_step = Some((
        "cn02".into(),
        "beegfs-client".into(),
        "mount: /mnt/beegfs: fsconfig() failed: Operation canceled.".into(),
    ));
    *exec.fail_times.lock().unwrap() = Some(1);
    let events = Events::default();
    let started = std::time::Instant::now();
    let report = rt()
        .block_on(deploy(&exec, &cluster, &inputs(), &events.observer()))
        .unwrap_or_else(|e| panic!("{e}"));
    // only cn02 was asked again, after the pause
    assert!(started.elapsed() >= Duration::from_secs(10));
    let clients: Vec<String> = events
        .take()
        .into_iter()
        .filter(|e| e.contains(" clients "))
        .collect();
    assert!(
        clients.contains(&"failed clients cn02".to_owned()),
        "{clients:?}"
    );
    assert_eq!(
        clients.iter().filter(|e| e.starts_with("started")).count(),
        NODES.len() + 1,
        "{clients:?}"
    );
    assert!(
        report
            .phases
            .iter()
            .any(|p| p.name == "clients" && p.node.as_deref() == Some("cn02")),
        "{report:?}"
    );
}

#[test]
fn a_client_that_keeps_failing_fails_the_deploy_after_three_attempts() {
    let cluster = full_stack("8.1.0", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.fail_step = Some((
        "cn02".into(),
        "beegfs-client".into(),
        "mount: /mnt/beegfs: fsconfig() failed: Operation canceled.".into(),
    ));
    let events = Events::default();
    let e = rt()
        .block_on(deploy(&exec, &cluster, &inputs(), &events.observer()))
        .unwrap_err();
    assert!(
        matches!(&e, DeployError::Phase { phase: "clients", failures } if failures.len() == 1 && failures[0].node == "cn02"),
        "{e}"
    );
    let failed = events
        .take()
        .into_iter()
        .filter(|e| e == "failed clients cn02")
        .count();
    assert_eq!(failed, 3);
}

#[test]
fn a_failed_host_fails_the_deploy_naming_node_and_phase() {
    let cluster = full_stack("7.4.6", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.fail_step = Some((
        "cn02".into(),
        "beegfs-storage".into(),
        "Job for beegfs-storage.service failed because the control process exited with error code."
            .into(),
    ));
    let events = Events::default();
    let err = rt()
        .block_on(deploy(&exec, &cluster, &inputs(), &events.observer()))
        .unwrap_err();
    let DeployError::Phase { phase, failures } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*phase, "servers");
    assert_eq!(failures.len(), 1);
    let NodeFailure { node, step, detail } = &failures[0];
    assert_eq!(
        (node.as_str(), step.as_deref()),
        ("cn02", Some("beegfs-storage"))
    );
    assert!(detail.contains("control process exited"), "{detail}");
    // The daemon's own words, from its journal.
    assert!(
        detail.contains("beegfs-storage's journal ends with:\n  cn02 beegfs-storage[812]: Couldn't find any usable NIC"),
        "{detail}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "BeeGFS deploy, phase `servers`:\n  node cn02, step `beegfs-storage`: failed:"
        ),
        "{text}"
    );
    // The other servers finished; no client was touched.
    let seen = events.take();
    assert!(
        seen.contains(&"failed servers cn02".to_owned()),
        "{seen:#?}"
    );
    for n in ["ctl", "cn01", "cn03"] {
        assert!(seen.contains(&format!("finished servers {n}")), "{seen:#?}");
    }
    assert!(!seen.iter().any(|e| e.contains("clients")), "{seen:#?}");
    assert_eq!(exec.applied_hosts().len(), 4 + 1 + 4);
}

#[test]
fn a_host_lost_after_the_preflight_fails_its_phase() {
    let cluster = full_stack("8.1.0", "");
    let mut exec = FakeBeegfs::healthy_7();
    exec.lost_after_probe.insert("cn03".into());
    let events = Events::default();
    let err = rt()
        .block_on(deploy(&exec, &cluster, &inputs(), &events.observer()))
        .unwrap_err();
    assert_eq!(
        err,
        DeployError::Phase {
            phase: "prepare",
            failures: vec![NodeFailure {
                node: "cn03".into(),
                step: None,
                detail: "not in the executor's inventory".into(),
            }],
        }
    );
    assert_eq!(
        err.to_string(),
        "BeeGFS deploy, phase `prepare`:\n  node cn03: not in the executor's inventory"
    );
    let seen = events.take();
    assert!(
        seen.contains(&"failed prepare cn03".to_owned()),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|e| e.contains("management")), "{seen:#?}");
}

fn assert_send<T: Send>(_: &T) {}
