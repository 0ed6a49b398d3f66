//! Typed progress events: what a caller draws (a live display, log lines, JSON lines).
//!
//! A run emits, in order: `layer-started`/`layer-finished` around each layer; per node (or
//! cluster-wide, `node: None`) `phase-started` then `phase-finished` or `phase-failed`;
//! `object` for every libvirt object `up` handled; `stale`, `warning` and `note` when there
//! is something to tell. Times are seconds: `at` since the run started, `seconds` a duration.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// The layers of a cluster, in the order `up` brings them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Network, pool, volumes, domains (libvirt).
    Libvirt,
    /// Per node: SSH answering, its seed unit, its base configuration (hostname,
    /// `/etc/hosts`, virtio-fs mounts).
    Node,
    /// munge, slurmdbd, slurmctld, slurmd.
    Slurm,
    /// BeeGFS management, metadata, storage, clients.
    Beegfs,
    /// Open MPI's settings for the cluster network, SLURM's PMIx plugin.
    Mpi,
    /// The OCI runtime and SLURM's `oci.conf` on the compute nodes.
    Containers,
    /// node exporter everywhere, SLURM metrics, Prometheus.
    Monitoring,
}

impl Layer {
    /// Its name in text.
    pub fn name(self) -> &'static str {
        match self {
            Self::Libvirt => "libvirt",
            Self::Node => "node",
            Self::Slurm => "slurm",
            Self::Beegfs => "beegfs",
            Self::Mpi => "mpi",
            Self::Containers => "containers",
            Self::Monitoring => "monitoring",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A layer began.
    LayerStarted {
        /// Which.
        layer: Layer,
        /// Seconds since the run started.
        at: f64,
    },
    /// A layer ended well.
    LayerFinished {
        /// Which.
        layer: Layer,
        /// Its wall time.
        seconds: f64,
        /// Seconds since the run started.
        at: f64,
    },
    /// A phase began on a node (or cluster-wide).
    PhaseStarted {
        /// Its layer.
        layer: Layer,
        /// Phase name (`ssh wait`, `munge`, `slurmctld`, `nodes idle`, …).
        phase: String,
        /// The node; `None` when cluster-wide.
        node: Option<String>,
        /// Seconds since the run started.
        at: f64,
    },
    /// A phase ended well.
    PhaseFinished {
        /// Its layer.
        layer: Layer,
        /// Phase name.
        phase: String,
        /// The node; `None` when cluster-wide.
        node: Option<String>,
        /// The phase's own wall time (waits for other nodes excluded).
        seconds: f64,
        /// Host steps it changed.
        changed: usize,
        /// Seconds since the run started.
        at: f64,
    },
    /// A phase failed.
    PhaseFailed {
        /// Its layer.
        layer: Layer,
        /// Phase name.
        phase: String,
        /// The node; `None` when cluster-wide.
        node: Option<String>,
        /// Why.
        error: String,
        /// Seconds since the run started.
        at: f64,
    },
    /// A libvirt object `up` handled.
    Object {
        /// Its connection.
        uri: String,
        /// `network`, `pool`, `volume`, `domain`.
        kind: String,
        /// Its name.
        name: String,
        /// `created`, `updated`, `started`, `unchanged`.
        outcome: String,
    },
    /// An object of the cluster that the file no longer has (`down` removes it).
    Stale {
        /// Its connection.
        uri: String,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
    },
    /// Something the user should know; the run goes on.
    Warning {
        /// The text.
        message: String,
    },
    /// Progress worth a line of text.
    Note {
        /// The text.
        message: String,
    },
}

impl Event {
    /// The event as one line of a log (`[  12.3s] cn1: slurm munge done in 0.4s (2 changed)`);
    /// `None` for the per-object events of libvirt.
    pub fn line(&self) -> Option<String> {
        let who = |node: &Option<String>| {
            node.as_deref()
                .map_or_else(String::new, |n| format!("{n}: "))
        };
        Some(match self {
            Self::LayerStarted { at, .. } | Self::LayerFinished { at, .. } => {
                format!("[{at:>6.1}s] {}", self.status()?.1)
            }
            Self::PhaseStarted { node, at, .. } => {
                format!("[{at:>6.1}s] {}{}", who(node), self.status()?.1)
            }
            Self::PhaseFinished {
                node, changed, at, ..
            } => {
                format!(
                    "[{at:>6.1}s] {}{} ({changed} changed)",
                    who(node),
                    self.status()?.1
                )
            }
            Self::PhaseFailed {
                node, error, at, ..
            } => {
                format!("[{at:>6.1}s] {}{}: {error}", who(node), self.status()?.1)
            }
            Self::Warning { message } => format!("warning: {message}"),
            Self::Note { message } => message.clone(),
            Self::Stale { kind, name, .. } => format!(
                "note: {kind} `{name}` belongs to the cluster but is no longer in the file; `down` removes it"
            ),
            Self::Object { .. } => return None,
        })
    }

    /// For a live display with a line per node: the node (`None`: the cluster-wide line)
    /// and its new status (`slurm munge …`, `slurm munge done (0.4s)`); `None` for events
    /// that are not a status (notes, warnings, objects).
    pub fn status(&self) -> Option<(Option<&str>, String)> {
        let what = |layer: &Layer, phase: &str| format!("{} {phase}", layer.name());
        Some(match self {
            Self::LayerStarted { layer, .. } => (None, format!("{} …", layer.name())),
            Self::LayerFinished { layer, seconds, .. } => {
                (None, format!("{} done in {seconds:.1}s", layer.name()))
            }
            Self::PhaseStarted {
                layer, phase, node, ..
            } => (node.as_deref(), format!("{} …", what(layer, phase))),
            Self::PhaseFinished {
                layer,
                phase,
                node,
                seconds,
                ..
            } => (
                node.as_deref(),
                format!("{} done in {seconds:.1}s", what(layer, phase)),
            ),
            Self::PhaseFailed {
                layer, phase, node, ..
            } => (node.as_deref(), format!("{} FAILED", what(layer, phase))),
            _ => return None,
        })
    }
}

/// Receives events. Called from the thread that runs the session; must not block for long.
pub trait EventSink: Send + Sync {
    /// One event.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn event(&self, event: &Event) {
        self(event);
    }
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _: &Event) {}
}

/// What happened to one node during `up`, from its events: `*_at` are seconds since `up`
/// started, the others durations of the node's own phases.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct NodeTimes {
    /// When it first answered over SSH.
    pub ssh_ready_at: Option<f64>,
    /// Waiting for its seed unit after SSH answered.
    pub seed: Option<f64>,
    /// Its base configuration over SSH.
    pub base: Option<f64>,
    /// Its own SLURM phases (waits for other nodes not counted).
    pub slurm: Option<f64>,
    /// Its own BeeGFS phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beegfs: Option<f64>,
    /// Its own MPI phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpi: Option<f64>,
    /// Its own container phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<f64>,
    /// Its own monitoring phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<f64>,
    /// When its last phase ended.
    pub done_at: Option<f64>,
    /// Host steps changed on it.
    pub changed: usize,
}

/// Per node, in name order.
pub type Timings = BTreeMap<String, NodeTimes>;

/// The session's own listener: keeps the per-node times, the phases running now (for
/// "cancelled during …") and the warnings, and passes every event on.
pub(crate) struct Recorder<'a> {
    pub(crate) started: Instant,
    sink: &'a dyn EventSink,
    state: Mutex<RecorderState>,
}

#[derive(Default)]
struct RecorderState {
    timings: Timings,
    running: Vec<(Layer, String, Option<String>)>,
    layer: Option<Layer>,
    warnings: Vec<String>,
    changed: usize,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(sink: &'a dyn EventSink, started: Instant) -> Self {
        Self {
            started,
            sink,
            state: Mutex::new(RecorderState::default()),
        }
    }

    /// Seconds since the run started.
    pub(crate) fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Ok(mut s) = self.state.lock() {
            s.record(&event);
        }
        self.sink.event(&event);
    }

    pub(crate) fn warn(&self, message: String) {
        self.emit(Event::Warning { message });
    }

    pub(crate) fn note(&self, message: String) {
        self.emit(Event::Note { message });
    }

    pub(crate) fn layer_started(&self, layer: Layer) -> Instant {
        self.emit(Event::LayerStarted {
            layer,
            at: self.now(),
        });
        Instant::now()
    }

    pub(crate) fn layer_finished(&self, layer: Layer, since: Instant) {
        self.emit(Event::LayerFinished {
            layer,
            seconds: since.elapsed().as_secs_f64(),
            at: self.now(),
        });
    }

    pub(crate) fn phase_started(&self, layer: Layer, phase: &str, node: Option<&str>) -> Instant {
        self.emit(Event::PhaseStarted {
            layer,
            phase: phase.to_owned(),
            node: node.map(str::to_owned),
            at: self.now(),
        });
        Instant::now()
    }

    pub(crate) fn phase_finished(
        &self,
        layer: Layer,
        phase: &str,
        node: Option<&str>,
        seconds: f64,
        changed: usize,
    ) {
        self.emit(Event::PhaseFinished {
            layer,
            phase: phase.to_owned(),
            node: node.map(str::to_owned),
            seconds,
            changed,
            at: self.now(),
        });
    }

    pub(crate) fn phase_failed(&self, layer: Layer, phase: &str, node: Option<&str>, error: &str) {
        self.emit(Event::PhaseFailed {
            layer,
            phase: phase.to_owned(),
            node: node.map(str::to_owned),
            error: error.to_owned(),
            at: self.now(),
        });
    }

    /// The phases running now, e.g. `slurm slurmctld (ctl); node ssh wait (cn1, cn2)`, or
    /// the current layer when none is.
    pub(crate) fn running(&self) -> String {
        let Ok(s) = self.state.lock() else {
            return "the run".to_owned();
        };
        let mut groups: BTreeMap<(Layer, &str), Vec<&str>> = BTreeMap::new();
        for (layer, phase, node) in &s.running {
            let nodes = groups.entry((*layer, phase.as_str())).or_default();
            if let Some(n) = node {
                nodes.push(n);
            }
        }
        for nodes in groups.values_mut() {
            nodes.sort_unstable();
        }
        if groups.is_empty() {
            return s.layer.map_or("the run", Layer::name).to_owned();
        }
        groups
            .into_iter()
            .map(|((layer, phase), nodes)| {
                if nodes.is_empty() {
                    format!("{} {phase}", layer.name())
                } else {
                    format!("{} {phase} ({})", layer.name(), nodes.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The per-node times, the warnings and the host steps changed.
    pub(crate) fn finish(&self) -> (Timings, Vec<String>, usize) {
        match self.state.lock() {
            Ok(s) => (s.timings.clone(), s.warnings.clone(), s.changed),
            Err(_) => Default::default(),
        }
    }
}

/// Passes a layer's phase events (`hpc_remote::PhaseEvent`) on as session events. `own`
/// names a phase the caller reports itself (SLURM's `ready` hook is the node layer's work).
pub(crate) struct LayerObserver<'a, 'b> {
    pub(crate) rec: &'a Recorder<'b>,
    pub(crate) layer: Layer,
    pub(crate) own: Option<&'static str>,
}

impl hpc_remote::PhaseObserver for LayerObserver<'_, '_> {
    fn phase(&self, event: hpc_remote::PhaseEvent<'_>) {
        use hpc_remote::PhaseEvent;
        if self.own == Some(event.name()) {
            return;
        }
        match event {
            PhaseEvent::Started { name, node } => {
                self.rec.phase_started(self.layer, name, node);
            }
            PhaseEvent::Finished(r) => self.rec.phase_finished(
                self.layer,
                r.name,
                r.node.as_deref(),
                r.elapsed.as_secs_f64(),
                r.changed(),
            ),
            PhaseEvent::Failed { name, node, error } => {
                self.rec.phase_failed(self.layer, name, node, error);
            }
        }
    }
}

impl RecorderState {
    fn record(&mut self, e: &Event) {
        match e {
            Event::LayerStarted { layer, .. } => self.layer = Some(*layer),
            Event::PhaseStarted {
                layer, phase, node, ..
            } => self.running.push((*layer, phase.clone(), node.clone())),
            Event::PhaseFailed {
                layer, phase, node, ..
            } => self.stop(*layer, phase, node.as_deref()),
            Event::PhaseFinished {
                layer,
                phase,
                node,
                seconds,
                changed,
                at,
            } => {
                self.stop(*layer, phase, node.as_deref());
                self.changed += changed;
                let Some(node) = node else { return };
                let t = self.timings.entry(node.clone()).or_default();
                let add = |v: &mut Option<f64>| *v = Some(v.unwrap_or(0.0) + seconds);
                match (layer, phase.as_str()) {
                    (Layer::Node, "ssh wait") => t.ssh_ready_at = Some(*at),
                    (Layer::Node, "seed") => t.seed = Some(*seconds),
                    (Layer::Node, _) => add(&mut t.base),
                    (Layer::Slurm, _) => add(&mut t.slurm),
                    (Layer::Beegfs, _) => add(&mut t.beegfs),
                    (Layer::Mpi, _) => add(&mut t.mpi),
                    (Layer::Containers, _) => add(&mut t.containers),
                    (Layer::Monitoring, _) => add(&mut t.monitoring),
                    (Layer::Libvirt, _) => {}
                }
                t.changed += changed;
                t.done_at = Some(t.done_at.map_or(*at, |d| d.max(*at)));
            }
            Event::Warning { message } => self.warnings.push(message.clone()),
            _ => {}
        }
    }

    fn stop(&mut self, layer: Layer, phase: &str, node: Option<&str>) {
        if let Some(i) = self
            .running
            .iter()
            .position(|(l, p, n)| *l == layer && p == phase && n.as_deref() == node)
        {
            self.running.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorder_keeps_each_nodes_own_times_and_what_runs() {
        let seen = Mutex::new(Vec::new());
        let sink = |e: &Event| seen.lock().map(|mut v| v.push(e.clone())).unwrap_or(());
        let r = Recorder::new(&sink, Instant::now());
        r.layer_started(Layer::Node);
        r.phase_started(Layer::Node, "ssh wait", Some("cn1"));
        r.phase_started(Layer::Node, "ssh wait", Some("cn2"));
        r.phase_finished(Layer::Node, "ssh wait", Some("cn1"), 3.0, 0);
        r.phase_started(Layer::Slurm, "munge", Some("cn1"));
        assert_eq!(r.running(), "node ssh wait (cn2); slurm munge (cn1)");
        r.phase_finished(Layer::Slurm, "munge", Some("cn1"), 1.5, 2);
        r.phase_started(Layer::Slurm, "slurmd", Some("cn1"));
        r.phase_finished(Layer::Slurm, "slurmd", Some("cn1"), 2.0, 1);
        r.phase_failed(Layer::Node, "ssh wait", Some("cn2"), "no");
        assert_eq!(r.running(), "node");
        let (t, _, changed) = r.finish();
        assert_eq!(changed, 3);
        assert_eq!(t["cn1"].slurm, Some(3.5));
        assert!(t["cn1"].ssh_ready_at.is_some());
        assert!(!t.contains_key("cn2"));
        assert_eq!(seen.lock().map(|v| v.len()).unwrap_or(0), 9);
    }
}
