//! `hpc-up image build`: the cluster's guest image, and the cluster's SSH key it trusts.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use hpc_config::Cluster;
use hpc_image::{ImagePaths, Outcome, Phase, Recipe};
use miette::{IntoDiagnostic, Result, miette};
use serde_json::json;

use crate::apply::{Target, load};
use crate::output::Output;

/// The cluster's SSH private key: the one the file names, or one generated once in the state
/// directory (`ssh/id_ed25519`, mode 0600). Returns (private, public) paths.
pub(crate) fn cluster_key(cluster: &Cluster) -> Result<(PathBuf, PathBuf)> {
    if let Some(key) = &cluster.ssh.key {
        let mut public = key.clone().into_os_string();
        public.push(".pub");
        let public = PathBuf::from(public);
        if !public.is_file() {
            return Err(miette!(
                "the SSH key {} has no public half {} beside it",
                key.display(),
                public.display()
            ));
        }
        return Ok((key.clone(), public));
    }
    let dir = cluster.state_dir.join("ssh");
    let key = dir.join("id_ed25519");
    let public = dir.join("id_ed25519.pub");
    if key.is_file() && public.is_file() {
        return Ok((key, public));
    }
    fs_err::create_dir_all(&dir).into_diagnostic()?;
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("hpc-up@{}", cluster.name))
        .arg("-f")
        .arg(&key)
        .status()
        .map_err(|e| miette!("cannot run ssh-keygen (package openssh-client): {e}"))?;
    if !status.success() {
        return Err(miette!("ssh-keygen failed making {}", key.display()));
    }
    Ok((key, public))
}

fn paths(cluster: &Cluster) -> Result<ImagePaths> {
    let dir = cluster
        .image
        .base
        .parent()
        .map_or_else(|| Path::new("/").to_path_buf(), Path::to_path_buf);
    let (Some(kernel), Some(initrd)) = (&cluster.image.kernel, &cluster.image.initrd) else {
        return Err(miette!(
            help = format!(
                "add `kernel: {}` and `initrd: {}` under `image:`",
                dir.join("vmlinuz").display(),
                dir.join("initrd.img").display()
            ),
            "built images boot by direct kernel boot: the file must name `image.kernel` and `image.initrd`"
        ));
    };
    Ok(ImagePaths {
        base: cluster.image.base.clone(),
        kernel: kernel.clone(),
        initrd: initrd.clone(),
    })
}

/// The `.deb` files of `beegfs.packages.debs` (sorted), baked into the image with
/// `image.debs`.
fn beegfs_debs(cluster: &Cluster) -> Result<Vec<PathBuf>> {
    let Some(hpc_config::BeegfsPackageSource::Debs { dir }) =
        cluster.beegfs.as_ref().map(|b| &b.packages)
    else {
        return Ok(Vec::new());
    };
    let mut debs: Vec<PathBuf> = fs_err::read_dir(dir)
        .into_diagnostic()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb") && p.is_file())
        .filter(|p| !cluster.image.debs.contains(p))
        .collect();
    debs.sort();
    if debs.is_empty() {
        return Err(miette!(
            "beegfs.packages.debs: {} holds no .deb files",
            dir.display()
        ));
    }
    Ok(debs)
}

pub(crate) fn build(out: &Output, t: &Target<'_>, force: bool) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let paths = paths(&l.cluster)?;
    let (_, public) = cluster_key(&l.cluster)?;
    let key = fs_err::read_to_string(&public).into_diagnostic()?;
    let mut recipe = Recipe::for_cluster(&l.cluster, &key);
    recipe.debs.extend(beegfs_debs(&l.cluster)?);
    if force {
        let _ = fs_err::remove_file(paths.manifest());
    }
    let started = Instant::now();
    let mut phase_started = Instant::now();
    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut last: Option<Phase> = None;
    let mut progress = |p: Phase| {
        if let Some(prev) = last {
            timings.push((format!("{prev:?}"), phase_started.elapsed().as_secs_f64()));
        }
        phase_started = Instant::now();
        last = Some(p);
        let what = match p {
            Phase::Bootstrap => "installing packages (mmdebstrap)",
            Phase::Filesystem => "making the ext4 filesystem",
            Phase::Convert => "converting to qcow2",
            Phase::Install => "moving the image into place",
        };
        out.note(&format!(
            "[{:>6.1}s] {what}",
            started.elapsed().as_secs_f64()
        ));
    };
    let outcome = hpc_image::build(&recipe, &paths, &mut progress).into_diagnostic()?;
    if let Some(prev) = last {
        timings.push((format!("{prev:?}"), phase_started.elapsed().as_secs_f64()));
    }
    let (built, key) = match outcome {
        Outcome::Built { key } => (true, key),
        Outcome::UpToDate { key } => (false, key),
    };
    if out.json() {
        out.json_value(&json!({
            "ok": true, "built": built, "key": key,
            "base": paths.base, "kernel": paths.kernel, "initrd": paths.initrd,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    } else if built {
        for (phase, secs) in &timings {
            out.note(&format!("  {phase:<10} {secs:>7.1}s"));
        }
        out.note(&format!(
            "built {} in {:.1}s",
            paths.base.display(),
            started.elapsed().as_secs_f64()
        ));
    } else {
        out.note(&format!(
            "{} is up to date (same packages, files and key); nothing to do",
            paths.base.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The cluster's pinned host keys (OpenSSH known_hosts format).
pub(crate) fn known_hosts(cluster: &Cluster) -> PathBuf {
    cluster.state_dir.join("ssh").join("known_hosts")
}

/// `hpc-up ssh NODE [CMD…]`: OpenSSH to a node with the cluster's key and pinned host keys
/// (an interactive shell needs OpenSSH's terminal handling). The command's words are quoted
/// so that the node runs exactly that argv.
pub(crate) fn ssh(out: &Output, t: &Target<'_>, node: &str, argv: &[String]) -> Result<ExitCode> {
    let Some(l) = load(out, t)? else {
        return Ok(ExitCode::from(1));
    };
    let Some(n) = l.cluster.node(node) else {
        let names: Vec<&str> = l.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(miette!(
            "no node is called `{node}`; the cluster has {}",
            names.join(", ")
        ));
    };
    let (key, _) = cluster_key(&l.cluster)?;
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            known_hosts(&l.cluster).display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "LogLevel=ERROR", "-p"])
        .arg(l.cluster.ssh.port.to_string())
        .arg(format!("{}@{}", l.cluster.ssh.user, n.ip));
    if !argv.is_empty() {
        cmd.arg("--").arg(hpc_remote::quote_argv(argv));
    }
    let status = cmd
        .status()
        .map_err(|e| miette!("cannot run ssh (package openssh-client): {e}"))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(255).clamp(0, 255) as u8
    ))
}
