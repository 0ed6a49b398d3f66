//! `down`: remove everything a cluster owns.

use super::*;

struct Down<'a, H> {
    hv: &'a H,
    journal: &'a mut Journal,
    report: DownReport,
    errors: Vec<LifecycleError>,
}

impl<H: Hypervisor> Down<'_, H> {
    fn note(&mut self, r: Result<()>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.errors.push(e);
                false
            }
        }
    }

    fn remove(&mut self, kind: ObjectKind, pool: Option<&str>, name: &str) {
        let hv = self.hv;
        let result = (|| -> Result<bool> {
            let Some(live) = hv.lookup(kind, pool, name)? else {
                return Ok(false);
            };
            match kind {
                ObjectKind::Domain => {
                    if live.active || hv.domain_state(name)?.is_active() {
                        hv.destroy_domain(name)?;
                    }
                    // A transient object (undefined while running) is gone once stopped.
                    if hv.lookup(kind, None, name)?.is_some() {
                        hv.undefine_domain(name)?;
                    }
                }
                ObjectKind::Network => {
                    if live.active {
                        hv.destroy_network(name)?;
                    }
                    if hv.lookup(kind, None, name)?.is_some() {
                        hv.undefine_network(name)?;
                    }
                }
                ObjectKind::Pool => {
                    if live.active {
                        hv.destroy_pool(name)?;
                    }
                    delete_pool_dir(hv, name);
                    if hv.lookup(kind, None, name)?.is_some() {
                        hv.undefine_pool(name)?;
                    }
                }
                ObjectKind::Volume => hv.delete_volume(pool.unwrap_or_default(), name)?,
            }
            Ok(true)
        })();
        match result {
            Ok(existed) => {
                if existed {
                    tracing::info!(kind = kind_name(&kind), name, "removed");
                    self.report.removed.push(Removed {
                        kind,
                        name: name.to_owned(),
                        pool: pool.map(str::to_owned),
                    });
                }
                let r = self
                    .journal
                    .remove(self.hv.uri(), kind, pool, name)
                    .map_err(Into::into);
                self.note(r);
            }
            Err(e) => self.errors.push(e),
        }
    }
}

fn push_unique(v: &mut Vec<(Option<String>, String)>, pool: Option<String>, name: String) {
    if !v.iter().any(|(p, n)| *p == pool && *n == name) {
        v.push((pool, name));
    }
}

/// Remove every libvirt object of `cluster`: domains (powered off, undefined), volumes
/// (deleted with their files), the pool, the network — everything the journal names and
/// everything found on the connection by metadata or name, so it also cleans up after a
/// killed `up` or a lost journal. It goes on past failures; the journal keeps what could
/// not be removed and is deleted once everything is gone.
pub fn down<H: Hypervisor>(cluster: &str, hv: &H, journal: &mut Journal) -> Result<DownReport> {
    let mut targets: [Vec<(Option<String>, String)>; 4] = Default::default();
    let slot = |k: ObjectKind| match k {
        ObjectKind::Domain => 0,
        ObjectKind::Volume => 1,
        ObjectKind::Pool => 2,
        ObjectKind::Network => 3,
    };
    for e in journal.entries().iter().filter(|e| e.uri == hv.uri()) {
        push_unique(&mut targets[slot(e.kind)], e.pool.clone(), e.name.clone());
    }
    let mut d = Down {
        hv,
        journal,
        report: DownReport::default(),
        errors: Vec::new(),
    };
    match scan_owned(cluster, hv) {
        Ok(live) => {
            for l in live {
                push_unique(&mut targets[slot(l.kind)], l.pool, l.name);
            }
        }
        Err(e) => d.errors.push(e),
    }
    let [domains, mut volumes, pools, networks] = targets;

    for (_, name) in &domains {
        d.remove(ObjectKind::Domain, None, name);
    }
    // Volumes are only visible in a running pool: start the cluster's pools that are not.
    let mut pool_names: Vec<String> = pools.iter().map(|(_, n)| n.clone()).collect();
    let own = cluster_pool(cluster);
    if !pool_names.contains(&own) {
        pool_names.push(own);
    }
    for name in &pool_names {
        match hv.lookup(ObjectKind::Pool, None, name) {
            Ok(Some(p)) if !p.active => {
                let r = hv.start_pool(name).map_err(Into::into);
                d.note(r);
            }
            Ok(_) => {}
            Err(e) => d.errors.push(e.into()),
        }
    }
    match hv.list(ObjectKind::Volume) {
        Ok(all) => {
            for v in all {
                let in_pool = v.pool.as_ref().is_some_and(|p| pool_names.contains(p));
                if in_pool && v.name.starts_with(&format!("{cluster}-")) {
                    push_unique(&mut volumes, v.pool, v.name);
                }
            }
        }
        Err(e) => d.errors.push(e.into()),
    }
    for (pool, name) in &volumes {
        d.remove(ObjectKind::Volume, pool.as_deref(), name);
    }
    for (_, name) in &pools {
        d.remove(ObjectKind::Pool, None, name);
    }
    for (_, name) in &networks {
        d.remove(ObjectKind::Network, None, name);
    }

    let Down {
        journal,
        report,
        errors,
        ..
    } = d;
    if errors.is_empty() {
        journal.clear_uri(hv.uri())?;
        Ok(report)
    } else {
        Err(LifecycleError::Incomplete {
            cluster: cluster.to_owned(),
            removed: report.removed,
            errors,
        })
    }
}

/// The stopped pool's directory goes too (on another host nothing else would remove it).
/// libvirt removes only an empty directory; one that still holds files that are not this
/// cluster's stays, with its definition removed all the same, so this never fails `down`.
pub(super) fn delete_pool_dir<H: Hypervisor>(hv: &H, name: &str) {
    if let Err(e) = hv.delete_pool(name) {
        tracing::warn!(pool = name, error = %e, "pool directory left in place");
    }
}
