//! The journaled lifecycle against libvirt's test driver.
//!
//! Every test opens its own `test:///<abs>/tests/fixtures/lifecycle-node.xml` connection: the
//! test driver gives each connection to a file private state (unlike `test:///default`, which
//! is one state per process, shared by the test threads).
#![cfg(feature = "virt")]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hpc_libvirt::{
    Action, DomainState, HvResult, Hypervisor, HypervisorError, Journal, LibvirtPlan,
    LifecycleError, LiveObject, METADATA_NS, Object, ObjectKind, Outcome, Step, UploadSource,
    VirtHypervisor, VolumeFormat, diff, down, start, status, stop, up, up_all,
};

const CLUSTER: &str = "t1";

fn fixture_uri() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lifecycle-node.xml");
    format!("test://{}", path.display())
}

fn connect() -> VirtHypervisor {
    VirtHypervisor::connect(&fixture_uri()).expect("test driver connection")
}

fn metadata(node: &str, role: &str) -> String {
    format!(
        "<metadata><hpc:cluster xmlns:hpc='{METADATA_NS}' name='{CLUSTER}' node='{node}' \
         role='{role}'/></metadata>"
    )
}

fn mac(i: usize) -> String {
    format!("52:54:00:77:00:{:02x}", 0x10 + i)
}

fn object(kind: ObjectKind, name: String, xml: String) -> Object {
    Object {
        kind,
        name,
        uri: fixture_uri().parse().expect("uri"),
        xml,
        upload: None,
    }
}

fn domain_xml(node: &str, i: usize, vcpus: u32) -> String {
    let role = if i == 0 { "controller" } else { "compute" };
    format!(
        "<domain type='test'>
  <name>{CLUSTER}-{node}</name>
  {meta}
  <memory unit='MiB'>1024</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/hpc-up/{CLUSTER}/pool/{CLUSTER}-{node}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='{mac}'/>
      <source network='{CLUSTER}-net'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
",
        meta = metadata(node, role),
        mac = mac(i),
    )
}

/// A hand-written plan: network, pool, one volume and one domain per node.
fn test_plan(nodes: &[&str]) -> LibvirtPlan {
    let hosts: String = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "<host mac='{}' name='{n}' ip='10.77.0.{}'/>",
                mac(i),
                10 + i
            )
        })
        .collect();
    let mut objects = vec![
        object(
            ObjectKind::Network,
            format!("{CLUSTER}-net"),
            format!(
                "<network>
  <name>{CLUSTER}-net</name>
  {meta}
  <bridge name='hpcbr-t1' stp='off' delay='0'/>
  <ip address='10.77.0.1' netmask='255.255.255.0'>
    <dhcp>{hosts}</dhcp>
  </ip>
</network>
",
                meta = metadata("", "network")
            ),
        ),
        object(
            ObjectKind::Pool,
            format!("{CLUSTER}-pool"),
            format!(
                "<pool type='dir'><name>{CLUSTER}-pool</name>\
                 <target><path>/var/lib/hpc-up/{CLUSTER}/pool</path></target></pool>"
            ),
        ),
    ];
    for n in nodes {
        objects.push(object(
            ObjectKind::Volume,
            format!("{CLUSTER}-{n}.qcow2"),
            format!(
                "<volume><name>{CLUSTER}-{n}.qcow2</name><capacity unit='GiB'>8</capacity>\
                 <target><format type='qcow2'/></target></volume>"
            ),
        ));
    }
    for (i, n) in nodes.iter().enumerate() {
        objects.push(object(
            ObjectKind::Domain,
            format!("{CLUSTER}-{n}"),
            domain_xml(n, i, 1),
        ));
    }
    LibvirtPlan { objects }
}

fn journal(dir: &Path) -> Journal {
    Journal::open(dir, CLUSTER).expect("journal")
}

/// Every object on the connection, as `kind name`.
fn everything<H: Hypervisor>(hv: &H) -> Vec<String> {
    let mut out = Vec::new();
    for kind in [
        ObjectKind::Network,
        ObjectKind::Pool,
        ObjectKind::Volume,
        ObjectKind::Domain,
    ] {
        for o in hv.list(kind).expect("list") {
            out.push(format!("{kind:?} {}", o.name));
        }
    }
    out
}

fn no_go() -> AtomicBool {
    AtomicBool::new(false)
}

// ---------------------------------------------------------------------------------------------
// fault injection

/// Passes every call through to `inner`, counting the calls that change something; the
/// `fail_at`-th such call (1-based) fails without reaching libvirt. With `panic` it panics
/// instead, which is what a `kill -9` looks like to the journal: nothing after that point
/// runs, no unwind.
struct FailingHypervisor<H> {
    inner: H,
    calls: Cell<usize>,
    fail_at: Option<usize>,
    /// Also fail this many calls after `fail_at` (the first steps of the unwind).
    fail_after: usize,
    panic: bool,
    /// Raise this flag at call `fail_at` instead of failing.
    cancel: Option<(usize, &'static AtomicBool)>,
    /// The URI this "host" answers to (another host of a plan spanning several: every test
    /// driver connection has a state of its own).
    uri: Option<String>,
    /// Volume contents written by `upload_volume` (the test driver has no streams).
    content: RefCell<BTreeMap<(String, String), Vec<u8>>>,
}

impl<H: Hypervisor> FailingHypervisor<H> {
    fn new(inner: H) -> Self {
        Self {
            inner,
            calls: Cell::new(0),
            fail_at: None,
            fail_after: 0,
            panic: false,
            cancel: None,
            uri: None,
            content: RefCell::new(BTreeMap::new()),
        }
    }
    /// A host answering to `uri`.
    fn host(inner: H, uri: &str) -> Self {
        Self {
            uri: Some(uri.to_owned()),
            ..Self::new(inner)
        }
    }
    fn failing_at(inner: H, k: usize) -> Self {
        Self {
            fail_at: Some(k),
            ..Self::new(inner)
        }
    }

    fn step(&self, kind: ObjectKind, name: &str, step: Step) -> HvResult<()> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        if let Some((at, flag)) = self.cancel
            && n == at
        {
            flag.store(true, Ordering::SeqCst);
        }
        if let Some(at) = self.fail_at
            && (at..=at + self.fail_after).contains(&n)
        {
            if self.panic {
                panic!("simulated kill -9 at call {n}");
            }
            return Err(HypervisorError::object(
                kind,
                name,
                step,
                format!("injected failure at call {n}"),
            ));
        }
        Ok(())
    }
}

impl<H: Hypervisor> Hypervisor for FailingHypervisor<H> {
    fn uri(&self) -> &str {
        self.uri.as_deref().unwrap_or_else(|| self.inner.uri())
    }
    fn list(&self, kind: ObjectKind) -> HvResult<Vec<LiveObject>> {
        self.inner.list(kind)
    }
    fn lookup(
        &self,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> HvResult<Option<LiveObject>> {
        self.inner.lookup(kind, pool, name)
    }
    fn define_network(&self, name: &str, xml: &str) -> HvResult<()> {
        self.step(ObjectKind::Network, name, Step::Define)?;
        self.inner.define_network(name, xml)
    }
    fn start_network(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Network, name, Step::Start)?;
        self.inner.start_network(name)
    }
    fn destroy_network(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Network, name, Step::Destroy)?;
        self.inner.destroy_network(name)
    }
    fn undefine_network(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Network, name, Step::Undefine)?;
        self.inner.undefine_network(name)
    }
    fn define_pool(&self, name: &str, xml: &str) -> HvResult<()> {
        self.step(ObjectKind::Pool, name, Step::Define)?;
        self.inner.define_pool(name, xml)
    }
    fn build_pool(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Pool, name, Step::Build)?;
        self.inner.build_pool(name)
    }
    fn start_pool(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Pool, name, Step::Start)?;
        self.inner.start_pool(name)
    }
    fn destroy_pool(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Pool, name, Step::Destroy)?;
        self.inner.destroy_pool(name)
    }
    fn undefine_pool(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Pool, name, Step::Undefine)?;
        self.inner.undefine_pool(name)
    }
    fn create_volume(&self, pool: &str, name: &str, xml: &str) -> HvResult<()> {
        self.step(ObjectKind::Volume, name, Step::Create)?;
        self.inner.create_volume(pool, name, xml)
    }
    fn delete_volume(&self, pool: &str, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Volume, name, Step::Delete)?;
        self.content
            .borrow_mut()
            .remove(&(pool.to_owned(), name.to_owned()));
        self.inner.delete_volume(pool, name)
    }
    fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        data: &mut dyn std::io::Read,
        length: u64,
        progress: &mut dyn FnMut(u64),
    ) -> HvResult<u64> {
        self.step(ObjectKind::Volume, name, Step::Upload)?;
        if self
            .inner
            .lookup(ObjectKind::Volume, Some(pool), name)?
            .is_none()
        {
            return Err(HypervisorError::object(
                ObjectKind::Volume,
                name,
                Step::Upload,
                "no such volume",
            ));
        }
        let mut bytes = Vec::new();
        data.take(length)
            .read_to_end(&mut bytes)
            .map_err(|e| HypervisorError::object(ObjectKind::Volume, name, Step::Upload, e))?;
        progress(bytes.len() as u64);
        let n = bytes.len() as u64;
        self.content
            .borrow_mut()
            .insert((pool.to_owned(), name.to_owned()), bytes);
        Ok(n)
    }
    fn download_volume(&self, pool: &str, name: &str, max: u64) -> HvResult<Vec<u8>> {
        let content = self.content.borrow();
        let bytes = content
            .get(&(pool.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_default();
        Ok(bytes.into_iter().take(max as usize).collect())
    }
    fn define_domain(&self, name: &str, xml: &str) -> HvResult<()> {
        self.step(ObjectKind::Domain, name, Step::Define)?;
        self.inner.define_domain(name, xml)
    }
    fn start_domain(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Domain, name, Step::Start)?;
        self.inner.start_domain(name)
    }
    fn shutdown_domain(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Domain, name, Step::Shutdown)?;
        self.inner.shutdown_domain(name)
    }
    fn destroy_domain(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Domain, name, Step::Destroy)?;
        self.inner.destroy_domain(name)
    }
    fn undefine_domain(&self, name: &str) -> HvResult<()> {
        self.step(ObjectKind::Domain, name, Step::Undefine)?;
        self.inner.undefine_domain(name)
    }
    fn domain_state(&self, name: &str) -> HvResult<DomainState> {
        self.inner.domain_state(name)
    }
}

/// How many changing calls a clean `up` of `plan` makes.
fn calls_of_clean_up(plan: &LibvirtPlan) -> usize {
    let dir = tempfile::tempdir().expect("temporary directory");
    let hv = FailingHypervisor::new(connect());
    up(plan, &hv, &mut journal(dir.path()), &no_go()).expect("clean up");
    hv.calls.get()
}

fn source_text(e: &LifecycleError) -> String {
    match e {
        LifecycleError::Unwound { source, .. } => {
            let mut s = source.to_string();
            let mut next = std::error::Error::source(&**source);
            while let Some(c) = next {
                s.push_str(": ");
                s.push_str(&c.to_string());
                next = c.source();
            }
            s
        }
        other => panic!("expected an unwound error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// several hosts

const HOST_A: &str = "test:///host-a";
const HOST_B: &str = "test:///host-b";

/// `plan` with every object moved to `uri`.
fn on(uri: &str, plan: LibvirtPlan) -> Vec<Object> {
    plan.objects
        .into_iter()
        .map(|mut o| {
            o.uri = uri.parse().expect("uri");
            o
        })
        .collect()
}

/// An uploaded volume of `uri` holding the local file `path`.
fn upload_object(uri: &str, name: &str, path: PathBuf) -> Object {
    Object {
        kind: ObjectKind::Volume,
        name: name.to_owned(),
        uri: uri.parse().expect("uri"),
        xml: format!("<volume><name>{name}</name><target><format type='raw'/></target></volume>"),
        upload: Some(UploadSource {
            path,
            format: VolumeFormat::Raw,
        }),
    }
}

/// Host A: ctl and cn1. Host B: cn2 and cn3, and an uploaded base image (after its pool,
/// before its overlays).
fn two_host_plan(base: &Path) -> LibvirtPlan {
    let mut objects = on(HOST_A, test_plan(&["ctl", "cn1"]));
    let mut b = on(HOST_B, test_plan(&["cn2", "cn3"]));
    b.insert(
        2,
        upload_object(HOST_B, "t1-base.image.qcow2", base.to_owned()),
    );
    objects.extend(b);
    LibvirtPlan { objects }
}

fn local_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs_err::write(&path, content).expect("write the local file");
    path
}

#[test]
fn up_all_brings_every_host_up_and_unwinds_every_host_when_the_second_fails() {
    let dir = tempfile::tempdir().unwrap();
    let base = local_file(dir.path(), "base", b"a base image");
    let plan = two_host_plan(&base);
    let total_b = {
        let state = tempfile::tempdir().unwrap();
        let (a, b) = (
            FailingHypervisor::host(connect(), HOST_A),
            FailingHypervisor::host(connect(), HOST_B),
        );
        let reports = up_all(&plan, &[&a, &b], &mut journal(state.path()), &no_go()).unwrap();
        assert_eq!(reports.len(), 2);
        assert!(
            reports[1]
                .objects
                .iter()
                .any(|o| o.name == "t1-base.image.qcow2" && o.outcome == Outcome::Created)
        );
        b.calls.get()
    };
    for k in 1..=total_b {
        let state = tempfile::tempdir().unwrap();
        let a = FailingHypervisor::host(connect(), HOST_A);
        let b = FailingHypervisor {
            fail_at: Some(k),
            ..FailingHypervisor::host(connect(), HOST_B)
        };
        let mut j = journal(state.path());
        let err = up_all(&plan, &[&a, &b], &mut j, &no_go()).expect_err("injected failure");
        match &err {
            LifecycleError::HostFailed {
                uri,
                source,
                undone,
                unwind_errors,
            } => {
                assert_eq!(uri, HOST_B, "k={k}");
                assert!(
                    matches!(**source, LifecycleError::Unwound { .. }),
                    "k={k}: {source:?}"
                );
                assert_eq!(undone.len(), 1, "k={k}");
                assert_eq!(undone[0].0, HOST_A);
                assert!(undone[0].1 >= 8, "k={k}: {undone:?}");
                assert!(unwind_errors.is_empty(), "k={k}: {unwind_errors:?}");
            }
            other => panic!("k={k}: {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "bringing the cluster up failed on `{HOST_B}`; undid "
            )) && text.contains(&format!("step(s) on `{HOST_A}`")),
            "k={k}: {text}"
        );
        assert_eq!(everything(&a), Vec::<String>::new(), "k={k}");
        assert_eq!(everything(&b), Vec::<String>::new(), "k={k}");
        assert!(j.is_empty(), "k={k}: {:?}", j.entries());
    }
}

#[test]
fn up_all_cancelled_between_hosts_unwinds_the_first() {
    static FLAG: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let base = local_file(dir.path(), "base", b"a base image");
    let plan = two_host_plan(&base);
    let calls_a = {
        let state = tempfile::tempdir().unwrap();
        let a = FailingHypervisor::host(connect(), HOST_A);
        up(&plan, &a, &mut journal(state.path()), &no_go()).unwrap();
        a.calls.get()
    };
    // Raised during A's last step: A finishes, B never starts.
    let mut a = FailingHypervisor::host(connect(), HOST_A);
    a.cancel = Some((calls_a, &FLAG));
    let b = FailingHypervisor::host(connect(), HOST_B);
    let state = tempfile::tempdir().unwrap();
    let mut j = journal(state.path());
    let err = up_all(&plan, &[&a, &b], &mut j, &FLAG).expect_err("cancelled");
    assert!(err.is_cancelled(), "{err:?}");
    assert!(
        matches!(&err, LifecycleError::HostFailed { uri, undone, .. }
            if uri == HOST_B && undone.len() == 1 && undone[0].1 > 0),
        "{err:?}"
    );
    assert_eq!(everything(&a), Vec::<String>::new());
    assert_eq!(b.calls.get(), 0);
    assert!(j.is_empty(), "{:?}", j.entries());
}

#[test]
fn up_all_needs_a_connection_for_every_host_of_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_host_plan(&local_file(dir.path(), "base", b"x"));
    let a = FailingHypervisor::host(connect(), HOST_A);
    let err = up_all(&plan, &[&a], &mut journal(dir.path()), &no_go()).expect_err("no B");
    assert!(matches!(&err, LifecycleError::NoConnection { uri } if uri == HOST_B));
    assert_eq!(a.calls.get(), 0);
}

#[test]
fn uploads_are_journaled_unchanged_when_current_and_removed_by_down() {
    let dir = tempfile::tempdir().unwrap();
    let base = local_file(dir.path(), "base", b"a base image");
    let plan = two_host_plan(&base);
    let b = FailingHypervisor::host(connect(), HOST_B);
    let state = tempfile::tempdir().unwrap();
    let mut j = journal(state.path());
    let name = "t1-base.image.qcow2";
    let marker = "t1-base.image.qcow2.sha256";
    let action = |hv: &FailingHypervisor<VirtHypervisor>| {
        diff(&plan, hv)
            .unwrap()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.action)
    };
    assert_eq!(action(&b), Some(Action::Create));

    let first = up(&plan, &b, &mut j, &no_go()).unwrap();
    let applied = first.objects.iter().find(|o| o.name == name).unwrap();
    assert_eq!(applied.outcome, Outcome::Created);
    let journaled: Vec<&str> = j.entries().iter().map(|e| e.name.as_str()).collect();
    assert!(
        journaled.contains(&name) && journaled.contains(&marker),
        "{journaled:?}"
    );
    assert!(everything(&b).contains(&format!("Volume {marker}")));

    // Current: nothing is sent again, and the marker is no stale object.
    assert_eq!(action(&b), Some(Action::Unchanged));
    let second = up(&plan, &b, &mut j, &no_go()).unwrap();
    assert_eq!(second.changes(), 0, "{second:#?}");
    assert!(second.stale.is_empty(), "{:?}", second.stale);

    // Another content: uploaded again.
    fs_err::write(&base, b"another base image").unwrap();
    assert_eq!(action(&b), Some(Action::Create));
    let third = up(&plan, &b, &mut j, &no_go()).unwrap();
    assert_eq!(third.changes(), 1, "{third:#?}");

    let report = down(CLUSTER, &b, &mut j).unwrap();
    let removed: Vec<&str> = report.removed.iter().map(|r| r.name.as_str()).collect();
    assert!(
        removed.contains(&name) && removed.contains(&marker),
        "{removed:?}"
    );
    assert_eq!(everything(&b), Vec::<String>::new());
    assert!(j.is_empty());
}

#[test]
fn a_failed_upload_is_unwound_with_its_marker_and_intents() {
    let dir = tempfile::tempdir().unwrap();
    let base = local_file(dir.path(), "base", b"a base image");
    let plan = two_host_plan(&base);
    // B's calls: define, build, start the network... the upload's is the first Upload step;
    // fail every call from the volume creation on, one at a time.
    let total = {
        let state = tempfile::tempdir().unwrap();
        let b = FailingHypervisor::host(connect(), HOST_B);
        up(&plan, &b, &mut journal(state.path()), &no_go()).unwrap();
        b.calls.get()
    };
    for k in 1..=total {
        let state = tempfile::tempdir().unwrap();
        let b = FailingHypervisor {
            fail_at: Some(k),
            ..FailingHypervisor::host(connect(), HOST_B)
        };
        let mut j = journal(state.path());
        up(&plan, &b, &mut j, &no_go()).expect_err("injected failure");
        assert_eq!(everything(&b), Vec::<String>::new(), "k={k}");
        assert!(j.is_empty(), "k={k}: {:?}", j.entries());
    }
}

// ---------------------------------------------------------------------------------------------
// tests

#[test]
fn up_twice_changes_nothing_the_second_time_and_down_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hv = connect();
    let plan = test_plan(&["ctl", "cn1", "cn2"]);
    let mut j = journal(dir.path());

    let first = up(&plan, &hv, &mut j, &no_go()).unwrap();
    assert_eq!(first.changes(), plan.objects.len());
    assert!(first.objects.iter().all(|a| a.outcome == Outcome::Created));
    assert_eq!(everything(&hv).len(), plan.objects.len());
    assert_eq!(journal(dir.path()).entries().len(), plan.objects.len());

    let changes = diff(&plan, &hv).unwrap();
    assert!(
        changes.iter().all(|c| c.action == Action::Unchanged),
        "{changes:#?}"
    );
    let second = up(&plan, &hv, &mut j, &no_go()).unwrap();
    assert_eq!(second.changes(), 0, "{second:#?}");
    assert!(second.stale.is_empty());

    let report = down(CLUSTER, &hv, &mut j).unwrap();
    assert_eq!(report.removed.len(), plan.objects.len());
    assert_eq!(everything(&hv), Vec::<String>::new());
    assert!(j.is_empty());
    assert!(!dir.path().join("journal.json").exists());
    // Nothing left: a second down is a no-op.
    assert!(down(CLUSTER, &hv, &mut j).unwrap().removed.is_empty());
}

#[test]
fn failure_at_every_step_of_up_unwinds_everything() {
    let plan = test_plan(&["ctl", "cn1"]);
    let total = calls_of_clean_up(&plan);
    assert!(total >= plan.objects.len() + 4, "only {total} calls");
    for k in 1..=total {
        let dir = tempfile::tempdir().unwrap();
        let hv = FailingHypervisor::failing_at(connect(), k);
        let mut j = journal(dir.path());
        let err = up(&plan, &hv, &mut j, &no_go()).expect_err("injected failure");
        let text = source_text(&err);
        assert!(
            text.contains(&format!("injected failure at call {k}")),
            "k={k}: {text}"
        );
        match &err {
            LifecycleError::Unwound { unwind_errors, .. } => {
                assert!(unwind_errors.is_empty(), "k={k}: {unwind_errors:?}")
            }
            other => panic!("k={k}: {other:?}"),
        }
        assert_eq!(everything(&hv), Vec::<String>::new(), "k={k}");
        assert!(j.is_empty(), "k={k}: {:?}", j.entries());
        assert!(journal(dir.path()).is_empty(), "k={k}");
    }
}

#[test]
fn failed_unwind_steps_are_reported_and_down_removes_the_rest() {
    let plan = test_plan(&["ctl", "cn1"]);
    let total = calls_of_clean_up(&plan);
    let dir = tempfile::tempdir().unwrap();
    // Fail the last step of `up` (start of the last domain) and the first two undo steps.
    let mut hv = FailingHypervisor::failing_at(connect(), total);
    hv.fail_after = 2;
    let mut j = journal(dir.path());
    let err = up(&plan, &hv, &mut j, &no_go()).expect_err("injected failure");
    match &err {
        LifecycleError::Unwound {
            unwind_errors,
            undone,
            ..
        } => {
            assert_eq!(unwind_errors.len(), 2, "{err}");
            assert!(*undone > 0);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("2 undo step(s) failed"), "{err}");
    assert!(!everything(&hv).is_empty());
    down(CLUSTER, &hv, &mut journal(dir.path())).unwrap();
    assert_eq!(everything(&hv), Vec::<String>::new());
}

#[test]
fn cancel_between_steps_unwinds() {
    static FLAG: AtomicBool = AtomicBool::new(false);
    let plan = test_plan(&["ctl", "cn1"]);
    let dir = tempfile::tempdir().unwrap();
    let mut hv = FailingHypervisor::new(connect());
    hv.cancel = Some((5, &FLAG));
    let err = up(&plan, &hv, &mut journal(dir.path()), &FLAG).expect_err("cancelled");
    assert!(
        matches!(&err, LifecycleError::Unwound { source, .. } if matches!(**source, LifecycleError::Cancelled)),
        "{err:?}"
    );
    assert_eq!(everything(&hv), Vec::<String>::new());
    assert!(journal(dir.path()).is_empty());
}

#[test]
fn down_after_kill_at_every_step_removes_everything() {
    let plan = test_plan(&["ctl", "cn1"]);
    let total = calls_of_clean_up(&plan);
    for k in 1..=total {
        let dir = tempfile::tempdir().unwrap();
        let mut hv = FailingHypervisor::failing_at(connect(), k);
        hv.panic = true;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut j = journal(dir.path());
            up(&plan, &hv, &mut j, &no_go())
        }));
        assert!(result.is_err(), "k={k}: up survived the kill");
        // A new process: only the journal on disk and libvirt's state remain.
        hv.fail_at = None;
        let mut j = journal(dir.path());
        down(CLUSTER, &hv, &mut j).unwrap();
        assert_eq!(everything(&hv), Vec::<String>::new(), "k={k}");
        assert!(journal(dir.path()).is_empty(), "k={k}");
    }
}

#[test]
fn down_without_journal_finds_objects_by_metadata_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let hv = connect();
    let plan = test_plan(&["ctl", "cn1"]);
    up(&plan, &hv, &mut journal(dir.path()), &no_go()).unwrap();
    // Another cluster's domain and a foreign pool must survive.
    hv.define_domain(
        "other-ctl",
        &domain_xml("ctl", 0, 1)
            .replace(&format!("{CLUSTER}-ctl"), "other-ctl")
            .replace(&format!("name='{CLUSTER}'"), "name='other'"),
    )
    .unwrap();
    hv.define_pool(
        "images",
        "<pool type='dir'><name>images</name><target><path>/srv/images</path></target></pool>",
    )
    .unwrap();
    fs_err::remove_file(dir.path().join("journal.json")).unwrap();

    let report = down(CLUSTER, &hv, &mut journal(dir.path())).unwrap();
    assert_eq!(report.removed.len(), plan.objects.len(), "{report:#?}");
    assert_eq!(
        everything(&hv),
        vec!["Pool images".to_owned(), "Domain other-ctl".to_owned()]
    );
}

#[test]
fn down_with_only_intents_and_a_stopped_pool() {
    let dir = tempfile::tempdir().unwrap();
    let hv = connect();
    let plan = test_plan(&["ctl"]);
    up(&plan, &hv, &mut journal(dir.path()), &no_go()).unwrap();
    // The journal lost its "created" marks (killed right after each define) and the pool
    // is stopped, hiding its volumes from a listing.
    fs_err::remove_file(dir.path().join("journal.json")).unwrap();
    let mut j = journal(dir.path());
    for o in &plan.objects {
        let pool = (o.kind == ObjectKind::Volume).then_some("t1-pool");
        j.record_intent(hv.uri(), o.kind, pool, &o.name).unwrap();
    }
    hv.destroy_domain("t1-ctl").unwrap();
    hv.destroy_pool("t1-pool").unwrap();
    let report = down(CLUSTER, &hv, &mut j).unwrap();
    assert_eq!(report.removed.len(), plan.objects.len(), "{report:#?}");
    assert_eq!(everything(&hv), Vec::<String>::new());
}

#[test]
fn diff_reports_update_recreate_and_delete_and_up_applies_updates() {
    let dir = tempfile::tempdir().unwrap();
    let hv = connect();
    let mut j = journal(dir.path());
    up(&test_plan(&["ctl", "cn1"]), &hv, &mut j, &no_go()).unwrap();

    // cn1 removed, ctl gets 2 vCPUs.
    let mut plan = test_plan(&["ctl"]);
    let ctl = plan
        .objects
        .iter_mut()
        .find(|o| o.name == "t1-ctl")
        .unwrap();
    ctl.xml = domain_xml("ctl", 0, 2);
    let changes = diff(&plan, &hv).unwrap();
    let action = |name: &str| {
        changes
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.action)
            .unwrap_or_else(|| panic!("{name} not in {changes:#?}"))
    };
    assert_eq!(action("t1-ctl"), Action::Update);
    // The network's DHCP hosts lost cn1.
    assert_eq!(action("t1-net"), Action::Update);
    assert_eq!(action("t1-pool"), Action::Unchanged);
    assert_eq!(action("t1-ctl.qcow2"), Action::Unchanged);
    assert_eq!(action("t1-cn1"), Action::Delete);
    assert_eq!(action("t1-cn1.qcow2"), Action::Delete);

    let report = up(&plan, &hv, &mut j, &no_go()).unwrap();
    let ctl = report.objects.iter().find(|a| a.name == "t1-ctl").unwrap();
    assert_eq!(ctl.outcome, Outcome::Updated);
    assert_eq!(report.stale.len(), 2, "{report:#?}");
    let after = diff(&plan, &hv).unwrap();
    assert!(
        after
            .iter()
            .all(|c| matches!(c.action, Action::Unchanged | Action::Delete)
            // The test driver dumps only the live definition of a running network, and a
            // redefinition takes effect at its next start.
            || c.name == "t1-net"),
        "{after:#?}"
    );

    // A bigger disk would need a new volume: up refuses.
    let mut bigger = plan.clone();
    let vol = bigger
        .objects
        .iter_mut()
        .find(|o| o.kind == ObjectKind::Volume)
        .unwrap();
    vol.xml = vol.xml.replace(">8<", ">16<");
    assert_eq!(
        diff(&bigger, &hv).unwrap()[2].action,
        Action::Recreate,
        "volume is the third object"
    );
    let err = up(&bigger, &hv, &mut j, &no_go()).unwrap_err();
    assert!(
        matches!(
            err,
            LifecycleError::NeedsRecreate {
                kind: ObjectKind::Volume,
                ..
            }
        ),
        "{err:?}"
    );
    down(CLUSTER, &hv, &mut j).unwrap();
    assert_eq!(everything(&hv), Vec::<String>::new());
}

#[test]
fn status_stop_and_start() {
    let dir = tempfile::tempdir().unwrap();
    let hv = connect();
    let plan = test_plan(&["ctl", "cn1"]);
    let before = status(&plan, &hv).unwrap();
    assert!(before.iter().all(|s| s.state.is_none()));

    let mut j = journal(dir.path());
    up(&plan, &hv, &mut j, &no_go()).unwrap();
    let now = status(&plan, &hv).unwrap();
    assert_eq!(now.len(), 2);
    assert_eq!(now[0].node, "ctl");
    assert_eq!(now[0].domain, "t1-ctl");
    assert_eq!(now[0].state, Some(DomainState::Running));
    assert_eq!(now[0].mac.as_deref(), Some("52:54:00:77:00:10"));
    assert_eq!(now[0].ip.as_deref(), Some("10.77.0.10"));
    assert_eq!(now[1].ip.as_deref(), Some("10.77.0.11"));
    assert_eq!(now[0].vcpus, Some(1));
    assert_eq!(now[0].memory_kib, Some(1024 * 1024));

    let stopped = stop(&plan, &hv, Duration::from_secs(5)).unwrap();
    assert_eq!(stopped.shut_down.len() + stopped.destroyed.len(), 2);
    assert!(
        status(&plan, &hv)
            .unwrap()
            .iter()
            .all(|s| s.state == Some(DomainState::ShutOff))
    );
    // Stopped domains are started again by `up` (a change) or `start`.
    assert_eq!(start(&plan, &hv).unwrap(), vec!["t1-ctl", "t1-cn1"]);
    assert_eq!(up(&plan, &hv, &mut j, &no_go()).unwrap().changes(), 0);
    stop(&plan, &hv, Duration::ZERO).unwrap();
    let again = up(&plan, &hv, &mut j, &no_go()).unwrap();
    assert_eq!(again.changes(), 2);
    assert!(
        again
            .objects
            .iter()
            .filter(|a| a.kind == ObjectKind::Domain)
            .all(|a| a.outcome == Outcome::Started)
    );
    down(CLUSTER, &hv, &mut j).unwrap();
}

#[test]
fn start_needs_defined_objects() {
    let hv = connect();
    let err = start(&test_plan(&["ctl"]), &hv).unwrap_err();
    assert!(
        matches!(
            err,
            LifecycleError::NotDefined {
                kind: ObjectKind::Network,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn errors_name_kind_object_and_step() {
    let hv = connect();
    let err = hv.start_domain("nope").unwrap_err();
    assert!(
        err.to_string().starts_with("cannot start domain `nope`"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    let bad = VirtHypervisor::connect("test:///nonexistent/node.xml").unwrap_err();
    assert!(bad.to_string().contains("test:///nonexistent"), "{bad}");
}

#[test]
fn example_minimal_cluster_goes_up_and_down_on_the_test_driver() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/minimal.yaml");
    let text = fs_err::read_to_string(&path)
        .unwrap()
        .replace("uri: qemu:///system", &format!("uri: {}", fixture_uri()));
    let no_env = |_: &str| None;
    let cluster = hpc_config::load_str("minimal.yaml", &text, &no_env).unwrap();
    let plan = hpc_libvirt::plan(&cluster);
    // network, pool, and a volume and a domain for each of ctl, cn1, cn2
    assert_eq!(plan.objects.len(), 8, "{plan:#?}");
    assert_eq!(hpc_libvirt::plan_cluster(&plan).as_deref(), Some("minimal"));

    let dir = tempfile::tempdir().unwrap();
    let hv = connect();
    let mut j = Journal::open(dir.path(), "minimal").unwrap();
    let first = up(&plan, &hv, &mut j, &no_go()).unwrap();
    assert_eq!(first.changes(), 8);
    let changes = diff(&plan, &hv).unwrap();
    assert!(
        changes.iter().all(|c| c.action == Action::Unchanged),
        "{changes:#?}"
    );
    assert_eq!(up(&plan, &hv, &mut j, &no_go()).unwrap().changes(), 0);

    let nodes = status(&plan, &hv).unwrap();
    let ips: Vec<_> = nodes.iter().map(|n| n.ip.as_deref()).collect();
    assert_eq!(
        ips,
        [Some("10.77.0.10"), Some("10.77.0.11"), Some("10.77.0.12")]
    );
    assert!(nodes.iter().all(|n| n.state == Some(DomainState::Running)));

    let removed = down("minimal", &hv, &mut j).unwrap();
    assert_eq!(removed.removed.len(), 8);
    assert_eq!(everything(&hv), Vec::<String>::new());
}
