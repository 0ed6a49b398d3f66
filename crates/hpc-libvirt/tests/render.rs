//! The libvirt planner against the example files: snapshots, determinism, and libvirt's own
//! schemas (`virt-xml-validate`).

use std::path::Path;
use std::process::Command;

use hpc_config::Cluster;
use hpc_libvirt::{LibvirtPlan, ObjectKind, plan};

/// The inputs: the repository's examples, plus fixtures for what they do not show.
const FILES: &[(&str, &str)] = &[
    ("minimal", include_str!("../../../examples/minimal.yaml")),
    ("gpu", include_str!("../../../examples/gpu.yaml")),
    (
        "full-stack",
        include_str!("../../../examples/full-stack.yaml"),
    ),
    ("multi-host", include_str!("fixtures/multi-host.yaml")),
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
