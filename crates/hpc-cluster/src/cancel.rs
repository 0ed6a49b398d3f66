//! Cancelling a run from outside: a signal handler, a UI, a test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set once to ask a run to stop. Cheap to clone; every clone sees the same flag.
///
/// The libvirt part of `up` checks it before every step and undoes what it created; the SSH
/// part stops starting new work as soon as it notices — at once after [`CancelToken::cancel`],
/// within [`CancelToken::POLL`] when only the flag was set (a signal handler may do no more
/// than that). Steps already sent to a node finish there, and their files are replaced
/// atomically, so no file is half-written.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    flag: Arc<AtomicBool>,
    notify: tokio::sync::Notify,
}

impl CancelToken {
    /// How often waiting code looks at the flag.
    pub const POLL: Duration = Duration::from_millis(100);

    /// A token nobody has cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token over an existing flag (e.g. one `signal_hook::flag::register` sets).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        Self(Arc::new(Inner {
            flag,
            notify: tokio::sync::Notify::new(),
        }))
    }

    /// Ask the run to stop.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether it was asked to.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// The flag itself (what `hpc_libvirt::up` takes).
    pub fn flag(&self) -> &AtomicBool {
        &self.0.flag
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(Self::POLL) => {}
            }
        }
    }
}
