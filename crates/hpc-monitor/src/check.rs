//! `hpc-up check monitoring`: Prometheus's HTTP API, asked from this host, says every node's
//! exporter is up, a query per node returns data, and (with SLURM metrics) the SLURM series
//! exist and agree with `sinfo` on the SLURM metrics node.
//!
//! [`check_with`] takes any base URL and node list, so its HTTP and parsing run against
//! real daemons on loopback in the tests; [`check_cluster`] points it at the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hpc_config::Cluster;
use hpc_remote::{Executor, HostError};
use serde::Serialize;
use serde_json::Value;

use crate::render::{NODE_JOB, SLURM_METRICS_EVERY_SECS, SLURM_SERIES};

/// Why the check could not run (what it found wrong is in [`MonitoringCheck`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The cluster has no monitoring.
    #[error("the cluster file has no (enabled) `monitoring:` section")]
    NotConfigured,
    /// Prometheus's API did not answer (after every attempt).
    #[error("Prometheus at {url} did not answer: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Prometheus answered something this check cannot read.
    #[error("Prometheus at {url} answered something unreadable: {reason}")]
    BadAnswer {
        /// The URL asked.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// `sinfo` could not be run on the SLURM metrics node.
    #[error("cannot run sinfo on {node}")]
    Remote {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: HostError,
    },
    /// A blocking HTTP call was lost (its task panicked or was cancelled).
    #[error("an HTTP request to Prometheus was lost: {0}")]
    Task(String),
}

/// What to check and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTarget {
    /// Prometheus's base URL (`http://10.77.0.10:9090`).
    pub base_url: String,
    /// The nodes whose exporters must be targets of the node job (their `node` labels).
    pub nodes: Vec<String>,
    /// The node whose `sinfo` the SLURM series are compared with, when SLURM metrics are on.
    pub slurm_node: Option<String>,
    /// Rounds before giving up (targets come up within a scrape interval or two, and SLURM
    /// states may change between a scrape and `sinfo`).
    pub attempts: u32,
    /// Pause between rounds.
    pub delay: Duration,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
}

impl CheckTarget {
    /// Defaults: 30 rounds, 2 s apart, 10 s per request.
    pub fn new(base_url: impl Into<String>, nodes: Vec<String>) -> Self {
        Self {
            base_url: base_url.into(),
            nodes,
            slurm_node: None,
            attempts: 30,
            delay: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
        }
    }

    /// `cluster`'s Prometheus at `http://<server ip>:<port>`, every node, and the SLURM
    /// metrics node; `None` without monitoring.
    pub fn for_cluster(cluster: &Cluster) -> Option<Self> {
        let m = cluster.monitoring.as_ref()?;
        let server = cluster.node(m.server.as_str())?;
        let mut t = Self::new(
            format!("http://{}:{}", server.ip, m.port),
            cluster.nodes.iter().map(|n| n.name.to_string()).collect(),
        );
        t.slurm_node = m.slurm_metrics.as_ref().map(ToString::to_string);
        Some(t)
    }
}

/// The result of the check: plain data (`--output json`), kebab-case keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MonitoringCheck {
    /// Prometheus's base URL.
    pub url: String,
    /// Rounds it took (the last one is reported).
    pub attempts: u32,
    /// Every target of the node job, and each expected node that is not one.
    pub targets: Vec<TargetHealth>,
    /// The query per node.
    pub queries: Vec<NodeQuery>,
    /// The SLURM series against `sinfo`, when SLURM metrics are on.
    pub slurm: Option<SlurmCheck>,
    /// What is wrong, each naming its node.
    pub problems: Vec<String>,
    /// No problems.
    pub ok: bool,
}

/// One target of Prometheus's node job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TargetHealth {
    /// Its `node` label.
    pub node: String,
    /// The URL Prometheus scrapes (empty for an expected node Prometheus does not have).
    pub scrape_url: String,
    /// `up`, `down`, `unknown` (not scraped yet) or `missing` (no such target).
    pub health: String,
    /// The last scrape's error, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// A query for one node's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeQuery {
    /// The node.
    pub node: String,
    /// The PromQL asked.
    pub query: String,
    /// It returned data.
    pub ok: bool,
    /// The first sample's value.
    pub value: Option<f64>,
}

/// The SLURM series on Prometheus against `sinfo`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SlurmCheck {
    /// Where `sinfo` ran.
    pub node: String,
    /// Series Prometheus does not have.
    pub missing_series: Vec<String>,
    /// Seconds since the script last read SLURM, by Prometheus's clock (`None`: no series).
    pub last_success_age_seconds: Option<f64>,
    /// Nodes per state, both ways.
    pub states: Vec<SlurmComparison>,
}

/// The oldest the SLURM metrics may be (by Prometheus's clock) before the check says the
/// timer does not run: four timer periods and a minute of clock skew between nodes.
pub const MAX_SLURM_METRICS_AGE_SECS: u32 = 4 * SLURM_METRICS_EVERY_SECS + 60;

/// Nodes in one state, on Prometheus (`sum by (state) (slurm_nodes)`) and in `sinfo`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SlurmComparison {
    /// The state (lower case, without sinfo's flag suffix).
    pub state: String,
    /// Prometheus's count (`None`: no series).
    pub prometheus: Option<f64>,
    /// `sinfo`'s count.
    pub sinfo: u64,
    /// They agree (no series counts as 0).
    pub agree: bool,
}

impl MonitoringCheck {
    /// A text summary: one line per target, query and state, then the problems.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "Prometheus {}: {} (round {})",
            self.url,
            if self.ok { "ok" } else { "FAILED" },
            self.attempts
        )];
        for t in &self.targets {
            let mut l = format!("target {}: {}", t.node, t.health);
            if !t.scrape_url.is_empty() {
                l.push_str(&format!(" ({})", t.scrape_url));
            }
            if !t.last_error.is_empty() {
                l.push_str(&format!(": {}", t.last_error));
            }
            out.push(l);
        }
        for q in &self.queries {
            out.push(match q.value {
                Some(v) => format!("query {}: {} = {v}", q.node, q.query),
                None => format!("query {}: {} returned no data", q.node, q.query),
            });
        }
        if let Some(s) = &self.slurm {
            for c in &s.states {
                let prom = c
                    .prometheus
                    .map_or_else(|| "none".to_owned(), |v| v.to_string());
                out.push(format!(
                    "slurm nodes {}: prometheus {prom}, sinfo on {} {}{}",
                    c.state,
                    s.node,
                    c.sinfo,
                    if c.agree { "" } else { " (disagree)" }
                ));
            }
            if let Some(age) = s.last_success_age_seconds {
                out.push(format!("slurm metrics age: {age:.0} s"));
            }
            for m in &s.missing_series {
                out.push(format!("slurm series {m}: missing"));
            }
        }
        for p in &self.problems {
            out.push(format!("problem: {p}"));
        }
        out
    }
}

/// A node state as the SLURM metrics script writes it: lower case, without the flag sinfo
/// appends (`idle*` is not responding, `down~` powered off, …).
pub fn normalize_node_state(s: &str) -> String {
    s.to_ascii_lowercase()
        .trim_end_matches(|c| "*~#!%$@^-".contains(c))
        .to_owned()
}

/// Nodes per state from `sinfo -h -N -o '%N %T'` (a node listed once per partition is
/// counted once).
pub fn parse_sinfo_nodes(out: &str) -> BTreeMap<String, u64> {
    let mut seen = BTreeSet::new();
    let mut by_state = BTreeMap::new();
    for line in out.lines() {
        let mut w = line.split_whitespace();
        let (Some(node), Some(state)) = (w.next(), w.next()) else {
            continue;
        };
        if seen.insert(node.to_owned()) {
            *by_state.entry(normalize_node_state(state)).or_insert(0) += 1;
        }
    }
    by_state
}

fn bad(url: &str, reason: impl Into<String>) -> CheckError {
    CheckError::BadAnswer {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

/// The `data` of a Prometheus API answer whose `status` is `success`.
fn data<'a>(url: &str, v: &'a Value) -> Result<&'a Value, CheckError> {
    match v.get("status").and_then(Value::as_str) {
        Some("success") => v.get("data").ok_or_else(|| bad(url, "no `data`")),
        _ => Err(bad(
            url,
            format!(
                "status is not success: {}",
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("(no error given)")
            ),
        )),
    }
}

fn parse_json(url: &str, body: &str) -> Result<Value, CheckError> {
    serde_json::from_str(body).map_err(|e| bad(url, format!("not JSON: {e}")))
}

/// The targets of job `job` in an answer of `/api/v1/targets`, by their `node` label.
pub fn parse_targets(url: &str, body: &str, job: &str) -> Result<Vec<TargetHealth>, CheckError> {
    let v = parse_json(url, body)?;
    let active = data(url, &v)?
        .get("activeTargets")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(url, "no `activeTargets` list"))?;
    let s = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok(active
        .iter()
        .filter(|t| t.pointer("/labels/job").and_then(Value::as_str) == Some(job))
        .map(|t| TargetHealth {
            node: t
                .pointer("/labels/node")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            scrape_url: s(t, "scrapeUrl"),
            health: s(t, "health"),
            last_error: s(t, "lastError"),
        })
        .collect())
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The samples of an instant-vector answer of `/api/v1/query`.
pub fn parse_vector(url: &str, body: &str) -> Result<Vec<Sample>, CheckError> {
    let v = parse_json(url, body)?;
    let d = data(url, &v)?;
    if d.get("resultType").and_then(Value::as_str) != Some("vector") {
        return Err(bad(url, "the result is not an instant vector"));
    }
    let result = d
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(url, "no `result` list"))?;
    result
        .iter()
        .map(|r| {
            let labels = r
                .get("metric")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let value = r
                .pointer("/value/1")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| bad(url, "a sample without a number"))?;
            Ok(Sample { labels, value })
        })
        .collect()
}

/// A PromQL string literal.
fn promql_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Prometheus's HTTP API over ureq, one blocking GET at a time on tokio's blocking pool.
#[derive(Clone)]
struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(base: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// GET `path` with `query` parameters; the body of a 200 answer.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<String, CheckError> {
        let url = format!("{}{path}", self.base);
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let agent = self.agent.clone();
        let u = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut req = agent.get(&u);
            for (k, v) in &query {
                req = req.query(k, v);
            }
            let unreachable = |e: ureq::Error| CheckError::Unreachable {
                url: u.clone(),
                reason: e.to_string(),
            };
            let mut resp = req.call().map_err(unreachable)?;
            let status = resp.status();
            let body = resp.body_mut().read_to_string().map_err(unreachable)?;
            // The API answers errors (a bad query) as JSON too; `data` reads them.
            if status.is_success() || body.starts_with('{') {
                Ok(body)
            } else {
                Err(bad(&u, format!("HTTP {status}")))
            }
        })
        .await
        .map_err(|e| CheckError::Task(e.to_string()))?
    }

    async fn query(&self, q: &str) -> Result<Vec<Sample>, CheckError> {
        let body = self.get("/api/v1/query", &[("query", q)]).await?;
        parse_vector(&format!("{}/api/v1/query", self.base), &body)
    }
}

/// One round of the check.
async fn round<E: Executor>(
    exec: &E,
    api: &Api,
    target: &CheckTarget,
    attempt: u32,
) -> Result<MonitoringCheck, CheckError> {
    let mut problems = Vec::new();
    let body = api.get("/api/v1/targets", &[]).await?;
    let found = parse_targets(&format!("{}/api/v1/targets", api.base), &body, NODE_JOB)?;
    let mut targets = Vec::new();
    for node in &target.nodes {
        let mine: Vec<&TargetHealth> = found.iter().filter(|t| &t.node == node).collect();
        if mine.is_empty() {
            problems.push(format!(
                "{node}: Prometheus has no `{NODE_JOB}` target for it"
            ));
            targets.push(TargetHealth {
                node: node.clone(),
                scrape_url: String::new(),
                health: "missing".to_owned(),
                last_error: String::new(),
            });
        }
        for t in mine {
            if t.health != "up" {
                problems.push(format!(
                    "{node}: its node exporter ({}) is {} to Prometheus{}",
                    t.scrape_url,
                    t.health,
                    if t.last_error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", t.last_error)
                    }
                ));
            }
            targets.push(t.clone());
        }
    }
    for t in &found {
        if !target.nodes.contains(&t.node) {
            problems.push(format!(
                "{}: Prometheus scrapes {} for a node the cluster does not have",
                t.node, t.scrape_url
            ));
            targets.push(t.clone());
        }
    }

    let mut queries = Vec::new();
    for node in &target.nodes {
        let q = format!("node_load1{{node={}}}", promql_str(node));
        let samples = api.query(&q).await?;
        let value = samples.first().map(|s| s.value);
        if value.is_none() {
            problems.push(format!("{node}: `{q}` returned no data"));
        }
        queries.push(NodeQuery {
            node: node.clone(),
            query: q,
            ok: value.is_some(),
            value,
        });
    }

    let slurm = match &target.slurm_node {
        None => None,
        Some(node) => Some(slurm_round(exec, api, node, &mut problems).await?),
    };
    Ok(MonitoringCheck {
        url: api.base.clone(),
        attempts: attempt,
        targets,
        queries,
        slurm,
        ok: problems.is_empty(),
        problems,
    })
}

async fn slurm_round<E: Executor>(
    exec: &E,
    api: &Api,
    node: &str,
    problems: &mut Vec<String>,
) -> Result<SlurmCheck, CheckError> {
    let mut missing_series = Vec::new();
    for s in SLURM_SERIES {
        if api.query(&format!("count({s})")).await?.is_empty() {
            problems.push(format!(
                "{node}: Prometheus has no `{s}` series (the SLURM metrics timer writes them there)"
            ));
            missing_series.push(s.to_owned());
        }
    }
    let age = api
        .query("time() - max(slurm_metrics_last_success_timestamp_seconds)")
        .await?
        .first()
        .map(|s| s.value);
    if let Some(age) = age
        && age > f64::from(MAX_SLURM_METRICS_AGE_SECS)
    {
        problems.push(format!(
            "{node}: the SLURM metrics are {age:.0} s old (more than {MAX_SLURM_METRICS_AGE_SECS} s): \
             is {} running, and can it run sinfo and squeue?",
            crate::render::SLURM_METRICS_TIMER
        ));
    }
    let prom: BTreeMap<String, f64> = api
        .query("sum by (state) (slurm_nodes)")
        .await?
        .into_iter()
        .map(|s| (s.labels.get("state").cloned().unwrap_or_default(), s.value))
        .collect();
    let argv: Vec<String> = ["sinfo", "-h", "-N", "-o", "%N %T"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let out = exec
        .run(node, &argv)
        .await
        .map_err(|source| CheckError::Remote {
            node: node.to_owned(),
            source,
        })?;
    let mut states = Vec::new();
    if out.status != Some(0) {
        problems.push(format!(
            "{node}: sinfo failed ({}): {}",
            out.status
                .map_or_else(|| "killed".to_owned(), |s| format!("exit status {s}")),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    } else {
        let sinfo = parse_sinfo_nodes(&String::from_utf8_lossy(&out.stdout));
        let all: BTreeSet<&String> = prom.keys().chain(sinfo.keys()).collect();
        for state in all {
            let p = prom.get(state).copied();
            let s = sinfo.get(state).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss, clippy::float_cmp)]
            let agree = p.unwrap_or(0.0) == s as f64;
            if !agree {
                problems.push(format!(
                    "{node}: {s} node(s) {state} in sinfo, {} in Prometheus's slurm_nodes",
                    p.map_or_else(|| "none".to_owned(), |v| v.to_string())
                ));
            }
            states.push(SlurmComparison {
                state: state.clone(),
                prometheus: p,
                sinfo: s,
                agree,
            });
        }
    }
    Ok(SlurmCheck {
        node: node.to_owned(),
        missing_series,
        last_success_age_seconds: age,
        states,
    })
}

/// Checks the Prometheus at `target.base_url`: every node a healthy target of the node job
/// (and no other), `node_load1{node=…}` returns data for each, and with
/// `target.slurm_node` the SLURM series exist and `slurm_nodes` per state agrees with
/// `sinfo` run there through `exec`. Rounds repeat until one finds nothing wrong or
/// `target.attempts` ran out; the last round is returned. `Err` only when Prometheus never
/// answered readably, or `sinfo` could not be started.
pub async fn check_with<E: Executor>(
    exec: &E,
    target: &CheckTarget,
) -> Result<MonitoringCheck, CheckError> {
    let api = Api::new(&target.base_url, target.timeout);
    let attempts = target.attempts.max(1);
    let mut attempt = 1;
    loop {
        let r = round(exec, &api, target, attempt).await;
        let retry = match &r {
            Ok(c) => !c.ok,
            Err(CheckError::Unreachable { .. } | CheckError::BadAnswer { .. }) => true,
            Err(_) => false,
        };
        if !retry || attempt >= attempts {
            return r;
        }
        attempt += 1;
        tokio::time::sleep(target.delay).await;
    }
}

/// Checks `cluster`'s monitoring from this host ([`CheckTarget::for_cluster`], then
/// [`check_with`]).
pub async fn check_cluster<E: Executor>(
    exec: &E,
    cluster: &Cluster,
) -> Result<MonitoringCheck, CheckError> {
    let target = CheckTarget::for_cluster(cluster).ok_or(CheckError::NotConfigured)?;
    check_with(exec, &target).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sinfo_counts_each_node_once_and_drops_flags() {
        let m = parse_sinfo_nodes("cn1 idle\ncn1 idle\ncn2 MIXED*\ncn3 down~\n\nbad\n");
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [
                ("down".to_owned(), 1),
                ("idle".to_owned(), 1),
                ("mixed".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn targets_are_read_by_job_and_node_label() {
        let body = r#"{"status":"success","data":{"activeTargets":[
            {"labels":{"job":"node","node":"cn1","role":"compute"},"scrapeUrl":"http://10.0.0.2:9100/metrics","health":"up","lastError":""},
            {"labels":{"job":"node","node":"ctl"},"scrapeUrl":"http://10.0.0.1:9100/metrics","health":"down","lastError":"connection refused"},
            {"labels":{"job":"prometheus","node":"ctl"},"scrapeUrl":"http://127.0.0.1:9090/metrics","health":"up","lastError":""}
        ],"droppedTargets":[]}}"#;
        let t = parse_targets("u", body, "node").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].node, "cn1");
        assert_eq!(t[0].health, "up");
        assert_eq!(t[1].last_error, "connection refused");
    }

    #[test]
    fn vectors_and_errors() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"state":"idle"},"value":[1700000000.1,"2"]}]}}"#;
        let v = parse_vector("u", body).unwrap();
        assert_eq!(v[0].labels["state"], "idle");
        assert!((v[0].value - 2.0).abs() < f64::EPSILON);
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let e = parse_vector("u", err).unwrap_err().to_string();
        assert!(e.contains("parse error"), "{e}");
        assert!(parse_vector("u", "<html>").is_err());
        assert!(parse_targets("u", r#"{"status":"success","data":{}}"#, "node").is_err());
    }

    #[test]
    fn states_normalize_like_the_script() {
        assert_eq!(normalize_node_state("IDLE*"), "idle");
        assert_eq!(normalize_node_state("drained~"), "drained");
        assert_eq!(normalize_node_state("allocated"), "allocated");
    }
}
