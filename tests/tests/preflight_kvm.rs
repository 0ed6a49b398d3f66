//! The preflight `/dev/kvm` warning against the real daemon, and its claim checked by
//! libvirt's own behaviour: where it warns, one `define` rewrites the QEMU capabilities cache
//! file (libvirt re-probed QEMU); where it does not, the file stays untouched. No timing is
//! asserted (shared machines are noisy); the durations are printed.
//!
//! Exposing `/dev/kvm` costs minutes of re-probing on a host where the QEMU user cannot open
//! it (this machine: `0600 root:root`, no udev): the daemon's first lookup, preflight's own
//! domain-capabilities call, and the one define. Hence a single define.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do
#![allow(clippy::print_stderr)] // the durations are printed, never asserted

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hpc_libvirt::{PreflightWarning, VirtHypervisor};
use hpc_tests::libvirt_bed::{LibvirtBed, QEMU_X86_64, qemu_caps_cache_file};

/// A two-node TCG cluster on the bed (no shares), its base image a dummy file in `dir`.
fn cluster(dir: &Path, uri: &str) -> hpc_config::Cluster {
    fs_err::write(dir.join("base.qcow2"), b"not really qcow2").unwrap();
    let d = dir.display();
    let yaml = format!(
        "name: kvmc
libvirt:
  uri: {uri}
  domain-type: qemu
network:
  cidr: 10.232.0.0/24
  bridge: hpcbr-kvmc
image:
  base: {d}/base.qcow2
state-dir: {d}/state
controller:
  nodes:
    - name: ctl
  vcpus: 1
  memory: 512MiB
  disk: 2GiB
compute:
  - nodes:
      - name: cn1
    vcpus: 1
    memory: 512MiB
    disk: 2GiB
"
    );
    let env = |_: &str| None;
    hpc_config::load_str("kvmc.yaml", &yaml, &env).unwrap()
}

/// Preflight's warnings on the bed, timed.
fn preflight_warnings(bed: &LibvirtBed, dir: &Path) -> Vec<PreflightWarning> {
    let cluster = cluster(dir, bed.uri());
    let plan = hpc_libvirt::plan(&cluster);
    let hv = VirtHypervisor::connect(bed.uri()).unwrap();
    let t = Instant::now();
    let report = hpc_libvirt::preflight_report(&cluster, &plan, &hv);
    eprintln!("preflight: {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(report.problems, Vec::new(), "{:#?}", report.problems);
    report.warnings
}

/// What identifies one write of the cache file of qemu-system-x86_64.
#[derive(Debug, PartialEq, Eq)]
struct CacheFile {
    path: PathBuf,
    inode: u64,
    mtime: (i64, i64),
    content: String,
}

fn cache_file() -> CacheFile {
    let path = qemu_caps_cache_file(QEMU_X86_64)
        .expect("libvirt has a capabilities cache file for qemu-system-x86_64 after preflight");
    let m = fs_err::metadata(&path).unwrap();
    CacheFile {
        content: fs_err::read_to_string(&path).unwrap(),
        inode: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
        path,
    }
}

/// `virsh define` (then `undefine`) of a tiny TCG domain; the cache file before and after.
fn define_once(bed: &LibvirtBed, dir: &Path) -> (CacheFile, CacheFile) {
    let xml = dir.join("probe.xml");
    fs_err::write(
        &xml,
        format!(
            "<domain type='qemu'><name>kvmc-probe</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os>\
             <devices><emulator>{QEMU_X86_64}</emulator></devices></domain>"
        ),
    )
    .unwrap();
    let before = cache_file();
    let t = Instant::now();
    let defined = bed.virsh(&["define", xml.to_str().unwrap()]);
    eprintln!("define: {:.1}s", t.elapsed().as_secs_f64());
    let _ = bed.virsh(&["undefine", "kvmc-probe"]);
    defined.unwrap();
    (before, cache_file())
}

#[test]
fn dev_kvm_the_qemu_user_cannot_open_is_warned_about_and_each_define_reprobes() {
    let t = Instant::now();
    let Some(bed) = LibvirtBed::start_with_dev_kvm("kvmwarn").unwrap() else {
        return;
    };
    eprintln!(
        "bed (lock wait included): {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let dir = bed.scratch_dir("kvmwarn");
    let warnings = preflight_warnings(&bed, &dir);
    let kvm = fs_err::metadata("/dev/kvm").unwrap();
    if kvm.mode() & 0o7777 == 0o600 && kvm.uid() == 0 {
        // This machine's state: only root may open /dev/kvm.
        assert!(
            matches!(
                warnings.as_slice(),
                [PreflightWarning::KvmCacheReprobed { mode: 0o600, owner, .. }] if owner == "root"
            ),
            "{warnings:#?}"
        );
        let text = warnings[0].to_string();
        for part in [
            "re-probes QEMU on every define",
            "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm",
            "mount namespace without /dev/kvm",
            "`user` in /etc/libvirt/qemu.conf",
        ] {
            assert!(text.contains(part), "{part:?} not in: {text}");
        }
    }
    if !warnings.is_empty() {
        // The cause it names: the probe, with root's access, recorded KVM.
        assert!(
            cache_file().content.contains("<flag name='kvm'/>"),
            "the probe did not record KVM"
        );
    }
    let (before, after) = define_once(&bed, &dir);
    let rewritten = before != after;
    eprintln!(
        "/dev/kvm mode {:04o} uid {}: warned {}, cache rewritten by one define {rewritten}",
        kvm.mode() & 0o7777,
        kvm.uid(),
        !warnings.is_empty()
    );
    assert_eq!(
        !warnings.is_empty(),
        rewritten,
        "the warning must say exactly when a define re-probes QEMU: {warnings:#?}"
    );
    drop(bed);
    let _ = fs_err::remove_dir_all(&dir);
}

#[test]
fn hidden_dev_kvm_is_no_warning_and_a_define_keeps_the_cache() {
    let t = Instant::now();
    let Some(bed) = LibvirtBed::start("kvmhidden").unwrap() else {
        return;
    };
    eprintln!(
        "bed (lock wait included): {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let dir = bed.scratch_dir("kvmhidden");
    // Preflight's domain-capabilities call also makes sure the cache is valid (a file left by
    // a daemon that saw /dev/kvm is probed again once).
    let warnings = preflight_warnings(&bed, &dir);
    assert_eq!(warnings, Vec::new());
    let (before, after) = define_once(&bed, &dir);
    assert!(
        before == after,
        "a define rewrote {} although the daemon has no /dev/kvm",
        before.path.display()
    );
    drop(bed);
    let _ = fs_err::remove_dir_all(&dir);
}
