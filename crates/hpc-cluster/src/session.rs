//! A [`Session`]: one resolved cluster, its state directory, a cancel token and an event
//! sink; and [`Connector`], how a session reaches libvirt.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hpc_config::Cluster;
use hpc_libvirt::{Hypervisor, LibvirtPlan};

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::event::{EventSink, NoEvents};
use crate::state::StateDir;

/// Opens libvirt connections by URI. [`Libvirt`] is the real one; tests and other tools
/// can bring any [`hpc_libvirt::Hypervisor`].
pub trait Connector {
    /// The connection type.
    type Hypervisor: Hypervisor;
    /// Open `uri`.
    fn connect(&self, uri: &str) -> Result<Self::Hypervisor>;
}

/// libvirt through its C library (`hpc_libvirt::VirtHypervisor`).
#[cfg(feature = "virt")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Libvirt;

#[cfg(feature = "virt")]
impl Connector for Libvirt {
    type Hypervisor = hpc_libvirt::VirtHypervisor;

    fn connect(&self, uri: &str) -> Result<Self::Hypervisor> {
        hpc_libvirt::VirtHypervisor::connect(uri).map_err(|e| Error::Connect {
            uri: uri.to_owned(),
            message: e.to_string(),
        })
    }
}

/// Overrides of the cluster file, as a command line gives them.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// One libvirt connection for every node (e.g. `test:///default`).
    pub connect: Option<String>,
    /// Another state directory (made absolute).
    pub state_dir: Option<PathBuf>,
}

/// One cluster, resolved from its file, and what every operation on it shares.
pub struct Session {
    pub(crate) cluster: Cluster,
    pub(crate) libvirt: LibvirtPlan,
    pub(crate) state: StateDir,
    pub(crate) cancel: CancelToken,
    pub(crate) events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cluster", &self.cluster.name.as_str())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Load and validate a cluster file and apply the overrides.
    pub fn load(file: &Path, overrides: &Overrides) -> Result<Self> {
        let mut cluster = hpc_config::load_file(file)?;
        if let Some(uri) = &overrides.connect {
            let uri: hpc_config::types::ConnectUri = uri.parse().map_err(|e| Error::Override {
                what: "--connect",
                message: format!("{e}"),
            })?;
            for n in &mut cluster.nodes {
                n.uri = uri.clone();
            }
        }
        if let Some(dir) = &overrides.state_dir {
            cluster.state_dir =
                std::path::absolute(dir).map_err(Error::io("cannot resolve", dir))?;
        }
        Ok(Self::new(cluster))
    }

    /// A session over an already resolved cluster.
    pub fn new(cluster: Cluster) -> Self {
        let libvirt = hpc_libvirt::plan(&cluster);
        let state = StateDir::new(&cluster.state_dir);
        Self {
            cluster,
            libvirt,
            state,
            cancel: CancelToken::new(),
            events: Arc::new(NoEvents),
        }
    }

    /// Send progress events to `sink`.
    #[must_use]
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
        self
    }

    /// Stop when `token` is cancelled.
    #[must_use]
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// The resolved cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Its libvirt objects.
    pub fn libvirt_plan(&self) -> &LibvirtPlan {
        &self.libvirt
    }

    /// Its state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The token that cancels this session's runs.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The libvirt connections of the plan, in plan order.
    pub fn uris(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for o in &self.libvirt.objects {
            if !v.iter().any(|u| u == o.uri.as_str()) {
                v.push(o.uri.as_str().to_owned());
            }
        }
        v
    }

    /// The executor of the hypervisor hosts of `hosts:` (the cluster network across them).
    pub(crate) fn host_executors(&self) -> Result<crate::fabric::HostExecutors> {
        crate::fabric::HostExecutors::new(&self.cluster)
    }

    pub(crate) fn cancelled(&self, recorder: &crate::event::Recorder<'_>) -> Error {
        Error::Cancelled {
            during: recorder.running(),
        }
    }
}

/// Whether `uri` is a connection to this machine's libvirt.
pub(crate) fn is_local(uri: &str) -> bool {
    uri.parse::<hpc_config::types::ConnectUri>()
        .map(|u| u.remote_host().is_none())
        .unwrap_or(true)
}

/// A current-thread tokio runtime for the SSH side of a call.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Ssh(format!("cannot start the async runtime: {e}")))
}
