//! Another Debian release's programs, for tests on this machine: [`DebianChroot`] builds a
//! release's root with mmdebstrap from Debian's packages once and keeps it under `/var/tmp`;
//! [`Sandbox`] runs a shell script as root in such a root (or in this machine's own, `/`)
//! inside fresh namespaces, so daemons can start there with their own hostname, addresses,
//! `/run`, `/tmp` and `/dev`, and nothing they write outlives the run.
//!
//! ```no_run
//! use hpc_tests::debian_chroot::{DebianChroot, SLURM_PACKAGES};
//! let Some(trixie) = DebianChroot::get("trixie", &SLURM_PACKAGES).unwrap() else {
//!     return; // skipped (not root, no mmdebstrap or no deb.debian.org), outside CI
//! };
//! let out = trixie.sandbox().hostname("ctl").run("slurmd -V").unwrap();
//! assert!(String::from_utf8_lossy(&out.stdout).starts_with("slurm-wlm 24.11"));
//! ```
//!
//! The first build of a root downloads its packages from the mirror (`HPC_UP_DEBIAN_MIRROR`,
//! default `http://deb.debian.org/debian`): for trixie and [`SLURM_PACKAGES`] 120 packages,
//! 121 MB on disk, 34–47 s on a 2-core machine (about 25 s of it CPU); later calls reuse it.
//! Roots live in `$HPC_UP_CHROOT_CACHE` (default `/var/tmp`) as
//! `hpc-up-chroot-<release>-<hash of the recipe>`: another package list or mirror is another
//! root. A root is built in a temporary directory and renamed into place, under a lock, so a
//! root that exists is complete.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::require;

/// SLURM's daemons and tools as Debian packages them (they bring munge and the MariaDB
/// client library).
pub const SLURM_PACKAGES: [&str; 4] = ["slurmctld", "slurmd", "slurm-client", "slurmdbd"];

/// The mirror roots are built from unless `HPC_UP_DEBIAN_MIRROR` says otherwise.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Bump when the recipe changes in a way its arguments do not show.
const RECIPE_VERSION: u32 = 1;

/// How long a [`Sandbox::run`] may take unless [`Sandbox::timeout`] says otherwise.
pub const DEFAULT_SANDBOX_TIMEOUT: Duration = Duration::from_secs(120);

/// A Debian root made by mmdebstrap (`--variant=essential` plus the packages, without
/// documentation), cached on this machine.
#[derive(Debug, Clone)]
pub struct DebianChroot {
    release: String,
    root: PathBuf,
}

fn is_root() -> bool {
    // /proc/self belongs to the effective user
    fs_err::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn have(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

/// FNV-1a: a hash that stays the same across Rust releases (the cache key).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `host:port` of an `http://` or `https://` mirror URL.
fn mirror_address(mirror: &str) -> Option<String> {
    let (scheme, rest) = mirror.split_once("://")?;
    let host = rest.split('/').next()?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    Some(if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    })
}

fn reachable(address: &str) -> bool {
    address.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok())
    })
}

/// Mount points at or below `dir` (from `/proc/self/mountinfo`).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs_err::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// Remove a half-built root, unless something is still mounted in it (then removing it
/// would reach into the mounted file system: say so instead).
fn remove_partial(dir: &Path) -> Result<(), String> {
    let mounts = mounts_under(dir);
    if !mounts.is_empty() {
        return Err(format!(
            "{} still has mounts ({mounts:?}): unmount them, then remove it",
            dir.display()
        ));
    }
    fs_err::remove_dir_all(dir).map_err(|e| e.to_string())
}

/// The version of `package` installed in `root` (`/` for this machine), from dpkg's status
/// file.
pub fn installed_version(root: &Path, package: &str) -> Option<String> {
    let status = fs_err::read_to_string(root.join("var/lib/dpkg/status")).ok()?;
    status.split("\n\n").find_map(|para| {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        };
        (field("Package") == Some(package)
            && field("Status").is_some_and(|s| s.ends_with(" installed")))
        .then(|| field("Version").map(str::to_owned))
        .flatten()
    })
}

impl DebianChroot {
    /// The root of `release` (`bookworm`, `trixie`, …) with `packages` installed: the cached
    /// one, or a new one built with mmdebstrap (under a minute for [`SLURM_PACKAGES`]).
    /// `Ok(None)` means "skip" (not root, no mmdebstrap, or the mirror unreachable for a
    /// first build) outside CI; in CI these panic instead ([`require`]). A build that fails
    /// for any other reason is an error.
    pub fn get(release: &str, packages: &[&str]) -> Result<Option<Self>, String> {
        if require(
            is_root(),
            "root",
            "mmdebstrap --mode=root and chroot need root",
        ) {
            return Ok(None);
        }
        let mirror =
            std::env::var("HPC_UP_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_owned());
        let cache = std::env::var_os("HPC_UP_CHROOT_CACHE")
            .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
        let mut packages: Vec<&str> = packages.to_vec();
        packages.sort_unstable();
        packages.dedup();
        let args = Self::recipe(release, &packages, &mirror);
        let key = fnv1a(format!("{RECIPE_VERSION}\0{}", args.join("\0")).as_bytes());
        let root = cache.join(format!("hpc-up-chroot-{release}-{:012x}", key >> 16));
        let chroot = Self {
            release: release.to_owned(),
            root,
        };
        if chroot.root.is_dir() {
            return Ok(Some(chroot));
        }
        if require(
            have("mmdebstrap"),
            "mmdebstrap",
            &format!("builds the {release} root (scripts/install-deps installs it)"),
        ) {
            return Ok(None);
        }
        let address = mirror_address(&mirror)
            .ok_or_else(|| format!("HPC_UP_DEBIAN_MIRROR: not an http(s) URL: {mirror}"))?;
        if require(
            reachable(&address),
            &format!("the Debian mirror {mirror}"),
            &format!("the first build of the {release} root downloads its packages"),
        ) {
            return Ok(None);
        }
        fs_err::create_dir_all(&cache).map_err(|e| e.to_string())?;
        chroot.build(&args)?;
        Ok(Some(chroot))
    }

    /// mmdebstrap's arguments but the target directory (which goes before the mirror).
    fn recipe(release: &str, packages: &[&str], mirror: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "--mode=root",
            "--variant=essential",
            "--aptopt=Acquire::Retries \"3\"",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            // something for a sandbox to mount its hosts file on
            "--customize-hook=touch \"$1/etc/hosts\"",
        ]
        .map(str::to_owned)
        .into();
        if !packages.is_empty() {
            args.push(format!("--include={}", packages.join(",")));
        }
        args.push(release.to_owned());
        args.push(mirror.to_owned());
        args
    }

    #[allow(
        clippy::print_stderr,
        reason = "a first build says what it did and how long it took"
    )]
    fn build(&self, args: &[String]) -> Result<(), String> {
        let name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = self.root.parent().unwrap_or(Path::new("/"));
        // One build at a time per root, across test threads and processes.
        let lock_path = parent.join(format!(".{name}.lock"));
        let lock = fs_err::File::create(&lock_path)
            .map_err(|e| e.to_string())?
            .into_file();
        lock.lock()
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        if self.root.is_dir() {
            return Ok(()); // another one built it while we waited
        }
        // What a build that died left behind.
        let stale = format!("{name}.tmp-");
        for entry in fs_err::read_dir(parent)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&stale) {
                remove_partial(&entry.path())?;
            }
        }
        let tmp = parent.join(format!("{stale}{}", std::process::id()));
        let (options, suite_and_mirror) = args.split_at(args.len() - 2);
        let started = Instant::now();
        let out = run_mmdebstrap(options, suite_and_mirror, &tmp)?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let _ = remove_partial(&tmp);
            return Err(format!(
                "mmdebstrap {} failed ({}):\n{}",
                self.release,
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        let mut recipe = format!("# hpc-up test root, recipe {RECIPE_VERSION}\nmmdebstrap");
        for a in options {
            let _ = write!(recipe, " '{a}'");
        }
        let _ = writeln!(
            recipe,
            " {} DIR {}",
            suite_and_mirror[0], suite_and_mirror[1]
        );
        fs_err::write(tmp.join(".hpc-up-chroot"), recipe).map_err(|e| e.to_string())?;
        fs_err::rename(&tmp, &self.root).map_err(|e| e.to_string())?;
        eprintln!(
            "built the {} root in {:.0} s: {}",
            self.release,
            started.elapsed().as_secs_f64(),
            self.root.display()
        );
        Ok(())
    }

    /// The release this root is of.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The version of `package` in this root.
    pub fn version(&self, package: &str) -> Option<String> {
        installed_version(&self.root, package)
    }

    /// A [`Sandbox`] in this root.
    pub fn sandbox(&self) -> Sandbox {
        Sandbox::new(&self.root)
    }
}

fn run_mmdebstrap(
    options: &[String],
    suite_and_mirror: &[String],
    target: &Path,
) -> Result<Output, String> {
    Command::new("mmdebstrap")
        .args(options)
        .arg(&suite_and_mirror[0])
        .arg(target)
        .arg(&suite_and_mirror[1])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("mmdebstrap: {e}"))
}

/// A file a [`Sandbox`] puts in place before the script runs.
#[derive(Debug, Clone)]
struct SandboxFile {
    path: String,
    contents: Vec<u8>,
    mode: u32,
    owner: String,
}

/// One run of a shell script as root in a root directory, in new mount, UTS, IPC, network
/// and PID namespaces (`unshare`, then `chroot`):
///
/// - the hostname is [`Sandbox::hostname`]; `lo` is up and carries every address given
///   with [`Sandbox::host`] (so daemons that listen find a configured address), which
///   `/etc/hosts` lists;
/// - `/proc` and `/sys` are the sandbox's own; `/sys/fs/cgroup` holds only an empty,
///   controller-less cgroup v1 hierarchy (`name=hpc-up-sandbox`), so a daemon's cgroup
///   autodetection settles on v1, whose plugins create nothing when they load, whatever this
///   machine runs;
/// - `/run` and `/tmp` are empty tmpfs, `/dev` a tmpfs with `null`, `zero`, `full`,
///   `random`, `urandom`, `tty` from this machine and the [`Sandbox::char_device`]s;
/// - each [`Sandbox::writable`] directory is an overlay of itself, with its owner and mode
///   (changes stay in memory);
/// - the [`Sandbox::file`]s are installed (owners by name, as the root knows them).
///
/// Everything the script writes is gone when it ends; every process it left is killed then
/// (it is PID 1 of its namespace), and on [`Sandbox::timeout`]. Nothing outside the
/// writable directories, `/run` and `/tmp` may be written: the root is the cache's (or this
/// machine's own).
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
    hostname: String,
    hosts: Vec<(Ipv4Addr, String)>,
    writable: Vec<String>,
    files: Vec<SandboxFile>,
    devices: Vec<(String, u32, u32)>,
    timeout: Duration,
}

/// Single-quoted for sh.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn check_path(what: &str, p: &str) -> Result<(), String> {
    let ok = p.starts_with('/')
        && !p.contains("/../")
        && !p.ends_with("/..")
        && !p.contains([',', ':', '\n', '\0']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "sandbox: {what} {p:?} must be absolute, without `..`, `,` or `:`"
        ))
    }
}

impl Sandbox {
    /// A sandbox in `root` (`/` for this machine's own programs).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            hostname: "sandbox".to_owned(),
            hosts: Vec::new(),
            writable: Vec::new(),
            files: Vec::new(),
            devices: Vec::new(),
            timeout: DEFAULT_SANDBOX_TIMEOUT,
        }
    }

    /// A sandbox in this machine's root, for its own installed programs.
    pub fn this_machine() -> Self {
        Self::new("/")
    }

    /// The hostname inside (default `sandbox`).
    pub fn hostname(mut self, name: &str) -> Self {
        name.clone_into(&mut self.hostname);
        self
    }

    /// `name` resolves to `ip` (in `/etc/hosts`), an address of the sandbox's `lo`.
    pub fn host(mut self, ip: Ipv4Addr, name: &str) -> Self {
        self.hosts.push((ip, name.to_owned()));
        self
    }

    /// `dir` (which must exist in the root) may be written; the changes are discarded.
    pub fn writable(mut self, dir: &str) -> Self {
        self.writable.push(dir.trim_end_matches('/').to_owned());
        self
    }

    /// Put `contents` at `path` (in a writable directory, `/run` or `/tmp`) with `mode`,
    /// owned by `owner` (`user` or `user:group`, by name).
    pub fn file(
        mut self,
        path: &str,
        contents: impl Into<Vec<u8>>,
        mode: u32,
        owner: &str,
    ) -> Self {
        self.files.push(SandboxFile {
            path: path.to_owned(),
            contents: contents.into(),
            mode,
            owner: owner.to_owned(),
        });
        self
    }

    /// A character device `path` (under `/dev`) with these numbers, mode 0666.
    pub fn char_device(mut self, path: &str, major: u32, minor: u32) -> Self {
        self.devices.push((path.to_owned(), major, minor));
        self
    }

    /// Kill everything after `t` (default [`DEFAULT_SANDBOX_TIMEOUT`]).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn may_write(&self, path: &str) -> bool {
        ["/run", "/tmp"]
            .iter()
            .map(|d| (*d).to_owned())
            .chain(self.writable.iter().cloned())
            .any(|d| path.starts_with(&format!("{d}/")))
    }

    /// The script that runs on this machine's side, in the new namespaces: it builds the
    /// sandbox's mounts, then changes into the root and runs `inner`.
    fn setup_script(&self, stage: &Path) -> Result<String, String> {
        let root = self.root.to_string_lossy().trim_end_matches('/').to_owned();
        check_path("root", if root.is_empty() { "/" } else { &root })?;
        for d in &self.writable {
            check_path("writable directory", d)?;
        }
        let h = &self.hostname;
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!("sandbox: bad hostname {h:?}"));
        }
        let mut s = String::from("set -eu\n");
        let _ = writeln!(s, "R={}", sq(&root));
        let _ = writeln!(s, "S={}", sq(&stage.to_string_lossy()));
        s.push_str(
            r#"X="$R/run/.hpc-up"
mount --make-rprivate /
# /run first, so the stage and this machine's /dev stay reachable under it
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mkdir -p "$X/stage" "$X/dev" "$X/ovl"
mount --bind "$S" "$X/stage"
mount --rbind /dev "$X/dev"
"#,
        );
        let _ = writeln!(s, "echo {} >/proc/sys/kernel/hostname", sq(h));
        s.push_str("ip link set lo up\n");
        let mut hosts = String::from("127.0.0.1 localhost\n");
        let mut ips: Vec<Ipv4Addr> = Vec::new();
        for (ip, name) in &self.hosts {
            let _ = writeln!(hosts, "{ip} {name}");
            if !ips.contains(ip) && !ip.is_loopback() {
                ips.push(*ip);
                let _ = writeln!(s, "ip addr add {ip}/32 dev lo");
            }
        }
        fs_err::write(stage.join("hosts"), hosts).map_err(|e| e.to_string())?;
        s.push_str(
            r#"mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=0755 tmpfs "$R/sys/fs/cgroup"
mkdir "$R/sys/fs/cgroup/systemd"
mount -t cgroup -o none,name=hpc-up-sandbox cgroup "$R/sys/fs/cgroup/systemd" ||
  echo "sandbox: no cgroup v1 hierarchy: /sys/fs/cgroup is an empty tmpfs" >&2
mount -t tmpfs -o mode=0755 tmpfs "$R/dev"
for d in null zero full random urandom tty; do
  touch "$R/dev/$d"; mount --bind "$X/dev/$d" "$R/dev/$d"
done
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
mkdir "$R/dev/shm"; mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
"#,
        );
        for (path, major, minor) in &self.devices {
            if !path.starts_with("/dev/") || path[5..].contains('/') {
                return Err(format!(
                    "sandbox: device {path:?} must be directly under /dev"
                ));
            }
            let _ = writeln!(s, "mknod -m 0666 \"$R\"{} c {major} {minor}", sq(path));
        }
        s.push_str(
            r#"umount -l "$X/dev"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
[ -e "$R/etc/hosts" ] || { echo "sandbox: $R/etc/hosts is missing" >&2; exit 1; }
mount --bind "$X/stage/hosts" "$R/etc/hosts"
"#,
        );
        for (i, d) in self.writable.iter().enumerate() {
            let _ = writeln!(
                s,
                "d=\"$R\"{d}; [ -d \"$d\" ] || {{ echo \"sandbox: $d is not a directory\" >&2; exit 1; }}\n\
                 mkdir -p \"$X/ovl/{i}/u\" \"$X/ovl/{i}/w\"\n\
                 chown --reference=\"$d\" \"$X/ovl/{i}/u\"; chmod --reference=\"$d\" \"$X/ovl/{i}/u\"\n\
                 mount -t overlay overlay -o \"lowerdir=$d,upperdir=$X/ovl/{i}/u,workdir=$X/ovl/{i}/w\" \"$d\"",
                d = sq(d)
            );
        }
        // In the root: the files (owners by the root's names), then the caller's script.
        let mut inner = String::from("set -eu\n");
        for (i, f) in self.files.iter().enumerate() {
            check_path("file", &f.path)?;
            if !self.may_write(&f.path) {
                return Err(format!(
                    "sandbox: {} is not in /run, /tmp or a writable directory",
                    f.path
                ));
            }
            fs_err::write(stage.join(format!("file{i}")), &f.contents)
                .map_err(|e| e.to_string())?;
            let (user, group) = f.owner.split_once(':').unwrap_or((&f.owner, &f.owner));
            let _ = writeln!(
                inner,
                "install -D -m {:o} -o {} -g {} /run/.hpc-up/stage/file{i} {}",
                f.mode,
                sq(user),
                sq(group),
                sq(&f.path)
            );
        }
        inner.push_str("cd /\nexec /bin/sh /run/.hpc-up/stage/script\n");
        let _ = writeln!(s, "exec chroot \"${{R:-/}}\" /bin/sh -c {}", sq(&inner));
        Ok(s)
    }

    /// Run `script` (sh, as root, in `/` of the root) and return its output; its exit
    /// status is the script's. `Err` when the sandbox could not be run or timed out.
    pub fn run(&self, script: &str) -> Result<Output, String> {
        if !is_root() {
            return Err("sandbox: needs root (namespaces, mounts, chroot)".to_owned());
        }
        for bin in ["unshare", "chroot", "mount", "ip"] {
            if !have(bin) {
                return Err(format!(
                    "sandbox: `{bin}` is missing (util-linux, iproute2)"
                ));
            }
        }
        let stage = tempfile::Builder::new()
            .prefix("hpc-up-sandbox-")
            .tempdir()
            .map_err(|e| format!("sandbox: temp dir: {e}"))?;
        let setup = self.setup_script(stage.path())?;
        fs_err::write(stage.path().join("script"), script).map_err(|e| e.to_string())?;
        let out_path = stage.path().join("stdout");
        let err_path = stage.path().join("stderr");
        let file = |p: &Path| {
            fs_err::File::create(p)
                .map(fs_err::File::into_file)
                .map_err(|e| e.to_string())
        };
        let mut child = Command::new("unshare")
            .args([
                "--mount",
                "--uts",
                "--ipc",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &setup,
            ])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .env("HOME", "/root")
            .stdin(Stdio::null())
            .stdout(file(&out_path)?)
            .stderr(file(&err_path)?)
            .spawn()
            .map_err(|e| format!("sandbox: unshare: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    // unshare --kill-child takes the namespace's PID 1, and so all of it, along
                    // with it.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "sandbox: still running after {:?}; stderr:\n{}",
                        self.timeout,
                        fs_err::read_to_string(&err_path).unwrap_or_default()
                    ));
                }
                Err(e) => return Err(format!("sandbox: wait: {e}")),
            }
        };
        let read = |p: &Path| fs_err::read(p).map_err(|e| e.to_string());
        Ok(Output {
            status,
            stdout: read(&out_path)?,
            stderr: read(&err_path)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_addresses() {
        assert_eq!(
            mirror_address("http://deb.debian.org/debian").as_deref(),
            Some("deb.debian.org:80")
        );
        assert_eq!(
            mirror_address("https://m.example:8443/d").as_deref(),
            Some("m.example:8443")
        );
        assert_eq!(mirror_address("file:///srv/mirror"), None);
    }

    #[test]
    fn the_cache_key_is_stable() {
        // FNV-1a test vectors: the key must not change between Rust releases.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn files_only_where_the_sandbox_may_write() {
        let s = Sandbox::new("/nonexistent").writable("/etc/slurm/").file(
            "/etc/passwd",
            "x",
            0o644,
            "root",
        );
        let e = s.setup_script(Path::new("/tmp")).unwrap_err();
        assert!(e.contains("/etc/passwd"), "{e}");
        let s = Sandbox::new("/nonexistent").file("/etc/slurmx/a", "x", 0o644, "root");
        assert!(s.setup_script(Path::new("/tmp")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let s = Sandbox::new("/nonexistent")
            .writable("/etc/slurm")
            .file("/etc/slurm/slurm.conf", "x", 0o644, "root:root")
            .file("/run/x", "y", 0o600, "slurm");
        let script = s.setup_script(dir.path()).unwrap();
        // (quoted once more for `sh -c` in the chroot)
        let q = |s: &str| s.replace('\'', r"'\''");
        assert!(
            script.contains(&q("install -D -m 644 -o 'root' -g 'root'")),
            "{script}"
        );
        assert!(
            script.contains(&q("install -D -m 600 -o 'slurm' -g 'slurm'")),
            "{script}"
        );
    }

    #[test]
    fn dpkg_status_versions() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
        fs_err::write(
            dir.path().join("var/lib/dpkg/status"),
            "Package: slurmd\nStatus: install ok installed\nVersion: 24.11.5-4\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
        )
        .unwrap();
        assert_eq!(
            installed_version(dir.path(), "slurmd").as_deref(),
            Some("24.11.5-4")
        );
        assert_eq!(installed_version(dir.path(), "gone"), None);
        assert_eq!(installed_version(dir.path(), "nope"), None);
    }
}
