//! `render`: every artefact the planners produce for a cluster, as files under a directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::{Artefact, write_tree};
use crate::session::Session;

/// What `render` wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RenderReport {
    /// The output directory.
    pub dir: PathBuf,
    /// Every artefact's relative path, in order.
    pub files: Vec<PathBuf>,
    /// Those that already held exactly these bytes (left alone).
    pub unchanged: Vec<PathBuf>,
}

impl Session {
    /// Everything the planners produce, in a fixed order: `cluster.json` (the resolved
    /// cluster), `libvirt/<host>/<kind>/<name>.xml`, `slurm/*.conf` (hardware estimated from
    /// the file; `slurmdbd.conf` is left out, it carries the database password) and
    /// `beegfs/<node>/…` and `nodes/<node>/<path>` (MPI, containers, monitoring). Pure: nothing is read or made (secrets are stand-ins).
    pub fn render(&self) -> Result<Vec<Artefact>> {
        let cluster = &self.cluster;
        let mut inventory =
            serde_json::to_string_pretty(cluster).map_err(|e| Error::Usage(e.to_string()))?;
        inventory.push('\n');
        let mut out = vec![Artefact {
            path: "cluster.json".into(),
            contents: inventory,
        }];
        for o in &self.libvirt.objects {
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
                contents: o.xml.clone(),
            });
        }
        if cluster.slurm.is_some() {
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
            if let Some(epilog) = hpc_slurm::epilog_script(cluster) {
                out.push(Artefact {
                    path: PathBuf::from("slurm").join("hpc-up-epilog"),
                    contents: epilog,
                });
            }
        }
        out.extend(crate::beegfs::artefacts(self)?);
        // MPI, containers, monitoring: `<node>/<path on the node>`
        for (node, path, contents) in crate::stack::files(cluster) {
            out.push(Artefact {
                path: PathBuf::from("nodes")
                    .join(node)
                    .join(path.trim_start_matches('/')),
                contents,
            });
        }
        Ok(out)
    }

    /// [`Session::render`] into `dir` (see [`write_tree`]: atomic per file, files that
    /// already hold the right bytes are left alone, other files in `dir` stay).
    pub fn render_to(&self, dir: &Path) -> Result<RenderReport> {
        let files = self.render()?;
        let written = write_tree(dir, &files)?;
        Ok(RenderReport {
            dir: dir.to_path_buf(),
            unchanged: files
                .iter()
                .zip(&written)
                .filter(|(_, w)| !**w)
                .map(|(a, _)| a.path.clone())
                .collect(),
            files: files.into_iter().map(|a| a.path).collect(),
        })
    }
}
