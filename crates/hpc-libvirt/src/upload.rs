//! Files put into a host's storage pool by libvirt itself.
//!
//! A node on another host (`qemu+ssh://…`) cannot use the base image, kernel or initrd by
//! this machine's path: [`ensure_uploaded`] puts a local file into a volume of that host's
//! pool over libvirt's own stream (`virStorageVolUpload`, through [`Hypervisor`]), so the
//! host needs nothing but libvirtd — and only when the content differs.
//!
//! What is in the pool is judged by a small marker volume beside it, `<name>.sha256`
//! ([`marker_name`]), holding exactly the content's SHA-256 in hex. It is written last, after
//! the whole file went through, and deleted first when the volume is replaced: a marker
//! therefore always stands for a complete volume, and a run killed mid-upload (even with
//! `kill -9`) leaves none, so the next run uploads again. Reading 65 bytes of the marker is
//! cheaper than reading the volume back, and it needs no hashing on the host.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::hypervisor::{Hypervisor, HypervisorError};
use crate::plan::ObjectKind;
use crate::xml::{Format, Quantity, Volume, VolumeTarget};

/// What [`marker_name`] appends to a volume's name.
pub const MARKER_SUFFIX: &str = ".sha256";

/// The length of a SHA-256 digest in hex.
const DIGEST_HEX_LEN: usize = 64;

/// How much of a marker is read: one byte more than a digest, so that a longer marker
/// never matches.
const MARKER_READ: u64 = DIGEST_HEX_LEN as u64 + 1;

/// The format a volume is declared with (`<format type=…/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeFormat {
    /// `raw`: a kernel, an initrd, any plain file.
    Raw,
    /// `qcow2`: a disk image (the cluster's base image).
    Qcow2,
}

impl VolumeFormat {
    /// libvirt's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }
}

/// What [`ensure_uploaded`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upload {
    /// The volume was (re)created and the file sent whole.
    Uploaded {
        /// The bytes sent.
        bytes: u64,
    },
    /// The pool already held this content; nothing was sent.
    Unchanged,
}

/// A failed [`ensure_uploaded`].
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The digest given is not a SHA-256 in hex.
    #[error("`{sha256}` is not a SHA-256 digest (64 hexadecimal digits)")]
    Digest {
        /// The digest given.
        sha256: String,
    },
    /// The local file could not be opened or read (the error names the path).
    #[error(transparent)]
    Local(std::io::Error),
    /// libvirt refused a step (the error names the pool and volume).
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    /// The upload went through, but the volume does not have the file's size afterwards (e.g.
    /// libvirt created a qcow2 volume larger than the file it was then overwritten with).
    #[error(
        "volume `{pool}/{volume}` holds {} after an upload of {expected} bytes",
        found.map_or_else(|| "an unknown number of bytes".to_owned(), |n| format!("{n} bytes"))
    )]
    Size {
        /// The pool.
        pool: String,
        /// The volume.
        volume: String,
        /// The local file's size.
        expected: u64,
        /// The volume's size as libvirt reports it, if it does.
        found: Option<u64>,
    },
}

/// The marker volume that says `volume` is complete: `<volume>.sha256`.
pub fn marker_name(volume: &str) -> String {
    format!("{volume}{MARKER_SUFFIX}")
}

/// The SHA-256 of a local file, in lower-case hex (what [`ensure_uploaded`] takes).
pub fn sha256_file(path: &Path) -> Result<String, UploadError> {
    let mut file = fs_err::File::open(path).map_err(UploadError::Local)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(UploadError::Local)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The digest in lower case, if it is one.
fn digest(sha256: &str) -> Result<String, UploadError> {
    if sha256.len() == DIGEST_HEX_LEN && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha256.to_ascii_lowercase())
    } else {
        Err(UploadError::Digest {
            sha256: sha256.to_owned(),
        })
    }
}

/// The size of a volume's content from libvirt's volume XML: `<physical>` (the file's size;
/// for qcow2 `<capacity>` is the virtual disk's), else `<capacity>` (libvirt before 3.0).
/// `None` when the XML says neither in bytes.
pub fn volume_size(xml: &str) -> Option<u64> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let root = doc.root_element();
    let field = |name: &str| {
        let el = root.children().find(|c| c.has_tag_name(name))?;
        if !matches!(el.attribute("unit"), None | Some("bytes" | "B")) {
            return None;
        }
        el.text()?.trim().parse::<u64>().ok()
    };
    field("physical").or_else(|| field("capacity"))
}

fn volume_doc(name: &str, bytes: u64, format: VolumeFormat) -> Volume {
    Volume {
        name: name.to_owned(),
        capacity: Some(Quantity {
            unit: "bytes",
            value: bytes,
        }),
        target: VolumeTarget {
            format: Format {
                kind: format.as_str().to_owned(),
            },
            compat: None,
        },
        backing_store: None,
    }
}

fn exists<H: Hypervisor + ?Sized>(
    hv: &H,
    pool: &str,
    name: &str,
) -> Result<Option<String>, HypervisorError> {
    Ok(hv
        .lookup(ObjectKind::Volume, Some(pool), name)?
        .map(|o| o.xml))
}

/// Whether `pool` holds `volume` complete with this content: its marker holds `digest` and
/// the volume has `size` bytes.
pub(crate) fn is_current<H: Hypervisor + ?Sized>(
    hv: &H,
    pool: &str,
    volume: &str,
    digest: &str,
    size: u64,
) -> Result<bool, HypervisorError> {
    let marker = marker_name(volume);
    if exists(hv, pool, &marker)?.is_none() {
        return Ok(false);
    }
    let Some(xml) = exists(hv, pool, volume)? else {
        return Ok(false);
    };
    if volume_size(&xml) != Some(size) {
        return Ok(false);
    }
    Ok(hv.download_volume(pool, &marker, MARKER_READ)? == digest.as_bytes())
}

/// Make the volume `volume` of `pool` hold the content of the local file `local`, whose
/// SHA-256 (hex) is `sha256` ([`sha256_file`]), declared as `format`.
///
/// Nothing is sent when the pool already holds it (see the module docs for the marker
/// volume). Otherwise the marker, then the volume are deleted, the volume is created with
/// the file's size, the file is sent whole, and the marker is written last. A failure leaves
/// no marker, so the next call starts over. The file must not change meanwhile: `sha256` is
/// trusted as its digest.
///
/// ```no_run
/// use hpc_libvirt::{VirtHypervisor, VolumeFormat, ensure_uploaded, sha256_file};
/// let hv = VirtHypervisor::connect("qemu+ssh://root@host2/system")?;
/// let image = std::path::Path::new("/var/lib/hpc-up/images/base.qcow2");
/// let digest = sha256_file(image)?;
/// ensure_uploaded(&hv, "demo-pool", "demo-base.qcow2", image, &digest, VolumeFormat::Qcow2)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn ensure_uploaded<H: Hypervisor + ?Sized>(
    hv: &H,
    pool: &str,
    volume: &str,
    local: &Path,
    sha256: &str,
    format: VolumeFormat,
) -> Result<Upload, UploadError> {
    ensure_uploaded_with(hv, pool, volume, local, sha256, format, &mut |_| {})
}

/// [`ensure_uploaded`], telling `progress` the bytes sent so far as the upload goes.
pub fn ensure_uploaded_with<H: Hypervisor + ?Sized>(
    hv: &H,
    pool: &str,
    volume: &str,
    local: &Path,
    sha256: &str,
    format: VolumeFormat,
    progress: &mut dyn FnMut(u64),
) -> Result<Upload, UploadError> {
    let digest = digest(sha256)?;
    let mut file = fs_err::File::open(local).map_err(UploadError::Local)?;
    let size = file.metadata().map_err(UploadError::Local)?.len();
    if is_current(hv, pool, volume, &digest, size)? {
        return Ok(Upload::Unchanged);
    }
    remove_uploaded(hv, pool, volume)?;
    hv.create_volume(pool, volume, &volume_doc(volume, size, format).to_xml())?;
    let bytes = hv.upload_volume(pool, volume, &mut file, size, progress)?;
    let found = exists(hv, pool, volume)?.and_then(|xml| volume_size(&xml));
    if found != Some(size) {
        return Err(UploadError::Size {
            pool: pool.to_owned(),
            volume: volume.to_owned(),
            expected: size,
            found,
        });
    }
    let marker = marker_name(volume);
    let len = digest.len() as u64;
    hv.create_volume(
        pool,
        &marker,
        &volume_doc(&marker, len, VolumeFormat::Raw).to_xml(),
    )?;
    hv.upload_volume(pool, &marker, &mut digest.as_bytes(), len, &mut |_| {})?;
    Ok(Upload::Uploaded { bytes })
}

/// Delete an uploaded volume and its marker, the marker first (so that no moment has a
/// marker without its complete volume). Returns whether anything was there.
pub fn remove_uploaded<H: Hypervisor + ?Sized>(
    hv: &H,
    pool: &str,
    volume: &str,
) -> Result<bool, HypervisorError> {
    let mut removed = false;
    for name in [marker_name(volume).as_str(), volume] {
        if exists(hv, pool, name)?.is_some() {
            hv.delete_volume(pool, name)?;
            removed = true;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
