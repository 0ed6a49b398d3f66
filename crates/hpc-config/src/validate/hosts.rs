//! `hosts:`: the libvirt hosts of a cluster spread over several, the `host` fields that
//! refer to them, and the placement of every node on one of them.
//!
//! Placement is deterministic: nodes pinned by a `host` field (their own, else their group's)
//! take their host's capacity first; then every other node, in cluster order, goes to the
//! host with the fewest vCPUs placed so far, then the least memory placed, then the one
//! listed first, among the hosts where it fits (a host without `capacity` fits anything).

use std::collections::{HashMap, HashSet};
use std::iter;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Ctx, Draft, ErrorKind, MEMORY_MIN};
use crate::file::{ClusterFile, LibvirtSettings, NodeGroup};
use crate::limits::{MAX_GROUP_NODES, MAX_HOSTS};
use crate::model::{Host, HostCapacity, Role};
use crate::types::{ByteSize, NodeName};

/// Check the `hosts:` list and resolve it (at most [`MAX_HOSTS`] hosts).
pub(super) fn resolve_hosts(cx: &mut Ctx<'_>, file: &ClusterFile, cidr: Ipv4Net) -> Vec<Host> {
    if file.hosts.len() > MAX_HOSTS {
        cx.err(
            format!("/hosts/{MAX_HOSTS}"),
            ErrorKind::TooMany {
                what: "hosts".into(),
                limit: MAX_HOSTS,
            },
        );
    }
    let list = &file.hosts[..file.hosts.len().min(MAX_HOSTS)];
    let mut names = HashSet::new();
    let mut uris: HashMap<&str, &str> = HashMap::new();
    let mut addresses: HashMap<Ipv4Addr, &str> = HashMap::new();
    let mut local: Option<&str> = None;
    let mut out = Vec::with_capacity(list.len());
    for (i, h) in list.iter().enumerate() {
        let at = format!("/hosts/{i}");
        let name = h.name.as_str();
        if !names.insert(name) {
            cx.err(
                format!("{at}/name"),
                ErrorKind::DuplicateHost {
                    name: name.to_owned(),
                },
            );
        }
        if let Some(other) = uris.get(h.uri.as_str()) {
            cx.err(
                format!("{at}/uri"),
                ErrorKind::DuplicateHostUri {
                    uri: h.uri.to_string(),
                    other: (*other).to_owned(),
                },
            );
        } else {
            uris.insert(h.uri.as_str(), name);
            if h.uri.remote_host().is_none() {
                match local {
                    Some(other) => cx.err(
                        format!("{at}/uri"),
                        ErrorKind::TwoLocalHosts {
                            host: name.to_owned(),
                            uri: h.uri.to_string(),
                            other: other.to_owned(),
                        },
                    ),
                    None => local = Some(name),
                }
            }
        }
        match h.address {
            Some(ip) => check_address(cx, &format!("{at}/address"), name, ip, cidr, &mut addresses),
            None if list.len() >= 2 => cx.err(
                &at,
                ErrorKind::HostNeedsAddress {
                    host: name.to_owned(),
                    count: list.len(),
                },
            ),
            None => {}
        }
        let capacity = h.capacity.map(|c| {
            if c.vcpus == 0 {
                cx.err(
                    format!("{at}/capacity/vcpus"),
                    ErrorKind::OutOfRange {
                        what: "capacity vcpus",
                        value: "0".into(),
                        range: format!("1 to {}", u32::MAX),
                    },
                );
            }
            if c.memory < MEMORY_MIN {
                cx.err(
                    format!("{at}/capacity/memory"),
                    ErrorKind::OutOfRange {
                        what: "capacity memory",
                        value: c.memory.to_string(),
                        range: format!("at least {MEMORY_MIN} (the smallest node)"),
                    },
                );
            }
            HostCapacity {
                vcpus: c.vcpus,
                memory: c.memory,
            }
        });
        out.push(Host {
            name: h.name.clone(),
            uri: h.uri.clone(),
            address: h.address,
            capacity,
        });
    }
    out
}

fn check_address<'a>(
    cx: &mut Ctx<'_>,
    at: &str,
    host: &'a str,
    ip: Ipv4Addr,
    cidr: Ipv4Net,
    seen: &mut HashMap<Ipv4Addr, &'a str>,
) {
    // 0.0.0.0/8 ("this network"), loopback, multicast, and 240.0.0.0/4 with the broadcast
    // address: nothing another host can send to.
    let first = ip.octets()[0];
    if first == 0 || ip.is_loopback() || first >= 224 {
        cx.err(
            at,
            ErrorKind::BadValue {
                what: "host address",
                value: ip.to_string(),
                reason: "the other hosts cannot reach a host on a `0.x`, loopback, multicast, reserved or broadcast address".into(),
            },
        );
    } else if cidr.contains(&ip) {
        cx.err(
            at,
            ErrorKind::HostAddressInNetwork {
                host: host.to_owned(),
                ip,
                cidr: cidr.to_string(),
            },
        );
    } else if let Some(other) = seen.get(&ip) {
        cx.err(
            at,
            ErrorKind::DuplicateHostAddress {
                ip,
                other: (*other).to_owned(),
            },
        );
    } else {
        seen.insert(ip, host);
    }
}

/// Check every `host` field (controller, compute groups, listed nodes) against `hosts`, and
/// refuse `libvirt.uri` anywhere when there is a `hosts:` list.
pub(super) fn check_host_refs(cx: &mut Ctx<'_>, file: &ClusterFile, hosts: &[Host]) {
    let known: Vec<String> = hosts.iter().map(|h| format!("`{}`", h.name)).collect();
    let known = known.join(", ");
    let first = hosts.first().map(|h| h.name.to_string());
    let check = |cx: &mut Ctx<'_>, at: &str, host: Option<&NodeName>, libvirt: &LibvirtSettings| {
        if let Some(name) = host {
            let kind = if hosts.is_empty() {
                Some(ErrorKind::NoHosts {
                    name: name.to_string(),
                })
            } else if hosts.iter().any(|h| h.name == *name) {
                None
            } else {
                Some(ErrorKind::UnknownHost {
                    name: name.to_string(),
                    known: known.clone(),
                })
            };
            if let Some(kind) = kind {
                cx.err(format!("{at}/host"), kind);
            }
        }
        if let (Some(example), Some(_)) = (&first, &libvirt.uri) {
            cx.err(
                format!("{at}/libvirt/uri"),
                ErrorKind::UriWithHosts {
                    example: example.clone(),
                },
            );
        }
    };
    check(cx, "", None, &file.libvirt);
    let groups: Vec<(String, &NodeGroup)> =
        iter::once(("/controller".to_owned(), &file.controller))
            .chain(
                file.compute
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (format!("/compute/{i}"), g)),
            )
            .collect();
    for (at, g) in groups {
        check(cx, &at, g.host.as_ref(), &g.libvirt);
        let listed = g.nodes.iter().flatten().take(MAX_GROUP_NODES as usize);
        for (i, n) in listed.enumerate() {
            check(cx, &format!("{at}/nodes/{i}"), n.host.as_ref(), &n.libvirt);
        }
    }
}

/// What is placed on one host so far: vCPUs and bytes of memory.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    vcpus: u64,
    memory: u64,
}

impl Load {
    fn add(&mut self, d: &Draft) {
        self.vcpus = self.vcpus.saturating_add(u64::from(d.vcpus));
        self.memory = self.memory.saturating_add(d.memory.bytes());
    }

    /// Whether `d` still fits within `capacity` (anything fits without one).
    fn fits(self, capacity: Option<HostCapacity>, d: &Draft) -> bool {
        capacity.is_none_or(|c| {
            self.vcpus.saturating_add(u64::from(d.vcpus)) <= u64::from(c.vcpus)
                && self.memory.saturating_add(d.memory.bytes()) <= c.memory.bytes()
        })
    }

    /// What is left of `capacity`, as text.
    fn free(self, capacity: Option<HostCapacity>) -> String {
        match capacity {
            Some(c) => resources(
                u64::from(c.vcpus).saturating_sub(self.vcpus),
                ByteSize::from_bytes(c.memory.bytes().saturating_sub(self.memory)),
            ),
            None => "no limit".to_owned(),
        }
    }
}

/// `2 vCPUs, 4GiB`.
fn resources(vcpus: u64, memory: ByteSize) -> String {
    let s = if vcpus == 1 { "" } else { "s" };
    format!("{vcpus} vCPU{s}, {memory}")
}

/// The host (an index into `hosts`) of every draft, `None` without a `hosts:` list and for a
/// node that could not be placed (reported).
pub(super) fn place(cx: &mut Ctx<'_>, hosts: &[Host], drafts: &[Draft]) -> Vec<Option<usize>> {
    let mut out = vec![None; drafts.len()];
    if hosts.is_empty() {
        return out;
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, h) in hosts.iter().enumerate() {
        index.entry(h.name.as_str()).or_insert(i);
    }
    let mut load = vec![Load::default(); hosts.len()];
    // One problem per place in the file: a counted group's nodes are all alike, so after
    // one does not fit, the others do not either.
    let mut reported: HashSet<&str> = HashSet::new();

    // Pinned nodes first. A `host` naming no host is reported by `check_host_refs`.
    for (i, d) in drafts.iter().enumerate() {
        let Some((name, at)) = &d.host else { continue };
        let Some(&h) = index.get(name.as_str()) else {
            continue;
        };
        let capacity = hosts[h].capacity;
        if load[h].fits(capacity, d) {
            load[h].add(d);
            out[i] = Some(h);
        } else if reported.insert(at) {
            cx.err(
                at,
                ErrorKind::PinnedDoesNotFit {
                    node: d.name.to_string(),
                    host: name.to_string(),
                    needs: resources(u64::from(d.vcpus), d.memory),
                    free: load[h].free(capacity),
                },
            );
        }
    }

    // Then the others, in cluster order: the least loaded host where the node fits.
    for (i, d) in drafts.iter().enumerate() {
        if d.host.is_some() {
            continue;
        }
        let best = (0..hosts.len())
            .filter(|&h| load[h].fits(hosts[h].capacity, d))
            .min_by_key(|&h| (load[h].vcpus, load[h].memory, h));
        match best {
            Some(h) => {
                load[h].add(d);
                out[i] = Some(h);
            }
            None if reported.insert(&d.place_at) => {
                let free: Vec<String> = hosts
                    .iter()
                    .zip(&load)
                    .map(|(h, l)| format!("`{}` {}", h.name, l.free(h.capacity)))
                    .collect();
                cx.err(
                    &d.place_at,
                    ErrorKind::NoHostFits {
                        node: d.name.to_string(),
                        needs: resources(u64::from(d.vcpus), d.memory),
                        free: free.join("; "),
                    },
                );
            }
            None => {}
        }
    }
    out
}

/// With two or more hosts, the *primary* host — the host of the first controller node — must
/// be this machine (a local URI): hpc-up runs there and reaches every node through that
/// host's bridge (the other hosts join it over the cluster's tunnels), and that host's
/// network is the one DHCP server of the cluster. Reported at the controller's `host` field
/// when the file pins it, else at the offending host's `uri`.
pub(super) fn check_primary(
    cx: &mut Ctx<'_>,
    hosts: &[Host],
    drafts: &[Draft],
    placement: &[Option<usize>],
) {
    if hosts.len() < 2 {
        return;
    }
    let Some((i, d)) = drafts
        .iter()
        .enumerate()
        .find(|(_, d)| d.role == Role::Controller)
    else {
        return;
    };
    let Some(h) = placement.get(i).copied().flatten() else {
        return;
    };
    let Some(host) = hosts.get(h) else { return };
    if host.uri.remote_host().is_none() {
        return;
    }
    let at = match &d.host {
        Some((_, at)) => at.clone(),
        None => format!("/hosts/{h}/uri"),
    };
    let local = hosts
        .iter()
        .find(|h| h.uri.remote_host().is_none())
        .map(|h| h.name.to_string());
    cx.err(
        at,
        ErrorKind::PrimaryHostRemote {
            host: host.name.to_string(),
            uri: host.uri.to_string(),
            local,
        },
    );
}
