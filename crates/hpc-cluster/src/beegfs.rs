//! The BeeGFS layer: what the planner needs from this machine (the auth secret, made once;
//! TLS and repository files the cluster file names), `render`'s `beegfs/<node>/` tree, and
//! the glue to `hpc_beegfs::deploy` and `hpc_beegfs::check_cluster`.

use std::path::PathBuf;

use hpc_beegfs::{AuthSecret, Inputs};
use hpc_config::BeegfsPackageSource;
use hpc_remote::Executor;

use crate::error::{Error, Result};
use crate::event::{Layer, LayerObserver, Recorder};
use crate::fsutil::Artefact;
use crate::session::Session;
use crate::slurm::SecretUse;
use crate::state::random_bytes;

/// Bytes of the auth secret hpc-up makes (BeeGFS: 4–1024; hpc-up: 32–1024).
const AUTH_SECRET_BYTES: usize = 64;
const AUTH_SECRET_FILE: &str = "beegfs-conn.auth";

/// For what the inputs are gathered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputUse {
    /// `render`: nothing is read that may be missing, nothing is made; the secret is a
    /// fixed stand-in that never leaves the process, missing files are stand-ins naming
    /// their path.
    Render,
    /// `plan` and `up`: the host files must exist; the secret as [`SecretUse`] says.
    Deploy(SecretUse),
}

fn beegfs_err(e: impl std::fmt::Display) -> Error {
    Error::Beegfs(e.to_string())
}

impl Session {
    /// Everything the BeeGFS planner needs from this machine.
    pub(crate) fn beegfs_inputs(&self, using: InputUse) -> Result<Inputs> {
        let Some(b) = &self.cluster.beegfs else {
            return Ok(Inputs::default());
        };
        let file = |p: &Option<PathBuf>, what: &str| -> Result<Option<Vec<u8>>> {
            match p {
                None => Ok(None),
                Some(p) if using == InputUse::Render => {
                    Ok(Some(fs_err::read(p).unwrap_or_else(|_| {
                        format!("(contents of {})\n", p.display()).into_bytes()
                    })))
                }
                Some(p) => fs_err::read(p)
                    .map(Some)
                    .map_err(|e| Error::Beegfs(format!("cannot read the {what}: {e}"))),
            }
        };
        let repo_key = match &b.packages {
            BeegfsPackageSource::Repo { key, .. } => file(key, "repository key")?,
            _ => None,
        };
        let auth = if !b.auth {
            None
        } else {
            let bytes = match using {
                InputUse::Render => (0..AUTH_SECRET_BYTES as u8).collect(),
                InputUse::Deploy(SecretUse::Keep) => {
                    self.state
                        .secret(AUTH_SECRET_FILE, AUTH_SECRET_BYTES, |b| b)?
                }
                InputUse::Deploy(SecretUse::Plan) => {
                    match self.state.read_secret(AUTH_SECRET_FILE)? {
                        Some(b) => b,
                        None => random_bytes(AUTH_SECRET_BYTES)?,
                    }
                }
            };
            Some(AuthSecret::new(bytes).map_err(|e| {
                Error::Beegfs(format!(
                    "{e}: remove {} to make a new one",
                    self.state.secrets_dir().join(AUTH_SECRET_FILE).display()
                ))
            })?)
        };
        Ok(Inputs {
            auth,
            tls_cert: file(&b.tls_cert_file, "TLS certificate")?,
            tls_key: file(&b.tls_key_file, "TLS key")?,
            repo_key,
        })
    }

    /// The BeeGFS setup plan (`None` without a `beegfs:` section).
    pub(crate) fn beegfs_plan(&self, using: InputUse) -> Result<Option<hpc_beegfs::SetupPlan>> {
        if self.cluster.beegfs.is_none() {
            return Ok(None);
        }
        let inputs = self.beegfs_inputs(using)?;
        hpc_beegfs::setup_plan(&self.cluster, &inputs)
            .map(Some)
            .map_err(beegfs_err)
    }

    /// `check beegfs`: preflight facts, the release's own tools, a round trip with
    /// throughput on every client.
    pub fn check_beegfs(&self) -> Result<hpc_beegfs::ClusterCheck> {
        if self.cluster.beegfs.is_none() {
            return Err(Error::Usage(
                "the cluster file has no (enabled) `beegfs` section".into(),
            ));
        }
        self.on_nodes(async |exec, token| {
            hpc_beegfs::check_cluster(exec, &self.cluster, token).await
        })?
        .map_err(beegfs_err)
    }
}

/// `render`: per node, `beegfs/<node>/etc/beegfs/…` and `beegfs/<node>/setup-steps.txt`.
pub(crate) fn artefacts(s: &Session) -> Result<Vec<Artefact>> {
    let Some(plan) = s.beegfs_plan(InputUse::Render)? else {
        return Ok(Vec::new());
    };
    let files = hpc_beegfs::config_files(&s.cluster).map_err(beegfs_err)?;
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

/// Deploy BeeGFS on the running nodes: the preflight gate, then the phases in order.
pub(crate) async fn deploy<E: Executor>(s: &Session, exec: &E, rec: &Recorder<'_>) -> Result<()> {
    let inputs = s.beegfs_inputs(InputUse::Deploy(SecretUse::Keep))?;
    let observer = LayerObserver {
        rec,
        layer: Layer::Beegfs,
        own: None,
    };
    let report = hpc_beegfs::deploy(exec, &s.cluster, &inputs, &observer)
        .await
        .map_err(beegfs_err)?;
    for w in &report.warnings {
        rec.warn(format!("BeeGFS preflight: {w}"));
    }
    Ok(())
}
