//! [`Hypervisor`] over libvirt's C library, through the `virt` crate (feature `virt`).

use virt::connect::Connect;
use virt::domain::{Domain, DomainState as VirtDomainState};
use virt::enumutil::Enum;
use virt::error::{Error as VirtError, ErrorNumber};
use virt::network::Network;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use std::io::Read;

use crate::hypervisor::{
    BoxError, DomainState, HostInfo, HvResult, Hypervisor, HypervisorError, LiveObject, Step,
};
use crate::plan::ObjectKind;

/// A libvirt connection implementing [`Hypervisor`].
///
/// ```no_run
/// use hpc_libvirt::{Hypervisor, ObjectKind, VirtHypervisor};
/// let hv = VirtHypervisor::connect("test:///default")?;
/// for dom in hv.list(ObjectKind::Domain)? {
///     println!("{} active={}", dom.name, dom.active);
/// }
/// # Ok::<(), hpc_libvirt::HypervisorError>(())
/// ```
#[derive(Debug)]
pub struct VirtHypervisor {
    conn: Connect,
    uri: String,
}

fn is_not_found(e: &VirtError) -> bool {
    matches!(
        e.code(),
        Enum::Known(
            ErrorNumber::NoDomain
                | ErrorNumber::NoNetwork
                | ErrorNumber::NoStoragePool
                | ErrorNumber::NoStorageVolume
        )
    )
}

fn err(kind: ObjectKind, name: &str, step: Step) -> impl FnOnce(VirtError) -> HypervisorError {
    move |e| HypervisorError::object(kind, name, step, e)
}

fn list_err(kind: ObjectKind) -> impl FnOnce(VirtError) -> HypervisorError {
    move |source| HypervisorError::List {
        kind,
        source: source.into(),
    }
}

/// `Ok(None)` for "no such object", the error otherwise.
fn found<T>(r: Result<T, VirtError>) -> Result<Option<T>, VirtError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bytes one `virStreamSend` carries: libvirt's largest stream packet
/// (`VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`, what `virStreamSendAll` uses).
const STREAM_CHUNK: usize = 256 * 1024;

/// Send `length` bytes of `data` on `stream`, whole chunks at a time.
fn send_all(
    stream: &Stream,
    data: &mut dyn Read,
    length: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, BoxError> {
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut sent: u64 = 0;
    while sent < length {
        let want = usize::try_from(length - sent).map_or(STREAM_CHUNK, |r| r.min(STREAM_CHUNK));
        let got = match data.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(format!("the source ended after {sent} of {length} bytes").into());
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let mut chunk = &buf[..got];
        while !chunk.is_empty() {
            let n = usize::try_from(stream.send(chunk)?).unwrap_or(0);
            if n == 0 {
                return Err("the stream accepted no bytes".into());
            }
            chunk = chunk.get(n..).unwrap_or_default();
        }
        sent += got as u64;
        progress(sent);
    }
    Ok(sent)
}

/// Receive at most `max` bytes from `stream` (until it ends).
fn recv_up_to(stream: &Stream, max: u64) -> Result<Vec<u8>, BoxError> {
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut buf = vec![0u8; STREAM_CHUNK.min(cap.max(1))];
    loop {
        let n = usize::try_from(stream.recv(&mut buf)?).unwrap_or(0);
        if n == 0 {
            return Ok(out);
        }
        let n = n.min(buf.len());
        if out.len() + n > cap {
            return Err(format!("the volume sent more than the {max} bytes asked for").into());
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn map_state(state: virt::domain::DomainStateEnum) -> DomainState {
    match state {
        Enum::Known(VirtDomainState::Running | VirtDomainState::Blocked) => DomainState::Running,
        Enum::Known(VirtDomainState::Paused) => DomainState::Paused,
        Enum::Known(VirtDomainState::Shutdown) => DomainState::ShuttingDown,
        Enum::Known(VirtDomainState::Shutoff) => DomainState::ShutOff,
        Enum::Known(VirtDomainState::Crashed) => DomainState::Crashed,
        Enum::Known(VirtDomainState::PMSuspended) => DomainState::Suspended,
        Enum::Known(VirtDomainState::NoState) | Enum::Unknown(_) => DomainState::Unknown,
    }
}

/// The inactive (persistent) definition where the driver can give it, else the current one
/// (the test driver refuses the inactive flag for networks).
fn dump(
    xml_desc: impl Fn(u32) -> Result<String, VirtError>,
    inactive: u32,
) -> Result<String, VirtError> {
    match xml_desc(inactive) {
        Err(e)
            if matches!(
                e.code(),
                Enum::Known(ErrorNumber::InvalidArg | ErrorNumber::NoSupport)
            ) =>
        {
            xml_desc(0)
        }
        other => other,
    }
}

fn domain_live(d: &Domain) -> Result<LiveObject, VirtError> {
    Ok(LiveObject {
        kind: ObjectKind::Domain,
        name: d.name()?,
        pool: None,
        active: d.is_active()?,
        xml: dump(|f| d.xml_desc(f), virt::sys::VIR_DOMAIN_XML_INACTIVE)?,
    })
}

fn network_live(n: &Network) -> Result<LiveObject, VirtError> {
    Ok(LiveObject {
        kind: ObjectKind::Network,
        name: n.name()?,
        pool: None,
        active: n.is_active()?,
        xml: dump(|f| n.xml_desc(f), virt::sys::VIR_NETWORK_XML_INACTIVE)?,
    })
}

fn pool_live(p: &StoragePool) -> Result<LiveObject, VirtError> {
    Ok(LiveObject {
        kind: ObjectKind::Pool,
        name: p.name()?,
        pool: None,
        active: p.is_active()?,
        xml: dump(|f| p.xml_desc(f), virt::sys::VIR_STORAGE_XML_INACTIVE)?,
    })
}

fn volume_live(pool: &str, v: &StorageVol) -> Result<LiveObject, VirtError> {
    Ok(LiveObject {
        kind: ObjectKind::Volume,
        name: v.name()?,
        pool: Some(pool.to_owned()),
        active: true,
        xml: v.xml_desc(0)?,
    })
}

impl VirtHypervisor {
    /// Open a read-write connection to `uri` (`qemu:///system`, `test:///path/node.xml`…).
    ///
    /// libvirt's default error handler, which prints to stderr, is replaced by a silent one:
    /// every error reaches the caller as a value.
    pub fn connect(uri: &str) -> HvResult<Self> {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(|e| HypervisorError::Connect {
            uri: uri.to_owned(),
            source: e.into(),
        })?;
        Ok(Self {
            conn,
            uri: uri.to_owned(),
        })
    }

    /// The underlying `virt` connection, for what the trait does not cover.
    pub fn connection(&self) -> &Connect {
        &self.conn
    }

    fn domain(&self, name: &str, step: Step) -> HvResult<Domain> {
        self.conn
            .lookup_domain_by_name(name)
            .map_err(err(ObjectKind::Domain, name, step))
    }

    fn network(&self, name: &str, step: Step) -> HvResult<Network> {
        self.conn
            .lookup_network_by_name(name)
            .map_err(err(ObjectKind::Network, name, step))
    }

    fn pool(&self, name: &str, step: Step) -> HvResult<StoragePool> {
        self.conn
            .lookup_storage_pool_by_name(name)
            .map_err(err(ObjectKind::Pool, name, step))
    }

    fn volume(&self, pool: &str, name: &str, step: Step) -> HvResult<StorageVol> {
        let full = format!("{pool}/{name}");
        self.pool(pool, step)?
            .lookup_storage_vol_by_name(name)
            .map_err(err(ObjectKind::Volume, &full, step))
    }
}

impl Hypervisor for VirtHypervisor {
    fn uri(&self) -> &str {
        &self.uri
    }

    fn list(&self, kind: ObjectKind) -> HvResult<Vec<LiveObject>> {
        let e = list_err(kind);
        match kind {
            ObjectKind::Domain => {
                let all = self.conn.list_all_domains(0).map_err(list_err(kind))?;
                all.iter()
                    .map(domain_live)
                    .collect::<Result<_, _>>()
                    .map_err(e)
            }
            ObjectKind::Network => {
                let all = self.conn.list_all_networks(0).map_err(list_err(kind))?;
                all.iter()
                    .map(network_live)
                    .collect::<Result<_, _>>()
                    .map_err(e)
            }
            ObjectKind::Pool => {
                let all = self
                    .conn
                    .list_all_storage_pools(0)
                    .map_err(list_err(kind))?;
                all.iter()
                    .map(pool_live)
                    .collect::<Result<_, _>>()
                    .map_err(e)
            }
            ObjectKind::Volume => {
                let pools = self
                    .conn
                    .list_all_storage_pools(virt::sys::VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
                    .map_err(list_err(kind))?;
                let mut out = Vec::new();
                for p in &pools {
                    let pool_name = p.name().map_err(list_err(kind))?;
                    for v in p.list_all_volumes(0).map_err(list_err(kind))? {
                        out.push(volume_live(&pool_name, &v).map_err(list_err(kind))?);
                    }
                }
                Ok(out)
            }
        }
    }

    fn lookup(
        &self,
        kind: ObjectKind,
        pool: Option<&str>,
        name: &str,
    ) -> HvResult<Option<LiveObject>> {
        let step = Step::Lookup;
        match kind {
            ObjectKind::Domain => found(self.conn.lookup_domain_by_name(name))
                .and_then(|d| d.as_ref().map(domain_live).transpose())
                .map_err(err(kind, name, step)),
            ObjectKind::Network => found(self.conn.lookup_network_by_name(name))
                .and_then(|n| n.as_ref().map(network_live).transpose())
                .map_err(err(kind, name, step)),
            ObjectKind::Pool => found(self.conn.lookup_storage_pool_by_name(name))
                .and_then(|p| p.as_ref().map(pool_live).transpose())
                .map_err(err(kind, name, step)),
            ObjectKind::Volume => {
                let pool = pool.unwrap_or_default();
                let full = format!("{pool}/{name}");
                let Some(p) = found(self.conn.lookup_storage_pool_by_name(pool))
                    .map_err(err(kind, &full, step))?
                else {
                    return Ok(None);
                };
                if !p.is_active().map_err(err(kind, &full, step))? {
                    return Ok(None);
                }
                found(p.lookup_storage_vol_by_name(name))
                    .and_then(|v| v.as_ref().map(|v| volume_live(pool, v)).transpose())
                    .map_err(err(kind, &full, step))
            }
        }
    }

    fn define_network(&self, name: &str, xml: &str) -> HvResult<()> {
        self.conn.define_network_xml(xml).map(drop).map_err(err(
            ObjectKind::Network,
            name,
            Step::Define,
        ))
    }
    fn start_network(&self, name: &str) -> HvResult<()> {
        self.network(name, Step::Start)?.create().map_err(err(
            ObjectKind::Network,
            name,
            Step::Start,
        ))
    }
    fn destroy_network(&self, name: &str) -> HvResult<()> {
        self.network(name, Step::Destroy)?.destroy().map_err(err(
            ObjectKind::Network,
            name,
            Step::Destroy,
        ))
    }
    fn undefine_network(&self, name: &str) -> HvResult<()> {
        self.network(name, Step::Undefine)?.undefine().map_err(err(
            ObjectKind::Network,
            name,
            Step::Undefine,
        ))
    }

    fn define_pool(&self, name: &str, xml: &str) -> HvResult<()> {
        self.conn
            .define_storage_pool_xml(xml, 0)
            .map(drop)
            .map_err(err(ObjectKind::Pool, name, Step::Define))
    }
    fn build_pool(&self, name: &str) -> HvResult<()> {
        self.pool(name, Step::Build)?
            .build(0)
            .map_err(err(ObjectKind::Pool, name, Step::Build))
    }
    fn start_pool(&self, name: &str) -> HvResult<()> {
        self.pool(name, Step::Start)?
            .create(0)
            .map_err(err(ObjectKind::Pool, name, Step::Start))
    }
    fn destroy_pool(&self, name: &str) -> HvResult<()> {
        self.pool(name, Step::Destroy)?.destroy().map_err(err(
            ObjectKind::Pool,
            name,
            Step::Destroy,
        ))
    }
    fn undefine_pool(&self, name: &str) -> HvResult<()> {
        self.pool(name, Step::Undefine)?.undefine().map_err(err(
            ObjectKind::Pool,
            name,
            Step::Undefine,
        ))
    }
    fn delete_pool(&self, name: &str) -> HvResult<()> {
        self.pool(name, Step::Delete)?
            .delete(0)
            .map_err(err(ObjectKind::Pool, name, Step::Delete))
    }

    fn create_volume(&self, pool: &str, name: &str, xml: &str) -> HvResult<()> {
        let full = format!("{pool}/{name}");
        let p = self
            .pool(pool, Step::Create)
            .map_err(|e| HypervisorError::object(ObjectKind::Volume, &full, Step::Create, e))?;
        StorageVol::create_xml(&p, xml, 0).map(drop).map_err(err(
            ObjectKind::Volume,
            &full,
            Step::Create,
        ))
    }
    fn delete_volume(&self, pool: &str, name: &str) -> HvResult<()> {
        let full = format!("{pool}/{name}");
        self.volume(pool, name, Step::Delete)?
            .delete(0)
            .map_err(err(ObjectKind::Volume, &full, Step::Delete))
    }

    fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        data: &mut dyn Read,
        length: u64,
        progress: &mut dyn FnMut(u64),
    ) -> HvResult<u64> {
        let full = format!("{pool}/{name}");
        let fail =
            |e: BoxError| HypervisorError::object(ObjectKind::Volume, &full, Step::Upload, e);
        let vol = self.volume(pool, name, Step::Upload)?;
        if length == 0 {
            // libvirt reads a length of 0 as "up to the end of the volume".
            return Ok(0);
        }
        let stream = Stream::new(&self.conn, 0).map_err(|e| fail(e.into()))?;
        vol.upload(&stream, 0, length, 0)
            .map_err(|e| fail(e.into()))?;
        match send_all(&stream, data, length, progress) {
            Ok(sent) => {
                stream.finish().map_err(|e| fail(e.into()))?;
                Ok(sent)
            }
            Err(e) => {
                // What libvirt said about the abort adds nothing to the first error.
                let _ = stream.abort();
                Err(fail(e))
            }
        }
    }
    fn download_volume(&self, pool: &str, name: &str, max: u64) -> HvResult<Vec<u8>> {
        let full = format!("{pool}/{name}");
        let fail =
            |e: BoxError| HypervisorError::object(ObjectKind::Volume, &full, Step::Download, e);
        let vol = self.volume(pool, name, Step::Download)?;
        if max == 0 {
            // libvirt reads a length of 0 as "the whole volume".
            return Ok(Vec::new());
        }
        let stream = Stream::new(&self.conn, 0).map_err(|e| fail(e.into()))?;
        vol.download(&stream, 0, max, 0)
            .map_err(|e| fail(e.into()))?;
        match recv_up_to(&stream, max) {
            Ok(bytes) => {
                stream.finish().map_err(|e| fail(e.into()))?;
                Ok(bytes)
            }
            Err(e) => {
                let _ = stream.abort();
                Err(fail(e))
            }
        }
    }

    fn define_domain(&self, name: &str, xml: &str) -> HvResult<()> {
        self.conn.define_domain_xml(xml).map(drop).map_err(err(
            ObjectKind::Domain,
            name,
            Step::Define,
        ))
    }
    fn start_domain(&self, name: &str) -> HvResult<()> {
        self.domain(name, Step::Start)?
            .create()
            .map(drop)
            .map_err(err(ObjectKind::Domain, name, Step::Start))
    }
    fn shutdown_domain(&self, name: &str) -> HvResult<()> {
        self.domain(name, Step::Shutdown)?
            .shutdown()
            .map(drop)
            .map_err(err(ObjectKind::Domain, name, Step::Shutdown))
    }
    fn destroy_domain(&self, name: &str) -> HvResult<()> {
        self.domain(name, Step::Destroy)?.destroy().map_err(err(
            ObjectKind::Domain,
            name,
            Step::Destroy,
        ))
    }
    fn undefine_domain(&self, name: &str) -> HvResult<()> {
        self.domain(name, Step::Undefine)?.undefine().map_err(err(
            ObjectKind::Domain,
            name,
            Step::Undefine,
        ))
    }
    fn domain_state(&self, name: &str) -> HvResult<DomainState> {
        self.domain(name, Step::State)?
            .state()
            .map(|(s, _)| map_state(s))
            .map_err(err(ObjectKind::Domain, name, Step::State))
    }

    fn host_info(&self) -> HvResult<Option<HostInfo>> {
        match self.conn.node_info() {
            Ok(info) => Ok(Some(HostInfo {
                cpus: info.cpus,
                memory_kib: info.memory,
            })),
            Err(e) if matches!(e.code(), Enum::Known(ErrorNumber::NoSupport)) => Ok(None),
            Err(e) => Err(HypervisorError::Query {
                what: "the host's CPUs and memory".to_owned(),
                source: e.into(),
            }),
        }
    }

    fn domain_capabilities(&self, domain_type: &str) -> HvResult<Option<String>> {
        match self
            .conn
            .domain_capabilities(None, None, None, Some(domain_type), 0)
        {
            Ok(xml) => Ok(Some(xml)),
            // The driver has no domain capabilities at all (the test driver): cannot tell.
            Err(e) if matches!(e.code(), Enum::Known(ErrorNumber::NoSupport)) => Ok(None),
            Err(e) => Err(HypervisorError::Query {
                what: format!("the domain capabilities for domain type `{domain_type}`"),
                source: e.into(),
            }),
        }
    }

    fn node_device_xml(&self, name: &str) -> HvResult<Option<String>> {
        let query = |e: VirtError| HypervisorError::Query {
            what: format!("node device `{name}`"),
            source: e.into(),
        };
        match self.conn.lookup_node_device_by_name(name) {
            Ok(dev) => dev.xml_desc(0).map(Some).map_err(query),
            Err(e) if matches!(e.code(), Enum::Known(ErrorNumber::NoNodeDevice)) => Ok(None),
            Err(e) => Err(query(e)),
        }
    }
}
