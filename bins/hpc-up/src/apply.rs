//! `plan`, `up`, `down`, `status`, `start`, `stop`: the libvirt lifecycle, per connection.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use hpc_config::Cluster;
use hpc_libvirt::{Action, Journal, LibvirtPlan, Outcome, VirtHypervisor, kind_name};
use miette::{IntoDiagnostic, Result, WrapErr, miette};
use serde_json::json;

use crate::output::Output;

/// Options shared by the lifecycle commands.
pub(crate) struct Target<'a> {
    pub(crate) file: &'a Path,
    pub(crate) connect: Option<&'a str>,
    pub(crate) state_dir: Option<&'a Path>,
}

/// The cluster with command-line overrides applied, and its libvirt plan.
pub(crate) struct Loaded {
    pub(crate) cluster: Cluster,
    pub(crate) plan: LibvirtPlan,
}

pub(crate) fn load(out: &Output, t: &Target<'_>) -> Result<Option<Loaded>> {
    let mut cluster = match hpc_config::load_file(t.file) {
        Ok(c) => c,
        Err(hpc_config::LoadError::Invalid(errors)) => {
            out.diagnostic(errors.as_ref());
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(uri) = t.connect {
        let uri: hpc_config::types::ConnectUri =
            uri.parse().map_err(|e| miette!("--connect: {e}"))?;
        for n in &mut cluster.nodes {
            n.uri = uri.clone();
        }
    }
    if let Some(dir) = t.state_dir {
        cluster.state_dir = std::path::absolute(dir).into_diagnostic()?;
    }
    let plan = hpc_libvirt::plan(&cluster);
    Ok(Some(Loaded { cluster, plan }))
}

/// The connections of a plan, in plan order.
fn uris(plan: &LibvirtPlan) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for o in &plan.objects {
        if !v.iter().any(|u| u == o.uri.as_str()) {
            v.push(o.uri.as_str().to_owned());
        }
    }
    v
}

fn connect(uri: &str) -> Result<VirtHypervisor> {
    VirtHypervisor::connect(uri)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot reach libvirt at {uri}"))
}

fn is_local(uri: &str) -> bool {
    uri.parse::<hpc_config::types::ConnectUri>()
        .map(|u| u.remote_host().is_none())
        .unwrap_or(true)
}

/// Serialises hpc-up runs on one cluster: an exclusive lock on `<state_dir>/lock`.
struct StateLock {
    _file: std::fs::File,
}

fn lock_state(cluster: &Cluster) -> Result<StateLock> {
    let dir = &cluster.state_dir;
    fs_err::create_dir_all(dir).into_diagnostic()?;
    let path = dir.join("lock");
    let file = fs_err::File::create(&path).into_diagnostic()?.into_file();
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(_) => Err(miette!(
            "another hpc-up is working on cluster `{}` ({} is locked)",
            cluster.name,
            path.display()
        )),
    }
}

fn journal(cluster: &Cluster) -> Result<Journal> {
    Journal::open(&cluster.state_dir, cluster.name.as_str()).into_diagnostic()
}

/// Set by SIGINT/SIGTERM; `up` checks it between steps and unwinds.
fn cancel_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).into_diagnostic()?;
    }
    Ok(flag)
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Unchanged => "unchanged",
        Action::Update => "update",
        Action::Recreate => "recreate",
        Action::Delete => "delete",
    }
}

pub(crate) fn plan(out: &Output, t: &Target<'_>) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let mut rows = Vec::new();
    for uri in uris(&l.plan) {
        let hv = connect(&uri)?;
        for c in hpc_libvirt::diff(&l.plan, &hv).into_diagnostic()? {
            rows.push((uri.clone(), c));
        }
    }
    let changes = rows
        .iter()
        .filter(|(_, c)| c.action != Action::Unchanged)
        .count();
    if out.json() {
        let v: Vec<_> = rows
            .iter()
            .map(|(uri, c)| {
                json!({"uri": uri, "kind": kind_name(&c.kind), "name": c.name, "action": action_word(c.action)})
            })
            .collect();
        out.json_value(
            &json!({"cluster": l.cluster.name.as_str(), "changes": changes, "objects": v}),
        );
    } else {
        let mut text = String::new();
        for (uri, c) in &rows {
            text.push_str(&format!(
                "{:<10} {:<13} {:<32} {uri}\n",
                action_word(c.action),
                kind_name(&c.kind),
                c.name
            ));
        }
        let mut ro: Vec<&str> = l
            .cluster
            .nodes
            .iter()
            .flat_map(|n| {
                n.virtiofs
                    .iter()
                    .filter(|m| m.readonly)
                    .map(|m| m.tag.as_str())
            })
            .collect();
        ro.sort_unstable();
        ro.dedup();
        if !ro.is_empty() {
            text.push_str(&format!(
                "note: read-only share(s) {} are enforced by the guests' `ro` mounts (libvirt 9 has no read-only virtio-fs)\n",
                ro.join(", ")
            ));
        }
        text.push_str(&if changes == 0 {
            "no changes\n".to_owned()
        } else {
            format!("{changes} change(s)\n")
        });
        out.data(&text);
    }
    Ok(ExitCode::SUCCESS)
}

/// Host directories of shares that ask for it (`create: true`), on this connection's nodes.
fn create_share_dirs(cluster: &Cluster, uri: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for n in cluster.nodes.iter().filter(|n| n.uri.as_str() == uri) {
        for m in n
            .virtiofs
            .iter()
            .filter(|m| m.create && !m.host_path.exists())
        {
            fs_err::create_dir_all(&m.host_path).into_diagnostic()?;
            fs_err::set_permissions(&m.host_path, std::fs::Permissions::from_mode(0o755))
                .into_diagnostic()?;
        }
    }
    Ok(())
}

/// Directories libvirt expects to exist on the host (local connections only): the console
/// log directory (virtlogd does not create it).
fn prepare_local_dirs(cluster: &Cluster) -> Result<()> {
    fs_err::create_dir_all(hpc_libvirt::console_dir(&cluster.state_dir)).into_diagnostic()?;
    Ok(())
}

/// How far `up` goes after the VMs start.
pub(crate) struct UpOptions {
    /// Stop once the VMs run (the image is not one of ours, or no SSH is wanted).
    pub(crate) no_ssh: bool,
    /// How long to wait for SSH on every node.
    pub(crate) ssh_timeout: Duration,
    /// Nodes worked on at once over SSH (`None`: all of them).
    pub(crate) parallel: Option<usize>,
}

pub(crate) fn up(out: &Output, t: &Target<'_>, opts: &UpOptions) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let _lock = lock_state(&l.cluster)?;
    let cancel = cancel_flag()?;
    let mut journal = journal(&l.cluster)?;
    let started = Instant::now();
    let mut applied = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut seeded = false;
    for uri in uris(&l.plan) {
        let hv = connect(&uri)?;
        if is_local(&uri) {
            create_share_dirs(&l.cluster, &uri)?;
        }
        let preflight = hpc_libvirt::preflight_report(&l.cluster, &l.plan, &hv);
        for w in &preflight.warnings {
            out.note(&format!("warning: preflight on {uri}: {w}"));
        }
        warnings.extend(preflight.warnings.iter().map(|w| format!("{uri}: {w}")));
        let problems = preflight.problems;
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            return Err(miette!(
                "preflight on {uri} found {} problem(s); nothing was created:\n{}",
                problems.len(),
                list.join("\n")
            ));
        }
        if is_local(&uri) {
            prepare_local_dirs(&l.cluster)?;
            if !seeded {
                // What each node applies to itself while it boots (see seed.rs).
                crate::seed::write(&l.cluster, crate::slurm::seed_plan(&l.cluster)?.as_ref())?;
                seeded = true;
            }
        }
        out.note(&format!("bringing up {} on {uri}", l.cluster.name));
        let report = hpc_libvirt::up(&l.plan, &hv, &mut journal, &cancel)
            .into_diagnostic()
            .wrap_err_with(|| format!("up on {uri}"))?;
        for s in &report.stale {
            out.note(&format!(
                "note: {} `{}` belongs to the cluster but is no longer in the file; `down` removes it",
                kind_name(&s.kind),
                s.name
            ));
        }
        applied.extend(report.objects.into_iter().map(|a| (uri.clone(), a)));
    }
    let libvirt_secs = started.elapsed().as_secs_f64();
    let progress = crate::nodes::Progress::new(started);
    let mut remote_changes = 0;
    if !opts.no_ssh {
        out.note(&format!(
            "libvirt done in {libvirt_secs:.1}s; each node is configured as soon as it answers over SSH (at most {}s)",
            opts.ssh_timeout.as_secs()
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .into_diagnostic()?;
        let deadline = Instant::now() + opts.ssh_timeout;
        remote_changes = rt.block_on(async {
            let exec = crate::nodes::executor(&l.cluster, opts.parallel)?;
            let r = async {
                let (c, e, p, t) = (&l.cluster, &exec, &progress, opts.ssh_timeout);
                let ready = |name: String| crate::nodes::ready(c, e, p, deadline, t, name);
                let mut changed = 0;
                match crate::slurm::deploy(out, c, e, p, ready).await? {
                    Some(r) => changed += r.changed(),
                    None => crate::nodes::ready_all(c, e, p, deadline, t).await?,
                }
                if let Ok(m) = p.nodes.lock() {
                    changed += m.values().map(|t| t.base_changed).sum::<usize>();
                }
                if crate::beegfs::deploy(out, c, e, p).await? {
                    changed += 1;
                }
                Ok::<usize, miette::Report>(changed)
            }
            .await;
            exec.close().await;
            r
        })?;
    }
    let (timings, node_warnings) = progress.finish();
    for w in &node_warnings {
        out.note(&format!("warning: {w}"));
    }
    warnings.extend(node_warnings);
    let count = |o: Outcome| applied.iter().filter(|(_, a)| a.outcome == o).count();
    let (created, updated, started_n, unchanged) = (
        count(Outcome::Created),
        count(Outcome::Updated),
        count(Outcome::Started),
        count(Outcome::Unchanged),
    );
    let changes = created + updated + started_n + remote_changes;
    if out.json() {
        out.json_value(&json!({
            "ok": true,
            "cluster": l.cluster.name.as_str(),
            "changes": changes,
            "created": created, "updated": updated, "started": started_n, "unchanged": unchanged,
            "seconds": started.elapsed().as_secs_f64(),
            "warnings": warnings,
            "libvirt_seconds": libvirt_secs,
            "nodes": timings,
            "timing_table": crate::nodes::timing_table(&timings),
        }));
    } else {
        if changes == 0 {
            out.note(&format!(
                "{}: no changes ({unchanged} objects up to date)",
                l.cluster.name
            ));
        } else {
            out.note(&format!(
                "{}: {created} created, {updated} updated, {started_n} started, {unchanged} unchanged, {remote_changes} node setting(s) changed in {:.1}s",
                l.cluster.name,
                started.elapsed().as_secs_f64()
            ));
        }
        let mut summary = format!("{:<14} {:<11} {:<16}\n", "node", "role", "ip");
        for n in &l.cluster.nodes {
            summary.push_str(&format!(
                "{:<14} {:<11} {:<16}\n",
                n.name,
                format!("{:?}", n.role).to_lowercase(),
                n.ip
            ));
        }
        out.note(&summary);
        if !timings.is_empty() {
            out.note(&format!(
                "libvirt: {libvirt_secs:.1}s; per node (seconds since up started, or durations):\n{}",
                crate::nodes::timing_table(&timings)
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn down(out: &Output, t: &Target<'_>) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let _lock = lock_state(&l.cluster)?;
    let mut journal = journal(&l.cluster)?;
    let mut removed = Vec::new();
    let mut uris = uris(&l.plan);
    // The journal may name connections the file no longer does.
    for e in journal.entries() {
        if !uris.contains(&e.uri) {
            uris.push(e.uri.clone());
        }
    }
    for uri in &uris {
        let hv = connect(uri)?;
        let report = hpc_libvirt::down(l.cluster.name.as_str(), &hv, &mut journal)
            .into_diagnostic()
            .wrap_err_with(|| format!("down on {uri}"))?;
        removed.extend(report.removed.into_iter().map(|r| (uri.clone(), r)));
    }
    if uris.iter().any(|u| is_local(u)) {
        remove_local_leftovers(&l.cluster)?;
    }
    if out.json() {
        let v: Vec<_> = removed
            .iter()
            .map(|(uri, r)| json!({"uri": uri, "kind": kind_name(&r.kind), "name": r.name}))
            .collect();
        out.json_value(&json!({"ok": true, "cluster": l.cluster.name.as_str(), "removed": v}));
    } else {
        for (uri, r) in &removed {
            out.note(&format!(
                "removed {} {} ({uri})",
                kind_name(&r.kind),
                r.name
            ));
        }
        out.note(&format!(
            "{}: {} object(s) removed",
            l.cluster.name,
            removed.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// What libvirt leaves in the state directory: the (now empty) pool directory, console logs,
/// overlay files of a pool that was never defined, the journal.
fn remove_local_leftovers(cluster: &Cluster) -> Result<()> {
    let pool = hpc_libvirt::pool_path(&cluster.state_dir);
    if pool.is_dir() {
        for e in fs_err::read_dir(&pool).into_diagnostic()? {
            let p: PathBuf = e.into_diagnostic()?.path();
            let ours = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("{}-", cluster.name)) && n.ends_with(".qcow2")
            });
            if ours {
                fs_err::remove_file(&p).into_diagnostic()?;
            }
        }
        let _ = fs_err::remove_dir(&pool);
    }
    // The VMs are gone, and new ones make new host keys: forget the pinned ones (the
    // cluster's own key pair stays, images trust it).
    let _ = fs_err::remove_file(crate::image::known_hosts(cluster));
    for dir in [
        hpc_libvirt::console_dir(&cluster.state_dir),
        hpc_libvirt::seed_dir(&cluster.state_dir),
    ] {
        if dir.is_dir() {
            fs_err::remove_dir_all(&dir).into_diagnostic()?;
        }
    }
    // libvirt 9 leaves a network's runtime directory and a dead dnsmasq's pid file behind
    // after the network is removed; the next network of that name then trips over them.
    let run = Path::new("/run/libvirt/network");
    let net = hpc_libvirt::network_name(cluster.name.as_str());
    let pid_file = run.join(format!("{net}.pid"));
    let dead = fs_err::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}/exe")).exists());
    if dead {
        let _ = fs_err::remove_file(&pid_file);
    }
    let status_dir = run.join(&net);
    if status_dir.is_dir() && !run.join(format!("{net}.xml")).exists() {
        let _ = fs_err::remove_dir_all(&status_dir);
    }
    // The state directory itself, once nothing but our lock is left in it.
    let only_lock = fs_err::read_dir(&cluster.state_dir)
        .map(|rd| rd.filter_map(|e| e.ok()).all(|e| e.file_name() == "lock"))
        .unwrap_or(false);
    if only_lock {
        let _ = fs_err::remove_file(cluster.state_dir.join("lock"));
        let _ = fs_err::remove_dir(&cluster.state_dir);
    }
    Ok(())
}

pub(crate) fn status(out: &Output, t: &Target<'_>) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let mut rows = Vec::new();
    for uri in uris(&l.plan) {
        let hv = connect(&uri)?;
        rows.extend(hpc_libvirt::status(&l.plan, &hv).into_diagnostic()?);
    }
    if out.json() {
        let v: Vec<_> = rows
            .iter()
            .map(|s| {
                json!({
                    "node": s.node, "domain": s.domain,
                    "state": s.state.map(|st| format!("{st:?}").to_lowercase()),
                    "ip": s.ip, "mac": s.mac, "vcpus": s.vcpus, "memory-kib": s.memory_kib,
                })
            })
            .collect();
        out.json_value(&json!({"cluster": l.cluster.name.as_str(), "nodes": v}));
    } else {
        let mut text = format!(
            "{:<12} {:<10} {:<16} {:<18} {:>5} {:>8}\n",
            "NODE", "STATE", "IP", "MAC", "VCPUS", "MEMORY"
        );
        for s in &rows {
            text.push_str(&format!(
                "{:<12} {:<10} {:<16} {:<18} {:>5} {:>8}\n",
                s.node,
                s.state.map_or_else(
                    || "undefined".to_owned(),
                    |st| format!("{st:?}").to_lowercase()
                ),
                s.ip.as_deref().unwrap_or("-"),
                s.mac.as_deref().unwrap_or("-"),
                s.vcpus.map_or_else(|| "-".into(), |v| v.to_string()),
                s.memory_kib
                    .map_or_else(|| "-".into(), |m| format!("{}M", m / 1024)),
            ));
        }
        out.data(&text);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn start(out: &Output, t: &Target<'_>) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let mut started = Vec::new();
    for uri in uris(&l.plan) {
        let hv = connect(&uri)?;
        started.extend(hpc_libvirt::start(&l.plan, &hv).into_diagnostic()?);
    }
    if out.json() {
        out.json_value(&json!({"ok": true, "started": started}));
    } else {
        out.note(&format!("{}: {} started", l.cluster.name, started.len()));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn stop(out: &Output, t: &Target<'_>, timeout: Duration) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let (mut shut, mut destroyed) = (Vec::new(), Vec::new());
    for uri in uris(&l.plan) {
        let hv = connect(&uri)?;
        let r = hpc_libvirt::stop(&l.plan, &hv, timeout).into_diagnostic()?;
        shut.extend(r.shut_down);
        destroyed.extend(r.destroyed);
    }
    if out.json() {
        out.json_value(&json!({"ok": true, "shut-down": shut, "powered-off": destroyed}));
    } else {
        out.note(&format!(
            "{}: {} shut down, {} powered off after {}s",
            l.cluster.name,
            shut.len(),
            destroyed.len(),
            timeout.as_secs()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
