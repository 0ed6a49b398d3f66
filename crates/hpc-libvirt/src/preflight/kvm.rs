//! The `/dev/kvm` check: can libvirt's QEMU capabilities cache stay valid on a local QEMU
//! connection?
//!
//! A root libvirt daemon probes QEMU with `CAP_DAC_OVERRIDE` kept, so the probe opens
//! `/dev/kvm` whatever its mode and records KVM in the cache. Every later lookup (a define, a
//! domain-capabilities call) asks whether the *QEMU user* can open `/dev/kvm` read-write
//! (libvirt's `virQEMUCapsKVMUsable`: `virFileAccessibleAs` with qemu.conf's `user` and
//! `group`, the user's passwd group and every group listing the user). When it cannot, the
//! cached entry is "outdated" ("KVM was enabled when probing …, but it is not available
//! now") and QEMU is probed again — about a minute, on every lookup.
//!
//! The daemon's view is what counts: hpc-up may run in another mount namespace (the test
//! sandbox hides `/dev/kvm` from its libvirtd). So the facts are read through
//! `/proc/<pid>/root/` of the daemon serving the connection: its `/dev/kvm`, its
//! `/etc/libvirt/qemu.conf`, `/etc/passwd` and `/etc/group`. [`gather`] reads them (no
//! libvirt call); [`decide`] is a pure function of them.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::PreflightWarning;

/// The libvirt instance a local QEMU URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Instance {
    /// `qemu:///system`: a root daemon, QEMU runs as qemu.conf's `user`.
    System,
    /// `qemu:///session`: the user's own daemon, QEMU runs as that user.
    Session,
}

/// The instance of a local `qemu:///system` or `qemu:///session` URI (also `qemu+unix`);
/// `None` for any other driver, a remote host or another path.
pub(super) fn qemu_instance(uri: &str) -> Option<Instance> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme != "qemu" && scheme != "qemu+unix" {
        return None;
    }
    let (host, path) = rest.split_once('/')?;
    if !host.is_empty() {
        return None;
    }
    let path = path.split('?').next().unwrap_or_default();
    match path.trim_end_matches('/') {
        "system" => Some(Instance::System),
        "session" => Some(Instance::Session),
        _ => None,
    }
}

/// Where the facts are read: the proc filesystem and the root of hpc-up's own mount
/// namespace (pid files). `/proc` and `/` except in tests.
#[derive(Debug, Clone, Copy)]
pub(super) struct Host<'a> {
    pub(super) proc: &'a Path,
    pub(super) root: &'a Path,
}

impl Host<'static> {
    pub(super) fn real() -> Self {
        Self {
            proc: Path::new("/proc"),
            root: Path::new("/"),
        }
    }
}

/// The daemon process serving the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Daemon {
    /// `libvirtd` or `virqemud`.
    pub(super) name: String,
    pub(super) pid: u32,
    pub(super) euid: u32,
    pub(super) egid: u32,
    /// Its supplementary groups.
    pub(super) groups: Vec<u32>,
}

/// `/dev/kvm` as the daemon sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DevKvm {
    /// Permission bits (`0o7777` part of `st_mode`).
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// A fact, or why it could not be read.
pub(super) type Fact<T> = Result<T, String>;

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KvmFacts {
    pub(super) uri: String,
    pub(super) instance: Instance,
    pub(super) daemon: Daemon,
    /// The daemon's `/proc/<pid>/root` could not be read (hpc-up is not root): the files
    /// below are hpc-up's own.
    pub(super) own_view: bool,
    /// `None`: there is no `/dev/kvm`.
    pub(super) dev_kvm: Fact<Option<DevKvm>>,
    /// `/etc/libvirt/qemu.conf`; `None`: there is none.
    pub(super) qemu_conf: Fact<Option<String>>,
    /// `/etc/passwd` (empty when there is none).
    pub(super) passwd: Fact<String>,
    /// `/etc/group` (empty when there is none).
    pub(super) group: Fact<String>,
}

/// Pid files naming the daemon of `qemu:///system`, most specific first: hpc-up's test
/// sandbox, the modular QEMU daemon, the monolithic daemon.
const SYSTEM_PID_FILES: [&str; 3] = [
    "run/hpc-up-sandbox/libvirtd.pid",
    "run/virtqemud.pid",
    "run/libvirtd.pid",
];
const DAEMONS: [&str; 2] = ["libvirtd", "virtqemud"];

/// Read the facts for `uri` (an `instance` URI). `Err` says why they cannot be had (no
/// daemon visible, …): the check is then skipped.
pub(super) fn gather(host: Host<'_>, uri: &str, instance: Instance) -> Result<KvmFacts, String> {
    let daemon = find_daemon(host, instance)?;
    let daemon_root = host.proc.join(daemon.pid.to_string()).join("root");
    let (root, own_view) = match fs_err::metadata(&daemon_root) {
        Ok(_) => (daemon_root, false),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            (host.root.to_path_buf(), true)
        }
        Err(e) => {
            return Err(format!(
                "cannot look into the {} daemon's root: {e}",
                daemon.name
            ));
        }
    };
    let dev_kvm = match fs_err::metadata(root.join("dev/kvm")) {
        Ok(m) => Ok(Some(DevKvm {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    Ok(KvmFacts {
        uri: uri.to_owned(),
        instance,
        daemon,
        own_view,
        dev_kvm,
        qemu_conf: read_optional(&root.join("etc/libvirt/qemu.conf")),
        passwd: read_optional(&root.join("etc/passwd")).map(Option::unwrap_or_default),
        group: read_optional(&root.join("etc/group")).map(Option::unwrap_or_default),
    })
}

fn read_optional(path: &Path) -> Fact<Option<String>> {
    match fs_err::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The daemon serving `instance`: a `libvirtd` or `virtqemud` process running as root
/// (system) or as hpc-up's own user (session); pid files first, then every process.
fn find_daemon(host: Host<'_>, instance: Instance) -> Result<Daemon, String> {
    let want = match instance {
        Instance::System => 0,
        Instance::Session => {
            let status =
                fs_err::read_to_string(host.proc.join("self/status")).map_err(|e| e.to_string())?;
            status_ids(&status, "Uid:")
                .and_then(|ids| ids.get(1).copied())
                .ok_or("no effective uid in /proc/self/status")?
        }
    };
    let mut pids: Vec<u32> = Vec::new();
    if instance == Instance::System {
        pids.extend(SYSTEM_PID_FILES.iter().filter_map(|f| {
            fs_err::read_to_string(host.root.join(f))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
        }));
    }
    let mut all: Vec<u32> = fs_err::read_dir(host.proc)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    all.sort_unstable();
    pids.extend(all);
    pids.into_iter()
        .filter_map(|pid| daemon_at(host.proc, pid))
        .find(|d| d.euid == want)
        .ok_or_else(|| {
            format!(
                "no {} process of uid {want} is visible in {}",
                DAEMONS.join(" or "),
                host.proc.display()
            )
        })
}

/// The process `pid` when it is a live libvirt daemon.
fn daemon_at(proc: &Path, pid: u32) -> Option<Daemon> {
    let dir = proc.join(pid.to_string());
    let comm = fs_err::read_to_string(dir.join("comm")).ok()?;
    let name = comm.trim();
    if !DAEMONS.contains(&name) {
        return None;
    }
    let status = fs_err::read_to_string(dir.join("status")).ok()?;
    let zombie = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|s| s.trim_start().starts_with('Z'));
    if zombie {
        return None;
    }
    Some(Daemon {
        name: name.to_owned(),
        pid,
        euid: *status_ids(&status, "Uid:")?.get(1)?,
        egid: *status_ids(&status, "Gid:")?.get(1)?,
        groups: status_ids(&status, "Groups:").unwrap_or_default(),
    })
}

/// The numbers of a `/proc/<pid>/status` line (`Uid:`: real, effective, saved, fs).
fn status_ids(status: &str, key: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().map(|n| n.parse().ok()).collect()
}

// ---------------------------------------------------------------------------------------------
// the decision

/// The QEMU processes' identity.
#[derive(Debug, PartialEq, Eq)]
struct QemuUser {
    /// As configured (or the daemon's user for a session).
    name: String,
    uid: u32,
    /// Every group the process has.
    gids: Vec<u32>,
}

/// Whether libvirt would re-probe QEMU at every lookup on this connection: `Ok(Some)` when
/// `/dev/kvm` exists, the daemon is root (its probe sees KVM) and the QEMU user cannot open
/// `/dev/kvm` read-write by its mode bits. `Err` says why it cannot be told (the caller
/// logs it at debug level; no warning).
pub(super) fn decide(f: &KvmFacts) -> Result<Option<PreflightWarning>, String> {
    let dev = match &f.dev_kvm {
        Ok(Some(dev)) => *dev,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("cannot look at /dev/kvm: {e}")),
    };
    if f.daemon.euid != 0 {
        // Only a root daemon's probe keeps CAP_DAC_OVERRIDE; otherwise probe and QEMU have
        // the same access and the cache stays consistent.
        return Ok(None);
    }
    let passwd = f
        .passwd
        .as_ref()
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    let group = f
        .group
        .as_ref()
        .map_err(|e| format!("cannot read /etc/group: {e}"))?;
    let users = parse_db(passwd);
    let groups = parse_db(group);
    let qemu = match f.instance {
        Instance::Session => QemuUser {
            name: name_of(&users, f.daemon.euid),
            uid: f.daemon.euid,
            gids: std::iter::once(f.daemon.egid)
                .chain(f.daemon.groups.iter().copied())
                .collect(),
        },
        Instance::System => {
            let conf = f
                .qemu_conf
                .as_ref()
                .map_err(|e| format!("cannot read /etc/libvirt/qemu.conf: {e}"))?;
            system_qemu_user(conf.as_deref(), &users, &groups)?
        }
    };
    if can_read_write(dev, qemu.uid, &qemu.gids) {
        return Ok(None);
    }
    let group_names: Vec<String> = qemu.gids.iter().map(|g| name_of(&groups, *g)).collect();
    // A group the QEMU user is in: `kvm` as udev makes it, else its qemu.conf/own group.
    let fix_group = if group_names.iter().any(|g| g == "kvm") || qemu.gids.is_empty() {
        "kvm".to_owned()
    } else {
        group_names[0].clone()
    };
    Ok(Some(PreflightWarning::KvmCacheReprobed {
        uri: f.uri.clone(),
        daemon: format!("{} (pid {})", f.daemon.name, f.daemon.pid),
        own_view: f.own_view,
        mode: dev.mode,
        owner: name_of(&users, dev.uid),
        group: name_of(&groups, dev.gid),
        qemu_user: qemu.name,
        qemu_uid: qemu.uid,
        qemu_groups: group_names,
        fix_group,
    }))
}

/// The user and groups QEMU runs as under a system daemon: qemu.conf's `user` and `group`
/// (names, `+N` ids, or digits naming no user), else the built-in defaults that qemu.conf
/// shows as its commented `#user = "…"` / `#group = "…"` lines (Debian: `libvirt-qemu`).
/// The groups are libvirt's: the configured group, the user's passwd group and every group
/// listing the user.
fn system_qemu_user(
    conf: Option<&str>,
    users: &[DbEntry<'_>],
    groups: &[DbEntry<'_>],
) -> Result<QemuUser, String> {
    let setting = |key: &str| {
        conf.and_then(|c| conf_value(c, key, false))
            .or_else(|| conf.and_then(|c| conf_value(c, key, true)))
    };
    let user = setting("user")
        .ok_or("qemu.conf sets no `user` and shows no built-in default (a `#user = \"…\"` line)")?;
    let uid = resolve(&user, users)
        .ok_or_else(|| format!("QEMU user `{user}` (qemu.conf) is not in /etc/passwd"))?;
    let entry = users.iter().find(|u| u.id == uid);
    let mut gids = Vec::new();
    if let Some(g) = setting("group") {
        gids.push(
            resolve(&g, groups)
                .ok_or_else(|| format!("QEMU group `{g}` (qemu.conf) is not in /etc/group"))?,
        );
    }
    if let Some(entry) = entry {
        gids.extend(entry.primary);
        gids.extend(
            groups
                .iter()
                .filter(|g| g.members.contains(&entry.name))
                .map(|g| g.id),
        );
    }
    let mut seen = Vec::new();
    gids.retain(|g| {
        let new = !seen.contains(g);
        seen.push(*g);
        new
    });
    Ok(QemuUser {
        name: user,
        uid,
        gids,
    })
}

/// Whether `uid` with `gids` may open `dev` for reading and writing, by its mode bits (the
/// owner class decides alone when it applies, as in the kernel; root always may).
fn can_read_write(dev: DevKvm, uid: u32, gids: &[u32]) -> bool {
    if uid == 0 {
        return true;
    }
    let bits = if uid == dev.uid {
        dev.mode >> 6
    } else if gids.contains(&dev.gid) {
        dev.mode >> 3
    } else {
        dev.mode
    };
    bits & 0o6 == 0o6
}

/// One line of `/etc/passwd` (`name:x:uid:gid:…`) or `/etc/group` (`name:x:gid:a,b`).
#[derive(Debug)]
struct DbEntry<'a> {
    name: &'a str,
    id: u32,
    /// passwd: the user's group.
    primary: Option<u32>,
    /// group: the members.
    members: Vec<&'a str>,
}

fn parse_db(text: &str) -> Vec<DbEntry<'_>> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields.get(2)?.trim().parse().ok()?;
            let name = *fields.first()?;
            let fourth = fields.get(3).copied().unwrap_or_default();
            Some(DbEntry {
                name,
                id,
                primary: fourth.trim().parse().ok(),
                members: fourth
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .collect(),
            })
        })
        .collect()
}

/// A qemu.conf user or group: `+N` is the id N; a name is looked up; digits that name no
/// entry are the id (libvirt's `virGetUserID`/`virGetGroupID`).
fn resolve(spec: &str, db: &[DbEntry<'_>]) -> Option<u32> {
    if let Some(id) = spec.strip_prefix('+') {
        return id.parse().ok();
    }
    db.iter()
        .find(|e| e.name == spec)
        .map(|e| e.id)
        .or_else(|| spec.parse().ok())
}

fn name_of(db: &[DbEntry<'_>], id: u32) -> String {
    db.iter()
        .find(|e| e.id == id)
        .map_or_else(|| id.to_string(), |e| e.name.to_owned())
}

/// The string value of `key` in a libvirt config file: `key = "value"` (or `'value'`). With
/// `commented`, only `#key = "value"` lines (`#` directly before the key) are looked at:
/// libvirt's shipped qemu.conf shows its built-in defaults that way.
fn conf_value(conf: &str, key: &str, commented: bool) -> Option<String> {
    conf.lines().find_map(|line| {
        let line = line.trim_start();
        let line = if commented {
            line.strip_prefix('#')
                .filter(|rest| !rest.starts_with(char::is_whitespace))?
        } else {
            line
        };
        let (k, v) = line.split_once('=')?;
        if k.trim() != key {
            return None;
        }
        let v = v.trim_start();
        let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let rest = &v[1..];
        rest.find(quote).map(|end| rest[..end].to_owned())
    })
}

/// The check for `uri`: `Ok(None)` for a URI it does not apply to.
pub(super) fn check(host: Host<'_>, uri: &str) -> Result<Option<PreflightWarning>, String> {
    let Some(instance) = qemu_instance(uri) else {
        return Ok(None);
    };
    decide(&gather(host, uri, instance)?)
}

#[cfg(test)]
mod tests;
