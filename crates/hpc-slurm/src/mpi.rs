//! MPI across nodes: Open MPI with PMIx, launched by `srun --mpi=pmix`.
//!
//! What the guest image needs ([`IMAGE_PACKAGES`], and [`IMAGE_SCRIPT`], which builds the
//! project's MPI check program into the image), the Open MPI settings every node gets
//! ([`render_mca_params`], [`files`]; with the `deploy` feature the host steps, [`phases`]),
//! and the parser of the check program's output ([`parse_mpi_output`]). With `deploy`,
//! [`check_mpi`] runs the program across the compute nodes.
//!
//! Debian's `openmpi-bin` ships `/etc/openmpi/openmpi-mca-params.conf` (a conffile; the same
//! bytes in bookworm's 4.1.4 and trixie's 5.0.7) and Open MPI reads no drop-in directory, so
//! the rendered file is Debian's, byte for byte, followed by hpc-up's block: in that file a
//! later value of a parameter replaces an earlier one.

use hpc_config::{Cluster, DebianRelease};

#[cfg(feature = "deploy")]
mod check;
mod parse;

#[cfg(feature = "deploy")]
pub use check::{MpiCheck, MpiCheckError, MpiCheckOptions, check_mpi};
pub use parse::{MpiOutput, MpiParseError, PingPong, parse_mpi_output};

/// Where the image keeps the MPI check program.
pub const CHECK_PROGRAM_PATH: &str = "/usr/local/libexec/hpc-up/mpi-check";

/// The MPI check program's C source (see the file's header for its output).
pub const CHECK_PROGRAM_SOURCE: &str = include_str!("mpi/mpi-check.c");

/// Open MPI's system-wide MCA parameter file.
pub const MCA_PARAMS_PATH: &str = "/etc/openmpi/openmpi-mca-params.conf";

/// Mode of [`MCA_PARAMS_PATH`] (as Debian ships it).
pub const MCA_PARAMS_MODE: u32 = 0o644;

/// Debian's own `openmpi-mca-params.conf` (bookworm and trixie ship the same bytes, with no
/// newline at the end).
const DEBIAN_MCA_PARAMS: &str = include_str!("mpi/debian-openmpi-mca-params.conf");

/// The first line of hpc-up's block in [`MCA_PARAMS_PATH`].
const BLOCK_MARK: &str =
    "# --- hpc-up: MPI on the cluster network (everything above is Debian's file) ---";

/// Packages the guest image needs for MPI: Open MPI and its compiler wrapper, PMIx with the
/// unversioned `libpmix.so` that bookworm's SLURM `mpi_pmix` plugin opens (only in
/// `libpmix-dev`), and a C compiler for [`IMAGE_SCRIPT`] and users' programs. Guests have
/// no network at deploy time: everything is in the image.
pub const IMAGE_PACKAGES: &[&str] = &[
    "openmpi-bin",
    "libopenmpi-dev",
    "libpmix-dev",
    "gcc",
    "libc6-dev",
];

/// POSIX `sh` run as root inside the image root while the image is built (after
/// [`IMAGE_PACKAGES`] are installed): writes [`CHECK_PROGRAM_SOURCE`] out and compiles it
/// with `mpicc -O2` to [`CHECK_PROGRAM_PATH`]. `DESTDIR`, when set, is a directory to
/// install under instead of `/` (tests).
pub const IMAGE_SCRIPT: &str = concat!(
    "# hpc-up: build the MPI check program (hpc_slurm::mpi)\n",
    "set -eu\n",
    "dest=\"${DESTDIR:-}/usr/local/libexec/hpc-up\"\n",
    "src=$(mktemp -d)\n",
    "trap 'rm -rf \"$src\"' EXIT\n",
    "cat >\"$src/mpi-check.c\" <<'HPC_UP_MPI_CHECK_C'\n",
    include_str!("mpi/mpi-check.c"),
    "HPC_UP_MPI_CHECK_C\n",
    "mkdir -p \"$dest\"\n",
    "mpicc -O2 -o \"$dest/mpi-check.new\" \"$src/mpi-check.c\"\n",
    "chmod 0755 \"$dest/mpi-check.new\"\n",
    "mv -f \"$dest/mpi-check.new\" \"$dest/mpi-check\"\n",
);

/// The Open MPI series of a Debian release's `openmpi-bin`.
const fn ompi_series(release: DebianRelease) -> &'static str {
    match release {
        DebianRelease::Bookworm => "4.1",
        DebianRelease::Trixie => "5.0",
    }
}

/// `/etc/openmpi/openmpi-mca-params.conf` for every node of `cluster`, or `None` without an
/// `mpi` section: Debian's file, then TCP on the cluster network only, the `ob1` PML over
/// the `self`, shared-memory and `tcp` BTLs (no UCX, OFI or openib probing). Open MPI 4.1
/// (bookworm) calls its shared-memory BTL `vader`, 5.0 (trixie) `sm`; 4.1's own runtime
/// (`mpirun`'s daemons, out-of-band TCP) is kept on the cluster network too; `srun`
/// launches without it.
pub fn render_mca_params(cluster: &Cluster) -> Option<String> {
    cluster.mpi.as_ref()?;
    let release = cluster.image.release;
    let cidr = cluster.network.cidr.trunc();
    let shared_memory = match release {
        DebianRelease::Bookworm => "vader",
        DebianRelease::Trixie => "sm",
    };
    let mut out = String::with_capacity(DEBIAN_MCA_PARAMS.len() + 512);
    out.push_str(DEBIAN_MCA_PARAMS);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push('\n');
    out.push_str(BLOCK_MARK);
    out.push('\n');
    out.push_str(&format!(
        "# Open MPI {} (Debian {}); a later line replaces an earlier one of the same name.\n",
        ompi_series(release),
        release.version()
    ));
    out.push_str("pml = ob1\n");
    out.push_str(&format!("btl = self,{shared_memory},tcp\n"));
    out.push_str(&format!("btl_tcp_if_include = {cidr}\n"));
    if release == DebianRelease::Bookworm {
        out.push_str(&format!("oob_tcp_if_include = {cidr}\n"));
    }
    Some(out)
}

/// Every file [`phases`] writes, as `(node, path, content)` in node order, for
/// `hpc-up render`; empty without an `mpi` section.
pub fn files(cluster: &Cluster) -> Vec<(String, String, String)> {
    let Some(params) = render_mca_params(cluster) else {
        return Vec::new();
    };
    cluster
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.to_string(),
                MCA_PARAMS_PATH.to_owned(),
                params.clone(),
            )
        })
        .collect()
}

/// The `sh -c` program of the controller's verify step: `srun --mpi=list` names every
/// plugin given as an argument (it needs slurm.conf, not slurmctld).
#[cfg(feature = "deploy")]
const MPI_LIST_SCRIPT: &str = r#"out=$(srun --mpi=list 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
for p in "$@"; do
  printf '%s\n' "$out" | grep -qw -- "$p" || { printf 'srun --mpi=list does not name %s:\n%s\n' "$p" "$out" >&2; exit 1; }
done"#;

/// The MPI layer's host steps, one phase `open-mpi`, empty without an `mpi` section: every
/// node's [`MCA_PARAMS_PATH`] ([`render_mca_params`]), and on the first controller a verify
/// step that `srun --mpi=list` names `pmix` (and the configured `MpiDefault`, unless
/// `none`). Nothing restarts: each MPI process reads the file when it starts. A second
/// apply changes nothing.
#[cfg(feature = "deploy")]
pub fn phases(cluster: &Cluster) -> Vec<hpc_remote::Phase> {
    use hpc_remote::{EnsureFile, HostPlan, Owner, Phase, RunCommand};

    let (Some(mpi), Some(params)) = (cluster.mpi.as_ref(), render_mca_params(cluster)) else {
        return Vec::new();
    };
    let controller = cluster.controllers().next().map(|n| n.name.as_str());
    let hosts = cluster
        .nodes
        .iter()
        .map(|n| {
            let plan = HostPlan::new(n.name.as_str()).step(
                "openmpi-mca-params",
                EnsureFile::new(MCA_PARAMS_PATH, params.as_bytes(), MCA_PARAMS_MODE)
                    .owner(Owner::new("root", "root")),
            );
            if cluster.slurm.is_some() && controller == Some(n.name.as_str()) {
                let mut argv = vec!["sh", "-c", MPI_LIST_SCRIPT, "sh", "pmix"];
                let default = mpi.default.as_str();
                if default != "pmix" && default != "none" {
                    argv.push(default);
                }
                plan.step("srun-mpi-list", RunCommand::new(argv).verify())
            } else {
                plan
            }
        })
        .collect();
    vec![Phase::new("open-mpi", hosts)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_script_holds_the_source_between_its_delimiters() {
        let start = IMAGE_SCRIPT
            .find("<<'HPC_UP_MPI_CHECK_C'\n")
            .map(|i| i + "<<'HPC_UP_MPI_CHECK_C'\n".len());
        let end = IMAGE_SCRIPT.find("\nHPC_UP_MPI_CHECK_C\n").map(|i| i + 1);
        let (Some(start), Some(end)) = (start, end) else {
            panic!("no heredoc in {IMAGE_SCRIPT}");
        };
        assert_eq!(&IMAGE_SCRIPT[start..end], CHECK_PROGRAM_SOURCE);
        assert!(CHECK_PROGRAM_SOURCE.ends_with('\n'));
        // hpc-image wraps every script in a heredoc of its own.
        assert!(!IMAGE_SCRIPT.lines().any(|l| l == "HPCUPEOF"));
        assert!(IMAGE_SCRIPT.contains("\"${DESTDIR:-}/usr/local/libexec/hpc-up\""));
        assert!(CHECK_PROGRAM_PATH.starts_with("/usr/local/libexec/hpc-up/"));
    }

    #[test]
    fn debian_file_is_kept_as_shipped() {
        assert!(DEBIAN_MCA_PARAMS.ends_with("osc = ^ucx,pt2pt"));
        assert!(DEBIAN_MCA_PARAMS.contains("\nbtl = ^uct,openib,ofi\n"));
    }
}
