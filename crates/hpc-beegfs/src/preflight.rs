//! Before deploying: each BeeGFS node's kernel, network interfaces, machine UUID, client
//! module and kernel headers, probed with one fixed command and judged by pure rules.

use std::collections::BTreeMap;

use hpc_config::Cluster;

use crate::kernel::{Compat, Kernel, KernelRefusal, client_compat};
use crate::release::Release;
use crate::render::roles;

/// The probe every BeeGFS node runs (a fixed script; nothing of the cluster file in it).
pub const PROBE_SCRIPT: &str = r#"echo "kernel=$(uname -r)"
ip -o -4 addr show 2>/dev/null | while read -r _ ifc _ addr _; do echo "inet=$ifc $addr"; done
if [ -r /sys/class/dmi/id/product_uuid ]; then echo "dmi-uuid=$(cat /sys/class/dmi/id/product_uuid)"; fi
for u in $(blkid -s UUID -o value 2>/dev/null); do echo "blkid-uuid=$u"; done
if [ -d "/lib/modules/$(uname -r)/build" ]; then echo headers=yes; else echo headers=no; fi
m=$(find "/lib/modules/$(uname -r)" -name 'beegfs.ko*' 2>/dev/null | head -n 1)
if [ -n "$m" ]; then echo "client-module=$m"; fi
"#;

/// The probe as argv.
pub fn probe_argv() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), PROBE_SCRIPT.into()]
}

/// What the probe found on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// `uname -r`.
    pub uname: String,
    /// IPv4 interfaces and addresses (`eth0`, `10.0.0.2/24`).
    pub inet: Vec<(String, String)>,
    /// `/sys/class/dmi/id/product_uuid`, when readable.
    pub dmi_uuid: Option<String>,
    /// Filesystem UUIDs from `blkid`.
    pub blkid_uuids: Vec<String>,
    /// `/lib/modules/$(uname -r)/build` exists (kernel headers for the module build).
    pub headers: bool,
    /// The BeeGFS client module built for the running kernel (`beegfs.ko` under
    /// `/lib/modules/$(uname -r)`), when there is one: `hpc-up image build` builds it for
    /// the image's kernel.
    pub client_module: Option<String>,
}

impl NodeFacts {
    /// Parses the probe's output.
    pub fn parse(stdout: &str) -> Self {
        let mut f = Self::default();
        for line in stdout.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k {
                "kernel" => f.uname = v.to_owned(),
                "inet" => {
                    if let Some((ifc, addr)) = v.split_once(' ') {
                        f.inet.push((ifc.to_owned(), addr.trim().to_owned()));
                    }
                }
                "dmi-uuid" if valid_uuid(v) => f.dmi_uuid = Some(v.to_owned()),
                "blkid-uuid" if !v.is_empty() => f.blkid_uuids.push(v.to_owned()),
                "headers" => f.headers = v == "yes",
                "client-module" if !v.is_empty() => f.client_module = Some(v.to_owned()),
                _ => {}
            }
        }
        f
    }

    /// A usable NIC: non-loopback with an IPv4 address (meta and storage refuse to start
    /// with loopback only: "Couldn't find any usable NIC").
    pub fn has_usable_nic(&self) -> bool {
        self.inet
            .iter()
            .any(|(ifc, addr)| ifc != "lo" && !addr.starts_with("127."))
    }

    /// A machine UUID as 8.x meta/storage find it (DMI product UUID, else a blkid UUID).
    pub fn machine_uuid(&self) -> Option<&str> {
        self.dmi_uuid
            .as_deref()
            .or_else(|| self.blkid_uuids.first().map(String::as_str))
    }
}

fn valid_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// A problem found before deploying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightProblem {
    /// The client module does not build on the node's kernel.
    #[error(transparent)]
    Kernel(#[from] KernelRefusal),
    /// `uname -r` did not parse.
    #[error("{node}: cannot read a kernel version from `uname -r` output `{uname}`")]
    UnknownKernel {
        /// The node.
        node: String,
        /// What it said.
        uname: String,
    },
    /// No client module for the running kernel, and no kernel headers to build one.
    #[error(
        "{node}: no BeeGFS client module for `{uname}` and no kernel headers to build one (/lib/modules/{uname}/build): bake the packages into the image (`beegfs.packages.debs`: `hpc-up image build` builds the module for the image's kernel) or install linux-headers-{uname}"
    )]
    NoClientModule {
        /// The node.
        node: String,
        /// `uname -r`.
        uname: String,
    },
    /// Meta/storage need a non-loopback IPv4 interface.
    #[error(
        "{node}: no network interface with an IPv4 address besides loopback; beegfs-{service} refuses to start (\"Couldn't find any usable NIC\")"
    )]
    NoNic {
        /// The node.
        node: String,
        /// `meta` or `storage`.
        service: &'static str,
    },
    /// 8.x meta/storage need a machine UUID to register.
    #[error(
        "{node}: no machine UUID (no /sys/class/dmi/id/product_uuid, no blkid UUID); BeeGFS {release} beegfs-{service} cannot register (\"Couldn't determine UUID for machine\")"
    )]
    NoMachineUuid {
        /// The node.
        node: String,
        /// `meta` or `storage`.
        service: &'static str,
        /// The release.
        release: Release,
    },
    /// The node did not answer the probe.
    #[error("{node}: not probed: {error}")]
    NotProbed {
        /// The node.
        node: String,
        /// What went wrong.
        error: String,
    },
}

/// A warning: deployment goes ahead. Displays as `node: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightWarning {
    /// The node.
    pub node: String,
    /// What is uncertain.
    pub message: String,
}

impl std::fmt::Display for PreflightWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.node, self.message)
    }
}

/// Judges the probe results of every BeeGFS node. `facts` lacking a node is a problem
/// (`NotProbed` with `missing` as the error) — callers put their own errors in `errors`.
pub fn preflight(
    cluster: &Cluster,
    facts: &BTreeMap<String, NodeFacts>,
    errors: &BTreeMap<String, String>,
) -> (Vec<PreflightProblem>, Vec<PreflightWarning>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let Some(b) = &cluster.beegfs else {
        return (problems, warnings);
    };
    let release = Release::from_version(b.version);
    for (node, r) in roles(cluster) {
        let Some(f) = facts.get(&node) else {
            problems.push(PreflightProblem::NotProbed {
                error: errors
                    .get(&node)
                    .cloned()
                    .unwrap_or_else(|| "no answer".into()),
                node,
            });
            continue;
        };
        if r.client {
            match Kernel::parse(&f.uname) {
                None => problems.push(PreflightProblem::UnknownKernel {
                    node: node.clone(),
                    uname: f.uname.clone(),
                }),
                Some(kernel) => match client_compat(release, kernel) {
                    Compat::Builds => {}
                    Compat::Unverified(why) => warnings.push(PreflightWarning {
                        node: node.clone(),
                        message: format!(
                            "the BeeGFS {release} client module on Linux {kernel} is unverified: {why}"
                        ),
                    }),
                    Compat::Fails(reason) => problems.push(
                        KernelRefusal {
                            node: node.clone(),
                            uname: f.uname.clone(),
                            kernel,
                            release,
                            reason,
                        }
                        .into(),
                    ),
                },
            }
            if f.client_module.is_none() && !f.headers {
                problems.push(PreflightProblem::NoClientModule {
                    node: node.clone(),
                    uname: f.uname.clone(),
                });
            }
        }
        for (on, service) in [(r.meta.is_some(), "meta"), (r.storage.is_some(), "storage")] {
            if !on {
                continue;
            }
            if !f.has_usable_nic() {
                problems.push(PreflightProblem::NoNic {
                    node: node.clone(),
                    service,
                });
            }
            if release.is_v8() && f.machine_uuid().is_none() {
                problems.push(PreflightProblem::NoMachineUuid {
                    node: node.clone(),
                    service,
                    release,
                });
            }
        }
    }
    (problems, warnings)
}
