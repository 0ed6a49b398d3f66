//! `ensure_uploaded` against an in-memory pool: when it sends, when it does not, and what a
//! failed upload leaves behind.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use super::*;
use crate::hypervisor::{DomainState, HvResult, LiveObject, Step};

const POOL: &str = "p";
const VOL: &str = "base.qcow2";
const MARKER: &str = "base.qcow2.sha256";

/// One storage pool in memory, volumes as byte vectors. Records every call but lookups.
#[derive(Default)]
struct MemPool {
    volumes: RefCell<BTreeMap<String, Vec<u8>>>,
    calls: RefCell<Vec<String>>,
    /// The next upload into this volume fails after this many bytes (a killed run).
    fail_upload: RefCell<Option<(String, usize)>>,
    /// Bytes a created volume has beyond its capacity (qemu-img's qcow2 header when the
    /// capacity is smaller than it).
    create_extra: usize,
}

impl MemPool {
    fn record(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }
    fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }
    fn volume(&self, name: &str) -> Option<Vec<u8>> {
        self.volumes.borrow().get(name).cloned()
    }
    fn set(&self, name: &str, bytes: &[u8]) {
        self.volumes
            .borrow_mut()
            .insert(name.to_owned(), bytes.to_vec());
    }
    fn missing(&self, name: &str, step: Step) -> HypervisorError {
        HypervisorError::object(
            ObjectKind::Volume,
            format!("{POOL}/{name}"),
            step,
            "no such volume",
        )
    }
    fn check_pool(&self, pool: &str, name: &str, step: Step) -> HvResult<()> {
        if pool == POOL {
            Ok(())
        } else {
            Err(HypervisorError::object(
                ObjectKind::Volume,
                format!("{pool}/{name}"),
                step,
                "no such pool",
            ))
        }
    }
}

fn xml_of(name: &str, len: usize) -> String {
    format!(
        "<volume type='file'>\n  <name>{name}</name>\n  \
         <capacity unit='bytes'>{len}</capacity>\n  <physical unit='bytes'>{len}</physical>\n\
         </volume>\n"
    )
}

impl Hypervisor for MemPool {
    fn uri(&self) -> &str {
        "qemu+ssh://root@host2/system"
    }
    fn list(&self, kind: ObjectKind) -> HvResult<Vec<LiveObject>> {
        if kind != ObjectKind::Volume {
            return Ok(Vec::new());
        }
        Ok(self
            .volumes
            .borrow()
            .iter()
            .map(|(name, bytes)| LiveObject {
                kind,
                name: name.clone(),
                pool: Some(POOL.to_owned()),
                active: true,
                xml: xml_of(name, bytes.len()),
            })
            .collect())
    }
    fn lookup(
        &self,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> HvResult<Option<LiveObject>> {
        if kind != ObjectKind::Volume || pool != Some(POOL) {
            return Ok(None);
        }
        Ok(self.list(kind)?.into_iter().find(|o| o.name == name))
    }
    fn create_volume(&self, pool: &str, name: &str, xml: &str) -> HvResult<()> {
        self.record(format!("create {name}"));
        self.check_pool(pool, name, Step::Create)?;
        let doc = roxmltree::Document::parse(xml).expect("volume XML");
        let el = |tag: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name(tag))
                .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        };
        assert_eq!(el("name").text(), Some(name), "{xml}");
        assert_eq!(el("capacity").attribute("unit"), Some("bytes"), "{xml}");
        assert!(el("format").attribute("type").is_some(), "{xml}");
        let capacity: usize = el("capacity")
            .text()
            .and_then(|t| t.parse().ok())
            .expect("capacity");
        if self.volumes.borrow().contains_key(name) {
            return Err(HypervisorError::object(
                ObjectKind::Volume,
                format!("{POOL}/{name}"),
                Step::Create,
                "volume exists",
            ));
        }
        self.set(name, &vec![0; capacity + self.create_extra]);
        Ok(())
    }
    fn delete_volume(&self, pool: &str, name: &str) -> HvResult<()> {
        self.record(format!("delete {name}"));
        self.check_pool(pool, name, Step::Delete)?;
        self.volumes
            .borrow_mut()
            .remove(name)
            .map(drop)
            .ok_or_else(|| self.missing(name, Step::Delete))
    }
    fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        data: &mut dyn Read,
        length: u64,
        progress: &mut dyn FnMut(u64),
    ) -> HvResult<u64> {
        self.record(format!("upload {name}"));
        self.check_pool(pool, name, Step::Upload)?;
        let mut vol = self
            .volume(name)
            .ok_or_else(|| self.missing(name, Step::Upload))?;
        let fail = self
            .fail_upload
            .borrow_mut()
            .take_if(|(n, _)| n == name)
            .map(|(_, after)| after);
        let mut bytes = Vec::new();
        let limit = fail.map_or(length, |after| after as u64);
        data.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| HypervisorError::object(ObjectKind::Volume, name, Step::Upload, e))?;
        if vol.len() < bytes.len() {
            vol.resize(bytes.len(), 0);
        }
        vol[..bytes.len()].copy_from_slice(&bytes);
        self.set(name, &vol);
        progress(bytes.len() as u64);
        if fail.is_some() || (bytes.len() as u64) < length {
            return Err(HypervisorError::object(
                ObjectKind::Volume,
                format!("{POOL}/{name}"),
                Step::Upload,
                "stream aborted",
            ));
        }
        Ok(length)
    }
    fn download_volume(&self, pool: &str, name: &str, max: u64) -> HvResult<Vec<u8>> {
        self.record(format!("download {name}"));
        self.check_pool(pool, name, Step::Download)?;
        let mut vol = self
            .volume(name)
            .ok_or_else(|| self.missing(name, Step::Download))?;
        vol.truncate(usize::try_from(max).expect("small"));
        Ok(vol)
    }

    fn define_network(&self, _: &str, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn start_network(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn destroy_network(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn undefine_network(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn define_pool(&self, _: &str, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn build_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn start_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn destroy_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn undefine_pool(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn define_domain(&self, _: &str, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn start_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn shutdown_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn destroy_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn undefine_domain(&self, _: &str) -> HvResult<()> {
        unreachable!("uploads touch volumes only")
    }
    fn domain_state(&self, _: &str) -> HvResult<DomainState> {
        unreachable!("uploads touch volumes only")
    }
}

/// Deterministic bytes that are not a repeating pattern (xorshift).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Local {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: String,
}

fn local(len: usize, seed: u64) -> Local {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("base.qcow2");
    let bytes = content(len, seed);
    fs_err::write(&path, &bytes).expect("write");
    let sha256 = sha256_file(&path).expect("hash");
    Local {
        _dir: dir,
        path,
        bytes,
        sha256,
    }
}

fn ensure(hv: &MemPool, f: &Local) -> Result<Upload, UploadError> {
    ensure_uploaded(hv, POOL, VOL, &f.path, &f.sha256, VolumeFormat::Qcow2)
}

fn calls(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const FRESH: &[&str] = &[
    "create base.qcow2",
    "upload base.qcow2",
    "create base.qcow2.sha256",
    "upload base.qcow2.sha256",
];

#[test]
fn first_upload_sends_the_volume_then_the_marker() {
    let hv = MemPool::default();
    let f = local(300_001, 1);
    assert_eq!(
        ensure(&hv, &f).unwrap(),
        Upload::Uploaded { bytes: 300_001 }
    );
    assert_eq!(hv.take_calls(), calls(FRESH));
    assert_eq!(hv.volume(VOL).unwrap(), f.bytes);
    assert_eq!(hv.volume(MARKER).unwrap(), f.sha256.as_bytes());
    assert_eq!(f.sha256.len(), 64);
}

#[test]
fn the_same_content_again_is_unchanged_and_reads_only_the_marker() {
    let hv = MemPool::default();
    let f = local(4096, 2);
    ensure(&hv, &f).unwrap();
    hv.take_calls();
    assert_eq!(ensure(&hv, &f).unwrap(), Upload::Unchanged);
    assert_eq!(hv.take_calls(), calls(&["download base.qcow2.sha256"]));
}

#[test]
fn a_missing_marker_uploads_again() {
    let hv = MemPool::default();
    let f = local(4096, 3);
    ensure(&hv, &f).unwrap();
    hv.volumes.borrow_mut().remove(MARKER);
    hv.take_calls();
    assert_eq!(ensure(&hv, &f).unwrap(), Upload::Uploaded { bytes: 4096 });
    let mut expected = calls(&["delete base.qcow2"]);
    expected.extend(calls(FRESH));
    assert_eq!(hv.take_calls(), expected);
    assert_eq!(hv.volume(MARKER).unwrap(), f.sha256.as_bytes());
}

#[test]
fn a_marker_with_another_hash_uploads_again_marker_first() {
    let hv = MemPool::default();
    let old = local(4096, 4);
    ensure(&hv, &old).unwrap();
    let new = local(4096, 5);
    hv.take_calls();
    assert_eq!(ensure(&hv, &new).unwrap(), Upload::Uploaded { bytes: 4096 });
    let mut expected = calls(&[
        "download base.qcow2.sha256",
        "delete base.qcow2.sha256",
        "delete base.qcow2",
    ]);
    expected.extend(calls(FRESH));
    assert_eq!(hv.take_calls(), expected);
    assert_eq!(hv.volume(VOL).unwrap(), new.bytes);
    assert_eq!(hv.volume(MARKER).unwrap(), new.sha256.as_bytes());
}

#[test]
fn a_marker_longer_than_the_digest_does_not_match() {
    let hv = MemPool::default();
    let f = local(4096, 6);
    ensure(&hv, &f).unwrap();
    hv.set(MARKER, format!("{}\n", f.sha256).as_bytes());
    assert_eq!(ensure(&hv, &f).unwrap(), Upload::Uploaded { bytes: 4096 });
    assert_eq!(hv.volume(MARKER).unwrap(), f.sha256.as_bytes());
}

#[test]
fn a_volume_of_another_size_uploads_again_without_reading_the_marker() {
    let hv = MemPool::default();
    let f = local(4096, 7);
    ensure(&hv, &f).unwrap();
    hv.set(VOL, &f.bytes[..4095]);
    hv.take_calls();
    assert_eq!(ensure(&hv, &f).unwrap(), Upload::Uploaded { bytes: 4096 });
    let calls = hv.take_calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("download")),
        "{calls:?}"
    );
    assert_eq!(hv.volume(VOL).unwrap(), f.bytes);
}

#[test]
fn a_missing_volume_with_its_marker_uploads_again() {
    let hv = MemPool::default();
    let f = local(4096, 8);
    ensure(&hv, &f).unwrap();
    hv.volumes.borrow_mut().remove(VOL);
    assert_eq!(ensure(&hv, &f).unwrap(), Upload::Uploaded { bytes: 4096 });
    assert_eq!(hv.volume(VOL).unwrap(), f.bytes);
}

#[test]
fn a_killed_upload_leaves_no_marker_and_the_next_run_uploads_again() {
    let hv = MemPool::default();
    let f = local(100_000, 9);
    *hv.fail_upload.borrow_mut() = Some((VOL.to_owned(), 1000));
    let e = ensure(&hv, &f).unwrap_err();
    assert_eq!(e.to_string(), "cannot upload into volume `p/base.qcow2`");
    assert!(matches!(
        e,
        UploadError::Hypervisor(HypervisorError::Object {
            step: Step::Upload,
            ..
        })
    ));
    assert_eq!(hv.volume(MARKER), None);
    assert_eq!(hv.volume(VOL).unwrap().len(), 100_000, "partly written");
    hv.take_calls();
    assert_eq!(
        ensure(&hv, &f).unwrap(),
        Upload::Uploaded { bytes: 100_000 }
    );
    let mut expected = calls(&["delete base.qcow2"]);
    expected.extend(calls(FRESH));
    assert_eq!(hv.take_calls(), expected);
    assert_eq!(hv.volume(VOL).unwrap(), f.bytes);
}

#[test]
fn a_volume_larger_than_the_file_after_the_upload_is_an_error_without_marker() {
    // libvirt makes a qcow2 volume with qemu-img: its header can exceed a tiny file.
    let hv = MemPool {
        create_extra: 512,
        ..MemPool::default()
    };
    let f = local(100, 10);
    let e = ensure(&hv, &f).unwrap_err();
    assert!(
        matches!(
            e,
            UploadError::Size {
                expected: 100,
                found: Some(612),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "volume `p/base.qcow2` holds 612 bytes after an upload of 100 bytes"
    );
    assert_eq!(hv.volume(MARKER), None);
}

#[test]
fn progress_reaches_the_file_size() {
    let hv = MemPool::default();
    let f = local(70_000, 11);
    let mut last = 0;
    ensure_uploaded_with(
        &hv,
        POOL,
        VOL,
        &f.path,
        &f.sha256,
        VolumeFormat::Raw,
        &mut |n| last = n,
    )
    .unwrap();
    assert_eq!(last, 70_000);
}

#[test]
fn the_digest_is_checked_before_anything_and_taken_in_either_case() {
    let hv = MemPool::default();
    let f = local(10, 12);
    for bad in ["", "abc", &f.sha256[1..], &format!("{}x", &f.sha256[1..])] {
        let e = ensure_uploaded(&hv, POOL, VOL, &f.path, bad, VolumeFormat::Raw).unwrap_err();
        assert!(matches!(e, UploadError::Digest { .. }), "{bad}: {e:?}");
    }
    assert_eq!(hv.take_calls(), Vec::<String>::new());
    let upper = f.sha256.to_ascii_uppercase();
    ensure_uploaded(&hv, POOL, VOL, &f.path, &upper, VolumeFormat::Raw).unwrap();
    assert_eq!(hv.volume(&marker_name(VOL)).unwrap(), f.sha256.as_bytes());
    assert_eq!(
        ensure_uploaded(&hv, POOL, VOL, &f.path, &upper, VolumeFormat::Raw).unwrap(),
        Upload::Unchanged
    );
}

#[test]
fn a_missing_local_file_names_its_path() {
    let hv = MemPool::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.qcow2");
    let e = ensure_uploaded(&hv, POOL, VOL, &path, &"0".repeat(64), VolumeFormat::Raw).unwrap_err();
    assert!(e.to_string().contains("nope.qcow2"), "{e}");
    assert!(
        sha256_file(&path)
            .unwrap_err()
            .to_string()
            .contains("nope.qcow2")
    );
}

#[test]
fn sha256_file_is_the_known_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abc");
    fs_err::write(&path, b"abc").unwrap();
    assert_eq!(
        sha256_file(&path).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn remove_uploaded_deletes_the_marker_first() {
    let hv = MemPool::default();
    let f = local(10, 13);
    ensure(&hv, &f).unwrap();
    hv.take_calls();
    assert!(remove_uploaded(&hv, POOL, VOL).unwrap());
    assert_eq!(
        hv.take_calls(),
        calls(&["delete base.qcow2.sha256", "delete base.qcow2"])
    );
    assert!(hv.volumes.borrow().is_empty());
    assert!(!remove_uploaded(&hv, POOL, VOL).unwrap());
}

#[test]
fn an_upload_into_a_missing_pool_names_pool_and_volume() {
    let hv = MemPool::default();
    let f = local(10, 14);
    let e = ensure_uploaded(&hv, "other", VOL, &f.path, &f.sha256, VolumeFormat::Raw).unwrap_err();
    assert_eq!(e.to_string(), "cannot create volume `other/base.qcow2`");
}

#[test]
fn volume_size_prefers_the_physical_size() {
    // libvirt 9.0's dump of an uploaded qcow2 image: capacity is the virtual disk.
    let qcow2 = "<volume type='file'>
  <name>q2.qcow2</name>
  <key>/pool/q2.qcow2</key>
  <capacity unit='bytes'>67108864</capacity>
  <allocation unit='bytes'>2428928</allocation>
  <physical unit='bytes'>2424832</physical>
  <target>
    <path>/pool/q2.qcow2</path>
    <format type='qcow2'/>
  </target>
</volume>";
    assert_eq!(volume_size(qcow2), Some(2_424_832));
    let old = "<volume><name>k</name><capacity unit='bytes'>3000000</capacity></volume>";
    assert_eq!(volume_size(old), Some(3_000_000));
    let kib = "<volume><name>k</name><capacity unit='KiB'>3</capacity></volume>";
    assert_eq!(volume_size(kib), None);
    assert_eq!(volume_size("not xml"), None);
}

#[test]
fn volume_documents_declare_the_format() {
    let xml = volume_doc("vmlinuz", 12, VolumeFormat::Raw).to_xml();
    assert_eq!(
        xml,
        "<volume>\n  <name>vmlinuz</name>\n  <capacity unit=\"bytes\">12</capacity>\n  \
         <target>\n    <format type=\"raw\"/>\n  </target>\n</volume>\n"
    );
    assert!(
        volume_doc("b", 1, VolumeFormat::Qcow2)
            .to_xml()
            .contains("<format type=\"qcow2\"/>")
    );
}
