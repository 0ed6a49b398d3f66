//! Uploading into a real libvirtd's storage pool (`virStorageVolUpload` over a `virStream`),
//! in a network namespace this test creates: what a remote host gets instead of this
//! machine's paths. The pool is a directory, so what arrived is read back from its files.
#![allow(clippy::unwrap_used)] // test helpers panic on failure, as tests do

use std::io::Read;
use std::path::Path;
use std::process::Command;

use hpc_libvirt::{
    Hypervisor, HypervisorError, ObjectKind, Step, Upload, UploadError, VirtHypervisor,
    VolumeFormat, ensure_uploaded, ensure_uploaded_with, marker_name, remove_uploaded, sha256_file,
    xml,
};
use hpc_tests::{libvirt_bed::LibvirtBed, require};

const POOL: &str = "upl-pool";
const KERNEL: &str = "upl-vmlinuz";
const BASE: &str = "upl-base.qcow2";

/// Deterministic bytes without a repeating pattern (xorshift).
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

/// A source that fails after `after` bytes (a disk error mid-upload).
struct FailingAfter(usize);

impl Read for FailingAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("simulated read error"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(0x5a);
        self.0 -= n;
        Ok(n)
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        s.push_str(": ");
        s.push_str(&c.to_string());
        next = c.source();
    }
    s
}

fn pool_volumes(hv: &VirtHypervisor) -> Vec<String> {
    hv.list(ObjectKind::Volume)
        .unwrap()
        .into_iter()
        .filter(|v| v.pool.as_deref() == Some(POOL))
        .map(|v| v.name)
        .collect()
}

#[test]
fn a_file_reaches_the_pool_through_libvirts_stream_once() {
    let Some(bed) = LibvirtBed::start("upload").unwrap() else {
        return;
    };
    let dir = bed.scratch_dir("upload");
    let pool_dir = dir.join("pool");
    let hv = VirtHypervisor::connect(bed.uri()).unwrap();
    let pool = xml::Pool {
        kind: "dir".to_owned(),
        name: POOL.to_owned(),
        target: xml::PoolTarget {
            path: pool_dir.display().to_string(),
        },
    };
    hv.define_pool(POOL, &pool.to_xml()).unwrap();
    hv.build_pool(POOL).unwrap();
    hv.start_pool(POOL).unwrap();

    // A few MiB, not a multiple of the stream's chunk.
    let kernel = dir.join("vmlinuz");
    let bytes = content(3 * 1024 * 1024 + 12_345, 1);
    let len = bytes.len() as u64;
    fs_err::write(&kernel, &bytes).unwrap();
    let sha = sha256_file(&kernel).unwrap();
    let mut seen = Vec::new();
    let up = ensure_uploaded_with(
        &hv,
        POOL,
        KERNEL,
        &kernel,
        &sha,
        VolumeFormat::Raw,
        &mut |n| seen.push(n),
    )
    .unwrap();
    assert_eq!(up, Upload::Uploaded { bytes: len });
    assert!(
        seen.len() > 1,
        "one progress report for {len} bytes: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&len));
    assert!(fs_err::read(pool_dir.join(KERNEL)).unwrap() == bytes);
    assert_eq!(
        fs_err::read_to_string(pool_dir.join(marker_name(KERNEL))).unwrap(),
        sha
    );
    // Read back through the stream as well.
    assert_eq!(
        hv.download_volume(POOL, KERNEL, 100).unwrap(),
        bytes[..100].to_vec()
    );
    assert_eq!(
        hv.download_volume(POOL, &marker_name(KERNEL), 1000)
            .unwrap(),
        sha.as_bytes()
    );

    // The same content again: nothing is sent.
    let up = ensure_uploaded(&hv, POOL, KERNEL, &kernel, &sha, VolumeFormat::Raw).unwrap();
    assert_eq!(up, Upload::Unchanged);

    // Without its marker the volume counts as half-written.
    hv.delete_volume(POOL, &marker_name(KERNEL)).unwrap();
    let up = ensure_uploaded(&hv, POOL, KERNEL, &kernel, &sha, VolumeFormat::Raw).unwrap();
    assert_eq!(up, Upload::Uploaded { bytes: len });
    assert!(fs_err::read(pool_dir.join(KERNEL)).unwrap() == bytes);

    // Other content of the same size replaces it.
    let other = content(bytes.len(), 2);
    fs_err::write(&kernel, &other).unwrap();
    let other_sha = sha256_file(&kernel).unwrap();
    assert_ne!(other_sha, sha);
    let up = ensure_uploaded(&hv, POOL, KERNEL, &kernel, &other_sha, VolumeFormat::Raw).unwrap();
    assert_eq!(up, Upload::Uploaded { bytes: len });
    assert!(fs_err::read(pool_dir.join(KERNEL)).unwrap() == other);
    assert_eq!(
        fs_err::read_to_string(pool_dir.join(marker_name(KERNEL))).unwrap(),
        other_sha
    );

    // A source failing mid-stream aborts the stream; the error names pool and volume, and
    // the connection stays usable.
    remove_uploaded(&hv, POOL, KERNEL).unwrap();
    hv.create_volume(
        POOL,
        KERNEL,
        &format!(
            "<volume><name>{KERNEL}</name><capacity unit='bytes'>{len}</capacity>\
             <target><format type='raw'/></target></volume>"
        ),
    )
    .unwrap();
    let e = hv
        .upload_volume(
            POOL,
            KERNEL,
            &mut FailingAfter(1024 * 1024),
            len,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        matches!(
            &e,
            HypervisorError::Object {
                kind: ObjectKind::Volume,
                step: Step::Upload,
                name,
                ..
            } if name == "upl-pool/upl-vmlinuz"
        ),
        "{e:?}"
    );
    assert!(chain(&e).contains("simulated read error"), "{}", chain(&e));
    let up = ensure_uploaded(&hv, POOL, KERNEL, &kernel, &other_sha, VolumeFormat::Raw).unwrap();
    assert_eq!(up, Upload::Uploaded { bytes: len });

    // A pool that does not exist is named.
    let e = ensure_uploaded(
        &hv,
        "upl-none",
        KERNEL,
        &kernel,
        &other_sha,
        VolumeFormat::Raw,
    )
    .unwrap_err();
    assert!(
        matches!(e, UploadError::Hypervisor(_)) && chain(&e).contains("upl-none/upl-vmlinuz"),
        "{}",
        chain(&e)
    );

    // A qcow2 image: libvirt's capacity is the virtual disk, the file's size decides.
    let qemu_img = Path::new("/usr/bin/qemu-img");
    if !require(
        qemu_img.exists(),
        "qemu-img",
        "the qcow2 upload (libvirt creates qcow2 volumes with it)",
    ) {
        let image = dir.join("base.qcow2");
        let st = Command::new(qemu_img)
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&kernel)
            .arg(&image)
            .status()
            .unwrap();
        assert!(st.success(), "qemu-img convert: {st}");
        let image_bytes = fs_err::read(&image).unwrap();
        let image_sha = sha256_file(&image).unwrap();
        let up = ensure_uploaded(&hv, POOL, BASE, &image, &image_sha, VolumeFormat::Qcow2).unwrap();
        assert_eq!(
            up,
            Upload::Uploaded {
                bytes: image_bytes.len() as u64
            }
        );
        assert!(fs_err::read(pool_dir.join(BASE)).unwrap() == image_bytes);
        let live = hv
            .lookup(ObjectKind::Volume, Some(POOL), BASE)
            .unwrap()
            .unwrap();
        assert!(live.xml.contains("<format type='qcow2'/>"), "{}", live.xml);
        let up = ensure_uploaded(&hv, POOL, BASE, &image, &image_sha, VolumeFormat::Qcow2).unwrap();
        assert_eq!(up, Upload::Unchanged);
        assert!(remove_uploaded(&hv, POOL, BASE).unwrap());
    }

    // Removing leaves the pool empty.
    assert!(remove_uploaded(&hv, POOL, KERNEL).unwrap());
    assert!(!remove_uploaded(&hv, POOL, KERNEL).unwrap());
    assert_eq!(pool_volumes(&hv), Vec::<String>::new());
    let left: Vec<_> = fs_err::read_dir(&pool_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left in the pool: {left:?}");
    hv.destroy_pool(POOL).unwrap();
    hv.undefine_pool(POOL).unwrap();
    drop(hv);
    let _ = fs_err::remove_dir_all(&dir);
}
