//! The nodes' seed disks (`<state>/seed/<node>.img`, see `hpc_libvirt::seed_path`): written
//! by `up` before the domains start, read by the image's `hpc-up-seed.service` at boot. Each
//! is a tar of `hpc_remote::boot_program`s, in order: the node's base configuration
//! (hostname, `/etc/hosts`, virtio-fs mounts), then the SLURM phases it can do alone
//! (`hpc_slurm::boot_phases`: munge, and slurmctld or slurmd). So munged and the SLURM
//! daemons start while the node boots, in parallel with the other nodes, and the deployment
//! over SSH that follows finds everything in place: it verifies, and changes nothing.
//!
//! The seed holds the munge key: the files are 0600 in a directory others can traverse but
//! not list (libvirt hands each disk to the QEMU user while its domain runs).

use hpc_config::Cluster;
use hpc_remote::HostPlan;

use crate::error::{Error, Result};
use crate::state::{StateDir, private_dir};

/// The programs of one node's seed, in the order they run.
fn programs(
    cluster: &Cluster,
    node: &hpc_config::Node,
    slurm: Option<&hpc_slurm::DeployPlan>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut plans: Vec<(String, HostPlan)> =
        vec![("00-base".to_owned(), crate::nodes::base_plan(cluster, node))];
    if let Some(plan) = slurm {
        for (i, (kind, p)) in hpc_slurm::boot_phases(plan, cluster, node.name.as_str())
            .into_iter()
            .enumerate()
        {
            plans.push((format!("{}-{}", 10 + 10 * i, kind.name()), p));
        }
    }
    plans
        .into_iter()
        .map(|(name, plan)| {
            hpc_remote::boot_program(&plan)
                .map(|bytes| (format!("{name}.sh"), bytes))
                .map_err(|e| Error::Usage(format!("node {}: seed program {name}: {e}", node.name)))
        })
        .collect()
}

/// A tar archive of `files` (mode 0600, owned by root, no timestamps: the same input gives
/// the same bytes).
fn archive(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, bytes.as_slice())
            .map_err(Error::io("cannot archive", name))?;
    }
    b.into_inner()
        .map_err(Error::io("cannot archive", "a seed"))
}

/// Write every local node's seed disk. `slurm` is the SLURM deployment plan (rendered with
/// `NodeHardware::declared`), when the cluster has SLURM.
pub(crate) fn write(
    state: &StateDir,
    cluster: &Cluster,
    slurm: Option<&hpc_slurm::DeployPlan>,
) -> Result<()> {
    // Traversable, not listable: QEMU opens the disks as its own user once libvirt has
    // handed each file over to it (DAC labelling); the files stay 0600.
    private_dir(&state.seed_dir(), 0o711)?;
    // Every node's, a node on another host's too: hpc-libvirt uploads it into that host's
    // pool.
    for node in &cluster.nodes {
        let mut bytes = archive(&programs(cluster, node, slurm)?)?;
        // Zeros after the archive are end-of-archive blocks to tar.
        bytes.resize(bytes.len().div_ceil(SEED_BLOCK) * SEED_BLOCK, 0);
        let path = hpc_libvirt::seed_path(state.root(), node.name.as_str());
        let old = fs_err::read(&path).ok();
        match old {
            // Unchanged on most re-runs: no write, no fsync.
            Some(old) if old == bytes => {}
            Some(old) if old.len() == bytes.len() => overwrite(&path, &bytes)?,
            _ => crate::fsutil::write_atomic(&path, &bytes)?,
        }
    }
    Ok(())
}

/// Seed disks are whole multiples of this, so that a changed seed usually has the old size.
const SEED_BLOCK: usize = 1 << 20;

/// Rewrite a seed disk in place. A running domain's QEMU holds the file open: a new file
/// renamed over it would leave that QEMU with the old one, and a reboot from inside the
/// guest would apply the old seed again (and with it, say, the old `slurm.conf`). In place
/// and of the same size, the guest reads the new seed at its next boot. The guest reads the
/// disk only while it boots; a boot racing this write may see a damaged archive, which its
/// seed unit refuses (then the deployment over SSH does the work, as without a seed).
fn overwrite(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(Error::io("cannot open", path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(Error::io("cannot write", path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_changed_seed_of_the_same_size_keeps_its_inode() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("n.img");
        fs_err::write(&p, vec![1u8; SEED_BLOCK]).unwrap();
        let ino = fs_err::metadata(&p).unwrap().ino();
        overwrite(&p, &vec![2u8; SEED_BLOCK]).unwrap();
        assert_eq!(fs_err::metadata(&p).unwrap().ino(), ino);
        assert_eq!(fs_err::read(&p).unwrap(), vec![2u8; SEED_BLOCK]);
    }

    #[test]
    fn an_archive_is_whole_blocks_and_reads_back() {
        let files = vec![
            ("00-base.sh".to_owned(), b"echo base\n".to_vec()),
            ("10-munge.sh".to_owned(), vec![b'x'; 700]),
        ];
        let a = archive(&files).unwrap();
        assert_eq!(a.len() % 512, 0);
        assert_eq!(a, archive(&files).unwrap());
        let mut r = tar::Archive::new(a.as_slice());
        let names: Vec<String> = r
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["00-base.sh", "10-munge.sh"]);
    }
}
