//! Hypervisor hosts in the SSH test bed: two bed hosts run their own libvirtd
//! (`tests/testbed/host-libvirtd`), and the ctl host drives both through real
//! `qemu+ssh://root@<ip>/system` URIs (OpenSSH, the bed's key, host keys checked against the
//! bed's `known_hosts`) with hpc-libvirt's `VirtHypervisor`: a dir pool with a volume, a NAT
//! network and a tiny TCG domain on each, all removed again. Prints how long the daemon start,
//! connect, define and start take.
#![allow(clippy::unwrap_used, clippy::print_stderr)] // tests panic on failure; timings to stderr

use std::path::Path;
use std::time::{Duration, Instant};

use hpc_libvirt::{DomainState, Hypervisor, ObjectKind, VirtHypervisor};
use hpc_tests::require;
use hpc_tests::ssh_bed::{SshBed, libvirt_installed};

/// The objects one host gets; names carry the bed's prefix and the host, so that no two
/// daemons on the machine (other beds, `scripts/libvirt-sandbox`) make the same domain: libvirt
/// puts a domain's cgroup at `/machine/qemu-<id>-<name>.libvirt-qemu` in the machine's
/// (shared) cgroup tree, and ids start at 1 in every daemon.
struct Names {
    pool: String,
    pool_dir: String,
    volume: String,
    network: String,
    bridge: String,
    subnet: u8,
    domain: String,
}

impl Names {
    fn new(prefix: &str, host: &str, index: u8) -> Self {
        Self {
            pool: format!("{prefix}-{host}-pool"),
            // the host's private /var (an overlay whose upper layer is in the bed's state dir)
            pool_dir: format!("/var/lib/hpcbed-pool-{prefix}-{host}"),
            volume: "scratch.raw".to_owned(),
            network: format!("{prefix}-{host}-net"),
            // a name in the host's own network namespace
            bridge: "hpcbedbr0".to_owned(),
            subnet: 150 + index,
            domain: format!("{prefix}-{host}-tiny"),
        }
    }

    fn pool_xml(&self) -> String {
        format!(
            "<pool type='dir'><name>{}</name><target><path>{}</path></target></pool>",
            self.pool, self.pool_dir
        )
    }

    fn volume_xml(&self) -> String {
        format!(
            "<volume><name>{}</name><capacity unit='MiB'>1</capacity>\
             <target><format type='raw'/></target></volume>",
            self.volume
        )
    }

    fn network_xml(&self) -> String {
        format!(
            "<network><name>{}</name><forward mode='nat'/><bridge name='{}'/>\
             <ip address='192.168.{}.1' netmask='255.255.255.0'/></network>",
            self.network, self.bridge, self.subnet
        )
    }

    /// 64 MiB, no disk, one NIC without option ROM on the network: SeaBIOS finds nothing to
    /// boot and waits, which is all it takes to show that QEMU runs in the host.
    fn domain_xml(&self) -> String {
        format!(
            "<domain type='qemu'><name>{}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os>\
             <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
             <interface type='network'><source network='{}'/><model type='virtio'/>\
             <rom enabled='no'/></interface><memballoon model='none'/></devices></domain>",
            self.domain, self.network
        )
    }
}

fn names_of(hv: &VirtHypervisor, kind: ObjectKind) -> Vec<String> {
    hv.list(kind)
        .unwrap_or_else(|e| panic!("list {kind:?} on {}: {e}", hv.uri()))
        .into_iter()
        .map(|o| o.name)
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn on_host_ok(bed: &SshBed, host: &str, argv: &[&str]) -> String {
    let out = bed.exec_on(host, argv);
    assert!(
        out.status.success(),
        "{argv:?} on {host}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Create the pool (+ volume), the network and the domain on one host and check them, timing
/// each step; returns the timings line.
fn create_and_check(bed: &SshBed, host: &str, hv: &VirtHypervisor, n: &Names) -> String {
    let t = Instant::now();
    hv.define_pool(&n.pool, &n.pool_xml()).unwrap();
    hv.build_pool(&n.pool).unwrap();
    hv.start_pool(&n.pool).unwrap();
    hv.create_volume(&n.pool, &n.volume, &n.volume_xml())
        .unwrap();
    let pool_time = t.elapsed();
    // The volume is a file in the host's private /var, not in the machine's.
    let vol = format!("{}/{}", n.pool_dir, n.volume);
    on_host_ok(bed, host, &["test", "-f", &vol]);
    assert!(
        !Path::new(&vol).exists(),
        "{vol} appeared on the machine, not only in {host}"
    );

    let t = Instant::now();
    hv.define_network(&n.network, &n.network_xml()).unwrap();
    hv.start_network(&n.network).unwrap();
    let net_time = t.elapsed();
    // The bridge is in the host's network namespace.
    on_host_ok(bed, host, &["ip", "link", "show", &n.bridge]);

    let t = Instant::now();
    hv.define_domain(&n.domain, &n.domain_xml()).unwrap();
    let define_time = t.elapsed();
    let t = Instant::now();
    hv.start_domain(&n.domain).unwrap();
    let start_time = t.elapsed();
    assert_eq!(hv.domain_state(&n.domain).unwrap(), DomainState::Running);
    let active: Vec<String> = hv
        .list(ObjectKind::Domain)
        .unwrap()
        .into_iter()
        .filter(|o| o.active)
        .map(|o| o.name)
        .collect();
    assert_eq!(
        active,
        std::slice::from_ref(&n.domain),
        "active domains on {host}"
    );
    // QEMU runs inside the host (its PID namespace), under TCG.
    let ps = on_host_ok(bed, host, &["ps", "-eo", "args"]);
    let qemu = ps
        .lines()
        .find(|l| l.contains("qemu-system") && l.contains(&format!("guest={}", n.domain)))
        .unwrap_or_else(|| panic!("no QEMU of {} among {host}'s processes:\n{ps}", n.domain));
    assert!(
        qemu.contains("-accel tcg") || qemu.contains("accel=tcg"),
        "not TCG: {qemu}"
    );

    format!(
        "pool+volume {}, network {}, define domain {}, start domain {}",
        ms(pool_time),
        ms(net_time),
        ms(define_time),
        ms(start_time)
    )
}

fn remove_all(hv: &VirtHypervisor, n: &Names) {
    hv.destroy_domain(&n.domain).unwrap();
    hv.undefine_domain(&n.domain).unwrap();
    hv.destroy_network(&n.network).unwrap();
    hv.undefine_network(&n.network).unwrap();
    hv.delete_volume(&n.pool, &n.volume).unwrap();
    hv.destroy_pool(&n.pool).unwrap();
    hv.undefine_pool(&n.pool).unwrap();
    for kind in [ObjectKind::Domain, ObjectKind::Network, ObjectKind::Pool] {
        assert_eq!(
            names_of(hv, kind),
            Vec::<String>::new(),
            "{kind:?} left on {}",
            hv.uri()
        );
    }
}

#[test]
fn two_hypervisor_hosts_over_qemu_ssh() {
    if require(
        libvirt_installed(),
        "libvirt-daemon-system + libvirt-clients + qemu-system-x86",
        "hypervisor hosts of the SSH bed (tests/testbed/host-libvirtd)",
    ) {
        return;
    }
    let Some(bed) = SshBed::start(2).unwrap() else {
        return;
    };
    let prefix = bed.ctl_netns().trim_end_matches("-ctl").to_owned();
    let hosts = ["h01", "h02"];

    for h in hosts {
        let t = Instant::now();
        bed.start_libvirtd(h).unwrap();
        eprintln!("{h}: libvirtd answers after {}", ms(t.elapsed()));
        assert_eq!(bed.libvirtd_pids(h).len(), 2, "libvirtd + virtlogd in {h}");
        // idempotent
        bed.start_libvirtd(h).unwrap();
    }
    let pids: Vec<i32> = hosts.iter().flat_map(|h| bed.libvirtd_pids(h)).collect();

    // Connect to both from the ctl host, through each host's sshd.
    let hvs: Vec<VirtHypervisor> = hosts
        .iter()
        .map(|h| {
            let uri = bed.libvirt_uri(h);
            assert!(uri.starts_with("qemu+ssh://root@10.81."), "{uri}");
            assert!(!uri.contains("no_verify"), "{uri}");
            let t = Instant::now();
            let hv = bed
                .in_ctl_home(|| VirtHypervisor::connect(&uri))
                .unwrap_or_else(|e| panic!("{uri}: {e}"));
            let took = t.elapsed();
            // The daemon at the other end is that host's.
            assert_eq!(hv.connection().hostname().unwrap(), *h);
            eprintln!("{h}: connect {uri} in {}", ms(took));
            hv
        })
        .collect();

    // The host key is checked: h02's key pinned for h01's address is refused.
    let (h01, h02) = (bed.host("h01").unwrap(), bed.host("h02").unwrap());
    let known = fs_err::read_to_string(bed.known_hosts_path()).unwrap();
    let h02_key = known
        .lines()
        .find_map(|l| l.strip_prefix(&format!("h02,{} ", h02.ip)))
        .unwrap()
        .to_owned();
    let wrong = bed.state_dir().join("known_hosts.wrong");
    fs_err::write(&wrong, format!("h01,{} {h02_key}\n", h01.ip)).unwrap();
    let uri = bed.libvirt_uri("h01");
    let refused = bed.in_ctl_home_with(&wrong, || VirtHypervisor::connect(&uri).err());
    let refused = refused.unwrap_or_else(|| panic!("{uri} connected despite a wrong host key"));
    let why = std::error::Error::source(&refused).map_or_else(String::new, ToString::to_string);
    assert!(
        why.contains("Host key verification failed"),
        "refused, but not for the host key: {refused}: {why}"
    );
    let last = why
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    eprintln!("h01 with a wrong pinned host key: refused ({last})");

    // On each host: pool, network, domain; then everything removed again.
    for (i, (h, hv)) in hosts.iter().zip(&hvs).enumerate() {
        let n = Names::new(&prefix, h, u8::try_from(i).unwrap());
        let line = create_and_check(&bed, h, hv, &n);
        eprintln!("{h}: {line}");
    }
    for (i, (h, hv)) in hosts.iter().zip(&hvs).enumerate() {
        let n = Names::new(&prefix, h, u8::try_from(i).unwrap());
        let t = Instant::now();
        remove_all(hv, &n);
        eprintln!("{h}: removed everything in {}", ms(t.elapsed()));
    }

    // Dropping the bed ends the daemons it started (and nothing else).
    drop(hvs);
    let t = Instant::now();
    drop(bed);
    eprintln!(
        "bed with two hypervisor hosts torn down in {}",
        ms(t.elapsed())
    );
    for pid in pids {
        let status = fs_err::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let gone = status.is_empty()
            || status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
        assert!(gone, "daemon {pid} outlived the bed");
    }
}
