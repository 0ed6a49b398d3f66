//! The real QEMU driver, in a network namespace this test creates: every example's domain
//! XML must pass the driver's own define-time checks (e.g. virtio-fs needs shared memory),
//! which the test driver does not make.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use hpc_libvirt::ObjectKind;
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
            fs_err::write(&xml_path, &d.xml).unwrap();
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
