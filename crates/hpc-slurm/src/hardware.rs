//! What a node has, as `slurmd -C` reports it.

use std::collections::BTreeMap;

use hpc_config::Node;

/// The share of a VM's memory the guest kernel is assumed to keep for itself when the
/// hardware is estimated from the cluster file ([`NodeHardware::from_config`]), in percent.
pub const FALLBACK_GUEST_RESERVED_PERCENT: u64 = 5;

/// A node's hardware: the fields of a `NodeName` line, as `slurmd -C` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeHardware {
    /// `CPUs`.
    pub cpus: u32,
    /// `Boards`.
    pub boards: u32,
    /// `SocketsPerBoard`.
    pub sockets_per_board: u32,
    /// `CoresPerSocket`.
    pub cores_per_socket: u32,
    /// `ThreadsPerCore`.
    pub threads_per_core: u32,
    /// `RealMemory` in MiB, as the node reports it (before any headroom).
    pub real_memory_mib: u64,
}

/// `slurmd -C` output that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HardwareError {
    /// A field is missing.
    #[error("`slurmd -C` output has no `{key}=`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A field is not a number.
    #[error("`slurmd -C` output has `{key}={value}`, which is not a number")]
    NotANumber {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// A field is zero.
    #[error("`slurmd -C` output has `{key}=0`")]
    Zero {
        /// The key.
        key: &'static str,
    },
}

impl NodeHardware {
    /// Parse `slurmd -C` output:
    /// `NodeName=h02 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105`
    /// and an `UpTime=…` line (ignored, as are unknown keys such as `Gres=`).
    pub fn parse_slurmd_c(output: &str) -> Result<Self, HardwareError> {
        let pairs: Vec<(&str, &str)> = output
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let get = |key: &'static str| -> Result<u64, HardwareError> {
            let value = pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .ok_or(HardwareError::Missing { key })?;
            let n: u64 = value.parse().map_err(|_| HardwareError::NotANumber {
                key,
                value: value.to_owned(),
            })?;
            if n == 0 {
                return Err(HardwareError::Zero { key });
            }
            Ok(n)
        };
        let small = |key: &'static str| -> Result<u32, HardwareError> {
            let n = get(key)?;
            u32::try_from(n).map_err(|_| HardwareError::NotANumber {
                key,
                value: n.to_string(),
            })
        };
        Ok(Self {
            cpus: small("CPUs")?,
            boards: small("Boards")?,
            sockets_per_board: small("SocketsPerBoard")?,
            cores_per_socket: small("CoresPerSocket")?,
            threads_per_core: small("ThreadsPerCore")?,
            real_memory_mib: get("RealMemory")?,
        })
    }

    /// An estimate from the cluster file, for rendering before the node exists: one board,
    /// one socket, `vcpus` cores of one thread, and the VM's memory minus
    /// [`FALLBACK_GUEST_RESERVED_PERCENT`] (the guest kernel's share). For a host hpc-up did
    /// not create, [`NodeHardware::parse_slurmd_c`] of the real node is the truth.
    pub fn from_config(node: &Node) -> Self {
        let mib = node.memory.mib();
        Self {
            cpus: node.vcpus.max(1),
            boards: 1,
            sockets_per_board: 1,
            cores_per_socket: node.vcpus.max(1),
            threads_per_core: 1,
            real_memory_mib: mib - mib * FALLBACK_GUEST_RESERVED_PERCENT / 100,
        }
    }

    /// [`NodeHardware::from_config`] for every node of `cluster` that runs jobs, by name:
    /// what VMs hpc-up creates declare (their domains give them exactly this), so that
    /// nobody needs to ask them with `slurmd -C` (`DeployOptions::hardware`). A node whose
    /// guest has less memory than declared turns INVAL, and the deployment stops with
    /// SLURM's reason.
    pub fn declared(cluster: &hpc_config::Cluster) -> BTreeMap<String, Self> {
        let Some(slurm) = &cluster.slurm else {
            return BTreeMap::new();
        };
        crate::render::slurmd_nodes(cluster, slurm)
            .into_iter()
            .map(|n| (n.name.to_string(), Self::from_config(n)))
            .collect()
    }

    /// `RealMemory` to configure: the reported memory minus `headroom_percent` (rounded so
    /// the result is never more than the node has; at least 1 MiB).
    pub fn configured_memory_mib(&self, headroom_percent: u8) -> u64 {
        let pct = u64::from(headroom_percent.min(99));
        (self.real_memory_mib - self.real_memory_mib.saturating_mul(pct).div_ceil(100)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "NodeName=h02 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105\nUpTime=0-01:02:03\n";

    #[test]
    fn parses_slurmd_c() {
        assert_eq!(
            NodeHardware::parse_slurmd_c(OUT),
            Ok(NodeHardware {
                cpus: 2,
                boards: 1,
                sockets_per_board: 1,
                cores_per_socket: 2,
                threads_per_core: 1,
                real_memory_mib: 24105,
            })
        );
    }

    #[test]
    fn rejects_bad_output() {
        assert_eq!(
            NodeHardware::parse_slurmd_c("NodeName=h02 CPUs=2"),
            Err(HardwareError::Missing { key: "Boards" })
        );
        assert_eq!(
            NodeHardware::parse_slurmd_c(&OUT.replace("RealMemory=24105", "RealMemory=lots")),
            Err(HardwareError::NotANumber {
                key: "RealMemory",
                value: "lots".into()
            })
        );
        assert_eq!(
            NodeHardware::parse_slurmd_c(&OUT.replace("CPUs=2", "CPUs=0")),
            Err(HardwareError::Zero { key: "CPUs" })
        );
        assert!(NodeHardware::parse_slurmd_c("").is_err());
    }

    #[test]
    fn headroom_never_rounds_up() {
        let hw = NodeHardware::parse_slurmd_c(OUT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hw.configured_memory_mib(5), 24105 - 1206);
        assert_eq!(hw.configured_memory_mib(0), 24105);
    }
}
