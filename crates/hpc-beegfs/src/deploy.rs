//! Deploying BeeGFS on running nodes through any [`Executor`] (SSH in practice): the node
//! probe and its rules as a gate, then the setup phases one after another, all hosts of a
//! phase at once. Every host's apply is timed on its own and reported to a
//! [`PhaseObserver`] as it starts and ends; a failed phase stops the deployment and names
//! every node that failed in it, with the step and, for a service, its journal's last lines.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hpc_config::Cluster;
pub use hpc_remote::NodeFailure;
use hpc_remote::{Executor, HostReport, PhaseEvent, PhaseObserver, PhaseReport, Wait, wait_for};
pub(crate) use hpc_remote::{exit_failure, host_error, journal, run_ok};

use crate::check::{
    NodeKind, parse_listnodes, parse_listtargets, parse_node_list, parse_target_list,
    registration_commands,
};
use crate::preflight::{NodeFacts, PreflightProblem, PreflightWarning, preflight, probe_argv};
use crate::release::Release;
use crate::render::roles;
use crate::setup::{Inputs, PlanError, setup_plan};

/// The name of the cluster-wide preflight phase in a [`DeployReport`] and in the observer's
/// events.
pub const PREFLIGHT_PHASE: &str = "preflight";

/// The node probe's results and their judgement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preflight {
    /// What each node that answered reported.
    pub facts: BTreeMap<String, NodeFacts>,
    /// What refuses a deployment (a node that did not answer is one), every one found.
    pub problems: Vec<PreflightProblem>,
    /// What is uncertain but does not refuse.
    pub warnings: Vec<PreflightWarning>,
}

impl Preflight {
    /// No problems: the deployment may go ahead.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Probes every BeeGFS node at once ([`probe_argv`]) and judges the facts ([`preflight`]);
/// a node that cannot be probed is a problem. A cluster without BeeGFS passes with nothing
/// probed.
pub async fn preflight_cluster<E: Executor>(exec: &E, cluster: &Cluster) -> Preflight {
    let argv = probe_argv();
    let nodes: Vec<String> = roles(cluster).into_iter().map(|(n, _)| n).collect();
    let results = join_all(nodes.iter().map(|n| {
        let argv = &argv;
        async move { (n, run_ok(exec, n, argv).await) }
    }))
    .await;
    let mut facts = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for (n, r) in results {
        match r {
            Ok(stdout) => {
                facts.insert(n.clone(), NodeFacts::parse(&stdout));
            }
            Err(e) => {
                errors.insert(n.clone(), e);
            }
        }
    }
    let (problems, warnings) = preflight(cluster, &facts, &errors);
    Preflight {
        facts,
        problems,
        warnings,
    }
}

/// What a deployment did.
#[derive(Debug, Clone)]
pub struct DeployReport {
    /// The release deployed.
    pub release: Release,
    /// The cluster-wide [`PREFLIGHT_PHASE`] (node `None`), then one report per setup phase
    /// and node: phase by phase, in a phase in cluster order.
    pub phases: Vec<PhaseReport>,
    /// The preflight's warnings: the deployment went ahead despite them.
    pub warnings: Vec<PreflightWarning>,
}

impl DeployReport {
    /// Steps changed across all phases (0 on a re-run of an unchanged cluster).
    pub fn changed(&self) -> usize {
        self.phases
            .iter()
            .flat_map(|p| &p.hosts)
            .map(HostReport::changed)
            .sum()
    }

    /// Per node, the wall time of its own host plans and when its last one ended, counted
    /// from the start of the deployment.
    pub fn per_node(&self) -> BTreeMap<String, (Duration, Duration)> {
        let mut m: BTreeMap<String, (Duration, Duration)> = BTreeMap::new();
        for p in &self.phases {
            let Some(node) = &p.node else { continue };
            let e = m.entry(node.clone()).or_default();
            e.0 += p.elapsed;
            e.1 = e.1.max(p.finished_at);
        }
        m
    }
}

/// Why a deployment did not happen or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The setup plan could not be made (no BeeGFS, a refused config, a missing input);
    /// nothing was probed or changed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The preflight found problems; nothing was changed.
    #[error("BeeGFS preflight refused the deployment:\n  - {}", lines(.problems, "\n  - "))]
    Preflight {
        /// Every problem found, naming node and reason.
        problems: Vec<PreflightProblem>,
        /// The preflight's warnings.
        warnings: Vec<PreflightWarning>,
    },
    /// A setup phase failed on one or more nodes; later phases did not run.
    #[error("BeeGFS deploy, phase `{phase}`:\n  {}", lines(.failures, "\n  "))]
    Phase {
        /// The phase (`prepare`, `management`, `servers`, `clients`).
        phase: &'static str,
        /// Every node that failed in it.
        failures: Vec<NodeFailure>,
    },
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn lines<T: fmt::Display>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(|i| i.to_string().replace('\n', "\n    "))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Deploys BeeGFS on the cluster's running nodes: makes the setup plan ([`setup_plan`]:
/// nothing is probed when it cannot be made), runs the preflight gate
/// ([`preflight_cluster`]: any problem refuses before anything is changed), then the setup
/// phases in order, all hosts of a phase at once; the next phase starts when every host of
/// this one succeeded. After the `servers` phase it waits ([`REGISTRATION_PHASE`], at most
/// [`REGISTRATION_TIMEOUT`]) until the management node's tools see every metadata and
/// storage server registered and reachable and every storage target online and good; a
/// server that is not names its node and service, with its journal and what the management
/// service logged about its address. Idempotent: on an unchanged cluster
/// [`DeployReport::changed`] is 0.
///
/// The observer hears `Started`/`Finished` (or `Failed`) for [`PREFLIGHT_PHASE`] (node
/// `None`) and for every (phase, node); each node's report holds the time of its own apply.
pub async fn deploy<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    inputs: &Inputs,
    observer: &dyn PhaseObserver,
) -> Result<DeployReport, DeployError> {
    deploy_with(exec, cluster, inputs, &DeployOptions::default(), observer).await
}

/// How [`deploy_with`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployOptions {
    /// How long to wait for every server to register ([`REGISTRATION_PHASE`]); default
    /// [`REGISTRATION_TIMEOUT`].
    pub registration_timeout: Duration,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            registration_timeout: REGISTRATION_TIMEOUT,
        }
    }
}

/// [`deploy()`] with options.
pub async fn deploy_with<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    inputs: &Inputs,
    options: &DeployOptions,
    observer: &dyn PhaseObserver,
) -> Result<DeployReport, DeployError> {
    let start = Instant::now();
    let plan = setup_plan(cluster, inputs)?;

    observer.phase(PhaseEvent::Started {
        name: PREFLIGHT_PHASE,
        node: None,
    });
    let t0 = Instant::now();
    let pre = preflight_cluster(exec, cluster).await;
    if !pre.passed() {
        let err = DeployError::Preflight {
            problems: pre.problems,
            warnings: pre.warnings,
        };
        let error = err.to_string();
        observer.phase(PhaseEvent::Failed {
            name: PREFLIGHT_PHASE,
            node: None,
            error: &error,
        });
        return Err(err);
    }
    let report = PhaseReport {
        name: PREFLIGHT_PHASE,
        node: None,
        elapsed: t0.elapsed(),
        finished_at: start.elapsed(),
        hosts: Vec::new(),
    };
    observer.phase(PhaseEvent::Finished(&report));
    let mut phases = vec![report];

    for phase in &plan.phases {
        let run = if phase.name == CLIENTS_PHASE {
            run_clients(exec, phase, start, observer).await
        } else {
            hpc_remote::run_phase(exec, phase, start, observer).await
        };
        phases.extend(run.map_err(|f| DeployError::Phase {
            phase: f.phase,
            failures: f.failures,
        })?);
        // Clients mount only once every server has registered.
        if phase.name == "servers"
            && let Some(report) =
                registration(exec, cluster, options.registration_timeout, start, observer).await?
        {
            phases.push(report);
        }
    }
    Ok(DeployReport {
        release: plan.release,
        phases,
        warnings: pre.warnings,
    })
}

/// The phase that starts the clients (and mounts).
const CLIENTS_PHASE: &str = "clients";

/// Attempts at the `clients` phase, and the pause between them.
const CLIENT_ATTEMPTS: usize = 3;
const CLIENT_RETRY_PAUSE: Duration = Duration::from_secs(10);

/// The `clients` phase, its failed hosts tried again (at most [`CLIENT_ATTEMPTS`] in all,
/// [`CLIENT_RETRY_PAUSE`] apart). Right after the registration wait, a client's mount was
/// once refused on emulated nodes ("fsconfig() failed: Operation canceled") while the same
/// mount succeeded seconds later; the phase is idempotent (files unchanged, the service
/// started again), so the hosts that succeeded are not asked again and a host that keeps
/// failing fails with its last error.
async fn run_clients<E: Executor>(
    exec: &E,
    phase: &hpc_remote::Phase,
    start: Instant,
    observer: &dyn PhaseObserver,
) -> Result<Vec<PhaseReport>, hpc_remote::PhaseFailure> {
    let mut reports = Vec::new();
    let mut todo = phase.clone();
    let mut attempt = 1;
    loop {
        match hpc_remote::run_phase(exec, &todo, start, observer).await {
            Ok(r) => {
                reports.extend(r);
                return Ok(reports);
            }
            Err(f) if attempt < CLIENT_ATTEMPTS => {
                let failed: Vec<&str> = f.failures.iter().map(|n| n.node.as_str()).collect();
                todo.hosts.retain(|h| failed.contains(&h.host.as_str()));
                attempt += 1;
                tokio::time::sleep(CLIENT_RETRY_PAUSE).await;
            }
            Err(f) => return Err(f),
        }
    }
}

/// The name of the cluster-wide wait, after the `servers` phase, until every metadata and
/// storage server has registered with the management service, is reachable from the
/// management node, and every storage target is online and good.
pub const REGISTRATION_PHASE: &str = "registration";

/// How long [`deploy()`] waits for [`REGISTRATION_PHASE`] (a new storage target shows
/// offline for about 5 s after registering).
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// A server that has not (yet) registered as it should: its node, service and why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NotYet {
    node: String,
    service: &'static str,
    why: String,
}

/// Every metadata and storage server that the management node's tools do not (yet) see
/// registered, reachable and (storage) with its target online and good.
async fn not_registered<E: Executor>(exec: &E, cluster: &Cluster, mgmt: &str) -> Vec<NotYet> {
    let release = cluster
        .beegfs
        .as_ref()
        .map(|b| Release::from_version(b.version));
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for (label, argv) in registration_commands(cluster) {
        let out = match run_ok(exec, mgmt, &argv).await {
            Ok(out) => out,
            Err(e) => {
                missing.push(NotYet {
                    node: mgmt.to_owned(),
                    service: "beegfs-mgmtd",
                    why: format!("`{}` on the management node {e}", argv.join(" ")),
                });
                continue;
            }
        };
        let parsed = match (label, release.is_some_and(|r| r.is_v8())) {
            ("meta", _) => parse_listnodes(&out, NodeKind::Meta).map(|s| servers.extend(s)),
            ("storage", _) => parse_listnodes(&out, NodeKind::Storage).map(|s| servers.extend(s)),
            ("nodes", _) => parse_node_list(&out).map(|s| servers.extend(s)),
            ("targets", true) => parse_target_list(&out).map(|t| targets.extend(t)),
            ("targets", false) => parse_listtargets(&out).map(|t| targets.extend(t)),
            _ => Ok(()),
        };
        if let Err(e) = parsed {
            missing.push(NotYet {
                node: mgmt.to_owned(),
                service: "beegfs-mgmtd",
                why: e.to_string(),
            });
        }
    }
    if !missing.is_empty() {
        return missing;
    }
    for (node, r) in roles(cluster) {
        for (kind, id, service) in [
            (NodeKind::Meta, r.meta, "beegfs-meta"),
            (NodeKind::Storage, r.storage, "beegfs-storage"),
        ] {
            let Some(id) = id else { continue };
            let seen = servers
                .iter()
                .find(|s| s.kind == kind && s.id == Some(u32::from(id)));
            let why = match seen {
                None => Some(format!(
                    "{service} (ID {id}) has not registered with the management service"
                )),
                Some(s) if !s.reachable => Some(format!(
                    "{service} (ID {id}) registered as `{}` but the management node cannot reach it",
                    s.node
                )),
                Some(_) => None,
            };
            if let Some(why) = why {
                missing.push(NotYet {
                    node: node.clone(),
                    service,
                    why,
                });
                continue;
            }
            if kind == NodeKind::Storage
                && let Some(t) = r.target_id()
            {
                let why = match targets.iter().find(|x| x.id == t.to_string()) {
                    None => Some(format!("storage target {t} has not registered")),
                    Some(x) if !x.healthy() => Some(format!(
                        "storage target {t} is {}/{}",
                        x.reachability, x.consistency
                    )),
                    Some(_) => None,
                };
                if let Some(why) = why {
                    missing.push(NotYet {
                        node: node.clone(),
                        service,
                        why,
                    });
                }
            }
        }
    }
    missing
}

/// The management service's last journal lines about `ip` (e.g. "Peer 10.0.0.12:38946
/// tried to authenticate stream with wrong secret"), at most 3.
async fn mgmtd_lines_about<E: Executor>(exec: &E, mgmt: &str, ip: &str) -> Option<String> {
    let argv: Vec<String> = [
        "journalctl",
        "-u",
        "beegfs-mgmtd",
        "-n",
        "500",
        "--no-pager",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let out = run_ok(exec, mgmt, &argv).await.ok()?;
    let about = |l: &str| {
        l.match_indices(ip).any(|(i, _)| {
            let before = l[..i].chars().next_back();
            let after = l[i + ip.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
                && !after.is_some_and(|c| c.is_ascii_digit())
        })
    };
    let lines: Vec<&str> = out.lines().filter(|l| about(l)).collect();
    // The lines about authentication say why ("… tried to authenticate stream with wrong
    // secret", "Peer sent wrong authentication: …"); else the last ones.
    let auth: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.to_ascii_lowercase().contains("authenticat"))
        .collect();
    let lines = if auth.is_empty() { lines } else { auth };
    let last = &lines[lines.len().saturating_sub(3)..];
    (!last.is_empty()).then(|| {
        format!(
            "beegfs-mgmtd on {mgmt} says about {ip}:\n{}",
            indent(&last.join("\n"))
        )
    })
}

/// Waits ([`REGISTRATION_PHASE`]) until the management node's tools see every server; on
/// time-out every server that is missing is a failure with its own journal and what the
/// management service said about its address. `None` when the cluster has no BeeGFS.
async fn registration<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    timeout: Duration,
    start: Instant,
    observer: &dyn PhaseObserver,
) -> Result<Option<PhaseReport>, DeployError> {
    let Some(b) = &cluster.beegfs else {
        return Ok(None);
    };
    let mgmt = b.management.as_str();
    observer.phase(PhaseEvent::Started {
        name: REGISTRATION_PHASE,
        node: None,
    });
    let t0 = Instant::now();
    let r = wait_for(timeout, Duration::from_secs(1), || async {
        let missing = not_registered(exec, cluster, mgmt).await;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Wait::Retry(missing))
        }
    })
    .await;
    let missing = match r {
        Ok(()) => {
            let report = PhaseReport {
                name: REGISTRATION_PHASE,
                node: None,
                elapsed: t0.elapsed(),
                finished_at: start.elapsed(),
                hosts: Vec::new(),
            };
            observer.phase(PhaseEvent::Finished(&report));
            return Ok(Some(report));
        }
        Err(e) => e.into_last().unwrap_or_default(),
    };
    let mut failures = Vec::new();
    for m in missing {
        let mut detail = format!("{} (still so after {} s)", m.why, timeout.as_secs());
        if let Some(j) = journal(exec, &m.node, m.service, "").await {
            detail.push('\n');
            detail.push_str(&j);
        }
        if m.node != mgmt
            && let Some(ip) = cluster.node(&m.node).map(|n| n.ip.to_string())
            && let Some(lines) = mgmtd_lines_about(exec, mgmt, &ip).await
        {
            detail.push('\n');
            detail.push_str(&lines);
        }
        failures.push(NodeFailure {
            node: m.node,
            step: Some(m.service.to_owned()),
            detail,
        });
    }
    if failures.is_empty() {
        failures.push(NodeFailure {
            node: mgmt.to_owned(),
            step: None,
            detail: format!(
                "no answer from the management node's tools within {} s",
                timeout.as_secs()
            ),
        });
    }
    let err = DeployError::Phase {
        phase: REGISTRATION_PHASE,
        failures,
    };
    let error = err.to_string();
    observer.phase(PhaseEvent::Failed {
        name: REGISTRATION_PHASE,
        node: None,
        error: &error,
    });
    Err(err)
}
