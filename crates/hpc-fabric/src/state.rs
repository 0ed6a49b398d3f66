//! A host's devices as iproute2 reports them: the commands that read them and the parsers
//! of their JSON (`ip -j -d link show`, `bridge -j fdb show dev …`). Pure.

use std::net::IpAddr;

use serde::Deserialize;

use crate::ParseError;

/// One network device, as far as the fabric cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// Its kind (`bridge`, `vxlan`, …); `None` for a plain device.
    pub kind: Option<String>,
    /// Administratively up (the `UP` flag; a bridge without running ports is up but its
    /// operational state is `DOWN`).
    pub up: bool,
    /// Its MTU.
    pub mtu: u32,
    /// The bridge (or bond) it is a port of.
    pub master: Option<String>,
    /// Its alias (`ip link set DEV alias …`); hpc-up's devices carry `hpc-up:<cluster>`.
    pub alias: Option<String>,
    /// For a VXLAN device: its tunnel parameters.
    pub vxlan: Option<Vxlan>,
}

/// A VXLAN device's tunnel parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vxlan {
    /// The VNI.
    pub vni: u32,
    /// The local (source) address, IPv4 or IPv6.
    pub local: Option<IpAddr>,
    /// The UDP destination port.
    pub port: u16,
    /// A default destination (`remote` or multicast `group`): hpc-up's devices have none
    /// (their destinations are the all-zero fdb entries).
    pub remote: Option<IpAddr>,
}

/// A host's devices of one fabric, as read by [`crate::observe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    /// The device of the bridge's name, if any.
    pub bridge: Option<Link>,
    /// The device of the VXLAN device's name, if any.
    pub vxlan: Option<Link>,
    /// The destinations of the VXLAN device's all-zero fdb entries (head-end replication
    /// list), in iproute2's order; empty when the device is absent or not a VXLAN device.
    pub flood: Vec<IpAddr>,
}

impl HostState {
    /// Picks the bridge and VXLAN device out of `links` (every device of the host).
    pub fn from_links(links: Vec<Link>, bridge: &str, vxlan: &str, flood: Vec<IpAddr>) -> Self {
        let mut state = Self {
            flood,
            ..Self::default()
        };
        for l in links {
            if l.name == bridge {
                state.bridge = Some(l);
            } else if l.name == vxlan {
                state.vxlan = Some(l);
            }
        }
        state
    }
}

/// The command that lists every device of a host with details, as JSON.
pub fn links_argv() -> Vec<String> {
    argv(&["ip", "-j", "-d", "link", "show"])
}

/// The command that lists the forwarding database of `device`, as JSON.
pub fn fdb_argv(device: &str) -> Vec<String> {
    argv(&["bridge", "-j", "fdb", "show", "dev", device])
}

pub(crate) fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Deserialize)]
struct LinkWire {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    ifalias: Option<String>,
    #[serde(default)]
    linkinfo: Option<LinkInfoWire>,
}

#[derive(Deserialize)]
struct LinkInfoWire {
    #[serde(default)]
    info_kind: Option<String>,
    #[serde(default)]
    info_data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct VxlanWire {
    id: u32,
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    local6: Option<String>,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    remote: Option<String>,
    #[serde(default)]
    remote6: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    group6: Option<String>,
}

#[derive(Deserialize)]
struct FdbWire {
    mac: String,
    #[serde(default)]
    dst: Option<String>,
    #[serde(default)]
    master: Option<String>,
}

fn json_list<T: for<'de> Deserialize<'de>>(json: &str) -> Result<Vec<T>, ParseError> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| ParseError::Json(e.to_string()))
}

fn addr(
    device: &str,
    field: &'static str,
    v: Option<String>,
) -> Result<Option<IpAddr>, ParseError> {
    v.map(|s| {
        s.parse().map_err(|_| ParseError::Address {
            device: device.to_owned(),
            field,
            value: s,
        })
    })
    .transpose()
}

/// Parses `ip -j -d link show`.
pub fn parse_links(json: &str) -> Result<Vec<Link>, ParseError> {
    json_list::<LinkWire>(json)?
        .into_iter()
        .map(|w| {
            let (kind, data) = w
                .linkinfo
                .map_or((None, None), |i| (i.info_kind, i.info_data));
            let vxlan = match (kind.as_deref(), data) {
                (Some("vxlan"), Some(data)) => {
                    let v: VxlanWire = serde_json::from_value(data)
                        .map_err(|e| ParseError::Json(format!("device {}: {e}", w.ifname)))?;
                    let name = w.ifname.as_str();
                    let local = addr(name, "local", v.local.or(v.local6))?;
                    let remote = addr(
                        name,
                        "remote",
                        v.remote.or(v.remote6).or(v.group).or(v.group6),
                    )?;
                    Some(Vxlan {
                        vni: v.id,
                        local,
                        port: v.port,
                        remote,
                    })
                }
                _ => None,
            };
            Ok(Link {
                up: w.flags.iter().any(|f| f == "UP"),
                name: w.ifname,
                kind,
                mtu: w.mtu,
                master: w.master,
                alias: w.ifalias,
                vxlan,
            })
        })
        .collect()
}

/// The all-zero MAC address: a VXLAN fdb entry for it lists one head-end replication
/// destination.
pub const ZERO_MAC: &str = "00:00:00:00:00:00";

/// Parses `bridge -j fdb show dev VXLAN` into the destinations of the device's own all-zero
/// entries (the bridge's entries for the port and learned MACs are left out).
pub fn parse_flood(json: &str, device: &str) -> Result<Vec<IpAddr>, ParseError> {
    let mut out = Vec::new();
    for e in json_list::<FdbWire>(json)? {
        if e.mac == ZERO_MAC
            && e.master.is_none()
            && let Some(dst) = addr(device, "dst", e.dst)?
        {
            out.push(dst);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// Captured from iproute2 6.1 (kernel 6.18) in a namespace: bridge `br-x` and VXLAN
    /// `vx-br-x` made by hpc-up for cluster `demo`, a VXLAN with a remote on port 8472 and an
    /// IPv6 one.
    const LINKS: &str = include_str!("testdata/links.json");
    /// `bridge -j fdb show dev vx-br-x` of the same: the bridge's entry and two peers.
    const FDB: &str = include_str!("testdata/fdb.json");

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    #[test]
    fn links() {
        let links = parse_links(LINKS).unwrap_or_default();
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "br-x", "vx-br-x", "vxr", "vx6"]);
        assert_eq!(
            links[1],
            Link {
                name: "br-x".into(),
                kind: Some("bridge".into()),
                up: true,
                mtu: 1450,
                master: None,
                alias: Some("hpc-up:demo".into()),
                vxlan: None,
            }
        );
        assert_eq!(
            links[2],
            Link {
                name: "vx-br-x".into(),
                kind: Some("vxlan".into()),
                up: true,
                mtu: 1450,
                master: Some("br-x".into()),
                alias: Some("hpc-up:demo".into()),
                vxlan: Some(Vxlan {
                    vni: 4242,
                    local: v4(10, 81, 0, 11),
                    port: 4789,
                    remote: None
                }),
            }
        );
        let vxr = links[3].vxlan.clone();
        assert_eq!(
            vxr,
            Some(Vxlan {
                vni: 9,
                local: None,
                port: 8472,
                remote: v4(10, 1, 1, 1)
            })
        );
        assert!(!links[3].up);
        assert_eq!(links[3].alias, None);
        assert_eq!(
            links[4].vxlan.as_ref().and_then(|v| v.local),
            "fd00::1".parse().ok()
        );
        assert_eq!(links[0].kind, None);
    }

    #[test]
    fn state_picks_the_two_devices() {
        let links = parse_links(LINKS).unwrap_or_default();
        let s = HostState::from_links(links, "br-x", "vx-br-x", Vec::new());
        assert_eq!(s.bridge.map(|l| l.name).as_deref(), Some("br-x"));
        assert_eq!(s.vxlan.map(|l| l.name).as_deref(), Some("vx-br-x"));
        let s = HostState::from_links(Vec::new(), "br-x", "vx-br-x", Vec::new());
        assert_eq!(s, HostState::default());
    }

    #[test]
    fn flood_list() {
        assert_eq!(
            parse_flood(FDB, "vx-br-x"),
            Ok(vec![
                IpAddr::V4(Ipv4Addr::new(10, 81, 0, 12)),
                IpAddr::V4(Ipv4Addr::new(10, 81, 0, 13))
            ])
        );
        assert_eq!(parse_flood("[]", "vx"), Ok(vec![]));
        assert_eq!(parse_flood("\n", "vx"), Ok(vec![]));
        // A learned MAC with a destination is not a flood entry.
        let learned =
            r#"[{"mac":"52:54:00:aa:bb:cc","dst":"10.0.0.9","flags":["self"],"state":""}]"#;
        assert_eq!(parse_flood(learned, "vx"), Ok(vec![]));
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(matches!(parse_links("{"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse_links(r#"[{"mtu":1}]"#),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_links(
                r#"[{"ifname":"v","linkinfo":{"info_kind":"vxlan","info_data":{"id":1,"local":"x"}}}]"#
            ),
            Err(ParseError::Address { field: "local", .. })
        ));
        assert!(matches!(
            parse_flood(r#"[{"mac":"00:00:00:00:00:00","dst":"nope"}]"#, "vx"),
            Err(ParseError::Address { field: "dst", .. })
        ));
    }

    #[test]
    fn commands() {
        assert_eq!(links_argv(), ["ip", "-j", "-d", "link", "show"]);
        assert_eq!(
            fdb_argv("vx-a"),
            ["bridge", "-j", "fdb", "show", "dev", "vx-a"]
        );
    }
}
