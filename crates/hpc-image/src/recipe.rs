//! The recipe of a guest image (pure): what goes in, the mmdebstrap command that builds it,
//! and the cache key that says whether an existing image is this recipe's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use hpc_config::types::ByteSize;
use hpc_config::{Cluster, DebianRelease};
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

/// Filesystem label of the root filesystem (`root=LABEL=…` on the kernel command line).
pub const ROOT_LABEL: &str = "hpcroot";

/// What every image has: systemd, networking, OpenSSH, the cloud kernel with an initramfs
/// that carries the virtio drivers, and the HPC packages a cluster needs at deploy time
/// (guests have no network access, so nothing can be installed later). The names are the
/// same in bookworm and trixie (checked against both releases' package indexes).
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

/// The headers of [`BASE_PACKAGES`]' kernel (`linux-image-cloud-amd64`), for images that
/// build a kernel module.
pub const KERNEL_HEADERS_PACKAGE: &str = "linux-headers-cloud-amd64";

/// Services the packages enable that must not start before hpc-up configures them.
pub const DISABLED_SERVICES: &[&str] = &["slurmctld", "slurmd", "slurmdbd", "munge", "mariadb"];

/// Everything that decides an image's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The Debian release (mmdebstrap's suite).
    pub release: DebianRelease,
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
    /// Scripts run as root inside the image's root (`sh`, in order) after the local `.deb`
    /// files are installed, each with a name for its log line (e.g. building a kernel module
    /// for the image's kernel). Part of the cache key.
    pub scripts: Vec<ImageScript>,
}

/// A script run inside the image's root while it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageScript {
    /// What it does, in a few words (`beegfs-client-module`).
    pub name: String,
    /// The script (POSIX `sh`).
    pub script: String,
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
            release: cluster.image.release,
            mirror: cluster.image.mirror.clone(),
            packages,
            debs: cluster.image.debs.clone(),
            size: cluster.image.size,
            authorized_key: authorized_key.trim().to_owned(),
            scripts: Vec::new(),
        }
    }

    /// The suite mmdebstrap installs (`bookworm`, `trixie`).
    pub fn suite(&self) -> &'static str {
        self.release.as_str()
    }

    /// The cache key: a hash of the recipe (release included), the build steps' version and
    /// the content of every local `.deb` (given as `(path, sha256)` by the caller, who reads
    /// them). The release enters as the `suite` line it always had, so a bookworm recipe's
    /// key is the one it was before releases could be chosen.
    pub fn cache_key(&self, deb_hashes: &[(PathBuf, String)]) -> String {
        let mut h = Sha256::new();
        h.update(format!(
            "recipe {RECIPE_VERSION}\nsuite {}\nmirror {}\n",
            self.suite(),
            self.mirror
        ));
        for p in &self.packages {
            h.update(format!("package {p}\n"));
        }
        // A .deb enters by file name and content: the same packages in another directory
        // (another checkout, another machine) make the same image.
        for (path, sum) in deb_hashes {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            h.update(format!("deb {name} {sum}\n"));
        }
        h.update(format!(
            "size {}\nkey {}\n",
            self.size.bytes(),
            self.authorized_key
        ));
        h.update(SEED_SCRIPT);
        h.update(SEED_UNIT);
        h.update(SSH_HOSTKEYS_DROPIN);
        // Only recipes with scripts hash them: the keys of those without stay as they were.
        for s in &self.scripts {
            h.update(format!("script {} {}\n", s.name, s.script.len()));
            h.update(&s.script);
        }
        hex(&h.finalize())
    }

    /// The mmdebstrap command line that builds the root filesystem into `rootfs`.
    /// `key_file` holds [`Recipe::authorized_key`]; `debs_dir` is where the local `.deb`
    /// files were copied (installed from inside the chroot). The suite is the recipe's
    /// release; trixie's hooks also mask `sshd-keygen.service` (new in trixie's
    /// openssh-server: it would make RSA and ECDSA host keys on every first boot) and list
    /// the virtio modules in `/etc/modules-load.d/` (trixie's kmod declares `/etc/modules`
    /// obsolete). bookworm's command line is the one it was before releases could be chosen.
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
        a.push(OsString::from(self.suite()));
        a.push(rootfs.as_os_str().to_owned());
        a.push(OsString::from(&self.mirror));
        a
    }

    /// The virtio modules loaded at boot. bookworm: appended to `/etc/modules` (as images
    /// always had it). trixie's kmod declares `/etc/modules` obsolete: a modules-load.d file.
    fn modules_hook(&self) -> String {
        const MODULES: &str = "virtiofs\\nvirtio_net\\nvirtio_blk\\n";
        match self.release {
            DebianRelease::Bookworm => format!("printf '{MODULES}' >> \"$1/etc/modules\""),
            DebianRelease::Trixie => format!(
                "mkdir -p \"$1/etc/modules-load.d\" && printf '{MODULES}' > \"$1/etc/modules-load.d/hpc-up.conf\""
            ),
        }
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
        for (i, s) in self.scripts.iter().enumerate() {
            let file = format!("/tmp/hpc-up-script-{i}.sh");
            h.push(format!(
                "cat > \"$1{file}\" <<'HPCUPEOF'\n{}\nHPCUPEOF\necho {} >&2 && chroot \"$1\" /bin/sh {file} && rm -f \"$1{file}\"",
                s.script.trim_end(),
                shell_quote(&format!("image script: {}", s.name)),
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
        ]);
        if self.release == DebianRelease::Trixie {
            // trixie's openssh-server adds sshd-keygen.service, which runs `ssh-keygen -A`
            // (RSA included: the cost the drop-in above avoids) on first boot, and every boot
            // of a node is a first boot (empty machine-id below).
            h.push("chroot \"$1\" systemctl mask sshd-keygen.service".to_owned());
        }
        h.extend([
            "truncate -s0 \"$1/etc/machine-id\"".to_owned(),
            // root filesystem, virtio modules
            format!("printf 'LABEL={ROOT_LABEL} / ext4 rw,relatime 0 1\\n' > \"$1/etc/fstab\""),
            self.modules_hook(),
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
        // a .deb by name and content, wherever it is
        assert_eq!(
            r.cache_key(&[("/a/x.deb".into(), "00".into())]),
            r.cache_key(&[("/b/c/x.deb".into(), "00".into())])
        );
        assert_ne!(
            r.cache_key(&[("/a/x.deb".into(), "00".into())]),
            r.cache_key(&[("/a/x.deb".into(), "01".into())])
        );
        let mut bigger = r.clone();
        bigger.size = ByteSize::from_gib(8);
        assert_ne!(k, bigger.cache_key(&[]));
    }

    #[test]
    fn the_release_comes_from_the_file() {
        let r = Recipe::for_cluster(&cluster(""), "k");
        assert_eq!(r.release, DebianRelease::Bookworm);
        assert_eq!(r.suite(), "bookworm");
        let r = Recipe::for_cluster(&cluster("  release: trixie\n"), "k");
        assert_eq!(r.release, DebianRelease::Trixie);
        assert_eq!(r.suite(), "trixie");
        // Same package list: every base package has the same name in both releases.
        assert_eq!(&r.packages[..], BASE_PACKAGES);
    }

    #[test]
    fn bookworm_key_is_the_one_from_before_releases() {
        // The key this recipe had when bookworm was the only release: images built then
        // stay up to date.
        let r = Recipe::for_cluster(&cluster(""), "ssh-ed25519 AAAA k");
        assert_eq!(
            r.cache_key(&[]),
            "7ccd5bc3dbff93783b2dab16d17b9df29aad022a6b29f58278ce1cfc449b572a"
        );
        let explicit = Recipe::for_cluster(&cluster("  release: bookworm\n"), "ssh-ed25519 AAAA k");
        assert_eq!(explicit.cache_key(&[]), r.cache_key(&[]));
    }

    #[test]
    fn scripts_run_after_the_debs_and_enter_the_key() {
        let plain = Recipe::for_cluster(&cluster(""), "ssh-ed25519 AAAA k");
        let mut r = plain.clone();
        r.debs.push("/d/x.deb".into());
        r.scripts.push(ImageScript {
            name: "module".into(),
            script: "echo 'it''s' built\n".into(),
        });
        assert_ne!(plain.cache_key(&[]), r.cache_key(&[]));
        let mut other = r.clone();
        other.scripts[0].script.push_str("true\n");
        assert_ne!(other.cache_key(&[]), r.cache_key(&[]));
        let h = hooks(&r);
        let debs = h.iter().position(|h| h.contains("/tmp/hpc-debs")).unwrap();
        let script = h
            .iter()
            .position(|h| h.contains("hpc-up-script-0.sh"))
            .unwrap();
        assert_eq!(script, debs + 1, "{h:#?}");
        assert!(
            h[script].contains("\necho 'it''s' built\nHPCUPEOF\n"),
            "{}",
            h[script]
        );
        assert!(h[script].contains("chroot \"$1\" /bin/sh /tmp/hpc-up-script-0.sh"));
    }

    #[test]
    fn trixie_has_its_own_key() {
        let b = Recipe::for_cluster(&cluster(""), "ssh-ed25519 AAAA k");
        let t = Recipe::for_cluster(&cluster("  release: trixie\n"), "ssh-ed25519 AAAA k");
        assert_ne!(b.cache_key(&[]), t.cache_key(&[]));
        assert_eq!(t.cache_key(&[]), t.clone().cache_key(&[]));
    }

    fn hooks(r: &Recipe) -> Vec<String> {
        r.mmdebstrap_argv(Path::new("/w/rootfs"), Path::new("/w/k"), Path::new("/w/d"))
            .into_iter()
            .filter_map(|a| {
                a.to_str()
                    .and_then(|a| a.strip_prefix("--customize-hook="))
                    .map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn trixie_hooks_differ_where_trixie_does() {
        let b = hooks(&Recipe::for_cluster(&cluster(""), "k"));
        let t = hooks(&Recipe::for_cluster(&cluster("  release: trixie\n"), "k"));
        // trixie's sshd-keygen.service would make RSA and ECDSA host keys at every first boot.
        let mask = "chroot \"$1\" systemctl mask sshd-keygen.service";
        assert!(t.iter().any(|h| h == mask), "{t:#?}");
        assert!(!b.iter().any(|h| h.contains("sshd-keygen")), "{b:#?}");
        // Modules: /etc/modules on bookworm (as before), modules-load.d on trixie.
        assert!(
            b.iter().any(|h| h.ends_with(">> \"$1/etc/modules\"")),
            "{b:#?}"
        );
        assert!(!t.iter().any(|h| h.contains("/etc/modules\"")), "{t:#?}");
        assert!(
            t.iter()
                .any(|h| h.contains("virtio_blk")
                    && h.ends_with("/etc/modules-load.d/hpc-up.conf\"")),
            "{t:#?}"
        );
        // Nothing else differs.
        assert_eq!(t.len(), b.len() + 1);
        let same = |h: &&String| !h.contains("sshd-keygen") && !h.contains("modules");
        assert_eq!(
            b.iter().filter(same).collect::<Vec<_>>(),
            t.iter().filter(same).collect::<Vec<_>>()
        );
    }

    #[test]
    fn trixie_argv_names_the_trixie_suite() {
        let r = Recipe::for_cluster(&cluster("  release: trixie\n"), "k");
        let argv = r.mmdebstrap_argv(Path::new("/w/r"), Path::new("/w/k"), Path::new("/w/d"));
        let n = argv.len();
        assert_eq!(argv[n - 3], "trixie");
        assert_eq!(argv[n - 1], "http://deb.debian.org/debian");
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
