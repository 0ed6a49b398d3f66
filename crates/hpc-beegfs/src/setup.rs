//! The setup sequence as host steps, in phases that run one after another (all hosts of a
//! phase at once): prepare (packages, files, directory initialisation) → management →
//! metadata and storage → clients (mount).

use std::fmt;
use std::fmt::Write as _;

use hpc_config::{BeegfsPackageSource, Cluster};
use hpc_remote::{
    EnsureDirectory, EnsureFile, EnsureService, HostPlan, Phase, RunCommand, RunWhen, StepKind,
};
use sha2::{Digest, Sha256};

use crate::keys::Daemon;
use crate::release::Release;
use crate::render::{
    AUTH_FILE, CONFIG_DIR, MGMTD_DB_NAME, NodeFile, RenderError, Roles, TLS_CERT_FILE,
    TLS_KEY_FILE, config_files, roles,
};

/// Shortest auth secret hpc-up writes (BeeGFS itself needs 4 bytes).
pub const AUTH_SECRET_MIN: usize = 32;
/// Longest auth secret: the C++ services hash only the first 1024 bytes, the 8.x mgmtd and
/// CLI the whole file; longer secrets would make them disagree.
pub const AUTH_SECRET_MAX: usize = 1024;
/// Where a repository's signing key goes on the nodes.
pub const REPO_KEY_PATH: &str = "/etc/apt/keyrings/hpc-up-beegfs.asc";
/// Where a repository's apt source goes on the nodes.
pub const REPO_LIST_PATH: &str = "/etc/apt/sources.list.d/hpc-up-beegfs.list";
/// Per-service stamps: a digest of everything a service reads, so that a change in an
/// earlier phase restarts it in a later one.
pub const STAMP_DIR: &str = "/var/lib/hpc-up/beegfs";
/// systemd drop-in that lets the 8.x management service log as its TOML says (the
/// packaged unit forces `--log-target=journald`, which panics where journald is absent).
pub const MGMTD_DROPIN: &str = "/etc/systemd/system/beegfs-mgmtd.service.d/hpc-up.conf";

/// The shared secret: 32–1024 random bytes generated once per cluster by the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthSecret(Vec<u8>);

impl fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthSecret(<{} bytes>)", self.0.len())
    }
}

/// Bytes that do not make an auth secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Too short or too long.
    #[error("a BeeGFS auth secret has {AUTH_SECRET_MIN} to {AUTH_SECRET_MAX} bytes, got {len}")]
    Length {
        /// The length given.
        len: usize,
    },
    /// Every byte the same: not random.
    #[error("the BeeGFS auth secret bytes are all the same; they are not random")]
    NotRandom,
}

impl AuthSecret {
    /// Checks `random` (from the caller's CSPRNG).
    pub fn new(random: Vec<u8>) -> Result<Self, SecretError> {
        if !(AUTH_SECRET_MIN..=AUTH_SECRET_MAX).contains(&random.len()) {
            return Err(SecretError::Length { len: random.len() });
        }
        if random.iter().all(|b| *b == random[0]) {
            return Err(SecretError::NotRandom);
        }
        Ok(Self(random))
    }

    /// The bytes (for writing the file).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What the planner cannot know from the cluster file: bytes the caller reads or makes.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The auth secret (required when `auth` is on).
    pub auth: Option<AuthSecret>,
    /// The TLS certificate (8.x with `tls`).
    pub tls_cert: Option<Vec<u8>>,
    /// The TLS private key (8.x with `tls`); secret.
    pub tls_key: Option<Vec<u8>>,
    /// The repository signing key (packages from a repository with `key`).
    pub repo_key: Option<Vec<u8>>,
}

/// The planner was not given what it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The cluster has no BeeGFS.
    #[error("the cluster file has no (enabled) `beegfs` section")]
    NoBeegfs,
    /// A config file was refused.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// An input is missing.
    #[error("the BeeGFS plan needs {0}")]
    MissingInput(&'static str),
}

/// The whole deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupPlan {
    /// The release.
    pub release: Release,
    /// What each node runs, in cluster order.
    pub roles: Vec<(String, Roles)>,
    /// The phases, in order (`prepare`, `management`, `servers`, `clients`; one without
    /// hosts is left out): all hosts of a phase at once, the next when all succeeded.
    pub phases: Vec<Phase>,
}

impl SetupPlan {
    /// The steps of one node, phase by phase.
    pub fn node_steps(&self, node: &str) -> Vec<(&'static str, &HostPlan)> {
        self.phases
            .iter()
            .flat_map(|p| {
                p.hosts
                    .iter()
                    .filter(|h| h.host == node)
                    .map(move |h| (p.name, h))
            })
            .collect()
    }
}

/// The Debian packages a node needs.
pub fn packages(roles: &Roles, release: Release) -> Vec<&'static str> {
    let mut p = Vec::new();
    if roles.mgmtd {
        p.push("beegfs-mgmtd");
    }
    if roles.meta.is_some() {
        p.push("beegfs-meta");
    }
    if roles.storage.is_some() {
        p.push("beegfs-storage");
    }
    if roles.client {
        p.push("beegfs-client");
        if !release.is_v8() {
            p.push("beegfs-helperd");
        }
    }
    // The release's tools where the deployment asks whether every server registered (the
    // management node) and where `check beegfs` runs them (clients).
    if roles.client || roles.mgmtd {
        p.push(if release.is_v8() {
            "beegfs-tools"
        } else {
            "beegfs-utils"
        });
    }
    p
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| (*s).to_owned()).collect()
}

/// `sh -c` with a fixed script; every variable part is a positional argument.
fn guarded(script: &str, args: &[String]) -> RunCommand {
    let mut v = argv(&["/bin/sh", "-c", script, "sh"]);
    v.extend(args.iter().cloned());
    RunCommand::new(v)
}

/// Installs the packages in `$@` unless all are installed.
const INSTALL_MISSING: &str = "for p; do dpkg-query -W -f '${db:Status-Abbrev}' \"$p\" 2>/dev/null | grep -q '^ii' || m=1; done; [ -z \"${m:-}\" ] || DEBIAN_FRONTEND=noninteractive exec apt-get install -y --no-install-recommends \"$@\"";

/// Fails, naming them, when packages in `$@` are not installed.
const REQUIRE_INSTALLED: &str = "m=; for p; do dpkg-query -W -f '${db:Status-Abbrev}' \"$p\" 2>/dev/null | grep -q '^ii' || m=\"$m $p\"; done; [ -z \"$m\" ] || { echo \"BeeGFS packages not installed:$m\" >&2; exit 1; }";

fn package_steps(
    mut plan: HostPlan,
    cluster: &Cluster,
    pkgs: &[&str],
    inputs: &Inputs,
) -> Result<HostPlan, PlanError> {
    let Some(b) = &cluster.beegfs else {
        return Err(PlanError::NoBeegfs);
    };
    let names: Vec<String> = pkgs.iter().map(|s| (*s).to_owned()).collect();
    match &b.packages {
        BeegfsPackageSource::Preinstalled | BeegfsPackageSource::Debs { .. } => {
            // Baked into the image: make a missing package a clear failure here rather than
            // a missing unit later.
            plan = plan.step("packages", guarded(REQUIRE_INSTALLED, &names).check_only());
        }
        BeegfsPackageSource::Repo {
            url,
            suite,
            component,
            key,
        } => {
            let mut triggers = vec!["apt-source"];
            let options = if key.is_some() {
                let bytes = inputs
                    .repo_key
                    .clone()
                    .ok_or(PlanError::MissingInput("the repository's signing key"))?;
                plan = plan
                    .step(
                        "apt-keyrings",
                        EnsureDirectory::new("/etc/apt/keyrings", 0o755),
                    )
                    .step("apt-key", EnsureFile::new(REPO_KEY_PATH, bytes, 0o644));
                triggers.push("apt-key");
                format!("signed-by={REPO_KEY_PATH}")
            } else {
                "trusted=yes".to_owned()
            };
            let line = format!(
                "# written by hpc-up: BeeGFS {}\ndeb [arch=amd64 {options}] {url} {suite} {component}\n",
                b.version
            );
            plan = plan
                .step("apt-source", EnsureFile::new(REPO_LIST_PATH, line, 0o644))
                .step(
                    "apt-update",
                    RunCommand::new(argv(&["apt-get", "update", "-q"])).when_changed(triggers),
                )
                .step("packages", guarded(INSTALL_MISSING, &names));
        }
    }
    Ok(plan)
}

fn stamp(files: &[&NodeFile]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(&f.content);
        h.update([0]);
    }
    let digest = h.finalize();
    let mut s = String::with_capacity(65);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s.push('\n');
    s
}

/// The whole BeeGFS deployment of `cluster` as host steps. Idempotent: on a second run
/// every file is unchanged, directory initialisation and `--init` are skipped (their
/// results exist), services are already running and are not restarted.
pub fn setup_plan(cluster: &Cluster, inputs: &Inputs) -> Result<SetupPlan, PlanError> {
    let Some(b) = &cluster.beegfs else {
        return Err(PlanError::NoBeegfs);
    };
    let release = Release::from_version(b.version);
    let roles = roles(cluster);
    let mut configs = config_files(cluster)?;
    let auth_file = if b.auth {
        let secret = inputs
            .auth
            .as_ref()
            .ok_or(PlanError::MissingInput("the auth secret"))?;
        Some(NodeFile {
            path: AUTH_FILE.to_owned(),
            content: secret.bytes().to_vec(),
            mode: 0o400,
            secret: true,
        })
    } else {
        None
    };
    let tls = if b.tls && release.is_v8() {
        let cert = inputs
            .tls_cert
            .clone()
            .ok_or(PlanError::MissingInput("the TLS certificate"))?;
        let key = inputs
            .tls_key
            .clone()
            .ok_or(PlanError::MissingInput("the TLS key"))?;
        Some((cert, key))
    } else {
        None
    };
    let mgmt_ip = cluster
        .node(b.management.as_str())
        .map(|n| n.ip.to_string())
        .unwrap_or_default();

    let mut prepare = Vec::new();
    let mut management = Vec::new();
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (node, r) in &roles {
        let mut files = configs.remove(node).unwrap_or_default();
        files.extend(auth_file.clone());
        if let Some((cert, key)) = &tls {
            // The CLI on clients checks the server with the certificate.
            if r.mgmtd || r.client {
                files.push(NodeFile {
                    path: TLS_CERT_FILE.to_owned(),
                    content: cert.clone(),
                    mode: 0o644,
                    secret: false,
                });
            }
            if r.mgmtd {
                files.push(NodeFile {
                    path: TLS_KEY_FILE.to_owned(),
                    content: key.clone(),
                    mode: 0o400,
                    secret: true,
                });
            }
        }
        let file_for = |path: &str| files.iter().find(|f| f.path == path);
        let inputs_of = |d: Daemon| -> Vec<&NodeFile> {
            let mut v: Vec<&NodeFile> = Vec::new();
            v.extend(file_for(&format!(
                "{CONFIG_DIR}/{}",
                d.config_file(release)
            )));
            v.extend(file_for(AUTH_FILE));
            if d == Daemon::Client {
                v.extend(file_for(crate::render::MOUNTS_FILE));
            }
            if d == Daemon::Mgmtd {
                v.extend(file_for(TLS_CERT_FILE));
                v.extend(file_for(TLS_KEY_FILE));
            }
            v
        };

        // Phase 1: packages, files, directory initialisation.
        let mut p = HostPlan::new(node.as_str());
        p = package_steps(p, cluster, &packages(r, release), inputs)?;
        p = p.step("beegfs-dir", EnsureDirectory::new(CONFIG_DIR, 0o755));
        for f in &files {
            let mut e = EnsureFile::new(f.path.as_str(), f.content.clone(), f.mode);
            if f.secret {
                e = e.secret();
            }
            p = p.step(file_step_id(&f.path), e);
        }
        if r.mgmtd {
            p = p.step(
                "mgmtd-dir",
                EnsureDirectory::new(b.management_dir.as_str(), mgmtd_dir_mode(release)),
            );
            if release.is_v8() {
                let db = format!("{}/{MGMTD_DB_NAME}", b.management_dir.trim_end_matches('/'));
                let mut args = argv(&["/opt/beegfs/sbin/beegfs-mgmtd", "--init", "--config-file"]);
                args.push(format!("{CONFIG_DIR}/beegfs-mgmtd.toml"));
                p = p
                    .step("mgmtd-init", RunCommand::new(args).unless_exists(db))
                    .step(
                        "mgmtd-dropin-dir",
                        EnsureDirectory::new("/etc/systemd/system/beegfs-mgmtd.service.d", 0o755),
                    )
                    .step(
                        "mgmtd-dropin",
                        EnsureFile::new(
                            MGMTD_DROPIN,
                            "# written by hpc-up: log as beegfs-mgmtd.toml says (stderr reaches the journal;\n# the packaged --log-target=journald panics where journald is absent)\n[Service]\nExecStart=\nExecStart=/opt/beegfs/sbin/beegfs-mgmtd\n",
                            0o644,
                        ),
                    )
                    .step(
                        "daemon-reload",
                        RunCommand::new(argv(&["systemctl", "daemon-reload"]))
                            .when_changed(["mgmtd-dropin"]),
                    );
            } else {
                let dir = b.management_dir.clone();
                let format = format!("{dir}/format.conf");
                let mut args = argv(&["/opt/beegfs/sbin/beegfs-setup-mgmtd", "-C", "-p"]);
                args.push(dir);
                p = p.step("mgmtd-setup", RunCommand::new(args).unless_exists(format));
            }
        }
        if let Some(id) = r.meta {
            let dir = b.metadata_dir.clone();
            p = p.step("meta-dir", EnsureDirectory::new(dir.as_str(), 0o755));
            let format = format!("{dir}/format.conf");
            let mut args = argv(&["/opt/beegfs/sbin/beegfs-setup-meta", "-C", "-p"]);
            args.extend([
                dir,
                "-s".into(),
                id.to_string(),
                "-m".into(),
                mgmt_ip.clone(),
            ]);
            p = p.step("meta-setup", RunCommand::new(args).unless_exists(format));
        }
        if let (Some(id), Some(target)) = (r.storage, r.target_id()) {
            let dir = b.storage_dir.clone();
            p = p.step(
                "storage-dir",
                EnsureDirectory::new(dir.as_str(), STORAGE_DIR_MODE),
            );
            let format = format!("{dir}/format.conf");
            let mut args = argv(&["/opt/beegfs/sbin/beegfs-setup-storage", "-C", "-p"]);
            args.extend([
                dir,
                "-s".into(),
                id.to_string(),
                "-i".into(),
                target.to_string(),
                "-m".into(),
                mgmt_ip.clone(),
            ]);
            p = p.step("storage-setup", RunCommand::new(args).unless_exists(format));
        }
        p = p.step("stamp-dir", EnsureDirectory::new(STAMP_DIR, 0o700));
        prepare.push(p);

        // Later phases: a stamp per service (restart when an input changed), then the service.
        let service = |plan: HostPlan, d: Daemon| {
            let id = format!("{}-inputs", d.short());
            plan.step(
                id.as_str(),
                EnsureFile::new(
                    format!("{STAMP_DIR}/{}.sha256", d.service()),
                    stamp(&inputs_of(d)),
                    0o600,
                ),
            )
            .step(
                d.service(),
                EnsureService::started(d.service()).restart_on([id]),
            )
        };
        if r.mgmtd {
            management.push(service(HostPlan::new(node.as_str()), Daemon::Mgmtd));
        }
        if r.meta.is_some() || r.storage.is_some() {
            let mut p = HostPlan::new(node.as_str());
            if r.meta.is_some() {
                p = service(p, Daemon::Meta);
            }
            if r.storage.is_some() {
                p = service(p, Daemon::Storage);
            }
            servers.push(p);
        }
        if r.client {
            let mut p = HostPlan::new(node.as_str());
            if !release.is_v8() {
                p = service(p, Daemon::Helperd);
            }
            // The client service builds the module when needed, loads it and mounts every
            // line of beegfs-mounts.conf; then the mount is checked.
            p = service(p, Daemon::Client).step(
                "mounted",
                RunCommand::new(argv(&[
                    "findmnt",
                    "--types",
                    "beegfs",
                    "--mountpoint",
                    b.mount_point.as_str(),
                ]))
                .verify(),
            );
            clients.push(p);
        }
    }
    let phases = [
        ("prepare", prepare),
        ("management", management),
        ("servers", servers),
        ("clients", clients),
    ]
    .into_iter()
    .filter(|(_, hosts)| !hosts.is_empty())
    .map(|(name, hosts)| Phase::new(name, hosts))
    .collect();
    Ok(SetupPlan {
        release,
        roles,
        phases,
    })
}

/// The mode the daemons give their directories when they start (observed with the real
/// 7.4.7 and 8.1.0 daemons); hpc-up asks for the same, or every re-run would change it back.
/// The 7.x management daemon makes its directory 0755; the 8.x one leaves it alone.
fn mgmtd_dir_mode(release: Release) -> u32 {
    if release.is_v8() { 0o700 } else { 0o755 }
}

/// The storage daemon makes its target directory 0700 when it starts.
const STORAGE_DIR_MODE: u32 = 0o700;

fn file_step_id(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// A readable list of one host plan's steps, for `hpc-up render` (secret contents shown as
/// `<secret>`; other file contents as size and digest, since the files are rendered beside).
pub fn describe(plan: &HostPlan) -> String {
    let mut out = String::new();
    for s in &plan.steps {
        let _ = write!(out, "{:<18} ", s.id);
        match &s.kind {
            StepKind::Directory(d) => {
                let _ = write!(out, "directory {} {:04o}", d.path, d.mode);
            }
            StepKind::File(f) => {
                let what = if f.secret {
                    "<secret>".to_owned()
                } else {
                    format!(
                        "{} bytes, sha256 {}",
                        f.content.len(),
                        stamp_bytes(&f.content)
                    )
                };
                let _ = write!(out, "file {} {:04o} {what}", f.path, f.mode);
            }
            StepKind::Command(c) => {
                let _ = write!(out, "run {}", hpc_remote::quote_argv(&c.argv));
                match &c.when {
                    RunWhen::Changed(ids) => {
                        let _ = write!(out, "  (when changed: {})", ids.join(", "));
                    }
                    RunWhen::Missing(path) => {
                        let _ = write!(out, "  (unless {path} exists)");
                    }
                    RunWhen::Check => out.push_str("  (check)"),
                    RunWhen::Verify => out.push_str("  (verify)"),
                    RunWhen::Always => {}
                }
            }
            StepKind::Service(svc) => {
                let _ = write!(out, "service {} enabled+started", svc.name);
                if !svc.restart_on.is_empty() {
                    let _ = write!(
                        out,
                        "  (restart when changed: {})",
                        svc.restart_on.join(", ")
                    );
                }
            }
            StepKind::Mount(m) => {
                let _ = write!(out, "mount {}", m.fstab_line());
            }
        }
        out.push('\n');
    }
    out
}

fn stamp_bytes(b: &[u8]) -> String {
    let d = Sha256::digest(b);
    d.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
