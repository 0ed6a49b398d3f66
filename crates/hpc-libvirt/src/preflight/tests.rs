//! Preflight against a fake hypervisor: the parsers, and the checks the test driver cannot
//! provoke (domain capabilities, IOMMU groups).

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::hypervisor::{DomainState, HostInfo, HvResult, HypervisorError, LiveObject};

const URI: &str = "qemu:///system";

/// Read-only fake: fixed networks, domains, capabilities and node devices. Every call that
/// would change something panics — preflight must never make one.
#[derive(Default)]
struct Fake {
    networks: Vec<LiveObject>,
    domains: Vec<LiveObject>,
    /// `None`: the driver cannot tell. `Some(map)`: a type missing from it is refused.
    caps: Option<BTreeMap<&'static str, String>>,
    devices: BTreeMap<String, String>,
    /// What `host_info` answers.
    host: Option<HostInfo>,
}

impl Hypervisor for Fake {
    fn uri(&self) -> &str {
        URI
    }
    fn host_info(&self) -> HvResult<Option<HostInfo>> {
        Ok(self.host)
    }
    fn list(&self, kind: ObjectKind) -> HvResult<Vec<LiveObject>> {
        Ok(match kind {
            ObjectKind::Network => self.networks.clone(),
            ObjectKind::Domain => self.domains.clone(),
            ObjectKind::Pool | ObjectKind::Volume => Vec::new(),
        })
    }
    fn lookup(&self, _: ObjectKind, _: Option<&str>, _: &str) -> HvResult<Option<LiveObject>> {
        Ok(None)
    }
    fn define_network(&self, _: &str, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn start_network(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn destroy_network(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn undefine_network(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn define_pool(&self, _: &str, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn build_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn start_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn destroy_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn undefine_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn create_volume(&self, _: &str, _: &str, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn delete_volume(&self, _: &str, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn upload_volume(
        &self,
        _: &str,
        _: &str,
        _: &mut dyn std::io::Read,
        _: u64,
        _: &mut dyn FnMut(u64),
    ) -> HvResult<u64> {
        unreachable!("preflight changes nothing")
    }
    fn download_volume(&self, _: &str, _: &str, _: u64) -> HvResult<Vec<u8>> {
        unreachable!("preflight reads no volume")
    }
    fn define_domain(&self, _: &str, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn start_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn shutdown_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn destroy_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn undefine_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("preflight changes nothing")
    }
    fn domain_state(&self, _: &str) -> HvResult<DomainState> {
        unreachable!("preflight reads no domain state")
    }
    fn domain_capabilities(&self, domain_type: &str) -> HvResult<Option<String>> {
        let Some(caps) = &self.caps else {
            return Ok(None);
        };
        match caps.get(domain_type) {
            Some(xml) => Ok(Some(xml.clone())),
            None => Err(HypervisorError::Query {
                what: format!("the domain capabilities for domain type `{domain_type}`"),
                source: "invalid argument: KVM is not supported on this host".into(),
            }),
        }
    }
    fn node_device_xml(&self, name: &str) -> HvResult<Option<String>> {
        Ok(self.devices.get(name).cloned())
    }
}

fn live(kind: ObjectKind, name: &str, xml: String) -> LiveObject {
    LiveObject {
        kind,
        name: name.to_owned(),
        pool: None,
        active: true,
        xml,
    }
}

/// A cluster on `URI`: `ctl` (with the share `shared`, when `share`) and `gpu1` with the
/// device 0000:3b:00.0 (and 0000:3b:00.1 when `both_functions`). Files live in `dir`.
fn cluster(dir: &Path, domain_type: &str, share: bool, both_functions: bool) -> Cluster {
    let d = dir.display();
    let share = if share {
        format!(
            "      virtiofs:\n        - tag: shared\n          host-path: {d}/shared\n          \
             mount-point: /shared\n"
        )
    } else {
        String::new()
    };
    let second = if both_functions {
        "          - address: \"0000:3b:00.1\"\n"
    } else {
        ""
    };
    let yaml = format!(
        "name: lab
libvirt:
  uri: {URI}
  domain-type: {domain_type}
network:
  cidr: 10.77.0.0/24
  bridge: hpcbr-lab
image:
  base: {d}/base.qcow2
state-dir: {d}/state
controller:
  nodes:
    - name: ctl
{share}  vcpus: 1
  memory: 1GiB
  disk: 8GiB
compute:
  - nodes:
      - name: gpu1
        pci-devices:
          - address: \"0000:3b:00.0\"
            vendor-id: \"10de\"
            device-id: \"20b0\"
{second}    vcpus: 1
    memory: 1GiB
    disk: 8GiB
"
    );
    let env = |_: &str| None;
    hpc_config::load_str("lab.yaml", &yaml, &env).expect("test cluster loads")
}

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs_err::write(dir.path().join("base.qcow2"), b"qcow2").expect("base image");
    fs_err::create_dir(dir.path().join("shared")).expect("share");
    dir
}

fn gpu_xml(function: u8, class: &str, group: Option<&str>) -> String {
    let group = group
        .map(|g| format!("<iommuGroup number='7'>{g}</iommuGroup>"))
        .unwrap_or_default();
    format!(
        "<device><name>pci_0000_3b_00_{function}</name><capability type='pci'>\
         <class>{class}</class><domain>0</domain><bus>59</bus><slot>0</slot>\
         <function>{function}</function><product id='0x20b0'>GA100</product>\
         <vendor id='0x10de'>NVIDIA Corporation</vendor>{group}</capability></device>"
    )
}

const GROUP_3B: &str = "<address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>\
                        <address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/>";

fn caps(virtiofs: bool) -> String {
    let values = if virtiofs {
        "<value>path</value><value>handle</value><value>virtiofs</value>"
    } else {
        "<value>path</value><value>handle</value>"
    };
    format!(
        "<domainCapabilities><path>/usr/bin/qemu-system-x86_64</path><domain>qemu</domain>\
         <devices><disk supported='yes'/><filesystem supported='yes'>\
         <enum name='driverType'>{values}</enum></filesystem></devices></domainCapabilities>"
    )
}

/// A fake host with everything `cluster(..)` needs: devices 0000:3b:00.0 (a GPU) and
/// 0000:3b:00.1 (its audio function) in IOMMU group 7.
fn healthy() -> Fake {
    let mut devices = BTreeMap::new();
    devices.insert(
        "pci_0000_3b_00_0".to_owned(),
        gpu_xml(0, "0x030200", Some(GROUP_3B)),
    );
    devices.insert(
        "pci_0000_3b_00_1".to_owned(),
        gpu_xml(1, "0x040300", Some(GROUP_3B)),
    );
    Fake {
        caps: Some(BTreeMap::from([("qemu", caps(true)), ("kvm", caps(true))])),
        devices,
        ..Fake::default()
    }
}

fn address(s: &str) -> PciAddress {
    s.parse().expect("PCI address")
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn healthy_host_has_no_problems() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", true, true);
    assert_eq!(preflight(&c, &crate::plan(&c), &healthy()), Vec::new());
}

#[test]
fn kvm_refused_by_the_host_is_one_clear_problem() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", false, true);
    let mut hv = healthy();
    hv.caps = Some(BTreeMap::from([("qemu", caps(true))]));
    let problems = preflight(&c, &crate::plan(&c), &hv);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    assert!(
        text.starts_with(
            "domain type kvm is not available on `qemu:///system` (nodes `ctl`, `gpu1`) \
             (no /dev/kvm?); use `domain-type: qemu`: cannot read the domain capabilities"
        ),
        "{text}"
    );
}

#[test]
fn virtiofs_missing_from_domain_capabilities() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", true, true);
    let mut hv = healthy();
    hv.caps = Some(BTreeMap::from([("kvm", caps(false))]));
    assert_eq!(
        preflight(&c, &crate::plan(&c), &hv),
        vec![PreflightProblem::VirtiofsUnavailable {
            uri: URI.to_owned(),
            domain_type: "kvm".to_owned(),
            nodes: names(&["ctl"]),
        }]
    );
    // Without shares, virtio-fs is not asked for.
    let c = cluster(dir.path(), "kvm", false, true);
    assert_eq!(preflight(&c, &crate::plan(&c), &hv), Vec::new());
}

#[test]
fn iommu_group_members_must_all_be_passed_through() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", false, false);
    let problems = preflight(&c, &crate::plan(&c), &healthy());
    assert_eq!(
        problems,
        vec![PreflightProblem::PciGroupNotViable {
            node: "gpu1".to_owned(),
            address: address("0000:3b:00.0"),
            group: 7,
            others: vec![address("0000:3b:00.1")],
        }]
    );
    assert_eq!(
        problems[0].to_string(),
        "PCI device 0000:3b:00.0 of node `gpu1`: all devices of IOMMU group 7 must be passed \
         through together: 0000:3b:00.1"
    );
}

#[test]
fn pci_bridges_in_a_group_are_exempt() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", false, false);
    let mut hv = healthy();
    hv.devices.insert(
        "pci_0000_3b_00_1".to_owned(),
        gpu_xml(1, "0x060400", Some(GROUP_3B)),
    );
    assert_eq!(preflight(&c, &crate::plan(&c), &hv), Vec::new());
}

#[test]
fn iommu_off_and_wrong_ids() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", false, false);
    let mut hv = healthy();
    let wrong = gpu_xml(0, "0x030200", None)
        .replace("0x20b0", "0x2236")
        .replace("0x10de", "0x8086");
    hv.devices.insert("pci_0000_3b_00_0".to_owned(), wrong);
    let gpu = address("0000:3b:00.0");
    let problems = preflight(&c, &crate::plan(&c), &hv);
    assert_eq!(
        problems,
        vec![
            PreflightProblem::PciIdMismatch {
                node: "gpu1".to_owned(),
                address: gpu,
                which: PciIdKind::Vendor,
                expected: PciId(0x10de),
                found: "8086".to_owned(),
            },
            PreflightProblem::PciIdMismatch {
                node: "gpu1".to_owned(),
                address: gpu,
                which: PciIdKind::Device,
                expected: PciId(0x20b0),
                found: "2236".to_owned(),
            },
            PreflightProblem::PciNoIommu {
                node: "gpu1".to_owned(),
                address: gpu,
                uri: URI.to_owned(),
            },
        ]
    );
    assert_eq!(
        problems[0].to_string(),
        "PCI device 0000:3b:00.0 of node `gpu1` has vendor id 8086; the config expects 10de"
    );
}

#[test]
fn a_remote_hosts_files_are_not_checked_but_what_is_uploaded_there_is() {
    // Nothing exists in `dir`, and the cluster is on a remote host: its share directory is
    // the host's (not checked), the base image and the seed disks are uploaded from here.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = cluster(dir.path(), "kvm", true, true);
    let remote: ConnectUri = "qemu+ssh://root@host2/system".parse().expect("uri");
    for n in &mut c.nodes {
        n.uri = remote.clone();
    }
    let hv = healthy();
    let d = dir.path().display();
    let problems: Vec<String> = preflight(&c, &crate::plan(&c), &RemoteHv(&hv))
        .iter()
        .map(ToString::to_string)
        .collect();
    let host = "qemu+ssh://root@host2/system";
    assert_eq!(
        problems,
        [
            format!(
                "base image `{d}/base.qcow2` cannot be uploaded to host `{host}`: it does not exist"
            ),
            format!(
                "seed disk of node `ctl` `{d}/state/seed/ctl.img` cannot be uploaded to host `{host}`: it does not exist"
            ),
            format!(
                "seed disk of node `gpu1` `{d}/state/seed/gpu1.img` cannot be uploaded to host `{host}`: it does not exist"
            ),
        ]
    );
    // Once they exist, nothing is left to say.
    fs_err::write(dir.path().join("base.qcow2"), b"qcow2").expect("base");
    fs_err::create_dir_all(dir.path().join("state/seed")).expect("seed dir");
    for n in ["ctl", "gpu1"] {
        fs_err::write(dir.path().join(format!("state/seed/{n}.img")), b"").expect("seed");
    }
    assert_eq!(preflight(&c, &crate::plan(&c), &RemoteHv(&hv)), Vec::new());
    // The same cluster locally: the share directory is missing too.
    let dir = tempfile::tempdir().expect("temp dir");
    let c = cluster(dir.path(), "kvm", true, true);
    assert_eq!(preflight(&c, &crate::plan(&c), &hv).len(), 2);
}

#[test]
fn the_nodes_are_measured_against_what_libvirt_reports_of_the_host() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", false, true);
    let p = crate::plan(&c);
    // Two nodes of 1 vCPU and 1GiB each.
    let mut hv = healthy();
    hv.host = Some(HostInfo {
        cpus: 2,
        memory_kib: 2 * 1024 * 1024,
    });
    let report = preflight_report(&c, &p, &hv);
    assert_eq!(report.problems, Vec::new());
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| matches!(w, PreflightWarning::VcpuOvercommit { .. }))
    );
    hv.host = Some(HostInfo {
        cpus: 1,
        memory_kib: 1024 * 1024,
    });
    let report = preflight_report(&c, &p, &hv);
    assert_eq!(
        report
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "the 2 node(s) on host `qemu:///system` need 2GiB of memory together, but libvirt \
          reports 1GiB on that host"
        ]
    );
    let overcommit: Vec<String> = report
        .warnings
        .iter()
        .filter(|w| matches!(w, PreflightWarning::VcpuOvercommit { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        overcommit,
        [
            "the nodes on host `qemu:///system` have 2 vCPUs together, more than the 1 CPUs \
          libvirt reports there; they run overcommitted"
        ]
    );
}

/// `hv` answering as `qemu+ssh://root@host2/system`.
struct RemoteHv<'a>(&'a Fake);

impl Hypervisor for RemoteHv<'_> {
    fn uri(&self) -> &str {
        "qemu+ssh://root@host2/system"
    }
    fn list(&self, kind: ObjectKind) -> HvResult<Vec<LiveObject>> {
        self.0.list(kind)
    }
    fn lookup(&self, k: ObjectKind, p: Option<&str>, n: &str) -> HvResult<Option<LiveObject>> {
        self.0.lookup(k, p, n)
    }
    fn define_network(&self, n: &str, x: &str) -> HvResult<()> {
        self.0.define_network(n, x)
    }
    fn start_network(&self, n: &str) -> HvResult<()> {
        self.0.start_network(n)
    }
    fn destroy_network(&self, n: &str) -> HvResult<()> {
        self.0.destroy_network(n)
    }
    fn undefine_network(&self, n: &str) -> HvResult<()> {
        self.0.undefine_network(n)
    }
    fn define_pool(&self, n: &str, x: &str) -> HvResult<()> {
        self.0.define_pool(n, x)
    }
    fn build_pool(&self, n: &str) -> HvResult<()> {
        self.0.build_pool(n)
    }
    fn start_pool(&self, n: &str) -> HvResult<()> {
        self.0.start_pool(n)
    }
    fn destroy_pool(&self, n: &str) -> HvResult<()> {
        self.0.destroy_pool(n)
    }
    fn undefine_pool(&self, n: &str) -> HvResult<()> {
        self.0.undefine_pool(n)
    }
    fn create_volume(&self, p: &str, n: &str, x: &str) -> HvResult<()> {
        self.0.create_volume(p, n, x)
    }
    fn delete_volume(&self, p: &str, n: &str) -> HvResult<()> {
        self.0.delete_volume(p, n)
    }
    fn upload_volume(
        &self,
        p: &str,
        n: &str,
        d: &mut dyn std::io::Read,
        l: u64,
        f: &mut dyn FnMut(u64),
    ) -> HvResult<u64> {
        self.0.upload_volume(p, n, d, l, f)
    }
    fn download_volume(&self, p: &str, n: &str, m: u64) -> HvResult<Vec<u8>> {
        self.0.download_volume(p, n, m)
    }
    fn define_domain(&self, n: &str, x: &str) -> HvResult<()> {
        self.0.define_domain(n, x)
    }
    fn start_domain(&self, n: &str) -> HvResult<()> {
        self.0.start_domain(n)
    }
    fn shutdown_domain(&self, n: &str) -> HvResult<()> {
        self.0.shutdown_domain(n)
    }
    fn destroy_domain(&self, n: &str) -> HvResult<()> {
        self.0.destroy_domain(n)
    }
    fn undefine_domain(&self, n: &str) -> HvResult<()> {
        self.0.undefine_domain(n)
    }
    fn domain_state(&self, n: &str) -> HvResult<DomainState> {
        self.0.domain_state(n)
    }
    fn domain_capabilities(&self, t: &str) -> HvResult<Option<String>> {
        self.0.domain_capabilities(t)
    }
    fn node_device_xml(&self, n: &str) -> HvResult<Option<String>> {
        self.0.node_device_xml(n)
    }
    fn host_info(&self) -> HvResult<Option<HostInfo>> {
        self.0.host_info()
    }
}

#[test]
fn network_facts_read_bridge_and_ranges() {
    let xml = "<network><name>default</name><bridge name='virbr0'/>\
               <ip address='192.168.122.1' netmask='255.255.255.0'/>\
               <ip address='10.1.2.3' prefix='16'/>\
               <ip family='ipv6' address='fd00::1' prefix='64'/>\
               <ip address='172.16.0.1'/></network>";
    let facts = network_facts(xml).expect("parses");
    assert_eq!(facts.bridge.as_deref(), Some("virbr0"));
    let ranges: Vec<String> = facts.ranges.iter().map(ToString::to_string).collect();
    assert_eq!(ranges, ["192.168.122.0/24", "10.1.0.0/16", "172.16.0.0/16"]);
}

#[test]
fn overlap_is_containment_either_way() {
    let net = |s: &str| s.parse::<Ipv4Net>().expect("net");
    assert!(overlaps(&net("10.77.0.0/24"), &net("10.0.0.0/8")));
    assert!(overlaps(&net("10.0.0.0/8"), &net("10.77.0.0/24")));
    assert!(overlaps(&net("10.77.0.0/24"), &net("10.77.0.128/25")));
    assert!(!overlaps(&net("10.77.0.0/24"), &net("10.77.1.0/24")));
}

#[test]
fn nodedev_names_are_lower_case_hex() {
    assert_eq!(nodedev_name(&address("0000:AF:1f.7")), "pci_0000_af_1f_7");
    assert_eq!(nodedev_name(&address("3b:00.0")), "pci_0000_3b_00_0");
}

#[test]
fn virtiofs_needs_a_supported_filesystem() {
    assert!(virtiofs_offered(&caps(true)).expect("parses"));
    assert!(!virtiofs_offered(&caps(false)).expect("parses"));
    let unsupported = caps(true).replace("supported='yes'>", "supported='no'>");
    assert!(!virtiofs_offered(&unsupported).expect("parses"));
    assert!(virtiofs_offered("<domainCapabilities").is_err());
}

#[test]
fn names_taken_by_others_are_reported_with_their_owner() {
    let dir = scratch();
    let c = cluster(dir.path(), "kvm", true, true);
    let mut hv = healthy();
    let ns = crate::METADATA_NS;
    hv.domains = vec![
        live(
            ObjectKind::Domain,
            "lab-ctl",
            format!(
                "<domain><name>lab-ctl</name><metadata><hpc:cluster xmlns:hpc='{ns}' \
                 name='other' node='ctl'/></metadata></domain>"
            ),
        ),
        live(
            ObjectKind::Domain,
            "lab-gpu1",
            format!(
                "<domain><name>lab-gpu1</name><metadata><hpc:cluster xmlns:hpc='{ns}' \
                 name='lab' node='gpu1'/></metadata></domain>"
            ),
        ),
    ];
    hv.networks = vec![live(
        ObjectKind::Network,
        "lab-net",
        "<network><name>lab-net</name><bridge name='hpcbr-lab'/>\
         <ip address='10.77.0.1' prefix='24'/></network>"
            .to_owned(),
    )];
    let problems = preflight(&c, &crate::plan(&c), &hv);
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    // The same-named network is not a bridge or CIDR clash: it is the name that is taken.
    assert_eq!(
        text,
        [
            "network `lab-net` exists on `qemu:///system` and belongs to no hpc-up cluster",
            "domain `lab-ctl` exists on `qemu:///system` and belongs to cluster `other`",
        ]
    );
}
