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
//! All objects of a plan are applied through the one [`Hypervisor`] given: a plan spanning
//! several connections ([`LibvirtPlan::uris`]) is applied per connection by the caller.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::compare::{dhcp_hosts, domain_facts, owner, root_child_text, with_uuid, xml_matches};
use crate::hypervisor::{DomainState, Hypervisor, HypervisorError, LiveObject, kind_name};
use crate::journal::{Journal, JournalError};
use crate::plan::{LibvirtPlan, Object, ObjectKind};

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
}

fn classify<'p, H: Hypervisor>(plan: &'p LibvirtPlan, hv: &H) -> Result<Vec<Planned<'p>>> {
    let mut out = Vec::with_capacity(plan.objects.len());
    for o in &plan.objects {
        let pool = object_pool(plan, o)?;
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
        });
    }
    Ok(out)
}

fn stale<H: Hypervisor>(plan: &LibvirtPlan, hv: &H) -> Result<Vec<Change>> {
    let Some(cluster) = plan_cluster(plan) else {
        return Ok(Vec::new());
    };
    let in_plan = |l: &LiveObject| {
        plan.objects.iter().any(|o| {
            o.kind == l.kind
                && o.name == l.name
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

// ---------------------------------------------------------------------------------------------
// up

/// One step `up` took, and how to take it back.
enum Undo {
    Undefine(ObjectKind, String),
    Stop(ObjectKind, String),
    DeleteVolume { pool: String, name: String },
    Redefine(ObjectKind, String, String),
}

struct Run<'a, H> {
    hv: &'a H,
    journal: &'a mut Journal,
    cancel: &'a AtomicBool,
    done: Vec<Undo>,
}

impl<H: Hypervisor> Run<'_, H> {
    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(LifecycleError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn create(&mut self, p: &Planned<'_>) -> Result<()> {
        let o = p.object;
        self.check_cancel()?;
        self.journal.record_intent(o.kind, p.pool, &o.name)?;
        let created = match o.kind {
            ObjectKind::Network => self.hv.define_network(&o.name, &o.xml),
            ObjectKind::Pool => self.hv.define_pool(&o.name, &o.xml),
            ObjectKind::Domain => self.hv.define_domain(&o.name, &o.xml),
            ObjectKind::Volume => {
                self.hv
                    .create_volume(p.pool.unwrap_or_default(), &o.name, &o.xml)
            }
        };
        let undo = match o.kind {
            ObjectKind::Volume => Undo::DeleteVolume {
                pool: p.pool.unwrap_or_default().to_owned(),
                name: o.name.clone(),
            },
            kind => Undo::Undefine(kind, o.name.clone()),
        };
        if let Err(e) = created {
            // The call failed, but did the object appear? Undo it if so; forget the intent if
            // surely not; keep the intent (for `down`) when that cannot be told.
            match self.hv.lookup(o.kind, p.pool, &o.name) {
                Ok(Some(_)) => self.done.push(undo),
                Ok(None) => self.journal.remove(o.kind, p.pool, &o.name)?,
                Err(_) => {}
            }
            return Err(e.into());
        }
        self.done.push(undo);
        self.journal.mark_created(o.kind, p.pool, &o.name)?;
        if o.kind == ObjectKind::Pool {
            self.check_cancel()?;
            self.hv.build_pool(&o.name)?;
        }
        Ok(())
    }

    fn update(&mut self, p: &Planned<'_>, live: &LiveObject) -> Result<()> {
        let o = p.object;
        self.check_cancel()?;
        let xml = match root_child_text(&live.xml, "uuid") {
            Some(uuid) => with_uuid(&o.xml, &uuid),
            None => o.xml.clone(),
        };
        match o.kind {
            ObjectKind::Network => self.hv.define_network(&o.name, &xml)?,
            ObjectKind::Domain => self.hv.define_domain(&o.name, &xml)?,
            ObjectKind::Pool | ObjectKind::Volume => {
                return Err(LifecycleError::NeedsRecreate {
                    kind: o.kind,
                    name: o.name.clone(),
                });
            }
        }
        self.done
            .push(Undo::Redefine(o.kind, o.name.clone(), live.xml.clone()));
        self.journal.mark_created(o.kind, p.pool, &o.name)?;
        Ok(())
    }

    fn start(&mut self, kind: ObjectKind, name: &str) -> Result<()> {
        self.check_cancel()?;
        match kind {
            ObjectKind::Network => self.hv.start_network(name)?,
            ObjectKind::Pool => self.hv.start_pool(name)?,
            ObjectKind::Domain => self.hv.start_domain(name)?,
            ObjectKind::Volume => return Ok(()),
        }
        self.done.push(Undo::Stop(kind, name.to_owned()));
        Ok(())
    }

    /// Undo every step, newest first; the errors of the steps that failed.
    fn unwind(&mut self) -> (usize, Vec<LifecycleError>) {
        let mut undone = 0;
        let mut errors = Vec::new();
        while let Some(step) = self.done.pop() {
            match self.undo(&step) {
                Ok(()) => undone += 1,
                Err(e) => errors.push(e),
            }
        }
        (undone, errors)
    }

    fn undo(&mut self, step: &Undo) -> Result<()> {
        let hv = self.hv;
        match step {
            Undo::Stop(ObjectKind::Network, n) => hv.destroy_network(n)?,
            Undo::Stop(ObjectKind::Pool, n) => hv.destroy_pool(n)?,
            Undo::Stop(ObjectKind::Domain, n) => hv.destroy_domain(n)?,
            Undo::Stop(ObjectKind::Volume, _) => {}
            Undo::Undefine(kind, n) => {
                match kind {
                    ObjectKind::Network => hv.undefine_network(n)?,
                    ObjectKind::Pool => hv.undefine_pool(n)?,
                    ObjectKind::Domain => hv.undefine_domain(n)?,
                    ObjectKind::Volume => {}
                }
                self.journal.remove(*kind, None, n)?;
            }
            Undo::DeleteVolume { pool, name } => {
                hv.delete_volume(pool, name)?;
                self.journal.remove(ObjectKind::Volume, Some(pool), name)?;
            }
            Undo::Redefine(ObjectKind::Network, n, xml) => hv.define_network(n, xml)?,
            Undo::Redefine(ObjectKind::Domain, n, xml) => hv.define_domain(n, xml)?,
            Undo::Redefine(_, _, _) => {}
        }
        Ok(())
    }
}

/// Bring the plan's objects into existence and start them: networks, pools, volumes, domains
/// (defined), then domains (started).
///
/// Objects that exist as planned are left alone, so `up` on an unchanged, running cluster
/// changes nothing ([`UpReport::changes`] is 0). Every object is recorded in `journal`
/// before it is created. On failure — or when `cancel` becomes `true`, checked before every
/// step — everything this call did is undone in reverse order and
/// [`LifecycleError::Unwound`] carries the original error and any failed undo step.
pub fn up<H: Hypervisor>(
    plan: &LibvirtPlan,
    hv: &H,
    journal: &mut Journal,
    cancel: &AtomicBool,
) -> Result<UpReport> {
    if cancel.load(Ordering::SeqCst) {
        return Err(LifecycleError::Cancelled);
    }
    let planned = classify(plan, hv)?;
    if let Some(p) = planned.iter().find(|p| p.action == Action::Recreate) {
        return Err(LifecycleError::NeedsRecreate {
            kind: p.object.kind,
            name: p.object.name.clone(),
        });
    }
    let stale = stale(plan, hv)?;
    let mut run = Run {
        hv,
        journal,
        cancel,
        done: Vec::new(),
    };
    match apply(&mut run, &planned) {
        Ok(objects) => Ok(UpReport { objects, stale }),
        Err(e) => {
            tracing::warn!(error = %e, steps = run.done.len(), "up failed; unwinding");
            let (undone, unwind_errors) = run.unwind();
            Err(LifecycleError::Unwound {
                source: Box::new(e),
                undone,
                unwind_errors,
            })
        }
    }
}

fn apply<H: Hypervisor>(run: &mut Run<'_, H>, planned: &[Planned<'_>]) -> Result<Vec<Applied>> {
    let mut outcomes: Vec<Outcome> = planned
        .iter()
        .map(|p| match p.action {
            Action::Create => Outcome::Created,
            Action::Update => Outcome::Updated,
            _ => Outcome::Unchanged,
        })
        .collect();
    // Definitions, kind by kind in creation order; networks and pools are started at once
    // (volumes need a running pool), domains only after all are defined.
    for kind in [
        ObjectKind::Network,
        ObjectKind::Pool,
        ObjectKind::Volume,
        ObjectKind::Domain,
    ] {
        for (i, p) in planned.iter().enumerate() {
            if p.object.kind != kind {
                continue;
            }
            let was_active = match (&p.action, &p.live) {
                (Action::Create, _) => {
                    run.create(p)?;
                    false
                }
                (Action::Update, Some(live)) => {
                    run.update(p, live)?;
                    live.active
                }
                (_, live) => live.as_ref().is_some_and(|l| l.active),
            };
            if matches!(kind, ObjectKind::Network | ObjectKind::Pool) && !was_active {
                tracing::info!(kind = kind_name(&kind), name = %p.object.name, "starting");
                run.start(kind, &p.object.name)?;
                if outcomes[i] == Outcome::Unchanged {
                    outcomes[i] = Outcome::Started;
                }
            }
        }
    }
    for (i, p) in planned.iter().enumerate() {
        if p.object.kind != ObjectKind::Domain {
            continue;
        }
        let active = match &p.live {
            Some(_) if p.action != Action::Create => {
                run.hv.domain_state(&p.object.name)?.is_active()
            }
            _ => false,
        };
        if !active {
            tracing::info!(domain = %p.object.name, "starting");
            run.start(ObjectKind::Domain, &p.object.name)?;
            if outcomes[i] == Outcome::Unchanged {
                outcomes[i] = Outcome::Started;
            }
        }
    }
    Ok(planned
        .iter()
        .zip(outcomes)
        .map(|(p, outcome)| Applied {
            kind: p.object.kind,
            name: p.object.name.clone(),
            outcome,
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// down

struct Down<'a, H> {
    hv: &'a H,
    journal: &'a mut Journal,
    report: DownReport,
    errors: Vec<LifecycleError>,
}

impl<H: Hypervisor> Down<'_, H> {
    fn note(&mut self, r: Result<()>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.errors.push(e);
                false
            }
        }
    }

    fn remove(&mut self, kind: ObjectKind, pool: Option<&str>, name: &str) {
        let hv = self.hv;
        let result = (|| -> Result<bool> {
            let Some(live) = hv.lookup(kind, pool, name)? else {
                return Ok(false);
            };
            match kind {
                ObjectKind::Domain => {
                    if live.active || hv.domain_state(name)?.is_active() {
                        hv.destroy_domain(name)?;
                    }
                    // A transient object (undefined while running) is gone once stopped.
                    if hv.lookup(kind, None, name)?.is_some() {
                        hv.undefine_domain(name)?;
                    }
                }
                ObjectKind::Network => {
                    if live.active {
                        hv.destroy_network(name)?;
                    }
                    if hv.lookup(kind, None, name)?.is_some() {
                        hv.undefine_network(name)?;
                    }
                }
                ObjectKind::Pool => {
                    if live.active {
                        hv.destroy_pool(name)?;
                    }
                    if hv.lookup(kind, None, name)?.is_some() {
                        hv.undefine_pool(name)?;
                    }
                }
                ObjectKind::Volume => hv.delete_volume(pool.unwrap_or_default(), name)?,
            }
            Ok(true)
        })();
        match result {
            Ok(existed) => {
                if existed {
                    tracing::info!(kind = kind_name(&kind), name, "removed");
                    self.report.removed.push(Removed {
                        kind,
                        name: name.to_owned(),
                        pool: pool.map(str::to_owned),
                    });
                }
                let r = self.journal.remove(kind, pool, name).map_err(Into::into);
                self.note(r);
            }
            Err(e) => self.errors.push(e),
        }
    }
}

fn push_unique(v: &mut Vec<(Option<String>, String)>, pool: Option<String>, name: String) {
    if !v.iter().any(|(p, n)| *p == pool && *n == name) {
        v.push((pool, name));
    }
}

/// Remove every libvirt object of `cluster`: domains (powered off, undefined), volumes
/// (deleted with their files), the pool, the network — everything the journal names and
/// everything found on the connection by metadata or name, so it also cleans up after a
/// killed `up` or a lost journal. It goes on past failures; the journal keeps what could
/// not be removed and is deleted once everything is gone.
pub fn down<H: Hypervisor>(cluster: &str, hv: &H, journal: &mut Journal) -> Result<DownReport> {
    let mut targets: [Vec<(Option<String>, String)>; 4] = Default::default();
    let slot = |k: ObjectKind| match k {
        ObjectKind::Domain => 0,
        ObjectKind::Volume => 1,
        ObjectKind::Pool => 2,
        ObjectKind::Network => 3,
    };
    for e in journal.entries() {
        push_unique(&mut targets[slot(e.kind)], e.pool.clone(), e.name.clone());
    }
    let mut d = Down {
        hv,
        journal,
        report: DownReport::default(),
        errors: Vec::new(),
    };
    match scan_owned(cluster, hv) {
        Ok(live) => {
            for l in live {
                push_unique(&mut targets[slot(l.kind)], l.pool, l.name);
            }
        }
        Err(e) => d.errors.push(e),
    }
    let [domains, mut volumes, pools, networks] = targets;

    for (_, name) in &domains {
        d.remove(ObjectKind::Domain, None, name);
    }
    // Volumes are only visible in a running pool: start the cluster's pools that are not.
    let mut pool_names: Vec<String> = pools.iter().map(|(_, n)| n.clone()).collect();
    let own = cluster_pool(cluster);
    if !pool_names.contains(&own) {
        pool_names.push(own);
    }
    for name in &pool_names {
        match hv.lookup(ObjectKind::Pool, None, name) {
            Ok(Some(p)) if !p.active => {
                let r = hv.start_pool(name).map_err(Into::into);
                d.note(r);
            }
            Ok(_) => {}
            Err(e) => d.errors.push(e.into()),
        }
    }
    match hv.list(ObjectKind::Volume) {
        Ok(all) => {
            for v in all {
                let in_pool = v.pool.as_ref().is_some_and(|p| pool_names.contains(p));
                if in_pool && v.name.starts_with(&format!("{cluster}-")) {
                    push_unique(&mut volumes, v.pool, v.name);
                }
            }
        }
        Err(e) => d.errors.push(e.into()),
    }
    for (pool, name) in &volumes {
        d.remove(ObjectKind::Volume, pool.as_deref(), name);
    }
    for (_, name) in &pools {
        d.remove(ObjectKind::Pool, None, name);
    }
    for (_, name) in &networks {
        d.remove(ObjectKind::Network, None, name);
    }

    let Down {
        journal,
        report,
        errors,
        ..
    } = d;
    if errors.is_empty() {
        journal.clear()?;
        Ok(report)
    } else {
        Err(LifecycleError::Incomplete {
            cluster: cluster.to_owned(),
            removed: report.removed,
            errors,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// status, start, stop

/// Per domain of the plan: state, MAC, vCPUs and memory (live where the domain is defined,
/// planned otherwise) and the IP of the plan's static DHCP entry for its MAC.
pub fn status<H: Hypervisor>(plan: &LibvirtPlan, hv: &H) -> Result<Vec<NodeStatus>> {
    let hosts: Vec<(String, String)> = plan
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Network)
        .flat_map(|o| dhcp_hosts(&o.xml))
        .collect();
    let mut out = Vec::new();
    for o in plan.objects.iter().filter(|o| o.kind == ObjectKind::Domain) {
        let live = hv.lookup(ObjectKind::Domain, None, &o.name)?;
        let state = match &live {
            Some(_) => Some(hv.domain_state(&o.name)?),
            None => None,
        };
        let facts = domain_facts(live.as_ref().map_or(&o.xml, |l| &l.xml));
        let mac = facts.macs.first().cloned();
        let ip = mac.as_ref().and_then(|m| {
            hosts
                .iter()
                .find(|(hm, _)| hm == m)
                .map(|(_, ip)| ip.clone())
        });
        let node = owner(&o.xml)
            .and_then(|(_, node)| node)
            .unwrap_or_else(|| o.name.clone());
        out.push(NodeStatus {
            node,
            domain: o.name.clone(),
            state,
            mac,
            ip,
            vcpus: facts.vcpus,
            memory_kib: facts.memory_kib,
        });
    }
    Ok(out)
}

/// Start what is defined but not running: networks and pools, then domains. Returns the
/// domains started.
pub fn start<H: Hypervisor>(plan: &LibvirtPlan, hv: &H) -> Result<Vec<String>> {
    let mut started = Vec::new();
    for kind in [ObjectKind::Network, ObjectKind::Pool, ObjectKind::Domain] {
        for o in plan.objects.iter().filter(|o| o.kind == kind) {
            let Some(live) = hv.lookup(kind, None, &o.name)? else {
                return Err(LifecycleError::NotDefined {
                    kind,
                    name: o.name.clone(),
                });
            };
            match kind {
                ObjectKind::Network if !live.active => hv.start_network(&o.name)?,
                ObjectKind::Pool if !live.active => hv.start_pool(&o.name)?,
                ObjectKind::Domain if !hv.domain_state(&o.name)?.is_active() => {
                    hv.start_domain(&o.name)?;
                    started.push(o.name.clone());
                }
                _ => {}
            }
        }
    }
    Ok(started)
}

/// Shut the plan's running domains down: ask each guest, wait up to `timeout` for all of
/// them, then power off the ones still running. Networks and pools stay up.
pub fn stop<H: Hypervisor>(plan: &LibvirtPlan, hv: &H, timeout: Duration) -> Result<StopReport> {
    let mut waiting = Vec::new();
    for o in plan.objects.iter().filter(|o| o.kind == ObjectKind::Domain) {
        if hv.lookup(ObjectKind::Domain, None, &o.name)?.is_none() {
            continue;
        }
        if hv.domain_state(&o.name)?.is_active() {
            hv.shutdown_domain(&o.name)?;
            waiting.push(o.name.clone());
        }
    }
    let mut report = StopReport::default();
    let deadline = Instant::now() + timeout;
    loop {
        let mut still = Vec::new();
        for name in waiting {
            if hv.domain_state(&name)?.is_active() {
                still.push(name);
            } else {
                report.shut_down.push(name);
            }
        }
        waiting = still;
        if waiting.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(
            STOP_POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    for name in waiting {
        tracing::warn!(domain = %name, "did not shut down in time; powering off");
        hv.destroy_domain(&name)?;
        report.destroyed.push(name);
    }
    Ok(report)
}
