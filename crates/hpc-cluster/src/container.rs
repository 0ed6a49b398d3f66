//! Containers in SLURM jobs: `container build` (an OCI bundle of the file's
//! `containers.images`, built from Debian packages into the bundles share's host directory,
//! [`hpc_image::build_bundle`]) and `check containers` (`srun --container` on every node that
//! runs jobs, [`hpc_slurm::oci::check_containers`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hpc_image::{BundleOutcome, BundlePhase, BundleSpec};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::session::Session;

/// What `container build` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ContainerReport {
    /// The image's name.
    pub name: String,
    /// Whether it built (`false`: a bundle of the same inputs was there).
    pub built: bool,
    /// The inputs' cache key (also in the bundle's `/etc/hpc-up-bundle`).
    pub key: String,
    /// Its Debian release.
    pub release: hpc_config::DebianRelease,
    /// The bundle on this host.
    pub path: PathBuf,
    /// The bundle on the nodes (what `srun --container=` names).
    pub node_path: String,
    /// Wall time.
    pub seconds: f64,
}

impl ContainerReport {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "container image {} ({}): {} in {:.1}s at {} (nodes: srun --container={}), key {}",
            self.name,
            self.release,
            if self.built { "built" } else { "up to date" },
            self.seconds,
            self.path.display(),
            self.node_path,
            self.key
        )
    }
}

fn phase_name(p: BundlePhase) -> &'static str {
    match p {
        BundlePhase::Bootstrap => "installing packages (mmdebstrap)",
        BundlePhase::Install => "writing config.json and publishing the bundle",
    }
}

impl Session {
    /// Builds container image `name` (from the file's `containers.images`) into the bundles
    /// directory on this host, unless a bundle of the same inputs is there and `force` is
    /// false. `progress` hears each build phase as it starts. Needs root (mmdebstrap
    /// `--mode=root`).
    pub fn build_container(
        &self,
        name: &str,
        force: bool,
        mut progress: impl FnMut(&str),
    ) -> Result<ContainerReport> {
        let containers = self.cluster.containers.as_ref().ok_or_else(|| {
            Error::Usage("the cluster file has no (enabled) `containers` section".into())
        })?;
        let spec = BundleSpec::for_cluster(&self.cluster, name).map_err(|_| {
            let known: Vec<&str> = containers.images.iter().map(|i| i.name.as_str()).collect();
            Error::Usage(format!(
                "no container image `{name}` in the cluster file (containers.images: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        let started = Instant::now();
        let outcome = hpc_image::build_bundle(&spec, &containers.host_bundles, force, &mut |p| {
            progress(phase_name(p));
        })
        .map_err(|e| match e {
            hpc_image::BundleError::Io(source) => Error::Io {
                what: "cannot build the bundle in",
                path: containers.host_bundles.clone(),
                source,
            },
            other => Error::Usage(format!("container build {name}: {other}")),
        })?;
        Ok(ContainerReport {
            name: spec.name.clone(),
            built: matches!(outcome, BundleOutcome::Built { .. }),
            key: outcome.key().to_owned(),
            release: spec.release,
            path: outcome.path().to_path_buf(),
            node_path: format!("{}/{}", containers.bundles.trim_end_matches('/'), spec.name),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// `check containers`: on every node that runs jobs, one `srun --container` step with
    /// `image` (default: the file's first) submitted on the controller, each bounded by
    /// `timeout`. A node's failure is in the report; an error means the check could not run
    /// (among them a bundle that is not built yet).
    pub fn check_containers(
        &self,
        image: Option<&str>,
        timeout: Duration,
    ) -> Result<hpc_slurm::oci::ContainerCheck> {
        if self.cluster.containers.is_none() {
            return Err(Error::Usage(
                "the cluster file has no (enabled) `containers` section".into(),
            ));
        }
        self.on_nodes(async |exec, _token| {
            hpc_slurm::oci::check_containers(exec, &self.cluster, image, timeout).await
        })?
        .map_err(|e| Error::Check {
            what: "containers",
            message: e.to_string(),
        })
    }
}
