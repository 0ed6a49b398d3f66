//! The cluster's BeeGFS config files, per node.

use std::collections::BTreeMap;

use hpc_config::{Beegfs, Cluster};

use crate::conf::{Conf, ConfError, Value};
use crate::keys::Daemon;
use crate::release::Release;

/// The BeeGFS config directory on every node.
pub const CONFIG_DIR: &str = "/etc/beegfs";
/// The shared secret, identical on every node (mode 0400).
pub const AUTH_FILE: &str = "/etc/beegfs/conn.auth";
/// The mounts file of the client service.
pub const MOUNTS_FILE: &str = "/etc/beegfs/beegfs-mounts.conf";
/// The 8.x management service's TLS certificate.
pub const TLS_CERT_FILE: &str = "/etc/beegfs/cert.pem";
/// The 8.x management service's TLS key (mode 0400).
pub const TLS_KEY_FILE: &str = "/etc/beegfs/key.pem";
/// The 8.x management service's database, inside the management directory.
pub const MGMTD_DB_NAME: &str = "mgmtd.sqlite";
/// Management port (TCP+UDP; `beemsg-port` in 8.x).
pub const MGMTD_PORT: u16 = 8008;
/// Metadata port (TCP+UDP).
pub const META_PORT: u16 = 8005;
/// Storage port (TCP+UDP).
pub const STORAGE_PORT: u16 = 8003;
/// Client port (UDP).
pub const CLIENT_PORT: u16 = 8004;
/// Helper daemon port (7.x, TCP, localhost).
pub const HELPERD_PORT: u16 = 8006;
/// The 8.x management service's gRPC port (the `beegfs` CLI).
pub const GRPC_PORT: u16 = 8010;

/// What a node runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    /// The management service.
    pub mgmtd: bool,
    /// The metadata service, with its numeric node ID.
    pub meta: Option<u16>,
    /// The storage service, with its numeric node ID (its one target is `id * 100 + 1`).
    pub storage: Option<u16>,
    /// The client (and, in 7.x, the helper daemon).
    pub client: bool,
}

impl Roles {
    /// Whether the node runs anything of BeeGFS.
    pub fn any(&self) -> bool {
        self.mgmtd || self.meta.is_some() || self.storage.is_some() || self.client
    }

    /// The numeric ID of this node's storage target.
    pub fn target_id(&self) -> Option<u16> {
        self.storage
            .map(|id| id.saturating_mul(100).saturating_add(1))
    }

    /// The daemons with a config file on this node, in start order.
    pub fn daemons(&self, release: Release) -> Vec<Daemon> {
        Daemon::ALL
            .into_iter()
            .filter(|d| d.exists_in(release))
            .filter(|d| match d {
                Daemon::Mgmtd => self.mgmtd,
                Daemon::Meta => self.meta.is_some(),
                Daemon::Storage => self.storage.is_some(),
                Daemon::Helperd | Daemon::Client => self.client,
            })
            .collect()
    }
}

/// Every node's roles, in cluster order (nodes without BeeGFS left out).
pub fn roles(cluster: &Cluster) -> Vec<(String, Roles)> {
    let mut out = Vec::new();
    let Some(b) = &cluster.beegfs else {
        return out;
    };
    for n in &cluster.nodes {
        let name = n.name.as_str();
        let pos = |list: &[hpc_config::types::NodeName]| {
            list.iter()
                .position(|m| m.as_str() == name)
                .and_then(|i| u16::try_from(i + 1).ok())
        };
        let r = Roles {
            mgmtd: b.management.as_str() == name,
            meta: pos(&b.metadata),
            storage: pos(&b.storage),
            client: b.clients.iter().any(|c| c.as_str() == name),
        };
        if r.any() {
            out.push((name.to_owned(), r));
        }
    }
    out
}

/// One rendered file for a node.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeFile {
    /// Absolute path on the node.
    pub path: String,
    /// Content.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Secret: never logged, diffed or rendered.
    pub secret: bool,
}

impl std::fmt::Debug for NodeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let content: &dyn std::fmt::Debug = if self.secret {
            &"<secret>"
        } else {
            &String::from_utf8_lossy(&self.content)
        };
        f.debug_struct("NodeFile")
            .field("path", &self.path)
            .field("content", content)
            .field("mode", &format_args!("{:#o}", self.mode))
            .finish()
    }
}

/// Rendering failed: every problem, each naming the node's daemon, key and release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("BeeGFS config refused:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RenderError {
    /// Every problem (deduplicated, in daemon order).
    pub problems: Vec<ConfError>,
}

/// The config of `daemon` as hpc-up writes it for `cluster` (before the extra keys).
fn base_conf(cluster: &Cluster, b: &Beegfs, daemon: Daemon, release: Release) -> Conf {
    let mgmt_ip = cluster
        .node(b.management.as_str())
        .map(|n| n.ip.to_string())
        .unwrap_or_default();
    let v8 = release.is_v8();
    let auth = |c: Conf| {
        if b.auth {
            c.set("connAuthFile", AUTH_FILE)
        } else {
            c.set("connDisableAuthentication", true)
        }
    };
    // Port keys in each version's form: 7.4 TCP/UDP pairs, 8.x one key per service.
    let port = |c: Conf, svc: &str, port: u16, tcp: bool| {
        if v8 {
            c.set(&format!("conn{svc}Port"), port)
        } else if tcp {
            c.set(&format!("conn{svc}PortTCP"), port)
                .set(&format!("conn{svc}PortUDP"), port)
        } else {
            c.set(&format!("conn{svc}PortUDP"), port)
        }
    };
    let c = Conf::new(daemon, release);
    match daemon {
        Daemon::Mgmtd if v8 => {
            let c = pool_limits(c, cluster, &b.metadata, |k| {
                format!("cap-pool-meta-limits.{k}")
            });
            let mut c = pool_limits(c, cluster, &b.storage, |k| {
                format!("cap-pool-storage-limits.{k}")
            })
            .set(
                "db-file",
                format!("{}/{MGMTD_DB_NAME}", b.management_dir.trim_end_matches('/')),
            )
            // Works with and without journald; under systemd stderr reaches the journal.
            .set("log-target", "stderr")
            .set("log-level", "info")
            .set("beemsg-port", MGMTD_PORT)
            .set("grpc-port", GRPC_PORT);
            c = if b.auth {
                c.set("auth-file", AUTH_FILE)
            } else {
                c.set("auth-disable", true)
            };
            c = if b.tls {
                c.set("tls-cert-file", TLS_CERT_FILE)
                    .set("tls-key-file", TLS_KEY_FILE)
            } else {
                c.set("tls-disable", true)
            };
            c.set("license-disable", true)
        }
        Daemon::Mgmtd => {
            let c = pool_limits(c, cluster, &b.metadata, |k| v7_limit_key("Meta", k));
            let c = pool_limits(c, cluster, &b.storage, |k| v7_limit_key("Storage", k));
            let c = auth(c.set("storeMgmtdDirectory", b.management_dir.as_str()))
                .set("storeAllowFirstRunInit", false)
                .set("logType", "logfile");
            port(c, "Mgmtd", MGMTD_PORT, true)
        }
        Daemon::Meta => {
            let c = c
                .set("sysMgmtdHost", mgmt_ip)
                .set("storeMetaDirectory", b.metadata_dir.as_str())
                .set("storeAllowFirstRunInit", false);
            let c = auth(c).set("connUseRDMA", false).set("logType", "logfile");
            let c = port(c, "Meta", META_PORT, true);
            port(c, "Mgmtd", MGMTD_PORT, true)
        }
        Daemon::Storage => {
            let c = c
                .set("sysMgmtdHost", mgmt_ip)
                .set("storeStorageDirectory", b.storage_dir.as_str())
                .set("storeAllowFirstRunInit", false);
            let c = auth(c).set("connUseRDMA", false).set("logType", "logfile");
            let c = port(c, "Storage", STORAGE_PORT, true);
            port(c, "Mgmtd", MGMTD_PORT, true)
        }
        Daemon::Client => {
            let c = auth(c.set("sysMgmtdHost", mgmt_ip)).set("connUseRDMA", false);
            let c = port(c, "Client", CLIENT_PORT, false);
            let c = port(c, "Mgmtd", MGMTD_PORT, true);
            if v8 {
                c
            } else {
                c.set("connHelperdPortTCP", HELPERD_PORT)
                    .set("logType", "helperd")
            }
        }
        Daemon::Helperd => auth(c)
            .set("connHelperdPortTCP", HELPERD_PORT)
            .set("logType", "logfile"),
    }
}

/// Keys hpc-up decides: `extra-config` may not set them.
fn reserved(daemon: Daemon, key: &str, release: Release) -> Option<&'static str> {
    if daemon == Daemon::Mgmtd && release.is_v8() {
        return match key {
            "db-file" => Some("from `management-dir`"),
            "auth-file" | "auth-disable" => Some("from `auth`"),
            "tls-disable" | "tls-cert-file" | "tls-key-file" => Some("from `tls`"),
            "beemsg-port" | "grpc-port" | "port-shift" => Some("the BeeGFS default ports"),
            "log-target" => Some("stderr, which works with and without journald"),
            _ => None,
        };
    }
    match key {
        "sysMgmtdHost" => Some("the address of `management`"),
        "connAuthFile" | "connDisableAuthentication" => Some("from `auth`"),
        "storeMetaDirectory" => Some("from `metadata-dir`"),
        "storeStorageDirectory" => Some("from `storage-dir`"),
        "storeMgmtdDirectory" => Some("from `management-dir`"),
        "storeAllowFirstRunInit" | "storeFsUUID" => {
            Some("directories are initialised by the setup scripts")
        }
        "runDaemonized" | "pidFile" | "cfgFile" => Some("the systemd units decide"),
        k if k == "connPortShift" || (k.starts_with("conn") && k.contains("Port")) => {
            Some("the BeeGFS default ports")
        }
        _ => None,
    }
}

/// The management service's capacity-pool limits for the pool of the servers `nodes`, sized
/// to the smallest of their disks. BeeGFS's defaults are sized for real storage servers (8.x
/// storage: "low" below 512 GiB free, "emergency" below 10 GiB and 1 M inodes; 7.x: 1 TiB and
/// 20 GiB), which puts every target of a VM with a disk of a few GiB in the emergency pool:
/// BeeGFS then avoids it for new files and `beegfs health check` reports it Critical. Here
/// "low" is below a quarter of the disk free, "emergency" below 5 %, and the inode limits
/// likewise of the inodes ext4 makes by default (one per 16 KiB). `extra-config` replaces
/// them (`mgmtd: {"cap-pool-storage-limits.space-low": "100GiB", …}` on 8.x,
/// `tuneStorageSpaceLowLimit` on 7.x).
fn pool_limits(
    c: Conf,
    cluster: &Cluster,
    nodes: &[hpc_config::types::NodeName],
    key: impl Fn(&str) -> String,
) -> Conf {
    let Some(disk) = nodes
        .iter()
        .filter_map(|n| cluster.node(n.as_str()))
        .map(|n| n.disk.bytes())
        .min()
    else {
        return c;
    };
    let v8 = c.is_toml();
    let mib = |bytes: u64| {
        let m = (bytes / (1024 * 1024)).max(1);
        if v8 {
            format!("{m}MiB")
        } else {
            format!("{m}M")
        }
    };
    let inodes = disk / (16 * 1024);
    let count = |n: u64| i64::try_from(n.max(1)).unwrap_or(i64::MAX);
    c.set(&key("space-low"), mib(disk / 4))
        .set(&key("space-emergency"), mib(disk / 20))
        .set(&key("inodes-low"), count(inodes / 4))
        .set(&key("inodes-emergency"), count(inodes / 20))
}

/// The 7.x management key of a pool limit (`tuneStorageSpaceLowLimit`) from its 8.x name
/// (`space-low`).
fn v7_limit_key(pool: &str, k: &str) -> String {
    let (what, level) = k.split_once('-').unwrap_or((k, ""));
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    format!("tune{pool}{}{}Limit", cap(what), cap(level))
}

/// The full config of `daemon` (base keys, then the cluster's extra keys), checked.
pub fn daemon_conf(cluster: &Cluster, daemon: Daemon) -> Result<Conf, RenderError> {
    let Some(b) = &cluster.beegfs else {
        return Err(RenderError {
            problems: Vec::new(),
        });
    };
    let release = Release::from_version(b.version);
    let mut conf = base_conf(cluster, b, daemon, release);
    let extra = match daemon {
        Daemon::Mgmtd => &b.extra_config.mgmtd,
        Daemon::Meta => &b.extra_config.meta,
        Daemon::Storage => &b.extra_config.storage,
        Daemon::Client => &b.extra_config.client,
        Daemon::Helperd => &b.extra_config.helperd,
    };
    let mut problems = Vec::new();
    let accepted = crate::keys::accepted_keys(daemon, release);
    for (key, value) in extra {
        // Unknown keys are reported as such (with the known-mistake hint), not as reserved.
        let known = accepted.contains(key.as_str())
            && crate::keys::deprecated_replacement(key, release).is_none();
        if let Some(why) = reserved(daemon, key, release).filter(|_| known) {
            problems.push(ConfError::Reserved {
                daemon,
                release,
                key: key.clone(),
                why,
            });
            continue;
        }
        // A key set twice (by hpc-up and here) would be caught as a duplicate; replace
        // hpc-up's tunable defaults instead (connUseRDMA, logType, log-level, …).
        let value = Value::from(value);
        match conf.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => conf.entries.push((key.clone(), value)),
        }
    }
    problems.extend(conf.check());
    if problems.is_empty() {
        Ok(conf)
    } else {
        Err(RenderError { problems })
    }
}

fn header(daemon: Daemon, release: Release) -> String {
    format!(
        "{CONFIG_DIR}/{} for {} {release}, written by hpc-up.\nEvery key is one this release accepts; re-render instead of editing.",
        daemon.config_file(release),
        daemon.service()
    )
}

/// The `/etc/beegfs/` config files of every BeeGFS node (no secrets: the auth file and TLS
/// key are added by `setup_plan`). All problems of all daemons are reported
/// together.
pub fn config_files(cluster: &Cluster) -> Result<BTreeMap<String, Vec<NodeFile>>, RenderError> {
    let mut out = BTreeMap::new();
    let Some(b) = &cluster.beegfs else {
        return Ok(out);
    };
    let release = Release::from_version(b.version);
    // Render every daemon once (the text is the same on every node that runs it).
    let mut texts: BTreeMap<Daemon, String> = BTreeMap::new();
    let mut problems = Vec::new();
    let roles = roles(cluster);
    for daemon in Daemon::ALL.into_iter().filter(|d| d.exists_in(release)) {
        if !roles
            .iter()
            .any(|(_, r)| r.daemons(release).contains(&daemon))
        {
            continue;
        }
        match daemon_conf(cluster, daemon).and_then(|c| {
            c.render(&header(daemon, release))
                .map_err(|problems| RenderError { problems })
        }) {
            Ok(t) => {
                texts.insert(daemon, t);
            }
            Err(e) => problems.extend(e.problems),
        }
    }
    if !problems.is_empty() {
        return Err(RenderError { problems });
    }
    for (node, r) in &roles {
        let mut files = Vec::new();
        for d in r.daemons(release) {
            if let Some(t) = texts.get(&d) {
                files.push(NodeFile {
                    path: format!("{CONFIG_DIR}/{}", d.config_file(release)),
                    content: t.clone().into_bytes(),
                    mode: 0o644,
                    secret: false,
                });
            }
        }
        if r.client {
            files.push(NodeFile {
                path: MOUNTS_FILE.to_owned(),
                content: mounts_conf(b).into_bytes(),
                mode: 0o644,
                secret: false,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        out.insert(node.clone(), files);
    }
    Ok(out)
}

/// `beegfs-mounts.conf`: `<mountpoint> <client config> [fstype] [options]`.
pub fn mounts_conf(b: &Beegfs) -> String {
    let cfg = format!("{CONFIG_DIR}/beegfs-client.conf");
    match &b.mount_options {
        Some(o) => format!(
            "# written by hpc-up: <mountpoint> <client config> <fstype> <options>\n{} {cfg} beegfs {o}\n",
            b.mount_point
        ),
        None => format!(
            "# written by hpc-up: <mountpoint> <client config>\n{} {cfg}\n",
            b.mount_point
        ),
    }
}
