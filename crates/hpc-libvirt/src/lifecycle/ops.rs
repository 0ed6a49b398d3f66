//! `status`, `start`, `stop`.

use super::*;

/// Per domain of the plan: state, MAC, vCPUs and memory (live where the domain is defined,
/// planned otherwise) and the IP of the plan's static DHCP entry for its MAC.
pub fn status<H: Hypervisor>(plan: &LibvirtPlan, hv: &H) -> Result<Vec<NodeStatus>> {
    // The leases of a cluster spread over hosts are all in the primary's network.
    let hosts: Vec<(String, String)> = plan
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Network)
        .flat_map(|o| dhcp_hosts(&o.xml))
        .collect();
    let plan = &on_connection(plan, hv.uri());
    let mut out = Vec::new();
    for o in plan.objects.iter().filter(|o| o.kind == ObjectKind::Domain) {
        let live = hv.lookup(ObjectKind::Domain, None, &o.name)?;
        let state = match &live {
            Some(_) => Some(hv.domain_state(&o.name)?),
            None => None,
        };
        let facts = domain_facts(live.as_ref().map_or(&o.xml, |l| &l.xml));
        let mac = facts.macs.first().cloned();
        let ip = mac.as_ref().and_then(|m| {
            hosts
                .iter()
                .find(|(hm, _)| hm == m)
                .map(|(_, ip)| ip.clone())
        });
        let node = owner(&o.xml)
            .and_then(|(_, node)| node)
            .unwrap_or_else(|| o.name.clone());
        out.push(NodeStatus {
            node,
            domain: o.name.clone(),
            state,
            mac,
            ip,
            vcpus: facts.vcpus,
            memory_kib: facts.memory_kib,
        });
    }
    Ok(out)
}

/// Start what is defined but not running: networks and pools, then domains. Returns the
/// domains started.
pub fn start<H: Hypervisor>(plan: &LibvirtPlan, hv: &H) -> Result<Vec<String>> {
    let plan = &on_connection(plan, hv.uri());
    let mut started = Vec::new();
    for kind in [ObjectKind::Network, ObjectKind::Pool, ObjectKind::Domain] {
        for o in plan.objects.iter().filter(|o| o.kind == kind) {
            let Some(live) = hv.lookup(kind, None, &o.name)? else {
                return Err(LifecycleError::NotDefined {
                    kind,
                    name: o.name.clone(),
                });
            };
            match kind {
                ObjectKind::Network if !live.active => hv.start_network(&o.name)?,
                ObjectKind::Pool if !live.active => hv.start_pool(&o.name)?,
                ObjectKind::Domain if !hv.domain_state(&o.name)?.is_active() => {
                    hv.start_domain(&o.name)?;
                    started.push(o.name.clone());
                }
                _ => {}
            }
        }
    }
    Ok(started)
}

/// Shut the plan's running domains down: ask each guest, wait up to `timeout` for all of
/// them, then power off the ones still running. Networks and pools stay up.
pub fn stop<H: Hypervisor>(plan: &LibvirtPlan, hv: &H, timeout: Duration) -> Result<StopReport> {
    let plan = &on_connection(plan, hv.uri());
    let mut waiting = Vec::new();
    for o in plan.objects.iter().filter(|o| o.kind == ObjectKind::Domain) {
        if hv.lookup(ObjectKind::Domain, None, &o.name)?.is_none() {
            continue;
        }
        if hv.domain_state(&o.name)?.is_active() {
            hv.shutdown_domain(&o.name)?;
            waiting.push(o.name.clone());
        }
    }
    let mut report = StopReport::default();
    let deadline = Instant::now() + timeout;
    loop {
        let mut still = Vec::new();
        for name in waiting {
            if hv.domain_state(&name)?.is_active() {
                still.push(name);
            } else {
                report.shut_down.push(name);
            }
        }
        waiting = still;
        if waiting.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(
            STOP_POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    for name in waiting {
        tracing::warn!(domain = %name, "did not shut down in time; powering off");
        hv.destroy_domain(&name)?;
        report.destroyed.push(name);
    }
    Ok(report)
}
