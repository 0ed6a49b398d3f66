//! A real libvirtd (QEMU driver) for tests, started inside a network namespace the test
//! creates, so that every bridge, dnsmasq and VM it makes lives there and nothing touches the
//! host's network.
//!
//! libvirtd's socket and pid files are global (`/run/libvirt`), so one bed runs at a time:
//! [`LibvirtBed::start`] takes an exclusive lock on a file, refuses to start when a libvirtd it
//! did not start is running, and [`Drop`] stops exactly the daemons it started (by PID) and
//! deletes the namespace.
//!
//! The daemon does not see `/dev/kvm` (guests run under TCG), so libvirt's QEMU capabilities
//! cache stays valid; [`LibvirtBed::start_with_dev_kvm`] starts one that does, as a host
//! whose `/dev/kvm` the QEMU user cannot open (the preflight warning's case).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::require;

const LOCK: &str = "/run/hpc-up-test-libvirtd.lock";
const LIBVIRTD_PID: &str = "/run/hpc-up-sandbox/libvirtd.pid";
const VIRTLOGD_PID: &str = "/run/hpc-up-sandbox/virtlogd.pid";
/// libvirt's QEMU capabilities cache (the host's: the sandbox does not make it private).
pub const QEMU_CAPS_CACHE: &str = "/var/cache/libvirt/qemu/capabilities";
/// The emulator the tests' domains use.
pub const QEMU_X86_64: &str = "/usr/bin/qemu-system-x86_64";

/// A running libvirtd in a private network namespace.
#[derive(Debug)]
pub struct LibvirtBed {
    netns: String,
    pids: Vec<i32>,
    /// Cache files set aside while the daemon sees `/dev/kvm`, put back by [`Drop`].
    caps_aside: Option<CapsAside>,
    _lock: File,
}

/// The capabilities cache files of [`QEMU_X86_64`], renamed aside (`(original, aside)`).
#[derive(Debug)]
struct CapsAside {
    moved: Vec<(PathBuf, PathBuf)>,
}

/// The file in libvirt's QEMU capabilities cache that describes `emulator` (the file names
/// are hashes; the content names the emulator). `None` when there is none.
pub fn qemu_caps_cache_file(emulator: &str) -> Option<PathBuf> {
    caps_cache_files(emulator).into_iter().next()
}

fn caps_cache_files(emulator: &str) -> Vec<PathBuf> {
    let needle = format!("<emulator>{emulator}</emulator>");
    let mut files: Vec<PathBuf> = fs_err::read_dir(QEMU_CAPS_CACHE)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .filter(|p| fs_err::read_to_string(p).is_ok_and(|t| t.contains(&needle)))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

impl CapsAside {
    /// Rename the cache files of [`QEMU_X86_64`] aside, so that the next daemon's first
    /// lookup probes QEMU as on a fresh host.
    fn set_aside() -> Result<Self, String> {
        let mut moved = Vec::new();
        for f in caps_cache_files(QEMU_X86_64) {
            let aside = f.with_extension("xml.hpc-up-aside");
            fs_err::rename(&f, &aside).map_err(|e| e.to_string())?;
            moved.push((f, aside));
        }
        Ok(Self { moved })
    }

    /// Replace what the daemon wrote by the files set aside (best effort: a file not put
    /// back only costs the next daemon one probe).
    fn put_back(&self) {
        for f in caps_cache_files(QEMU_X86_64) {
            let _ = fs_err::remove_file(f);
        }
        for (original, aside) in &self.moved {
            let _ = fs_err::rename(aside, original);
        }
    }
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

fn have(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && fs_err::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// `scripts/libvirt-sandbox`, which the demo uses too.
fn sandbox_script() -> std::path::PathBuf {
    crate::repo_root().join("scripts/libvirt-sandbox")
}

fn read_pid(path: &str) -> Option<i32> {
    fs_err::read_to_string(path).ok()?.trim().parse().ok()
}

impl LibvirtBed {
    /// Start the bed. `Ok(None)` means "skip": not root or libvirt missing outside CI (in CI
    /// that panics instead).
    pub fn start(name: &str) -> Result<Option<Self>, String> {
        Self::start_with(name, false)
    }

    /// Start a bed whose daemon sees the host's `/dev/kvm` (`HPCUP_SANDBOX_KVM=keep`). Where
    /// the QEMU user cannot open it, libvirt re-probes QEMU at every capabilities lookup
    /// (about a minute each): the preflight warning's case. The cache files of
    /// [`QEMU_X86_64`] are set aside before the daemon starts (its first lookup probes as on
    /// a fresh host) and put back after it stops, still under the bed's lock, so that the
    /// next default bed finds them valid. Skips (fails in CI) when the host has no `/dev/kvm`.
    pub fn start_with_dev_kvm(name: &str) -> Result<Option<Self>, String> {
        Self::start_with(name, true)
    }

    fn start_with(name: &str, dev_kvm: bool) -> Result<Option<Self>, String> {
        let ok = is_root() && have("libvirtd") && have("virtlogd") && have("ip");
        if require(
            ok,
            "libvirtd + virtlogd + root",
            "the real QEMU driver test bed",
        ) {
            return Ok(None);
        }
        if dev_kvm
            && require(
                Path::new("/dev/kvm").exists(),
                "/dev/kvm",
                "a bed showing it",
            )
        {
            return Ok(None);
        }
        let lock = fs_err::File::create(LOCK)
            .map_err(|e| e.to_string())?
            .into_file();
        lock.lock().map_err(|e| format!("lock {LOCK}: {e}"))?;
        let netns = format!("hpcup-{name}-{}", std::process::id());
        let mut script = Command::new(sandbox_script());
        script.args(["start", &netns]);
        let mut caps_aside = None;
        if dev_kvm {
            script.env("HPCUP_SANDBOX_KVM", "keep");
            caps_aside = Some(CapsAside::set_aside()?);
        }
        let running = || -> Vec<i32> {
            [LIBVIRTD_PID, VIRTLOGD_PID]
                .iter()
                .filter_map(|f| read_pid(f))
                .filter(|p| pid_alive(*p))
                .collect()
        };
        let before = running();
        // The sandbox script refuses when a libvirtd it did not start runs.
        if let Err(e) = run(&mut script) {
            // It stops nothing when it fails later (a daemon that does not answer): stop
            // what it started, then put the cache back.
            if running().iter().any(|p| !before.contains(p)) {
                let _ = Command::new(sandbox_script())
                    .args(["stop", &netns])
                    .status();
            }
            if let Some(aside) = &caps_aside {
                aside.put_back();
            }
            return Err(e);
        }
        let pids: Vec<i32> = [LIBVIRTD_PID, VIRTLOGD_PID]
            .iter()
            .filter_map(|f| read_pid(f))
            .collect();
        let bed = Self {
            netns,
            pids,
            caps_aside,
            _lock: lock,
        };
        if bed.pids.len() != 2 {
            return Err("libvirtd or virtlogd did not write its pid file".into());
        }
        Ok(Some(bed))
    }

    /// The network namespace's name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The URI of the bed's daemon.
    pub fn uri(&self) -> &'static str {
        "qemu:///system"
    }

    /// Run a command inside the namespace.
    pub fn netns_exec(&self, argv: &[&str]) -> Result<String, String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(argv))
    }

    /// `virsh` against the bed.
    pub fn virsh(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("virsh")
            .args(["-c", "qemu:///system"])
            .args(args))
    }

    /// A fresh directory for a test's state under `/var/lib/hpc-up-tests` (traversable by
    /// the `libvirt-qemu` user, unlike `/tmp` private dirs).
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let d = PathBuf::from("/var/lib/hpc-up-tests").join(format!("{}-{name}", self.netns));
        let _ = fs_err::remove_dir_all(&d);
        let _ = fs_err::create_dir_all(&d);
        d
    }
}

impl LibvirtBed {
    /// Destroy and remove every domain, network and pool of the bed's libvirtd (they are all
    /// the tests' own: the daemon's configuration directories are private), so that no
    /// QEMU or dnsmasq outlives the bed.
    fn remove_all_objects(&self) {
        let list = |args: &[&str]| -> Vec<String> {
            self.virsh(args)
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect()
        };
        for d in list(&["list", "--all", "--name"]) {
            let _ = self.virsh(&["destroy", &d]);
            let _ = self.virsh(&["undefine", &d, "--nvram"]);
        }
        for n in list(&["net-list", "--all", "--name"]) {
            let _ = self.virsh(&["net-destroy", &n]);
            let _ = self.virsh(&["net-undefine", &n]);
        }
        for p in list(&["pool-list", "--all", "--name"]) {
            let _ = self.virsh(&["pool-destroy", &p]);
            let _ = self.virsh(&["pool-undefine", &p]);
        }
    }
}

impl Drop for LibvirtBed {
    fn drop(&mut self) {
        if self.pids.len() == 2 {
            self.remove_all_objects();
        }
        let _ = Command::new(sandbox_script())
            .args(["stop", &self.netns])
            .status();
        // This machine's PID 1 reaps orphans late: reap the daemons we started ourselves.
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.pids.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // The lock is still held: no other bed's daemon reads the cache meanwhile.
        if let Some(aside) = &self.caps_aside {
            aside.put_back();
        }
    }
}
