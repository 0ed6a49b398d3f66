//! BeeGFS in the binary: the cluster's auth secret (made once, kept in the state directory),
//! the `render` artefacts, the deployment phases with the preflight gate, and
//! `hpc-up check beegfs`. The rules and text are `hpc_beegfs`'s; here are the effects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hpc_beegfs::{
    AuthSecret, BENCH_MIB, Health, Inputs, NodeFacts, RoundTrip, ServerStatus, TargetStatus,
};
use hpc_config::{BeegfsPackageSource, Cluster};
use hpc_remote::{Executor, Mode, SshExecutor};
use miette::{IntoDiagnostic, Result, WrapErr, miette};
use serde_json::json;

use crate::apply::{Target, load};
use crate::output::Output;
use crate::render::Artefact;

/// Bytes of the auth secret hpc-up makes (BeeGFS: 4–1024; hpc-up: 32–1024).
const AUTH_SECRET_BYTES: usize = 64;

/// The cluster's BeeGFS auth secret: `<state>/secrets/beegfs-conn.auth`, made once (0600).
fn auth_secret(cluster: &Cluster) -> Result<AuthSecret> {
    let bytes = crate::slurm::secret(cluster, "beegfs-conn.auth", AUTH_SECRET_BYTES, |b| b)?;
    AuthSecret::new(bytes).map_err(|e| {
        miette!(
            "{e}: remove {} to make a new one",
            cluster.state_dir.join("secrets/beegfs-conn.auth").display()
        )
    })
}

fn read_host_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    fs_err::read(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read the BeeGFS {what}"))
}

/// Everything the planner needs from this host. For `render` (`for_render`), nothing is
/// generated or required: the secret is a fixed stand-in (never written out) and missing
/// host files are stand-ins naming their path.
fn inputs(cluster: &Cluster, for_render: bool) -> Result<Inputs> {
    let Some(b) = &cluster.beegfs else {
        return Ok(Inputs::default());
    };
    let file = |p: &Option<PathBuf>, what: &str| -> Result<Option<Vec<u8>>> {
        match p {
            None => Ok(None),
            Some(p) if for_render => {
                Ok(Some(fs_err::read(p).unwrap_or_else(|_| {
                    format!("(contents of {})\n", p.display()).into_bytes()
                })))
            }
            Some(p) => read_host_file(p, what).map(Some),
        }
    };
    let repo_key = match &b.packages {
        BeegfsPackageSource::Repo { key, .. } => file(key, "repository key")?,
        _ => None,
    };
    let auth = match (b.auth, for_render) {
        (false, _) => None,
        (true, true) => Some(
            AuthSecret::new((0..AUTH_SECRET_BYTES as u8).collect()).map_err(|e| miette!("{e}"))?,
        ),
        (true, false) => Some(auth_secret(cluster)?),
    };
    Ok(Inputs {
        auth,
        tls_cert: file(&b.tls_cert_file, "TLS certificate")?,
        tls_key: file(&b.tls_key_file, "TLS key")?,
        repo_key,
    })
}

/// `render`: per node, `beegfs/<node>/etc/beegfs/…` and `beegfs/<node>/setup-steps.txt`.
pub(crate) fn artefacts(cluster: &Cluster) -> Result<Vec<Artefact>> {
    if cluster.beegfs.is_none() {
        return Ok(Vec::new());
    }
    let files = hpc_beegfs::config_files(cluster).map_err(|e| miette!("{e}"))?;
    let plan =
        hpc_beegfs::setup_plan(cluster, &inputs(cluster, true)?).map_err(|e| miette!("{e}"))?;
    let mut out = Vec::new();
    for (node, _) in &plan.roles {
        for f in files.get(node).into_iter().flatten() {
            out.push(Artefact {
                path: PathBuf::from("beegfs")
                    .join(node)
                    .join(f.path.trim_start_matches('/')),
                contents: String::from_utf8_lossy(&f.content).into_owned(),
            });
        }
        let mut steps = format!(
            "# BeeGFS {} on {node}: the host steps in order (phases run one after another,\n# all nodes of a phase at once). Secrets are shown as <secret>.\n",
            plan.release
        );
        for (phase, host) in plan.node_steps(node) {
            steps.push_str(&format!("\n[{phase}]\n{}", hpc_beegfs::describe(host)));
        }
        out.push(Artefact {
            path: PathBuf::from("beegfs").join(node).join("setup-steps.txt"),
            contents: steps,
        });
    }
    Ok(out)
}

/// Runs the probe on every BeeGFS node at once.
async fn probe(
    cluster: &Cluster,
    exec: &SshExecutor,
) -> (BTreeMap<String, NodeFacts>, BTreeMap<String, String>) {
    let argv = hpc_beegfs::probe_argv();
    let nodes: Vec<String> = hpc_beegfs::roles(cluster)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let results = futures_util::future::join_all(nodes.iter().map(|n| {
        let argv = &argv;
        async move { (n.clone(), exec.run(n, argv).await) }
    }))
    .await;
    let mut facts = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for (n, r) in results {
        match r {
            Ok(o) if o.status == Some(0) => {
                facts.insert(n, NodeFacts::parse(&String::from_utf8_lossy(&o.stdout)));
            }
            Ok(o) => {
                errors.insert(
                    n,
                    format!(
                        "probe exited with {:?}: {}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                );
            }
            Err(e) => {
                errors.insert(n, e.to_string());
            }
        }
    }
    (facts, errors)
}

/// The preflight gate: refuses (naming every problem) before anything is changed; warnings
/// are shown.
async fn preflight(out: &Output, cluster: &Cluster, exec: &SshExecutor) -> Result<()> {
    let (facts, errors) = probe(cluster, exec).await;
    let (problems, warnings) = hpc_beegfs::preflight(cluster, &facts, &errors);
    for w in &warnings {
        out.note(&format!("warning: {}: {}", w.node, w.message));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    Err(miette!("BeeGFS preflight failed:\n{}", list.join("\n")))
}

/// Deploy BeeGFS on the cluster's running nodes: preflight, then the phases in order.
/// Sets each BeeGFS node's `beegfs` time in `progress`.
pub(crate) async fn deploy(
    out: &Output,
    cluster: &Cluster,
    exec: &SshExecutor,
    progress: &crate::nodes::Progress,
) -> Result<bool> {
    if cluster.beegfs.is_none() {
        return Ok(false);
    }
    let started = Instant::now();
    preflight(out, cluster, exec).await?;
    let plan =
        hpc_beegfs::setup_plan(cluster, &inputs(cluster, false)?).map_err(|e| miette!("{e}"))?;
    out.note(&format!(
        "deploying BeeGFS {} on {} node(s)",
        plan.release,
        plan.roles.len()
    ));
    let mut changed = false;
    for phase in &plan.phases {
        let summary = hpc_remote::apply_all(exec, &phase.hosts, Mode::APPLY).await;
        if !summary.is_success() {
            return Err(miette!("BeeGFS {} phase failed:\n{summary}", phase.name));
        }
        changed |= summary
            .hosts
            .iter()
            .any(|(_, r)| r.as_ref().is_ok_and(|r| r.changed() > 0));
    }
    let secs = started.elapsed().as_secs_f64();
    for (n, _) in &plan.roles {
        progress.update(n, |t| t.beegfs = Some(secs));
    }
    Ok(changed)
}

fn ok(b: bool) -> &'static str {
    if b { "ok" } else { "FAIL" }
}

/// `hpc-up check beegfs`: preflight facts, the release's own tools on one client, and a
/// round trip with throughput on every client (all at once).
pub(crate) fn check(out: &Output, t: &Target<'_>) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let cluster = &l.cluster;
    let Some(b) = &cluster.beegfs else {
        return Err(miette!(
            "the cluster file has no (enabled) `beegfs` section"
        ));
    };
    let clients: Vec<String> = b.clients.iter().map(ToString::to_string).collect();
    // The tools run where a client config exists: the management node when it is a client.
    let Some(tool_node) = clients
        .iter()
        .find(|c| *c == b.management.as_str())
        .or(clients.first())
        .cloned()
    else {
        return Err(miette!("BeeGFS has no client nodes to check from"));
    };
    let token = format!(
        "hpc-up-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let exec = crate::nodes::executor(cluster, None)?;
    let mount = b.mount_point.as_str();
    let (preflight_result, tools, trips, peers) = rt.block_on(async {
        let pre = preflight(out, cluster, &exec).await;
        let mut tools = Vec::new();
        for (label, argv) in hpc_beegfs::tool_commands(cluster) {
            tools.push((label, exec.run(&tool_node, &argv).await));
        }
        let trips = futures_util::future::join_all(clients.iter().map(|c| {
            let argv = hpc_beegfs::roundtrip_argv(mount, c, &format!("{token}-{c}"), BENCH_MIB);
            let exec = &exec;
            async move { exec.run(c, &argv).await }
        }))
        .await;
        // Each client reads the next one's token: the mount is one shared filesystem.
        let peers = futures_util::future::join_all(clients.iter().enumerate().map(|(i, c)| {
            let peer = clients[(i + 1) % clients.len()].clone();
            let argv = hpc_beegfs::peer_read_argv(mount, &peer);
            let exec = &exec;
            let want = format!("{token}-{peer}");
            async move {
                let seen = exec
                    .run(c, &argv)
                    .await
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim() == want)
                    .unwrap_or(false);
                (peer, seen)
            }
        }))
        .await;
        for c in &clients {
            let _ = exec.run(c, &hpc_beegfs::cleanup_argv(mount, c)).await;
        }
        exec.close().await;
        (pre, tools, trips, peers)
    });

    let mut failures: Vec<String> = Vec::new();
    if let Err(e) = &preflight_result {
        failures.push(e.to_string());
    }
    let mut servers: Vec<ServerStatus> = Vec::new();
    let mut targets: Vec<TargetStatus> = Vec::new();
    let mut health: Vec<(Health, String)> = Vec::new();
    let mut space = Vec::new();
    for (label, r) in tools {
        let o = match r {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{tool_node}: {label}: {e}"));
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let parsed: std::result::Result<(), hpc_beegfs::ParseError> = match label {
            "check-servers" => parse_into(&mut servers, hpc_beegfs::parse_check_servers(&stdout)),
            "nodes" => parse_into(&mut servers, hpc_beegfs::parse_node_list(&stdout)),
            "targets" if b.version.major >= 8 => {
                parse_into(&mut targets, hpc_beegfs::parse_target_list(&stdout))
            }
            "targets" => parse_into(&mut targets, hpc_beegfs::parse_listtargets(&stdout)),
            "df" => parse_into(&mut space, hpc_beegfs::parse_df(&stdout)),
            "health" => {
                health = hpc_beegfs::parse_health(&stdout);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = parsed {
            failures.push(format!("{tool_node}: {e}"));
        }
        if o.status != Some(0) {
            failures.push(format!(
                "{tool_node}: {label} exited with {:?}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    for s in servers
        .iter()
        .filter(|s| s.kind != hpc_beegfs::NodeKind::Client && !s.reachable)
    {
        failures.push(format!("{} {} is unreachable", s.kind.name(), s.node));
    }
    for t in targets.iter().filter(|t| !t.healthy()) {
        failures.push(format!(
            "target {} is {}/{}",
            t.id, t.reachability, t.consistency
        ));
    }
    for (h, text) in health.iter().filter(|(h, _)| *h >= Health::Degraded) {
        failures.push(format!("health check {h:?}: {text}"));
    }
    let want_meta = b.metadata.len();
    let want_storage = b.storage.len();
    let count = |k| servers.iter().filter(|s| s.kind == k).count();
    if count(hpc_beegfs::NodeKind::Meta) < want_meta
        || count(hpc_beegfs::NodeKind::Storage) < want_storage
    {
        failures.push(format!(
            "registered: {} meta of {want_meta}, {} storage of {want_storage}",
            count(hpc_beegfs::NodeKind::Meta),
            count(hpc_beegfs::NodeKind::Storage)
        ));
    }
    let mut rows = Vec::new();
    for ((c, r), (peer, seen)) in clients.iter().zip(trips).zip(peers) {
        let (trip, err) = match r {
            Ok(o) => {
                let trip = RoundTrip::parse(&String::from_utf8_lossy(&o.stdout));
                let err = (o.status != Some(0))
                    .then(|| String::from_utf8_lossy(&o.stderr).trim().to_owned());
                (trip, err)
            }
            Err(e) => (RoundTrip::default(), Some(e.to_string())),
        };
        if !trip.ok || !seen || err.is_some() {
            failures.push(format!(
                "{c}: round trip {}, {peer}'s file {}{}",
                ok(trip.ok),
                if seen { "seen" } else { "NOT seen" },
                err.map(|e| format!(": {e}")).unwrap_or_default()
            ));
        }
        rows.push((c.clone(), trip, peer, seen));
    }
    let trips: Vec<RoundTrip> = rows.iter().map(|r| r.1.clone()).collect();
    let total = hpc_beegfs::aggregate(&trips, BENCH_MIB);

    if out.json() {
        out.json_value(&json!({
            "ok": failures.is_empty(),
            "release": b.version.to_string(),
            "tools-ran-on": tool_node,
            "servers": servers.iter().map(|s| json!({"type": s.kind.name(), "node": s.node, "id": s.id, "reachable": s.reachable})).collect::<Vec<_>>(),
            "targets": targets.iter().map(|t| json!({"id": t.id, "reachability": t.reachability, "consistency": t.consistency})).collect::<Vec<_>>(),
            "space": space.iter().map(|s| json!({"type": s.kind.name(), "id": s.id, "pool": s.pool, "total": s.total, "free": s.free})).collect::<Vec<_>>(),
            "clients": rows.iter().map(|(c, t, peer, seen)| json!({
                "node": c, "round-trip": t.ok, "peer": peer, "peer-seen": seen,
                "mib-per-s": t.rates(BENCH_MIB).map(|(w, r)| json!({"write": w, "read": r})),
            })).collect::<Vec<_>>(),
            "aggregate-mib-per-s": total.map(|(w, r)| json!({"write": w, "read": r})),
            "failures": failures,
        }));
    } else {
        let mut s = format!("BeeGFS {} (tools on {tool_node})\n", b.version);
        for v in &servers {
            s.push_str(&format!(
                "  {:<10} {:<16} id {:<5} {}\n",
                v.kind.name(),
                v.node,
                v.id.map_or("-".into(), |i| i.to_string()),
                if v.reachable {
                    "reachable"
                } else {
                    "UNREACHABLE"
                }
            ));
        }
        for t in &targets {
            s.push_str(&format!(
                "  target {:<6} {} / {}\n",
                t.id, t.reachability, t.consistency
            ));
        }
        s.push_str(&format!(
            "{:<10} {:<10} {:<12} {:>14}\n",
            "client", "round trip", "peer's file", "MiB/s w/r"
        ));
        for (c, t, peer, seen) in &rows {
            s.push_str(&format!(
                "{:<10} {:<10} {:<12} {:>14}\n",
                c,
                ok(t.ok),
                if *seen {
                    format!("{peer} ok")
                } else {
                    format!("{peer} FAIL")
                },
                t.rates(BENCH_MIB)
                    .map_or("-".into(), |(w, r)| format!("{w:.0}/{r:.0}"))
            ));
        }
        if let Some((w, r)) = total {
            s.push_str(&format!(
                "aggregate: {w:.0} MiB/s write, {r:.0} MiB/s read ({} client(s) × {BENCH_MIB} MiB at once)\n",
                rows.len()
            ));
        }
        for f in &failures {
            s.push_str(&format!("FAIL {f}\n"));
        }
        s.push_str(if failures.is_empty() {
            "beegfs: all checks pass\n"
        } else {
            "beegfs: FAIL\n"
        });
        out.data(&s);
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn parse_into<T>(
    into: &mut Vec<T>,
    r: std::result::Result<Vec<T>, hpc_beegfs::ParseError>,
) -> std::result::Result<(), hpc_beegfs::ParseError> {
    into.extend(r?);
    Ok(())
}
