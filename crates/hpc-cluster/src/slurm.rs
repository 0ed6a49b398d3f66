//! The SLURM layer: the cluster's secrets (made once in the state directory), the plan the
//! seeds take their SLURM phases from, the deployment with per-node progress, the check.

use std::time::Duration;

use hpc_remote::Executor;
use hpc_slurm::{CheckOptions, CheckReport, DeployOptions, DeployReport, Secrets};

use crate::error::{Error, Result};
use crate::event::{Layer, LayerObserver, Recorder};
use crate::session::Session;
use crate::state::random_bytes;

/// Bytes of the munge key hpc-up makes (munged wants at least 32; `mungekey` makes 1024).
const MUNGE_KEY_BYTES: usize = 1024;
/// Random bytes of the slurmdbd database password (hex-encoded: twice as many characters).
const DB_PASSWORD_BYTES: usize = 24;

fn hex(bytes: Vec<u8>) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

/// The cluster's SLURM secrets: the munge key, and the database password when accounting
/// is on.
#[derive(Clone)]
pub(crate) struct SlurmSecrets {
    pub(crate) munge_key: Vec<u8>,
    pub(crate) db_password: Option<String>,
}

impl SlurmSecrets {
    pub(crate) fn as_secrets(&self) -> Secrets<'_> {
        Secrets {
            munge_key: Some(&self.munge_key),
            db_password: self.db_password.as_deref(),
        }
    }
}

/// Whether a secret was read from the state directory or made up for a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretUse {
    /// Read it, or make and keep it.
    Keep,
    /// Read it; when missing, stand-in bytes that are never written (planning creates
    /// nothing).
    Plan,
}

impl Session {
    fn accounting(&self) -> bool {
        self.cluster
            .slurm
            .as_ref()
            .is_some_and(|s| s.accounting_host.is_some())
    }

    pub(crate) fn slurm_secrets(&self, using: SecretUse) -> Result<SlurmSecrets> {
        let get = |name: &str, len: usize, encode: fn(Vec<u8>) -> Vec<u8>| -> Result<Vec<u8>> {
            match using {
                SecretUse::Keep => self.state.secret(name, len, encode),
                SecretUse::Plan => match self.state.read_secret(name)? {
                    Some(b) => Ok(b),
                    None => Ok(encode(random_bytes(len)?)),
                },
            }
        };
        let munge_key = get("munge.key", MUNGE_KEY_BYTES, |b| b)?;
        let db_password = if self.accounting() {
            Some(
                String::from_utf8(get("slurmdbd.password", DB_PASSWORD_BYTES, hex)?)
                    .map_err(|_| Error::Usage("the saved slurmdbd password is not text".into()))?,
            )
        } else {
            None
        };
        Ok(SlurmSecrets {
            munge_key,
            db_password,
        })
    }

    /// The SLURM deployment `up` makes: `slurm.conf` with the hardware hpc-up's VMs declare.
    /// `None` without a `slurm:` section.
    pub(crate) fn slurm_plan(&self, using: SecretUse) -> Result<Option<hpc_slurm::DeployPlan>> {
        if self.cluster.slurm.is_none() {
            return Ok(None);
        }
        let secrets = self.slurm_secrets(using)?;
        let render = hpc_slurm::RenderOptions::for_cluster(&self.cluster);
        let conf = hpc_slurm::render_slurm_conf(
            &self.cluster,
            &hpc_slurm::NodeHardware::declared(&self.cluster),
            &render,
        );
        Ok(Some(hpc_slurm::plan_deploy(
            &self.cluster,
            &conf,
            &secrets.as_secrets(),
            &render,
        )?))
    }

    /// Run real jobs on the running cluster: `srun` per partition, an `sbatch` job through
    /// a shared directory, `sacct` when accounting is on.
    pub fn check_slurm(&self, timeout: Duration) -> Result<CheckReport> {
        if self.cluster.slurm.is_none() {
            return Err(Error::Usage(
                "the cluster file has no `slurm:` section; there is no SLURM to check".into(),
            ));
        }
        Ok(self.on_nodes(async |exec, token| {
            let opts = CheckOptions {
                timeout,
                token: token.to_owned(),
            };
            hpc_slurm::check(exec, &self.cluster, &opts).await
        })??)
    }
}

/// Deploy SLURM on the cluster's nodes, each as soon as `ready(node)` returns.
pub(crate) async fn deploy<E, R, RF>(
    s: &Session,
    exec: &E,
    rec: &Recorder<'_>,
    ready: R,
) -> Result<DeployReport>
where
    E: Executor,
    R: Fn(String) -> RF,
    RF: std::future::Future<Output = std::result::Result<(), String>>,
{
    let secrets = s.slurm_secrets(SecretUse::Keep)?;
    rec.note(format!(
        "deploying SLURM on {} node(s) as each comes up: munge, {}slurmctld, slurmd",
        s.cluster.nodes.len(),
        if secrets.db_password.is_some() {
            "MariaDB + slurmdbd, "
        } else {
            ""
        }
    ));
    let opts = DeployOptions {
        // TCG guests start daemons slowly.
        wait_timeout: Duration::from_secs(300),
        // What the domains give the nodes, as the seeds have it.
        hardware: hpc_slurm::NodeHardware::declared(&s.cluster),
        ..DeployOptions::default()
    };
    let observer = LayerObserver {
        rec,
        layer: Layer::Slurm,
        own: Some("ready"),
    };
    let report = hpc_slurm::deploy_with(
        exec,
        &s.cluster,
        &secrets.as_secrets(),
        &opts,
        ready,
        &observer,
    )
    .await?;
    let cluster_wide: Vec<String> = report
        .phases
        .iter()
        .filter(|p| p.node.is_none())
        .map(|p| format!("{} {:.1}s", p.name, p.elapsed.as_secs_f64()))
        .collect();
    rec.note(format!(
        "SLURM ready: every node idle, config hashes match ({}; {} change(s), {} service start(s))",
        cluster_wide.join(", "),
        report.changed(),
        report.restarted().len()
    ));
    Ok(report)
}
