//! Drawing `up`'s events: a live node × phase display on a terminal (indicatif), plain lines
//! when standard error is not one, JSON lines with `--output json`, nothing with `-q`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hpc_cluster::{Event, EventSink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{Output, stderr};

enum Mode {
    Live(MultiProgress),
    Lines,
    JsonLines,
    Quiet,
}

struct Inner {
    mode: Mode,
    /// One bar per node, and `""` for the cluster-wide line.
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

/// The progress display of one run.
pub(crate) struct Display {
    inner: Arc<Inner>,
}

impl Display {
    pub(crate) fn new(out: &Output) -> Self {
        let mode = if out.json() {
            Mode::JsonLines
        } else if out.quiet() {
            Mode::Quiet
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        {
            Mode::Live(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Self {
            inner: Arc::new(Inner {
                mode,
                bars: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub(crate) fn sink(&self) -> Arc<dyn EventSink> {
        self.inner.clone()
    }

    /// Take the live lines off the screen (the final table replaces them).
    pub(crate) fn finish(&self) {
        if let Mode::Live(multi) = &self.inner.mode {
            if let Ok(bars) = self.inner.bars.lock() {
                for b in bars.values() {
                    b.finish_and_clear();
                }
            }
            let _ = multi.clear();
        }
    }
}

fn what(layer: hpc_cluster::Layer, phase: &str) -> String {
    format!("{} {phase}", layer.name())
}

impl Inner {
    fn bar(&self, multi: &MultiProgress, node: Option<&str>) -> Option<ProgressBar> {
        let key = node.unwrap_or("").to_owned();
        let mut bars = self.bars.lock().ok()?;
        let bar = bars.entry(key.clone()).or_insert_with(|| {
            let style =
                ProgressStyle::with_template("{spinner} {prefix:<14} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let b = multi.add(ProgressBar::new_spinner().with_style(style));
            b.set_prefix(if key.is_empty() {
                "cluster".to_owned()
            } else {
                key
            });
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Some(bar.clone())
    }

    fn live(&self, multi: &MultiProgress, e: &Event) {
        let set = |node: Option<&str>, msg: String| {
            if let Some(b) = self.bar(multi, node) {
                b.set_message(msg);
            }
        };
        match e {
            Event::LayerStarted { layer, .. } => set(None, format!("{} …", layer.name())),
            Event::LayerFinished { layer, seconds, .. } => {
                set(None, format!("{} done in {seconds:.1}s", layer.name()));
            }
            Event::PhaseStarted {
                layer, phase, node, ..
            } => set(node.as_deref(), format!("{} …", what(*layer, phase))),
            Event::PhaseFinished {
                layer,
                phase,
                node,
                seconds,
                ..
            } => set(
                node.as_deref(),
                format!("{} done ({seconds:.1}s)", what(*layer, phase)),
            ),
            Event::PhaseFailed {
                layer, phase, node, ..
            } => set(node.as_deref(), format!("{} FAILED", what(*layer, phase))),
            Event::Warning { message } => {
                let _ = multi.println(format!("warning: {message}"));
            }
            Event::Note { message } => {
                let _ = multi.println(message);
            }
            Event::Stale { kind, name, .. } => {
                let _ = multi.println(stale(kind, name));
            }
            Event::Object { .. } => {}
        }
    }
}

fn stale(kind: &str, name: &str) -> String {
    format!(
        "note: {kind} `{name}` belongs to the cluster but is no longer in the file; `down` removes it"
    )
}

/// One line per event, for logs.
fn line(e: &Event) -> Option<String> {
    let who = |node: &Option<String>| {
        node.as_deref()
            .map_or_else(String::new, |n| format!("{n}: "))
    };
    Some(match e {
        Event::LayerStarted { layer, at } => format!("[{at:>6.1}s] {} …", layer.name()),
        Event::LayerFinished { layer, seconds, at } => {
            format!("[{at:>6.1}s] {} done in {seconds:.1}s", layer.name())
        }
        Event::PhaseStarted {
            layer,
            phase,
            node,
            at,
        } => format!("[{at:>6.1}s] {}{} …", who(node), what(*layer, phase)),
        Event::PhaseFinished {
            layer,
            phase,
            node,
            seconds,
            changed,
            at,
        } => format!(
            "[{at:>6.1}s] {}{} done in {seconds:.1}s ({changed} changed)",
            who(node),
            what(*layer, phase)
        ),
        Event::PhaseFailed {
            layer,
            phase,
            node,
            error,
            at,
        } => format!(
            "[{at:>6.1}s] {}{} FAILED: {error}",
            who(node),
            what(*layer, phase)
        ),
        Event::Warning { message } => format!("warning: {message}"),
        Event::Note { message } => message.clone(),
        Event::Stale { kind, name, .. } => stale(kind, name),
        Event::Object { .. } => return None,
    })
}

impl EventSink for Inner {
    fn event(&self, e: &Event) {
        match &self.mode {
            Mode::Live(multi) => self.live(multi, e),
            Mode::Lines => {
                if let Some(l) = line(e) {
                    stderr(&l);
                }
            }
            Mode::JsonLines => {
                if let Ok(l) = serde_json::to_string(e) {
                    stderr(&l);
                }
            }
            Mode::Quiet => {}
        }
    }
}
