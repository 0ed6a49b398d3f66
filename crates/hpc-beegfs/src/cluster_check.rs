//! `hpc-up check beegfs` through any [`Executor`]: the node probe, the release's own tools
//! on one client, and on every client at once a round trip with throughput and a read of
//! another client's file. Every failure is collected; nothing stops the check early.

use std::time::Duration;

use futures_util::future::join_all;
use hpc_config::Cluster;
use hpc_remote::{CommandOutput, Executor, HostError, Wait, wait_for};
use serde::Serialize;

use crate::check::{
    BENCH_MIB, Comparison, Health, NodeKind, ParseError, RoundTrip, ServerStatus, TargetSpace,
    TargetStatus, aggregate, cleanup_argv, compare_argv, mount_check_argv, parse_check_servers,
    parse_df, parse_health, parse_listtargets, parse_node_list, parse_target_list, peer_read_argv,
    roundtrip_argv, tool_commands,
};
use crate::deploy::{Preflight, exit_failure, host_error, journal, preflight_cluster, run_ok};
use crate::release::Release;
use crate::render::{Roles, roles};

/// Throughput in MiB/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    /// Writing (fsync included).
    pub write: f64,
    /// Reading (caches dropped first).
    pub read: f64,
}

impl Throughput {
    fn from_pair((write, read): (f64, f64)) -> Self {
        Self { write, read }
    }
}

/// One client's part of the check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientCheck {
    /// The client.
    pub node: String,
    /// Its token file was written into the mount and read back, and the throughput test ran.
    pub round_trip: bool,
    /// The client whose token file it read.
    pub peer: String,
    /// It read the peer's token (the mount is one shared filesystem).
    pub peer_seen: bool,
    /// Its throughput writing and reading [`BENCH_MIB`] MiB.
    pub mib_per_s: Option<Throughput>,
    /// The same on the node's local disk (`/var/tmp`), measured after the BeeGFS test.
    pub local_mib_per_s: Option<Throughput>,
    /// The read-write virtio-fs share measured beside BeeGFS, if the node has one.
    pub share: Option<String>,
    /// The same on that share.
    pub share_mib_per_s: Option<Throughput>,
}

/// What `check beegfs` found. [`ClusterCheck::passed`] when `failures` is empty.
///
/// Serializes (`--output json`) as `ok`, `release`, `tools-ran-on`, `servers`, `targets`,
/// `space`, `clients`, `aggregate-mib-per-s` and `failures`; the preflight facts and the
/// health check lines are not in it (their failures are).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterCheck {
    /// The release the cluster file names.
    pub release: Release,
    /// Where the release's tools ran: the management node when it is a client, else the
    /// first client.
    pub tool_node: String,
    /// The node probe and its judgement (its problems are failures here).
    pub preflight: Preflight,
    /// Every server the tools list (7.x `beegfs-check-servers`, 8.x `beegfs node list`).
    pub servers: Vec<ServerStatus>,
    /// Every storage target's state.
    pub targets: Vec<TargetStatus>,
    /// 8.x `beegfs health check` lines (empty on 7.x).
    pub health: Vec<(Health, String)>,
    /// Space per target (7.x `beegfs-df`; empty on 8.x).
    pub space: Vec<TargetSpace>,
    /// Every client, in cluster order.
    pub clients: Vec<ClientCheck>,
    /// All clients' bytes over the slowest client's time, when any finished.
    pub aggregate: Option<Throughput>,
    /// Everything that failed, each naming its node, server or target.
    pub failures: Vec<String>,
}

impl ClusterCheck {
    /// Nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterCheckWire<'a> {
    ok: bool,
    release: String,
    tools_ran_on: &'a str,
    servers: &'a [ServerStatus],
    targets: &'a [TargetStatus],
    space: &'a [TargetSpace],
    clients: &'a [ClientCheck],
    aggregate_mib_per_s: Option<Throughput>,
    failures: &'a [String],
}

impl Serialize for ClusterCheck {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ClusterCheckWire {
            ok: self.passed(),
            release: self.release.to_string(),
            tools_ran_on: &self.tool_node,
            servers: &self.servers,
            targets: &self.targets,
            space: &self.space,
            clients: &self.clients,
            aggregate_mib_per_s: self.aggregate,
            failures: &self.failures,
        }
        .serialize(s)
    }
}

/// Why the check could not run at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The cluster has no BeeGFS.
    #[error("the cluster file has no (enabled) `beegfs` section")]
    NoBeegfs,
    /// Nowhere to run the tools and the round trip.
    #[error("BeeGFS has no client nodes to check from")]
    NoClients,
}

/// How long an unreachable server is asked after again before the check calls it so.
const RECHECK: Duration = Duration::from_secs(30);

/// The server list asked for again, alone, until every server answers or [`RECHECK`] has
/// passed; the last list seen (or `first` when none could be read). A reachability check is
/// one heartbeat per server, first asked while the other tools run on the same node: on a
/// busy emulated node one reply can come too late for the tool (seen in CI: the management
/// service active and serving, reported unreachable once).
async fn recheck_servers<E: Executor>(
    exec: &E,
    node: &str,
    commands: &[(&'static str, Vec<String>)],
    first: Vec<ServerStatus>,
) -> Vec<ServerStatus> {
    let Some((label, argv)) = commands
        .iter()
        .find(|(l, _)| matches!(*l, "nodes" | "check-servers"))
    else {
        return first;
    };
    let r = wait_for(RECHECK, Duration::from_secs(3), || async {
        let o = exec.run(node, argv).await.map_err(|_| Wait::Retry(None))?;
        let stdout = String::from_utf8_lossy(&o.stdout);
        let parsed = match *label {
            "nodes" => parse_node_list(&stdout),
            _ => parse_check_servers(&stdout),
        };
        match parsed {
            Ok(list)
                if list
                    .iter()
                    .all(|s| s.kind == NodeKind::Client || s.reachable) =>
            {
                Ok(list)
            }
            Ok(list) => Err(Wait::Retry(Some(list))),
            Err(_) => Err(Wait::Retry(None)),
        }
    })
    .await;
    match r {
        Ok(list) => list,
        Err(e) => e.into_last().flatten().unwrap_or(first),
    }
}

fn parse_into<T>(into: &mut Vec<T>, r: Result<Vec<T>, ParseError>) -> Result<(), ParseError> {
    into.extend(r?);
    Ok(())
}

/// Runs `check beegfs`: the node probe ([`preflight_cluster`]); the release's tools
/// ([`tool_commands`]) on one client, their output parsed — every server reachable, every
/// target online and good, nothing degraded or critical, every metadata and storage node
/// registered; then on every client at once a round trip with throughput
/// ([`roundtrip_argv`], token `"{token}-{client}"`), each client reading the next one's
/// token ([`peer_read_argv`]), and cleanup ([`cleanup_argv`]). Every failure is collected in
/// [`ClusterCheck::failures`]; an `Err` only when there is nothing to check.
///
/// `token` should differ between runs (e.g. process id and time), so that a stale file
/// cannot pass for a fresh one.
pub async fn check_cluster<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    token: &str,
) -> Result<ClusterCheck, CheckError> {
    let Some(b) = &cluster.beegfs else {
        return Err(CheckError::NoBeegfs);
    };
    let release = Release::from_version(b.version);
    let clients: Vec<String> = b.clients.iter().map(ToString::to_string).collect();
    // The tools run where a client config exists: the management node when it is a client.
    let tool_node = clients
        .iter()
        .find(|c| *c == b.management.as_str())
        .or(clients.first())
        .cloned()
        .ok_or(CheckError::NoClients)?;
    let mount = b.mount_point.as_str();

    let preflight = preflight_cluster(exec, cluster).await;
    let mut failures: Vec<String> = preflight.problems.iter().map(|p| p.to_string()).collect();

    // The tools, at once on one node.
    let commands = tool_commands(cluster);
    let outputs = join_all(commands.iter().map(|(label, argv)| {
        let node = tool_node.as_str();
        async move { (*label, exec.run(node, argv).await) }
    }))
    .await;
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    let mut health = Vec::new();
    let mut space = Vec::new();
    for (label, r) in outputs {
        let o = match r {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!(
                    "{tool_node}: {label}: {}",
                    host_error(&tool_node, &e)
                ));
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&o.stdout);
        let parsed = match label {
            "check-servers" => parse_into(&mut servers, parse_check_servers(&stdout)),
            "nodes" => parse_into(&mut servers, parse_node_list(&stdout)),
            "targets" if release.is_v8() => parse_into(&mut targets, parse_target_list(&stdout)),
            "targets" => parse_into(&mut targets, parse_listtargets(&stdout)),
            "df" => parse_into(&mut space, parse_df(&stdout)),
            "health" => {
                health = parse_health(&stdout);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = parsed {
            failures.push(format!("{tool_node}: {e}"));
        }
        // `beegfs health check` exits 1 whenever a check is not healthy, also for the low
        // capacity pool that every small disk is in (below): its lines carry the verdict.
        let judged_by_lines = label == "health" && !health.is_empty();
        if o.status != Some(0) && !judged_by_lines {
            failures.push(format!("{tool_node}: {label} {}", exit_failure(&o)));
        }
    }
    if servers
        .iter()
        .any(|s| s.kind != NodeKind::Client && !s.reachable)
    {
        servers = recheck_servers(exec, &tool_node, &commands, servers).await;
    }
    let roles = roles(cluster);
    for s in servers
        .iter()
        .filter(|s| s.kind != NodeKind::Client && !s.reachable)
    {
        failures.push(unreachable(exec, &roles, s).await);
    }
    for t in targets.iter().filter(|t| !t.healthy()) {
        failures.push(format!(
            "target {} is {}/{}",
            t.id, t.reachability, t.consistency
        ));
    }
    for (h, line) in health.iter().filter(|(h, _)| *h >= Health::Degraded) {
        // The management service's default limits put small targets into the `low` pool
        // ("Available Capacity" degraded; on the test bed already with 199 GiB free, on
        // both releases): normal on a lab or VM cluster, and 7.x's beegfs-df shows the same
        // pool without failing. Emergency (critical) still fails.
        if *h == Health::Degraded && line.starts_with("Available Capacity") {
            continue;
        }
        failures.push(format!("health check {h:?}: {line}"));
    }
    let count = |k| servers.iter().filter(|s| s.kind == k).count();
    let (meta, storage) = (count(NodeKind::Meta), count(NodeKind::Storage));
    let (want_meta, want_storage) = (b.metadata.len(), b.storage.len());
    if meta < want_meta || storage < want_storage {
        failures.push(format!(
            "registered: {meta} meta of {want_meta}, {storage} storage of {want_storage}"
        ));
    }

    // Every client at once: the mount is BeeGFS, its own round trip, then the next
    // client's token.
    let mounts = join_all(clients.iter().map(|c| {
        let argv = mount_check_argv(mount);
        async move { (c.as_str(), exec.run(c, &argv).await) }
    }))
    .await;
    for (c, r) in mounts {
        // A client that cannot be reached is reported by its round trip below.
        if let Ok(o) = r
            && o.status != Some(0)
        {
            failures.push(format!("{c}: {mount} is not a BeeGFS mount"));
        }
    }
    let trips = join_all(clients.iter().map(|c| {
        let argv = roundtrip_argv(mount, c, &format!("{token}-{c}"), BENCH_MIB);
        async move { exec.run(c, &argv).await }
    }))
    .await;
    let peers = join_all(clients.iter().enumerate().map(|(i, c)| {
        let peer = clients[(i + 1) % clients.len()].as_str();
        let argv = peer_read_argv(mount, peer);
        let want = format!("{token}-{peer}");
        async move {
            let seen = match run_ok(exec, c, &argv).await {
                Ok(got) if got.trim() == want => Ok(()),
                Ok(got) if got.trim().is_empty() => Err("it read nothing".to_owned()),
                Ok(got) => Err(format!("it read `{}`", got.trim())),
                Err(e) => Err(e),
            };
            (peer, seen)
        }
    }))
    .await;
    // Beside BeeGFS's figures, the same file on each client's local disk and its first
    // read-write virtio-fs share, all clients at once as BeeGFS was measured. Informational:
    // a client where this cannot run only lacks the figures.
    let share_of = |c: &str| {
        cluster
            .node(c)
            .and_then(|n| n.virtiofs.iter().find(|m| !m.readonly))
            .map(|m| m.mount_point.clone())
    };
    let compared = join_all(clients.iter().map(|c| {
        let share = share_of(c);
        let argv = compare_argv(c, BENCH_MIB, share.as_deref());
        async move {
            let got = run_ok(exec, c, &argv).await.ok();
            (
                share,
                got.map(|o| Comparison::parse(&o)).unwrap_or_default(),
            )
        }
    }))
    .await;
    let mut compared = compared.into_iter();
    let mut rows = Vec::new();
    let mut finished = Vec::new();
    let mut passed_clients = Vec::new();
    for ((c, r), (peer, seen)) in clients.iter().zip(trips).zip(peers) {
        let (share, cmp) = compared.next().unwrap_or_default();
        let (trip, err) = trip_result(c, r);
        let round_trip = trip.ok && err.is_none();
        let mut why = Vec::new();
        if !round_trip {
            why.push(match err {
                Some(e) => format!("round trip failed: {e}"),
                None => "round trip failed: the token read back differs".to_owned(),
            });
        }
        if let Err(e) = &seen {
            why.push(format!("{peer}'s file not seen: {e}"));
        }
        if why.is_empty() {
            passed_clients.push(c.as_str());
        } else {
            failures.push(format!("{c}: {}", why.join("; ")));
        }
        rows.push(ClientCheck {
            node: c.clone(),
            round_trip,
            peer: peer.to_owned(),
            peer_seen: seen.is_ok(),
            mib_per_s: trip.rates(BENCH_MIB).map(Throughput::from_pair),
            local_mib_per_s: Comparison::rates(cmp.local_secs, BENCH_MIB)
                .map(Throughput::from_pair),
            share_mib_per_s: Comparison::rates(cmp.share_secs, BENCH_MIB)
                .map(Throughput::from_pair),
            share: share.filter(|_| cmp.share_secs.is_some()),
        });
        finished.push(trip);
    }
    let cleanups = join_all(clients.iter().map(|c| {
        let argv = cleanup_argv(mount, c);
        async move { (c.as_str(), run_ok(exec, c, &argv).await) }
    }))
    .await;
    for (c, r) in cleanups {
        // A client that already failed would only repeat itself here.
        if let (Err(e), true) = (r, passed_clients.contains(&c)) {
            failures.push(format!("{c}: cleanup of the check's files failed: {e}"));
        }
    }

    Ok(ClusterCheck {
        release,
        tool_node,
        preflight,
        servers,
        targets,
        health,
        space,
        clients: rows,
        aggregate: aggregate(&finished, BENCH_MIB).map(Throughput::from_pair),
        failures,
    })
}

/// "storage node_storage_2 is unreachable", with the cluster node that runs it (from the
/// numeric ID), the service's state there and its journal's last lines: the daemon's own
/// words on why, when the node answers.
async fn unreachable<E: Executor>(exec: &E, roles: &[(String, Roles)], s: &ServerStatus) -> String {
    let id = s.id.and_then(|i| u16::try_from(i).ok());
    let (node, service) = match s.kind {
        NodeKind::Management => (roles.iter().find(|(_, r)| r.mgmtd), "beegfs-mgmtd"),
        NodeKind::Meta => (
            roles.iter().find(|(_, r)| id.is_some() && r.meta == id),
            "beegfs-meta",
        ),
        NodeKind::Storage => (
            roles.iter().find(|(_, r)| id.is_some() && r.storage == id),
            "beegfs-storage",
        ),
        NodeKind::Client => (None, "beegfs-client"),
    };
    let mut msg = format!("{} {} is unreachable", s.kind.name(), s.node);
    let Some((node, _)) = node else {
        return msg;
    };
    let argv: Vec<String> = ["systemctl", "is-active", service]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
    let state = match exec.run(node, &argv).await {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Err(e) => host_error(node, &e),
    };
    msg.push_str(&format!(" (node {node}: {service} is {state})"));
    if let Some(j) = journal(exec, node, service, "").await {
        msg.push('\n');
        msg.push_str(&j);
    }
    msg
}

/// The round trip's parsed output and, when it did not exit 0, why.
fn trip_result(node: &str, r: Result<CommandOutput, HostError>) -> (RoundTrip, Option<String>) {
    match r {
        Ok(o) => {
            let trip = RoundTrip::parse(&String::from_utf8_lossy(&o.stdout));
            let err = (o.status != Some(0)).then(|| exit_failure(&o));
            (trip, err)
        }
        Err(e) => (RoundTrip::default(), Some(host_error(node, &e))),
    }
}
