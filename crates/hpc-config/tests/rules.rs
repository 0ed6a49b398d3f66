//! One test per validation rule: a small valid file, changed in one place, must fail with
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do
//! exactly the expected problem at the expected position.

use hpc_config::{DebianRelease, ErrorKind, ValidationError, load_str};

const BASE: &str = "\
name: lab
network:
  cidr: 10.77.0.0/24
  bridge: hpcbr0
image:
  base: ${HOME}/base.qcow2
controller:
  nodes:
    - name: ctl
      ip: 10.77.0.10
compute:
  - name: cn{index}
    count: 2
";

mod common;

use common::{env, one, problems};

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn base_file_is_valid_and_resolves() {
    let c = load_str("t.yaml", BASE, &env).unwrap();
    let names: Vec<_> = c.nodes.iter().map(|n| n.name.to_string()).collect();
    assert_eq!(names, ["ctl", "cn1", "cn2"]);
    let ips: Vec<_> = c.nodes.iter().map(|n| n.ip.to_string()).collect();
    // Explicit addresses first; the rest take the lowest free ones after the gateway.
    assert_eq!(ips, ["10.77.0.10", "10.77.0.2", "10.77.0.3"]);
    assert_eq!(c.network.gateway.to_string(), "10.77.0.1");
    assert_eq!(c.network.domain.as_str(), "lab.test");
    assert_eq!(c.image.base.to_str(), Some("/home/user/base.qcow2"));
    assert_eq!(
        c.state_dir.to_str(),
        Some("/home/user/.local/state/hpc-up/lab")
    );
    assert!(c.nodes[0].mac.to_string().starts_with("52:54:00:"));
    assert_ne!(c.nodes[1].mac, c.nodes[2].mac);
}

#[test]
fn resolution_is_deterministic() {
    let a = load_str("t.yaml", BASE, &env).unwrap();
    let b = load_str("t.yaml", BASE, &env).unwrap();
    assert_eq!(a, b);
}

#[test]
fn duplicate_node_names() {
    let text = BASE.replace("    - name: ctl\n", "    - name: cn1\n");
    let (line, col, msg) = one(&text);
    assert_eq!((line, col), (12, 11));
    assert_eq!(msg, "node name `cn1` is used twice");
}

#[test]
fn ip_outside_network() {
    let (line, col, msg) = one(&BASE.replace("ip: 10.77.0.10", "ip: 10.78.0.10"));
    assert_eq!((line, col), (10, 11));
    assert_eq!(
        msg,
        "10.78.0.10 is outside the cluster network 10.77.0.0/24"
    );
}

#[test]
fn ip_network_broadcast_and_gateway_are_reserved() {
    for (ip, what) in [
        ("10.77.0.0", "the network address"),
        ("10.77.0.255", "the broadcast address"),
        ("10.77.0.1", "the gateway"),
    ] {
        let (_, _, msg) = one(&BASE.replace("10.77.0.10", ip));
        assert_eq!(
            msg,
            format!("{ip} is {what} of 10.77.0.0/24 and cannot be a node's address")
        );
    }
}

#[test]
fn duplicate_ips() {
    let text = BASE.replace("    count: 2\n", "    count: 2\n    first-ip: 10.77.0.9\n");
    let (line, _, msg) = one(&text);
    assert_eq!(line, 14);
    assert_eq!(msg, "10.77.0.10 is already the address of node `ctl`");
}

#[test]
fn network_too_small() {
    let text = BASE
        .replace("10.77.0.0/24", "10.77.0.0/30")
        .replace("      ip: 10.77.0.10\n", "");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(
        p[1].message,
        "the network 10.77.0.0/30 has no free address left for node `cn2`"
    );
}

#[test]
fn virtiofs_tags_unique_per_node_and_short() {
    let text = with(
        "virtiofs:\n  - {tag: data, host-path: /srv/a, mount-point: /a}\n  - {tag: data, host-path: /srv/b, mount-point: /b}\n",
    );
    let p = problems(&text);
    // One report per node that gets both shares.
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p.iter().all(|p| {
        p.message
            .starts_with("virtio-fs tag `data` is used twice on node")
    }));
    assert_eq!(p[0].line, 16);

    let long = "t".repeat(37);
    let (line, col, msg) = one(&with(&format!(
        "virtiofs:\n  - {{tag: {long}, host-path: /srv/a, mount-point: /a}}\n"
    )));
    assert_eq!((line, col), (15, 11));
    assert_eq!(
        msg,
        format!("virtio-fs tag `{long}` is 37 bytes long; the device allows at most 36")
    );
}

#[test]
fn paths_must_be_absolute() {
    let (_, _, msg) = one(&with(
        "virtiofs:\n  - {tag: data, host-path: srv/a, mount-point: /a}\n",
    ));
    assert_eq!(msg, "host path `srv/a` must be an absolute path");
    let p = problems(&with(
        "virtiofs:\n  - {tag: data, host-path: /srv/a, mount-point: data}\n",
    ));
    // The same mistake shared by three nodes is reported once.
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].message, "mount point `data` must be an absolute path");
    let (_, _, msg) = one(&BASE.replace("${HOME}/base.qcow2", "base.qcow2"));
    assert_eq!(msg, "base image `base.qcow2` must be an absolute path");
}

#[test]
fn unset_variables_are_named() {
    let (line, col, msg) = one(&BASE.replace("${HOME}", "${NOPE_NOT_SET}"));
    assert_eq!((line, col), (6, 9));
    assert_eq!(msg, "environment variable `NOPE_NOT_SET` is not set");
}

#[test]
fn sane_sizes() {
    let (_, _, msg) = one(&with("").replace("    count: 2\n", "    count: 2\n    memory: 2048\n"));
    assert!(msg.starts_with("memory 2KiB is out of range"), "{msg}");
    assert!(msg.contains("a bare number is bytes"), "{msg}");
    let (_, _, msg) = one(&with("").replace("    count: 2\n", "    count: 2\n    vcpus: 0\n"));
    assert!(msg.contains("below the minimum 1"), "{msg}");
    let (_, _, msg) = one(&with("").replace("    count: 2\n", "    count: 2\n    disk: 100MiB\n"));
    assert!(msg.starts_with("disk 100MiB is out of range"), "{msg}");
}

#[test]
fn partitions_name_existing_nodes() {
    let (line, col, msg) = one(&with(
        "slurm:\n  partitions:\n    - name: debug\n      nodes: [\"cn[1-2]\", cn7]\n",
    ));
    assert_eq!((line, col), (17, 26));
    assert_eq!(msg, "no node is called `cn7`");
    let p = problems(&with(
        "slurm:\n  partitions:\n    - name: debug\n      nodes: [cnn1]\n",
    ));
    assert_eq!(p[0].help.as_deref(), Some("did you mean `cn1`?"));
}

#[test]
fn beegfs_placement_names_existing_nodes() {
    let (_, _, msg) = one(&with("beegfs:\n  version: \"7.4.6\"\n  management: ctrl\n"));
    assert_eq!(msg, "no node is called `ctrl`");
    let (_, _, msg) = one(&with(
        "beegfs:\n  version: \"8.1\"\n  storage: [\"cn[1-3]\"]\n",
    ));
    assert_eq!(msg, "no node is called `cn3`");
    let (_, _, msg) = one(&with("beegfs:\n  version: \"7.3.0\"\n"));
    assert_eq!(
        msg,
        "BeeGFS 7.3.0 is not supported: hpc-up deploys 7.4.x and 8.x"
    );
}

#[test]
fn pci_addresses_well_formed_and_not_shared() {
    let (_, _, msg) = one(&with("").replace(
        "    count: 2\n",
        "    count: 2\n    pci-devices: [{address: \"0000:3b:00.0\"}]\n",
    ));
    assert_eq!(
        msg,
        "PCI device 0000:3b:00.0 is already given to node `cn1`"
    );
    let (_, _, msg) = one(&BASE.replace(
        "      ip: 10.77.0.10\n",
        "      ip: 10.77.0.10\n      pci-devices: [{address: \"3b:00.9\"}]\n",
    ));
    assert_eq!(
        msg,
        "`3b:00.9`: the slot must be at most 1f and the function at most 7"
    );
}

#[test]
fn unknown_keys_get_a_suggestion() {
    let p = problems(&BASE.replace(
        "  bridge: hpcbr0\n",
        "  bridge: hpcbr0\n  gatway: 10.77.0.1\n",
    ));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].message, "unknown key `gatway`");
    assert_eq!(p[0].help.as_deref(), Some("did you mean `gateway`?"));
    assert_eq!((p[0].line, p[0].column), (5, 3));
}

#[test]
fn enum_values_get_a_suggestion() {
    let p = problems(&with("libvirt:\n  domain-type: kvmm\n"));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].message, "`kvmm` is not one of `kvm`, `qemu`");
    assert_eq!(p[0].help.as_deref(), Some("did you mean `kvm`?"));
}

#[test]
fn image_release_defaults_to_bookworm() {
    let c = load_str("t.yaml", BASE, &env).unwrap();
    assert_eq!(c.image.release, DebianRelease::Bookworm);
}

#[test]
fn image_release_bookworm_and_trixie() {
    for (text, want) in [
        ("bookworm", DebianRelease::Bookworm),
        ("trixie", DebianRelease::Trixie),
    ] {
        let file = BASE.replace(
            "  base: ${HOME}/base.qcow2\n",
            &format!("  base: ${{HOME}}/base.qcow2\n  release: {text}\n"),
        );
        let c = load_str("t.yaml", &file, &env).unwrap();
        assert_eq!(c.image.release, want);
        assert_eq!(c.image.release.as_str(), text);
    }
}

#[test]
fn image_release_other_values_are_refused_where_they_are() {
    let file = BASE.replace(
        "  base: ${HOME}/base.qcow2\n",
        "  base: ${HOME}/base.qcow2\n  release: trixy\n",
    );
    let p = problems(&file);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].message, "`trixy` is not one of `bookworm`, `trixie`");
    assert_eq!(p[0].help.as_deref(), Some("did you mean `trixie`?"));
    assert_eq!((p[0].line, p[0].column), (7, 12));
    // Numbers, capitals and other suites are refused too, next to other problems.
    for bad in ["13", "Trixie", "sid", "\"debian-13\""] {
        let file = BASE
            .replace(
                "  base: ${HOME}/base.qcow2\n",
                &format!("  base: ${{HOME}}/base.qcow2\n  release: {bad}\n"),
            )
            .replace(
                "  bridge: hpcbr0\n",
                "  bridge: hpcbr0\n  gatway: 10.77.0.1\n",
            );
        let p = problems(&file);
        assert_eq!(p.len(), 2, "{bad}: {p:#?}");
        assert!(
            p.iter()
                .any(|p| p.line == 8 && p.column == 12 && p.message.contains("is not one of")),
            "{bad}: {p:#?}"
        );
    }
}

#[test]
fn missing_required_keys() {
    let p = problems(&BASE.replace("  bridge: hpcbr0\n", ""));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].message, "missing `bridge`");
    assert_eq!(p[0].line, 2);
}

#[test]
fn group_shape() {
    let (_, _, msg) = one(&BASE.replace("    count: 2\n", ""));
    assert_eq!(msg, "a counted node group needs `count`");
    let (_, _, msg) = one(&BASE.replace("cn{index}", "cn"));
    assert_eq!(
        msg,
        "name pattern `cn` needs exactly one `{index}` or `{index:0N}`"
    );
}

#[test]
fn kernel_options_need_a_kernel() {
    let (_, _, msg) = one(&BASE.replace(
        "  base: ${HOME}/base.qcow2\n",
        "  base: ${HOME}/base.qcow2\n  cmdline: console=ttyS0\n",
    ));
    assert_eq!(msg, "`cmdline` needs `kernel` (direct kernel boot)");
}

#[test]
fn file_modes_must_be_quoted() {
    let (_, _, msg) = one(&with(
        "virtiofs:\n  - {tag: d, host-path: /srv/a, mount-point: /a, mode: 0755}\n",
    ));
    assert!(
        msg.starts_with("write the mode as a quoted string"),
        "{msg}"
    );
}

#[test]
fn yaml_duplicate_keys_and_syntax() {
    let p = problems(&BASE.replace("  bridge: hpcbr0\n", "  bridge: hpcbr0\n  bridge: hpcbr1\n"));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].message, "duplicate key `bridge`");
    let p = problems("name: [unclosed\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].message.starts_with("invalid YAML"));
}

#[test]
fn many_problems_are_reported_together() {
    let text = fs_err::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/five-mistakes.yaml"
    ))
    .unwrap();
    let p = problems(&text);
    let at: Vec<(usize, usize)> = p.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(
        at,
        [(12, 3), (16, 13), (18, 15), (20, 13), (24, 15)],
        "{p:#?}"
    );
}

#[test]
fn validation_errors_are_typed() {
    let file: hpc_config::ClusterFile = {
        let (f, _) = hpc_config::parse_str("t.yaml", BASE, &env).unwrap();
        let mut f = f;
        f.controller.nodes.as_mut().unwrap()[0].ip = Some("10.1.1.1".parse().unwrap());
        f
    };
    let errors = hpc_config::resolve(&file, &env).unwrap_err();
    assert_eq!(
        errors,
        vec![ValidationError {
            at: "/controller/nodes/0/ip".into(),
            kind: ErrorKind::IpOutsideNetwork {
                ip: "10.1.1.1".parse().unwrap(),
                cidr: "10.77.0.0/24".into()
            }
        }]
    );
}

#[test]
fn read_only_shares_take_owner_and_mode_from_the_host() {
    let (_, _, msg) = one(&with(
        "virtiofs:\n  - {tag: d, host-path: /srv/a, mount-point: /a, readonly: true, mode: \"0755\"}\n",
    ));
    assert_eq!(
        msg,
        "read-only share `d` is not valid: `owner`, `group` and `mode` cannot be set on it: they are the host directory's"
    );
}

#[test]
fn slurm_memory_headroom_is_a_percentage_up_to_50() {
    let c = load_str(
        "t.yaml",
        &with("slurm:\n  memory-headroom-percent: 10\n"),
        &env,
    )
    .unwrap();
    assert_eq!(c.slurm.unwrap().memory_headroom_percent, 10);
    let c = load_str("t.yaml", &with("slurm: {}\n"), &env).unwrap();
    assert_eq!(c.slurm.unwrap().memory_headroom_percent, 5);
    let (line, col, msg) = one(&with("slurm:\n  memory-headroom-percent: 80\n"));
    assert_eq!((line, col), (15, 28), "{msg}");
    assert!(msg.contains("80") && msg.contains("50"), "{msg}");
}
