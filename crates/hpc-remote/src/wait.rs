//! One bounded polling loop for every "wait until …" of a deployment: a daemon answering, a
//! node turning idle, SSH coming up (feature `wait`, on tokio's timer).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Why one probe of a [`wait_for`] did not end the wait with a value: what it saw, and
/// whether looking again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait<E> {
    /// Not yet: look again after `every`. If time runs out, the wait returns the last of
    /// these ([`WaitError::TimedOut`]).
    Retry(E),
    /// Will not get better (a node drained, a host key changed): end the wait now
    /// ([`WaitError::Stopped`]).
    Stop(E),
}

/// How a [`wait_for`] ended without a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError<E> {
    /// The deadline passed. `last` is what the last finished probe saw; `None` when no
    /// probe finished in time.
    TimedOut {
        /// The wait's bound.
        after: Duration,
        /// The last observation.
        last: Option<E>,
    },
    /// A probe returned [`Wait::Stop`].
    Stopped(E),
}

impl<E> WaitError<E> {
    /// The last observation: the one that stopped the wait, or the last before time ran out.
    pub fn into_last(self) -> Option<E> {
        match self {
            Self::TimedOut { last, .. } => last,
            Self::Stopped(e) => Some(e),
        }
    }
}

/// `Stopped`: the observation. `TimedOut`: the last observation with `(still so after 2 s)`,
/// or `no answer within 2 s`.
impl<E: fmt::Display> fmt::Display for WaitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped(e) => write!(f, "{e}"),
            Self::TimedOut {
                after,
                last: Some(e),
            } => write!(f, "{e} (still so after {})", Span(*after)),
            Self::TimedOut { after, last: None } => {
                write!(f, "no answer within {}", Span(*after))
            }
        }
    }
}

/// A wait's bound as people write it: `120 s`, `1.5 s`, `300 ms`.
struct Span(Duration);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_secs(1) {
            write!(f, "{} ms", d.as_millis())
        } else if d.subsec_millis() == 0 {
            write!(f, "{} s", d.as_secs())
        } else {
            write!(f, "{:.1} s", d.as_secs_f64())
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for WaitError<E> {}

/// Polls `probe` until it returns `Ok(value)` (then that value), returns
/// `Err(`[`Wait::Stop`]`)` (then [`WaitError::Stopped`]), or `timeout` passes (then
/// [`WaitError::TimedOut`] with the last [`Wait::Retry`] observation).
///
/// The first probe runs at once; each next one starts `every` after the previous one
/// ended. The wait never outlasts `timeout`: a probe still running at the deadline is
/// dropped, and when the next probe would start after the deadline the wait ends without
/// it. Needs a tokio runtime with the timer enabled.
///
/// ```
/// use std::time::Duration;
/// use hpc_remote::{Wait, WaitError, wait_for};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut tries = 0;
/// let r = wait_for(Duration::from_secs(5), Duration::from_millis(1), || {
///     tries += 1;
///     let n = tries;
///     async move { if n < 3 { Err(Wait::Retry(format!("try {n}: not yet"))) } else { Ok(n) } }
/// })
/// .await;
/// assert_eq!(r, Ok(3));
///
/// let r: Result<(), _> = wait_for(Duration::from_millis(20), Duration::from_millis(5), || async {
///     Err(Wait::Retry("port 6819 closed"))
/// })
/// .await;
/// assert_eq!(r.unwrap_err().to_string(), "port 6819 closed (still so after 20 ms)");
/// # }
/// ```
pub async fn wait_for<T, E, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Wait<E>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, probe()).await {
            Err(_elapsed) => break,
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(Wait::Stop(e))) => return Err(WaitError::Stopped(e)),
            Ok(Err(Wait::Retry(e))) => last = Some(e),
        }
        let next = Instant::now() + every;
        if next >= deadline {
            break;
        }
        tokio::time::sleep_until(next).await;
    }
    Err(WaitError::TimedOut {
        after: timeout,
        last,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn returns_the_value_once_ready() {
        let tries = Cell::new(0);
        let r = run(wait_for(
            Duration::from_secs(10),
            Duration::from_secs(1),
            || {
                tries.set(tries.get() + 1);
                let n = tries.get();
                async move { if n < 4 { Err(Wait::Retry(n)) } else { Ok("up") } }
            },
        ));
        assert_eq!(r, Ok("up"));
        assert_eq!(tries.get(), 4);
    }

    #[test]
    fn stop_ends_at_once() {
        let tries = Cell::new(0);
        let r: Result<(), _> = run(wait_for(
            Duration::from_secs(10),
            Duration::from_secs(1),
            || {
                tries.set(tries.get() + 1);
                async { Err(Wait::Stop("drained")) }
            },
        ));
        assert_eq!(r, Err(WaitError::Stopped("drained")));
        assert_eq!(tries.get(), 1);
    }

    #[test]
    fn times_out_with_the_last_observation_and_never_overruns() {
        let tries = Cell::new(0);
        let (r, waited): (Result<(), _>, _) = run(async {
            let started = Instant::now();
            let r = wait_for(Duration::from_secs(10), Duration::from_secs(3), || {
                tries.set(tries.get() + 1);
                let n = tries.get();
                async move { Err(Wait::Retry(format!("try {n}"))) }
            })
            .await;
            (r, started.elapsed())
        });
        // Probes at 0, 3, 6 and 9 s; the next would start after the deadline.
        assert_eq!(tries.get(), 4);
        let err = r.unwrap_err();
        assert_eq!(err.to_string(), "try 4 (still so after 10 s)");
        assert_eq!(err.into_last().as_deref(), Some("try 4"));
        assert_eq!(waited, Duration::from_secs(9));
    }

    #[test]
    fn a_probe_running_at_the_deadline_is_dropped() {
        let tries = Cell::new(0);
        let r: Result<(), WaitError<&str>> = run(wait_for(
            Duration::from_secs(10),
            Duration::from_secs(1),
            || {
                tries.set(tries.get() + 1);
                let n = tries.get();
                async move {
                    if n == 1 {
                        Err(Wait::Retry("refused"))
                    } else {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    }
                }
            },
        ));
        assert_eq!(
            r,
            Err(WaitError::TimedOut {
                after: Duration::from_secs(10),
                last: Some("refused")
            })
        );
        let none: Result<(), WaitError<&str>> = run(wait_for(
            Duration::from_secs(1),
            Duration::from_secs(1),
            || async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            },
        ));
        assert_eq!(none.unwrap_err().to_string(), "no answer within 1 s");
        let span = |ms| Span(Duration::from_millis(ms)).to_string();
        assert_eq!(
            [span(300), span(120_000), span(1_500)],
            ["300 ms", "120 s", "1.5 s"]
        );
    }
}
