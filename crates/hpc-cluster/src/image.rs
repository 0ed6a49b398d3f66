//! `image build`: the guest image the cluster file names, trusting the cluster's key.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hpc_image::{ImagePaths, Outcome, Phase, Recipe};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::session::Session;

/// What `image build` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageReport {
    /// Whether it built (`false`: an image of the same inputs was there).
    pub built: bool,
    /// The inputs' cache key.
    pub key: String,
    /// The Debian release of the image.
    pub release: hpc_config::DebianRelease,
    /// The disk image.
    pub base: PathBuf,
    /// The kernel.
    pub kernel: PathBuf,
    /// The initrd.
    pub initrd: PathBuf,
    /// Wall time.
    pub seconds: f64,
    /// Per build phase, its wall time.
    pub phases: Vec<(String, f64)>,
}

impl Session {
    fn image_paths(&self) -> Result<ImagePaths> {
        let image = &self.cluster.image;
        let dir = image
            .base
            .parent()
            .map_or_else(|| Path::new("/").to_path_buf(), Path::to_path_buf);
        let (Some(kernel), Some(initrd)) = (&image.kernel, &image.initrd) else {
            return Err(Error::Usage(format!(
                "built images boot by direct kernel boot: the file must name `image.kernel` and `image.initrd` (add `kernel: {}` and `initrd: {}` under `image:`)",
                dir.join("vmlinuz").display(),
                dir.join("initrd.img").display()
            )));
        };
        Ok(ImagePaths {
            base: image.base.clone(),
            kernel: kernel.clone(),
            initrd: initrd.clone(),
        })
    }

    /// The `.deb` files of `beegfs.packages.debs` that the nodes' roles need (the directory
    /// may hold more, e.g. a release's whole set), each checked for its package and release.
    fn beegfs_debs(&self) -> Result<Vec<PathBuf>> {
        let Some(hpc_config::BeegfsPackageSource::Debs { dir }) =
            self.cluster.beegfs.as_ref().map(|b| &b.packages)
        else {
            return Ok(Vec::new());
        };
        let mut files: Vec<PathBuf> = fs_err::read_dir(dir)
            .map_err(Error::io("cannot list", dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb") && p.is_file())
            .filter(|p| !self.cluster.image.debs.contains(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Usage(format!(
                "beegfs.packages.debs: {} holds no .deb files",
                dir.display()
            )));
        }
        let mut debs = Vec::with_capacity(files.len());
        for f in files {
            let (package, version) = hpc_image::deb_fields(&f)?;
            debs.push((
                f.display().to_string(),
                hpc_beegfs::DebInfo { package, version },
            ));
        }
        hpc_beegfs::choose_debs(&self.cluster, &debs)
            .map(|chosen| chosen.into_iter().map(PathBuf::from).collect())
            .map_err(|errors| {
                let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
                Error::Usage(format!(
                    "beegfs.packages.debs: {}:\n{}",
                    dir.display(),
                    lines.join("\n")
                ))
            })
    }

    /// The image recipe for this cluster: the file's image section, the BeeGFS packages the
    /// nodes need and, for BeeGFS clients, the kernel headers and the client module build.
    fn recipe(&self, key: &str) -> Result<Recipe> {
        let mut recipe = Recipe::for_cluster(&self.cluster, key);
        recipe.debs.extend(self.beegfs_debs()?);
        if hpc_beegfs::builds_client_module(&self.cluster) {
            let headers = hpc_image::KERNEL_HEADERS_PACKAGE.to_owned();
            if !recipe.packages.contains(&headers) {
                recipe.packages.push(headers);
            }
            recipe.scripts.push(hpc_image::ImageScript {
                name: "beegfs-client-module".into(),
                script: hpc_beegfs::CLIENT_MODULE_SCRIPT.into(),
            });
        }
        // MPI, containers, monitoring: their packages, and scripts such as the MPI check's
        // build
        let (packages, scripts) = crate::stack::image_needs(&self.cluster);
        for p in packages {
            if !recipe.packages.contains(&p) {
                recipe.packages.push(p);
            }
        }
        recipe.scripts.extend(
            scripts
                .into_iter()
                .map(|(name, script)| hpc_image::ImageScript { name, script }),
        );
        Ok(recipe)
    }

    /// Build the image from Debian packages (mmdebstrap); a second build with the same
    /// inputs does nothing unless `force`. `progress` hears each build phase as it starts.
    pub fn build_image(&self, force: bool, mut progress: impl FnMut(Phase)) -> Result<ImageReport> {
        let paths = self.image_paths()?;
        let id = self.state.identity(&self.cluster)?;
        let key =
            fs_err::read_to_string(&id.public).map_err(Error::io("cannot read", &id.public))?;
        let recipe = self.recipe(&key)?;
        if force {
            let _ = fs_err::remove_file(paths.manifest());
        }
        let started = Instant::now();
        let mut phase_started = Instant::now();
        let mut phases: Vec<(String, f64)> = Vec::new();
        let mut last: Option<Phase> = None;
        let outcome = hpc_image::build(&recipe, &paths, &mut |p: Phase| {
            if let Some(prev) = last {
                phases.push((format!("{prev:?}"), phase_started.elapsed().as_secs_f64()));
            }
            phase_started = Instant::now();
            last = Some(p);
            progress(p);
        })?;
        if let Some(prev) = last {
            phases.push((format!("{prev:?}"), phase_started.elapsed().as_secs_f64()));
        }
        let (built, key) = match outcome {
            Outcome::Built { key } => (true, key),
            Outcome::UpToDate { key } => (false, key),
        };
        Ok(ImageReport {
            built,
            key,
            release: recipe.release,
            base: paths.base,
            kernel: paths.kernel,
            initrd: paths.initrd,
            seconds: started.elapsed().as_secs_f64(),
            phases,
        })
    }
}
