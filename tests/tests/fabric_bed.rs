//! hpc-fabric on a real bed of three SSH hosts (`tests/testbed`: each host its own network
//! namespace with sshd): the fabric up on all three over SSH, a TCP connection from h01 to
//! h02's and h03's sshd through the tunnel alone, a second `up` that changes nothing,
//! devices that are not this cluster's refused, `down` twice. No libvirt: every host's
//! bridge is hpc-up's. Needs root, iproute2, OpenSSH, util-linux and a kernel with VXLAN:
//! skips without them outside CI, fails in CI.
#![allow(clippy::unwrap_used)] // tests panic on failure

use std::net::Ipv4Addr;
use std::time::Instant;

use hpc_fabric::{Fabric, FabricError, FabricHost, down_phase, up_phase};
use hpc_remote::{NoObserver, PhaseReport, SshExecutor, run_phase};
use hpc_tests::require;
use hpc_tests::ssh_bed::SshBed;

const BRIDGE: &str = "br-fab";
const VXLAN: &str = "vx-br-fab";

/// Runs `argv` on host `name` (nsenter, no SSH); panics on failure, returns stdout.
fn on(bed: &SshBed, name: &str, argv: &[&str]) -> String {
    let out = bed.exec_on(name, argv);
    assert!(
        out.status.success(),
        "{name}: {argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether the kernel makes a VXLAN device inside a bed host's network namespace.
fn vxlan_works(bed: &SshBed, ip: Ipv4Addr) -> bool {
    let local = ip.to_string();
    let made = bed
        .exec_on(
            "h01",
            &[
                "ip", "link", "add", "vxprobe", "type", "vxlan", "id", "1", "dstport", "4789",
                "local", &local,
            ],
        )
        .status
        .success();
    if made {
        on(bed, "h01", &["ip", "link", "del", "vxprobe"]);
    }
    made
}

fn fabric(bed: &SshBed, cluster: &str, bridge: &str) -> Fabric {
    Fabric::new(
        cluster,
        bridge,
        bed.hosts().iter().map(|h| FabricHost::new(&h.name, h.ip)),
    )
}

/// Reads and plans every host ([`up_phase`] or [`down_phase`]) and runs the phase.
fn run(
    bed: &SshBed,
    exec: &SshExecutor,
    f: &Fabric,
    up: bool,
) -> Result<Vec<PhaseReport>, FabricError> {
    bed.block_on(|| async {
        let phase = if up {
            up_phase(exec, f).await?
        } else {
            down_phase(exec, f).await?
        };
        let r = run_phase(exec, &phase, Instant::now(), &NoObserver).await;
        Ok(r.unwrap_or_else(|e| panic!("{e}")))
    })
}

fn changed(reports: &[PhaseReport]) -> usize {
    reports.iter().map(PhaseReport::changed).sum()
}

/// `host`'s devices of the fabric, one `name kind alias mtu master UP?` line each.
fn devices(bed: &SshBed, host: &str) -> Vec<String> {
    let json = on(bed, host, &["ip", "-j", "-d", "link", "show"]);
    hpc_fabric::parse_links(&json)
        .unwrap()
        .into_iter()
        .filter(|l| l.name == BRIDGE || l.name == VXLAN)
        .map(|l| {
            format!(
                "{} {} {} {} {} {}",
                l.name,
                l.kind.unwrap_or_default(),
                l.alias.unwrap_or_default(),
                l.mtu,
                l.master.unwrap_or_default(),
                if l.up { "up" } else { "down" }
            )
        })
        .collect()
}

/// From h01, read the SSH banner of `addr`:22 (bash's /dev/tcp): a TCP handshake and data.
fn banner(bed: &SshBed, addr: &str, secs: u32) -> Result<String, String> {
    let script = format!("exec 3<>/dev/tcp/{addr}/22 && head -c 7 <&3");
    let secs = secs.to_string();
    let out = bed.exec_on("h01", &["timeout", &secs, "bash", "-c", &script]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn fabric_up_tunnel_rerun_foreign_down() {
    let Some(bed) = SshBed::start(3).unwrap() else {
        return;
    };
    let h01 = bed.host("h01").unwrap().ip;
    if require(
        vxlan_works(&bed, h01),
        "a kernel with VXLAN (module vxlan)",
        "the fabric's tunnel between bed hosts",
    ) {
        return;
    }
    let exec = bed.executor("fabric-bed-test", None);
    let f = fabric(&bed, "fabricbed", BRIDGE);

    // First up: both devices on every host, two flood entries each.
    let reports = run(&bed, &exec, &f, true).unwrap();
    assert_eq!(reports.len(), 3);
    for r in &reports {
        // bridge create (with its alias)/up, vxlan create (with its alias)/master/up, two
        // flood entries
        assert_eq!(r.changed(), 7, "{r:?}");
    }
    for h in bed.hosts() {
        assert_eq!(
            devices(&bed, &h.name),
            [
                format!("{BRIDGE} bridge hpc-up:fabricbed 1450  up"),
                format!("{VXLAN} vxlan hpc-up:fabricbed 1450 {BRIDGE} up"),
            ],
            "{}",
            h.name
        );
        let vx = on(&bed, &h.name, &["ip", "-d", "link", "show", "dev", VXLAN]);
        let want = format!("vxlan id {} local {} ", f.vni, h.ip);
        assert!(vx.contains(&want), "{}: {vx}", h.name);
        assert!(vx.contains("dstport 4789 "), "{}: {vx}", h.name);
        let fdb = on(
            &bed,
            &h.name,
            &["bridge", "-j", "fdb", "show", "dev", VXLAN],
        );
        let mut flood = hpc_fabric::parse_flood(&fdb, VXLAN).unwrap();
        flood.sort();
        let peers: Vec<std::net::IpAddr> = f
            .peers(&h.name)
            .into_iter()
            .map(std::net::IpAddr::V4)
            .collect();
        assert_eq!(flood, peers, "{}", h.name);
    }

    // Test-only: an address on each bridge. The bridges have no other port and no route
    // joins 172.31.250.0/24 to the bed's network, so only the tunnel carries this.
    for (i, h) in bed.hosts().iter().enumerate() {
        let addr = format!("172.31.250.{}/24", i + 1);
        on(&bed, &h.name, &["ip", "addr", "add", &addr, "dev", BRIDGE]);
    }
    for addr in ["172.31.250.2", "172.31.250.3"] {
        assert_eq!(banner(&bed, addr, 10).as_deref(), Ok("SSH-2.0"), "{addr}");
    }
    // The same connection fails without the tunnel: the control that makes the above count.
    on(&bed, "h02", &["ip", "link", "set", "dev", VXLAN, "down"]);
    on(&bed, "h01", &["ip", "neigh", "flush", "dev", BRIDGE]);
    let cut = banner(&bed, "172.31.250.2", 4);
    assert!(cut.is_err(), "{cut:?}");

    // Second up: h02's VXLAN device is brought up again, nothing else changes.
    let reports = run(&bed, &exec, &f, true).unwrap();
    assert_eq!(changed(&reports), 1, "{reports:?}");
    assert_eq!(banner(&bed, "172.31.250.2", 10).as_deref(), Ok("SSH-2.0"));
    // Third: nothing at all.
    let reports = run(&bed, &exec, &f, true).unwrap();
    assert_eq!(changed(&reports), 0, "{reports:?}");

    // Another cluster of the same bridge: every host's devices are not its own.
    let other = fabric(&bed, "intruder", BRIDGE);
    match run(&bed, &exec, &other, true) {
        Err(FabricError::Hosts(errors)) => {
            assert_eq!(errors.len(), 3, "{errors:?}");
            for (e, h) in errors.iter().zip(bed.hosts()) {
                assert!(
                    matches!(e, FabricError::NotOurs { host, alias: Some(a), .. }
                        if *host == h.name && a == "hpc-up:fabricbed"),
                    "{e}"
                );
            }
        }
        other => panic!("{other:?}"),
    }
    // A bridge the test makes without an alias, on h02 only.
    on(
        &bed,
        "h02",
        &["ip", "link", "add", "name", "br-foreign", "type", "bridge"],
    );
    let foreign = fabric(&bed, "fabricbed", "br-foreign");
    let err = run(&bed, &exec, &foreign, true).unwrap_err();
    assert_eq!(
        err,
        FabricError::NotOurs {
            host: "h02".into(),
            device: "br-foreign".into(),
            cluster: "fabricbed".into(),
            alias: None,
        }
    );
    assert!(
        err.to_string()
            .starts_with("host h02: network device br-foreign exists and is not hpc-up's"),
        "{err}"
    );
    // Nothing was made anywhere, and down leaves the foreign bridge alone.
    for h in bed.hosts() {
        let links = on(&bed, &h.name, &["ip", "-o", "link", "show"]);
        assert!(!links.contains("vx-br-foreign"), "{}: {links}", h.name);
    }
    assert_eq!(changed(&run(&bed, &exec, &foreign, false).unwrap()), 0);
    on(&bed, "h02", &["ip", "link", "show", "dev", "br-foreign"]);

    // Down: both devices gone from every host; down again changes nothing.
    let reports = run(&bed, &exec, &f, false).unwrap();
    for r in &reports {
        assert_eq!(r.changed(), 2, "{r:?}");
    }
    for h in bed.hosts() {
        let links = on(&bed, &h.name, &["ip", "-o", "link", "show"]);
        assert!(
            !links.contains(BRIDGE) && !links.contains(VXLAN),
            "{}: {links}",
            h.name
        );
    }
    assert_eq!(changed(&run(&bed, &exec, &f, false).unwrap()), 0);
    bed.block_on(|| exec.close());
}
