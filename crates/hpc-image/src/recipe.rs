//! The recipe of a guest image (pure): what goes in, the mmdebstrap command that builds it,
//! and the cache key that says whether an existing image is this recipe's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use hpc_config::Cluster;
use hpc_config::types::ByteSize;
use sha2::{Digest, Sha256};

/// Bumped whenever the build steps change in a way the inputs do not show.
pub const RECIPE_VERSION: u32 = 2;

/// sshd's drop-in: at first boot it makes the node's own ed25519 host key (and no other).
const SSH_HOSTKEYS_DROPIN: &str = "[Service]\nExecStartPre=\nExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key'\nExecStartPre=/usr/sbin/sshd -t\n";

/// `/usr/local/sbin/hpc-up-seed`: applies the node's seed disk at boot (see
/// `hpc_libvirt::seed_path`). Part of the cache key.
pub(crate) const SEED_SCRIPT: &str = include_str!("seed/hpc-up-seed");

/// `/etc/systemd/system/hpc-up-seed.service`, enabled: runs [`SEED_SCRIPT`] once per boot,
/// after sshd is up and before the SLURM, munge and MariaDB services it may start (whoever
/// logs in to configure the node waits for the unit). Part of the cache key.
pub(crate) const SEED_UNIT: &str = include_str!("seed/hpc-up-seed.service");

/// The Debian release images are built from.
pub const SUITE: &str = "bookworm";

/// Filesystem label of the root filesystem (`root=LABEL=…` on the kernel command line).
pub const ROOT_LABEL: &str = "hpcroot";

/// What every image has: systemd, networking, OpenSSH, the cloud kernel with an initramfs
/// that carries the virtio drivers, and the HPC packages a cluster needs at deploy time
/// (guests have no network access, so nothing can be installed later).
pub const BASE_PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "dbus",
    "systemd-resolved",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "kmod",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "procps",
    "less",
    "netbase",
    "ca-certificates",
    "python3",
    // SLURM, munge and accounting
    "slurmctld",
    "slurmd",
    "slurm-client",
    "slurmdbd",
    "munge",
    "mariadb-server",
];

/// Services the packages enable that must not start before hpc-up configures them.
pub const DISABLED_SERVICES: &[&str] = &["slurmctld", "slurmd", "slurmdbd", "munge", "mariadb"];

/// Everything that decides an image's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Debian mirror.
    pub mirror: String,
    /// All packages, base first, then the cluster's extras (sorted, deduplicated).
    pub packages: Vec<String>,
    /// Local `.deb` files to install.
    pub debs: Vec<PathBuf>,
    /// Root filesystem size.
    pub size: ByteSize,
    /// The public key that may log in as root.
    pub authorized_key: String,
}

impl Recipe {
    /// The recipe for `cluster`, allowing `authorized_key` to log in.
    pub fn for_cluster(cluster: &Cluster, authorized_key: &str) -> Self {
        let mut extra: Vec<String> = cluster.image.packages.clone();
        extra.sort();
        extra.dedup();
        let mut packages: Vec<String> = BASE_PACKAGES.iter().map(|s| (*s).to_owned()).collect();
        packages.extend(
            extra
                .into_iter()
                .filter(|p| !BASE_PACKAGES.contains(&p.as_str())),
        );
        Self {
            mirror: cluster.image.mirror.clone(),
            packages,
            debs: cluster.image.debs.clone(),
            size: cluster.image.size,
            authorized_key: authorized_key.trim().to_owned(),
        }
    }

    /// The cache key: a hash of the recipe, the build steps' version and the content of
    /// every local `.deb` (given as `(path, sha256)` by the caller, who reads them).
    pub fn cache_key(&self, deb_hashes: &[(PathBuf, String)]) -> String {
        let mut h = Sha256::new();
        h.update(format!(
            "recipe {RECIPE_VERSION}\nsuite {SUITE}\nmirror {}\n",
            self.mirror
        ));
        for p in &self.packages {
            h.update(format!("package {p}\n"));
        }
        for (path, sum) in deb_hashes {
            h.update(format!("deb {} {sum}\n", path.display()));
        }
        h.update(format!(
            "size {}\nkey {}\n",
            self.size.bytes(),
            self.authorized_key
        ));
        h.update(SEED_SCRIPT);
        h.update(SEED_UNIT);
        h.update(SSH_HOSTKEYS_DROPIN);
        hex(&h.finalize())
    }

    /// The mmdebstrap command line that builds the root filesystem into `rootfs`.
    /// `key_file` holds [`Recipe::authorized_key`]; `debs_dir` is where the local `.deb`
    /// files were copied (installed from inside the chroot).
    pub fn mmdebstrap_argv(
        &self,
        rootfs: &Path,
        key_file: &Path,
        debs_dir: &Path,
    ) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(OsString::from(s));
        push("--variant=minbase");
        push("--mode=root");
        push("--format=directory");
        push(&format!("--include={}", self.packages.join(",")));
        push("--aptopt=Acquire::Languages \"none\"");
        push("--dpkgopt=path-exclude=/usr/share/man/*");
        push("--dpkgopt=path-exclude=/usr/share/doc/*");
        push("--dpkgopt=path-exclude=/usr/share/locale/*");
        push("--dpkgopt=path-include=/usr/share/doc/*/copyright");
        // The initramfs must carry the virtio drivers: the cloud kernel builds them as modules.
        push(
            "--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" && echo MODULES=most > \"$1/etc/initramfs-tools/conf.d/modules\"",
        );
        // Packages must not start daemons inside the build chroot.
        push(
            "--essential-hook=printf '#!/bin/sh\\nexit 101\\n' > \"$1/usr/sbin/policy-rc.d\" && chmod 755 \"$1/usr/sbin/policy-rc.d\"",
        );
        for hook in self.customize_hooks(key_file, debs_dir) {
            a.push(OsString::from(format!("--customize-hook={hook}")));
        }
        a.push(OsString::from(SUITE));
        a.push(rootfs.as_os_str().to_owned());
        a.push(OsString::from(&self.mirror));
        a
    }

    fn customize_hooks(&self, key_file: &Path, debs_dir: &Path) -> Vec<String> {
        let q = |p: &Path| shell_quote(&p.display().to_string());
        let mut h = Vec::new();
        if !self.debs.is_empty() {
            h.push(format!(
                "mkdir -p \"$1/tmp/hpc-debs\" && cp {}/*.deb \"$1/tmp/hpc-debs/\" && chroot \"$1\" sh -c 'apt-get install -y --no-install-recommends /tmp/hpc-debs/*.deb' && rm -rf \"$1/tmp/hpc-debs\"",
                q(debs_dir)
            ));
        }
        h.extend([
            // root logs in with the cluster's key only
            "mkdir -p -m 700 \"$1/root/.ssh\"".to_owned(),
            format!("cp {} \"$1/root/.ssh/authorized_keys\"", q(key_file)),
            "chmod 600 \"$1/root/.ssh/authorized_keys\"".to_owned(),
            "mkdir -p \"$1/etc/ssh/sshd_config.d\" && printf 'PermitRootLogin prohibit-password\\nPasswordAuthentication no\\nUseDNS no\\nHostKey /etc/ssh/ssh_host_ed25519_key\\n' > \"$1/etc/ssh/sshd_config.d/hpc-up.conf\"".to_owned(),
            // each VM gets its own host keys at first boot, and its own machine-id
            "rm -f \"$1\"/etc/ssh/ssh_host_*".to_owned(),
            // One host key, ed25519, made at first boot: `ssh-keygen -A` also makes RSA-3072,
            // whose prime search costs 4 s or more of an emulated CPU, and a varying amount
            // of it (it made one node's SSH 25 s later than its peers' in bench/bringup).
            format!(
                "mkdir -p \"$1/etc/systemd/system/ssh.service.d\" && cat > \"$1/etc/systemd/system/ssh.service.d/hostkeys.conf\" <<'HPCUPEOF'\n{SSH_HOSTKEYS_DROPIN}HPCUPEOF\n"
            ),
            "truncate -s0 \"$1/etc/machine-id\"".to_owned(),
            // root filesystem, virtio modules
            format!("printf 'LABEL={ROOT_LABEL} / ext4 rw,relatime 0 1\\n' > \"$1/etc/fstab\""),
            "printf 'virtiofs\\nvirtio_net\\nvirtio_blk\\n' >> \"$1/etc/modules\"".to_owned(),
            // hostname from the kernel command line (systemd.hostname=), addresses from DHCP
            "rm -f \"$1/etc/hostname\"".to_owned(),
            "mkdir -p \"$1/etc/systemd/network\" && printf '[Match]\\nName=en* eth*\\n[Network]\\nDHCP=ipv4\\nLLMNR=no\\n[DHCPv4]\\nUseHostname=no\\nUseDomains=yes\\n' > \"$1/etc/systemd/network/10-dhcp.network\"".to_owned(),
            "mkdir -p \"$1/etc/systemd/resolved.conf.d\" && printf '[Resolve]\\nLLMNR=no\\nMulticastDNS=no\\n' > \"$1/etc/systemd/resolved.conf.d/hpc-up.conf\"".to_owned(),
            "ln -sf /run/systemd/resolve/stub-resolv.conf \"$1/etc/resolv.conf\"".to_owned(),
            format!(
                "mkdir -p \"$1/usr/local/sbin\" && cat > \"$1/usr/local/sbin/hpc-up-seed\" <<'HPCUPEOF'\n{SEED_SCRIPT}HPCUPEOF\nchmod 0755 \"$1/usr/local/sbin/hpc-up-seed\""
            ),
            format!(
                "cat > \"$1/etc/systemd/system/hpc-up-seed.service\" <<'HPCUPEOF'\n{SEED_UNIT}HPCUPEOF\n"
            ),
            "chroot \"$1\" systemctl enable systemd-networkd systemd-resolved ssh hpc-up-seed".to_owned(),
            format!(
                "chroot \"$1\" systemctl disable {} || true",
                DISABLED_SERVICES.join(" ")
            ),
            // Their SysV init scripts only make every `systemctl enable`/`disable` run
            // systemd-sysv-install (update-rc.d, Perl): 10-25 s each on an emulated CPU, most
            // of what the munge phase used to take. systemd starts them from their units.
            format!(
                "for s in {}; do chroot \"$1\" update-rc.d -f \"$s\" remove >/dev/null 2>&1 || true; rm -f \"$1/etc/init.d/$s\"; done",
                DISABLED_SERVICES.join(" ")
            ),
            // the time sync unit waits for a network the lab does not have
            "chroot \"$1\" systemctl mask systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer || true".to_owned(),
            "rm -f \"$1/usr/sbin/policy-rc.d\"".to_owned(),
            "rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*".to_owned(),
        ]);
        h
    }
}

/// Quote `s` for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra: &str) -> Cluster {
        let text = format!(
            "name: t\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage:\n  base: /i/base.qcow2\n  kernel: /i/vmlinuz\n  initrd: /i/initrd.img\n{extra}controller: {{nodes: [{{name: ctl}}]}}\n"
        );
        hpc_config::load_str("t.yaml", &text, &|_| None).unwrap()
    }

    #[test]
    fn packages_are_base_then_sorted_extras() {
        let r = Recipe::for_cluster(
            &cluster("  packages: [zsh, htop, slurmd, htop]\n"),
            "ssh-ed25519 AAAA k",
        );
        let n = BASE_PACKAGES.len();
        assert_eq!(&r.packages[..n], BASE_PACKAGES);
        assert_eq!(&r.packages[n..], ["htop", "zsh"]);
    }

    #[test]
    fn cache_key_follows_every_input() {
        let c = cluster("");
        let r = Recipe::for_cluster(&c, "ssh-ed25519 AAAA k");
        let k = r.cache_key(&[]);
        assert_eq!(k, r.cache_key(&[]));
        assert_eq!(k.len(), 64);
        assert_ne!(
            k,
            Recipe::for_cluster(&c, "ssh-ed25519 BBBB k").cache_key(&[])
        );
        assert_ne!(k, r.cache_key(&[("/x.deb".into(), "00".into())]));
        let mut bigger = r.clone();
        bigger.size = ByteSize::from_gib(8);
        assert_ne!(k, bigger.cache_key(&[]));
    }

    #[test]
    fn argv_ends_with_suite_target_mirror_and_quotes_paths() {
        let r = Recipe::for_cluster(&cluster(""), "k");
        let argv = r.mmdebstrap_argv(
            Path::new("/w/root fs"),
            Path::new("/w/it's.pub"),
            Path::new("/w/debs"),
        );
        let n = argv.len();
        assert_eq!(argv[n - 3], "bookworm");
        assert_eq!(argv[n - 2], "/w/root fs");
        assert_eq!(argv[n - 1], "http://deb.debian.org/debian");
        assert!(
            argv.iter()
                .any(|a| a.to_str().unwrap().contains("cp '/w/it'\\''s.pub'")),
            "{argv:?}"
        );
    }
}
