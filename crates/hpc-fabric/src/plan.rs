//! The pure planners: from a fabric and what a host has now ([`HostState`]) to the host
//! steps that bring it up or take it down. Only what differs becomes a step, so a host that
//! is already as planned gets an empty plan.

use std::net::IpAddr;

use hpc_remote::{HostPlan, RunCommand};

use crate::state::{Link, Vxlan, ZERO_MAC, argv};
use crate::{Fabric, FabricError, HostState};

fn cmd(plan: HostPlan, id: impl Into<String>, a: &[&str]) -> HostPlan {
    plan.step(id, RunCommand::new(argv(a)))
}

/// `ip link add` followed by the alias that marks the device as ours, in one step and one
/// shell: `ip link add` ignores `alias`, and a run stopped between two steps would leave a
/// device without it, which every later run (`down` included) refuses as someone else's.
fn create(plan: HostPlan, id: &str, dev: &str, alias: &str, add: &[&str]) -> HostPlan {
    let mut a = vec![
        "sh",
        "-c",
        r#"dev=$1 alias=$2; shift 2; ip link add name "$dev" "$@" && ip link set dev "$dev" alias "$alias""#,
        "hpc-up-fabric",
        dev,
        alias,
    ];
    a.extend_from_slice(add);
    cmd(plan, id, &a)
}

fn is_ours(link: &Link, alias: &str) -> bool {
    link.alias.as_deref() == Some(alias)
}

fn not_ours(fabric: &Fabric, host: &str, link: &Link) -> FabricError {
    FabricError::NotOurs {
        host: host.to_owned(),
        device: link.name.clone(),
        cluster: fabric.cluster.clone(),
        alias: link.alias.clone(),
    }
}

/// The steps that make `host`'s part of the fabric, given what the host has now.
///
/// Where hpc-up makes the bridge (not [`crate::FabricHost::bridge_by_libvirt`]): the bridge
/// exists (`ip link add name BR mtu MTU type bridge`), carries the alias
/// `hpc-up:<cluster>`, has the MTU and is up. Where libvirt makes it, it must exist (else
/// [`FabricError::BridgeMissing`]) and is left as it is. On every host the VXLAN device
/// exists with exactly the fabric's VNI, this host's underlay address as local address and
/// the fabric's port (one that differs is removed and made again), carries the alias, has
/// the MTU, is a port of the bridge and is up; its all-zero fdb entries are exactly the other
/// hosts' underlay addresses (missing ones appended, stale ones deleted).
///
/// A device of either name that does not carry this cluster's alias is refused
/// ([`FabricError::NotOurs`]), except libvirt's bridge where libvirt makes it.
///
/// Step ids: `bridge-remove`, `bridge-create` (with the alias), `bridge-mtu`, `bridge-up`,
/// `vxlan-remove`, `vxlan-create` (with the alias), `vxlan-mtu`, `vxlan-master`, `vxlan-up`,
/// `flood-add-<addr>`, `flood-remove-<addr>`; each a command that changes one thing.
pub fn up_plan(fabric: &Fabric, host: &str, state: &HostState) -> Result<HostPlan, FabricError> {
    fabric.validate()?;
    let me = fabric.host(host)?;
    let vx = fabric.vxlan_device()?;
    let br = fabric.bridge.as_str();
    let alias = fabric.alias();
    let mtu = fabric.mtu.to_string();

    // Refuse before planning anything.
    if let Some(l) = &state.vxlan
        && !is_ours(l, &alias)
    {
        return Err(not_ours(fabric, host, l));
    }
    match (&state.bridge, me.bridge_by_libvirt) {
        (None, true) => {
            return Err(FabricError::BridgeMissing {
                host: host.to_owned(),
                bridge: br.to_owned(),
            });
        }
        (Some(l), true) if l.kind.as_deref() != Some("bridge") => {
            return Err(FabricError::NotABridge {
                host: host.to_owned(),
                device: l.name.clone(),
                kind: l.kind.clone().unwrap_or_else(|| "device".to_owned()),
            });
        }
        (Some(l), false) if !is_ours(l, &alias) => return Err(not_ours(fabric, host, l)),
        _ => {}
    }

    let mut plan = HostPlan::new(host);
    // Whether the bridge is made in this plan: the VXLAN device is then no port of it yet.
    let mut bridge_new = false;
    if !me.bridge_by_libvirt {
        let make = match &state.bridge {
            None => true,
            Some(l) if l.kind.as_deref() != Some("bridge") => {
                plan = cmd(plan, "bridge-remove", &["ip", "link", "del", "dev", br]);
                true
            }
            Some(l) => {
                if l.mtu != u32::from(fabric.mtu) {
                    plan = cmd(
                        plan,
                        "bridge-mtu",
                        &["ip", "link", "set", "dev", br, "mtu", &mtu],
                    );
                }
                if !l.up {
                    plan = cmd(plan, "bridge-up", &["ip", "link", "set", "dev", br, "up"]);
                }
                false
            }
        };
        if make {
            bridge_new = true;
            plan = create(
                plan,
                "bridge-create",
                br,
                &alias,
                &["mtu", &mtu, "type", "bridge"],
            );
            plan = cmd(plan, "bridge-up", &["ip", "link", "set", "dev", br, "up"]);
        }
    }

    let want = Vxlan {
        vni: fabric.vni,
        local: Some(IpAddr::V4(me.underlay)),
        port: fabric.dstport,
        remote: None,
    };
    let peers: Vec<IpAddr> = fabric.peers(host).into_iter().map(IpAddr::V4).collect();
    let keep = state
        .vxlan
        .as_ref()
        .filter(|l| l.kind.as_deref() == Some("vxlan") && l.vxlan.as_ref() == Some(&want));
    let vx = vx.as_str();
    match keep {
        Some(l) => {
            if l.mtu != u32::from(fabric.mtu) {
                plan = cmd(
                    plan,
                    "vxlan-mtu",
                    &["ip", "link", "set", "dev", vx, "mtu", &mtu],
                );
            }
            if bridge_new || l.master.as_deref() != Some(br) {
                plan = cmd(
                    plan,
                    "vxlan-master",
                    &["ip", "link", "set", "dev", vx, "master", br],
                );
            }
            if !l.up {
                plan = cmd(plan, "vxlan-up", &["ip", "link", "set", "dev", vx, "up"]);
            }
            for stale in state.flood.iter().filter(|d| !peers.contains(d)) {
                let d = stale.to_string();
                plan = cmd(
                    plan,
                    format!("flood-remove-{d}"),
                    &["bridge", "fdb", "del", ZERO_MAC, "dev", vx, "dst", &d],
                );
            }
            for peer in peers.iter().filter(|p| !state.flood.contains(p)) {
                plan = flood_add(plan, vx, *peer);
            }
        }
        None => {
            if state.vxlan.is_some() {
                plan = cmd(plan, "vxlan-remove", &["ip", "link", "del", "dev", vx]);
            }
            let (vni, port) = (fabric.vni.to_string(), fabric.dstport.to_string());
            let local = me.underlay.to_string();
            plan = create(
                plan,
                "vxlan-create",
                vx,
                &alias,
                &[
                    "mtu", &mtu, "type", "vxlan", "id", &vni, "local", &local, "dstport", &port,
                ],
            );
            plan = cmd(
                plan,
                "vxlan-master",
                &["ip", "link", "set", "dev", vx, "master", br],
            );
            plan = cmd(plan, "vxlan-up", &["ip", "link", "set", "dev", vx, "up"]);
            for peer in &peers {
                plan = flood_add(plan, vx, *peer);
            }
        }
    }
    Ok(plan)
}

fn flood_add(plan: HostPlan, vx: &str, peer: IpAddr) -> HostPlan {
    let d = peer.to_string();
    cmd(
        plan,
        format!("flood-add-{d}"),
        &["bridge", "fdb", "append", ZERO_MAC, "dev", vx, "dst", &d],
    )
}

/// The steps that take `host`'s part of the fabric down: remove the VXLAN device, and the
/// bridge, each only when it carries this cluster's alias (so libvirt's bridge and anything
/// else not made by hpc-up stay). Absent devices need nothing: a second `down` is an empty
/// plan. Step ids: `vxlan-remove`, `bridge-remove`.
pub fn down_plan(fabric: &Fabric, host: &str, state: &HostState) -> Result<HostPlan, FabricError> {
    fabric.validate()?;
    fabric.host(host)?;
    let alias = fabric.alias();
    let mut plan = HostPlan::new(host);
    if let Some(l) = state.vxlan.as_ref().filter(|l| is_ours(l, &alias)) {
        plan = cmd(plan, "vxlan-remove", &["ip", "link", "del", "dev", &l.name]);
    }
    if let Some(l) = state.bridge.as_ref().filter(|l| is_ours(l, &alias)) {
        plan = cmd(
            plan,
            "bridge-remove",
            &["ip", "link", "del", "dev", &l.name],
        );
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hpc_remote::StepKind;

    use super::*;
    use crate::FabricHost;
    use crate::state::{parse_flood, parse_links};

    /// The fabric the captured JSON in `testdata/` is a host of (`h1`).
    fn fabric() -> Fabric {
        let mut f = Fabric::new(
            "demo",
            "br-x",
            [
                FabricHost::new("h1", Ipv4Addr::new(10, 81, 0, 11)),
                FabricHost::new("h2", Ipv4Addr::new(10, 81, 0, 12)),
                FabricHost::new("h3", Ipv4Addr::new(10, 81, 0, 13)).libvirt_bridge(),
            ],
        );
        f.vni = 4242;
        f
    }

    fn captured() -> HostState {
        let links = parse_links(include_str!("testdata/links.json")).unwrap_or_default();
        let flood = parse_flood(include_str!("testdata/fdb.json"), "vx-br-x").unwrap_or_default();
        HostState::from_links(links, "br-x", "vx-br-x", flood)
    }

    /// The plan as `id: argv` lines.
    fn lines(plan: &HostPlan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Command(c) => format!("{}: {}", s.id, c.argv.join(" ")),
                k => format!("{}: {}", s.id, k.label()),
            })
            .collect()
    }

    fn up(f: &Fabric, host: &str, s: &HostState) -> Vec<String> {
        lines(&up_plan(f, host, s).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn nothing_on_a_host_as_planned() {
        assert_eq!(up(&fabric(), "h1", &captured()), Vec::<String>::new());
    }

    #[test]
    fn everything_on_an_empty_host() {
        assert_eq!(
            up(&fabric(), "h2", &HostState::default()),
            [
                "bridge-create: sh -c dev=$1 alias=$2; shift 2; ip link add name \"$dev\" \"$@\" && ip link set dev \"$dev\" alias \"$alias\" hpc-up-fabric br-x hpc-up:demo mtu 1450 type bridge",
                "bridge-up: ip link set dev br-x up",
                "vxlan-create: sh -c dev=$1 alias=$2; shift 2; ip link add name \"$dev\" \"$@\" && ip link set dev \"$dev\" alias \"$alias\" hpc-up-fabric vx-br-x hpc-up:demo mtu 1450 type vxlan id 4242 local 10.81.0.12 dstport 4789",
                "vxlan-master: ip link set dev vx-br-x master br-x",
                "vxlan-up: ip link set dev vx-br-x up",
                "flood-add-10.81.0.11: bridge fdb append 00:00:00:00:00:00 dev vx-br-x dst 10.81.0.11",
                "flood-add-10.81.0.13: bridge fdb append 00:00:00:00:00:00 dev vx-br-x dst 10.81.0.13",
            ]
        );
    }

    #[test]
    fn libvirt_bridge_is_used_not_made() {
        let mut s = captured();
        s.vxlan = None;
        s.flood.clear();
        if let Some(b) = s.bridge.as_mut() {
            // libvirt's bridge: no alias, another MTU, down: all left alone.
            b.alias = None;
            b.mtu = 1500;
            b.up = false;
        }
        let got = up(&fabric(), "h3", &s);
        assert_eq!(
            got[0],
            "vxlan-create: sh -c dev=$1 alias=$2; shift 2; ip link add name \"$dev\" \"$@\" && ip link set dev \"$dev\" alias \"$alias\" hpc-up-fabric vx-br-x hpc-up:demo mtu 1450 type vxlan id 4242 local 10.81.0.13 dstport 4789"
        );
        assert!(got.iter().all(|l| !l.starts_with("bridge-")), "{got:?}");
        assert_eq!(
            up_plan(&fabric(), "h3", &HostState::default()),
            Err(FabricError::BridgeMissing {
                host: "h3".into(),
                bridge: "br-x".into()
            })
        );
        let mut s = captured();
        if let Some(b) = s.bridge.as_mut() {
            b.kind = None;
        }
        assert!(matches!(
            up_plan(&fabric(), "h3", &s),
            Err(FabricError::NotABridge { kind, .. }) if kind == "device"
        ));
    }

    #[test]
    fn drift_is_fixed_one_thing_at_a_time() {
        let mut s = captured();
        if let (Some(b), Some(v)) = (s.bridge.as_mut(), s.vxlan.as_mut()) {
            b.mtu = 1500;
            b.up = false;
            v.mtu = 1500;
            v.master = None;
            v.up = false;
        }
        // A stale peer and a missing one.
        s.flood = vec![
            IpAddr::V4(Ipv4Addr::new(10, 81, 0, 99)),
            IpAddr::V4(Ipv4Addr::new(10, 81, 0, 13)),
        ];
        assert_eq!(
            up(&fabric(), "h1", &s),
            [
                "bridge-mtu: ip link set dev br-x mtu 1450",
                "bridge-up: ip link set dev br-x up",
                "vxlan-mtu: ip link set dev vx-br-x mtu 1450",
                "vxlan-master: ip link set dev vx-br-x master br-x",
                "vxlan-up: ip link set dev vx-br-x up",
                "flood-remove-10.81.0.99: bridge fdb del 00:00:00:00:00:00 dev vx-br-x dst 10.81.0.99",
                "flood-add-10.81.0.12: bridge fdb append 00:00:00:00:00:00 dev vx-br-x dst 10.81.0.12",
            ]
        );
    }

    #[test]
    fn wrong_tunnel_is_made_again() {
        let variants: [fn(&mut Vxlan); 4] = [
            |v| v.vni = 1,
            |v| v.port = 8472,
            |v| v.local = Some(IpAddr::V4(Ipv4Addr::new(10, 81, 0, 99))),
            |v| v.remote = Some(IpAddr::V4(Ipv4Addr::new(239, 1, 1, 1))),
        ];
        for change in variants {
            let mut s = captured();
            if let Some(v) = s.vxlan.as_mut().and_then(|l| l.vxlan.as_mut()) {
                change(v);
            }
            let got = up(&fabric(), "h1", &s);
            let ids: Vec<&str> = got.iter().filter_map(|l| l.split(':').next()).collect();
            assert_eq!(
                ids,
                [
                    "vxlan-remove",
                    "vxlan-create",
                    "vxlan-master",
                    "vxlan-up",
                    "flood-add-10.81.0.12",
                    "flood-add-10.81.0.13"
                ]
            );
        }
    }

    #[test]
    fn a_new_bridge_gets_the_kept_vxlan_back() {
        let mut s = captured();
        if let Some(b) = s.bridge.as_mut() {
            b.kind = Some("dummy".into());
        }
        let got = up(&fabric(), "h1", &s);
        assert_eq!(
            got,
            [
                "bridge-remove: ip link del dev br-x",
                "bridge-create: sh -c dev=$1 alias=$2; shift 2; ip link add name \"$dev\" \"$@\" && ip link set dev \"$dev\" alias \"$alias\" hpc-up-fabric br-x hpc-up:demo mtu 1450 type bridge",
                "bridge-up: ip link set dev br-x up",
                "vxlan-master: ip link set dev vx-br-x master br-x",
            ]
        );
    }

    #[test]
    fn foreign_devices_are_refused() {
        for (dev, alias) in [
            ("br-x", None),
            ("vx-br-x", Some("hpc-up:other")),
            ("vx-br-x", None),
        ] {
            let mut s = captured();
            let l = if dev == "br-x" {
                s.bridge.as_mut()
            } else {
                s.vxlan.as_mut()
            };
            if let Some(l) = l {
                l.alias = alias.map(str::to_owned);
            }
            let err = up_plan(&fabric(), "h1", &s);
            assert_eq!(
                err,
                Err(FabricError::NotOurs {
                    host: "h1".into(),
                    device: dev.into(),
                    cluster: "demo".into(),
                    alias: alias.map(str::to_owned),
                })
            );
            let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                msg.starts_with(&format!("host h1: network device {dev} exists")),
                "{msg}"
            );
            // Down leaves it alone.
            let down = lines(&down_plan(&fabric(), "h1", &s).unwrap_or_else(|e| panic!("{e}")));
            assert!(
                down.iter().all(|l| !l.contains(&format!("dev {dev}"))),
                "{down:?}"
            );
        }
    }

    #[test]
    fn down() {
        let f = fabric();
        assert_eq!(
            lines(&down_plan(&f, "h1", &captured()).unwrap_or_else(|e| panic!("{e}"))),
            [
                "vxlan-remove: ip link del dev vx-br-x",
                "bridge-remove: ip link del dev br-x"
            ]
        );
        assert_eq!(
            down_plan(&f, "h1", &HostState::default()).map(|p| p.steps.len()),
            Ok(0)
        );
        assert_eq!(
            down_plan(&f, "nope", &HostState::default()),
            Err(FabricError::UnknownHost {
                host: "nope".into()
            })
        );
    }

    #[test]
    fn plans_are_valid_host_plans() {
        for host in ["h1", "h2"] {
            let p = up_plan(&fabric(), host, &HostState::default());
            assert_eq!(p.map(|p| hpc_remote::validate(&p).is_ok()), Ok(true));
        }
    }
}
