//! Building an image (effects): mmdebstrap into a scratch directory beside the output, then
//! ext4 → qcow2, kernel and initrd copied out, files renamed into place, manifest last.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hpc_config::DebianRelease;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::recipe::{RECIPE_VERSION, ROOT_LABEL, Recipe, hex};

/// Where an image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePaths {
    /// The qcow2 base image.
    pub base: PathBuf,
    /// The kernel.
    pub kernel: PathBuf,
    /// The initrd.
    pub initrd: PathBuf,
}

impl ImagePaths {
    /// The manifest beside the base image (`base.qcow2.json`): the cache key of what was
    /// built and its release (see [`Manifest`]).
    pub fn manifest(&self) -> PathBuf {
        manifest_path(&self.base)
    }
    /// The log of the last build beside the base image.
    pub fn log(&self) -> PathBuf {
        let mut s = self.base.clone().into_os_string();
        s.push(".build.log");
        PathBuf::from(s)
    }
}

/// What [`build`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The image was built.
    Built {
        /// Its cache key.
        key: String,
    },
    /// An image of this recipe was already there; nothing was done.
    UpToDate {
        /// Its cache key.
        key: String,
    },
}

/// The phases of a build, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Installing packages into the root filesystem (the long part).
    Bootstrap,
    /// Making the ext4 filesystem.
    Filesystem,
    /// Converting to qcow2.
    Convert,
    /// Moving the files into place.
    Install,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A tool is not installed.
    #[error("`{tool}` is not installed (Debian package `{package}`)")]
    MissingTool {
        /// The command.
        tool: &'static str,
        /// The package that has it.
        package: &'static str,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A build step failed.
    #[error("image build step `{step}` failed ({status}); last output:\n{tail}\nfull log: {log}")]
    Step {
        /// The step.
        step: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its output.
        tail: String,
        /// The log file.
        log: String,
    },
    /// The root filesystem has no kernel or initrd.
    #[error("the built root filesystem has no {what} in /boot")]
    NoKernel {
        /// `vmlinuz` or `initrd.img`.
        what: &'static str,
    },
    /// A `.deb` file's control fields could not be read.
    #[error("{}: not a readable Debian package: {message}", path.display())]
    Deb {
        /// The file.
        path: PathBuf,
        /// What `dpkg-deb` said.
        message: String,
    },
}

/// A `.deb` file's `Package` and `Version` fields (`dpkg-deb --field`).
pub fn deb_fields(path: &Path) -> Result<(String, String), BuildError> {
    let err = |message: String| BuildError::Deb {
        path: path.to_path_buf(),
        message,
    };
    let out = Command::new("dpkg-deb")
        .arg("--field")
        .arg(path)
        .args(["Package", "Version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("cannot run dpkg-deb: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    match (field("Package"), field("Version")) {
        (Some(p), Some(v)) => Ok((p, v)),
        _ => Err(err(format!(
            "no Package and Version fields in `{}`",
            text.trim()
        ))),
    }
}

/// What hpc-up wrote beside an image it built (`<base>.json`, placed after the image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The recipe's cache key.
    pub key: String,
    /// [`crate::RECIPE_VERSION`] of the build.
    pub recipe_version: u32,
    /// The Debian release the image was built from. Manifests written before hpc-up could
    /// build another release have none: those images are bookworm's.
    #[serde(default)]
    pub release: DebianRelease,
    /// Every package asked for (base first, then the cluster's extras).
    pub packages: Vec<String>,
}

/// Why an image's manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file exists but could not be read.
    #[error("cannot read the image manifest {}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a manifest hpc-up wrote.
    #[error("{} is not an hpc-up image manifest: {source}", path.display())]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
}

/// The manifest path of the base image `base`: `<base>.json`.
pub fn manifest_path(base: &Path) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// The manifest hpc-up wrote beside the base image `base` (`<base>.json`); `None` when there
/// is none (an image hpc-up did not build, or a build that did not finish).
pub fn read_manifest(base: &Path) -> Result<Option<Manifest>, ManifestError> {
    let path = manifest_path(base);
    let text = match fs_err::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ManifestError::Read { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ManifestError::Parse { path, source })
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file())
}

/// Check that the tools a build needs are installed.
pub fn check_tools() -> Result<(), BuildError> {
    for (tool, package) in [
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
    ] {
        if !which(tool) {
            return Err(BuildError::MissingTool { tool, package });
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, BuildError> {
    let mut f = fs_err::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// The cache key of `recipe` with its local packages read from disk.
pub fn cache_key(recipe: &Recipe) -> Result<String, BuildError> {
    let mut hashes = Vec::new();
    for d in &recipe.debs {
        hashes.push((d.clone(), sha256_file(d)?));
    }
    Ok(recipe.cache_key(&hashes))
}

/// Whether the image at `paths` was built from a recipe with this cache key.
pub fn is_up_to_date(paths: &ImagePaths, key: &str) -> bool {
    let manifest = read_manifest(&paths.base).ok().flatten();
    manifest.is_some_and(|m| m.key == key)
        && paths.base.is_file()
        && paths.kernel.is_file()
        && paths.initrd.is_file()
}

/// Build the image of `recipe` at `paths`, unless one with the same cache key is there.
/// `progress` is told when each phase starts. Runs as root (mmdebstrap `--mode=root`).
pub fn build(
    recipe: &Recipe,
    paths: &ImagePaths,
    progress: &mut dyn FnMut(Phase),
) -> Result<Outcome, BuildError> {
    let key = cache_key(recipe)?;
    if is_up_to_date(paths, &key) {
        return Ok(Outcome::UpToDate { key });
    }
    check_tools()?;
    let out_dir = paths
        .base
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(out_dir)?;
    // Scratch space beside the output, so that the final renames stay on one filesystem.
    let work = tempfile::Builder::new()
        .prefix(".hpc-image-")
        .tempdir_in(out_dir)?;
    let key_file = work.path().join("authorized_keys");
    fs_err::write(&key_file, format!("{}\n", recipe.authorized_key))?;
    let debs_dir = work.path().join("debs");
    fs_err::create_dir_all(&debs_dir)?;
    for d in &recipe.debs {
        let name = d
            .file_name()
            .map_or_else(|| "package.deb".into(), |n| n.to_owned());
        fs_err::copy(d, debs_dir.join(name))?;
    }
    let rootfs = work.path().join("rootfs");
    let log_path = paths.log();
    let mut log = fs_err::File::create(&log_path)?;

    progress(Phase::Bootstrap);
    run(
        "mmdebstrap",
        Command::new("mmdebstrap").args(recipe.mmdebstrap_argv(&rootfs, &key_file, &debs_dir)),
        &mut log,
        &log_path,
    )?;
    let kernel = newest(&rootfs.join("boot"), "vmlinuz-")?
        .ok_or(BuildError::NoKernel { what: "vmlinuz" })?;
    let initrd = newest(&rootfs.join("boot"), "initrd.img-")?
        .ok_or(BuildError::NoKernel { what: "initrd.img" })?;

    progress(Phase::Filesystem);
    let raw = work.path().join("base.raw");
    fs_err::File::create(&raw)?.set_len(recipe.size.bytes())?;
    run(
        "mkfs.ext4",
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", ROOT_LABEL, "-d"])
            .arg(&rootfs)
            .arg(&raw),
        &mut log,
        &log_path,
    )?;

    progress(Phase::Convert);
    let qcow = work.path().join("base.qcow2");
    run(
        "qemu-img convert",
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow),
        &mut log,
        &log_path,
    )?;

    progress(Phase::Install);
    // The manifest goes last and is removed first: a crash in between leaves no manifest, so
    // the next build starts over instead of trusting half-replaced files.
    let _ = fs_err::remove_file(paths.manifest());
    for (from, to) in [(&kernel, &paths.kernel), (&initrd, &paths.initrd)] {
        let staged = work.path().join(
            to.file_name()
                .map_or_else(|| "file".into(), |n| n.to_owned()),
        );
        fs_err::copy(from, &staged)?;
        place(&staged, to)?;
    }
    place(&qcow, &paths.base)?;
    let manifest = Manifest {
        key: key.clone(),
        recipe_version: RECIPE_VERSION,
        release: recipe.release,
        packages: recipe.packages.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
    let staged = work.path().join("manifest.json");
    fs_err::write(&staged, format!("{text}\n"))?;
    place(&staged, &paths.manifest())?;
    Ok(Outcome::Built { key })
}

/// Move `from` over `to` with mode 0644 (QEMU runs as another user and must read it),
/// durably: [`hpc_fs::rename_durable`] flushes the file, renames it (or, on another
/// filesystem, copies it beside `to` and renames that) and flushes `to`'s directory, so the
/// manifest placed last is on disk only after the files it vouches for.
fn place(from: &Path, to: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(from, std::fs::Permissions::from_mode(0o644))?;
    if let Some(dir) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir)?;
    }
    hpc_fs::rename_durable(from, to).map_err(std::io::Error::from)?;
    Ok(())
}

/// The newest `<prefix><version>` file in `dir` (by version order of the names).
fn newest(dir: &Path, prefix: &str) -> Result<Option<PathBuf>, BuildError> {
    let mut found: Vec<PathBuf> = fs_err::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort_by(|a, b| version_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok(found.pop())
}

/// Compare names with embedded numbers numerically (`6.1.0-9` < `6.1.0-10`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut text = String::new();
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                if !num.is_empty() {
                    out.push((std::mem::take(&mut text), num.parse().unwrap_or(0)));
                    num.clear();
                }
                text.push(c);
            }
        }
        out.push((text, num.parse().unwrap_or(0)));
        out
    };
    split(a).cmp(&split(b))
}

/// Run a build step, appending its output to the log; on failure, the tail of its output.
fn run(
    step: &'static str,
    cmd: &mut Command,
    log: &mut fs_err::File,
    log_path: &Path,
) -> Result<(), BuildError> {
    tracing::debug!(step, "running");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BuildError::Step {
                step,
                status: "not found".into(),
                tail: e.to_string(),
                log: log_path.display().to_string(),
            },
            _ => BuildError::Io(e),
        })?;
    writeln!(log, "== {step}")?;
    log.write_all(&out.stdout)?;
    log.write_all(&out.stderr)?;
    if out.status.success() {
        return Ok(());
    }
    let all = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = all.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(BuildError::Step {
        step,
        status: out.status.to_string(),
        tail,
        log: log_path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_sort_numerically() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "vmlinuz-6.1.0-9-cloud-amd64",
            "vmlinuz-6.1.0-10-cloud-amd64",
            "config-6.1.0-10",
        ] {
            fs_err::write(d.path().join(n), "").unwrap();
        }
        let k = newest(d.path(), "vmlinuz-").unwrap().unwrap();
        assert!(k.ends_with("vmlinuz-6.1.0-10-cloud-amd64"));
        assert_eq!(newest(d.path(), "initrd.img-").unwrap(), None);
    }

    #[test]
    fn manifest_decides_up_to_date() {
        let d = tempfile::tempdir().unwrap();
        let paths = ImagePaths {
            base: d.path().join("base.qcow2"),
            kernel: d.path().join("vmlinuz"),
            initrd: d.path().join("initrd.img"),
        };
        assert!(!is_up_to_date(&paths, "k1"));
        for p in [&paths.base, &paths.kernel, &paths.initrd] {
            fs_err::write(p, "x").unwrap();
        }
        let m = Manifest {
            key: "k1".into(),
            recipe_version: RECIPE_VERSION,
            release: DebianRelease::Bookworm,
            packages: vec![],
        };
        fs_err::write(paths.manifest(), serde_json::to_string(&m).unwrap()).unwrap();
        assert!(is_up_to_date(&paths, "k1"));
        assert!(!is_up_to_date(&paths, "k2"));
        fs_err::remove_file(&paths.kernel).unwrap();
        assert!(!is_up_to_date(&paths, "k1"));
    }

    #[test]
    fn manifest_records_the_release_and_old_ones_are_bookworm() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base.qcow2");
        assert!(read_manifest(&base).unwrap().is_none());
        let m = Manifest {
            key: "k".into(),
            recipe_version: RECIPE_VERSION,
            release: DebianRelease::Trixie,
            packages: vec!["slurmd".into()],
        };
        let text = serde_json::to_string_pretty(&m).unwrap();
        assert!(text.contains("\"release\": \"trixie\""), "{text}");
        fs_err::write(manifest_path(&base), &text).unwrap();
        assert_eq!(read_manifest(&base).unwrap(), Some(m));
        // As builds wrote it before releases existed (the e2e cache holds one).
        fs_err::write(
            manifest_path(&base),
            "{\"key\": \"k\", \"recipe_version\": 2, \"packages\": [\"slurmd\"]}\n",
        )
        .unwrap();
        let old = read_manifest(&base).unwrap().unwrap();
        assert_eq!(old.release, DebianRelease::Bookworm);
        assert_eq!(old.key, "k");
        fs_err::write(manifest_path(&base), "not json").unwrap();
        let e = read_manifest(&base).unwrap_err().to_string();
        assert!(
            e.contains("base.qcow2.json is not an hpc-up image manifest"),
            "{e}"
        );
    }

    #[test]
    fn place_moves_a_readable_file_over_the_old_one() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join(".hpc-image-x");
        fs_err::create_dir_all(&work).unwrap();
        let staged = work.join("base.qcow2");
        fs_err::write(&staged, "new").unwrap();
        fs_err::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).unwrap();
        let to = d.path().join("images/base.qcow2");
        place(&staged, &to).unwrap();
        fs_err::write(&staged, "newer").unwrap();
        place(&staged, &to).unwrap();
        assert_eq!(fs_err::read_to_string(&to).unwrap(), "newer");
        let mode = fs_err::metadata(&to).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert!(!staged.exists());
        assert_eq!(
            fs_err::read_dir(d.path().join("images")).unwrap().count(),
            1
        );
    }
}
