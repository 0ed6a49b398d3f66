//! The real QEMU driver, in a network namespace this test creates: every example's domain
//! XML must pass the driver's own define-time checks (e.g. virtio-fs needs shared memory),
//! which the test driver does not make. The sandboxed libvirtd has no /dev/kvm (see
//! scripts/libvirt-sandbox), so `kvm` domains (gpu.yaml) are defined as `qemu` ones here:
//! everything else in them is checked as written.
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
    for f in examples() {
        let text = fs_err::read_to_string(&f).unwrap();
        let cluster = hpc_config::load_str(&f.display().to_string(), &text, &env).unwrap();
        let plan = hpc_libvirt::plan(&cluster);
        let domains: Vec<_> = plan
            .objects
            .iter()
            .filter(|o| o.kind == ObjectKind::Domain)
            .collect();
        assert_eq!(domains.len(), cluster.nodes.len(), "{}", f.display());
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
    let left = bed.virsh(&["list", "--all", "--name"]).unwrap();
    assert!(left.trim().is_empty(), "domains left behind: {left}");
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
