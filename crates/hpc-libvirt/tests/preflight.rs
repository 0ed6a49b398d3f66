//! Preflight against libvirt's test driver.
//!
//! Every test opens its own `test:///<abs>/tests/fixtures/preflight-node.xml` connection (a
//! private state per connection) and defines there whatever it wants to clash with. The
//! fixture host has one GPU, 0000:3b:00.0, alone in its IOMMU group. The test driver has no
//! domain capabilities, so the domain type and virtio-fs checks are skipped here (they are
//! unit-tested with a fake, and run against the real QEMU driver in `hpc-tests`).
#![cfg(feature = "virt")]

use std::path::{Path, PathBuf};

use hpc_config::Cluster;
use hpc_libvirt::{
    Hypervisor, ImageFile, METADATA_NS, ObjectKind, PreflightProblem, VirtHypervisor, plan,
    preflight,
};

fn fixture_uri() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preflight-node.xml");
    format!("test://{}", path.display())
}

/// A cluster `pf` on the fixture host with its files in a fresh temp dir: the base image,
/// kernel and initrd, and the host directory of the share `shared` (all nodes) exist.
struct Bed {
    dir: tempfile::TempDir,
    hv: VirtHypervisor,
}

impl Bed {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in ["base.qcow2", "vmlinuz", "initrd.img"] {
            fs_err::write(dir.path().join(f), b"image").expect("image file");
        }
        fs_err::create_dir(dir.path().join("shared")).expect("share dir");
        let hv = VirtHypervisor::connect(&fixture_uri()).expect("test driver connection");
        Self { dir, hv }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The cluster, with `pci` as the GPU node's device address.
    fn cluster_with(&self, pci: &str) -> Cluster {
        let d = self.dir.path().display();
        let yaml = format!(
            "name: pf
libvirt:
  uri: {uri}
  domain-type: qemu
network:
  cidr: 10.98.0.0/24
  bridge: hpcbr-pf
image:
  base: {d}/base.qcow2
  kernel: {d}/vmlinuz
  initrd: {d}/initrd.img
state-dir: {d}/state
virtiofs:
  - tag: shared
    host-path: {d}/shared
    mount-point: /shared
controller:
  nodes:
    - name: ctl
  vcpus: 1
  memory: 1GiB
  disk: 8GiB
compute:
  - nodes:
      - name: gpu1
        pci-devices:
          - address: \"{pci}\"
            kind: gpu
            vendor-id: \"10de\"
            device-id: \"20b0\"
    vcpus: 1
    memory: 1GiB
    disk: 8GiB
",
            uri = fixture_uri()
        );
        let env = |_: &str| None;
        hpc_config::load_str("pf.yaml", &yaml, &env).expect("test cluster loads")
    }

    fn cluster(&self) -> Cluster {
        self.cluster_with("0000:3b:00.0")
    }

    fn check(&self, cluster: &Cluster) -> Vec<PreflightProblem> {
        preflight(cluster, &plan(cluster), &self.hv)
    }

    fn define_network(&self, name: &str, bridge: &str, ip: &str) {
        let xml = format!(
            "<network><name>{name}</name><bridge name='{bridge}' stp='off' delay='0'/>{ip}\
             </network>"
        );
        self.hv.define_network(name, &xml).expect("define network");
    }

    fn define_domain(&self, name: &str, metadata: &str) {
        let xml = format!(
            "<domain type='test'><name>{name}</name>{metadata}<memory unit='MiB'>256</memory>\
             <os><type arch='x86_64'>hvm</type></os></domain>"
        );
        self.hv.define_domain(name, &xml).expect("define domain");
    }
}

fn messages(problems: &[PreflightProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn clean_host_has_no_problems() {
    let bed = Bed::new();
    // Unrelated neighbours: another network, another cluster's domain.
    bed.define_network(
        "default",
        "virbr0",
        "<ip address='192.168.122.1' netmask='255.255.255.0'/>",
    );
    bed.define_domain("other-ctl", "");
    assert_eq!(bed.check(&bed.cluster()), Vec::new());
}

#[test]
fn missing_base_image() {
    let bed = Bed::new();
    fs_err::remove_file(bed.path("base.qcow2")).expect("rm");
    let problems = bed.check(&bed.cluster());
    assert_eq!(
        problems,
        vec![PreflightProblem::ImageMissing {
            what: ImageFile::Base,
            path: bed.path("base.qcow2"),
        }]
    );
    assert_eq!(
        messages(&problems),
        [format!(
            "base image `{}` does not exist",
            bed.path("base.qcow2").display()
        )]
    );
}

#[test]
fn kernel_that_is_a_directory() {
    let bed = Bed::new();
    fs_err::remove_file(bed.path("vmlinuz")).expect("rm");
    fs_err::create_dir(bed.path("vmlinuz")).expect("mkdir");
    assert_eq!(
        bed.check(&bed.cluster()),
        vec![PreflightProblem::ImageNotAFile {
            what: ImageFile::Kernel,
            path: bed.path("vmlinuz"),
        }]
    );
}

#[test]
fn missing_virtiofs_host_dir_names_the_share_and_nodes() {
    let bed = Bed::new();
    fs_err::remove_dir(bed.path("shared")).expect("rmdir");
    let problems = bed.check(&bed.cluster());
    assert_eq!(
        problems,
        vec![PreflightProblem::ShareMissing {
            path: bed.path("shared"),
            tag: "shared".to_owned(),
            nodes: vec!["ctl".to_owned(), "gpu1".to_owned()],
        }]
    );
    assert_eq!(
        messages(&problems),
        [format!(
            "virtio-fs host directory `{}` (tag `shared`, nodes `ctl`, `gpu1`) does not exist",
            bed.path("shared").display()
        )]
    );
}

#[test]
fn virtiofs_host_path_that_is_a_file() {
    let bed = Bed::new();
    fs_err::remove_dir(bed.path("shared")).expect("rmdir");
    fs_err::write(bed.path("shared"), b"").expect("file");
    let problems = bed.check(&bed.cluster());
    assert!(
        matches!(
            problems.as_slice(),
            [PreflightProblem::ShareNotADirectory { .. }]
        ),
        "{problems:?}"
    );
}

#[test]
fn bridge_used_by_another_network() {
    let bed = Bed::new();
    bed.define_network(
        "elsewhere",
        "hpcbr-pf",
        "<ip address='192.168.50.1' prefix='24'/>",
    );
    assert_eq!(
        messages(&bed.check(&bed.cluster())),
        [format!(
            "bridge `hpcbr-pf` is already used by libvirt network `elsewhere` on `{}`",
            fixture_uri()
        )]
    );
}

#[test]
fn cidr_overlapping_another_network() {
    let bed = Bed::new();
    bed.define_network(
        "wide",
        "virbr9",
        "<ip address='10.98.0.1' netmask='255.255.0.0'/>",
    );
    let problems = bed.check(&bed.cluster());
    assert_eq!(
        problems,
        vec![PreflightProblem::CidrOverlap {
            cidr: "10.98.0.0/24".parse().expect("net"),
            other: "10.98.0.0/16".parse().expect("net"),
            network: "wide".to_owned(),
            uri: fixture_uri(),
        }]
    );
    assert_eq!(
        messages(&problems),
        [format!(
            "network 10.98.0.0/24 overlaps 10.98.0.0/16 of libvirt network `wide` on `{}`",
            fixture_uri()
        )]
    );
}

#[test]
fn own_network_is_no_clash() {
    let bed = Bed::new();
    let cluster = bed.cluster();
    let own = plan(&cluster)
        .objects
        .into_iter()
        .find(|o| o.kind == ObjectKind::Network)
        .expect("network planned");
    bed.hv.define_network(&own.name, &own.xml).expect("define");
    bed.define_domain(
        "pf-ctl",
        &format!(
            "<metadata><hpc:cluster xmlns:hpc='{METADATA_NS}' name='pf' node='ctl' \
             role='controller'/></metadata>"
        ),
    );
    assert_eq!(bed.check(&cluster), Vec::new());
}

#[test]
fn foreign_domain_with_our_name() {
    let bed = Bed::new();
    bed.define_domain("pf-ctl", "");
    bed.define_domain(
        "pf-gpu1",
        &format!(
            "<metadata><hpc:cluster xmlns:hpc='{METADATA_NS}' name='other' node='gpu1' \
             role='compute'/></metadata>"
        ),
    );
    let problems = bed.check(&bed.cluster());
    assert_eq!(
        problems,
        vec![
            PreflightProblem::NameTaken {
                kind: ObjectKind::Domain,
                name: "pf-ctl".to_owned(),
                uri: fixture_uri(),
                owner: None,
            },
            PreflightProblem::NameTaken {
                kind: ObjectKind::Domain,
                name: "pf-gpu1".to_owned(),
                uri: fixture_uri(),
                owner: Some("other".to_owned()),
            },
        ]
    );
    assert_eq!(
        messages(&problems),
        [
            format!(
                "domain `pf-ctl` exists on `{}` and belongs to no hpc-up cluster",
                fixture_uri()
            ),
            format!(
                "domain `pf-gpu1` exists on `{}` and belongs to cluster `other`",
                fixture_uri()
            ),
        ]
    );
}

#[test]
fn missing_pci_device() {
    let bed = Bed::new();
    let problems = bed.check(&bed.cluster_with("0000:af:00.0"));
    assert_eq!(
        problems,
        vec![PreflightProblem::PciMissing {
            node: "gpu1".to_owned(),
            address: "0000:af:00.0".parse().expect("address"),
            uri: fixture_uri(),
        }]
    );
    assert_eq!(
        messages(&problems),
        [format!(
            "PCI device 0000:af:00.0 of node `gpu1` does not exist on `{}` (no node device \
             `pci_0000_af_00_0`)",
            fixture_uri()
        )]
    );
}

#[test]
fn every_problem_at_once() {
    let bed = Bed::new();
    fs_err::remove_file(bed.path("base.qcow2")).expect("rm");
    fs_err::remove_dir(bed.path("shared")).expect("rmdir");
    bed.define_network("wide", "hpcbr-pf", "<ip address='10.0.0.1' prefix='8'/>");
    bed.define_domain("pf-ctl", "");
    let problems = bed.check(&bed.cluster_with("0000:af:00.0"));
    let kinds: Vec<&str> = problems
        .iter()
        .map(|p| match p {
            PreflightProblem::ImageMissing { .. } => "image",
            PreflightProblem::ShareMissing { .. } => "share",
            PreflightProblem::BridgeInUse { .. } => "bridge",
            PreflightProblem::CidrOverlap { .. } => "cidr",
            PreflightProblem::NameTaken { .. } => "name",
            PreflightProblem::PciMissing { .. } => "pci",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["image", "share", "bridge", "cidr", "name", "pci"]);
}
