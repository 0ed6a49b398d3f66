//! `hosts:` and placement: one test per rule (a small valid file changed in one place fails
//! with exactly the expected problem at the expected position), and the placement itself.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use hpc_config::{Cluster, ErrorKind, HostCapacity, ValidationError, load_str, types::ByteSize};

mod common;

use common::{env, one, problems};

/// Two hosts without capacity, a controller and a counted group of four (2 vCPUs and 2GiB
/// each, the defaults).
const BASE: &str = "\
name: lab
libvirt:
  domain-type: qemu
network:
  cidr: 10.77.0.0/24
  bridge: hpcbr0
image:
  base: ${HOME}/base.qcow2
hosts:
  - name: hv1
    uri: qemu:///system
    address: 192.168.50.1
  - name: hv2
    uri: qemu+ssh://root@192.168.50.2/system
    address: 192.168.50.2
controller:
  nodes:
    - name: ctl
compute:
  - name: cn{index}
    count: 4
";

fn load(text: &str) -> Cluster {
    load_str("t.yaml", text, &env).unwrap_or_else(|e| panic!("{e:?}"))
}

/// `node@host` for every node, in cluster order.
fn placement(c: &Cluster) -> Vec<String> {
    c.nodes
        .iter()
        .map(|n| format!("{}@{}", n.name, n.host.as_ref().unwrap()))
        .collect()
}

/// `text` with the hosts' URIs swapped: `hv2` is this machine, `hv1` is reached over SSH (for
/// tests whose controller ends up on `hv2`: the controller's host must be local).
fn hv2_local(text: &str) -> String {
    text.replace("qemu:///system", "LOCAL")
        .replace("qemu+ssh://root@192.168.50.2/system", "qemu:///system")
        .replace("LOCAL", "qemu+ssh://root@192.168.50.1/system")
}

/// BASE with `capacity` (YAML flow mapping) on host `hv1` and/or `hv2`.
fn with_capacity(hv1: Option<&str>, hv2: Option<&str>) -> String {
    let mut text = BASE.to_owned();
    if let Some(c) = hv1 {
        text = text.replace(
            "    address: 192.168.50.1\n",
            &format!("    address: 192.168.50.1\n    capacity: {c}\n"),
        );
    }
    if let Some(c) = hv2 {
        text = text.replace(
            "    address: 192.168.50.2\n",
            &format!("    address: 192.168.50.2\n    capacity: {c}\n"),
        );
    }
    text
}

#[test]
fn without_hosts_nothing_changes() {
    let text = BASE.replace(
        "hosts:\n  - name: hv1\n    uri: qemu:///system\n    address: 192.168.50.1\n  - name: hv2\n    uri: qemu+ssh://root@192.168.50.2/system\n    address: 192.168.50.2\n",
        "",
    );
    let c = load(&text);
    assert!(c.hosts.is_empty());
    assert!(c.nodes.iter().all(|n| n.host.is_none()));
    assert!(c.nodes.iter().all(|n| n.uri.as_str() == "qemu:///system"));
    // The resolved cluster's JSON (render's cluster.json) has no trace of hosts either.
    let json = serde_json::to_value(&c).unwrap();
    assert!(json.get("hosts").is_none());
    assert!(json["nodes"][0].get("host").is_none());
}

#[test]
fn hosts_resolve_in_file_order() {
    let c = load(&with_capacity(Some("{vcpus: 16, memory: 64GiB}"), None));
    let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["hv1", "hv2"]);
    assert_eq!(c.hosts[0].uri.as_str(), "qemu:///system");
    assert_eq!(c.hosts[1].address, Some("192.168.50.2".parse().unwrap()));
    assert_eq!(
        c.hosts[0].capacity,
        Some(HostCapacity {
            vcpus: 16,
            memory: ByteSize::from_gib(64)
        })
    );
    assert_eq!(c.hosts[1].capacity, None);
    assert_eq!(c.host("hv2").unwrap().name.as_str(), "hv2");
}

#[test]
fn spread_over_two_hosts_without_capacity() {
    let c = load(BASE);
    // Fewest vCPUs placed so far, then least memory, then the first listed.
    assert_eq!(
        placement(&c),
        ["ctl@hv1", "cn1@hv2", "cn2@hv1", "cn3@hv2", "cn4@hv1"]
    );
    // A node's connection is its host's; the domain type stays the file's.
    for n in &c.nodes {
        let host = c.host(n.host.as_ref().unwrap().as_str()).unwrap();
        assert_eq!(n.uri, host.uri);
        assert_eq!(n.domain_type, hpc_config::file::DomainType::Qemu);
    }
    let on_hv2: Vec<&str> = c.nodes_on("hv2").map(|n| n.name.as_str()).collect();
    assert_eq!(on_hv2, ["cn1", "cn3"]);
}

#[test]
fn least_memory_breaks_a_vcpu_tie() {
    // ctl has 2 vCPUs and 8GiB; cn1 goes to hv2 (fewer vCPUs), cn2 to hv2 too (same vCPUs
    // as hv1, less memory).
    let text = BASE.replace("    - name: ctl\n", "    - name: ctl\n  memory: 8GiB\n");
    let c = load(&text);
    assert_eq!(
        placement(&c),
        ["ctl@hv1", "cn1@hv2", "cn2@hv2", "cn3@hv1", "cn4@hv2"]
    );
}

#[test]
fn capacity_is_respected() {
    // hv1 takes two nodes of 2 vCPUs at most; the rest go to hv2.
    let c = load(&with_capacity(Some("{vcpus: 4, memory: 64GiB}"), None));
    assert_eq!(
        placement(&c),
        ["ctl@hv1", "cn1@hv2", "cn2@hv1", "cn3@hv2", "cn4@hv2"]
    );
    // Memory counts too: 5GiB holds two nodes of 2GiB.
    let c = load(&with_capacity(None, Some("{vcpus: 64, memory: 5GiB}")));
    assert_eq!(
        placement(&c),
        ["ctl@hv1", "cn1@hv2", "cn2@hv1", "cn3@hv2", "cn4@hv1"]
    );
    let c = load(&with_capacity(None, Some("{vcpus: 64, memory: 3GiB}")));
    assert_eq!(
        placement(&c),
        ["ctl@hv1", "cn1@hv2", "cn2@hv1", "cn3@hv1", "cn4@hv1"]
    );
}

#[test]
fn pinned_nodes_take_their_host_first() {
    // gpu1 comes last in the file but is pinned to hv1, whose 4 vCPUs it takes whole: every
    // other node goes to hv2.
    let text = hv2_local(&format!(
        "{}  - nodes:\n      - name: gpu1\n        host: hv1\n    vcpus: 4\n",
        with_capacity(Some("{vcpus: 4, memory: 64GiB}"), None)
    ));
    let c = load(&text);
    assert_eq!(
        placement(&c),
        [
            "ctl@hv2", "cn1@hv2", "cn2@hv2", "cn3@hv2", "cn4@hv2", "gpu1@hv1"
        ]
    );
}

#[test]
fn a_node_host_overrides_its_group_host() {
    let text = hv2_local(
        &BASE
            .replace("    - name: ctl\n", "    - name: ctl\n      host: hv2\n")
            .replace("    count: 4\n", "    count: 4\n    host: hv1\n"),
    );
    let c = load(&text);
    assert_eq!(
        placement(&c),
        ["ctl@hv2", "cn1@hv1", "cn2@hv1", "cn3@hv1", "cn4@hv1"]
    );
    let text = BASE.replace(
        "controller:\n  nodes:\n    - name: ctl\n",
        "controller:\n  host: hv2\n  nodes:\n    - name: ctl\n      host: hv1\n",
    );
    assert_eq!(placement(&load(&text))[0], "ctl@hv1");
}

#[test]
fn placement_is_deterministic() {
    for text in [
        BASE.to_owned(),
        with_capacity(
            Some("{vcpus: 6, memory: 64GiB}"),
            Some("{vcpus: 8, memory: 9GiB}"),
        ),
    ] {
        let first = load(&text);
        for _ in 0..20 {
            assert_eq!(load(&text), first);
        }
    }
}

#[test]
fn pinned_node_that_does_not_fit() {
    // hv1 is full with cn1, so the controller goes to hv2: make that this machine.
    let text = hv2_local(
        &with_capacity(Some("{vcpus: 2, memory: 8GiB}"), None)
            .replace("    count: 4\n", "    count: 4\n    host: hv1\n"),
    );
    // One problem for the group, at its `host`: cn1 fits, cn2 does not (nor the others).
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (23, 11));
    assert_eq!(
        msg,
        "node `cn2` needs 2 vCPUs, 2GiB, but host `hv1` has only 0 vCPUs, 6GiB free of its capacity"
    );
}

#[test]
fn no_host_fits() {
    let text = with_capacity(
        Some("{vcpus: 4, memory: 64GiB}"),
        Some("{vcpus: 4, memory: 64GiB}"),
    );
    // ctl, cn1, cn2 and cn3 fill both hosts; cn4 fits nowhere. Reported at its group.
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (22, 5));
    assert_eq!(
        msg,
        "node `cn4` needs 2 vCPUs, 2GiB and fits on no host; free: `hv1` 0 vCPUs, 60GiB; `hv2` 0 vCPUs, 60GiB"
    );
    // A listed node is reported at its entry.
    let text = with_capacity(
        Some("{vcpus: 1, memory: 64GiB}"),
        Some("{vcpus: 1, memory: 64GiB}"),
    );
    let p = problems(&text);
    assert_eq!(p[0].pointer, "/controller/nodes/0");
    assert_eq!((p[0].line, p[0].column), (20, 7));
    assert!(p[0].message.starts_with("node `ctl` needs 2 vCPUs, 2GiB"));
    assert_eq!(p[1].pointer, "/compute/0");
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn host_must_name_a_host() {
    let text = BASE.replace("    count: 4\n", "    count: 4\n    host: hv3\n");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (22, 11));
    assert_eq!(
        msg,
        "no host of `hosts:` is called `hv3`; the hosts are `hv1`, `hv2`"
    );
    let text = BASE.replace("    - name: ctl\n", "    - name: ctl\n      host: hv0\n");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].pointer, "/controller/nodes/0/host");
}

#[test]
fn host_needs_a_hosts_list() {
    let text = BASE
        .replace(
            "hosts:\n  - name: hv1\n    uri: qemu:///system\n    address: 192.168.50.1\n  - name: hv2\n    uri: qemu+ssh://root@192.168.50.2/system\n    address: 192.168.50.2\n",
            "",
        )
        .replace("controller:\n", "controller:\n  host: hv1\n");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (10, 9));
    assert_eq!(msg, "`host: hv1` needs a `hosts:` list that names it");
}

#[test]
fn libvirt_uri_is_refused_with_hosts() {
    let want =
        "`libvirt.uri` cannot be used with `hosts:`: name a host of `hosts:` instead (`host: hv1`)";
    for (text, pointer) in [
        (
            BASE.replace("libvirt:\n", "libvirt:\n  uri: qemu:///system\n"),
            "/libvirt/uri",
        ),
        (
            BASE.replace(
                "    count: 4\n",
                "    count: 4\n    libvirt: {uri: \"qemu:///system\"}\n",
            ),
            "/compute/0/libvirt/uri",
        ),
        (
            BASE.replace(
                "    - name: ctl\n",
                "    - name: ctl\n      libvirt: {uri: \"qemu+ssh://h/system\"}\n",
            ),
            "/controller/nodes/0/libvirt/uri",
        ),
    ] {
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].pointer, pointer);
        assert_eq!(p[0].message, want);
    }
    // The domain type stays allowed everywhere (BASE sets it at the top).
    let text = BASE.replace(
        "    count: 4\n",
        "    count: 4\n    libvirt: {domain-type: kvm}\n",
    );
    let c = load(&text);
    assert_eq!(c.nodes[1].domain_type, hpc_config::file::DomainType::Kvm);
}

#[test]
fn duplicate_host_names() {
    let text = BASE.replace("  - name: hv2\n", "  - name: hv1\n");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (13, 11));
    assert_eq!(msg, "host name `hv1` is used twice");
}

#[test]
fn duplicate_host_uris() {
    let text = BASE.replace("qemu+ssh://root@192.168.50.2/system", "qemu:///system");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (14, 10));
    assert_eq!(
        msg,
        "libvirt URI `qemu:///system` is already the URI of host `hv1`"
    );
}

#[test]
fn duplicate_host_addresses() {
    let text = BASE.replace("address: 192.168.50.2", "address: 192.168.50.1");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (15, 14));
    assert_eq!(msg, "192.168.50.1 is already the address of host `hv1`");
}

#[test]
fn host_address_outside_the_cluster_network() {
    let text = BASE.replace("address: 192.168.50.2", "address: 10.77.0.200");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (15, 14));
    assert_eq!(
        msg,
        "the address 10.77.0.200 of host `hv2` is inside the cluster network 10.77.0.0/24; give the address the other hosts reach it on"
    );
}

#[test]
fn host_address_must_be_reachable() {
    for ip in [
        "127.0.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "240.0.0.1",
    ] {
        let text = BASE.replace("address: 192.168.50.2", &format!("address: {ip}"));
        let (line, _, msg) = one(&text);
        assert_eq!(line, 15);
        assert!(
            msg.starts_with(&format!("host address `{ip}` is not valid")),
            "{msg}"
        );
    }
}

#[test]
fn several_hosts_need_addresses() {
    let text = BASE.replace("    address: 192.168.50.2\n", "");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (13, 5));
    assert_eq!(
        msg,
        "host `hv2` needs an `address` (the IPv4 address the other hosts reach it on): the cluster has 2 hosts"
    );
    // One host needs none.
    let text = BASE.replace(
        "  - name: hv2\n    uri: qemu+ssh://root@192.168.50.2/system\n    address: 192.168.50.2\n",
        "",
    );
    let text = text.replace("    address: 192.168.50.1\n", "");
    let c = load(&text);
    assert_eq!(c.hosts.len(), 1);
    assert_eq!(c.hosts[0].address, None);
    assert!(
        c.nodes
            .iter()
            .all(|n| n.host.as_ref().unwrap().as_str() == "hv1")
    );
}

#[test]
fn at_most_one_local_host() {
    let text = BASE.replace("qemu+ssh://root@192.168.50.2/system", "qemu:///session");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (14, 10));
    assert_eq!(
        msg,
        "host `hv2` has a local URI `qemu:///session`, and so has host `hv1`; at most one host can be this machine"
    );
    // Two remote hosts and no local one: only the rule of the controller's host speaks.
    let text = BASE.replace("qemu:///system", "qemu+ssh://root@192.168.50.1/system");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].pointer, "/hosts/0/uri");
}

#[test]
fn the_controllers_host_must_be_local() {
    // Placed there: reported at the host's URI.
    let text = BASE.replace("qemu:///system", "qemu+ssh://root@192.168.50.1/system");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (11, 10));
    assert_eq!(
        msg,
        "the controller is on host `hv1`, whose URI `qemu+ssh://root@192.168.50.1/system` is \
         remote; with several hosts the controller's host must be this machine (a local URI \
         such as `qemu:///system`): hpc-up runs there, reaches every node through that \
         host's bridge, and its network is the cluster's one DHCP server"
    );
    let mut file = hpc_config::parse_str("t.yaml", BASE, &env).unwrap().0;
    file.hosts[0].uri = "qemu+ssh://root@192.168.50.1/system".parse().unwrap();
    assert_eq!(
        hpc_config::resolve(&file, &env).unwrap_err(),
        [ValidationError {
            at: "/hosts/0/uri".into(),
            kind: ErrorKind::PrimaryHostRemote {
                host: "hv1".into(),
                uri: "qemu+ssh://root@192.168.50.1/system".into(),
                local: None,
            },
        }]
    );
    // Pinned there: reported at the controller's `host`, with the local host as the way out.
    let text = BASE.replace("    - name: ctl\n", "    - name: ctl\n      host: hv2\n");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].pointer, "/controller/nodes/0/host");
    assert_eq!(
        p[0].help.as_deref(),
        Some(
            "pin the controller to host `hv1` (`host: hv1` under `controller:`), or run hpc-up \
             on the controller's host"
        )
    );
    // One host, remote: fine (nothing spans hosts).
    let text = BASE.replace(
        "  - name: hv2\n    uri: qemu+ssh://root@192.168.50.2/system\n    address: 192.168.50.2\n",
        "",
    );
    let text = text.replace("qemu:///system", "qemu+ssh://root@192.168.50.1/system");
    assert!(problems(&text).is_empty());
}

#[test]
fn capacity_must_hold_a_node() {
    let text = with_capacity(Some("{vcpus: 4, memory: 64MiB}"), None);
    let p = problems(&text);
    assert_eq!(p[0].pointer, "/hosts/0/capacity/memory");
    assert_eq!(
        p[0].message,
        "capacity memory 64MiB is out of range: at least 128MiB (the smallest node)"
    );
    let p = problems(&with_capacity(Some("{vcpus: 0, memory: 64GiB}"), None));
    assert_eq!(p[0].pointer, "/hosts/0/capacity/vcpus");
}

#[test]
fn host_fields_are_checked_by_the_schema() {
    let p = problems(&BASE.replace(
        "    address: 192.168.50.2\n",
        "    address: 192.168.50.2\n    cpus: 4\n",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].line, 16);
    assert!(p[0].message.contains("cpus"), "{}", p[0].message);
    let p = problems(&with_capacity(Some("{vcpus: 4}"), None));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].message, "missing `memory`");
    assert_eq!(p[0].pointer, "/hosts/0/capacity");
}

#[test]
fn host_rules_are_typed() {
    let file = hpc_config::parse_str("t.yaml", BASE, &env).unwrap().0;
    let mut file = file;
    file.hosts[1].name = "hv1".parse().unwrap();
    let errors = hpc_config::resolve(&file, &env).unwrap_err();
    assert_eq!(
        errors,
        [ValidationError {
            at: "/hosts/1/name".into(),
            kind: ErrorKind::DuplicateHost { name: "hv1".into() },
        }]
    );
}

#[test]
fn two_hosts_example_loads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/two-hosts.yaml");
    let c = hpc_config::load_file(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.hosts.len(), 2);
    assert_eq!(c.nodes.len(), 5);
    assert!(c.nodes.iter().all(|n| n.host.is_some()));
    assert_eq!(c.nodes_on("hv1").count() + c.nodes_on("hv2").count(), 5);
    assert!(c.nodes_on("hv2").count() >= 2, "{:?}", placement(&c));
    // Its controller, on the primary host, is on this machine.
    assert_eq!(c.nodes[0].uri.as_str(), "qemu:///system");
}
