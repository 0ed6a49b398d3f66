//! A bed of real SSH hosts for tests: `tests/testbed/testbed-up` makes N hosts, each a
//! network namespace with its own hostname, sshd and host key, and a private view of `/etc`,
//! `/var`, `/run`; [`Drop`] runs `testbed-down`. See `tests/testbed/README.md`.
//!
//! Several test binaries can run beds side by side: each [`SshBed`] takes a free index
//! (0..16) by locking a file in `/run`, and derives its state dir, namespace prefix and subnet
//! from it. Nothing is added to the root network namespace: talk to the hosts from the bed's
//! admin namespace, either with `ip netns exec <ctl> ssh -F <state>/ssh/config h01 …` or, from
//! Rust, inside [`SshBed::in_netns`].
//!
//! A host can also be a hypervisor: [`SshBed::start_libvirtd`] runs virtlogd and libvirtd
//! inside it (`tests/testbed/host-libvirtd`), and [`SshBed::libvirt_uri`] is the
//! `qemu+ssh://` URI that reaches it from the ctl namespace through the host's sshd; open it
//! inside [`SshBed::in_ctl_home`], where OpenSSH finds the bed's pinned host keys.

use std::fs::{File, Permissions};
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::{repo_root, require};

/// How many beds can run at once on one machine (one subnet `10.81.<index>.0/24` each).
const MAX_BEDS: u32 = 16;

/// One host of the bed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedHost {
    /// Host name, `h01` … `hNN`; also its hostname inside the host.
    pub name: String,
    /// Its address on the bed's bridge (reachable from the ctl namespace).
    pub ip: Ipv4Addr,
}

/// Opt-in host features of a bed (all off by default: hosts share the machine's `/usr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BedOptions {
    /// Each host gets a private overlay of `/usr` (so of `/bin`, `/sbin`, `/lib` too), so
    /// `dpkg -i` inside a host installs only for that host (`HPCUP_TESTBED_PRIVATE_USR`).
    pub private_usr: bool,
    /// Each host gets its own `/sys/class/dmi/id/product_uuid` (`HPCUP_TESTBED_MACHINE_UUID`).
    pub machine_uuid: bool,
}

/// A running test bed of SSH hosts. Dropping it tears the bed down.
#[derive(Debug)]
pub struct SshBed {
    state: PathBuf,
    prefix: String,
    ctl_netns: String,
    hosts: Vec<BedHost>,
    options: BedOptions,
    /// Numbers the client homes made by [`SshBed::in_ctl_home_with`].
    homes: AtomicU32,
    _lock: File,
}

/// What a bed host needs to be a hypervisor ([`SshBed::start_libvirtd`]): libvirtd and
/// virtlogd (`libvirt-daemon-system`), virsh (`libvirt-clients`), QEMU (`qemu-system-x86`),
/// and on the hosts' side of `qemu+ssh://`, `virt-ssh-helper` (`libvirt-daemon`). The hosts
/// share the machine's `/usr`, so what the machine has, every host has.
pub fn libvirt_installed() -> bool {
    [
        "/usr/sbin/libvirtd",
        "/usr/sbin/virtlogd",
        "/usr/bin/virsh",
        "/usr/bin/virt-ssh-helper",
        "/usr/bin/qemu-system-x86_64",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
}

/// The directory of the bed's scripts (`testbed-up`, `testbed-down`, `hostinit`).
pub fn testbed_dir() -> PathBuf {
    repo_root().join("tests").join("testbed")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn have(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

fn netns_usable() -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    fs_err::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

fn read_pid(path: &Path) -> Option<i32> {
    fs_err::read_to_string(path).ok()?.trim().parse().ok()
}

/// Same namespace file (device and inode) behind both paths.
fn same_ns(a: &str, b: &str) -> bool {
    match (fs_err::metadata(a), fs_err::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Reap `pid` if it is our child (we are a child subreaper, so the bed's orphaned launchers
/// are), waiting at most until `deadline`. Without this they stay zombies on machines whose
/// PID 1 does not reap.
fn reap(pid: i32, deadline: Instant) {
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

/// Take the first free bed index: an exclusive lock on `/run/hpcup-sshbed-<i>.lock`, held
/// for the bed's life.
fn allocate() -> Result<(u32, File), String> {
    for i in 0..MAX_BEDS {
        let path = format!("/run/hpcup-sshbed-{i}.lock");
        let f = fs_err::File::create(&path)
            .map_err(|e| e.to_string())?
            .into_file();
        if f.try_lock().is_ok() {
            return Ok((i, f));
        }
    }
    Err(format!("all {MAX_BEDS} SSH bed slots are in use"))
}

impl SshBed {
    /// A bed of `n` hosts for a test whose hosts run the Debian `daemons` (programs in
    /// `/usr/sbin`, installed by `install`), or `None` (skip, with a message naming `what`)
    /// outside CI when one is missing; in CI a missing daemon fails.
    pub fn with_daemons(n: usize, daemons: &[&str], install: &str, what: &str) -> Option<Self> {
        let have = daemons
            .iter()
            .all(|d| Path::new("/usr/sbin").join(d).exists());
        if require(have, install, what) {
            return None;
        }
        Self::start(n).unwrap_or_else(|e| panic!("SSH bed for {what}: {e}"))
    }

    /// Start a bed of `n` hosts (1..=64), `h01`…`hNN`. `Ok(None)` means "skip": not root, or
    /// iproute2/OpenSSH/util-linux missing, outside CI (in CI that panics instead).
    pub fn start(n: usize) -> Result<Option<Self>, String> {
        Self::start_with(n, BedOptions::default())
    }

    /// [`SshBed::start`] with opt-in host features.
    pub fn start_with(n: usize, options: BedOptions) -> Result<Option<Self>, String> {
        let ok = is_root()
            && have("ip")
            && netns_usable()
            && have("sshd")
            && have("ssh")
            && have("ssh-keygen")
            && have("nsenter")
            && have("unshare");
        if require(
            ok,
            "root + iproute2 (ip netns) + openssh-server/client + util-linux",
            "the SSH test bed (tests/testbed)",
        ) {
            return Ok(None);
        }
        if !(1..=64).contains(&n) {
            return Err(format!("an SSH bed has 1 to 64 hosts, not {n}"));
        }
        // The hosts' launchers are orphaned when testbed-up exits: adopt them so that they can
        // be reaped (this machine's PID 1 does not reap orphans).
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        let (index, lock) = allocate()?;
        let mut bed = Self {
            state: PathBuf::from(format!("/srv/hpcup-sshbed-{index}")),
            prefix: format!("hb{index}"),
            ctl_netns: String::new(),
            hosts: Vec::new(),
            options,
            homes: AtomicU32::new(0),
            _lock: lock,
        };
        // A test process that died without dropping its bed left this slot's bed behind.
        bed.script("testbed-down", &[])?;
        bed.script("testbed-up", &[&n.to_string()])?;
        bed.ctl_netns = fs_err::read_to_string(bed.state.join("ctl-netns"))
            .map_err(|e| e.to_string())?
            .trim()
            .to_owned();
        let hosts_txt =
            fs_err::read_to_string(bed.state.join("hosts.txt")).map_err(|e| e.to_string())?;
        for line in hosts_txt.lines() {
            let (name, ip) = line
                .split_once(' ')
                .ok_or_else(|| format!("hosts.txt: bad line {line:?}"))?;
            let ip = ip
                .parse()
                .map_err(|e| format!("hosts.txt: bad address {ip:?}: {e}"))?;
            bed.hosts.push(BedHost {
                name: name.to_owned(),
                ip,
            });
        }
        if bed.hosts.len() != n {
            return Err(format!(
                "hosts.txt lists {} hosts, asked for {n}",
                bed.hosts.len()
            ));
        }
        Ok(Some(bed))
    }

    fn script(&self, name: &str, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(testbed_dir().join(name));
        cmd.args(args)
            .env("HPCUP_TESTBED_STATE", &self.state)
            .env("HPCUP_TESTBED_PREFIX", &self.prefix)
            .env("HPCUP_TESTBED_NET", self.net())
            .env(
                "HPCUP_TESTBED_PRIVATE_USR",
                if self.options.private_usr { "1" } else { "0" },
            )
            .env(
                "HPCUP_TESTBED_MACHINE_UUID",
                if self.options.machine_uuid { "1" } else { "0" },
            );
        let out = cmd.output().map_err(|e| format!("{name}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{name} {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn net(&self) -> String {
        format!("10.81.{}", self.prefix.trim_start_matches("hb"))
    }

    /// The hosts, in order `h01`…`hNN`.
    pub fn hosts(&self) -> &[BedHost] {
        &self.hosts
    }

    /// The host called `name`, if the bed has it.
    pub fn host(&self, name: &str) -> Option<&BedHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The bed's state dir (`hosts.txt`, `ssh/`, `etc-hosts`, one dir per host).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The head of a cluster file for this bed, up to and including `state-dir:` (so a test
    /// appends `controller:` and the rest): cluster `name`, libvirt `qemu:///system`, the
    /// bed's /24 (h01's) on `bridge` (isolated, domain `bed.test`), an image base that does
    /// not exist (nothing boots one), its `release` if given, and the state dir `cluster`
    /// under the bed's.
    pub fn cluster_head(&self, name: &str, bridge: &str, release: Option<&str>) -> String {
        let [a, b, c, _] = self
            .host("h01")
            .map_or_else(|| panic!("the bed has no h01"), |h| h.ip.octets());
        let release = release.map_or_else(String::new, |r| format!("  release: {r}\n"));
        format!(
            "name: {name}
libvirt:
  uri: qemu:///system
  domain-type: qemu
network:
  cidr: {a}.{b}.{c}.0/24
  bridge: {bridge}
  mode: isolated
  domain: bed.test
image:
  base: /nonexistent/base.qcow2
{release}state-dir: {state}
",
            state = self.state.join("cluster").display(),
        )
    }

    /// The client's private key, which every host's root accepts.
    pub fn key_path(&self) -> PathBuf {
        self.state.join("ssh").join("id_ed25519")
    }

    /// `known_hosts` with each host's key under `hNN,<ip>`.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.state.join("ssh").join("known_hosts")
    }

    /// An OpenSSH client config with one `Host hNN` entry per host (strict host key checking).
    pub fn ssh_config_path(&self) -> PathBuf {
        self.state.join("ssh").join("config")
    }

    /// The admin host's network namespace, on the bed's bridge: run deployers there.
    pub fn ctl_netns(&self) -> &str {
        &self.ctl_netns
    }

    /// The network namespace of host `name`.
    fn host_netns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// PID (in the root PID namespace) of host `name`'s PID 1 (its sshd), if it runs.
    pub fn pid1(&self, name: &str) -> Option<i32> {
        let pid = read_pid(&self.state.join("hosts").join(name).join("pid"))?;
        let in_ns = same_ns(
            &format!("/proc/{pid}/ns/net"),
            &format!("/run/netns/{}", self.host_netns(name)),
        );
        (in_ns && alive(pid)).then_some(pid)
    }

    fn launcher(&self, name: &str) -> Option<i32> {
        read_pid(&self.state.join("hosts").join(name).join("launcher"))
    }

    /// Every PID the bed started that still exists: each host's PID 1 and its launcher.
    pub fn pids(&self) -> Vec<i32> {
        self.hosts
            .iter()
            .flat_map(|h| [self.pid1(&h.name), self.launcher(&h.name)])
            .flatten()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect()
    }

    /// Run `argv` inside host `name`'s namespaces (network, mount, UTS, PID…) as root, for
    /// assertions about the host's state. Panics if the host does not run.
    pub fn exec_on(&self, name: &str, argv: &[&str]) -> Output {
        let pid = self
            .pid1(name)
            .unwrap_or_else(|| panic!("host {name} of the SSH bed is not running"));
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-a", "--"])
            .args(argv)
            .output()
            .unwrap_or_else(|e| panic!("nsenter into {name}: {e}"))
    }

    /// Install `.deb` files on host `name` only (`dpkg -i` inside the host), as an image
    /// build would: needs [`BedOptions::private_usr`] (it refuses otherwise, so a test never
    /// installs on the machine). The files are copied into the bed's state dir first, which
    /// every host sees: their own paths may be hidden in the host (a checkout under `/tmp`,
    /// `/run` or an overlaid tree).
    pub fn install_debs(&self, name: &str, debs: &[PathBuf]) -> Result<(), String> {
        if !self.options.private_usr {
            return Err(format!(
                "installing packages on {name} needs a bed with BedOptions::private_usr (hosts share /usr otherwise)"
            ));
        }
        let dir = self.state_dir().join("debs").join(name);
        fs_err::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut copies = Vec::with_capacity(debs.len());
        for d in debs {
            let file = d
                .file_name()
                .ok_or_else(|| format!("{} is not a file", d.display()))?;
            let to = dir.join(file);
            fs_err::copy(d, &to).map_err(|e| e.to_string())?;
            copies.push(to);
        }
        let mut argv = vec!["env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "-i"];
        let paths: Vec<String> = copies.iter().map(|p| p.display().to_string()).collect();
        argv.extend(paths.iter().map(String::as_str));
        let out = self.exec_on(name, &argv);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "dpkg -i on {name} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Stop host `name` (kill its PID 1, and with it everything in the host) so that it is
    /// unreachable; its namespaces and files stay until the bed is dropped.
    pub fn stop_host(&self, name: &str) -> Result<(), String> {
        let pid = self
            .pid1(name)
            .ok_or_else(|| format!("host {name} is not running"))?;
        kill(Pid::from_raw(pid), Signal::SIGKILL).map_err(|e| format!("kill {pid}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            if Instant::now() > deadline {
                return Err(format!("host {name} (pid {pid}) survived SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(l) = self.launcher(name) {
            reap(l, deadline);
        }
        Ok(())
    }

    /// Run `f` on a new thread that first joins the ctl network namespace, so every socket
    /// created inside `f` (for instance by a tokio current-thread runtime built there) lives
    /// in the bed's network. Returns `f`'s result; a panic in `f` is propagated.
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ctl_netns);
        std::thread::scope(|s| {
            let worker = s.spawn(move || {
                let ns = fs_err::File::open(&path)
                    .unwrap_or_else(|e| panic!("open {path}: {e}"))
                    .into_file();
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                drop(ns);
                f()
            });
            worker
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Runs the future `f` makes to completion on a tokio current-thread runtime built inside
    /// the bed's ctl network namespace ([`SshBed::in_netns`]), so executors' sockets live on
    /// the bed's network.
    pub fn block_on<T: Send, F: std::future::Future<Output = T>>(
        &self,
        f: impl FnOnce() -> F + Send,
    ) -> T {
        self.in_netns(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
                .block_on(f())
        })
    }

    /// Start virtlogd and libvirtd (QEMU driver) inside host `name` (`host-libvirtd start`)
    /// and wait until libvirtd answers. Idempotent. The daemons run in the host's network,
    /// UTS and PID namespaces and a mount namespace below the host's, so its `/run` (their
    /// sockets and pid files), `/etc` and `/var` are the host's own; libvirt's object
    /// directories are private and empty, and `/dev/kvm` is hidden (guests run under TCG). Any
    /// network they make lives in the host's network namespace. They end when the bed is
    /// dropped (`testbed-down` stops them by PID before it ends the hosts) or with
    /// [`SshBed::stop_libvirtd`]. See `tests/testbed/README.md`, "Hypervisor hosts".
    pub fn start_libvirtd(&self, name: &str) -> Result<(), String> {
        self.host(name)
            .ok_or_else(|| format!("the bed has no host {name}"))?;
        self.script("host-libvirtd", &["start", name]).map(drop)
    }

    /// Destroy and undefine every domain, network and pool of host `name`'s libvirtd, then
    /// stop the daemons [`SshBed::start_libvirtd`] started there (by PID). Idempotent.
    pub fn stop_libvirtd(&self, name: &str) -> Result<(), String> {
        self.host(name)
            .ok_or_else(|| format!("the bed has no host {name}"))?;
        self.script("host-libvirtd", &["stop", name]).map(drop)
    }

    /// PIDs (in the root PID namespace) of the libvirtd and virtlogd that
    /// [`SshBed::start_libvirtd`] started in host `name`, those that still live.
    pub fn libvirtd_pids(&self, name: &str) -> Vec<i32> {
        ["libvirtd.pid", "virtlogd.pid"]
            .iter()
            .filter_map(|f| read_pid(&self.state.join("hosts").join(name).join(f)))
            .filter(|p| alive(*p))
            .collect()
    }

    /// The libvirt URI of host `name`'s daemon as a deployer on the ctl host would write it:
    /// `qemu+ssh://root@<ip>/system?keyfile=<bed key>`. libvirt runs the OpenSSH client
    /// (`ssh -l root -i <key> -T -e none -- <ip> sh -c '…virt-ssh-helper qemu:///system…'`;
    /// `nc -U` only where the host has no `virt-ssh-helper`, which bed hosts have). The URI
    /// carries no `no_verify`: the host key is checked, against `~/.ssh/known_hosts` of the
    /// passwd home (`ssh` ignores `$HOME` there), so open it inside [`SshBed::in_ctl_home`].
    pub fn libvirt_uri(&self, name: &str) -> String {
        let ip = self
            .host(name)
            .map_or_else(|| panic!("the bed has no host {name}"), |h| h.ip);
        format!(
            "qemu+ssh://root@{ip}/system?keyfile={}",
            self.key_path().display()
        )
    }

    /// Run `f` as a client on the ctl host: on a new thread in the ctl network namespace (as
    /// [`SshBed::in_netns`]) and in a mount namespace of its own in which `/root` is a
    /// directory of the bed (`<state>/ctl-homes/bed`) whose `.ssh` holds the bed's
    /// `known_hosts` and a `config` (`StrictHostKeyChecking yes`, `BatchMode yes`, no global
    /// known hosts). Every `ssh` started from `f` (libvirt's `qemu+ssh://` transport opened by
    /// [`hpc_libvirt::VirtHypervisor::connect`] or `Connect::open`, or a `Command`) thus
    /// verifies the hosts against the keys the bed generated, and the machine's own `/root`
    /// is never read or written. A connection opened in `f` keeps working after `f` returns:
    /// its `ssh` process was forked inside the namespaces and stays there.
    ///
    /// Why this and not another way: libvirt's `ssh` transport has no URI parameter for a
    /// known-hosts file (`known_hosts=` only applies to `qemu+libssh://`), and OpenSSH reads
    /// `~/.ssh` from the passwd entry, not `$HOME`; `no_verify=1` would skip the check that
    /// matters, and `command=` (a wrapper around `ssh`) would test a URI no deployer writes.
    /// A private mount namespace keeps the URI exactly as hpc-up writes it.
    pub fn in_ctl_home<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let home = self.ctl_home("bed", &self.known_hosts_path());
        self.in_ctl_home_at(home, f)
    }

    /// [`SshBed::in_ctl_home`] with another `known_hosts` file (a fresh home per call), for
    /// tests of host key verification.
    pub fn in_ctl_home_with<T: Send>(&self, known_hosts: &Path, f: impl FnOnce() -> T + Send) -> T {
        let n = self.homes.fetch_add(1, Ordering::Relaxed);
        let home = self.ctl_home(&format!("custom-{n}"), known_hosts);
        self.in_ctl_home_at(home, f)
    }

    /// `<state>/ctl-homes/<dir>`: a root home (0700) whose `.ssh` has `known_hosts` (copied
    /// from `known_hosts`) and `config`.
    fn ctl_home(&self, dir: &str, known_hosts: &Path) -> PathBuf {
        const CONFIG: &str = "# the SSH test bed's client settings (SshBed::in_ctl_home)
Host *
  StrictHostKeyChecking yes
  BatchMode yes
  GlobalKnownHostsFile /dev/null
  HostKeyAlgorithms ssh-ed25519
  ConnectTimeout 10
";
        let home = self.state.join("ctl-homes").join(dir);
        let ssh = home.join(".ssh");
        // Written beside and renamed into place: an `ssh` of an earlier call may be reading.
        let put = |name: &str, text: &[u8]| -> std::io::Result<()> {
            let tmp = ssh.join(format!("{name}.tmp"));
            fs_err::write(&tmp, text)?;
            fs_err::set_permissions(&tmp, Permissions::from_mode(0o600))?;
            fs_err::rename(&tmp, ssh.join(name))
        };
        let made = (|| -> std::io::Result<()> {
            fs_err::create_dir_all(&ssh)?;
            for d in [&home, &ssh] {
                fs_err::set_permissions(d, Permissions::from_mode(0o700))?;
            }
            put("known_hosts", &fs_err::read(known_hosts)?)?;
            put("config", CONFIG.as_bytes())
        })();
        made.unwrap_or_else(|e| panic!("client home {}: {e}", home.display()));
        home
    }

    fn in_ctl_home_at<T: Send>(&self, home: PathBuf, f: impl FnOnce() -> T + Send) -> T {
        self.in_netns(move || {
            // Only this thread: unshare(CLONE_NEWNS) also unshares its CLONE_FS.
            unshare(CloneFlags::CLONE_NEWNS).unwrap_or_else(|e| panic!("unshare(mount): {e}"));
            // Private first, so that the bind mount below does not propagate to the machine.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .unwrap_or_else(|e| panic!("make / private: {e}"));
            mount(
                Some(&home),
                "/root",
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap_or_else(|e| panic!("bind {} over /root: {e}", home.display()));
            f()
        })
    }

    /// The ctl host's address on the bed's bridge (`<net>.2`): where the bed's hosts reach a
    /// deployer, or a hypervisor, that runs in the ctl namespace.
    pub fn ctl_ip(&self) -> Ipv4Addr {
        let [a, b, c, _] = self
            .host("h01")
            .map_or_else(|| panic!("the bed has no h01"), |h| h.ip.octets());
        Ipv4Addr::new(a, b, c, 2)
    }

    /// A [`Command`] that runs `program` as a client on the ctl host, as [`SshBed::in_ctl_home`]
    /// runs a closure: in the ctl network namespace (`ip netns exec`) and a private mount
    /// namespace (`unshare -m --propagation private`) in which the bed's client home
    /// (`<state>/ctl-homes/bed`) is bind-mounted over `/root`, so every `ssh` the program
    /// starts (libvirt's `qemu+ssh://` transport, OpenSSH run by a deployer) checks the hosts
    /// against the bed's pinned keys and the machine's `/root` is neither read nor written.
    /// The program is `exec`ed in the end, so the child's PID is the program's (a test can
    /// `kill -9` it). Add arguments, environment and stdio as for any `Command`.
    pub fn ctl_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let home = self.ctl_home("bed", &self.known_hosts_path());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ctl_netns])
            .args(["unshare", "--mount", "--propagation", "private"])
            .args(["sh", "-c", r#"mount --bind "$0" /root && exec "$@""#])
            .arg(home)
            .arg(program);
        cmd
    }

    /// An SSH executor for every host of the bed with the bed's client key, its state (pins)
    /// in `<bed state>/<state_name>`, host keys checked against `known_hosts` (the bed's own
    /// file when `None`).
    pub fn executor(
        &self,
        state_name: &str,
        known_hosts: Option<PathBuf>,
    ) -> hpc_remote::SshExecutor {
        let mut o = hpc_remote::SshOptions::new(self.key_path(), self.state.join(state_name));
        o.known_hosts = Some(known_hosts.unwrap_or_else(|| self.known_hosts_path()));
        o.connect_attempts = 2;
        o.retry_backoff = Duration::from_millis(100);
        o.connect_timeout = Duration::from_secs(10);
        o.host_timeout = Duration::from_secs(120);
        hpc_remote::SshExecutor::new(
            o,
            self.hosts
                .iter()
                .map(|h| hpc_remote::SshHost::new(&h.name, h.ip.to_string())),
        )
        .unwrap_or_else(|e| panic!("SSH executor for the bed: {e}"))
    }
}

impl Drop for SshBed {
    fn drop(&mut self) {
        // Read the launchers before testbed-down deletes the state dir.
        // Every host dir counts, also when testbed-up failed half-way.
        let launchers: Vec<i32> = fs_err::read_dir(self.state.join("hosts"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| read_pid(&e.path().join("launcher")))
                    .collect()
            })
            .unwrap_or_default();
        let res = self.script("testbed-down", &[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        for l in launchers {
            reap(l, deadline);
        }
        if let Err(e) = res
            && !std::thread::panicking()
        {
            panic!("tearing down the SSH bed in {}: {e}", self.state.display());
        }
    }
}
