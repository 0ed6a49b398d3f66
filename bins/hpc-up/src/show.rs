//! Reports as text (tables: comfy-table) or JSON.

use std::path::Path;
use std::process::ExitCode;

use hpc_cluster::{ClusterPlan, DownReport, Error, NodeStatus, RenderReport, UpReport, text};
use hpc_config::{Cluster, LoadError};
use serde_json::json;

use crate::output::Output;

fn code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// JSON, or a note, then success.
pub(crate) fn done(out: &Output, v: &serde_json::Value, note: &str) -> Result<ExitCode, Error> {
    if out.json() {
        out.json_value(v);
    } else {
        out.note(note);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn schema(out: &Output, file: Option<&Path>) -> Result<ExitCode, Error> {
    let text = hpc_config::schema_text();
    match file {
        Some(path) => {
            hpc_cluster::write_atomic(path, text.as_bytes())?;
            out.note(&format!("wrote {}", path.display()));
        }
        None => out.data(&text),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn validate(out: &Output, file: &Path) -> ExitCode {
    match hpc_config::load_file(file) {
        Ok(cluster) => {
            let n = cluster.nodes.len();
            let v = json!({"file": file.display().to_string(), "valid": true, "problems": [], "nodes": n});
            let _ = done(out, &v, &format!("{}: valid ({n} nodes)", file.display()));
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(errors)) => {
            out.config_errors(&errors);
            ExitCode::from(1)
        }
        Err(e) => {
            out.error(&Error::Load(e));
            ExitCode::from(1)
        }
    }
}

pub(crate) fn render(out: &Output, r: &RenderReport) -> Result<ExitCode, Error> {
    if out.json() {
        out.json_value(
            &json!({"ok": true, "dir": r.dir, "files": r.files, "unchanged": r.unchanged}),
        );
    } else {
        // One note, not one per file: a 1,000-node cluster has over 2,000 files.
        let mut lines: Vec<String> = r
            .files
            .iter()
            .filter(|f| !r.unchanged.contains(f))
            .map(|f| format!("wrote {}", r.dir.join(f).display()))
            .collect();
        if !r.unchanged.is_empty() {
            lines.push(format!(
                "{} files in {} were already up to date",
                r.unchanged.len(),
                r.dir.display()
            ));
        }
        if !lines.is_empty() {
            out.note(&lines.join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn image_phase(p: hpc_image::Phase) -> &'static str {
    match p {
        hpc_image::Phase::Bootstrap => "installing packages (mmdebstrap)",
        hpc_image::Phase::Filesystem => "making the ext4 filesystem",
        hpc_image::Phase::Convert => "converting to qcow2",
        hpc_image::Phase::Install => "moving the image into place",
    }
}

pub(crate) fn image(out: &Output, r: &hpc_cluster::ImageReport) -> Result<ExitCode, Error> {
    if out.json() {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        v["ok"] = json!(true);
        out.json_value(&v);
    } else if r.built {
        for (phase, secs) in &r.phases {
            out.note(&format!("  {phase:<10} {secs:>7.1}s"));
        }
        out.note(&format!(
            "built {} (Debian {}) in {:.1}s",
            r.base.display(),
            r.release,
            r.seconds
        ));
    } else {
        out.note(&format!(
            "{} (Debian {}) is up to date (same packages, files and key); nothing to do",
            r.base.display(),
            r.release
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// A check report as JSON, or its lines; exit 1 when it did not pass.
pub(crate) fn check_lines(
    out: &Output,
    r: &impl serde::Serialize,
    ok: bool,
    lines: &[String],
) -> Result<ExitCode, Error> {
    if out.json() {
        out.json_of(r);
    } else {
        let mut text = lines.join("\n");
        text.push('\n');
        out.data(&text);
    }
    Ok(code(ok))
}

pub(crate) fn container(out: &Output, r: &hpc_cluster::ContainerReport) -> Result<ExitCode, Error> {
    if out.json() {
        out.json_of(r);
    } else {
        out.note(&r.summary());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn plan(out: &Output, p: &ClusterPlan) -> Result<ExitCode, Error> {
    if out.json() {
        let mut v = serde_json::to_value(p).unwrap_or_default();
        v["changes"] = json!(p.libvirt_changes() + p.hosts.len() + p.node_changes());
        out.json_value(&v);
        return Ok(ExitCode::SUCCESS);
    }
    out.data(&text::plan(p));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn up(out: &Output, cluster: &Cluster, r: &UpReport) -> Result<ExitCode, Error> {
    if out.json() {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        v["ok"] = json!(true);
        v["timing_table"] = json!(text::timing_table(&r.nodes));
        out.json_value(&v);
        return Ok(ExitCode::SUCCESS);
    }
    if r.changes == 0 {
        out.note(&format!(
            "{}: no changes ({} objects up to date)",
            r.cluster, r.unchanged
        ));
    } else {
        out.note(&format!(
            "{}: {} created, {} updated, {} started, {} unchanged, {}{} node setting(s) changed in {:.1}s",
            r.cluster,
            r.created,
            r.updated,
            r.started,
            r.unchanged,
            if r.host_changes > 0 {
                format!("{} host step(s), ", r.host_changes)
            } else {
                String::new()
            },
            r.node_changes,
            r.seconds
        ));
    }
    out.note(&text::nodes(cluster));
    if !r.nodes.is_empty() {
        out.note(&format!(
            "libvirt: {:.1}s; per node (seconds since up started, or durations):\n{}",
            r.libvirt_seconds,
            text::timing_table(&r.nodes)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn down(out: &Output, r: &DownReport) -> Result<ExitCode, Error> {
    let mut lines: Vec<String> = r
        .removed
        .iter()
        .map(|o| format!("removed {} {} ({})", o.kind, o.name, o.uri))
        .collect();
    if r.host_changes > 0 {
        lines.push(format!(
            "removed the cluster network's devices on the hosts ({} step(s))",
            r.host_changes
        ));
    }
    lines.push(format!(
        "{}: {} object(s) removed",
        r.cluster,
        r.removed.len()
    ));
    let v = json!({"ok": true, "cluster": r.cluster, "removed": r.removed, "host_changes": r.host_changes});
    done(out, &v, &lines.join("\n"))
}

pub(crate) fn status(
    out: &Output,
    cluster: &Cluster,
    rows: &[NodeStatus],
) -> Result<ExitCode, Error> {
    if out.json() {
        out.json_value(&json!({"cluster": cluster.name.as_str(), "nodes": rows}));
        return Ok(ExitCode::SUCCESS);
    }
    out.data(&text::status(rows));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn check_virtiofs(
    out: &Output,
    r: &hpc_virtiofs::CheckReport,
) -> Result<ExitCode, Error> {
    let failed = r.shares.iter().filter(|s| !s.passed()).count();
    if out.json() {
        out.json_value(&json!({"ok": failed == 0, "mounts": r.shares}));
        return Ok(code(failed == 0));
    }
    out.data(&text::check_virtiofs(r));
    Ok(code(failed == 0))
}

pub(crate) fn check_slurm(
    out: &Output,
    r: &Result<hpc_slurm::CheckReport, Error>,
) -> Result<ExitCode, Error> {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            out.error(e);
            return Ok(ExitCode::from(1));
        }
    };
    let b = &r.sbatch;
    if out.json() {
        out.json_value(&json!({
            "ok": true,
            "srun": r.srun.iter().map(|s| json!({"partition": s.partition, "nodes": s.nodes, "seconds": s.elapsed.as_secs_f64()})).collect::<Vec<_>>(),
            "sbatch": {"job": b.job_id, "partition": b.partition, "node": b.node, "output": b.output, "share": b.share, "seconds": b.elapsed.as_secs_f64(), "sacct": b.sacct_state},
            "failure-capture": r.failure_capture,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    out.data(&text::check_slurm(r));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn check_beegfs(out: &Output, r: &hpc_beegfs::ClusterCheck) -> Result<ExitCode, Error> {
    if out.json() {
        out.json_of(r);
        return Ok(code(r.passed()));
    }
    out.data(&text::check_beegfs(r));
    Ok(code(r.passed()))
}
