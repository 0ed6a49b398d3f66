//! `up`: create and start what the plan has, unwinding on failure.

use super::*;

use crate::upload::{Upload, ensure_uploaded, remove_uploaded};

/// One step `up` took, and how to take it back.
pub(super) enum Undo {
    Undefine(ObjectKind, String),
    Stop(ObjectKind, String),
    DeleteVolume {
        pool: String,
        name: String,
    },
    /// An uploaded volume and its marker.
    RemoveUploaded {
        pool: String,
        name: String,
    },
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
        self.journal
            .record_intent(self.hv.uri(), o.kind, p.pool, &o.name)?;
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
                Ok(None) => self
                    .journal
                    .remove(self.hv.uri(), o.kind, p.pool, &o.name)?,
                Err(_) => {}
            }
            return Err(e.into());
        }
        self.done.push(undo);
        self.journal
            .mark_created(self.hv.uri(), o.kind, p.pool, &o.name)?;
        if o.kind == ObjectKind::Pool {
            self.check_cancel()?;
            self.hv.build_pool(&o.name)?;
        }
        Ok(())
    }

    /// Put an uploaded volume's local file into the pool. The volume and its marker are
    /// journaled before anything is sent, so that `down` finds both after a kill.
    fn upload(&mut self, p: &Planned<'_>) -> Result<Outcome> {
        let o = p.object;
        let (Some(src), Some(pool)) = (&o.upload, p.pool) else {
            return Ok(Outcome::Unchanged);
        };
        self.check_cancel()?;
        let sha = match &p.sha256 {
            Some(s) => s.clone(),
            None => sha256_file(&src.path)?,
        };
        let uri = self.hv.uri();
        let marker = marker_name(&o.name);
        self.journal
            .record_intent(uri, ObjectKind::Volume, Some(pool), &marker)?;
        self.journal
            .record_intent(uri, ObjectKind::Volume, Some(pool), &o.name)?;
        tracing::info!(volume = %o.name, file = %src.path.display(), "uploading");
        let undo = Undo::RemoveUploaded {
            pool: pool.to_owned(),
            name: o.name.clone(),
        };
        match ensure_uploaded(self.hv, pool, &o.name, &src.path, &sha, src.format) {
            Ok(done) => {
                self.done.push(undo);
                for name in [marker.as_str(), o.name.as_str()] {
                    self.journal
                        .mark_created(uri, ObjectKind::Volume, Some(pool), name)?;
                }
                Ok(match done {
                    Upload::Uploaded { .. } => Outcome::Created,
                    Upload::Unchanged => Outcome::Unchanged,
                })
            }
            Err(e) => {
                // Whatever of the two appeared is undone; when nothing did, the intents go.
                let found = [marker.as_str(), o.name.as_str()]
                    .into_iter()
                    .map(|n| self.hv.lookup(ObjectKind::Volume, Some(pool), n))
                    .collect::<Vec<_>>();
                if found.iter().any(|r| matches!(r, Ok(Some(_)))) {
                    self.done.push(undo);
                } else if found.iter().all(|r| matches!(r, Ok(None))) {
                    for name in [marker.as_str(), o.name.as_str()] {
                        self.journal
                            .remove(uri, ObjectKind::Volume, Some(pool), name)?;
                    }
                }
                Err(e.into())
            }
        }
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
        self.journal
            .mark_created(self.hv.uri(), o.kind, p.pool, &o.name)?;
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
                    ObjectKind::Pool => {
                        super::down::delete_pool_dir(hv, n);
                        hv.undefine_pool(n)?;
                    }
                    ObjectKind::Domain => hv.undefine_domain(n)?,
                    ObjectKind::Volume => {}
                }
                self.journal.remove(hv.uri(), *kind, None, n)?;
            }
            Undo::DeleteVolume { pool, name } => {
                hv.delete_volume(pool, name)?;
                self.journal
                    .remove(hv.uri(), ObjectKind::Volume, Some(pool), name)?;
            }
            Undo::RemoveUploaded { pool, name } => {
                remove_uploaded(hv, pool, name)?;
                for n in [marker_name(name).as_str(), name.as_str()] {
                    self.journal
                        .remove(hv.uri(), ObjectKind::Volume, Some(pool), n)?;
                }
            }
            Undo::Redefine(ObjectKind::Network, n, xml) => hv.define_network(n, xml)?,
            Undo::Redefine(ObjectKind::Domain, n, xml) => hv.define_domain(n, xml)?,
            Undo::Redefine(_, _, _) => {}
        }
        Ok(())
    }
}

/// Bring the plan's objects into existence and start them: networks, pools, volumes
/// (uploaded ones first), domains (defined), then domains (started).
///
/// Objects that exist as planned are left alone, so `up` on an unchanged, running cluster
/// changes nothing ([`UpReport::changes`] is 0). Every object is recorded in `journal`
/// before it is created. On failure — or when `cancel` becomes `true`, checked before every
/// step — everything this call did is undone in reverse order and
/// [`LifecycleError::Unwound`] carries the original error and any failed undo step.
///
/// Only the objects of `hv`'s connection are applied; [`up_all`] applies a plan spanning
/// hosts and unwinds every connection when one fails.
pub fn up<H: Hypervisor>(
    plan: &LibvirtPlan,
    hv: &H,
    journal: &mut Journal,
    cancel: &AtomicBool,
) -> Result<UpReport> {
    up_one(plan, hv, journal, cancel).map(|(report, _)| report)
}

/// [`up`] on every connection of `hvs`, in that order (pass the primary connection first:
/// its network is the cluster's DHCP server), one [`UpReport`] per connection.
///
/// Every URI of the plan must have a connection in `hvs` ([`LifecycleError::NoConnection`],
/// before anything is done). When connection *k* fails — or `cancel` is raised, checked
/// before each connection and each step — connection *k* unwinds itself as [`up`] does, then
/// connections *k-1* … *0* undo, newest step first, what this call did on them;
/// [`LifecycleError::HostFailed`] names the failed URI, carries its error and lists what was
/// undone per URI.
pub fn up_all<H: Hypervisor>(
    plan: &LibvirtPlan,
    hvs: &[&H],
    journal: &mut Journal,
    cancel: &AtomicBool,
) -> Result<Vec<UpReport>> {
    for uri in plan.uris() {
        if !hvs.iter().any(|hv| hv.uri() == uri.as_str()) {
            return Err(LifecycleError::NoConnection {
                uri: uri.to_string(),
            });
        }
    }
    let mut reports = Vec::with_capacity(hvs.len());
    let mut done: Vec<Vec<Undo>> = Vec::with_capacity(hvs.len());
    for hv in hvs {
        let result = if cancel.load(Ordering::SeqCst) {
            Err(LifecycleError::Cancelled)
        } else {
            up_one(plan, *hv, journal, cancel)
        };
        match result {
            Ok((report, steps)) => {
                reports.push(report);
                done.push(steps);
            }
            Err(e) => {
                let mut undone = Vec::new();
                let mut unwind_errors = Vec::new();
                for (hv, steps) in hvs.iter().zip(done).rev() {
                    let mut run = Run {
                        hv: *hv,
                        journal: &mut *journal,
                        cancel,
                        done: steps,
                    };
                    tracing::warn!(uri = hv.uri(), steps = run.done.len(), "unwinding");
                    let (n, errors) = run.unwind();
                    undone.push((hv.uri().to_owned(), n));
                    unwind_errors.extend(errors.into_iter().map(|e| (hv.uri().to_owned(), e)));
                }
                return Err(LifecycleError::HostFailed {
                    uri: hv.uri().to_owned(),
                    source: Box::new(e),
                    undone,
                    unwind_errors,
                });
            }
        }
    }
    Ok(reports)
}

/// [`up`] on one connection, also returning the steps it took (for [`up_all`] to undo).
fn up_one<H: Hypervisor>(
    plan: &LibvirtPlan,
    hv: &H,
    journal: &mut Journal,
    cancel: &AtomicBool,
) -> Result<(UpReport, Vec<Undo>)> {
    let plan = &on_connection(plan, hv.uri());
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
        Ok(objects) => Ok((UpReport { objects, stale }, run.done)),
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
            if p.object.upload.is_some() {
                if p.action == Action::Create {
                    outcomes[i] = run.upload(p)?;
                }
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
