//! The libvirt planner against the example files: snapshots, determinism, and libvirt's own
//! schemas (`virt-xml-validate`).

use std::path::Path;
use std::process::Command;

use hpc_config::Cluster;
use hpc_libvirt::{FABRIC_MTU, LibvirtPlan, ObjectKind, VolumeFormat, plan};

/// The inputs: the repository's examples, plus fixtures for what they do not show.
const FILES: &[(&str, &str)] = &[
    ("minimal", include_str!("../../../examples/minimal.yaml")),
    ("gpu", include_str!("../../../examples/gpu.yaml")),
    (
        "full-stack",
        include_str!("../../../examples/full-stack.yaml"),
    ),
    ("multi-host", include_str!("fixtures/multi-host.yaml")),
    (
        "two-hosts",
        include_str!("../../../examples/two-hosts.yaml"),
    ),
];

/// A fixed environment, so that `${HOME}` and the default state directory are stable.
fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/user".to_owned()),
        _ => None,
    }
}

fn load(name: &str, text: &str) -> Cluster {
    hpc_config::load_str(&format!("{name}.yaml"), text, &env)
        .unwrap_or_else(|e| panic!("{name}.yaml does not load: {e:?}"))
}

fn input(name: &str) -> Cluster {
    let (_, text) = FILES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no input {name}"));
    load(name, text)
}

/// Every object of a plan as one text: a header line per object, then its XML.
fn dump(plan: &LibvirtPlan) -> String {
    let mut out = String::new();
    for o in &plan.objects {
        out.push_str(&format!("=== {:?} {} @ {}\n", o.kind, o.name, o.uri));
        out.push_str(&o.xml);
    }
    out
}

#[test]
fn snapshot_minimal() {
    insta::assert_snapshot!(dump(&plan(&input("minimal"))));
}

#[test]
fn snapshot_gpu() {
    insta::assert_snapshot!(dump(&plan(&input("gpu"))));
}

#[test]
fn snapshot_full_stack() {
    insta::assert_snapshot!(dump(&plan(&input("full-stack"))));
}

#[test]
fn snapshot_multi_host() {
    insta::assert_snapshot!(dump(&plan(&input("multi-host"))));
}

#[test]
fn snapshot_two_hosts() {
    insta::assert_snapshot!(dump(&plan(&input("two-hosts"))));
}

#[test]
fn one_connection_has_no_uploads_and_no_mtu() {
    for name in ["minimal", "gpu", "full-stack"] {
        let p = plan(&input(name));
        assert!(p.objects.iter().all(|o| o.upload.is_none()), "{name}");
        let net = p.of_kind(ObjectKind::Network).next().expect("network");
        assert!(!net.xml.contains("<mtu"), "{name}");
    }
}

#[test]
fn the_primary_network_serves_every_lease_and_the_others_are_bridges() {
    let cluster = input("two-hosts");
    let p = plan(&cluster);
    let nets: Vec<_> = p.of_kind(ObjectKind::Network).collect();
    assert_eq!(nets.len(), 2);
    let (primary, other) = (&nets[0], &nets[1]);
    assert_eq!(primary.uri.as_str(), "qemu:///system");
    assert_eq!(
        hpc_libvirt::primary_uri(&cluster).map(|u| u.as_str()),
        Some("qemu:///system")
    );
    let mtu = format!("<mtu size=\"{FABRIC_MTU}\"/>");
    assert!(primary.xml.contains(&mtu), "{}", primary.xml);
    for n in &cluster.nodes {
        let lease = format!(
            "<host mac=\"{}\" name=\"{}\" ip=\"{}\"/>",
            n.mac, n.name, n.ip
        );
        assert!(primary.xml.contains(&lease), "{}: {}", n.name, primary.xml);
    }
    assert!(primary.xml.contains("stp=\"off\" delay=\"0\""));
    let want = format!(
        "<network>\n  <name>twohosts-net</name>\n  <metadata>\n    \
         <hpc:cluster xmlns:hpc=\"{}\" name=\"twohosts\" node=\"\" role=\"network\"/>\n  \
         </metadata>\n  <forward mode=\"bridge\"/>\n  <bridge name=\"hpcbr-two\"/>\n\
         </network>\n",
        hpc_libvirt::METADATA_NS
    );
    assert_eq!(other.xml, want);
}

#[test]
fn uploads_come_after_pools_and_before_overlays_on_remote_connections_only() {
    let cluster = input("two-hosts");
    let p = plan(&cluster);
    let remote = "qemu+ssh://root@192.168.122.12/system";
    let uploads: Vec<(&str, &str, VolumeFormat)> = p
        .objects
        .iter()
        .filter_map(|o| {
            let u = o.upload.as_ref()?;
            assert_eq!(o.kind, ObjectKind::Volume);
            assert_eq!(o.uri.as_str(), remote);
            Some((o.name.as_str(), u.path.to_str().expect("utf-8"), u.format))
        })
        .collect();
    assert_eq!(
        uploads,
        [
            (
                "twohosts-base.image.qcow2",
                "/var/lib/hpc-up/images/base.qcow2",
                VolumeFormat::Qcow2
            ),
            (
                "twohosts-vmlinuz",
                "/var/lib/hpc-up/images/vmlinuz",
                VolumeFormat::Raw
            ),
            (
                "twohosts-initrd.img",
                "/var/lib/hpc-up/images/initrd.img",
                VolumeFormat::Raw
            ),
            (
                "twohosts-cn1-seed.img",
                "/var/lib/hpc-up/clusters/twohosts/seed/cn1.img",
                VolumeFormat::Raw
            ),
            (
                "twohosts-cn2-seed.img",
                "/var/lib/hpc-up/clusters/twohosts/seed/cn2.img",
                VolumeFormat::Raw
            ),
            (
                "twohosts-cn4-seed.img",
                "/var/lib/hpc-up/clusters/twohosts/seed/cn4.img",
                VolumeFormat::Raw
            ),
        ]
    );
    // Order: every pool before the first upload, every overlay after the last.
    let pos = |f: &dyn Fn(&hpc_libvirt::Object) -> bool| -> Vec<usize> {
        p.objects
            .iter()
            .enumerate()
            .filter(|(_, o)| f(o))
            .map(|(i, _)| i)
            .collect()
    };
    let pools = pos(&|o| o.kind == ObjectKind::Pool);
    let ups = pos(&|o| o.upload.is_some());
    let overlays = pos(&|o| o.kind == ObjectKind::Volume && o.upload.is_none());
    assert!(pools.iter().max() < ups.iter().min());
    assert!(ups.iter().max() < overlays.iter().min());
    // The remote pool, overlay and domain name the remote host's files.
    let dir = "/var/lib/libvirt/images/hpc-up-twohosts";
    let pool = p
        .of_kind(ObjectKind::Pool)
        .find(|o| o.uri.as_str() == remote)
        .expect("remote pool");
    assert!(pool.xml.contains(&format!("<path>{dir}</path>")));
    let overlay = p
        .objects
        .iter()
        .find(|o| o.name == "twohosts-cn1.qcow2")
        .expect("overlay");
    assert!(
        overlay
            .xml
            .contains(&format!("<path>{dir}/twohosts-base.image.qcow2</path>"))
    );
    let dom = p
        .objects
        .iter()
        .find(|o| o.name == "twohosts-cn1")
        .expect("domain");
    for file in [
        format!("<kernel>{dir}/twohosts-vmlinuz</kernel>"),
        format!("<initrd>{dir}/twohosts-initrd.img</initrd>"),
        format!("<source file=\"{dir}/twohosts-cn1.qcow2\"/>"),
        format!("<source file=\"{dir}/twohosts-cn1-seed.img\"/>"),
        "<log file=\"/var/log/libvirt/qemu/twohosts-cn1-console.log\"".to_owned(),
    ] {
        assert!(dom.xml.contains(&file), "{file} not in {}", dom.xml);
    }
    // A local node keeps this machine's files.
    let local = p
        .objects
        .iter()
        .find(|o| o.name == "twohosts-cn3")
        .expect("domain");
    assert!(
        local
            .xml
            .contains("<kernel>/var/lib/hpc-up/images/vmlinuz</kernel>")
    );
    assert!(
        local
            .xml
            .contains("/var/lib/hpc-up/clusters/twohosts/seed/cn3.img")
    );
}

#[test]
fn rendering_is_deterministic() {
    for (name, text) in FILES {
        let first = dump(&plan(&load(name, text)));
        let second = dump(&plan(&load(name, text)));
        assert_eq!(first, second, "{name}: two renderings differ");
    }
}

#[test]
fn objects_come_in_creation_order_grouped_by_connection() {
    let p = plan(&input("multi-host"));
    let kinds: Vec<ObjectKind> = p.objects.iter().map(|o| o.kind).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(kinds, sorted, "networks, pools, volumes, domains");
    // Two connections: a network and a pool on each.
    assert_eq!(p.of_kind(ObjectKind::Network).count(), 2);
    assert_eq!(p.of_kind(ObjectKind::Pool).count(), 2);
    assert_eq!(
        p.uris().iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        ["qemu:///system", "qemu+ssh://root@host2/system"]
    );
    let names: Vec<&str> = p
        .of_kind(ObjectKind::Domain)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(names, ["multi-ctl", "multi-cn1", "multi-cn2"]);
}

#[test]
fn domains_never_name_a_backing_store_and_volumes_always_do() {
    for (name, text) in FILES {
        let p = plan(&load(name, text));
        for o in &p.objects {
            let has = o.xml.contains("<backingStore>");
            match o.kind {
                ObjectKind::Domain => assert!(!has, "{name}: {} has a backingStore", o.name),
                // Uploaded volumes hold a whole file; overlays are backed by the base image.
                ObjectKind::Volume if o.upload.is_some() => {
                    assert!(!has, "{name}: upload {} has a backingStore", o.name);
                }
                ObjectKind::Volume => assert!(has, "{name}: {} lacks a backingStore", o.name),
                _ => {}
            }
        }
    }
}

#[test]
fn every_network_and_domain_names_its_owner() {
    for (name, text) in FILES {
        let cluster = load(name, text);
        let p = plan(&cluster);
        for o in &p.objects {
            let owner = hpc_libvirt::owner_from_xml(&o.xml);
            match o.kind {
                ObjectKind::Network => {
                    let owner = owner.unwrap_or_else(|| panic!("{}: no owner", o.name));
                    assert_eq!(owner.cluster, cluster.name.as_str());
                    assert_eq!(owner.node, None);
                }
                ObjectKind::Domain => {
                    let owner = owner.unwrap_or_else(|| panic!("{}: no owner", o.name));
                    assert_eq!(owner.cluster, cluster.name.as_str());
                    let node = owner.node.unwrap_or_else(|| panic!("{}: no node", o.name));
                    assert_eq!(
                        hpc_libvirt::domain_name(cluster.name.as_str(), &node),
                        o.name
                    );
                }
                // Pools and volumes have no <metadata> in libvirt.
                ObjectKind::Pool | ObjectKind::Volume => assert_eq!(owner, None),
            }
        }
    }
}

/// libvirt's schema name for `virt-xml-validate`.
fn schema(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Network => "network",
        ObjectKind::Pool => "storagepool",
        ObjectKind::Volume => "storagevol",
        ObjectKind::Domain => "domain",
    }
}

fn find_in_path(bin: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Every rendered object passes libvirt's RELAX NG schemas. Needs `virt-xml-validate`
/// (libvirt-clients) and `xmllint` (libxml2-utils): skipped with a notice without them, except
/// under CI, where they are installed and their absence is a failure.
#[test]
fn every_object_passes_virt_xml_validate() {
    let tools = ["virt-xml-validate", "xmllint"];
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_in_path(t).is_none())
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "{} not found: install libvirt-clients and libxml2-utils",
            missing.join(" and ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but {msg}");
        }
        eprintln!("notice: skipping virt-xml-validate check: {msg}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, text) in FILES {
        for (i, o) in plan(&load(name, text)).objects.iter().enumerate() {
            let file = dir.path().join(format!("{name}-{i}-{}.xml", o.name));
            fs_err::write(&file, &o.xml).expect("write XML");
            let out = Command::new("virt-xml-validate")
                .arg(&file)
                .arg(schema(o.kind))
                .output()
                .expect("run virt-xml-validate");
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{name}: {:?} {} ({}):\n{}{}\n{}",
                    o.kind,
                    o.name,
                    file_name(&file),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    o.xml
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked > 0);
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
