//! OCI bundles for containers in SLURM jobs (`srun --container=<bundles>/<name>`), built
//! from Debian packages like the guest image: `mmdebstrap --variant=minbase` (no kernel, no
//! systemd) into `rootfs/`, an OCI runtime `config.json` beside it, a marker file in the
//! rootfs ([`BUNDLE_MARKER`]: the image name, then the cache key) and a manifest
//! ([`BUNDLE_MANIFEST`]) holding the cache key, so a second build of the same inputs does
//! nothing.
//!
//! Layout in the bundles directory (a read-write virtio-fs share's host directory):
//!
//! ```text
//! <dir>/<name>/config.json
//!              rootfs/
//!              hpc-up-bundle.json      (manifest)
//! <dir>/.<name>.log                     (mmdebstrap's output)
//! ```
//!
//! A build goes into a fresh `.<name>.<random>` directory beside it and is published by one
//! rename (the first time) or one atomic swap with the old bundle (`RENAME_EXCHANGE`): a job
//! sees the old bundle or the new one, never a half-built one and never none. The old one is
//! removed after the swap (a job still running in it loses its files: rebuild between
//! jobs).
//!
//! `config.json` is what SLURM's slurmstepd starts from: it keeps everything but
//! `root.path` (made absolute), `process.args` (the step's command), `process.env` (the
//! job's environment) and `process.terminal`, and adds its own bind mounts. Hence: the root
//! filesystem read-only (many jobs share it) with tmpfs on `/tmp` and `/run`; no network or
//! UTS namespace (the job uses the node's network and hostname, as MPI needs); no cgroup
//! namespace and no `linux.cgroupsPath` (the container stays in, or below, the job step's
//! cgroup; see `hpc_slurm::oci`); the process runs as uid 0 with the default capabilities of
//! `runc spec`.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hpc_config::{Cluster, ContainerImage, DebianRelease};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::recipe::{hex, shell_quote};

/// Version of the bundle recipe (argv, config.json, marker); part of the cache key.
pub const BUNDLE_RECIPE_VERSION: u32 = 1;
/// The marker file in every bundle's rootfs: the image name, then the cache key.
pub const BUNDLE_MARKER: &str = "etc/hpc-up-bundle";
/// The manifest in the bundle directory (beside `config.json`).
pub const BUNDLE_MANIFEST: &str = "hpc-up-bundle.json";

/// Everything that decides a bundle's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSpec {
    /// The image name (the bundle's directory name under the bundles directory).
    pub name: String,
    /// Its Debian release.
    pub release: DebianRelease,
    /// Debian mirror.
    pub mirror: String,
    /// Packages beside minbase's (sorted, deduplicated).
    pub packages: Vec<String>,
}

/// What a bundle directory records about its build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BundleManifest {
    /// Its cache key.
    pub key: String,
    /// The image name.
    pub name: String,
    /// Its release.
    pub release: DebianRelease,
    /// Its packages.
    pub packages: Vec<String>,
    /// [`BUNDLE_RECIPE_VERSION`] when it was built.
    pub recipe_version: u32,
}

/// What [`build_bundle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleOutcome {
    /// The bundle was built and published.
    Built {
        /// Its cache key.
        key: String,
        /// The bundle's path (`<dir>/<name>`).
        path: PathBuf,
    },
    /// A bundle with this key was there; nothing was done.
    UpToDate {
        /// Its cache key.
        key: String,
        /// The bundle's path.
        path: PathBuf,
    },
}

impl BundleOutcome {
    /// The cache key.
    pub fn key(&self) -> &str {
        match self {
            Self::Built { key, .. } | Self::UpToDate { key, .. } => key,
        }
    }

    /// The bundle's path.
    pub fn path(&self) -> &Path {
        match self {
            Self::Built { path, .. } | Self::UpToDate { path, .. } => path,
        }
    }
}

/// The phases of a bundle build, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundlePhase {
    /// Installing packages into the root filesystem (the long part).
    Bootstrap,
    /// Writing `config.json` and the manifest, publishing the bundle.
    Install,
}

/// Why a bundle build failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The cluster file names no such image.
    #[error("no container image `{0}` in the cluster file")]
    UnknownImage(String),
    /// `mmdebstrap` is not installed.
    #[error("`mmdebstrap` is not installed (Debian package `mmdebstrap`)")]
    MissingTool,
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// mmdebstrap failed.
    #[error(
        "bundle build step `mmdebstrap` failed ({status}); last output:\n{tail}\nfull log: {log}"
    )]
    Bootstrap {
        /// Its exit status.
        status: String,
        /// The end of its output.
        tail: String,
        /// The log file.
        log: String,
    },
}

impl BundleSpec {
    /// The spec of `cluster`'s image `name`.
    pub fn for_cluster(cluster: &Cluster, name: &str) -> Result<Self, BundleError> {
        let image = cluster
            .containers
            .as_ref()
            .and_then(|c| c.images.iter().find(|i| i.name.as_str() == name))
            .ok_or_else(|| BundleError::UnknownImage(name.to_owned()))?;
        Ok(Self::for_image(image, &cluster.image.mirror))
    }

    /// The spec of `image` from `mirror`.
    pub fn for_image(image: &ContainerImage, mirror: &str) -> Self {
        let mut packages = image.packages.clone();
        packages.sort();
        packages.dedup();
        Self {
            name: image.name.to_string(),
            release: image.release,
            mirror: mirror.to_owned(),
            packages,
        }
    }

    /// The cache key: a hash of the recipe version, release, mirror, packages and the
    /// `config.json` the bundle gets.
    pub fn cache_key(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!(
            "bundle {BUNDLE_RECIPE_VERSION}\nname {}\nsuite {}\nmirror {}\n",
            self.name,
            self.release.as_str(),
            self.mirror
        ));
        for p in &self.packages {
            h.update(format!("package {p}\n"));
        }
        h.update(self.config_json());
        hex(&h.finalize())
    }

    /// The mmdebstrap command line that builds the root filesystem into `rootfs` and writes
    /// the marker holding `key`.
    pub fn mmdebstrap_argv(&self, rootfs: &Path, key: &str) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(OsString::from(s));
        push("--variant=minbase");
        push("--mode=root");
        push("--format=directory");
        if !self.packages.is_empty() {
            push(&format!("--include={}", self.packages.join(",")));
        }
        push("--aptopt=Acquire::Languages \"none\"");
        push("--dpkgopt=path-exclude=/usr/share/man/*");
        push("--dpkgopt=path-exclude=/usr/share/doc/*");
        push("--dpkgopt=path-exclude=/usr/share/locale/*");
        push("--dpkgopt=path-include=/usr/share/doc/*/copyright");
        // Packages must not start daemons inside the build chroot.
        push(
            "--essential-hook=printf '#!/bin/sh\\nexit 101\\n' > \"$1/usr/sbin/policy-rc.d\" && chmod 755 \"$1/usr/sbin/policy-rc.d\"",
        );
        let marker = format!("{}\n{key}\n", self.name);
        push(&format!(
            "--customize-hook=printf %s {} > \"$1/{BUNDLE_MARKER}\" && rm -f \"$1/usr/sbin/policy-rc.d\" && rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
            shell_quote(&marker)
        ));
        a.push(OsString::from(self.release.as_str()));
        a.push(rootfs.as_os_str().to_owned());
        a.push(OsString::from(&self.mirror));
        a
    }

    /// The OCI runtime `config.json` (runtime-spec 1.0.2; see the module docs).
    pub fn config_json(&self) -> String {
        let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": { "uid": 0, "gid": 0 },
                // slurmstepd replaces these with the step's command.
                "args": ["/bin/sh", "-c", "echo 'run by srun --container'; exit 1"],
                "env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"
                ],
                "cwd": "/",
                "capabilities": {
                    "bounding": caps,
                    "effective": caps,
                    "permitted": caps
                },
                "noNewPrivileges": true
            },
            "root": { "path": "rootfs", "readonly": true },
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                  "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
                { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                  "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
                { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                  "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
                { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                  "options": ["nosuid", "noexec", "nodev"] },
                { "destination": "/sys", "type": "none", "source": "/sys",
                  "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] },
                { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                  "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] },
                { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                  "options": ["nosuid", "nodev", "mode=1777"] },
                { "destination": "/run", "type": "tmpfs", "source": "tmpfs",
                  "options": ["nosuid", "nodev", "mode=755"] }
            ],
            "linux": {
                // No network, UTS or cgroup namespace: the node's network and hostname, and
                // the job step's cgroup as it is.
                "namespaces": [
                    { "type": "pid" },
                    { "type": "ipc" },
                    { "type": "mount" }
                ],
                "maskedPaths": [
                    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
                ],
                "readonlyPaths": [
                    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
                ]
            }
        });
        let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The bundle `name`'s path in `dir` (what jobs name with `--container`, on the nodes).
pub fn bundle_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The manifest of the bundle at `path`, if it has a readable one.
pub fn read_bundle_manifest(path: &Path) -> Option<BundleManifest> {
    let text = fs_err::read_to_string(path.join(BUNDLE_MANIFEST)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether the bundle at `path` was built with `key` (manifest, config and rootfs there).
pub fn bundle_is_up_to_date(path: &Path, key: &str) -> bool {
    read_bundle_manifest(path).is_some_and(|m| m.key == key)
        && path.join("config.json").is_file()
        && path.join("rootfs").join(BUNDLE_MARKER).is_file()
}

fn mmdebstrap_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("mmdebstrap").is_file()))
}

/// Builds the bundle of `spec` in `dir` (the bundles directory on this host), unless one
/// with the same cache key is there and `force` is false. `progress` is told when each phase
/// starts. Runs as root (mmdebstrap `--mode=root`). See the module docs for the layout.
pub fn build_bundle(
    spec: &BundleSpec,
    dir: &Path,
    force: bool,
    progress: &mut dyn FnMut(BundlePhase),
) -> Result<BundleOutcome, BundleError> {
    let key = spec.cache_key();
    let path = bundle_path(dir, &spec.name);
    if !force && bundle_is_up_to_date(&path, &key) {
        return Ok(BundleOutcome::UpToDate { key, path });
    }
    if !mmdebstrap_installed() {
        return Err(BundleError::MissingTool);
    }
    fs_err::create_dir_all(dir)?;
    // Scratch space beside the bundle: the publishing rename stays in one directory.
    let work = tempfile::Builder::new()
        .prefix(&format!(".{}.", spec.name))
        .tempdir_in(dir)?;
    let rootfs = work.path().join("rootfs");
    let log_path = dir.join(format!(".{}.log", spec.name));
    let mut log = fs_err::File::create(&log_path)?;

    progress(BundlePhase::Bootstrap);
    tracing::debug!(bundle = %spec.name, "mmdebstrap");
    let out = Command::new("mmdebstrap")
        .args(spec.mmdebstrap_argv(&rootfs, &key))
        .stdin(Stdio::null())
        .output()?;
    log.write_all(&out.stdout)?;
    log.write_all(&out.stderr)?;
    if !out.status.success() {
        let all = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = all.lines().collect();
        return Err(BundleError::Bootstrap {
            status: out.status.to_string(),
            tail: lines[lines.len().saturating_sub(15)..].join("\n"),
            log: log_path.display().to_string(),
        });
    }

    progress(BundlePhase::Install);
    use std::os::unix::fs::PermissionsExt;
    // Every job's user reads the bundle.
    fs_err::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))?;
    fs_err::write(work.path().join("config.json"), spec.config_json())?;
    let manifest = BundleManifest {
        key: key.clone(),
        name: spec.name.clone(),
        release: spec.release,
        packages: spec.packages.clone(),
        recipe_version: BUNDLE_RECIPE_VERSION,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
    fs_err::write(work.path().join(BUNDLE_MANIFEST), format!("{text}\n"))?;
    let built = work.keep();
    publish(dir, &spec.name, &built)?;
    Ok(BundleOutcome::Built { key, path })
}

/// Puts `built` (a directory in `dir`) at `<dir>/<name>`: renamed there when nothing is,
/// else swapped with the old bundle in one `renameat2(RENAME_EXCHANGE)` (jobs see the old or
/// the new one, never none), and the old one, now at `built`'s name, removed. A symlink
/// would be simpler but runc refuses a rootfs reached through one ("invalid rootfs: not an
/// absolute path, or a symlink"), and slurmstepd builds the rootfs path from the
/// `--container` path as given.
fn publish(dir: &Path, name: &str, built: &Path) -> Result<(), BundleError> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    let target = dir.join(name);
    match fs_err::symlink_metadata(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs_err::rename(built, &target)?,
        Err(e) => return Err(e.into()),
        Ok(_) => {
            renameat2(
                AT_FDCWD,
                built,
                AT_FDCWD,
                &target,
                RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(|e| {
                std::io::Error::other(format!(
                    "swapping {} and {}: {e}",
                    built.display(),
                    target.display()
                ))
            })?;
            // `built` now holds the old bundle (or the old symlink/file).
            let old = fs_err::symlink_metadata(built)?;
            if old.is_dir() {
                fs_err::remove_dir_all(built)?;
            } else {
                fs_err::remove_file(built)?;
            }
        }
    }
    // Flushing the directory makes the rename durable.
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(packages: &[&str]) -> BundleSpec {
        BundleSpec {
            name: "base".into(),
            release: DebianRelease::Trixie,
            mirror: "http://deb.debian.org/debian".into(),
            packages: packages.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_key_follows_every_input() {
        let a = spec(&["python3"]);
        let mut b = a.clone();
        b.release = DebianRelease::Bookworm;
        let mut c = a.clone();
        c.mirror = "http://mirror.example/debian".into();
        let keys = [
            a.cache_key(),
            b.cache_key(),
            c.cache_key(),
            spec(&[]).cache_key(),
        ];
        for (i, k) in keys.iter().enumerate() {
            for l in &keys[i + 1..] {
                assert_ne!(k, l);
            }
        }
        assert_eq!(a.cache_key(), spec(&["python3"]).cache_key());
    }

    #[test]
    fn config_json_is_read_only_without_network_or_cgroup_namespaces() {
        let v: serde_json::Value =
            serde_json::from_str(&spec(&[]).config_json()).unwrap_or_default();
        assert_eq!(v["root"]["path"], "rootfs");
        assert_eq!(v["root"]["readonly"], true);
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "mount"]);
        assert!(v["linux"].get("cgroupsPath").is_none());
    }

    #[test]
    fn argv_writes_the_marker_and_names_the_suite() {
        let argv = spec(&["python3"]).mmdebstrap_argv(Path::new("/b/rootfs"), "k1");
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(argv.contains(&"--include=python3".to_owned()));
        assert!(
            argv.iter()
                .any(|a| a.contains("etc/hpc-up-bundle") && a.contains("base\nk1\n"))
        );
        assert_eq!(
            argv[argv.len() - 3..],
            ["trixie", "/b/rootfs", "http://deb.debian.org/debian"]
        );
    }

    #[test]
    fn publish_swaps_the_bundle_and_removes_the_old_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let one = dir.path().join(".base.one");
        let two = dir.path().join(".base.two");
        for d in [&one, &two] {
            fs_err::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
        }
        for (d, word) in [(&one, "one"), (&two, "two")] {
            fs_err::write(d.join("which"), word).unwrap_or_else(|e| panic!("{e}"));
        }
        let which = || fs_err::read_to_string(dir.path().join("base/which")).ok();
        publish(dir.path(), "base", &one).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(which().as_deref(), Some("one"));
        publish(dir.path(), "base", &two).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(which().as_deref(), Some("two"));
        assert!(!one.exists() && !two.exists());
    }
}
