//! SLURM in the binary: the cluster's secrets (made once, kept in the state directory),
//! `hpc_slurm::deploy` at the end of `up`, and `hpc-up check slurm`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hpc_config::Cluster;
use hpc_remote::SshExecutor;
use hpc_slurm::{CheckOptions, DeployOptions, DeployReport, Secrets};
use miette::{IntoDiagnostic, Result, WrapErr, miette};
use serde_json::json;

use crate::apply::{Target, load};
use crate::nodes::Progress;
use crate::output::Output;

/// Bytes of the munge key hpc-up makes (munged wants at least 32; `mungekey` makes 1024).
const MUNGE_KEY_BYTES: usize = 1024;

/// `<state>/secrets/<name>`: read it, or make it once from `len` random bytes (`encode`
/// turns them into the file's content) and write it atomically with mode 0600.
pub(crate) fn secret(
    cluster: &Cluster,
    name: &str,
    len: usize,
    encode: fn(Vec<u8>) -> Vec<u8>,
) -> Result<Vec<u8>> {
    let dir = cluster.state_dir.join("secrets");
    let path: PathBuf = dir.join(name);
    match fs_err::read(&path) {
        Ok(bytes) => return Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).into_diagnostic(),
    }
    fs_err::create_dir_all(&dir).into_diagnostic()?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).into_diagnostic()?;
    }
    let mut random = vec![0u8; len];
    {
        use std::io::Read;
        fs_err::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .into_diagnostic()
            .wrap_err("cannot read random bytes from /dev/urandom")?;
    }
    let content = encode(random);
    // NamedTempFile is created with mode 0600 and renamed into place.
    crate::render::write_atomic(&path, &content)?;
    Ok(content)
}

fn hex(bytes: Vec<u8>) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

/// The cluster's SLURM secrets, made once: the munge key, and the database password when
/// accounting is on.
fn secrets(cluster: &Cluster) -> Result<(Vec<u8>, Option<String>)> {
    let key = secret(cluster, "munge.key", MUNGE_KEY_BYTES, |b| b)?;
    let password = match cluster
        .slurm
        .as_ref()
        .and_then(|s| s.accounting_host.as_ref())
    {
        Some(_) => Some(
            String::from_utf8(secret(cluster, "slurmdbd.password", 24, hex)?)
                .map_err(|_| miette!("the saved slurmdbd password is not text"))?,
        ),
        None => None,
    };
    Ok((key, password))
}

/// The deployment plan the nodes' seeds take their SLURM phases from: `slurm.conf` with the
/// declared hardware, as [`deploy`] renders it. `None` without a `slurm:` section.
pub(crate) fn seed_plan(cluster: &Cluster) -> Result<Option<hpc_slurm::DeployPlan>> {
    if cluster.slurm.is_none() {
        return Ok(None);
    }
    let (key, password) = secrets(cluster)?;
    let render = hpc_slurm::RenderOptions::for_cluster(cluster);
    let conf = hpc_slurm::render_slurm_conf(
        cluster,
        &hpc_slurm::NodeHardware::declared(cluster),
        &render,
    );
    let secrets = Secrets {
        munge_key: Some(&key),
        db_password: password.as_deref(),
    };
    hpc_slurm::plan_deploy(cluster, &conf, &secrets, &render)
        .map(Some)
        .map_err(|e| miette!("{e}"))
}

/// Deploy SLURM on the cluster's nodes, each as soon as `ready(node)` (SSH + base
/// configuration) returns; fills in each node's `slurm` and `done_at` in `progress`.
pub(crate) async fn deploy<R, RF>(
    out: &Output,
    cluster: &Cluster,
    exec: &SshExecutor,
    progress: &Progress,
    ready: R,
) -> Result<Option<DeployReport>>
where
    R: Fn(String) -> RF,
    RF: std::future::Future<Output = std::result::Result<(), String>>,
{
    if cluster.slurm.is_none() {
        return Ok(None);
    }
    let (key, password) = secrets(cluster)?;
    let secrets = Secrets {
        munge_key: Some(&key),
        db_password: password.as_deref(),
    };
    out.note(&format!(
        "deploying SLURM on {} node(s) as each comes up: munge, {}slurmctld, slurmd",
        cluster.nodes.len(),
        if password.is_some() {
            "MariaDB + slurmdbd, "
        } else {
            ""
        }
    ));
    let opts = DeployOptions {
        // TCG guests start daemons slowly.
        wait_timeout: Duration::from_secs(300),
        // What the domains give the nodes, as the seeds have it.
        hardware: hpc_slurm::NodeHardware::declared(cluster),
        ..DeployOptions::default()
    };
    let offset = progress.started.elapsed();
    let report = hpc_slurm::deploy_with(
        exec,
        cluster,
        &secrets,
        &opts,
        ready,
        &hpc_remote::NoObserver,
    )
    .await
    .map_err(|e| miette!("{e}"))?;
    for (node, (own, done)) in report.per_node() {
        let done_at = (offset + done).as_secs_f64();
        progress.update(&node, |t| {
            t.slurm = Some(own.as_secs_f64());
            t.done_at = Some(t.done_at.map_or(done_at, |d| d.max(done_at)));
        });
    }
    let cluster_wide: Vec<String> = report
        .phases
        .iter()
        .filter(|p| p.node.is_none())
        .map(|p| format!("{} {:.1}s", p.name, p.elapsed.as_secs_f64()))
        .collect();
    out.note(&format!(
        "SLURM ready: every node idle, config hashes match ({}; {} change(s), {} service start(s))",
        cluster_wide.join(", "),
        report.changed(),
        report.restarted().len()
    ));
    Ok(Some(report))
}

/// `hpc-up check slurm`: real jobs on the running cluster.
pub(crate) fn check(out: &Output, t: &Target<'_>, timeout: Duration) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let cluster = &l.cluster;
    if cluster.slurm.is_none() {
        return Err(miette!(
            "{} has no `slurm:` section; there is no SLURM to check",
            t.file.display()
        ));
    }
    let token = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let opts = CheckOptions { timeout, token };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let exec = crate::nodes::executor(cluster, None)?;
    let result = rt.block_on(async {
        let r = hpc_slurm::check(&exec, cluster, &opts).await;
        exec.close().await;
        r
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if out.json() {
                out.json_value(&json!({"ok": false, "error": e.to_string()}));
            } else {
                out.error(&miette!("check slurm: {e}"));
            }
            return Ok(ExitCode::from(1));
        }
    };
    let b = &report.sbatch;
    if out.json() {
        out.json_value(&json!({
            "ok": true,
            "srun": report.srun.iter().map(|s| json!({
                "partition": s.partition, "nodes": s.nodes, "seconds": s.elapsed.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "sbatch": {
                "job": b.job_id, "partition": b.partition, "node": b.node, "output": b.output,
                "share": b.share, "seconds": b.elapsed.as_secs_f64(), "sacct": b.sacct_state,
            },
        }));
    } else {
        let mut s = format!(
            "{:<8} {:<12} {:<50} {:>8}\n",
            "check", "partition", "result", "time"
        );
        for r in &report.srun {
            s.push_str(&format!(
                "{:<8} {:<12} {:<50} {:>7.1}s\n",
                "srun",
                r.partition,
                format!("ok: {}", r.nodes.join(" ")),
                r.elapsed.as_secs_f64()
            ));
        }
        let via = b
            .share
            .as_ref()
            .map_or_else(|| "node-local /tmp".to_owned(), |t| format!("share {t}"));
        s.push_str(&format!(
            "{:<8} {:<12} {:<50} {:>7.1}s\n",
            "sbatch",
            b.partition,
            format!("ok: job {} on {}, output via {via}", b.job_id, b.node),
            b.elapsed.as_secs_f64()
        ));
        s.push_str(&format!(
            "{:<8} {:<12} {:<50}\n",
            "sacct",
            b.partition,
            match &b.sacct_state {
                Some(st) => format!("ok: job {} {st}", b.job_id),
                None => "- (accounting is off)".to_owned(),
            }
        ));
        out.data(&s);
    }
    Ok(ExitCode::SUCCESS)
}
