//! `up`: preflight, the seeds, libvirt (network → pool → volumes → domains → start), then
//! every node on its own as soon as it answers over SSH (base configuration, its SLURM
//! phases), the cluster-wide SLURM checks, BeeGFS.

use std::time::{Duration, Instant};

use hpc_libvirt::{LifecycleError, Outcome, kind_name};
use hpc_remote::Executor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::{Event, Layer, Recorder, Timings};
use crate::nodes::{SshWait, ready, ready_all};
use crate::session::{Connector, Session, is_local, runtime};
use crate::slurm::SecretUse;

/// How far `up` goes after the VMs start.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Stop once the VMs run: no SSH wait, no node setup.
    pub no_ssh: bool,
    /// How long to wait for SSH on every node.
    pub ssh_timeout: Duration,
    /// Nodes worked on at once over SSH (`None`: all of them).
    pub parallel: Option<usize>,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            no_ssh: false,
            ssh_timeout: Duration::from_secs(600),
            parallel: None,
        }
    }
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpReport {
    /// The cluster.
    pub cluster: String,
    /// Everything changed: libvirt objects created, updated or started, and host steps
    /// changed on the hypervisor hosts and on the nodes (0 on an unchanged, running
    /// cluster).
    pub changes: usize,
    /// libvirt objects created.
    pub created: usize,
    /// libvirt objects redefined.
    pub updated: usize,
    /// libvirt objects started.
    pub started: usize,
    /// libvirt objects left as they were.
    pub unchanged: usize,
    /// Host steps changed on the hypervisor hosts (the cluster network across them).
    pub host_changes: usize,
    /// Host steps changed on the nodes.
    pub node_changes: usize,
    /// Wall time.
    pub seconds: f64,
    /// Wall time of the libvirt layer.
    pub libvirt_seconds: f64,
    /// Warnings (preflight, seeds, BeeGFS).
    pub warnings: Vec<String>,
    /// Per node, its own times.
    pub nodes: Timings,
}

impl Session {
    /// Bring the cluster up with the session's own SSH executor (the cluster's key, host
    /// keys pinned on first contact). Blocks; runs its own async runtime for the SSH side,
    /// so call it outside one (or in `spawn_blocking`).
    pub fn up<C: Connector>(&self, connector: &C, opts: &UpOptions) -> Result<UpReport> {
        let exec = if opts.no_ssh {
            None
        } else {
            Some(self.ssh_executor(opts.parallel)?)
        };
        let report = self.up_with(connector, exec.as_ref(), opts);
        if let Some(exec) = exec {
            runtime()?.block_on(exec.close());
        }
        report
    }

    /// [`Session::up`] with any executor for the nodes (`None`: stop once the VMs run).
    pub fn up_with<C: Connector, E: Executor>(
        &self,
        connector: &C,
        exec: Option<&E>,
        opts: &UpOptions,
    ) -> Result<UpReport> {
        let name = self.cluster.name.as_str();
        let _lock = self.state.lock(name)?;
        self.check_image_release()?;
        let mut journal = self.state.journal(name)?;
        let started = Instant::now();
        let rec = Recorder::new(&*self.events, started);
        let t = rec.layer_started(Layer::Libvirt);
        let uris = self.uris();
        // What each node applies to itself while it boots (see seed.rs); a node on another
        // host gets its seed uploaded into that host's pool (so preflight looks for it).
        let slurm = self.slurm_plan(SecretUse::Keep)?;
        crate::seed::write(&self.state, &self.cluster, slurm.as_ref())?;
        // Every connection is checked before anything is made on any of them.
        let mut hvs = Vec::with_capacity(uris.len());
        for uri in &uris {
            if self.cancel.is_cancelled() {
                return Err(self.cancelled(&rec));
            }
            let hv = connector.connect(uri)?;
            if is_local(uri) {
                self.create_share_dirs(uri)?;
            }
            let preflight = hpc_libvirt::preflight_report(&self.cluster, &self.libvirt, &hv);
            for w in &preflight.warnings {
                rec.warn(format!("preflight on {uri}: {w}"));
            }
            if !preflight.problems.is_empty() {
                return Err(Error::Preflight {
                    uri: uri.clone(),
                    problems: preflight.problems.iter().map(ToString::to_string).collect(),
                });
            }
            hvs.push(hv);
        }
        // The shares of nodes on other hosts are those hosts' directories.
        let hosts = if self.cluster.hosts.is_empty() {
            None
        } else {
            Some(self.host_executors()?)
        };
        if let Some(x) = &hosts {
            let problems =
                runtime()?.block_on(crate::fabric::remote_share_dirs(&self.cluster, x))?;
            if let Some((uri, problems)) = problems.into_iter().next() {
                return Err(Error::Preflight { uri, problems });
            }
        }
        if uris.iter().any(|u| is_local(u)) {
            let console = self.state.console_dir();
            fs_err::create_dir_all(&console).map_err(Error::io("cannot create", &console))?;
        }

        // Nodes on several hosts: the other hosts' bridges (and VXLAN devices) first, so that
        // their libvirt networks and domains find them.
        let fabric = crate::fabric::fabric(&self.cluster);
        let mut host_changes = 0;
        let mut observed = Vec::new();
        if let (Some(f), Some(x)) = (&fabric, &hosts) {
            let others: Vec<&str> = f
                .hosts
                .iter()
                .filter(|h| !h.bridge_by_libvirt)
                .map(|h| h.name.as_str())
                .collect();
            rec.note(format!(
                "joining the cluster network across hosts: bridge {} and VXLAN {} (VNI {}) on {}",
                f.bridge,
                f.vxlan_device().unwrap_or_default(),
                f.vni,
                others.join(", ")
            ));
            let (o, n) = runtime()?.block_on(crate::fabric::up(x, f, &others))?;
            observed = o;
            host_changes += n;
        }

        rec.note(format!("bringing up {name} on {}", uris.join(", ")));
        let refs: Vec<&C::Hypervisor> = hvs.iter().collect();
        let reports =
            match hpc_libvirt::up_all(&self.libvirt, &refs, &mut journal, self.cancel.flag()) {
                Ok(r) => r,
                Err(e) => {
                    // Every host goes back to how it was: libvirt has unwound every
                    // connection; the bridges this run made go too.
                    if let (Some(f), Some(x)) = (&fabric, &hosts)
                        && let Err(u) = runtime()?.block_on(crate::fabric::unwind(x, f, &observed))
                    {
                        rec.warn(format!("unwinding the network across hosts: {u}"));
                    }
                    if was_cancelled(&e) {
                        return Err(self.cancelled(&rec));
                    }
                    return Err(Error::Libvirt {
                        action: "up",
                        uri: failed_uri(&e).unwrap_or_else(|| uris.join(", ")),
                        source: e,
                    });
                }
            };
        let mut applied = Vec::new();
        for (uri, report) in uris.iter().zip(reports) {
            for s in &report.stale {
                rec.emit(Event::Stale {
                    uri: uri.clone(),
                    kind: kind_name(&s.kind).to_owned(),
                    name: s.name.clone(),
                });
            }
            for a in &report.objects {
                rec.emit(Event::Object {
                    uri: uri.clone(),
                    kind: kind_name(&a.kind).to_owned(),
                    name: a.name.clone(),
                    outcome: format!("{:?}", a.outcome).to_lowercase(),
                });
            }
            applied.extend(report.objects);
        }
        // The primary host's VXLAN device, on the bridge its libvirt network made.
        if let (Some(f), Some(x)) = (&fabric, &hosts) {
            let primary: Vec<&str> = f
                .hosts
                .iter()
                .filter(|h| h.bridge_by_libvirt)
                .map(|h| h.name.as_str())
                .collect();
            let (_, n) = runtime()?.block_on(crate::fabric::up(x, f, &primary))?;
            host_changes += n;
        }
        rec.layer_finished(Layer::Libvirt, t);
        let libvirt_seconds = started.elapsed().as_secs_f64();
        if let Some(exec) = exec {
            rec.note(format!(
                "libvirt done in {libvirt_seconds:.1}s; each node is configured as soon as it answers over SSH (at most {}s)",
                opts.ssh_timeout.as_secs()
            ));
            let wait = SshWait {
                deadline: Instant::now() + opts.ssh_timeout,
                timeout: opts.ssh_timeout,
            };
            runtime()?.block_on(async {
                tokio::select! {
                    // Cancel first: a phase that asks for it stops before the next one starts.
                    biased;
                    () = self.cancel.cancelled() => Err(self.cancelled(&rec)),
                    r = self.configure_nodes(exec, &rec, wait) => r,
                }
            })?;
        }
        let (nodes, warnings, node_changes) = rec.finish();
        let count = |o: Outcome| applied.iter().filter(|a| a.outcome == o).count();
        let (created, updated, started_n, unchanged) = (
            count(Outcome::Created),
            count(Outcome::Updated),
            count(Outcome::Started),
            count(Outcome::Unchanged),
        );
        Ok(UpReport {
            cluster: name.to_owned(),
            changes: created + updated + started_n + host_changes + node_changes,
            created,
            updated,
            started: started_n,
            unchanged,
            host_changes,
            node_changes,
            seconds: started.elapsed().as_secs_f64(),
            libvirt_seconds,
            warnings,
            nodes,
        })
    }

    /// Every node as it comes up: base configuration, SLURM, then BeeGFS.
    async fn configure_nodes<E: Executor>(
        &self,
        exec: &E,
        rec: &Recorder<'_>,
        wait: SshWait,
    ) -> Result<()> {
        let t = rec.layer_started(Layer::Node);
        if self.cluster.slurm.is_some() {
            let ready = |name: String| ready(self, exec, rec, wait, name);
            crate::slurm::deploy(self, exec, rec, ready).await?;
        } else {
            ready_all(self, exec, rec, wait).await?;
        }
        rec.layer_finished(Layer::Node, t);
        if self.cluster.beegfs.is_some() {
            let t = rec.layer_started(Layer::Beegfs);
            crate::beegfs::deploy(self, exec, rec).await?;
            rec.layer_finished(Layer::Beegfs, t);
        }
        crate::stack::deploy(self, exec, rec).await?;
        Ok(())
    }

    /// Refuse a base image hpc-up built for another Debian release than the file's
    /// `image.release` (its manifest, `<base>.json`, says which). An image without a manifest
    /// (not built by hpc-up) is taken as it is. Only this machine's file is read: with every
    /// node on a remote connection the base image lives on the remote hosts.
    pub(crate) fn check_image_release(&self) -> Result<()> {
        if !self.uris().iter().any(|u| is_local(u)) {
            return Ok(());
        }
        let base = &self.cluster.image.base;
        let Some(manifest) = hpc_image::read_manifest(base)? else {
            return Ok(());
        };
        let file_release = self.cluster.image.release;
        if manifest.release == file_release {
            return Ok(());
        }
        Err(Error::ImageRelease {
            image: base.clone(),
            file_release,
            image_release: manifest.release,
        })
    }

    /// Host directories of shares that ask for it (`create: true`), on this connection's
    /// nodes.
    fn create_share_dirs(&self, uri: &str) -> Result<()> {
        for n in self.cluster.nodes.iter().filter(|n| n.uri.as_str() == uri) {
            for m in n
                .virtiofs
                .iter()
                .filter(|m| m.create && !m.host_path.exists())
            {
                crate::state::private_dir(&m.host_path, 0o755)?;
            }
        }
        Ok(())
    }
}

fn was_cancelled(e: &LifecycleError) -> bool {
    e.is_cancelled()
}

/// The connection an `up_all` failed on.
fn failed_uri(e: &LifecycleError) -> Option<String> {
    match e {
        LifecycleError::HostFailed { uri, .. } => Some(uri.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests panic on failure

    use std::path::Path;

    use super::*;

    fn session(dir: &Path, release: &str, uri: &str) -> Session {
        let text = format!(
            "name: t\nlibvirt: {{uri: \"{uri}\"}}\nnetwork: {{cidr: 10.1.0.0/24, bridge: br-t}}\nimage:\n  base: {}/base.qcow2\n  release: {release}\nstate-dir: {}/state\ncontroller: {{nodes: [{{name: ctl}}]}}\n",
            dir.display(),
            dir.display()
        );
        Session::new(hpc_config::load_str("t.yaml", &text, &|_| None).unwrap())
    }

    fn manifest(dir: &Path, release: &str) {
        fs_err::write(
            dir.join("base.qcow2.json"),
            format!("{{\"key\": \"k\", \"recipe_version\": 2, \"release\": \"{release}\", \"packages\": []}}\n"),
        )
        .unwrap();
    }

    #[test]
    fn an_image_of_another_release_is_refused() {
        let d = tempfile::tempdir().unwrap();
        manifest(d.path(), "bookworm");
        let e = session(d.path(), "trixie", "qemu:///system")
            .check_image_release()
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::ImageRelease {
                    file_release: hpc_config::DebianRelease::Trixie,
                    image_release: hpc_config::DebianRelease::Bookworm,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        let base = d.path().join("base.qcow2");
        for want in [
            &format!("{} was built for Debian bookworm", base.display()),
            "the cluster file says `image.release: trixie`",
            "nothing was created",
            "`hpc-up image build <cluster file>`",
            "or set `image.release: bookworm`",
        ] {
            assert!(msg.contains(want), "{want:?} not in {msg}");
        }
    }

    #[test]
    fn an_image_of_the_same_release_passes() {
        let d = tempfile::tempdir().unwrap();
        manifest(d.path(), "trixie");
        session(d.path(), "trixie", "qemu:///system")
            .check_image_release()
            .unwrap();
        manifest(d.path(), "bookworm");
        session(d.path(), "bookworm", "qemu:///system")
            .check_image_release()
            .unwrap();
    }

    #[test]
    fn manifests_from_before_releases_are_bookworm() {
        let d = tempfile::tempdir().unwrap();
        fs_err::write(
            d.path().join("base.qcow2.json"),
            "{\"key\": \"k\", \"recipe_version\": 2, \"packages\": []}\n",
        )
        .unwrap();
        session(d.path(), "bookworm", "qemu:///system")
            .check_image_release()
            .unwrap();
        let e = session(d.path(), "trixie", "qemu:///system")
            .check_image_release()
            .unwrap_err();
        assert!(matches!(e, Error::ImageRelease { .. }), "{e:?}");
    }

    #[test]
    fn images_without_a_manifest_are_taken_as_they_are() {
        let d = tempfile::tempdir().unwrap();
        fs_err::write(d.path().join("base.qcow2"), "not built by hpc-up").unwrap();
        session(d.path(), "trixie", "qemu:///system")
            .check_image_release()
            .unwrap();
    }

    #[test]
    fn a_broken_manifest_is_named() {
        let d = tempfile::tempdir().unwrap();
        fs_err::write(d.path().join("base.qcow2.json"), "{").unwrap();
        let e = session(d.path(), "bookworm", "qemu:///system")
            .check_image_release()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("base.qcow2.json is not an hpc-up image manifest"),
            "{e}"
        );
    }

    #[test]
    fn remote_only_clusters_are_not_checked_here() {
        let d = tempfile::tempdir().unwrap();
        manifest(d.path(), "bookworm");
        session(d.path(), "trixie", "qemu+ssh://root@host2/system")
            .check_image_release()
            .unwrap();
    }
}
