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
        match e.status() {
            Some((node, status)) => {
                if let Some(b) = self.bar(multi, node) {
                    b.set_message(status);
                }
            }
            None => {
                if let Some(l) = e.line() {
                    let _ = multi.println(l);
                }
            }
        }
    }
}

impl EventSink for Inner {
    fn event(&self, e: &Event) {
        match &self.mode {
            Mode::Live(multi) => self.live(multi, e),
            Mode::Lines => {
                if let Some(l) = e.line() {
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
