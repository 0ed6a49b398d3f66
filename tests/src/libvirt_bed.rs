//! A real libvirtd (QEMU driver) for tests, started inside a network namespace the test
//! creates, so that every bridge, dnsmasq and VM it makes lives there and nothing touches the
//! host's network.
//!
//! libvirtd's socket and pid files are global (`/run/libvirt`), so one bed runs at a time:
//! [`LibvirtBed::start`] takes an exclusive lock on a file, refuses to start when a libvirtd it
//! did not start is running, and [`Drop`] stops exactly the daemons it started (by PID) and
//! deletes the namespace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::require;

const LOCK: &str = "/run/hpc-up-test-libvirtd.lock";
const LIBVIRTD_PID: &str = "/run/hpc-up-sandbox/libvirtd.pid";
const VIRTLOGD_PID: &str = "/run/hpc-up-sandbox/virtlogd.pid";

/// A running libvirtd in a private network namespace.
#[derive(Debug)]
pub struct LibvirtBed {
    netns: String,
    pids: Vec<i32>,
    _lock: File,
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
        let ok = is_root() && have("libvirtd") && have("virtlogd") && have("ip");
        if require(
            ok,
            "libvirtd + virtlogd + root",
            "the real QEMU driver test bed",
        ) {
            return Ok(None);
        }
        let lock = fs_err::File::create(LOCK)
            .map_err(|e| e.to_string())?
            .into_file();
        lock.lock().map_err(|e| format!("lock {LOCK}: {e}"))?;
        let netns = format!("hpcup-{name}-{}", std::process::id());
        // The sandbox script refuses when a libvirtd it did not start runs.
        run(Command::new(sandbox_script()).args(["start", &netns]))?;
        let pids: Vec<i32> = [LIBVIRTD_PID, VIRTLOGD_PID]
            .iter()
            .filter_map(|f| read_pid(f))
            .collect();
        let bed = Self {
            netns,
            pids,
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
    }
}
