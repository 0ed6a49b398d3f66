//! The real QEMU driver, in a network namespace this test creates: every example's domain
//! XML must pass the driver's own define-time checks (e.g. virtio-fs needs shared memory),
//! which the test driver does not make. The sandboxed libvirtd has no /dev/kvm (see
//! scripts/libvirt-sandbox), so `kvm` domains (gpu.yaml) are defined as `qemu` ones here:
//! everything else in them is checked as written. A cluster spread over hosts
//! (two-hosts.yaml) defines its local connection's domains here (the others are defined on
//! their own hosts, with their files in those hosts' pools), and every network of every
//! connection — the primary's NAT/isolated one with all leases and an MTU, the others' bridge
//! mode ones (libvirt refuses `<mtu>` there) — so that the driver's own checks of both shapes
//! run.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use hpc_libvirt::{Hypervisor, ObjectKind};
use hpc_tests::{examples, libvirt_bed::LibvirtBed};

#[test]
fn every_example_domain_defines_on_the_real_qemu_driver() {
    let Some(bed) = LibvirtBed::start("define").unwrap() else {
        return;
    };
    let env = |k: &str| (k == "HOME").then(|| "/home/user".to_owned());
    let dir = bed.scratch_dir("define");
    let mut defined = 0;
    let mut networks = 0;
    for f in examples() {
        let text = fs_err::read_to_string(&f).unwrap();
        let cluster = hpc_config::load_str(&f.display().to_string(), &text, &env).unwrap();
        let plan = hpc_libvirt::plan(&cluster);
        // Only this machine's domains: a remote host's name its own pool's files.
        let domains: Vec<_> = plan
            .objects
            .iter()
            .filter(|o| o.kind == ObjectKind::Domain && o.uri.remote_host().is_none())
            .collect();
        let local = cluster
            .nodes
            .iter()
            .filter(|n| n.uri.remote_host().is_none())
            .count();
        assert!(local > 0, "{}", f.display());
        assert_eq!(domains.len(), local, "{}", f.display());
        // Every connection's network: the names are the same on every host, so one at a time.
        for (i, n) in plan.of_kind(ObjectKind::Network).enumerate() {
            let xml_path = dir.join(format!("{}-{i}.xml", n.name));
            fs_err::write(&xml_path, &n.xml).unwrap();
            let defined_ok = bed.virsh(&["net-define", xml_path.to_str().unwrap()]);
            let dumped = bed.virsh(&["net-dumpxml", &n.name]);
            let _ = bed.virsh(&["net-undefine", &n.name]);
            defined_ok.unwrap_or_else(|e| panic!("{}: network {i} ({}): {e}", f.display(), n.uri));
            // The primary's network of a cluster spread over hosts carries the tunnels' MTU
            // (libvirt refuses one in bridge mode: the others take their bridge's).
            let primary = hpc_libvirt::primary_uri(&cluster) == Some(&n.uri);
            if hpc_libvirt::spans_hosts(&cluster) && primary {
                let dumped = dumped.unwrap();
                assert!(
                    dumped.contains("<mtu size='1450'/>"),
                    "{}: {dumped}",
                    f.display()
                );
            }
            networks += 1;
        }
        for d in domains {
            let xml_path = dir.join(format!("{}.xml", d.name));
            let xml = d
                .xml
                .replacen("<domain type=\"kvm\"", "<domain type=\"qemu\"", 1);
            fs_err::write(&xml_path, xml).unwrap();
            let defined_ok = bed.virsh(&["define", xml_path.to_str().unwrap()]);
            // remove before asserting, so a failure leaves nothing behind
            let _ = bed.virsh(&["undefine", &d.name, "--nvram"]);
            defined_ok.unwrap_or_else(|e| panic!("{}: {}: {e}", f.display(), d.name));
            defined += 1;
        }
    }
    assert!(defined >= 10, "only {defined} domains defined");
    assert!(
        networks > examples().len(),
        "only {networks} networks defined"
    );
    let left = bed.virsh(&["list", "--all", "--name"]).unwrap();
    assert!(left.trim().is_empty(), "domains left behind: {left}");
    let left = bed.virsh(&["net-list", "--all", "--name"]).unwrap();
    assert!(left.trim().is_empty(), "networks left behind: {left}");
    let _ = fs_err::remove_dir_all(&dir);
}

#[test]
fn preflight_passes_on_the_real_qemu_driver_and_names_a_missing_share() {
    let Some(bed) = LibvirtBed::start("preflight").unwrap() else {
        return;
    };
    let dir = bed.scratch_dir("preflight");
    let d = dir.display();
    fs_err::write(dir.join("base.qcow2"), b"not really qcow2").unwrap();
    fs_err::create_dir_all(dir.join("shared")).unwrap();
    fs_err::create_dir_all(dir.join("scratch")).unwrap();
    // Shares on both nodes make preflight ask the driver for virtio-fs support.
    let yaml = format!(
        "name: pft
libvirt:
  uri: {uri}
  domain-type: qemu
network:
  cidr: 10.231.0.0/24
  bridge: hpcbr-pft
image:
  base: {d}/base.qcow2
state-dir: {d}/state
virtiofs:
  - tag: shared
    host-path: {d}/shared
    mount-point: /shared
controller:
  nodes:
    - name: ctl
  vcpus: 1
  memory: 512MiB
  disk: 2GiB
compute:
  - nodes:
      - name: cn1
        virtiofs:
          - tag: scratch
            host-path: {d}/scratch
            mount-point: /scratch
    vcpus: 1
    memory: 512MiB
    disk: 2GiB
",
        uri = bed.uri()
    );
    let env = |_: &str| None;
    let cluster = hpc_config::load_str("pft.yaml", &yaml, &env).unwrap();
    let plan = hpc_libvirt::plan(&cluster);
    let hv = hpc_libvirt::VirtHypervisor::connect(bed.uri()).unwrap();

    // The real driver answers the domain capabilities (the test driver cannot).
    let caps = hv.domain_capabilities("qemu").unwrap();
    assert!(
        caps.as_deref().is_some_and(|x| x.contains("virtiofs")),
        "no virtio-fs in the domain capabilities: {caps:?}"
    );
    let problems = hpc_libvirt::preflight(&cluster, &plan, &hv);
    assert_eq!(problems, Vec::new(), "{problems:#?}");

    fs_err::remove_dir(dir.join("scratch")).unwrap();
    let problems = hpc_libvirt::preflight(&cluster, &plan, &hv);
    assert_eq!(
        problems,
        vec![hpc_libvirt::PreflightProblem::ShareMissing {
            path: dir.join("scratch"),
            tag: "scratch".to_owned(),
            nodes: vec!["cn1".to_owned()],
        }]
    );
    drop(hv);
    let _ = fs_err::remove_dir_all(&dir);
}
