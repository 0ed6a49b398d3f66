//! `schema`, `validate` and `render`: composition of the planners, and writing their output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hpc_config::{Cluster, LoadError};
use miette::{IntoDiagnostic, Result, WrapErr};
use serde_json::json;

use crate::output::Output;

/// One file a planner produced: a path relative to the output directory, and its bytes.
pub(crate) struct Artefact {
    pub(crate) path: PathBuf,
    pub(crate) contents: String,
}

/// Everything the planners produce for `cluster`, in a fixed order.
pub(crate) fn artefacts(cluster: &Cluster) -> Result<Vec<Artefact>> {
    let mut inventory = serde_json::to_string_pretty(cluster).into_diagnostic()?;
    inventory.push('\n');
    let mut out = vec![Artefact {
        path: "cluster.json".into(),
        contents: inventory,
    }];
    for o in hpc_libvirt::plan(cluster).objects {
        let dir = match o.kind {
            hpc_libvirt::ObjectKind::Network => "network",
            hpc_libvirt::ObjectKind::Pool => "pool",
            hpc_libvirt::ObjectKind::Volume => "volume",
            hpc_libvirt::ObjectKind::Domain => "domain",
        };
        // A node on another host gets its own objects: keep hosts apart in the tree.
        let host = o.uri.remote_host().unwrap_or("local");
        out.push(Artefact {
            path: PathBuf::from("libvirt")
                .join(host)
                .join(dir)
                .join(format!("{}.xml", o.name)),
            contents: o.xml,
        });
    }
    if cluster.slurm.is_some() {
        // Hardware estimated from the file until the nodes' `slurmd -C` is known;
        // slurmdbd.conf is not rendered here: it carries the database password.
        let opts = hpc_slurm::RenderOptions::for_cluster(cluster);
        let files = [
            (
                "slurm.conf",
                hpc_slurm::render_slurm_conf(cluster, &Default::default(), &opts),
            ),
            ("gres.conf", hpc_slurm::render_gres_conf(cluster)),
            ("cgroup.conf", hpc_slurm::render_cgroup_conf(cluster)),
        ];
        for (name, contents) in files {
            out.push(Artefact {
                path: PathBuf::from("slurm").join(name),
                contents,
            });
        }
    }
    out.extend(crate::beegfs::artefacts(cluster)?);
    Ok(out)
}

pub(crate) fn schema(out: &Output, file: Option<&Path>) -> Result<ExitCode> {
    let text = hpc_config::schema_text();
    match file {
        Some(path) => {
            write_atomic(path, text.as_bytes())?;
            out.note(&format!("wrote {}", path.display()));
        }
        None => out.data(&text),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn validate(out: &Output, file: &Path) -> Result<ExitCode> {
    match hpc_config::load_file(file) {
        Ok(cluster) => {
            if out.json() {
                out.json_value(&json!({
                    "file": file.display().to_string(),
                    "valid": true,
                    "problems": [],
                    "nodes": cluster.nodes.len(),
                }));
            } else {
                out.note(&format!(
                    "{}: valid ({} nodes)",
                    file.display(),
                    cluster.nodes.len()
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(errors)) => {
            if out.json() {
                let problems: Vec<_> = errors
                    .problems
                    .iter()
                    .map(|p| {
                        json!({
                            "line": p.line,
                            "column": p.column,
                            "pointer": p.pointer,
                            "message": p.message,
                            "help": p.help,
                        })
                    })
                    .collect();
                out.json_value(&json!({
                    "file": file.display().to_string(),
                    "valid": false,
                    "problems": problems,
                }));
            } else {
                out.diagnostic(errors.as_ref());
                for line in errors.lines() {
                    out.note(&line);
                }
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn render(out: &Output, file: &Path, dir: &Path) -> Result<ExitCode> {
    let cluster = match hpc_config::load_file(file) {
        Ok(c) => c,
        Err(LoadError::Invalid(errors)) => {
            out.diagnostic(errors.as_ref());
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let files = artefacts(&cluster)?;
    fs_err::create_dir_all(dir).into_diagnostic()?;
    let mut written = Vec::new();
    for a in &files {
        let path = dir.join(&a.path);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).into_diagnostic()?;
        }
        write_atomic(&path, a.contents.as_bytes())?;
        written.push(a.path.display().to_string());
    }
    if out.json() {
        out.json_value(&json!({"ok": true, "dir": dir.display().to_string(), "files": written}));
    } else {
        for w in &written {
            out.note(&format!("wrote {}", dir.join(w).display()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `path` so that readers see the old file or the new one, never a part: write a
/// temporary file beside it, flush it to disk, rename it over.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
