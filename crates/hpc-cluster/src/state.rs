//! The state directory: everything hpc-up keeps about one cluster on the machine that runs it.
//!
//! ```text
//! <state-dir>/
//!   lock                  held (flock) by every run that changes the cluster
//!   journal.json          libvirt objects this cluster created (hpc_libvirt::Journal)
//!   secrets/   0700       munge.key, slurmdbd.password, beegfs-conn.auth (0600, made once)
//!   ssh/                  id_ed25519(.pub): the cluster's key, unless the file names one;
//!                         known_hosts: the nodes' host keys, pinned on first contact
//!   console/<node>.log    serial consoles (virtlogd)
//!   seed/      0711       <node>.img (0600): what each node applies to itself at boot
//!   pool/                 the nodes' qcow2 overlays (libvirt's storage pool)
//! ```
//!
//! Nothing here is created by reading: [`StateDir::read_secret`] and
//! [`StateDir::existing_identity`] are what `plan` uses, so planning leaves no trace.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hpc_config::Cluster;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The state directory of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

/// Held while a run changes the cluster: an exclusive `flock` on `<state>/lock`.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// The cluster's SSH key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The private key (OpenSSH format).
    pub private: PathBuf,
    /// The public half (`<private>.pub`).
    pub public: PathBuf,
}

impl StateDir {
    /// The state directory at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the cluster's lock (creating the directory): fails at once when another run
    /// holds it.
    pub fn lock(&self, cluster: &str) -> Result<StateLock> {
        fs_err::create_dir_all(&self.root).map_err(Error::io("cannot create", &self.root))?;
        let path = self.root.join("lock");
        let file = fs_err::File::create(&path)
            .map_err(Error::io("cannot open", &path))?
            .into_file();
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(_) => Err(Error::Locked {
                cluster: cluster.to_owned(),
                path,
            }),
        }
    }

    /// The libvirt journal.
    pub fn journal(&self, cluster: &str) -> Result<hpc_libvirt::Journal> {
        Ok(hpc_libvirt::Journal::open(&self.root, cluster)?)
    }

    /// `<state>/secrets`.
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// `<state>/secrets/<name>`, if it was made.
    pub fn read_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.secrets_dir().join(name);
        match fs_err::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", path)(e)),
        }
    }

    /// `<state>/secrets/<name>`: read it, or make it once from `len` random bytes (`encode`
    /// turns them into the file's content) and write it atomically with mode 0600 in a
    /// 0700 directory.
    pub fn secret(
        &self,
        name: &str,
        len: usize,
        encode: fn(Vec<u8>) -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        if let Some(bytes) = self.read_secret(name)? {
            return Ok(bytes);
        }
        let dir = self.secrets_dir();
        private_dir(&dir, 0o700)?;
        let content = encode(random_bytes(len)?);
        let path = dir.join(name);
        // The temporary file is created 0600 and renamed into place.
        write_atomic(&path, &content)?;
        Ok(content)
    }

    /// `<state>/ssh`.
    pub fn ssh_dir(&self) -> PathBuf {
        self.root.join("ssh")
    }

    /// The nodes' pinned host keys (OpenSSH known_hosts format; entries are added on first
    /// contact).
    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }

    /// The cluster's key pair if it exists: the one the file names, else
    /// `<state>/ssh/id_ed25519`. Creates nothing.
    pub fn existing_identity(&self, cluster: &Cluster) -> Option<Identity> {
        let id = self.identity_paths(cluster);
        (id.private.is_file() && id.public.is_file()).then_some(id)
    }

    /// The cluster's key pair: the one the file names (its `.pub` must be beside it), or one
    /// made once with `ssh-keygen` in `<state>/ssh/`.
    pub fn identity(&self, cluster: &Cluster) -> Result<Identity> {
        let id = self.identity_paths(cluster);
        if cluster.ssh.key.is_some() {
            if !id.public.is_file() {
                return Err(Error::Ssh(format!(
                    "the SSH key {} has no public half {} beside it",
                    id.private.display(),
                    id.public.display()
                )));
            }
            return Ok(id);
        }
        if id.private.is_file() && id.public.is_file() {
            return Ok(id);
        }
        let dir = self.ssh_dir();
        fs_err::create_dir_all(&dir).map_err(Error::io("cannot create", &dir))?;
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("hpc-up@{}", cluster.name))
            .arg("-f")
            .arg(&id.private)
            .status()
            .map_err(|e| {
                Error::Ssh(format!(
                    "cannot run ssh-keygen (package openssh-client): {e}"
                ))
            })?;
        if !status.success() {
            return Err(Error::Ssh(format!(
                "ssh-keygen failed making {}",
                id.private.display()
            )));
        }
        Ok(id)
    }

    fn identity_paths(&self, cluster: &Cluster) -> Identity {
        let private = cluster
            .ssh
            .key
            .clone()
            .unwrap_or_else(|| self.ssh_dir().join("id_ed25519"));
        let mut public = private.clone().into_os_string();
        public.push(".pub");
        Identity {
            private,
            public: PathBuf::from(public),
        }
    }

    /// `<state>/console`.
    pub fn console_dir(&self) -> PathBuf {
        hpc_libvirt::console_dir(&self.root)
    }

    /// The last `lines` lines of a node's serial console, or why there are none.
    pub fn console_tail(&self, node: &str, lines: usize) -> String {
        let path = hpc_libvirt::console_log_path(&self.root, node);
        match fs_err::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("(no console log: {e})"),
        }
    }

    /// `<state>/seed`.
    pub fn seed_dir(&self) -> PathBuf {
        hpc_libvirt::seed_dir(&self.root)
    }

    /// Remove what libvirt leaves in the state directory once `down` removed the objects: the
    /// (now empty) pool directory and overlay files of a pool that was never defined, console
    /// logs, seed disks, pinned host keys (new VMs make new ones; the key pair stays, images
    /// trust it), libvirt 9's stale network runtime files, and the directory itself once
    /// only the lock is left.
    pub fn remove_local_leftovers(&self, cluster: &str) -> Result<()> {
        let pool = hpc_libvirt::pool_path(&self.root);
        if pool.is_dir() {
            for e in fs_err::read_dir(&pool).map_err(Error::io("cannot list", &pool))? {
                let p = e.map_err(Error::io("cannot list", &pool))?.path();
                let ours = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&format!("{cluster}-")) && n.ends_with(".qcow2")
                });
                if ours {
                    fs_err::remove_file(&p).map_err(Error::io("cannot remove", &p))?;
                }
            }
            let _ = fs_err::remove_dir(&pool);
        }
        let _ = fs_err::remove_file(self.known_hosts());
        for dir in [self.console_dir(), self.seed_dir()] {
            if dir.is_dir() {
                fs_err::remove_dir_all(&dir).map_err(Error::io("cannot remove", &dir))?;
            }
        }
        // libvirt 9 leaves a network's runtime directory and a dead dnsmasq's pid file
        // behind after the network is removed; the next network of that name trips over them.
        let run = Path::new("/run/libvirt/network");
        let net = hpc_libvirt::network_name(cluster);
        let pid_file = run.join(format!("{net}.pid"));
        let dead = fs_err::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}/exe")).exists());
        if dead {
            let _ = fs_err::remove_file(&pid_file);
        }
        let status_dir = run.join(&net);
        if status_dir.is_dir() && !run.join(format!("{net}.xml")).exists() {
            let _ = fs_err::remove_dir_all(&status_dir);
        }
        let only_lock = fs_err::read_dir(&self.root)
            .map(|rd| rd.filter_map(|e| e.ok()).all(|e| e.file_name() == "lock"))
            .unwrap_or(false);
        if only_lock {
            let _ = fs_err::remove_file(self.root.join("lock"));
            let _ = fs_err::remove_dir(&self.root);
        }
        Ok(())
    }
}

/// Create `dir` (and its parents) and give it `mode`.
pub(crate) fn private_dir(dir: &Path, mode: u32) -> Result<()> {
    fs_err::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("cannot set the mode of", dir))
}

/// `len` random bytes from the operating system.
pub(crate) fn random_bytes(len: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io {
        what: "cannot read random bytes for",
        path: PathBuf::from("a secret"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_secret_is_made_once_private_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().join("state"));
        assert_eq!(s.read_secret("munge.key").unwrap(), None);
        let a = s.secret("munge.key", 64, |b| b).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, vec![0u8; 64]);
        assert_eq!(s.secret("munge.key", 64, |b| b).unwrap(), a);
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&s.secrets_dir()), 0o700);
        assert_eq!(mode(&s.secrets_dir().join("munge.key")), 0o600);
    }

    #[test]
    fn a_second_lock_fails_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path());
        let _held = s.lock("c").unwrap();
        let e = s.lock("c").unwrap_err().to_string();
        assert!(e.contains("cluster `c`") && e.contains("lock"), "{e}");
    }
}
