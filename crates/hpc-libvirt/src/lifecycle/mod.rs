//! The journaled lifecycle of a cluster's libvirt objects: `diff`, `up`, `down`, `status`,
//! `start`, `stop` — generic over any [`Hypervisor`].
//!
//! **Ownership.** Domains and networks carry the cluster in their `<metadata>`; pools and
//! volumes cannot, so the cluster's pool is found by its name (`<cluster>-pool`) and its
//! volumes by living in that pool under the cluster's prefix (`<cluster>-…`). Together with
//! the [`Journal`] this lets `down` remove everything after a `kill -9` of `up` and after the
//! journal itself was lost.
//!
//! **Comparison.** An existing object is compared with the plan on a normalised form of its
//! XML (the planned document must be contained in libvirt's dump; see `compare.rs`), so no
//! hash has to survive anywhere. A differing domain or network is redefined in place
//! ([`Action::Update`], effective at the next start); a differing pool or volume would have
//! to be deleted with its data ([`Action::Recreate`]), which `up` refuses to do on its own.
//!
//! **Unwind.** `up` remembers every step it took; on any failure, or when the cancel flag is
//! raised, it undoes them in reverse order and reports the original error together with any
//! step of the unwind that failed.
//!
//! Each function works on one connection: of the plan, it takes the objects whose URI is the
//! [`Hypervisor::uri`] (see [`on_connection`]); a plan spanning several hosts
//! ([`LibvirtPlan::uris`]) is applied once per connection. The journal records the URI of
//! every object, and `down` on one connection leaves the other connections' entries alone.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::compare::{dhcp_hosts, domain_facts, owner, root_child_text, with_uuid, xml_matches};
use crate::hypervisor::{DomainState, Hypervisor, HypervisorError, LiveObject, kind_name};
use crate::journal::{Journal, JournalError};
use crate::plan::{LibvirtPlan, Object, ObjectKind};
use crate::upload::{UploadError, is_current, marker_name, sha256_file};

/// How often [`stop`] polls the domains' state while waiting for them to shut down.
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What has to happen to one object to match the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Missing: create it.
    Create,
    /// Exists and matches the plan.
    Unchanged,
    /// Exists but differs; redefined in place (domains, networks).
    Update,
    /// Exists but differs and can only be deleted and created again (pools, volumes: the
    /// data goes).
    Recreate,
    /// Owned by the cluster but no longer in the plan.
    Delete,
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The object's kind.
    pub kind: ObjectKind,
    /// Its libvirt name.
    pub name: String,
    /// For volumes, the pool.
    pub pool: Option<String>,
    /// What has to happen.
    pub action: Action,
}

/// What `up` did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Created (and started, for networks, pools and domains).
    Created,
    /// Redefined to match the plan (and started if it was not running).
    Updated,
    /// Existed as planned but was not running: started.
    Started,
    /// Nothing to do.
    Unchanged,
}

/// The result of [`up`] for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The object's kind.
    pub kind: ObjectKind,
    /// Its libvirt name.
    pub name: String,
    /// What was done.
    pub outcome: Outcome,
}

/// What [`up`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpReport {
    /// Every object of the plan, in plan order.
    pub objects: Vec<Applied>,
    /// Objects the cluster owns that the plan no longer has. `up` leaves them alone: `down`
    /// (or removing them by hand) deletes them.
    pub stale: Vec<Change>,
}

impl UpReport {
    /// The number of objects that were created, updated or started.
    pub fn changes(&self) -> usize {
        self.objects
            .iter()
            .filter(|a| a.outcome != Outcome::Unchanged)
            .count()
    }
}

/// An object `down` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its libvirt name.
    pub name: String,
    /// For volumes, the pool.
    pub pool: Option<String>,
}

/// What [`down`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// The removed objects, in removal order.
    pub removed: Vec<Removed>,
}

/// One node in [`status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's name (from the domain's metadata; the domain name when there is none).
    pub node: String,
    /// The domain's libvirt name.
    pub domain: String,
    /// Its state; `None` when the domain is not defined.
    pub state: Option<DomainState>,
    /// The MAC address of its first interface.
    pub mac: Option<String>,
    /// The IPv4 address of the plan's static DHCP entry for that MAC.
    pub ip: Option<String>,
    /// vCPUs.
    pub vcpus: Option<u32>,
    /// Memory, KiB.
    pub memory_kib: Option<u64>,
}

/// What [`stop`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Domains that shut down by themselves within the timeout.
    pub shut_down: Vec<String>,
    /// Domains that had to be powered off.
    pub destroyed: Vec<String>,
}

/// A lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// A libvirt call failed.
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    /// An object differs from the plan in a way that needs deleting it and its data.
    #[error(
        "{} `{name}` differs from the plan and can only be recreated, losing its data; \
         run `down` first",
        kind_name(.kind)
    )]
    NeedsRecreate {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
    /// A volume of the plan has no pool to go into.
    #[error("volume `{name}` has no storage pool in the plan")]
    NoPool {
        /// The volume's name.
        name: String,
    },
    /// An object `start` needs is not defined.
    #[error("{} `{name}` is not defined; run `up` first", kind_name(.kind))]
    NotDefined {
        /// Its kind.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
    /// Putting a local file into a volume failed.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// `up_all` was given no connection for a URI of the plan.
    #[error("the plan has objects on `{uri}`, but no connection to it was given")]
    NoConnection {
        /// The URI.
        uri: String,
    },
    /// [`up_all`] failed on one connection: that connection unwound itself (its error is the
    /// source), and every connection before it undid what this run had done there, in
    /// reverse order.
    #[error("bringing the cluster up failed on `{uri}`; {}", hosts_unwound_message(.undone, .unwind_errors))]
    HostFailed {
        /// The connection that failed.
        uri: String,
        /// Its error (usually [`LifecycleError::Unwound`]).
        #[source]
        source: Box<LifecycleError>,
        /// Per connection unwound before it (newest first): its URI and the steps undone.
        undone: Vec<(String, usize)>,
        /// Undo steps that failed on those connections (their objects may remain; `down`
        /// removes them), with the URI.
        unwind_errors: Vec<(String, LifecycleError)>,
    },
    /// `up` failed and what it had done was undone (as far as possible).
    #[error("{}", unwound_message(*.undone, .unwind_errors))]
    Unwound {
        /// The error that stopped `up`.
        #[source]
        source: Box<LifecycleError>,
        /// How many steps were undone.
        undone: usize,
        /// Undo steps that failed (their objects may remain; `down` removes them).
        unwind_errors: Vec<LifecycleError>,
    },
    /// `down` could not remove everything.
    #[error("{} of cluster `{cluster}` could not be removed: {}", errors.len(), error_list(.errors))]
    Incomplete {
        /// The cluster.
        cluster: String,
        /// What was removed nonetheless.
        removed: Vec<Removed>,
        /// What failed.
        errors: Vec<LifecycleError>,
    },
}

impl LifecycleError {
    /// Whether the operation stopped because the cancel flag was raised (directly, or as the
    /// cause of an unwind).
    pub fn is_cancelled(&self) -> bool {
        match self {
            Self::Cancelled => true,
            Self::Unwound { source, .. } | Self::HostFailed { source, .. } => source.is_cancelled(),
            _ => false,
        }
    }
}

fn hosts_unwound_message(
    undone: &[(String, usize)],
    errors: &[(String, LifecycleError)],
) -> String {
    let mut s = if undone.is_empty() {
        "no other connection had changes to undo".to_owned()
    } else {
        let per: Vec<String> = undone
            .iter()
            .map(|(uri, n)| format!("{n} step(s) on `{uri}`"))
            .collect();
        format!("undid {}", per.join(", "))
    };
    if !errors.is_empty() {
        let per: Vec<String> = errors
            .iter()
            .map(|(uri, e)| format!("on `{uri}`: {}", error_list(std::slice::from_ref(e))))
            .collect();
        let _ = write!(
            s,
            ", but {} undo step(s) failed: {}",
            errors.len(),
            per.join("; ")
        );
    }
    s
}

fn unwound_message(undone: usize, errors: &[LifecycleError]) -> String {
    let mut s = format!("bringing the cluster up failed; undid {undone} step(s)");
    if !errors.is_empty() {
        let _ = write!(
            s,
            ", but {} undo step(s) failed too: {}",
            errors.len(),
            error_list(errors)
        );
    }
    s
}

/// Each error with its chain of causes, `; `-separated.
fn error_list(errors: &[LifecycleError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let _ = write!(out, "{e}");
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let _ = write!(out, ": {s}");
            source = s.source();
        }
    }
    out
}

type Result<T, E = LifecycleError> = std::result::Result<T, E>;

mod down;
mod ops;
mod up;

pub use down::down;
pub use ops::{start, status, stop};
pub use up::{up, up_all};

// ---------------------------------------------------------------------------------------------
// ownership

/// The cluster a plan belongs to, from the metadata of its first domain or network.
pub fn plan_cluster(plan: &LibvirtPlan) -> Option<String> {
    plan.objects
        .iter()
        .filter(|o| matches!(o.kind, ObjectKind::Domain | ObjectKind::Network))
        .find_map(|o| owner(&o.xml))
        .map(|(cluster, _)| cluster)
}

/// The storage pool of `cluster`: `<cluster>-pool`.
fn cluster_pool(cluster: &str) -> String {
    format!("{cluster}-pool")
}

fn volume_owned(cluster: &str, v: &LiveObject) -> bool {
    v.pool.as_deref() == Some(cluster_pool(cluster).as_str())
        && v.name.starts_with(&format!("{cluster}-"))
}

/// Every live object of `cluster`: domains and networks by metadata, its pool by name, the
/// volumes in that pool by prefix (volumes of inactive pools cannot be seen).
fn scan_owned<H: Hypervisor>(cluster: &str, hv: &H) -> Result<Vec<LiveObject>> {
    let mut out = Vec::new();
    for kind in [ObjectKind::Network, ObjectKind::Domain] {
        out.extend(
            hv.list(kind)?
                .into_iter()
                .filter(|o| owner(&o.xml).is_some_and(|(c, _)| c == cluster)),
        );
    }
    let pool = cluster_pool(cluster);
    out.extend(
        hv.list(ObjectKind::Pool)?
            .into_iter()
            .filter(|p| p.name == pool),
    );
    out.extend(
        hv.list(ObjectKind::Volume)?
            .into_iter()
            .filter(|v| volume_owned(cluster, v)),
    );
    Ok(out)
}

/// The part of `plan` that lives on connection `uri`. The lifecycle functions apply only
/// this part of the plan they are given (the objects of the hypervisor's connection); a
/// plan spanning hosts is applied once per [`LibvirtPlan::uris`].
pub fn on_connection(plan: &LibvirtPlan, uri: &str) -> LibvirtPlan {
    LibvirtPlan {
        objects: plan
            .objects
            .iter()
            .filter(|o| o.uri.as_str() == uri)
            .cloned()
            .collect(),
    }
}

/// The pool the plan's volumes go into: its (first) storage pool.
fn plan_pool(plan: &LibvirtPlan) -> Option<&str> {
    plan.objects
        .iter()
        .find(|o| o.kind == ObjectKind::Pool)
        .map(|o| o.name.as_str())
}

fn object_pool<'p>(plan: &'p LibvirtPlan, o: &Object) -> Result<Option<&'p str>> {
    if o.kind != ObjectKind::Volume {
        return Ok(None);
    }
    plan_pool(plan)
        .map(Some)
        .ok_or_else(|| LifecycleError::NoPool {
            name: o.name.clone(),
        })
}

// ---------------------------------------------------------------------------------------------
// diff

struct Planned<'p> {
    object: &'p Object,
    pool: Option<&'p str>,
    live: Option<LiveObject>,
    action: Action,
    /// For an uploaded volume: the local file's SHA-256, when it could be read.
    sha256: Option<String>,
}

/// An uploaded volume is as planned when its marker holds the local file's digest and the
/// volume has the file's size; a local file that cannot be read (not written yet, e.g. a
/// seed before the first `up`) counts as to be created — `up` then fails on it.
fn classify_upload<H: Hypervisor>(
    hv: &H,
    pool: &str,
    o: &Object,
    path: &std::path::Path,
) -> Result<(Action, Option<String>)> {
    let Ok(sha) = sha256_file(path) else {
        return Ok((Action::Create, None));
    };
    let Ok(meta) = fs_err::metadata(path) else {
        return Ok((Action::Create, None));
    };
    let current = is_current(hv, pool, &o.name, &sha, meta.len())?;
    let action = if current {
        Action::Unchanged
    } else {
        Action::Create
    };
    Ok((action, Some(sha)))
}

fn classify<'p, H: Hypervisor>(plan: &'p LibvirtPlan, hv: &H) -> Result<Vec<Planned<'p>>> {
    let mut out = Vec::with_capacity(plan.objects.len());
    for o in &plan.objects {
        let pool = object_pool(plan, o)?;
        if let (Some(up), Some(pool)) = (&o.upload, pool) {
            let live = hv.lookup(o.kind, Some(pool), &o.name)?;
            let (action, sha256) = classify_upload(hv, pool, o, &up.path)?;
            out.push(Planned {
                object: o,
                pool: Some(pool),
                live,
                action,
                sha256,
            });
            continue;
        }
        let live = hv.lookup(o.kind, pool, &o.name)?;
        let action = match &live {
            None => Action::Create,
            Some(l) if xml_matches(&o.xml, &l.xml) => Action::Unchanged,
            Some(_) => match o.kind {
                ObjectKind::Domain | ObjectKind::Network => Action::Update,
                ObjectKind::Pool | ObjectKind::Volume => Action::Recreate,
            },
        };
        out.push(Planned {
            object: o,
            pool,
            live,
            action,
            sha256: None,
        });
    }
    Ok(out)
}

fn stale<H: Hypervisor>(plan: &LibvirtPlan, hv: &H) -> Result<Vec<Change>> {
    let Some(cluster) = plan_cluster(plan) else {
        return Ok(Vec::new());
    };
    // An uploaded volume comes with its marker volume.
    let in_plan = |l: &LiveObject| {
        plan.objects.iter().any(|o| {
            o.kind == l.kind
                && (o.name == l.name || (o.upload.is_some() && marker_name(&o.name) == l.name))
                && (o.kind != ObjectKind::Volume || plan_pool(plan) == l.pool.as_deref())
        })
    };
    Ok(scan_owned(&cluster, hv)?
        .into_iter()
        .filter(|l| !in_plan(l))
        .map(|l| Change {
            kind: l.kind,
            name: l.name,
            pool: l.pool,
            action: Action::Delete,
        })
        .collect())
}

/// What `up` would do: one [`Change`] per planned object (plan order), then a
/// [`Action::Delete`] for every object of the cluster the plan no longer has.
pub fn diff<H: Hypervisor>(plan: &LibvirtPlan, hv: &H) -> Result<Vec<Change>> {
    let plan = &on_connection(plan, hv.uri());
    let mut out: Vec<Change> = classify(plan, hv)?
        .into_iter()
        .map(|p| Change {
            kind: p.object.kind,
            name: p.object.name.clone(),
            pool: p.pool.map(str::to_owned),
            action: p.action,
        })
        .collect();
    out.extend(stale(plan, hv)?);
    Ok(out)
}
