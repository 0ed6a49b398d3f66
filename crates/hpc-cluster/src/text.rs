//! Reports as text for a terminal: the tables `hpc-up` prints, for any front end that wants
//! the same. Tables are drawn by comfy-table (borderless, aligned columns, no wrapping).

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use hpc_config::Cluster;

use crate::event::{NodeTimes, Timings};
use crate::lifecycle::NodeStatus;
use crate::plan::{ClusterPlan, NodeState};

/// A borderless table, columns `right` aligned right.
pub(crate) fn table(header: &[&str], right: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for i in right {
        if let Some(c) = t.column_mut(*i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// The table's text, without comfy-table's one-space left margin.
fn text(t: &Table) -> String {
    let mut s: String = t
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(&l).trim_end()))
        .collect();
    if s.is_empty() {
        s.push('\n');
    }
    s
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s"))
}

fn ok(b: bool) -> &'static str {
    if b { "ok" } else { "FAIL" }
}

/// One layer's time of a node.
type LayerTime = fn(&NodeTimes) -> Option<f64>;

/// The node × phase table: when each node answered SSH and was done (seconds since `up`
/// started), and how long its own seed wait, base, SLURM (and BeeGFS) phases took.
pub fn timing_table(t: &Timings) -> String {
    // the layers after SLURM get a column when some node ran them
    let extra: [(&str, LayerTime); 4] = [
        ("beegfs", |n| n.beegfs),
        ("mpi", |n| n.mpi),
        ("containers", |n| n.containers),
        ("monitoring", |n| n.monitoring),
    ];
    let extra: Vec<_> = extra
        .into_iter()
        .filter(|(_, f)| t.values().any(|n| f(n).is_some()))
        .collect();
    let mut header = vec![
        "node",
        "ssh ready",
        "seed",
        "base",
        "slurm",
        "done",
        "changed",
    ];
    header.extend(extra.iter().map(|(h, _)| *h));
    let right: Vec<usize> = (1..header.len()).collect();
    let mut tab = table(&header, &right);
    for (node, n) in t {
        let mut row = vec![
            node.clone(),
            secs(n.ssh_ready_at),
            secs(n.seed),
            secs(n.base),
            secs(n.slurm),
            secs(n.done_at),
            n.changed.to_string(),
        ];
        row.extend(extra.iter().map(|(_, f)| secs(f(n))));
        tab.add_row(row);
    }
    text(&tab)
}

/// The plan: libvirt objects per connection, then per node its state and the host steps
/// that would change, with their diffs; a summary line (`no changes` when there are none).
pub fn plan(p: &ClusterPlan) -> String {
    let mut s = String::from("libvirt:\n");
    for c in &p.libvirt {
        s.push_str(&format!(
            "  {:<10} {:<13} {:<32} {}\n",
            c.action, c.kind, c.name, c.uri
        ));
    }
    if !p.hosts.is_empty() {
        s.push_str("hosts (the cluster network across them):\n");
        for c in &p.hosts {
            s.push_str(&format!("  {:<10} {}\n", c.host, c.step));
        }
    }
    s.push_str("nodes:\n");
    for n in &p.nodes {
        match &n.state {
            NodeState::Checked if n.changes.is_empty() => {
                s.push_str(&format!("  {}: up to date\n", n.node))
            }
            NodeState::Checked => s.push_str(&format!(
                "  {}: {} step(s) would change\n",
                n.node,
                n.changes.len()
            )),
            NodeState::KnownAfterApply { reason } => {
                let steps: usize = n.pending.iter().map(|p| p.2).sum();
                s.push_str(&format!(
                    "  {}: known after apply, {reason}; {steps} step(s):",
                    n.node
                ));
                for (layer, phase, k) in &n.pending {
                    s.push_str(&format!(" {layer}/{phase}:{k}"));
                }
                s.push('\n');
            }
            NodeState::Unreachable { error } => {
                s.push_str(&format!("  {}: UNREACHABLE: {error}\n", n.node))
            }
        }
        for c in &n.changes {
            s.push_str(&format!(
                "    {} {}/{} {} `{}`\n",
                c.action, c.layer, c.phase, c.kind, c.step
            ));
            if let Some(d) = &c.diff {
                for l in d.lines() {
                    s.push_str(&format!("      {l}\n"));
                }
            }
        }
    }
    for note in &p.notes {
        s.push_str(&format!("note: {note}\n"));
    }
    let pending = p
        .nodes
        .iter()
        .filter(|n| !matches!(n.state, NodeState::Checked))
        .count();
    s.push_str(&if p.is_empty() {
        "no changes\n".to_owned()
    } else {
        format!(
            "{} libvirt change(s), {}{} node step change(s), {pending} node(s) known after apply or unreachable\n",
            p.libvirt_changes(),
            if p.hosts.is_empty() {
                String::new()
            } else {
                format!("{} host step change(s), ", p.hosts.len())
            },
            p.node_changes()
        )
    });
    s
}

/// The cluster's nodes: name, role, address.
pub fn nodes(cluster: &Cluster) -> String {
    let mut nodes = table(&["node", "role", "ip"], &[]);
    for n in &cluster.nodes {
        nodes.add_row(vec![
            n.name.to_string(),
            format!("{:?}", n.role).to_lowercase(),
            n.ip.to_string(),
        ]);
    }
    text(&nodes)
}

/// `status`: per node its state, IP, MAC, vCPUs, memory.
pub fn status(rows: &[NodeStatus]) -> String {
    let mut t = table(&["NODE", "STATE", "IP", "MAC", "VCPUS", "MEMORY"], &[4, 5]);
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    for s in rows {
        t.add_row(vec![
            s.node.clone(),
            s.state.clone().unwrap_or_else(|| "undefined".to_owned()),
            dash(s.ip.clone()),
            dash(s.mac.clone()),
            dash(s.vcpus.map(|v| v.to_string())),
            dash(s.memory_kib.map(|m| format!("{}M", m / 1024))),
        ]);
    }
    text(&t)
}

/// `check virtiofs`: per node and share, every check and the throughput; a summary line.
pub fn check_virtiofs(r: &hpc_virtiofs::CheckReport) -> String {
    let failed = r.failed();
    let rates =
        |r: Option<(f64, f64)>| r.map_or_else(|| "-".to_owned(), |(w, r)| format!("{w:.0}/{r:.0}"));
    let mut t = table(
        &[
            "node",
            "tag",
            "mount point",
            "mounted",
            "options",
            "h→g",
            "g→h",
            "ro",
            "share MiB/s",
            "local MiB/s",
        ],
        &[8, 9],
    );
    for s in &r.shares {
        t.add_row(vec![
            s.node.clone(),
            s.tag.clone(),
            s.mount_point.clone(),
            ok(s.check.mounted).into(),
            ok(s.check.mode_ok).into(),
            ok(s.check.host_to_guest).into(),
            s.host_saw_guest.map_or("-", ok).into(),
            match s.check.write_refused {
                Some(true) => "enforced",
                Some(false) => "FAIL",
                None => "-",
            }
            .into(),
            rates(s.check.share_mibps),
            rates(s.check.local_mibps),
        ]);
    }
    let mut s = text(&t);
    s.push_str(&format!(
        "(throughput: write/read of {} MiB, sequential, caches dropped before reading)\n",
        hpc_virtiofs::BENCH_MIB
    ));
    for sh in r.shares.iter().filter(|s| s.error.is_some()) {
        s.push_str(&format!(
            "{} {}: {}\n",
            sh.node,
            sh.tag,
            sh.error.as_deref().unwrap_or_default()
        ));
    }
    s.push_str(&if failed == 0 {
        format!("virtio-fs: all {} mount(s) pass\n", r.shares.len())
    } else {
        format!("virtio-fs: {failed} of {} mount(s) FAIL\n", r.shares.len())
    });
    s
}

/// `check slurm`: srun per partition, the sbatch job, sacct.
pub fn check_slurm(r: &hpc_slurm::CheckReport) -> String {
    let b = &r.sbatch;
    let mut t = table(&["check", "partition", "result", "time"], &[3]);
    for s in &r.srun {
        t.add_row(vec![
            "srun".into(),
            s.partition.clone(),
            format!("ok: {}", s.nodes.join(" ")),
            secs(Some(s.elapsed.as_secs_f64())),
        ]);
    }
    let via = b
        .share
        .as_ref()
        .map_or_else(|| "node-local /tmp".to_owned(), |t| format!("share {t}"));
    t.add_row(vec![
        "sbatch".into(),
        b.partition.clone(),
        format!("ok: job {} on {}, output via {via}", b.job_id, b.node),
        secs(Some(b.elapsed.as_secs_f64())),
    ]);
    let sacct = match &b.sacct_state {
        Some(st) => format!("ok: job {} {st}", b.job_id),
        None => "- (accounting is off)".to_owned(),
    };
    t.add_row(vec![
        "sacct".into(),
        b.partition.clone(),
        sacct,
        String::new(),
    ]);
    if let Some(f) = &r.failure_capture {
        let files: Vec<String> = f
            .files
            .iter()
            .map(|x| format!("{} ({} B)", x.name, x.bytes))
            .collect();
        t.add_row(vec![
            "failure".into(),
            f.partition.clone(),
            format!(
                "ok: job {} failed on purpose ({}) on {}, bundle {}: {}",
                f.job_id,
                f.exit_code,
                f.node,
                f.bundle,
                files.join(", ")
            ),
            secs(Some(f.elapsed.as_secs_f64())),
        ]);
    }
    text(&t)
}

/// `check beegfs`: servers, targets, per client the round trip, the aggregate, failures.
pub fn check_beegfs(r: &hpc_beegfs::ClusterCheck) -> String {
    let mut s = format!("BeeGFS {} (tools on {})\n", r.release, r.tool_node);
    for v in &r.servers {
        let id = v.id.map_or("-".into(), |i| i.to_string());
        let reach = if v.reachable {
            "reachable"
        } else {
            "UNREACHABLE"
        };
        s.push_str(&format!(
            "  {:<10} {:<16} id {id:<5} {reach}\n",
            v.kind.name(),
            v.node
        ));
    }
    for t in &r.targets {
        s.push_str(&format!(
            "  target {:<6} {} / {}\n",
            t.id, t.reachability, t.consistency
        ));
    }
    let mut t = table(
        &[
            "client",
            "round trip",
            "peer's file",
            "BeeGFS MiB/s",
            "virtio-fs MiB/s",
            "local MiB/s",
        ],
        &[3, 4, 5],
    );
    let rate = |m: &Option<hpc_beegfs::Throughput>| {
        m.as_ref()
            .map_or("-".into(), |m| format!("{:.0}/{:.0}", m.write, m.read))
    };
    for c in &r.clients {
        t.add_row(vec![
            c.node.clone(),
            ok(c.round_trip).into(),
            format!("{} {}", c.peer, ok(c.peer_seen)),
            rate(&c.mib_per_s),
            match (&c.share, &c.share_mib_per_s) {
                (Some(share), Some(_)) => format!("{} {share}", rate(&c.share_mib_per_s)),
                _ => "-".into(),
            },
            rate(&c.local_mib_per_s),
        ]);
    }
    s.push_str(&text(&t));
    if let Some(a) = &r.aggregate {
        s.push_str(&format!(
            "aggregate: {:.0} MiB/s write, {:.0} MiB/s read ({} client(s) × {} MiB at once; MiB/s write/read per client: BeeGFS, then the same file on a read-write virtio-fs share and on the local disk, measured after it)\n",
            a.write,
            a.read,
            r.clients.len(),
            hpc_beegfs::BENCH_MIB
        ));
    }
    for f in &r.failures {
        s.push_str(&format!("FAIL {f}\n"));
    }
    s.push_str(if r.passed() {
        "beegfs: all checks pass\n"
    } else {
        "beegfs: FAIL\n"
    });
    s
}
