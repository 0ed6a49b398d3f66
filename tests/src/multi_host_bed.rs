//! Two libvirt hypervisor hosts for one cluster, as hpc-up's multi-host layout has them: the
//! *primary* host, where hpc-up runs and whose libvirt is local (`qemu:///system`), and a
//! second host reached by `qemu+ssh://`.
//!
//! Both are made of the SSH bed ([`SshBed`], one host `h01`):
//!
//! ```text
//! netns <prefix>-ctl   the primary host: scripts/libvirt-sandbox's libvirtd (`start-in`: the
//!                      sandbox's private libvirt dirs, no /dev/kvm), hpc-up (run through
//!                      MultiHostBed::command), the cluster's libvirt network and dnsmasq;
//!                      eth0 <net>.2 on the bed's bridge
//! netns <prefix>-h01   the second host: its own sshd and libvirtd (`host-libvirtd`), reached
//!                      as qemu+ssh://root@<net>.11/system?keyfile=<bed key>; eth0 <net>.11
//! ```
//!
//! The bed's bridge between them is the underlay: `qemu+ssh` (TCP 22) and the cluster
//! network's VXLAN (UDP 4789) run over it. Every bridge, VXLAN device, dnsmasq and VM lives in
//! these two namespaces, which the bed made; nothing is added to the root namespace.
//!
//! The primary's libvirtd owns the machine's global socket (`/run/libvirt/libvirt-sock`), so
//! this bed takes [`LibvirtBed`](crate::libvirt_bed::LibvirtBed)'s lock and runs only when no
//! other sandbox does. [`Drop`] removes every object of both daemons, stops the primary's
//! daemons (by PID), then drops the SSH bed (whose `testbed-down` stops the second host's
//! daemons and deletes the namespaces).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::require;
use crate::ssh_bed::{SshBed, libvirt_installed};

/// The lock every sandboxed libvirtd of the tests holds (the same file as `libvirt_bed`'s).
const LOCK: &str = "/run/hpc-up-test-libvirtd.lock";
const LIBVIRTD_PID: &str = "/run/hpc-up-sandbox/libvirtd.pid";
const VIRTLOGD_PID: &str = "/run/hpc-up-sandbox/virtlogd.pid";

/// The bed host that is the second hypervisor.
pub const REMOTE: &str = "h01";

/// The local URI of the primary host's libvirtd.
pub const PRIMARY_URI: &str = "qemu:///system";

fn read_pid(path: &str) -> Option<i32> {
    fs_err::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    fs_err::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

fn output_text(what: &str, out: &Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    output_text(what, &out)
}

fn sandbox_script() -> PathBuf {
    crate::repo_root().join("scripts/libvirt-sandbox")
}

/// The primary host's libvirtd: `scripts/libvirt-sandbox start-in <ctl netns>`.
#[derive(Debug)]
struct Primary {
    netns: String,
    pids: Vec<i32>,
    _lock: File,
}

impl Primary {
    fn start(netns: &str, lock: File) -> Result<Self, String> {
        let running = || -> Vec<i32> {
            [LIBVIRTD_PID, VIRTLOGD_PID]
                .iter()
                .filter_map(|f| read_pid(f))
                .filter(|p| alive(*p))
                .collect()
        };
        let before = running();
        // The SSH bed made this process a child subreaper (to reap its hosts' launchers).
        // The daemons started now must not become its children: libvirtd would be, and with
        // it every QEMU and dnsmasq it daemonizes, which this process never reaps; libvirt
        // then waits for a zombie QEMU to end and `virsh destroy` hangs. Off while they
        // start, so that they are re-parented to PID 1 as in `LibvirtBed`.
        nix::sys::prctl::set_child_subreaper(false)
            .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        let started = run(
            "libvirt-sandbox start-in",
            Command::new(sandbox_script()).args(["start-in", netns]),
        );
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        if let Err(e) = started {
            // The script stops nothing when it fails after starting a daemon.
            if running().iter().any(|p| !before.contains(p)) {
                let _ = Command::new(sandbox_script())
                    .args(["stop-in", netns])
                    .status();
            }
            return Err(e);
        }
        let primary = Self {
            netns: netns.to_owned(),
            pids: running(),
            _lock: lock,
        };
        if primary.pids.len() != 2 {
            return Err(format!(
                "the primary's libvirtd or virtlogd did not write its pid file ({LIBVIRTD_PID}, {VIRTLOGD_PID})"
            ));
        }
        Ok(primary)
    }
}

impl Drop for Primary {
    fn drop(&mut self) {
        // Destroys and undefines every domain, network and pool of the daemon, stops both
        // daemons by PID; the namespace stays (the SSH bed deletes it).
        let _ = Command::new(sandbox_script())
            .args(["stop-in", &self.netns])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The two hypervisor hosts. Fields drop in order: the primary's daemons first, then the
/// SSH bed with the second host.
#[derive(Debug)]
pub struct MultiHostBed {
    primary: Primary,
    ssh: SshBed,
}

impl MultiHostBed {
    /// Start both hosts: take the sandbox lock (waits while another libvirt bed runs), an SSH
    /// bed of one host with its libvirtd, then the primary's libvirtd in the bed's ctl
    /// namespace. `Ok(None)` means "skip": not root, or libvirt, QEMU or the bed's tools
    /// missing, outside CI (in CI that panics instead).
    pub fn start() -> Result<Option<Self>, String> {
        let ok = libvirt_installed()
            && Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if require(
            ok,
            "root + libvirt-daemon-system + libvirt-clients + qemu-system-x86",
            "two hypervisor hosts (tests/src/multi_host_bed.rs)",
        ) {
            return Ok(None);
        }
        let lock = fs_err::File::create(LOCK)
            .map_err(|e| e.to_string())?
            .into_file();
        lock.lock().map_err(|e| format!("lock {LOCK}: {e}"))?;
        let Some(ssh) = SshBed::start(1)? else {
            return Ok(None);
        };
        ssh.start_libvirtd(REMOTE)?;
        let primary = Primary::start(ssh.ctl_netns(), lock)?;
        Ok(Some(Self { primary, ssh }))
    }

    /// The SSH bed the hosts are made of.
    pub fn ssh_bed(&self) -> &SshBed {
        &self.ssh
    }

    /// The primary host's network namespace (the SSH bed's ctl namespace).
    pub fn primary_netns(&self) -> &str {
        &self.primary.netns
    }

    /// The primary host's underlay address (ctl's on the bed's bridge).
    pub fn primary_ip(&self) -> Ipv4Addr {
        self.ssh.ctl_ip()
    }

    /// The second host's underlay address.
    pub fn remote_ip(&self) -> Ipv4Addr {
        self.ssh
            .host(REMOTE)
            .map_or_else(|| panic!("the bed has no {REMOTE}"), |h| h.ip)
    }

    /// The second host's libvirt URI as hpc-up's cluster file names it:
    /// `qemu+ssh://root@<ip>/system?keyfile=<bed key>`.
    pub fn remote_uri(&self) -> String {
        self.ssh.libvirt_uri(REMOTE)
    }

    /// PIDs of the primary's libvirtd and virtlogd, and of the second host's.
    pub fn daemon_pids(&self) -> Vec<i32> {
        let mut pids = self.primary.pids.clone();
        pids.extend(self.ssh.libvirtd_pids(REMOTE));
        pids
    }

    /// A command that runs `program` on the primary host: in its network namespace, with
    /// the bed's pinned host keys as root's `known_hosts` ([`SshBed::ctl_command`]). Run
    /// hpc-up so: libvirt's `qemu+ssh` transport and any OpenSSH it starts verify the second
    /// host's key.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.ssh.ctl_command(program)
    }

    /// `virsh` against the primary's libvirtd (its socket is the machine's).
    pub fn virsh_primary(&self, args: &[&str]) -> Result<String, String> {
        run(
            &format!("virsh -c {PRIMARY_URI} {}", args.join(" ")),
            Command::new("virsh").args(["-c", PRIMARY_URI]).args(args),
        )
    }

    /// `virsh` against the second host's libvirtd through its `qemu+ssh://` URI, from the
    /// primary host (the transport hpc-up uses).
    pub fn virsh_remote(&self, args: &[&str]) -> Result<String, String> {
        let uri = self.remote_uri();
        let mut cmd = self.command("virsh");
        cmd.args(["-c", &uri]).args(args);
        run(&format!("virsh -c {uri} {}", args.join(" ")), &mut cmd)
    }

    /// Run `argv` inside the second host (all its namespaces), for assertions about its
    /// network devices and files.
    pub fn on_remote(&self, argv: &[&str]) -> Output {
        self.ssh.exec_on(REMOTE, argv)
    }

    /// Stop the second host's virtlogd (SIGTERM to the PID `host-libvirtd` recorded, only
    /// while it is that daemon), leaving its libvirtd running: every QEMU that libvirtd
    /// starts from then on fails (its output and serial console go through virtlogd), while
    /// defining, listing and removing objects still work. A fault for tests: "the second host
    /// refuses to start a domain". [`MultiHostBed::restart_remote_libvirtd`] undoes it.
    pub fn stop_remote_virtlogd(&self) -> Result<i32, String> {
        let file = self
            .ssh
            .state_dir()
            .join("hosts")
            .join(REMOTE)
            .join("virtlogd.pid");
        let pid: i32 = fs_err::read_to_string(&file)
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let comm = fs_err::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "hpcbed-virtlogd" || !alive(pid) {
            return Err(format!(
                "pid {pid} of {} is not {REMOTE}'s virtlogd ({comm:?})",
                file.display()
            ));
        }
        nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("kill {pid}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(pid) {
            if Instant::now() > deadline {
                return Err(format!("{REMOTE}'s virtlogd (pid {pid}) survived SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(pid)
    }

    /// Stop the second host's libvirtd and virtlogd (every object of that daemon is removed)
    /// and start both again.
    pub fn restart_remote_libvirtd(&self) -> Result<(), String> {
        self.ssh.stop_libvirtd(REMOTE)?;
        self.ssh.start_libvirtd(REMOTE)
    }

    /// A fresh directory for a test's state under `/var/lib/hpc-up-tests` (traversable by
    /// the `libvirt-qemu` user).
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let d =
            PathBuf::from("/var/lib/hpc-up-tests").join(format!("{}-{name}", self.primary.netns));
        let _ = fs_err::remove_dir_all(&d);
        let _ = fs_err::create_dir_all(&d);
        d
    }

    /// The bed works: both libvirtds answer (the primary's locally, the second host's over
    /// `qemu+ssh` from the primary's namespace, with its host key checked, and it is that
    /// host's daemon), neither holds any object, the primary's namespace reaches the second
    /// host's underlay address (its sshd's banner), and the second host reaches the
    /// primary's. Returns a line of timings for the log.
    pub fn smoke(&self) -> Result<String, String> {
        let t = Instant::now();
        let local = self.virsh_primary(&["hostname"])?;
        let local_time = t.elapsed();
        let t = Instant::now();
        let remote = self.virsh_remote(&["hostname"])?;
        let remote_time = t.elapsed();
        if remote.trim() != REMOTE {
            return Err(format!(
                "{} answers as {:?}, not as {REMOTE}",
                self.remote_uri(),
                remote.trim()
            ));
        }
        if local.trim() == REMOTE {
            return Err(format!("{PRIMARY_URI} answers as {REMOTE}"));
        }
        for (what, list) in [
            ("primary", self.virsh_primary(&["list", "--all", "--name"])?),
            (
                "primary",
                self.virsh_primary(&["net-list", "--all", "--name"])?,
            ),
            ("remote", self.virsh_remote(&["list", "--all", "--name"])?),
            (
                "remote",
                self.virsh_remote(&["net-list", "--all", "--name"])?,
            ),
        ] {
            if !list.trim().is_empty() {
                return Err(format!("the {what} libvirtd is not empty: {list}"));
            }
        }
        // The underlay both ways: ctl → h01's sshd, h01 → ctl (ICMP is not needed: the
        // machine has no ping; a TCP connect to port 22 shows the route and the address).
        let banner = run(
            "ctl → h01:22",
            Command::new("ip")
                .args(["netns", "exec", self.primary_netns()])
                .args([
                    "timeout",
                    "10",
                    "bash",
                    "-c",
                    &format!("exec 3<>/dev/tcp/{}/22 && head -c 8 <&3", self.remote_ip()),
                ]),
        )?;
        if !banner.starts_with("SSH-2.0") {
            return Err(format!("{}:22 sent {banner:?}", self.remote_ip()));
        }
        let route = output_text(
            "ip route get (on h01)",
            &self.on_remote(&["ip", "-o", "route", "get", &self.primary_ip().to_string()]),
        )?;
        if !route.contains(" dev eth0 ") {
            return Err(format!(
                "h01 reaches {} not on eth0: {route}",
                self.primary_ip()
            ));
        }
        Ok(format!(
            "{PRIMARY_URI} answers in {:.0} ms, {} in {:.0} ms; {} reaches {}:22",
            local_time.as_secs_f64() * 1000.0,
            self.remote_uri(),
            remote_time.as_secs_f64() * 1000.0,
            self.primary_ip(),
            self.remote_ip()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bed alone, without hpc-up: both hosts answer and reach each other, and dropping
    /// the bed ends every daemon it started.
    #[test]
    #[allow(clippy::print_stderr)] // the timings go to the log
    fn two_hypervisor_hosts_answer_and_reach_each_other() {
        let Some(bed) = MultiHostBed::start().unwrap() else {
            return;
        };
        let line = bed.smoke().unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{line}");
        let pids = bed.daemon_pids();
        assert_eq!(pids.len(), 4, "{pids:?}");
        drop(bed);
        for p in pids {
            assert!(!alive(p), "daemon {p} outlived the bed");
        }
    }
}
