//! `hpc-up check containers`: on every node that runs containers, one real job step
//! `srun -N1 -n1 -w <node> --container=<bundles>/<image>` submitted on the controller, whose
//! command prints the bundle's marker file, its `/etc/os-release`, `/proc/self/cgroup` and
//! the memory limit of that cgroup. It ran inside the container when the marker (which the
//! node itself does not have) names the image; it stayed in the job's cgroup when the path
//! holds `/job_<id>/` of that job; the job's memory limit applies when the cgroup's
//! `memory.max` is a number (with `ConstrainRAMSpace`).

use std::time::Duration;

use hpc_config::{Cluster, Node};
use hpc_remote::Executor;
use serde::Serialize;

use super::{BUNDLE_MARKER, container_nodes};
use crate::deploy::{argv, run_ok};

/// Memory the check's job asks for (MiB), so a constrained job has a limit to see.
const JOB_MEM_MIB: u32 = 64;

/// What the check saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ContainerCheck {
    /// The image (bundle name).
    pub image: String,
    /// The bundle's path on the nodes.
    pub bundle: String,
    /// The runtime (`crun`, `runc`).
    pub runtime: String,
    /// One per node that runs containers.
    pub nodes: Vec<NodeContainerCheck>,
    /// Every node ran the job inside the container and in the job's cgroup.
    pub ok: bool,
}

/// One node's job step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeContainerCheck {
    /// The node.
    pub node: String,
    /// The step ran and printed what the check asks for.
    pub ran: bool,
    /// The job's id.
    pub job_id: Option<u64>,
    /// `VERSION_CODENAME` of the container's os-release.
    pub release_seen: Option<String>,
    /// `VERSION_CODENAME` of the node's own os-release.
    pub host_release: Option<String>,
    /// The marker file was there and named the image.
    pub marker_ok: bool,
    /// The cache key the marker holds.
    pub bundle_key: Option<String>,
    /// The container's cgroup (v2 path).
    pub cgroup: Option<String>,
    /// The cgroup is inside the job's (`/job_<id>/`).
    pub cgroup_ok: bool,
    /// The smallest `memory.max` on the container's cgroup path, as the container sees it
    /// (`max`: none).
    pub memory_limit: Option<String>,
    /// The limit is set when the cluster constrains memory (always true otherwise).
    pub memory_ok: bool,
    /// What went wrong.
    pub error: Option<String>,
}

impl NodeContainerCheck {
    fn ok(&self) -> bool {
        self.ran && self.marker_ok && self.cgroup_ok && self.memory_ok && self.error.is_none()
    }
}

impl ContainerCheck {
    /// One line per node, then a summary, as the user reads them.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                let word = if n.ok() { "ok" } else { "FAILED" };
                let mut l = format!(
                    "{}: {word}: job {} in {} (node {}), marker {}, cgroup {}, memory.max {}",
                    n.node,
                    n.job_id.map_or_else(|| "?".to_owned(), |j| j.to_string()),
                    n.release_seen.as_deref().unwrap_or("?"),
                    n.host_release.as_deref().unwrap_or("?"),
                    if n.marker_ok { "ok" } else { "missing" },
                    n.cgroup.as_deref().unwrap_or("?"),
                    n.memory_limit.as_deref().unwrap_or("?"),
                );
                if let Some(e) = &n.error {
                    l.push_str(": ");
                    l.push_str(e);
                }
                l
            })
            .collect();
        out.push(format!(
            "containers ({} with {}): {}",
            self.image,
            self.runtime,
            if self.ok { "ok" } else { "FAILED" }
        ));
        out
    }
}

/// Why the check could not run at all (a node's failure is in its [`NodeContainerCheck`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerCheckError {
    /// Nothing to check (no `containers:`, no image, no node, no controller).
    #[error("nothing to check: {0}")]
    Nothing(String),
    /// The file names no such image.
    #[error("no container image `{0}` in the cluster file")]
    UnknownImage(String),
    /// The bundle is not on the nodes yet.
    #[error(
        "container image `{image}` is not built ({node} has no {bundle}/config.json): run `hpc-up container build <file> {image}`"
    )]
    NotBuilt {
        /// The image.
        image: String,
        /// The node that looked.
        node: String,
        /// The bundle's path on the nodes.
        bundle: String,
    },
}

/// What the step's command prints, section by section.
const PROBE: &str = "\
echo \"job=$SLURM_JOB_ID\"
echo '@@marker'; cat /etc/hpc-up-bundle
echo '@@os'; cat /etc/os-release
echo '@@cgroup'; cat /proc/self/cgroup
d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); m=max
while [ \"$d\" != /sys/fs/cgroup ] && [ -n \"$d\" ]; do
  v=$(cat \"$d/memory.max\" 2>/dev/null) || v=
  case $v in ''|max) ;; *) if [ \"$m\" = max ] || [ \"$v\" -lt \"$m\" ]; then m=$v; fi ;; esac
  d=${d%/*}
done
echo '@@memory'; echo \"$m\"
";

/// The parsed output of [`PROBE`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) job_id: Option<u64>,
    pub(crate) marker: Vec<String>,
    pub(crate) codename: Option<String>,
    pub(crate) cgroup: Option<String>,
    pub(crate) memory: Option<String>,
}

fn codename(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("VERSION_CODENAME=")
            .map(|v| v.trim().trim_matches('"').to_owned())
    })
}

pub(crate) fn parse_probe(out: &str) -> Probe {
    let mut p = Probe::default();
    let mut section = "";
    let mut os = String::new();
    for line in out.lines() {
        if let Some(s) = line.strip_prefix("@@") {
            section = match s {
                "marker" => "marker",
                "os" => "os",
                "cgroup" => "cgroup",
                "memory" => "memory",
                _ => "",
            };
            continue;
        }
        match section {
            "" => {
                if let Some(j) = line.strip_prefix("job=") {
                    p.job_id = j.trim().parse().ok();
                }
            }
            "marker" => p.marker.push(line.trim().to_owned()),
            "os" => {
                os.push_str(line);
                os.push('\n');
            }
            "cgroup" => {
                // cgroup v2's line; a v1 host's unified line is `0::` too.
                if let Some(path) = line.strip_prefix("0::") {
                    p.cgroup = Some(path.trim().to_owned());
                }
            }
            "memory" if p.memory.is_none() && !line.trim().is_empty() => {
                p.memory = Some(line.trim().to_owned());
            }
            _ => {}
        }
    }
    p.codename = codename(&os);
    p
}

/// Judges one node's probe.
pub(crate) fn judge(
    node: &str,
    image: &str,
    constrain_ram: bool,
    probe: &Probe,
    host_release: Option<String>,
) -> NodeContainerCheck {
    let marker_ok = probe.marker.first().is_some_and(|n| n == image);
    let cgroup_ok = match (probe.job_id, &probe.cgroup) {
        (Some(j), Some(c)) => c.contains(&format!("/job_{j}/")),
        _ => false,
    };
    let memory_ok = !constrain_ram
        || probe
            .memory
            .as_deref()
            .is_some_and(|m| m.parse::<u64>().is_ok());
    let mut problems = Vec::new();
    if !marker_ok {
        problems.push(format!(
            "{BUNDLE_MARKER} does not name `{image}`: the step did not run in the bundle"
        ));
    }
    if !cgroup_ok {
        problems.push("the container is not in the job's cgroup".to_owned());
    }
    if !memory_ok {
        problems.push("the job's memory limit does not apply in the container".to_owned());
    }
    NodeContainerCheck {
        node: node.to_owned(),
        ran: probe.job_id.is_some(),
        job_id: probe.job_id,
        release_seen: probe.codename.clone(),
        host_release,
        marker_ok,
        bundle_key: probe.marker.get(1).cloned(),
        cgroup: probe.cgroup.clone(),
        cgroup_ok,
        memory_limit: probe.memory.clone(),
        memory_ok,
        error: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// The last lines of a command's output, for an error.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn failed_node(node: &str, error: String) -> NodeContainerCheck {
    NodeContainerCheck {
        node: node.to_owned(),
        ran: false,
        job_id: None,
        release_seen: None,
        host_release: None,
        marker_ok: false,
        bundle_key: None,
        cgroup: None,
        cgroup_ok: false,
        memory_limit: None,
        memory_ok: false,
        error: Some(error),
    }
}

/// The `srun` argv that runs the probe on `node` in `bundle`, bounded by `timeout`.
pub(crate) fn srun_argv(node: &str, bundle: &str, timeout: Duration) -> Vec<String> {
    let secs = timeout.as_secs().max(1).to_string();
    let mem = format!("--mem={JOB_MEM_MIB}M");
    let container = format!("--container={bundle}");
    argv(&[
        "timeout", &secs, "srun", "-N1", "-n1", "-w", node, &mem, &container, "/bin/sh", "-c",
        PROBE,
    ])
}

/// Runs the check (see the module docs) with `image` (the file's first image when `None`):
/// jobs are submitted on the first controller, one node after another, each bounded by
/// `timeout`. A node's failure is recorded in its result; only a check that cannot start is
/// an error (among them a bundle that is not built, found on the first node).
pub async fn check_containers<E: Executor>(
    exec: &E,
    cluster: &Cluster,
    image: Option<&str>,
    timeout: Duration,
) -> Result<ContainerCheck, ContainerCheckError> {
    let containers = cluster.containers.as_ref().ok_or_else(|| {
        ContainerCheckError::Nothing("the cluster file has no `containers:` section".into())
    })?;
    let img = match image {
        Some(name) => containers
            .images
            .iter()
            .find(|i| i.name.as_str() == name)
            .ok_or_else(|| ContainerCheckError::UnknownImage(name.to_owned()))?,
        None => containers.images.first().ok_or_else(|| {
            ContainerCheckError::Nothing("the `containers:` section has no image".into())
        })?,
    };
    let ctl = cluster
        .controllers()
        .next()
        .ok_or_else(|| ContainerCheckError::Nothing("the cluster has no controller".into()))?;
    let nodes: Vec<&Node> = container_nodes(cluster);
    let first = nodes
        .first()
        .ok_or_else(|| ContainerCheckError::Nothing("no node runs containers".into()))?;
    let name = img.name.as_str();
    let bundle = format!("{}/{name}", containers.bundles.trim_end_matches('/'));
    let config = format!("{bundle}/config.json");
    if run_ok(exec, first.name.as_str(), &["test", "-f", &config])
        .await
        .is_err()
    {
        return Err(ContainerCheckError::NotBuilt {
            image: name.to_owned(),
            node: first.name.to_string(),
            bundle,
        });
    }
    let constrain_ram = cluster
        .slurm
        .as_ref()
        .is_some_and(|s| s.constrain_ram_space);

    let mut results = Vec::new();
    for n in &nodes {
        let node = n.name.as_str();
        let host_release = run_ok(exec, node, &["cat", "/etc/os-release"])
            .await
            .ok()
            .and_then(|o| codename(&o));
        let out = exec
            .run(ctl.name.as_str(), &srun_argv(node, &bundle, timeout))
            .await;
        let r = match out {
            Ok(o) if o.status == Some(0) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let probe = parse_probe(&text);
                if probe.job_id.is_none() {
                    let mut r = failed_node(
                        node,
                        format!(
                            "srun --container printed no job id; its output: {:?}, its messages: {:?}",
                            tail(&text),
                            tail(&String::from_utf8_lossy(&o.stderr))
                        ),
                    );
                    r.host_release = host_release;
                    r
                } else {
                    judge(node, name, constrain_ram, &probe, host_release)
                }
            }
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr).trim().to_owned();
                let mut r = failed_node(
                    node,
                    format!(
                        "srun --container exited with {}: {err}",
                        o.status
                            .map_or_else(|| "a signal".to_owned(), |s| s.to_string())
                    ),
                );
                r.host_release = host_release;
                r
            }
            Err(e) => failed_node(node, e.to_string()),
        };
        results.push(r);
    }
    let ok = !results.is_empty() && results.iter().all(NodeContainerCheck::ok);
    Ok(ContainerCheck {
        image: name.to_owned(),
        bundle,
        runtime: containers.runtime.as_str().to_owned(),
        nodes: results,
        ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "job=42\n@@marker\nbase\nabc123\n@@os\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nVERSION_CODENAME=trixie\n@@cgroup\n0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n@@memory\n67108864\n";

    #[test]
    fn a_step_in_the_bundle_and_the_jobs_cgroup_passes() {
        let p = parse_probe(OUT);
        assert_eq!(p.job_id, Some(42));
        assert_eq!(p.codename.as_deref(), Some("trixie"));
        let r = judge("cn1", "base", true, &p, Some("bookworm".into()));
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.bundle_key.as_deref(), Some("abc123"));
    }

    #[test]
    fn the_report_has_a_line_per_node_and_a_verdict() {
        let good = judge(
            "cn1",
            "base",
            true,
            &parse_probe(OUT),
            Some("bookworm".into()),
        );
        let bad = failed_node("cn2", "srun --container exited with 1: no".into());
        let report = ContainerCheck {
            image: "base".into(),
            bundle: "/shared/containers/base".into(),
            runtime: "crun".into(),
            ok: false,
            nodes: vec![good, bad],
        };
        let lines = report.lines();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("cn1: ok: job 42 in trixie (node bookworm)"),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with("cn2: FAILED"), "{}", lines[1]);
        assert_eq!(lines[2], "containers (base with crun): FAILED");
    }

    #[test]
    fn a_step_outside_the_bundle_or_the_cgroup_fails() {
        let out = OUT
            .replace("base\n", "")
            .replace("job_42", "job_7")
            .replace("67108864", "max");
        let r = judge("cn1", "base", true, &parse_probe(&out), None);
        assert!(!r.marker_ok && !r.cgroup_ok && !r.memory_ok);
        let e = r.error.unwrap_or_default();
        assert!(e.contains("did not run in the bundle"), "{e}");
        // Without ConstrainRAMSpace an unlimited cgroup is fine.
        assert!(
            judge(
                "cn1",
                "base",
                false,
                &parse_probe(OUT.replace("67108864", "max").as_str()),
                None
            )
            .memory_ok
        );
    }
}
