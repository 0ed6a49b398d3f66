//! Error types. Every error names its host, and step errors name the step.

use std::path::PathBuf;

/// A plan that cannot be applied as written (found before anything runs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Two steps of one host share an id.
    #[error("host {host}: step id {step:?} is used twice")]
    DuplicateStep {
        /// Host name.
        host: String,
        /// Step id.
        step: String,
    },
    /// A trigger names a step that does not come earlier on the same host.
    #[error("host {host}: step {step:?} is triggered by {trigger:?}, which is not an earlier step")]
    UnknownTrigger {
        /// Host name.
        host: String,
        /// Step id.
        step: String,
        /// The unknown trigger id.
        trigger: String,
    },
    /// A path is not absolute or not normalised.
    #[error(
        "host {host}: step {step:?}: path {path:?} must be absolute, without `..` or a trailing `/`"
    )]
    BadPath {
        /// Host name.
        host: String,
        /// Step id.
        step: String,
        /// The path.
        path: String,
    },
    /// A value contains a NUL byte, which no shell or file name can carry.
    #[error("host {host}: step {step:?}: {field} contains a NUL byte")]
    NulByte {
        /// Host name.
        host: String,
        /// Step id.
        step: String,
        /// Field name.
        field: &'static str,
    },
    /// A field is empty or malformed (empty argv, service name starting with `-`, …).
    #[error("host {host}: step {step:?}: invalid {field}: {reason}")]
    Invalid {
        /// Host name.
        host: String,
        /// Step id.
        step: String,
        /// Field name.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// A host could not be worked on at all (its steps did not run or their outcome is unknown).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The plan is invalid.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The executor has no address for this host.
    #[error("host {host}: not in the executor's inventory")]
    UnknownHost {
        /// Host name.
        host: String,
    },
    /// TCP/SSH connection failed after all retries.
    #[error("host {host}: unreachable at {addr} after {attempts} attempt(s): {last}")]
    Unreachable {
        /// Host name.
        host: String,
        /// Address tried.
        addr: String,
        /// Attempts made.
        attempts: u32,
        /// Last error, rendered.
        last: String,
    },
    /// The host presented a key other than the pinned one.
    #[error(
        "host {host}: HOST KEY CHANGED: the server's {algorithm} key does not match the one pinned in {} line {line}; refusing to connect",
        file.display()
    )]
    HostKeyChanged {
        /// Host name.
        host: String,
        /// Key algorithm presented.
        algorithm: String,
        /// Pinning file.
        file: PathBuf,
        /// Line of the pinned key.
        line: usize,
    },
    /// The host presented a key listed as `@revoked` in the known_hosts file.
    #[error(
        "host {host}: the server's {algorithm} key is REVOKED in {} line {line}; refusing to connect",
        file.display()
    )]
    HostKeyRevoked {
        /// Host name.
        host: String,
        /// Key algorithm presented.
        algorithm: String,
        /// The known_hosts file.
        file: PathBuf,
        /// Line of the `@revoked` entry.
        line: usize,
    },
    /// A user-given known_hosts file has no key for this host.
    #[error("host {host}: no host key for it in {}; refusing to connect", file.display())]
    UnknownHostKey {
        /// Host name.
        host: String,
        /// The known_hosts file.
        file: PathBuf,
    },
    /// Reading or writing the host key file failed.
    #[error("host {host}: host key file {}", file.display())]
    KnownHostsIo {
        /// Host name.
        host: String,
        /// The file.
        file: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The private key could not be loaded.
    #[error("host {host}: cannot load private key {}: {reason}", path.display())]
    Key {
        /// Host name.
        host: String,
        /// Key path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The server refused our key.
    #[error("host {host}: public key authentication as {user:?} refused")]
    AuthRefused {
        /// Host name.
        host: String,
        /// Remote user.
        user: String,
    },
    /// The SSH session failed after connecting.
    #[error("host {host}: ssh: {detail}")]
    Ssh {
        /// Host name.
        host: String,
        /// What failed.
        detail: String,
    },
    /// Starting the local shell failed.
    #[error("host {host}: cannot run /bin/sh")]
    Spawn {
        /// Host name.
        host: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The on-target runner died or spoke nonsense.
    #[error("host {host}: runner failed (exit status {status:?}): {stderr_tail}")]
    Runner {
        /// Host name.
        host: String,
        /// Exit status, when known.
        status: Option<u32>,
        /// Last lines of the runner's stderr.
        stderr_tail: String,
    },
    /// The host did not finish in time.
    #[error("host {host}: timed out after {secs} s")]
    Timeout {
        /// Host name.
        host: String,
        /// Seconds.
        secs: u64,
    },
}
