//! The checks of a running cluster share one way of reaching its nodes: the session's SSH
//! executor on a runtime of its own, and a token naming this run's probe files. `check
//! virtiofs` lives here; `check slurm` and `check beegfs` beside their layers.

use std::time::{SystemTime, UNIX_EPOCH};

use hpc_remote::SshExecutor;

use crate::error::Result;
use crate::session::{Session, runtime};

impl Session {
    /// Run `check` against the nodes with the session's SSH executor and a token unique to
    /// this run (`hpc-up-<pid>-<ns>`: the probe files it names cannot clash with another
    /// run's), then close the connections.
    pub(crate) fn on_nodes<T>(
        &self,
        check: impl AsyncFnOnce(&SshExecutor, &str) -> T,
    ) -> Result<T> {
        let token = format!(
            "hpc-up-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let exec = self.ssh_executor(None)?;
        Ok(runtime()?.block_on(async {
            let r = check(&exec, &token).await;
            exec.close().await;
            r
        }))
    }

    /// Per node and share: mounted with the right options, a host→guest and guest→host
    /// round trip, `ro` enforced, throughput next to the node's local disk. With `hosts:`,
    /// the host's half of a node's round trips is done on that node's own host (over
    /// OpenSSH for the other hosts).
    pub fn check_virtiofs(&self) -> Result<hpc_virtiofs::CheckReport> {
        let hosts = if self.cluster.hosts.is_empty() {
            None
        } else {
            Some(self.host_executors()?)
        };
        self.on_nodes(async |exec, token| {
            hpc_virtiofs::check_cluster_on_hosts(exec, hosts.as_ref(), &self.cluster, token).await
        })
    }
}
