//! `hpc-image`: Debian guest images for hpc-up clusters, built from Debian packages: Debian 12
//! "bookworm" or Debian 13 "trixie", as the cluster file's `image.release` says.
//!
//! [`Recipe`] (pure) says what goes into an image — systemd, OpenSSH with host keys made at
//! first boot, systemd-networkd/resolved, the cloud kernel with an initramfs that carries the
//! virtio drivers, and the HPC packages (SLURM, munge, MariaDB) baked in, because guests have
//! no network at deploy time — plus the cluster's extra packages and local `.deb` files, and
//! the public key that may log in as root. [`build`] runs mmdebstrap (`--mode=root`) into a
//! scratch directory beside the output, makes an ext4 filesystem from it (`mkfs.ext4 -d`, no
//! loop device, no partition table), converts it to qcow2 and moves `base.qcow2`, the kernel
//! and the initrd into place. A manifest beside the image ([`read_manifest`]) records the
//! recipe's cache key, so a second build of the same inputs does nothing, and the release, so
//! that `up` can refuse an image of another release than the file's.
//!
//! mmdebstrap checks the archive's signature with the keys this machine's apt trusts
//! (Debian's `debian-archive-keyring`): bookworm's package verifies trixie too (trixie's
//! `Release` is also signed with bookworm's archive key, and 2023.3+deb12u1 carries trixie's
//! own keys). The package list is the same for both releases; the hooks differ where trixie
//! does (see [`Recipe::mmdebstrap_argv`]).
//!
//! Nothing is downloaded but Debian packages. The image boots by direct kernel boot
//! (`root=LABEL=hpcroot`), and the hostname comes from `systemd.hostname=` on the kernel
//! command line.
//!
//! ```no_run
//! let cluster = hpc_config::load_file("examples/minimal.yaml".as_ref())?;
//! let recipe = hpc_image::Recipe::for_cluster(&cluster, "ssh-ed25519 AAAA… hpc-up");
//! let paths = hpc_image::ImagePaths {
//!     base: cluster.image.base.clone(),
//!     kernel: cluster.image.kernel.clone().unwrap_or_default(),
//!     initrd: cluster.image.initrd.clone().unwrap_or_default(),
//! };
//! hpc_image::build(&recipe, &paths, &mut |phase| eprintln!("{phase:?}"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod build;
mod bundle;
mod recipe;

pub use build::{
    BuildError, ImagePaths, Manifest, ManifestError, Outcome, Phase, build, cache_key, check_tools,
    deb_fields, is_up_to_date, manifest_path, read_manifest,
};
pub use bundle::{
    BUNDLE_MANIFEST, BUNDLE_MARKER, BUNDLE_RECIPE_VERSION, BundleError, BundleManifest,
    BundleOutcome, BundlePhase, BundleSpec, build_bundle, bundle_is_up_to_date, bundle_path,
    read_bundle_manifest,
};
pub use hpc_config::DebianRelease;
pub use recipe::{
    BASE_PACKAGES, DISABLED_SERVICES, ImageScript, KERNEL_HEADERS_PACKAGE, RECIPE_VERSION,
    ROOT_LABEL, Recipe,
};
