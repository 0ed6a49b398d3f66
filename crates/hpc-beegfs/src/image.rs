//! What a guest image needs for BeeGFS when the packages are baked into it
//! (`beegfs.packages.debs`): which of the release's `.deb` files go in, and the client
//! module, built for the image's own kernel while the image is built.
//!
//! Building the module in the image, not on the node: the node's CPU is emulated (TCG), where
//! the module build that takes about 90 s natively would take many minutes on every node's
//! first start, and nodes have no network to fetch headers. The build uses the package's
//! own autobuild (`make … auto_rebuild_configured`, the command `beegfs-client start` runs),
//! pointed at the image's kernel instead of the build machine's, and leaves the client
//! service nothing to rebuild: the module sits where the service's `modprobe` finds it and
//! the "force rebuild" flag that the package's postinst sets is cleared. The kernel headers
//! and the compiler (a dependency of `beegfs-client`) stay in the image so that the
//! package's own rebuild still works on the node (about 250 MB more).

use std::collections::BTreeSet;

use hpc_config::Cluster;

use crate::release::Release;
use crate::render::roles;
use crate::setup::packages;

/// Runs inside the image's root (`chroot`, as root) after the BeeGFS packages are installed:
/// builds the client module for every kernel whose headers are in the image, with RDMA only
/// where that kernel has `ib_core` and `rdma_cm` (Debian's cloud kernel has neither), and
/// fails when there is no kernel to build for or the module did not appear.
pub const CLIENT_MODULE_SCRIPT: &str = r#"set -eu
conf=/etc/beegfs/beegfs-client-autobuild.conf
built=
for kdir in /lib/modules/*/build; do
  [ -d "$kdir" ] || continue
  kver=$(basename "$(dirname "$kdir")")
  args="-j$(nproc)"
  if ! modinfo -k "$kver" ib_core >/dev/null 2>&1 || ! modinfo -k "$kver" rdma_cm >/dev/null 2>&1; then
    args="$args BEEGFS_NO_RDMA=1"
  fi
  sed -i "s|^buildArgs=.*|buildArgs=$args|" "$conf"
  for src in /opt/beegfs/src/client/client_module_*/build; do
    [ -f "$src/Makefile" ] || continue
    echo "BeeGFS client module for $kver ($args)"
    make -C "$src" auto_rebuild_configured KRELEASE="$kver" KDIR="$kdir" KMOD_INST_DIR="/lib/modules/$kver/updates/fs/beegfs_autobuild" --silent
    make -C "$src" clean KRELEASE="$kver" KDIR="$kdir" --silent
  done
  if [ ! -e "/lib/modules/$kver/updates/fs/beegfs_autobuild/beegfs.ko" ]; then
    echo "the BeeGFS client module for $kver was not built (no client sources in /opt/beegfs/src/client?)" >&2
    exit 1
  fi
  built="$built $kver"
done
if [ -z "$built" ]; then
  echo "no kernel headers in the image (/lib/modules/*/build): cannot build the BeeGFS client module" >&2
  exit 1
fi
mkdir -p /var/lib/beegfs/client
install -m 644 "$conf" /var/lib/beegfs/client/beegfs-client-autobuild.conf.old
rm -f /var/lib/beegfs/client/force-auto-build
"#;

/// The BeeGFS packages the image must hold for `cluster` (every role of every node, and for
/// 7.x `beegfs-common`, which every 7.x package depends on), sorted. Empty without BeeGFS.
pub fn image_packages(cluster: &Cluster) -> Vec<&'static str> {
    let Some(b) = &cluster.beegfs else {
        return Vec::new();
    };
    let release = Release::from_version(b.version);
    let mut set = BTreeSet::new();
    for (_, r) in roles(cluster) {
        set.extend(packages(&r, release));
    }
    if !set.is_empty() && !release.is_v8() {
        set.insert("beegfs-common");
    }
    set.into_iter().collect()
}

/// Whether an image for `cluster` builds the client module: some node is a client and the
/// packages are baked into the image from `beegfs.packages.debs`.
pub fn builds_client_module(cluster: &Cluster) -> bool {
    cluster.beegfs.as_ref().is_some_and(|b| {
        matches!(b.packages, hpc_config::BeegfsPackageSource::Debs { .. })
            && roles(cluster).iter().any(|(_, r)| r.client)
    })
}

/// A `.deb` file's package and version (`Package:`, `Version:` of its control file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebInfo {
    /// The package name.
    pub package: String,
    /// The version as the package states it (`20:8.1.0`).
    pub version: String,
}

impl DebInfo {
    /// The upstream part of the version: no epoch (`20:`) and no Debian revision (`-1`).
    pub fn upstream(&self) -> &str {
        let v = self.version.split_once(':').map_or(&*self.version, |x| x.1);
        v.rsplit_once('-').map_or(v, |x| x.0)
    }
}

/// Why the `.deb` files of a directory cannot make the image's BeeGFS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DebsError {
    /// A package the cluster needs has no file.
    #[error("no .deb file for {package} (BeeGFS {version}); the nodes' roles need {needed}")]
    Missing {
        /// The package.
        package: String,
        /// The release the cluster file names.
        version: String,
        /// Every package needed.
        needed: String,
    },
    /// A file holds another release.
    #[error("{file} is {package} {found}, but the cluster file asks for BeeGFS {version}")]
    WrongVersion {
        /// The file.
        file: String,
        /// Its package.
        package: String,
        /// Its version.
        found: String,
        /// The release the cluster file names.
        version: String,
    },
    /// Two files for one package.
    #[error("two .deb files for {package}: {first} and {second}")]
    Duplicate {
        /// The package.
        package: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
}

/// Chooses, from `debs` (each file with its control fields), the files of the packages
/// [`image_packages`] needs, checking that each is there once and in the release the cluster
/// file names. Other files are left out: a vendor's directory also holds packages no node
/// needs, some of which conflict (`beegfs-client` and `beegfs-client-dkms`).
pub fn choose_debs<P: Clone + std::fmt::Display>(
    cluster: &Cluster,
    debs: &[(P, DebInfo)],
) -> Result<Vec<P>, Vec<DebsError>> {
    let Some(b) = &cluster.beegfs else {
        return Ok(Vec::new());
    };
    let version = b.version.to_string();
    let needed = image_packages(cluster);
    let mut errors = Vec::new();
    let mut chosen = Vec::new();
    for package in &needed {
        let mut found = debs.iter().filter(|(_, i)| i.package == *package);
        let Some((file, info)) = found.next() else {
            errors.push(DebsError::Missing {
                package: (*package).to_owned(),
                version: version.clone(),
                needed: needed.join(", "),
            });
            continue;
        };
        if let Some((other, _)) = found.next() {
            errors.push(DebsError::Duplicate {
                package: (*package).to_owned(),
                first: file.to_string(),
                second: other.to_string(),
            });
            continue;
        }
        if info.upstream() != version {
            errors.push(DebsError::WrongVersion {
                file: file.to_string(),
                package: info.package.clone(),
                found: info.version.clone(),
                version: version.clone(),
            });
            continue;
        }
        chosen.push(file.clone());
    }
    if errors.is_empty() {
        Ok(chosen)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cluster(version: &str, clients: &str) -> Cluster {
        let text = format!(
            "name: t\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage: {{base: /i/b.qcow2}}\ncontroller: {{nodes: [{{name: ctl}}]}}\ncompute: [{{name: 'cn{{index}}', count: 2}}]\nbeegfs:\n  version: \"{version}\"\n  storage: [cn1, cn2]\n  {clients}packages: {{debs: /d}}\n"
        );
        hpc_config::load_str("t.yaml", &text, &|_| None).unwrap()
    }

    fn deb(package: &str, version: &str) -> (String, DebInfo) {
        (
            format!("/d/{package}_{version}.deb"),
            DebInfo {
                package: package.into(),
                version: format!("20:{version}"),
            },
        )
    }

    #[test]
    fn packages_per_release() {
        assert_eq!(
            image_packages(&cluster("8.1.0", "")),
            [
                "beegfs-client",
                "beegfs-meta",
                "beegfs-mgmtd",
                "beegfs-storage",
                "beegfs-tools"
            ]
        );
        assert_eq!(
            image_packages(&cluster("7.4.7", "")),
            [
                "beegfs-client",
                "beegfs-common",
                "beegfs-helperd",
                "beegfs-meta",
                "beegfs-mgmtd",
                "beegfs-storage",
                "beegfs-utils"
            ]
        );
        assert!(builds_client_module(&cluster("8.1.0", "")));
    }

    #[test]
    fn chooses_the_needed_files_and_leaves_the_rest() {
        let c = cluster("8.1.0", "");
        let mut debs: Vec<_> = [
            "beegfs-client",
            "beegfs-client-dkms",
            "beegfs-meta",
            "beegfs-mgmtd",
            "beegfs-storage",
            "beegfs-tools",
            "libbeegfs-ib",
        ]
        .iter()
        .map(|p| deb(p, "8.1.0"))
        .collect();
        let chosen = choose_debs(&c, &debs).unwrap();
        assert_eq!(chosen.len(), 5);
        assert!(
            !chosen
                .iter()
                .any(|f| f.contains("dkms") || f.contains("-ib"))
        );
        // another release's file, a missing package, a duplicate: each named
        debs[2] = deb("beegfs-meta", "7.4.7");
        debs.retain(|(_, i)| i.package != "beegfs-tools");
        debs.push(deb("beegfs-storage", "8.1.0"));
        let errs: Vec<String> = choose_debs(&c, &debs)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "/d/beegfs-meta_7.4.7.deb is beegfs-meta 20:7.4.7, but the cluster file asks for BeeGFS 8.1.0",
                "two .deb files for beegfs-storage: /d/beegfs-storage_8.1.0.deb and /d/beegfs-storage_8.1.0.deb",
                "no .deb file for beegfs-tools (BeeGFS 8.1.0); the nodes' roles need beegfs-client, beegfs-meta, beegfs-mgmtd, beegfs-storage, beegfs-tools",
            ]
        );
    }

    #[test]
    fn upstream_version() {
        let i = |v: &str| DebInfo {
            package: "p".into(),
            version: v.into(),
        };
        assert_eq!(i("20:8.1.0").upstream(), "8.1.0");
        assert_eq!(i("7.4.7-1").upstream(), "7.4.7");
        assert_eq!(i("7.4.7").upstream(), "7.4.7");
    }
}
