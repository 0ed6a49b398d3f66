//! Deploying SLURM on running nodes through any [`Executor`] (SSH in practice), in order and
//! with every wait bounded:
//!
//! 1. `slurmd -C` on every node that runs jobs, so `NodeName` lines state what the nodes
//!    really have; render `slurm.conf`; check it against `gres.conf` ourselves and with
//!    SLURM's own parser (`scontrol`, on the first controller).
//! 2. munge key and munged on every node; then a munge credential made on the controller
//!    must decode on every node, and one made on every node must decode on the controller.
//! 3. MariaDB, the database user and slurmdbd on the accounting host (when accounting is
//!    on); wait until slurmdbd accepts connections.
//! 4. The files and slurmctld on the controllers; wait for `scontrol ping`.
//! 5. The files everywhere else, slurmd on the nodes that run jobs; wait until every node is
//!    idle. A node that turns INVAL, DRAIN or FAIL stops the run at once with `sinfo -R`'s
//!    reason; one still DOWN when the wait ends fails it too.
//! 6. Every node's `scontrol show config` must say `HASH_VAL = Match`.
//!
//! A service that fails to start is reported with its journal's last lines, so the daemon's
//! own message (e.g. munged's `Keyfile is insecure`) reaches the user.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hpc_config::{Cluster, Node};
use hpc_remote::{Executor, HostReport, Mode, StepStatus, apply_all};

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

/// What one phase did.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// Phase name (`hardware`, `munge`, `munge round trip`, `accounting`, `slurmctld`,
    /// `slurmd`, `nodes idle`, `config hash`).
    pub name: &'static str,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-host reports of the phase's host plans (empty for waits and checks).
    pub hosts: Vec<HostReport>,
}

/// What a deployment did.
#[derive(Debug, Clone)]
pub struct DeployReport {
    /// The `slurm.conf` every node now has.
    pub slurm_conf: String,
    /// The hardware each job-running node reported (or was given).
    pub hardware: BTreeMap<String, NodeHardware>,
    /// Phases, in order.
    pub phases: Vec<PhaseReport>,
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

/// Polls `probe` every `every` until it gives `Ok`, or `timeout` passed (then the last
/// `Err`). `probe` returning `Err(Stop(..))` ends the wait at once.
pub(crate) async fn wait_for<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, Wait>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Wait>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(Wait::Stop(why)) => return Err(Wait::Stop(why)),
            Err(Wait::Retry(why)) => {
                if Instant::now() + every > deadline {
                    return Err(Wait::Retry(format!(
                        "{why} (still so after {}s)",
                        timeout.as_secs()
                    )));
                }
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// The outcome of one probe of a wait.
#[derive(Debug)]
pub(crate) enum Wait {
    /// Not yet; try again.
    Retry(String),
    /// Will not get better; stop waiting.
    Stop(String),
}

impl Wait {
    pub(crate) fn into_inner(self) -> String {
        match self {
            Self::Retry(s) | Self::Stop(s) => s,
        }
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
async fn munge_between<E: Executor>(exec: &E, from: &str, to: &str) -> Result<(), Wait> {
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

async fn munge_round_trip<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    ctl: &str,
    timeout: Duration,
) -> Result<(), DeployError> {
    let checks = cluster.nodes.iter().map(|n| async move {
        let node = n.name.as_str();
        let r = wait_for(timeout, Duration::from_millis(500), || async {
            munge_between(exec, ctl, node).await?;
            munge_between(exec, node, ctl).await
        })
        .await;
        (node, r)
    });
    let mut failures = Vec::new();
    for (node, r) in join_all(checks).await {
        if let Err(w) = r {
            let mut msg = format!("node {node}: {}", w.into_inner());
            for n in [node, ctl] {
                msg.push_str("\n    ");
                msg.push_str(&format!("on {n}: {}", diagnose(exec, n, "munge").await));
            }
            failures.push(msg);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(phase_error("munge round trip", failures))
    }
}

/// slurmdbd accepts TCP connections on its port on the accounting host.
async fn wait_slurmdbd<E: Executor>(
    exec: &E,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(), DeployError> {
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    let r = wait_for(timeout, Duration::from_millis(500), || async {
        run_ok(exec, host, &["bash", "-c", probe.as_str()])
            .await
            .map(|_| ())
            .map_err(|e| {
                Wait::Retry(format!(
                    "slurmdbd does not accept connections on port {port}: {e}"
                ))
            })
    })
    .await;
    match r {
        Ok(()) => Ok(()),
        Err(w) => Err(phase_error(
            "accounting",
            vec![format!(
                "node {host}: {}\n    {}",
                w.into_inner(),
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
                w.into_inner(),
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
    let mut failures = vec![format!("on {ctl}: {}", w.into_inner())];
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

/// Deploy `cluster`'s SLURM on its running nodes (see the module docs for the order). Every
/// node must be reachable through `exec` by its name.
pub async fn deploy<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    secrets: &Secrets<'_>,
    opts: &DeployOptions,
) -> Result<DeployReport, DeployError> {
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
    let mut timer = Instant::now();
    let mut lap = |name: &'static str, hosts: Vec<HostReport>, phases: &mut Vec<PhaseReport>| {
        tracing::info!(
            phase = name,
            secs = timer.elapsed().as_secs_f64(),
            "SLURM phase done"
        );
        phases.push(PhaseReport {
            name,
            elapsed: timer.elapsed(),
            hosts,
        });
        timer = Instant::now();
    };

    let hardware = collect_hardware(exec, &job_nodes, &opts.hardware).await?;
    let slurm_conf = render_slurm_conf(cluster, &hardware, &render);
    let problems = check_consistency(cluster, &slurm_conf, &render_gres_conf(cluster));
    if !problems.is_empty() {
        return Err(DeployError::Inconsistent(
            problems.iter().map(ToString::to_string).collect(),
        ));
    }
    scontrol_parse(exec, &ctl, &slurm_conf).await?;
    lap("hardware", Vec::new(), &mut phases);

    let plan = plan_deploy(cluster, &slurm_conf, secrets, &render)?;
    for phase in &plan.phases {
        let hosts = apply_phase(exec, phase.kind, &phase.plans).await?;
        lap(phase.kind.name(), hosts, &mut phases);
        match phase.kind {
            PhaseKind::Munge => {
                munge_round_trip(exec, cluster, &ctl, opts.wait_timeout).await?;
                lap("munge round trip", Vec::new(), &mut phases);
            }
            PhaseKind::Accounting => {
                if let Some(host) = &slurm.accounting_host {
                    wait_slurmdbd(exec, host.as_str(), render.slurmdbd_port, opts.wait_timeout)
                        .await?;
                    lap("slurmdbd up", Vec::new(), &mut phases);
                }
            }
            PhaseKind::Controller => {
                wait_slurmctld(exec, &ctl, opts.wait_timeout).await?;
                lap("slurmctld up", Vec::new(), &mut phases);
            }
            PhaseKind::Nodes => {}
        }
    }
    wait_idle(exec, &ctl, &job_nodes, opts.wait_timeout).await?;
    lap("nodes idle", Vec::new(), &mut phases);
    check_hashes(exec, cluster).await?;
    lap("config hash", Vec::new(), &mut phases);
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
