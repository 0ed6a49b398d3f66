//! `check virtiofs` (the host's half of the round trips is `hpc_virtiofs::check_cluster`'s).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::session::{Session, runtime};

impl Session {
    /// Per node and share: mounted with the right options, a host→guest and guest→host
    /// round trip, `ro` enforced, throughput next to the node's local disk.
    pub fn check_virtiofs(&self) -> Result<hpc_virtiofs::CheckReport> {
        let token = format!(
            "hpc-up-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let exec = self.ssh_executor(None)?;
        let rt = runtime()?;
        Ok(rt.block_on(async {
            let r = hpc_virtiofs::check_cluster(&exec, &self.cluster, &token).await;
            exec.close().await;
            r
        }))
    }
}
