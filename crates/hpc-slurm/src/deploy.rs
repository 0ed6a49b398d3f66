//! Deploying SLURM on running nodes through any [`Executor`] (SSH in practice). Each node
//! goes through its own steps as soon as it is ready, and waits for another node only where
//! SLURM needs it; every wait is bounded:
//!
//! - Before anything else, the hardware of the nodes that run jobs: what the caller already
//!   knows ([`DeployOptions::hardware`]: for VMs, what their domains give them), else
//!   `slurmd -C` on every such node (then every node must be ready first: the one
//!   cluster-wide barrier at the start). Render `slurm.conf` and check it against
//!   `gres.conf` ourselves.
//! - Per node, in this order, starting when [`deploy_with`]'s `ready` hook says the node is
//!   ready:
//!   1. munge key and munged; then, once the controller's munged runs, a credential made on
//!      the controller must decode on the node and one made on the node on the controller;
//!   2. on the accounting host (when accounting is on): MariaDB, the database user and
//!      slurmdbd; wait until slurmdbd accepts connections;
//!   3. on the controllers: SLURM's own parser (`scontrol`, on the first controller) checks
//!      `slurm.conf` (after slurmdbd is up, when accounting is on); the files and slurmctld;
//!      wait for `scontrol ping`;
//!   4. everywhere else, once slurmctld answers: the files, and slurmd on the nodes that run
//!      jobs.
//! - Then, cluster-wide: every node is idle (a node that turns INVAL, DRAIN or FAIL stops
//!   the run at once with `sinfo -R`'s reason; one still DOWN when the wait ends fails it
//!   too), and every node's `scontrol show config` says `HASH_VAL = Match`.
//!
//! A node whose step fails stops there; the other nodes stop at their next wait or phase
//! (a host plan already running finishes; they are not counted as failures), so the error
//! names every node that failed on its own, with its step, and comes without waiting out
//! the others' bounds. A service that fails to start
//! is reported with its journal's last lines, so the daemon's own message (e.g. munged's
//! `Keyfile is insecure`) reaches the user.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hpc_config::{Cluster, Node};
use hpc_remote::{
    Executor, HostReport, Mode, PhaseEvent, PhaseObserver, PhaseReport, StepStatus, Wait,
    apply_all, wait_for,
};

use crate::consistency::check_consistency;
use crate::hardware::NodeHardware;
use crate::hostlist;
use crate::plan::{PhaseKind, PlanError, SERVICES, Secrets, plan_deploy};
use crate::render::{RenderOptions, render_gres_conf, render_slurm_conf, slurmd_nodes};

/// How to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Rendering choices (memory headroom, ports); `None`: the defaults with the cluster
    /// file's choices ([`RenderOptions::for_cluster`]).
    pub render: Option<RenderOptions>,
    /// The bound of every wait (munge round trip, slurmdbd, slurmctld, nodes idle).
    pub wait_timeout: Duration,
    /// Hardware already known per node; `slurmd -C` is asked only for the other nodes.
    pub hardware: BTreeMap<String, NodeHardware>,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            render: None,
            wait_timeout: Duration::from_secs(120),
            hardware: BTreeMap::new(),
        }
    }
}

/// What a deployment did.
#[derive(Debug, Clone)]
pub struct DeployReport {
    /// The `slurm.conf` every node now has.
    pub slurm_conf: String,
    /// The hardware each job-running node reported (or was given).
    pub hardware: BTreeMap<String, NodeHardware>,
    /// Phases, in the order they ended (nodes interleave). Names: per node `ready` (the
    /// caller's hook), `munge`, `munge round trip`, `accounting`, `slurmdbd up`,
    /// `slurmctld`, `slurmctld up`, `slurmd`; cluster-wide `hardware`, `nodes idle`,
    /// `config hash`.
    pub phases: Vec<PhaseReport>,
}

impl DeployReport {
    /// Steps changed across all phases (0 on a re-run of an unchanged cluster).
    pub fn changed(&self) -> usize {
        self.phases.iter().map(PhaseReport::changed).sum()
    }

    /// Per node, the wall time of its own phases (ready hook excluded) and when its last
    /// one ended, counted from the start of the deployment.
    pub fn per_node(&self) -> BTreeMap<String, (Duration, Duration)> {
        let mut m: BTreeMap<String, (Duration, Duration)> = BTreeMap::new();
        for p in &self.phases {
            let Some(node) = &p.node else { continue };
            let e = m.entry(node.clone()).or_default();
            if p.name != "ready" {
                e.0 += p.elapsed;
            }
            e.1 = e.1.max(p.finished_at);
        }
        m
    }

    /// `(node, service)` for every service started or restarted in this run.
    pub fn restarted(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for h in self.phases.iter().flat_map(|p| &p.hosts) {
            for s in &h.steps {
                if s.kind == "service" && s.status == StepStatus::Changed {
                    out.push((h.host.clone(), s.id.clone()));
                }
            }
        }
        out
    }
}

/// Why a deployment failed. Each names the node and the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// The plan could not be made.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// `slurmd -C` failed or printed something unusable.
    #[error("node {node}: `slurmd -C` (the node's hardware): {detail}")]
    Hardware {
        /// The node.
        node: String,
        /// What went wrong.
        detail: String,
    },
    /// The rendered files contradict each other.
    #[error("the rendered SLURM files contradict each other:\n  {}", .0.join("\n  "))]
    Inconsistent(Vec<String>),
    /// SLURM's own parser rejects the rendered `slurm.conf`.
    #[error("SLURM's parser (scontrol on {node}) rejects the rendered slurm.conf:\n{detail}")]
    Rejected {
        /// Where scontrol ran.
        node: String,
        /// Its messages.
        detail: String,
    },
    /// A phase failed on one or more nodes.
    #[error("SLURM deploy, phase `{phase}`:\n  {}", .failures.join("\n  "))]
    Phase {
        /// The phase.
        phase: &'static str,
        /// One entry per failed node: node, step and the daemon's messages.
        failures: Vec<String>,
    },
}

fn phase_error(phase: &'static str, failures: Vec<String>) -> DeployError {
    DeployError::Phase { phase, failures }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().to_owned()
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs `argv` on `node`; `Ok(stdout)` on exit 0, else `Err(stderr or stdout or error)`.
pub(crate) async fn run_ok<E: Executor>(
    exec: &E,
    node: &str,
    words: &[&str],
) -> Result<String, String> {
    match exec.run(node, &argv(words)).await {
        Ok(o) if o.status == Some(0) => Ok(text(&o.stdout)),
        Ok(o) => {
            let err = text(&o.stderr);
            let out = text(&o.stdout);
            let msg = if err.is_empty() { out } else { err };
            Err(format!(
                "`{}` exited with {}: {msg}",
                words.join(" "),
                o.status
                    .map_or_else(|| "a signal".to_owned(), |s| s.to_string())
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `systemctl is-active UNIT` and the unit's last journal lines on `node`, for an error.
async fn diagnose<E: Executor>(exec: &E, node: &str, unit: &str) -> String {
    let state = match exec
        .run(node, &argv(&["systemctl", "is-active", unit]))
        .await
    {
        Ok(o) => text(&o.stdout),
        Err(e) => return format!("({e})"),
    };
    let journal = match exec
        .run(
            node,
            &argv(&["journalctl", "-u", unit, "-n", "15", "--no-pager"]),
        )
        .await
    {
        Ok(o) if !o.stdout.is_empty() => text(&o.stdout),
        Ok(o) => text(&o.stderr),
        Err(e) => e.to_string(),
    };
    format!(
        "{unit} is {state}; its journal ends with:\n{}",
        indent(&journal)
    )
}

/// Applies one phase on all its nodes at once; a failure names node, step and, for a
/// service, the daemon's own messages.
async fn apply_phase<E: Executor>(
    exec: &E,
    kind: PhaseKind,
    plans: &[hpc_remote::HostPlan],
) -> Result<Vec<HostReport>, DeployError> {
    let summary = apply_all(exec, plans, Mode::APPLY).await;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (host, result) in summary.hosts {
        match result {
            Ok(rep) => {
                for s in &rep.steps {
                    if let StepStatus::Failed { stderr_tail } = &s.status {
                        let mut msg = format!(
                            "node {host}, step `{}`: failed:\n{}",
                            s.id,
                            indent(stderr_tail)
                        );
                        if SERVICES.contains(&s.id.as_str()) {
                            msg.push_str("\n    ");
                            msg.push_str(&diagnose(exec, &host, &s.id).await);
                        }
                        failures.push(msg);
                    }
                }
                reports.push(rep);
            }
            Err(e) => failures.push(format!("node {host}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(reports)
    } else {
        Err(phase_error(kind.name(), failures))
    }
}

/// `slurmd -C` on every job-running node not in `known`.
async fn collect_hardware<E: Executor>(
    exec: &E,
    nodes: &[&Node],
    known: &BTreeMap<String, NodeHardware>,
) -> Result<BTreeMap<String, NodeHardware>, DeployError> {
    let ask = nodes
        .iter()
        .filter(|n| !known.contains_key(n.name.as_str()))
        .map(|n| async move {
            let name = n.name.to_string();
            let r = run_ok(exec, &name, &["slurmd", "-C"])
                .await
                .and_then(|out| NodeHardware::parse_slurmd_c(&out).map_err(|e| e.to_string()));
            (name, r)
        });
    let mut hw = known.clone();
    for (node, r) in join_all(ask).await {
        match r {
            Ok(h) => {
                hw.insert(node, h);
            }
            Err(detail) => return Err(DeployError::Hardware { node, detail }),
        }
    }
    Ok(hw)
}

/// SLURM's own parser on `node`: `SLURM_CONF=<copy> scontrol show hostnames x`. It exits 1
/// on syntax and type errors and prints `error:` lines for some problems it only warns about.
async fn scontrol_parse<E: Executor>(exec: &E, node: &str, conf: &str) -> Result<(), DeployError> {
    const SCRIPT: &str = "d=$(mktemp -d) || exit 1; printf '%s' \"$1\" >\"$d/slurm.conf\"; \
        chmod 0644 \"$d/slurm.conf\"; SLURM_CONF=\"$d/slurm.conf\" scontrol show hostnames x \
        >/dev/null; rc=$?; rm -rf \"$d\"; exit $rc";
    let out = exec
        .run(
            node,
            &argv(&["sh", "-c", SCRIPT, "hpc-up-check-slurm-conf", conf]),
        )
        .await
        .map_err(|e| DeployError::Rejected {
            node: node.to_owned(),
            detail: e.to_string(),
        })?;
    let stderr = text(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("error") || l.contains("fatal") || l.contains("Invalid"))
        .collect();
    if out.status == Some(0) && complaints.is_empty() {
        Ok(())
    } else {
        Err(DeployError::Rejected {
            node: node.to_owned(),
            detail: indent(&stderr),
        })
    }
}

/// A credential made on `from` must decode on `to`.
async fn munge_between<E: Executor>(exec: &E, from: &str, to: &str) -> Result<(), Wait<String>> {
    let cred = run_ok(exec, from, &["munge", "-n"])
        .await
        .map_err(|e| Wait::Retry(format!("`munge -n` on {from}: {e}")))?;
    let script = "printf '%s\\n' \"$1\" | unmunge >/dev/null";
    run_ok(exec, to, &["sh", "-c", script, "unmunge", cred.trim()])
        .await
        .map(|_| ())
        .map_err(|e| {
            Wait::Retry(format!(
                "a credential from {from} does not decode on {to}: {e}"
            ))
        })
}

/// Both directions between the controller `ctl` and `node`, retried until `timeout`; on
/// failure the message carries both munged's state and journal.
async fn munge_round_trip<E: Executor>(
    exec: &E,
    ctl: &str,
    node: &str,
    timeout: Duration,
) -> Result<(), DeployError> {
    let r = wait_for(timeout, Duration::from_millis(500), || async {
        munge_between(exec, ctl, node).await?;
        munge_between(exec, node, ctl).await
    })
    .await;
    let Err(w) = r else { return Ok(()) };
    let mut msg = format!("node {node}: {w}");
    for n in [node, ctl] {
        msg.push_str("\n    ");
        msg.push_str(&format!("on {n}: {}", diagnose(exec, n, "munge").await));
    }
    Err(phase_error("munge round trip", vec![msg]))
}

/// The slurmdbd probe's exit status when the unit has failed.
const DBD_FAILED: u32 = 3;

/// slurmdbd accepts TCP connections on its port on the accounting host.
async fn wait_slurmdbd<E: Executor>(
    exec: &E,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(), DeployError> {
    // A unit that failed will not come back by itself (Debian's has no `Restart=`): say so
    // at once rather than after the whole wait. The connect runs in a subshell: a failed
    // `exec` redirection ends a non-interactive shell.
    let probe = format!(
        "(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; \
         systemctl is-failed --quiet slurmdbd && exit {DBD_FAILED}; \
         echo 'connection refused' >&2; exit 1"
    );
    let argv = argv(&["bash", "-c", probe.as_str()]);
    let r = wait_for(timeout, Duration::from_millis(500), || async {
        match exec.run(host, &argv).await {
            Ok(o) if o.status == Some(0) => Ok(()),
            Ok(o) if o.status == Some(DBD_FAILED) => {
                Err(Wait::Stop("slurmdbd.service failed".to_owned()))
            }
            Ok(o) => Err(Wait::Retry(format!(
                "slurmdbd does not accept connections on port {port}: {}",
                text(&o.stderr)
            ))),
            Err(e) => Err(Wait::Retry(format!(
                "slurmdbd does not accept connections on port {port}: {e}"
            ))),
        }
    })
    .await;
    match r {
        Ok(()) => Ok(()),
        Err(w) => Err(phase_error(
            "accounting",
            vec![format!(
                "node {host}: {}\n    {}",
                w,
                diagnose(exec, host, "slurmdbd").await
            )],
        )),
    }
}

async fn wait_slurmctld<E: Executor>(
    exec: &E,
    ctl: &str,
    timeout: Duration,
) -> Result<(), DeployError> {
    let r = wait_for(timeout, Duration::from_millis(500), || async {
        match run_ok(exec, ctl, &["scontrol", "ping"]).await {
            Ok(out) if out.contains("(primary)") && out.contains("is UP") => Ok(()),
            Ok(out) => Err(Wait::Retry(format!("`scontrol ping`: {out}"))),
            Err(e) => Err(Wait::Retry(e)),
        }
    })
    .await;
    match r {
        Ok(()) => Ok(()),
        Err(w) => Err(phase_error(
            "slurmctld",
            vec![format!(
                "node {ctl}: {}\n    {}",
                w,
                diagnose(exec, ctl, "slurmctld").await
            )],
        )),
    }
}

/// A node state from `sinfo -o %T` without its flag suffixes (`idle*` → `idle`).
fn base_state(s: &str) -> &str {
    s.trim_end_matches(|c: char| "*~#!%$@^-+".contains(c))
}

/// `true` for states in which a node runs jobs.
fn is_up(state: &str) -> bool {
    let s = state.trim();
    let base = base_state(s);
    s == base
        && matches!(
            base,
            "idle" | "mixed" | "allocated" | "completing" | "planned"
        )
}

/// `true` for states that waiting will not fix.
fn is_broken(state: &str) -> bool {
    let s = base_state(state.trim());
    s.contains("inval") || s.contains("drain") || s.contains("fail")
}

/// Node → state from `sinfo -h -N -o '%N %T'`.
fn parse_states(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, s)| (n.trim().to_owned(), s.trim().to_owned()))
        .collect()
}

/// Node → reason from `sinfo -h -R -o '%N|%E'` (node lists expanded).
fn parse_reasons(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in out.lines() {
        if let Some((nodes, reason)) = l.split_once('|') {
            let names = hostlist::expand(nodes.trim()).unwrap_or_else(|_| vec![nodes.to_owned()]);
            for n in names {
                m.insert(n, reason.trim().to_owned());
            }
        }
    }
    m
}

async fn wait_idle<E: Executor>(
    exec: &E,
    ctl: &str,
    nodes: &[&Node],
    timeout: Duration,
) -> Result<(), DeployError> {
    let names: Vec<String> = nodes.iter().map(|n| n.name.to_string()).collect();
    let last = std::sync::Mutex::new(BTreeMap::new());
    let r = wait_for(timeout, Duration::from_millis(500), || {
        let names = &names;
        let last = &last;
        async move {
            let out = run_ok(exec, ctl, &["sinfo", "-h", "-N", "-o", "%N %T"])
                .await
                .map_err(Wait::Retry)?;
            let states = parse_states(&out);
            let mut not_up = Vec::new();
            let mut broken = false;
            for n in names {
                let st = states.get(n).cloned().unwrap_or_else(|| "missing".into());
                if !is_up(&st) {
                    broken |= is_broken(&st);
                    not_up.push(format!("{n}={st}"));
                }
            }
            if let Ok(mut l) = last.lock() {
                *l = states;
            }
            if not_up.is_empty() {
                Ok(())
            } else if broken {
                Err(Wait::Stop(format!("not idle: {}", not_up.join(" "))))
            } else {
                Err(Wait::Retry(format!("not idle: {}", not_up.join(" "))))
            }
        }
    })
    .await;
    let Err(w) = r else { return Ok(()) };
    let reasons = run_ok(exec, ctl, &["sinfo", "-h", "-R", "-o", "%N|%E"])
        .await
        .map(|o| parse_reasons(&o))
        .unwrap_or_default();
    let last = last.into_inner().unwrap_or_default();
    let mut failures = vec![format!("on {ctl}: {w}")];
    for n in &names {
        let st = last.get(n).map_or("missing", String::as_str);
        if is_up(st) {
            continue;
        }
        let reason = reasons
            .get(n)
            .map_or("(sinfo -R gives no reason)", String::as_str);
        failures.push(format!(
            "node {n} is {st}: {reason}\n    {}",
            diagnose(exec, n, "slurmd").await
        ));
    }
    Err(phase_error("nodes idle", failures))
}

/// `HASH_VAL = Match` in `scontrol show config` on every node.
async fn check_hashes<E: Executor>(exec: &E, cluster: &Cluster) -> Result<(), DeployError> {
    let checks = cluster.nodes.iter().map(|n| async move {
        let node = n.name.as_str();
        let r = match run_ok(exec, node, &["scontrol", "show", "config"]).await {
            Ok(out) => match out.lines().find(|l| l.trim_start().starts_with("HASH_VAL")) {
                Some(l) if l.contains("Match") => Ok(()),
                Some(l) => Err(format!(
                    "its slurm.conf differs from the controller's: {}",
                    l.trim()
                )),
                None => Err("`scontrol show config` has no HASH_VAL line".to_owned()),
            },
            Err(e) => Err(e),
        };
        (node, r)
    });
    let failures: Vec<String> = join_all(checks)
        .await
        .into_iter()
        .filter_map(|(n, r)| r.err().map(|e| format!("node {n}: {e}")))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(phase_error("config hash", failures))
    }
}

/// A one-shot signal from the node that owns a milestone (the controller's munged, slurmdbd,
/// slurmctld) to the nodes that wait for it: `true` when it was reached, `false` when its
/// node failed first.
struct Latch(tokio::sync::watch::Sender<Option<bool>>);

impl Latch {
    fn new() -> Self {
        Self(tokio::sync::watch::channel(None).0)
    }

    /// Sets the outcome once; later calls change nothing.
    fn set(&self, reached: bool) {
        self.0.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(reached);
                true
            } else {
                false
            }
        });
    }

    async fn wait(&self) -> bool {
        let mut rx = self.0.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => *v == Some(true),
            Err(_) => false,
        }
    }

    fn is_set(&self) -> bool {
        *self.0.borrow() == Some(true)
    }
}

/// `wait` (a bounded wait on this node: SSH, a daemon, a round trip), cut short with
/// [`Stop::Waited`] when another node fails first: its error is the one that counts, and
/// waiting out the bound would only delay it. Host plans are never cut short.
async fn unless_aborted<T>(
    abort: &Latch,
    wait: impl Future<Output = Result<T, DeployError>>,
) -> Result<T, Stop> {
    let wait = std::pin::pin!(wait);
    let aborted = std::pin::pin!(abort.wait());
    match futures_util::future::select(wait, aborted).await {
        futures_util::future::Either::Left((r, _)) => r.map_err(Stop::Failed),
        futures_util::future::Either::Right(_) => Err(Stop::Waited),
    }
}

/// How one node's pipeline ended early.
enum Stop {
    /// Its own step failed.
    Failed(DeployError),
    /// A node it waits for failed; not a failure of its own.
    Waited,
}

impl From<DeployError> for Stop {
    fn from(e: DeployError) -> Self {
        Self::Failed(e)
    }
}

/// Phase reports of one node, timed from the deployment's start, told to the observer as
/// they begin and end.
struct Laps<'a> {
    node: &'a str,
    start: Instant,
    observer: &'a dyn PhaseObserver,
    /// The phase under way and when it began.
    current: Option<(&'static str, Instant)>,
    phases: Vec<PhaseReport>,
}

impl<'a> Laps<'a> {
    fn new(node: &'a str, start: Instant, observer: &'a dyn PhaseObserver) -> Self {
        Self {
            node,
            start,
            observer,
            current: None,
            phases: Vec::new(),
        }
    }

    /// Phase `name` begins now (time spent waiting for other nodes before it is not counted).
    fn begin(&mut self, name: &'static str) {
        self.current = Some((name, Instant::now()));
        self.observer.phase(PhaseEvent::Started {
            name,
            node: Some(self.node),
        });
    }

    /// The phase under way ended well.
    fn end(&mut self, hosts: Vec<HostReport>) {
        let Some((name, began)) = self.current.take() else {
            return;
        };
        tracing::info!(
            node = self.node,
            phase = name,
            secs = began.elapsed().as_secs_f64(),
            "SLURM phase done"
        );
        let report = PhaseReport {
            name,
            node: Some(self.node.to_owned()),
            elapsed: began.elapsed(),
            finished_at: self.start.elapsed(),
            hosts,
        };
        self.observer.phase(PhaseEvent::Finished(&report));
        self.phases.push(report);
    }

    /// The phase under way, if any, failed or was cut short.
    fn fail(&mut self, error: &str) {
        if let Some((name, _)) = self.current.take() {
            self.observer.phase(PhaseEvent::Failed {
                name,
                node: Some(self.node),
                error,
            });
        }
    }
}

/// The text of `e` for a [`PhaseEvent::Failed`]: a phase error's failures without the
/// heading (the event names the phase).
fn failure_text(e: &DeployError) -> String {
    match e {
        DeployError::Phase { failures, .. } => failures.join("\n"),
        other => other.to_string(),
    }
}

/// What a cut-short phase says: it did not fail, another node did.
const STOPPED: &str = "stopped: another node failed";

/// A cluster-wide phase: `name` told to the observer as it begins and ends, its report
/// added to `phases` when it succeeds.
async fn cluster_phase<T>(
    observer: &dyn PhaseObserver,
    start: Instant,
    phases: &mut Vec<PhaseReport>,
    name: &'static str,
    work: impl Future<Output = Result<T, DeployError>>,
) -> Result<T, DeployError> {
    observer.phase(PhaseEvent::Started { name, node: None });
    let t = Instant::now();
    match work.await {
        Ok(v) => {
            let report = PhaseReport {
                name,
                node: None,
                elapsed: t.elapsed(),
                finished_at: start.elapsed(),
                hosts: Vec::new(),
            };
            observer.phase(PhaseEvent::Finished(&report));
            phases.push(report);
            Ok(v)
        }
        Err(e) => {
            observer.phase(PhaseEvent::Failed {
                name,
                node: None,
                error: &failure_text(&e),
            });
            Err(e)
        }
    }
}

/// Merges the failures of several nodes: those of the earliest phase that failed come first
/// (in the error's `phase`), the others follow with their own phase named.
fn merge_failures(errors: Vec<DeployError>) -> DeployError {
    const ORDER: [&str; 8] = [
        "ready",
        "munge",
        "munge round trip",
        "accounting",
        "slurmdbd up",
        "slurmctld",
        "slurmctld up",
        "slurmd",
    ];
    let rank = |e: &DeployError| match e {
        DeployError::Phase { phase, .. } => ORDER.iter().position(|p| p == phase).unwrap_or(0),
        _ => 0,
    };
    let mut errors = errors;
    errors.sort_by_key(rank);
    let mut it = errors.into_iter();
    let Some(first) = it.next() else {
        return phase_error("slurm", vec!["no node reported why it stopped".to_owned()]);
    };
    let DeployError::Phase {
        phase,
        mut failures,
    } = first
    else {
        return first;
    };
    for e in it {
        match e {
            DeployError::Phase {
                phase: p,
                failures: f,
            } if p == phase => failures.extend(f),
            DeployError::Phase {
                phase: p,
                failures: f,
            } => failures.extend(f.into_iter().map(|x| format!("(phase `{p}`) {x}"))),
            other => failures.push(other.to_string()),
        }
    }
    DeployError::Phase { phase, failures }
}

/// Deploy `cluster`'s SLURM on its running nodes (see the module docs for the order). Every
/// node must be reachable through `exec` by its name. The same as [`deploy_with`] with
/// every node ready from the start and nobody watching.
pub async fn deploy<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    secrets: &Secrets<'_>,
    opts: &DeployOptions,
) -> Result<DeployReport, DeployError> {
    deploy_with(
        exec,
        cluster,
        secrets,
        opts,
        |_| async { Ok(()) },
        &hpc_remote::NoObserver,
    )
    .await
}

/// Deploy `cluster`'s SLURM, each node starting when `ready(node)` returns `Ok` (e.g. once it
/// answers over SSH and has its base configuration), so that nodes that come up early do
/// not wait for the others (see the module docs). `ready` is called once per node; an
/// `Err(reason)` fails that node (phase `ready`).
///
/// `observer` hears of every phase as it begins ([`PhaseEvent::Started`]) and ends
/// ([`PhaseEvent::Finished`] with the report [`DeployReport::phases`] will hold, or
/// [`PhaseEvent::Failed`]): per node `ready` (the hook), `munge`, `munge round trip`,
/// `accounting`, `slurmdbd up`, `slurmctld`, `slurmctld up`, `slurmd`; cluster-wide
/// `hardware` (only when `slurmd -C` is asked), `nodes idle`, `config hash`. A node's
/// phase cut short because another node failed ends with `Failed` too, its error saying
/// so. Waits for other nodes happen between phases, outside any.
pub async fn deploy_with<E, R, RF>(
    exec: &E,
    cluster: &Cluster,
    secrets: &Secrets<'_>,
    opts: &DeployOptions,
    ready: R,
    observer: &dyn PhaseObserver,
) -> Result<DeployReport, DeployError>
where
    E: Executor,
    R: Fn(String) -> RF,
    RF: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let slurm = cluster.slurm.as_ref().ok_or(PlanError::NotConfigured)?;
    let ctl = cluster
        .controllers()
        .next()
        .map(|n| n.name.to_string())
        .ok_or(PlanError::NotConfigured)?;
    let render = opts
        .render
        .clone()
        .unwrap_or_else(|| RenderOptions::for_cluster(cluster));
    let job_nodes = slurmd_nodes(cluster, slurm);
    let mut phases = Vec::new();

    // Hardware the caller does not know comes from the nodes themselves: all of them must be
    // ready before slurm.conf can be written.
    let unknown = job_nodes
        .iter()
        .any(|n| !opts.hardware.contains_key(n.name.as_str()));
    if unknown {
        let waits = cluster.nodes.iter().map(|n| {
            let name = n.name.to_string();
            let fut = ready(name.clone());
            async move {
                let mut laps = Laps::new(n.name.as_str(), start, observer);
                laps.begin("ready");
                let r = fut.await;
                match &r {
                    Ok(()) => laps.end(Vec::new()),
                    Err(e) => laps.fail(e),
                }
                (name, r, laps.phases)
            }
        });
        let mut failures = Vec::new();
        for (name, r, laps) in join_all(waits).await {
            phases.extend(laps);
            if let Err(e) = r {
                failures.push(format!("node {name}: {e}"));
            }
        }
        if !failures.is_empty() {
            return Err(phase_error("ready", failures));
        }
    }
    let hardware_and_conf = async {
        let hardware = collect_hardware(exec, &job_nodes, &opts.hardware).await?;
        let slurm_conf = render_slurm_conf(cluster, &hardware, &render);
        let problems = check_consistency(cluster, &slurm_conf, &render_gres_conf(cluster));
        if problems.is_empty() {
            Ok((hardware, slurm_conf))
        } else {
            Err(DeployError::Inconsistent(
                problems.iter().map(ToString::to_string).collect(),
            ))
        }
    };
    let (hardware, slurm_conf) = if unknown {
        cluster_phase(observer, start, &mut phases, "hardware", hardware_and_conf).await?
    } else {
        hardware_and_conf.await?
    };

    let plan = plan_deploy(cluster, &slurm_conf, secrets, &render)?;
    let plan_of = |kind: PhaseKind, node: &str| plan.host(kind, node).cloned();
    let accounting = slurm.accounting_host.as_ref().map(|h| h.to_string());
    let (munge_up, dbd_up, ctld_up) = (Latch::new(), Latch::new(), Latch::new());
    let (munge_up, dbd_up, ctld_up) = (&munge_up, &dbd_up, &ctld_up);
    // Set when a node fails: the others stop at their next wait or phase.
    let abort = &Latch::new();
    let (ctl, accounting, slurm_conf_ref) = (ctl.as_str(), accounting.as_deref(), &slurm_conf);
    let pipelines = cluster.nodes.iter().map(|n| {
        let name = n.name.as_str();
        let is_controller = n.role == hpc_config::Role::Controller;
        let ready = (!unknown).then(|| ready(name.to_owned()));
        let mine = |kind| plan_of(kind, name);
        let (munge, acct, ctld, nodes) = (
            mine(PhaseKind::Munge),
            mine(PhaseKind::Accounting),
            mine(PhaseKind::Controller),
            mine(PhaseKind::Nodes),
        );
        async move {
            let mut laps = Laps::new(name, start, observer);
            let r: Result<(), Stop> = async {
                if let Some(ready) = ready {
                    laps.begin("ready");
                    unless_aborted(abort, async {
                        ready
                            .await
                            .map_err(|e| phase_error("ready", vec![format!("node {name}: {e}")]))
                    })
                    .await?;
                    laps.end(Vec::new());
                }
                let go_on = || {
                    if abort.is_set() {
                        Err(Stop::Waited)
                    } else {
                        Ok(())
                    }
                };
                go_on()?;
                if let Some(p) = munge {
                    laps.begin("munge");
                    let hosts = apply_phase(exec, PhaseKind::Munge, &[p]).await?;
                    laps.end(hosts);
                }
                if name == ctl {
                    munge_up.set(true);
                }
                if !munge_up.wait().await {
                    return Err(Stop::Waited);
                }
                laps.begin("munge round trip");
                unless_aborted(abort, munge_round_trip(exec, ctl, name, opts.wait_timeout)).await?;
                laps.end(Vec::new());
                if let Some(p) = acct {
                    go_on()?;
                    laps.begin("accounting");
                    let hosts = apply_phase(exec, PhaseKind::Accounting, &[p]).await?;
                    laps.end(hosts);
                    if Some(name) == accounting {
                        let port = render.slurmdbd_port;
                        laps.begin("slurmdbd up");
                        unless_aborted(abort, wait_slurmdbd(exec, name, port, opts.wait_timeout))
                            .await?;
                        laps.end(Vec::new());
                        dbd_up.set(true);
                    }
                }
                if is_controller {
                    if accounting.is_some() && !dbd_up.wait().await {
                        return Err(Stop::Waited);
                    }
                    go_on()?;
                    if name == ctl || ctld.is_some() {
                        laps.begin("slurmctld");
                        if name == ctl {
                            scontrol_parse(exec, name, slurm_conf_ref).await?;
                        }
                        let hosts = match ctld {
                            Some(p) => apply_phase(exec, PhaseKind::Controller, &[p]).await?,
                            None => Vec::new(),
                        };
                        laps.end(hosts);
                    }
                    if name == ctl {
                        laps.begin("slurmctld up");
                        unless_aborted(abort, wait_slurmctld(exec, name, opts.wait_timeout))
                            .await?;
                        laps.end(Vec::new());
                        ctld_up.set(true);
                    }
                } else if let Some(p) = nodes {
                    if !ctld_up.wait().await {
                        return Err(Stop::Waited);
                    }
                    go_on()?;
                    laps.begin("slurmd");
                    let hosts = apply_phase(exec, PhaseKind::Nodes, &[p]).await?;
                    laps.end(hosts);
                }
                Ok(())
            }
            .await;
            match &r {
                Ok(()) => {}
                Err(Stop::Failed(e)) => laps.fail(&failure_text(e)),
                Err(Stop::Waited) => laps.fail(STOPPED),
            }
            // Whatever this node owned and did not reach, the others stop waiting for.
            if matches!(r, Err(Stop::Failed(_))) {
                abort.set(true);
            }
            if name == ctl {
                munge_up.set(false);
                ctld_up.set(false);
            }
            if Some(name) == accounting {
                dbd_up.set(false);
            }
            (r, laps.phases)
        }
    });
    let mut errors = Vec::new();
    for (r, laps) in join_all(pipelines).await {
        phases.extend(laps);
        if let Err(Stop::Failed(e)) = r {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(merge_failures(errors));
    }
    phases.sort_by_key(|p| p.finished_at);

    let idle = wait_idle(exec, ctl, &job_nodes, opts.wait_timeout);
    cluster_phase(observer, start, &mut phases, "nodes idle", idle).await?;
    let hashes = check_hashes(exec, cluster);
    cluster_phase(observer, start, &mut phases, "config hash", hashes).await?;
    Ok(DeployReport {
        slurm_conf,
        hardware,
        phases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_states() {
        for up in ["idle", "mixed", "allocated", "completing"] {
            assert!(is_up(up), "{up}");
        }
        for not_up in ["idle*", "down*", "unknown", "inval", "drained", "missing"] {
            assert!(!is_up(not_up), "{not_up}");
        }
        for broken in ["inval", "drained", "draining", "fail", "failing*", "inval*"] {
            assert!(is_broken(broken), "{broken}");
        }
        for waitable in ["down*", "unknown*", "idle*", "down"] {
            assert!(!is_broken(waitable), "{waitable}");
        }
    }

    #[test]
    fn sinfo_parsing() {
        let states = parse_states("h02 idle\nh03 inval\nh04 down*\n");
        assert_eq!(states.get("h03").map(String::as_str), Some("inval"));
        let reasons = parse_reasons(
            "h03|Low RealMemory (reported:24105 < 100.00% of configured:99999)\nh[04-05]|Not responding\n",
        );
        assert_eq!(
            reasons.get("h03").map(String::as_str),
            Some("Low RealMemory (reported:24105 < 100.00% of configured:99999)")
        );
        assert_eq!(
            reasons.get("h05").map(String::as_str),
            Some("Not responding")
        );
    }
}
